"""The verifier: files in, policy decision out, without blocking the event loop.

    verifier = Verifier(trust, RevocationConfig(mode="require"), policy, workers=2)
    decision = await verifier.verify([("qd-15.pdf", path_or_bytes)], document_type="QĐ",
                                     direction="outgoing")
    results = await verifier.check_files(files, precheck=True)   # VerifyDocument

pyhanko's validation is CPU-bound (and partly synchronous), so it runs in a pool of worker
processes (``workers=0``: one thread of this process, for tests and small installations).
Each worker parses a file once, fetches the revocation information for its signers' chains
(its own cache, kept between calls) and validates. A file that crashes or outlasts a worker
becomes a rejected verdict, never a stuck consumer: a validation that outlasts ``timeout`` has
its pool's processes killed and a new pool started (otherwise the hostile file would keep its
worker busy for good), and the other validations that pool was running are run again on the
new one. With ``workers=0`` the thread cannot be killed: it is abandoned to finish on its own
and a new thread takes the next files.

Memory stays bounded: files reach the workers as paths (bytes given in memory are written to
a temporary file first), and each worker process's address space is capped
(``memory_bytes``), so a file that makes pyhanko allocate without end fails in its worker.
Pre-checks (VerifyDocument, ValidateCertificate) run in a pool of their own behind a bounded
queue: they cannot hold up submitted documents, and a full queue is refused at once
(RESOURCE_EXHAUSTED).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import tempfile
import time
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import grpc
from asn1crypto import x509

from lienthong_kit.errors import DeadlineExceeded, FieldViolation, InvalidArgument, LienthongError
from lienthong_kit.logs import get_logger
from lienthong_kit.tracing import current_trace_id
from signature_service import engine
from signature_service.engine import CertificateResult, FileResult, Material
from signature_service.metrics import SIGNATURE_REVOCATION_FETCHES, SIGNATURE_VERIFY_DURATION
from signature_service.policy import Decision, Policy
from signature_service.revocation import RevocationConfig

__all__ = ["PrecheckQueueFull", "Trust", "Verifier"]

T = TypeVar("T")
# bytes written to the spool folder in the event loop itself; more go through a thread
SPOOL_INLINE_BYTES = 1024 * 1024
log = get_logger(__name__)


class Trust(Protocol):
    """What the verifier reads of the trust store (trust.TrustStore)."""

    version: int
    anchors: list[tuple[x509.Certificate, str]]
    intermediates: list[tuple[x509.Certificate, str]]


class PrecheckQueueFull(LienthongError):
    """Every pre-check worker is busy and the queue behind them is full: retry later."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class _Pool:
    """Worker processes (a thread when ``workers`` is 0) that replace themselves when a task
    outlasts ``timeout`` or crashes one of them."""

    def __init__(self, name: str, workers: int, timeout: float, initargs: tuple[Any, ...]) -> None:
        self.name = name
        self.workers = workers
        self.timeout = timeout
        self._initargs = initargs
        self.executor = self._new_executor()
        self._retired: weakref.WeakSet[Executor] = weakref.WeakSet()  # replaced on purpose

    def _new_executor(self) -> Executor:
        if self.workers <= 0:
            return ThreadPoolExecutor(1, thread_name_prefix=f"signature-{self.name}")
        # spawn: never fork a process that runs gRPC and asyncio threads
        return ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=engine.init_worker,
            initargs=self._initargs,
        )

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` in the pool within ``timeout``. TimeoutError: it did not finish (its
        pool was replaced); BrokenProcessPool: it crashed its worker twice."""
        loop = asyncio.get_running_loop()
        trace_id = current_trace_id()  # the worker's log lines carry it
        for attempt in (1, 2):
            executor = self.executor
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
        if executor is not self.executor:
            return  # another task replaced it already
        log.error(why, pool=self.name, workers=self.workers, timeout=self.timeout)
        self._retired.add(executor)
        self.executor = self._new_executor()
        if isinstance(executor, ProcessPoolExecutor):
            # Python 3.11 has no public way to stop a busy worker (3.14: kill_workers)
            processes = getattr(executor, "_processes", None) or {}
            for process in list(processes.values()):
                process.kill()
        executor.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        if isinstance(self.executor, ThreadPoolExecutor):
            # after the task in hand (no timeout: the thread's loop and sessions must close)
            await asyncio.get_running_loop().run_in_executor(self.executor, engine.shutdown_worker)
        self.executor.shutdown(wait=False, cancel_futures=True)


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
        memory_bytes: int = 0,
        precheck_workers: int | None = None,
        precheck_queue: int = 4,
        spool: Path | None = None,
    ) -> None:
        self.trust = trust
        self.revocation = revocation
        self.policy = policy
        self.workers = workers
        self.timeout = timeout
        self.person_prefixes = person_prefixes
        self.organisation_prefixes = organisation_prefixes
        self.spool = spool
        initargs = (log_service, log_level, memory_bytes)
        self._documents = _Pool("documents", workers, timeout, initargs)
        # pre-checks: their own workers (one thread when the documents have one)
        precheck = min(workers, 1) if precheck_workers is None else precheck_workers
        self._prechecks = _Pool("prechecks", precheck, timeout, initargs)
        # pre-checks admitted at once: one per worker running, ``precheck_queue`` waiting
        self.precheck_slots = max(precheck, 1) + max(precheck_queue, 0)
        self._precheck_admitted = 0
        self._material_version = -1
        self._material = Material(anchors=(), intermediates=())

    async def warm_up(self) -> None:
        """Start the worker processes now (importing pyhanko takes a moment), not on the first
        document."""
        # no validation timeout here: on a loaded machine starting the processes may take
        # longer than one validation may, and a slow start is no reason to fail the service
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(
                loop.run_in_executor(pool.executor, engine.warm, 0.5)
                for pool in (self._documents, self._prechecks)
                for _ in range(max(pool.workers, 1))
            )
        )

    async def aclose(self) -> None:
        await self._documents.aclose()
        await self._prechecks.aclose()

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` in the documents' pool (see _Pool.run)."""
        return await self._documents.run(func, *args)

    @asynccontextmanager
    async def _precheck_slot(self) -> AsyncIterator[None]:
        if self._precheck_admitted >= self.precheck_slots:
            raise PrecheckQueueFull(
                f"{self._precheck_admitted} pre-checks are running or waiting, the most admitted"
                " (LIENTHONG_SIGNATURE_PRECHECK_WORKERS + LIENTHONG_SIGNATURE_PRECHECK_QUEUE):"
                " retry later",
                reason="PRECHECK_QUEUE_FULL",
            )
        self._precheck_admitted += 1
        try:
            yield
        finally:
            self._precheck_admitted -= 1

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

    async def check_files(
        self, files: Sequence[tuple[str, bytes | Path]], *, precheck: bool = False
    ) -> list[FileResult]:
        """Every file's signatures with every check; a worker crash or timeout is reported as
        the files' problem. Bytes are written to a temporary file first: the workers get
        paths. ``precheck``: in the pre-checks' pool (PrecheckQueueFull when it is full)."""
        if precheck:
            async with self._precheck_slot():
                return await self._check_files(self._prechecks, files)
        return await self._check_files(self._documents, files)

    async def _check_files(
        self, pool: _Pool, files: Sequence[tuple[str, bytes | Path]]
    ) -> list[FileResult]:
        written: list[str] = []
        try:
            # a pre-check's few kilobytes are written at once: a thread hop costs more
            if sum(len(c) for _, c in files if isinstance(c, bytes)) <= SPOOL_INLINE_BYTES:
                paths = _spooled(files, self.spool, written)
            else:
                paths = await asyncio.to_thread(_spooled, files, self.spool, written)
            try:
                results, lookups = await pool.run(
                    engine.check_files, paths, self._base(), self.revocation
                )
            except (BrokenProcessPool, TimeoutError, MemoryError) as exc:
                why = {
                    TimeoutError: f"validation did not finish within {self.timeout:g} s",
                    MemoryError: engine.OUT_OF_MEMORY,
                }.get(type(exc), "the file crashed the validator")
                return [FileResult(name, "file", problem=why) for name, _ in files[:1]]
        finally:
            _remove(written)
        self._count(lookups)
        return results

    async def verify(
        self, files: Sequence[tuple[str, bytes | Path]], *, document_type: str, direction: str
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
        """A pre-check. DeadlineExceeded when the validation outlasts ``timeout``;
        InvalidArgument when the certificate crashed the validator (twice); PrecheckQueueFull
        when the pre-checks' queue is full."""
        try:
            async with self._precheck_slot():
                result, lookups = await self._prechecks.run(
                    engine.validate_certificate,
                    der,
                    intermediates,
                    at,
                    self._base(),
                    self.revocation,
                )
        except TimeoutError:
            raise DeadlineExceeded(
                f"certificate validation did not finish within {self.timeout:g} s",
                reason="VALIDATION_TIMEOUT",
            ) from None
        except (BrokenProcessPool, MemoryError):
            raise InvalidArgument(
                [FieldViolation("certificate", "could not be validated: it crashed the validator")]
            ) from None
        self._count(lookups)
        return result


def _spooled(
    files: Sequence[tuple[str, bytes | Path]], folder: Path | None, written: list[str]
) -> list[tuple[str, str]]:
    """(name, path) for each file; bytes are written to a new file under ``folder`` (the
    system's temporary folder when None), named at random: a file name is the sender's and
    may hold anything. Each path written is added to ``written`` at once, for the caller to
    remove even when a later write fails."""
    found = []
    for name, content in files:
        if isinstance(content, Path):
            found.append((name, str(content)))
            continue
        handle, path = tempfile.mkstemp(prefix="signature-", dir=folder)
        written.append(path)
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
        found.append((name, path))
    return found


def _remove(paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
