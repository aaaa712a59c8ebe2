"""The verifier: files in, policy decision out, without blocking the event loop.

    verifier = Verifier(trust, RevocationConfig(mode="require"), policy, workers=2)
    decision = await verifier.verify([("qd-15.pdf", path_or_bytes)], document_type="QĐ",
                                     direction="outgoing")
    results = await verifier.check_files(files, precheck=True)   # VerifyDocument

pyhanko's validation is CPU-bound (and partly synchronous), so it runs in a pool of worker
processes (``workers=0``: one thread of this process, for tests and small installations).
Each worker parses a file once, fetches the revocation information for its signers' chains
(its own cache, kept between calls) and validates. A file that crashes or outlasts a worker
becomes a rejected verdict, never a stuck consumer: a validation that outlasts ``timeout``
(counted from when a worker takes it) has its worker process killed and replaced (otherwise
the hostile file would keep it busy for good); the other workers' validations go on. Each
worker is a process with a pipe of its own, written and watched by the event loop (no
executor threads in between: decision 0402, "Speed"). With ``workers=0`` the thread cannot
be killed: it is abandoned to finish on its own and a new thread takes the next files.

Memory stays bounded: files reach the workers as paths (bytes given in memory are written to
a temporary file first; a document of at most ``inline_bytes`` travels with the task), and each
worker process's address space is capped
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
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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
# a document of at most this many bytes travels to its worker with the task, not as a file
INLINE_BYTES = 256 * 1024
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


class _Worker:
    """One worker process and the parent's end of its pipe: one task at a time."""

    def __init__(self, initargs: tuple[Any, ...]) -> None:
        context = multiprocessing.get_context("spawn")  # never fork gRPC's and asyncio's threads
        self.connection, child = context.Pipe()
        self.process = context.Process(target=engine.serve, args=(child, *initargs), daemon=True)
        self.process.start()
        child.close()

    async def call(self, func: Callable[..., T], args: tuple[Any, ...]) -> T:
        """``func(*args)`` in the process: the event loop writes the task and waits for the
        pipe to become readable (no executor threads in between). BrokenProcessPool: the
        process died."""
        loop = asyncio.get_running_loop()
        try:
            self.connection.send((func, args))
        except OSError as exc:  # it died while idle
            raise BrokenProcessPool(f"validation worker gone: {exc}") from exc
        readable: asyncio.Future[None] = loop.create_future()
        fd = self.connection.fileno()

        def ready() -> None:
            if not readable.done():
                readable.set_result(None)

        loop.add_reader(fd, ready)
        try:
            await readable
        finally:
            loop.remove_reader(fd)
        try:
            ok, value = self.connection.recv()
        except (EOFError, OSError) as exc:
            raise BrokenProcessPool("the validation worker died during the task") from exc
        if not ok:
            raise value
        result: T = value
        return result

    def stop(self, *, kill: bool) -> None:
        """Kill it (its task's state is unknown) or ask it to exit after its task."""
        with contextlib.suppress(OSError):
            if kill:
                self.process.kill()
            else:
                self.connection.send(None)
        self.connection.close()
        # reaped by a thread: a killed process may take a moment to go
        threading.Thread(target=self.process.join, daemon=True).start()


class _Pool:
    """``workers`` worker processes, each running one task at a time; a task that outlasts
    ``timeout`` (counted from when a worker takes it) or crashes its process has the process
    killed and replaced, the other workers' tasks go on. ``workers`` 0: one thread of this
    process (that thread cannot be killed: it is abandoned and a new one takes the next tasks).
    """

    def __init__(self, name: str, workers: int, timeout: float, initargs: tuple[Any, ...]) -> None:
        self.name = name
        self.workers = workers
        self.timeout = timeout
        self._initargs = initargs
        self._idle: list[_Worker] = []
        self._slots = asyncio.Semaphore(max(workers, 1))
        self._thread = self._new_thread() if workers <= 0 else None

    def _new_thread(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(1, thread_name_prefix=f"signature-{self.name}")

    async def run(self, func: Callable[..., T], *args: Any, timeout: float | None = -1.0) -> T:
        """``func(*args)`` in the pool within ``timeout`` (the pool's by default, None: no
        limit). TimeoutError: it did not finish (its worker was replaced); BrokenProcessPool:
        it crashed its worker twice."""
        limit = self.timeout if timeout == -1.0 else timeout
        task = (engine.traced, (current_trace_id(), func, *args))  # worker logs carry the trace
        for attempt in (1, 2):
            async with self._slots:
                if self._thread is not None:
                    done: T = await self._in_thread(self._thread, task, limit)
                    return done
                worker = self._idle.pop() if self._idle else _Worker(self._initargs)
                try:
                    async with asyncio.timeout(limit):
                        result: T = await worker.call(*task)
                except TimeoutError:
                    self._lost(worker, "validation_timed_out", kill=True)
                    raise
                except BrokenProcessPool:
                    self._lost(worker, "validation_worker_crashed", kill=True)
                    if attempt == 2:
                        raise
                    # run it again on a new worker to know whether it was the one that crashed
                    continue
                except asyncio.CancelledError:
                    worker.stop(kill=True)  # the caller gave up: the task's state is unknown
                    raise
                except BaseException:
                    self._idle.append(worker)  # the task raised: the worker is fine
                    raise
                self._idle.append(worker)
                return result
        raise BrokenProcessPool("unreachable")

    async def _in_thread(
        self,
        executor: ThreadPoolExecutor,
        task: tuple[Callable[..., Any], tuple[Any, ...]],
        limit: float | None,
    ) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(executor, task[0], *task[1]), limit)
        except TimeoutError:
            log.error("validation_timed_out", pool=self.name, workers=0, timeout=self.timeout)
            if executor is self._thread:  # abandon the busy thread to finish on its own
                self._thread = self._new_thread()
                executor.shutdown(wait=False, cancel_futures=True)
            raise

    def _lost(self, worker: _Worker, why: str, *, kill: bool) -> None:
        log.error(why, pool=self.name, workers=self.workers, timeout=self.timeout)
        worker.stop(kill=kill)

    async def warm(self) -> None:
        """Start every worker now (importing pyhanko takes a moment), with no time limit."""
        await asyncio.gather(
            *(self.run(engine.warm, 0.5, timeout=None) for _ in range(max(self.workers, 1)))
        )

    async def aclose(self) -> None:
        if self._thread is not None:
            # after the task in hand (no timeout: the thread's loop and sessions must close)
            await asyncio.get_running_loop().run_in_executor(self._thread, engine.shutdown_worker)
            self._thread.shutdown(wait=False, cancel_futures=True)
        while self._idle:
            self._idle.pop().stop(kill=False)


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
        inline_bytes: int = INLINE_BYTES,
    ) -> None:
        self.trust = trust
        self.revocation = revocation
        self.policy = policy
        self.workers = workers
        self.timeout = timeout
        self.person_prefixes = person_prefixes
        self.organisation_prefixes = organisation_prefixes
        self.spool = spool
        self.inline_bytes = inline_bytes
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
        await asyncio.gather(self._documents.warm(), self._prechecks.warm())

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
            size = sum(len(c) for _, c in files if isinstance(c, bytes))
            paths: list[tuple[str, str | bytes]]
            if size <= self.inline_bytes:  # a file and its removal cost more than the copy
                paths = [(name, c if isinstance(c, bytes) else str(c)) for name, c in files]
            # a pre-check's few kilobytes are written at once: a thread hop costs more
            elif size <= SPOOL_INLINE_BYTES:
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
) -> list[tuple[str, str | bytes]]:
    """(name, path) for each file; bytes are written to a new file under ``folder`` (the
    system's temporary folder when None), named at random: a file name is the sender's and
    may hold anything. Each path written is added to ``written`` at once, for the caller to
    remove even when a later write fails."""
    found: list[tuple[str, str | bytes]] = []
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
