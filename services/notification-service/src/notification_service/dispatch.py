"""The channel workers: send recorded jobs, retry with backoff, dead-letter after the attempts.

One worker per channel per replica, each with its own concurrency limit and token bucket, so
a slow SMS gateway never holds up e-mail, webhooks or the Kafka consumer (which only records
jobs). A job moves ``pending`` -> ``sent`` | ``dead``; FerretDB v1 applies no update
atomically with its filter, so who may attempt a job is decided by an insert under a unique
key: attempt ``n`` of job ``j`` is the document ``j#n`` in ``attempts``. Only the inserter of
``j#n`` sends and then writes the job's new state, so replicas never send the same attempt
twice. An attempt whose owner died (no outcome within the lease) counts as used, and the next
number is claimed.

Which jobs are due is kept in memory, per worker: a heap of (not before, urgency, job id) fed
by the jobs this replica records (``wake(job_ids)``: one read by id each) and by its own
retries (the new not-before it just wrote). Every ``sweep_seconds`` (default 60) the worker
re-reads every pending job of its channel, which picks up jobs left by a replica that stopped
and attempts whose owner died; between sweeps a quiet-hours backlog of held jobs costs no reads
(docs/decisions/0500-channel-workers-keep-due-times-in-memory.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from lienthong_kit.infra import report_failure
from lienthong_kit.logs import get_logger
from lienthong_kit.mongo import Doc
from notification_service.channels import CannotSend, Channel, SendFailed
from notification_service.metrics import (
    NOTIFICATION_DELIVERY,
    NOTIFICATIONS_FAILED,
    NOTIFICATIONS_RETRIED,
    NOTIFICATIONS_SENT,
)
from notification_service.store import JobStore
from notification_service.timing import Clock, TokenBucket, backoff

__all__ = ["ChannelWorker", "Dispatcher"]

log = get_logger(__name__)


class ChannelWorker:
    def __init__(
        self,
        channel: Channel,
        store: JobStore,
        *,
        clock: Clock,
        rate: float,
        concurrency: int,
        max_attempts: int,
        backoff_seconds: float,
        backoff_max_seconds: float,
        send_timeout_seconds: float,
        poll_seconds: float,
        sweep_seconds: float = 60.0,
    ) -> None:
        self.channel = channel
        self.name = channel.name
        self.store = store
        self._clock = clock
        self._bucket = TokenBucket(rate)
        self._slots = asyncio.Semaphore(concurrency)
        self._max_attempts = max_attempts
        self._backoff = (backoff_seconds, backoff_max_seconds)
        self._timeout = send_timeout_seconds
        self._lease = timedelta(seconds=send_timeout_seconds + 30)
        self._poll = poll_seconds
        self._sweep_every = sweep_seconds
        self._next_sweep = float("-inf")
        self._schedule: list[tuple[datetime, bool, str]] = []  # (not_before, not urgent, id)
        self._scheduled: set[str] = set()
        self._recorded: set[str] = set()  # told by wake(), not read yet
        self._owner = uuid.uuid4().hex
        self._in_flight: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()

    def wake(self, job_ids: Iterable[str] = ()) -> None:
        """Jobs were recorded for this channel: read them and send those that are due."""
        self._recorded.update(job_ids)
        self._wake.set()

    async def run(self) -> None:
        """Send due jobs (woken when new ones are recorded, sweeping the store now and then)
        until cancelled."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    if loop.time() >= self._next_sweep:
                        await self._sweep()
                        self._next_sweep = loop.time() + self._sweep_every
                    if self._recorded:
                        await self._read_recorded()
                    await self._dispatch_due()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - reported; the next round reads again
                    report_failure(exc, task=f"dispatch_{self.name}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll)
                self._wake.clear()
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _push(self, job_id: str, not_before: datetime, urgent: bool) -> None:
        if job_id not in self._scheduled and job_id not in self._in_flight:
            self._scheduled.add(job_id)
            heapq.heappush(self._schedule, (not_before, not urgent, job_id))

    async def _sweep(self) -> None:
        """Every pending job of the channel, from the store (the schedule starts again)."""
        pending = await self.store.pending(self.name)
        self._schedule.clear()
        self._scheduled.clear()
        for job in pending:
            self._push(job.id, job.not_before, job.urgent)

    async def _read_recorded(self) -> None:
        recorded, self._recorded = self._recorded, set()
        for job_id in recorded:
            job = await self.store.pending_job(job_id, self.name)
            if job is not None:
                self._push(job.id, job.not_before, job.urgent)

    async def _dispatch_due(self) -> None:
        now = self._clock.now()
        due: list[tuple[datetime, bool, str]] = []
        while self._schedule and self._schedule[0][0] <= now:
            entry = heapq.heappop(self._schedule)
            self._scheduled.discard(entry[2])
            due.append(entry)
        # urgent first, then oldest first
        due.sort(key=lambda entry: (entry[1], entry[0]))
        for _, _, job_id in due:
            if job_id in self._in_flight:
                continue
            await self._slots.acquire()
            self._in_flight.add(job_id)
            task = asyncio.create_task(self._attempt(job_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _attempt(self, job_id: str) -> None:
        retry: tuple[datetime, bool] | None = None
        try:
            job = await self.store.job(job_id)
            if job is None or job["state"] != "pending":
                return
            # the rate limit is waited for before the claim, so a claimed attempt is sent
            # at once and never outlives its lease in a queue
            await self._bucket.take()
            number = await self._claim(job)
            if number is None:
                return  # another replica has it; a sweep looks again if it stays pending
            retry_at = await self._send(job, number)
            if retry_at is not None:
                retry = (retry_at, bool(job.get("urgent", False)))
        except Exception as exc:  # noqa: BLE001 - reported; the job is looked at again
            report_failure(exc, task=f"dispatch_{self.name}", job=job_id)
            # still pending: look again shortly
            retry = (self._clock.now() + timedelta(seconds=self._poll), False)
        finally:
            self._in_flight.discard(job_id)
            self._slots.release()
        if retry is not None:
            self._push(job_id, *retry)

    async def _claim(self, job: Doc) -> int | None:
        """The attempt number this replica now owns, or None (someone else has the job)."""
        number = int(job["attempts"]) + 1
        while number <= self._max_attempts:
            if await self.store.claim(job["_id"], number, self._owner):
                return number
            taken = await self.store.attempt(job["_id"], number)
            if taken is None or taken["outcome"]:
                return None  # finished by another replica: the job row we read is stale
            if datetime.now(UTC) - taken["started_at"] < self._lease:
                return None  # in progress elsewhere
            number += 1  # its owner died mid-attempt: that attempt counts as used
        await self._dead(job, self._max_attempts, job.get("last_error") or "attempts lost")
        return None

    async def _send(self, job: Doc, number: int) -> datetime | None:
        """Send attempt ``number``; when it failed and may be retried, when."""
        job_id = job["_id"]
        try:
            async with asyncio.timeout(self._timeout):
                await self.channel.send(job)
        except CannotSend as exc:
            await self.store.finish_attempt(job_id, number, "failed", str(exc))
            await self._dead(job, number, str(exc))
            return None
        except (SendFailed, TimeoutError) as exc:
            reason = str(exc) or f"no answer within {self._timeout:g} s"
            await self.store.finish_attempt(job_id, number, "failed", reason)
            if number >= self._max_attempts:
                await self._dead(job, number, reason)
                return None
            delay = backoff(number, first=self._backoff[0], maximum=self._backoff[1])
            not_before = self._clock.now() + timedelta(seconds=delay)
            await self.store.retry_later(
                job_id, attempts=number, reason=reason, not_before=not_before
            )
            NOTIFICATIONS_RETRIED.labels(self.name).inc()
            log.warning(
                "notification_retry",
                channel=self.name,
                job=job["_id"],
                attempt=number,
                retry_in=round(delay, 3),
                reason=reason,
            )
            return not_before
        await self.store.finish_attempt(job_id, number, "sent", "")
        sent_at = datetime.now(UTC)
        await self.store.sent(job_id, attempts=number, sent_at=sent_at)
        NOTIFICATIONS_SENT.labels(self.name).inc()
        NOTIFICATION_DELIVERY.labels(self.name).observe(
            max((sent_at - job["recorded_at"]).total_seconds(), 0.0)
        )
        return None

    async def _dead(self, job: Doc, attempts: int, reason: str) -> None:
        await self.store.dead(job["_id"], attempts=attempts, reason=reason)
        NOTIFICATIONS_FAILED.labels(self.name).inc()
        log.warning(
            "notification_dead_lettered",
            channel=self.name,
            job=job["_id"],
            unit=job["unit_code"],
            attempts=attempts,
            reason=reason,
        )


class Dispatcher:
    """The workers of every channel; ``wake(channel, job_ids)`` after recording jobs."""

    def __init__(self, workers: list[ChannelWorker]) -> None:
        self.workers = {worker.name: worker for worker in workers}

    def wake(self, channel: str, job_ids: Iterable[str] = ()) -> None:
        worker = self.workers.get(channel)
        if worker is not None:
            worker.wake(job_ids)
