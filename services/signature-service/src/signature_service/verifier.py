"""The verifier: files in, policy decision out, without blocking the event loop.

    verifier = Verifier(trust, RevocationConfig(mode="require"), policy, workers=2)
    decision = await verifier.verify([("qd-15.pdf", data)], document_type="QĐ",
                                     direction="outgoing")

pyhanko's validation is CPU-bound (and partly synchronous), so it runs in a pool of worker
processes (``workers=0``: one thread of this process, for tests and small installations).
Each worker parses a file once, fetches the revocation information for its signers' chains
(its own cache, kept between calls) and validates. A file that crashes or outlasts a worker
becomes a rejected verdict, never a stuck consumer: a validation that outlasts ``timeout`` has
its pool's processes killed and a new pool started (otherwise the hostile file would keep its
worker busy for good), and the other validations that pool was running are run again on the
new one. With ``workers=0`` the thread cannot be killed: it is abandoned to finish on its own
and a new thread takes the next files.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import Any, Protocol, TypeVar

from asn1crypto import x509

from lienthong_kit.errors import DeadlineExceeded, FieldViolation, InvalidArgument
from lienthong_kit.logs import get_logger
from lienthong_kit.tracing import current_trace_id
from signature_service import engine
from signature_service.engine import CertificateResult, FileResult, Material
from signature_service.metrics import SIGNATURE_REVOCATION_FETCHES, SIGNATURE_VERIFY_DURATION
from signature_service.policy import Decision, Policy
from signature_service.revocation import RevocationConfig

__all__ = ["Trust", "Verifier"]

T = TypeVar("T")
log = get_logger(__name__)


class Trust(Protocol):
    """What the verifier reads of the trust store (trust.TrustStore)."""

    version: int
    anchors: list[tuple[x509.Certificate, str]]
    intermediates: list[tuple[x509.Certificate, str]]


class Verifier:
    def __init__(
        self,
        trust: Trust,
        revocation: RevocationConfig,
        policy: Policy,
        *,
        workers: int = 2,
        timeout: float = 60.0,
        person_prefixes: tuple[str, ...] = ("CCCD:", "CMND:", "HC:"),
        organisation_prefixes: tuple[str, ...] = ("MST:", "MNS:"),
        log_service: str = "signature-service",
        log_level: str = "info",
    ) -> None:
        self.log_service = log_service
        self.log_level = log_level
        self.trust = trust
        self.revocation = revocation
        self.policy = policy
        self.workers = workers
        self.timeout = timeout
        self.person_prefixes = person_prefixes
        self.organisation_prefixes = organisation_prefixes
        self._executor = self._new_executor()
        self._retired: weakref.WeakSet[Executor] = weakref.WeakSet()  # replaced on purpose
        self._material_version = -1
        self._material = Material(anchors=(), intermediates=())

    def _new_executor(self) -> Executor:
        if self.workers <= 0:
            return ThreadPoolExecutor(1, thread_name_prefix="signature-validation")
        # spawn: never fork a process that runs gRPC and asyncio threads
        return ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=engine.init_worker,
            initargs=(self.log_service, self.log_level),
        )

    async def warm_up(self) -> None:
        """Start the worker processes now (importing pyhanko takes a moment), not on the first
        document."""
        await asyncio.gather(*(self._run(engine.warm, 0.5) for _ in range(max(self.workers, 1))))

    async def aclose(self) -> None:
        if isinstance(self._executor, ThreadPoolExecutor):
            # after the task in hand (no timeout: the thread's loop and sessions must close)
            await asyncio.get_running_loop().run_in_executor(self._executor, engine.shutdown_worker)
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` in the pool within ``timeout``. TimeoutError: it did not finish (its
        pool was replaced); BrokenProcessPool: it crashed its worker twice."""
        loop = asyncio.get_running_loop()
        trace_id = current_trace_id()  # the worker's log lines carry it
        for attempt in (1, 2):
            executor = self._executor
            try:
                return await asyncio.wait_for(
                    loop.run_in_executor(executor, engine.traced, trace_id, func, *args),
                    self.timeout,
                )
            except TimeoutError:
                self._replace(executor, "validation_timed_out")
                raise
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if executor in self._retired and task is not None and not task.cancelling():
                    continue  # it was queued on a pool retired for another task's timeout
                raise
            except BrokenProcessPool:
                if executor in self._retired:
                    continue  # killed for another task's timeout: this one is innocent, again
                self._replace(executor, "validation_worker_crashed")
                if attempt == 2:
                    raise
                # a crash breaks every task of the pool: run this one again to know whether it
                # was the one that crashed
        raise BrokenProcessPool("validation workers were replaced twice while this file ran")

    def _replace(self, executor: Executor, why: str) -> None:
        """Retire ``executor`` (killing its processes) and start a new one, once."""
        if executor is not self._executor:
            return  # another task replaced it already
        log.error(why, workers=self.workers, timeout=self.timeout)
        self._retired.add(executor)
        self._executor = self._new_executor()
        if isinstance(executor, ProcessPoolExecutor):
            # Python 3.11 has no public way to stop a busy worker (3.14: kill_workers)
            processes = getattr(executor, "_processes", None) or {}
            for process in list(processes.values()):
                process.kill()
        executor.shutdown(wait=False, cancel_futures=True)

    def _base(self) -> Material:
        """The trust material for the workers (rebuilt when the trust store changes)."""
        if self._material_version != self.trust.version:
            self._material = Material(
                anchors=tuple(c.dump() for c, _ in self.trust.anchors),
                intermediates=tuple(c.dump() for c, _ in self.trust.intermediates),
                revocation_mode=self.revocation.mode,
                person_prefixes=self.person_prefixes,
                organisation_prefixes=self.organisation_prefixes,
            )
            self._material_version = self.trust.version
        return self._material

    @staticmethod
    def _count(lookups: dict[str, int]) -> None:
        for key, count in lookups.items():
            kind, outcome = key.split(":")
            SIGNATURE_REVOCATION_FETCHES.labels(kind, outcome).inc(count)

    async def check_files(self, files: list[tuple[str, bytes]]) -> list[FileResult]:
        """Every file's signatures with every check; a worker crash or timeout is reported as
        the files' problem."""
        try:
            results, lookups = await self._run(
                engine.check_files, files, self._base(), self.revocation
            )
        except (BrokenProcessPool, TimeoutError) as exc:
            why = (
                f"validation did not finish within {self.timeout:g} s"
                if isinstance(exc, TimeoutError)
                else "the file crashed the validator"
            )
            return [FileResult(name, "file", problem=why) for name, _ in files[:1]]
        self._count(lookups)
        return results

    async def verify(
        self, files: list[tuple[str, bytes]], *, document_type: str, direction: str
    ) -> Decision:
        started = time.perf_counter()
        results = await self.check_files(files)
        decision = self.policy.decide(results, document_type, direction)
        outcome = "accepted" if decision.accepted else "rejected"
        SIGNATURE_VERIFY_DURATION.labels(outcome).observe(time.perf_counter() - started)
        return decision

    async def validate_certificate(
        self, der: bytes, intermediates: list[bytes], at: datetime
    ) -> CertificateResult:
        """DeadlineExceeded when the validation outlasts ``timeout``; InvalidArgument when the
        certificate crashed the validator (twice)."""
        try:
            result, lookups = await self._run(
                engine.validate_certificate, der, intermediates, at, self._base(), self.revocation
            )
        except TimeoutError:
            raise DeadlineExceeded(
                f"certificate validation did not finish within {self.timeout:g} s",
                reason="VALIDATION_TIMEOUT",
            ) from None
        except BrokenProcessPool:
            raise InvalidArgument(
                [FieldViolation("certificate", "could not be validated: it crashed the validator")]
            ) from None
        self._count(lookups)
        return result
