"""The verifier: files in, policy decision out, without blocking the event loop.

    verifier = Verifier(trust, revocation, policy, workers=2, timeout=60.0)
    decision = await verifier.verify([("qd-15.pdf", data)], document_type="QĐ",
                                     direction="outgoing")

pyhanko's validation is CPU-bound (and partly synchronous), so both engine phases run in a
pool of worker processes (``workers=0``: one thread of this process, for tests and small
installations). Revocation information is fetched here, asynchronously, between the phases.
A file that crashes or outlasts a worker becomes a rejected verdict, never a stuck consumer.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import Any, TypeVar

from asn1crypto import x509

from lienthong_kit.logs import get_logger
from lienthong_kit.metrics import SIGNATURE_VERIFY_DURATION as VERIFY_DURATION
from signature_service import engine
from signature_service.engine import (
    CertificateResult,
    FileResult,
    Material,
)
from signature_service.pki import build_chain
from signature_service.policy import Decision, Policy
from signature_service.revocation import RevocationFound, RevocationSource
from signature_service.trust import TrustStore

__all__ = ["VERIFY_DURATION", "Verifier"]

T = TypeVar("T")
log = get_logger(__name__)


class Verifier:
    def __init__(
        self,
        trust: TrustStore,
        revocation: RevocationSource,
        policy: Policy,
        *,
        workers: int = 2,
        timeout: float = 60.0,
        person_prefixes: tuple[str, ...] = ("CCCD:", "CMND:", "HC:"),
        organisation_prefixes: tuple[str, ...] = ("MST:", "MNS:"),
    ) -> None:
        self.trust = trust
        self.revocation = revocation
        self.policy = policy
        self.workers = workers
        self.timeout = timeout
        self.person_prefixes = person_prefixes
        self.organisation_prefixes = organisation_prefixes
        self._executor = self._new_executor()
        self._der_version = -1
        self._anchors: tuple[bytes, ...] = ()
        self._intermediates: tuple[bytes, ...] = ()

    def _new_executor(self) -> Executor:
        if self.workers <= 0:
            return ThreadPoolExecutor(1, thread_name_prefix="signature-validation")
        # spawn: never fork a process that runs gRPC and asyncio threads
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))

    async def warm_up(self) -> None:
        """Start the worker processes now (importing pyhanko takes a moment), not on the first
        document."""
        await self._run(engine.inspect_files, [])

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        await self.revocation.close()
        self.close()

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(self._executor, func, *args), self.timeout
            )
        except BrokenProcessPool:
            log.error("validation_worker_crashed")
            self._executor = self._new_executor()
            raise

    def _trust_der(self) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        if self._der_version != self.trust.version:
            self._anchors = tuple(c.dump() for c, _ in self.trust.anchors)
            self._intermediates = tuple(c.dump() for c, _ in self.trust.intermediates)
            self._der_version = self.trust.version
        return self._anchors, self._intermediates

    async def _revocation_for(
        self, signers: list[tuple[bytes, tuple[bytes, ...]]]
    ) -> RevocationFound:
        pool = [c for c, _ in self.trust.anchors] + [c for c, _ in self.trust.intermediates]
        chains = []
        seen: set[bytes] = set()
        for signer, others in signers:
            if signer in seen:
                continue
            seen.add(signer)
            extra = [x509.Certificate.load(der) for der in others]
            chains.append(build_chain(x509.Certificate.load(signer), extra + pool))
        return await self.revocation.gather(chains)

    def _material(self, found: RevocationFound) -> Material:
        anchors, intermediates = self._trust_der()
        return Material(
            anchors=anchors,
            intermediates=intermediates,
            crls=tuple(found.crls),
            ocsps=tuple(found.ocsps),
            revocation_mode=self.revocation.mode,
            revocation_notes=found.notes,
            revocation_unknown=found.unknown,
            person_prefixes=self.person_prefixes,
            organisation_prefixes=self.organisation_prefixes,
        )

    async def check_files(self, files: list[tuple[str, bytes]]) -> list[FileResult]:
        """Every file's signatures with every check; a worker crash or timeout is reported as
        the files' problem."""
        try:
            certs = await self._run(engine.inspect_files, files)
            found = await self._revocation_for([(c.signer, c.others) for c in certs])
            return await self._run(engine.validate_files, files, self._material(found))
        except (BrokenProcessPool, TimeoutError) as exc:
            why = (
                f"validation did not finish within {self.timeout:g} s"
                if isinstance(exc, TimeoutError)
                else "the file crashed the validator"
            )
            return [FileResult(name, "file", problem=why) for name, _ in files[:1]]

    async def verify(
        self, files: list[tuple[str, bytes]], *, document_type: str, direction: str
    ) -> Decision:
        started = time.perf_counter()
        results = await self.check_files(files)
        decision = self.policy.decide(results, document_type, direction)
        outcome = "accepted" if decision.accepted else "rejected"
        VERIFY_DURATION.labels(outcome).observe(time.perf_counter() - started)
        return decision

    async def validate_certificate(
        self, der: bytes, intermediates: list[bytes], at: datetime
    ) -> CertificateResult:
        found = await self._revocation_for([(der, tuple(intermediates))])
        return await self._run(
            engine.validate_certificate, der, intermediates, at, self._material(found)
        )
