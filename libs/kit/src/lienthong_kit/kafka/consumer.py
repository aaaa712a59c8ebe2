"""The consumer loop: consume, apply, commit (the contract is in the package docstring).

Why hand-written rather than a framework's: docs/decisions/0101-outbox-and-consumer-loop.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError
from pymongo.errors import DuplicateKeyError

from lienthong_kit.envelope import EventEnvelope, decode_envelope
from lienthong_kit.errors import PoisonEvent
from lienthong_kit.infra import retry_while_down
from lienthong_kit.kafka.producer import EventProducer
from lienthong_kit.kafka.security import kafka_security
from lienthong_kit.kafka.topics import Topics, dead_letter_headers
from lienthong_kit.logs import get_logger
from lienthong_kit.metrics import CONSUMER_LAG, EVENTS_CONSUMED, HANDLER_ERRORS
from lienthong_kit.mongo import AsyncDatabase, Doc
from lienthong_kit.settings import KitSettings
from lienthong_kit.tracing import SpanKind, context_from_headers, span

__all__ = [
    "IDLE_POLL_MS",
    "METADATA_MAX_AGE_MS",
    "ConsumerLoop",
    "ConsumerSpec",
    "FetchPacing",
    "Handler",
    "Staging",
]

T = TypeVar("T")


class Staging(Generic[T]):
    """Effects staged by a handler and written together by its ``before_commit``::

        self._arrivals = Staging[Arrival]()          # the handler: self._arrivals.add(...)
        async def flush(self) -> None:               # ConsumerSpec(before_commit=flush)
            with self._arrivals.taken() as arrivals:
                await store.write_many(arrivals)

    A failed write puts its items back in front of what was staged since (the loop retries
    the hook and commits only after it returned): every write must be keyed by its cause,
    as a retry writes them again."""

    def __init__(self) -> None:
        self._items: list[T] = []

    def add(self, item: T) -> None:
        self._items.append(item)

    def extend(self, items: Iterable[T]) -> None:
        self._items.extend(items)

    def __len__(self) -> int:
        return len(self._items)

    @contextlib.contextmanager
    def taken(self) -> Iterator[list[T]]:
        """What was staged, handed over to the block; put back if the block raises."""
        items, self._items = self._items, []
        try:
            yield items
        except BaseException:
            self._items[:0] = items
            raise


log = get_logger(__name__)

Handler = Callable[[EventEnvelope, ConsumerRecord[bytes, bytes]], Awaitable[None]]

#: A member was seen sitting on a partition of a just-created topic until the next metadata
#: refresh (default 300 s): refresh every 30 s (docs/benchmarks.md, "Kit").
METADATA_MAX_AGE_MS = 30_000

#: How long an empty poll waits (a record ends it at once), and how often aiokafka's fetcher
#: re-checks its state besides its events (its default, 200 ms, woke every idle client 5 times
#: a second: docs/benchmarks.md, "Idle CPU").
IDLE_POLL_MS = 1_000

#: aiokafka's own fetch wait, kept while records come
AIOKAFKA_FETCH_WAIT_MS = 500

#: How long the broker may hold an empty fetch of a client that saw no record for
#: ``IDLE_AFTER_SECONDS`` (a record arriving is answered at once either way).
IDLE_FETCH_WAIT_MS = 1_000
IDLE_AFTER_SECONDS = 5.0


class FetchPacing:
    """Lets the broker hold an idle consumer's empty fetches longer.

    The wait bounds latency only while records are buffered (aiokafka leaves a partition
    whose records were not handed over yet out of the next fetch, which may then be held
    that long): ``busy_ms`` from the first record on, ``idle_ms`` once none came for
    ``idle_after`` seconds. An idle client's fetch cycles are most of what an idle service
    spends (docs/benchmarks.md, "Idle CPU"). Call :meth:`polled` after each poll.
    """

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        *,
        busy_ms: int,
        idle_ms: int = IDLE_FETCH_WAIT_MS,
        idle_after: float = IDLE_AFTER_SECONDS,
    ) -> None:
        # aiokafka reads the wait from its fetcher for each request and has no public setter
        fetcher = getattr(consumer, "_fetcher", None)
        self._fetcher = fetcher if hasattr(fetcher, "_fetch_max_wait_ms") else None
        if self._fetcher is None:
            log.warning("fetch_pacing_unavailable", reason="aiokafka's fetcher changed")
        self._busy = busy_ms
        self._idle = idle_ms
        self._idle_after = idle_after
        self._last_record = time.monotonic()

    @property
    def wait_ms(self) -> int | None:
        """The wait the next fetch asks for (None: pacing unavailable)."""
        return None if self._fetcher is None else int(self._fetcher._fetch_max_wait_ms)

    def polled(self, *, records: bool) -> None:
        if self._fetcher is None:
            return
        now = time.monotonic()
        if records:
            self._last_record = now
            self._fetcher._fetch_max_wait_ms = self._busy
        elif now - self._last_record >= self._idle_after:
            self._fetcher._fetch_max_wait_ms = self._idle


@dataclass(frozen=True)
class ConsumerSpec:
    """What a service consumes: a group (prefixed by the loop), topics and the handler.

    ``dedupe=False`` skips the applied-event markers (two store round trips per event) for a
    handler whose own write is already keyed by the event id, so a redelivery is a no-op.

    ``before_commit``, when given, is awaited before each offset commit (one per poll, or
    per partition of a poll with ``concurrent_partitions``): a handler may then only *stage*
    its effect per record and store the staged effects of a whole poll in one write there
    (the audit log and the inbox materialisation do: one ``insertMany`` instead of one insert
    per event). The commit waits until it succeeded; it is retried, never skipped. Such a
    handler needs ``dedupe=False`` and writes keyed by the event: an applied-event marker
    would be written before the staged effect.

    ``concurrent_partitions=True`` applies the records of the partitions a poll returned
    side by side (each partition still in offset order, each committed when its records are
    applied) for a handler that is safe to run concurrently; use it instead of several
    members of one group in one process (docs/benchmarks.md, "Kit").

    ``concurrent_keys=N`` (N > 1) applies the records of a poll with up to N keys in flight at
    once, each key's records in offset order, and commits each partition up to its first
    record not yet applied, after them: for a handler that waits on the store or a worker
    pool per record and is safe to run concurrently for different keys (signature-service:
    one sequential document at a time left the machine idle, docs/benchmarks.md, "April").

    ``accepts``, when given, says which events the handler acts on; the others are skipped
    before the applied-event check (no store round trip for an event the handler would
    ignore: signature-service reads only document.submitted from the documents topic).

    ``known_applied``, when given, says which events the handler is known to have applied
    without asking the store (signature-service: the verdicts this process announced); they are
    skipped and counted as duplicates, for a handler whose own record marks what it applied
    (``dedupe=False``).

    ``fetch_wait_ms``, for a consumer nobody waits on (the audit log), lets the broker hold a
    fetch until 64 KiB are there or that long has passed: fewer, larger polls, so fewer hook
    runs and offset commits per record. 0, the default, answers at once.

    ``max_records`` caps a poll, so a staged effect's batch: a handler whose effects are
    written per poll takes larger polls (one ``insertMany`` and one commit for more records).
    """

    group: str
    topics: Sequence[str]
    handler: Handler
    dedupe: bool = True
    before_commit: Callable[[], Awaitable[None]] | None = None
    concurrent_partitions: bool = False
    concurrent_keys: int = 1
    accepts: Callable[[EventEnvelope], bool] | None = None
    known_applied: Callable[[EventEnvelope], bool] | None = None
    fetch_wait_ms: int = 0
    max_records: int = 200


class _ForgetRevokedLag(ConsumerRebalanceListener):  # type: ignore[misc]
    """A partition moved to another member is not this member's lag any more."""

    def __init__(self, group: str) -> None:
        self._group = group

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        for tp in revoked:
            with contextlib.suppress(KeyError):  # revoked before any record was applied
                CONSUMER_LAG.remove(self._group, tp.topic, str(tp.partition))

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        pass


class ConsumerLoop:
    """Consume, apply, commit: see the package docstring for the guarantees."""

    def __init__(
        self,
        spec: ConsumerSpec,
        *,
        settings: KitSettings,
        producer: EventProducer,
        db: AsyncDatabase[Doc] | None,
        group_prefix: str = "",
    ) -> None:
        self.spec = spec
        self.group = f"{group_prefix}{spec.group}"
        self._settings = settings
        self._producer = producer
        self._applied = db["applied_events"] if db is not None and spec.dedupe else None
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._committing = asyncio.Lock()
        self._polling = False
        self._pacing: FetchPacing | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            group_id=self.group,
            client_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.spec.max_records,
            metadata_max_age_ms=METADATA_MAX_AGE_MS,
            consumer_timeout_ms=IDLE_POLL_MS,
            **kafka_security(self._settings),
            **(
                {"fetch_min_bytes": 64 * 1024, "fetch_max_wait_ms": self.spec.fetch_wait_ms}
                if self.spec.fetch_wait_ms
                else {}
            ),
        )
        # before start(), which then waits for the topics' metadata before joining the group
        self._consumer.subscribe(list(self.spec.topics), listener=_ForgetRevokedLag(self.group))
        await self._consumer.start()
        if not self.spec.fetch_wait_ms:  # a set wait batches on purpose: left alone
            self._pacing = FetchPacing(self._consumer, busy_ms=AIOKAFKA_FETCH_WAIT_MS)
        self._task = asyncio.create_task(self._run(), name=f"consumer:{self.group}")

    async def stop(self) -> None:
        """Finish the record in hand, commit what was applied, leave the group."""
        self._stopping.set()
        if self._task is not None:
            if self._polling:  # waiting for records, none in hand: no need to wait the poll out
                self._task.cancel()
            _, pending = await asyncio.wait({self._task}, timeout=30)
            for task in pending:
                task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("start() the loop first")
        while not self._stopping.is_set():
            self._polling = True
            try:
                batches = await retry_while_down(
                    lambda: consumer.getmany(timeout_ms=IDLE_POLL_MS),
                    event="consumer_poll_failed",
                    group=self.group,
                )
            finally:
                self._polling = False
            if self._pacing is not None:
                self._pacing.polled(records=bool(batches))
            if self.spec.concurrent_partitions and len(batches) > 1:
                await asyncio.gather(
                    *(self._apply(consumer, {tp: records}) for tp, records in batches.items())
                )
            else:
                # the whole poll, then one hook run and one commit: a staged effect is
                # written for every partition's records at once
                await self._apply(consumer, batches)

    async def _apply(
        self,
        consumer: AIOKafkaConsumer,
        batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
    ) -> None:
        """Apply each partition's records in offset order, then commit past them."""
        done: dict[TopicPartition, int] = {}
        if self.spec.concurrent_keys > 1:
            done = await self._apply_by_key(batches)
        else:
            for tp, records in batches.items():
                for record in records:
                    if self._stopping.is_set():
                        break
                    await self._process(record)
                    done[tp] = record.offset
        if not done:
            return
        async with self._committing:  # one hook run and one commit at a time
            await self._before_commit()
            await self._commit(consumer, {tp: offset + 1 for tp, offset in done.items()})
        for tp, offset in done.items():
            high = consumer.highwater(tp)
            if high is not None:
                CONSUMER_LAG.labels(self.group, tp.topic, str(tp.partition)).set(
                    max(high - offset - 1, 0)
                )

    async def _apply_by_key(
        self, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> dict[TopicPartition, int]:
        """Apply the poll's records with up to ``concurrent_keys`` keys in flight, each key's
        in offset order; return, per partition, the last offset of its applied prefix (a
        record after one left unapplied by a stop is applied again after the restart)."""
        slots = asyncio.Semaphore(self.spec.concurrent_keys)
        chains: dict[tuple[TopicPartition, bytes | None], list[ConsumerRecord[bytes, bytes]]] = {}
        for tp, records in batches.items():
            for record in records:
                chains.setdefault((tp, record.key), []).append(record)
        applied: set[tuple[TopicPartition, int]] = set()

        async def apply_chain(
            tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]
        ) -> None:
            async with slots:
                for record in records:
                    if self._stopping.is_set():
                        return
                    await self._process(record)
                    applied.add((tp, record.offset))

        await asyncio.gather(*(apply_chain(tp, records) for (tp, _), records in chains.items()))
        done: dict[TopicPartition, int] = {}
        for tp, records in batches.items():
            for record in records:
                if (tp, record.offset) not in applied:
                    break
                done[tp] = record.offset
        return done

    async def _before_commit(self) -> None:
        hook = self.spec.before_commit
        if hook is not None:
            # any failure is retried: the commit must follow the effect
            await retry_while_down(
                hook, event="before_commit_failed", errors=(Exception,), group=self.group
            )

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        try:
            await consumer.commit(offsets)
        except CommitFailedError as exc:
            # A partition moved to another member during a rebalance; it re-reads from the
            # last commit and the applied-event check makes the replay harmless.
            partitions = ", ".join(str(tp) for tp in offsets)
            log.warning("commit_failed", group=self.group, partitions=partitions, error=repr(exc))

    async def _process(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            envelope = decode_envelope(record.value)
        except PoisonEvent as exc:
            HANDLER_ERRORS.labels(record.topic, "poison").inc()
            with span(
                f"{record.topic} process",
                context=context_from_headers(record.headers),
                kind=SpanKind.CONSUMER,
            ):
                await self._dead_letter(record, str(exc))
            return
        with span(
            f"{record.topic} process",
            context=context_from_headers(record.headers, envelope.trace_id),
            kind=SpanKind.CONSUMER,
        ):
            await self._process_envelope(record, envelope)

    async def _process_envelope(
        self, record: ConsumerRecord[bytes, bytes], envelope: EventEnvelope
    ) -> None:
        topic = record.topic
        if self.spec.accepts is not None and not self.spec.accepts(envelope):
            EVENTS_CONSUMED.labels(topic, "skipped").inc()
            return
        known = self.spec.known_applied
        if (known is not None and known(envelope)) or await self._already_applied(
            envelope.event_id
        ):
            EVENTS_CONSUMED.labels(topic, "duplicate").inc()
            return
        attempt = 0
        while True:
            attempt += 1
            try:
                # an outage is retried inside, and does not use up the event's attempts
                await retry_while_down(
                    lambda: self.spec.handler(envelope, record),
                    event="dependency_unavailable",
                    on_retry=lambda _: HANDLER_ERRORS.labels(topic, "infra").inc(),
                    group=self.group,
                )
                break
            except PoisonEvent as exc:
                HANDLER_ERRORS.labels(topic, "poison").inc()
                await self._dead_letter(record, str(exc), event_id=envelope.event_id)
                return
            except Exception as exc:
                HANDLER_ERRORS.labels(topic, "transient").inc()
                if attempt >= self._settings.consumer_max_attempts:
                    reason = f"failed after {attempt} attempts: {type(exc).__name__}: {exc}"
                    log.exception(
                        "event_dead_lettered", group=self.group, event_id=envelope.event_id
                    )
                    await self._dead_letter(record, reason, event_id=envelope.event_id)
                    return
                log.warning(
                    "event_retry",
                    group=self.group,
                    event_id=envelope.event_id,
                    attempt=attempt,
                    error=repr(exc),
                )
                await asyncio.sleep(self._backoff(attempt))
        await self._mark_applied(envelope.event_id)
        EVENTS_CONSUMED.labels(topic, "applied").inc()

    def _backoff(self, attempt: int) -> float:
        base = self._settings.consumer_backoff_seconds * (2 ** (attempt - 1))
        return float(base * (0.5 + random.random()))  # noqa: S311 - jitter, not cryptography

    async def _already_applied(self, event_id: str) -> bool:
        applied = self._applied
        if applied is None:
            return False
        found = await retry_while_down(
            lambda: applied.find_one({"_id": f"{self.group}:{event_id}"}, {"_id": 1}),
            event="dependency_unavailable",
            group=self.group,
        )
        return found is not None

    async def _mark_applied(self, event_id: str) -> None:
        applied = self._applied
        if applied is None:
            return
        marker: dict[str, Any] = {
            "_id": f"{self.group}:{event_id}",
            "applied_at": datetime.now(UTC),
        }

        async def insert() -> None:
            with contextlib.suppress(DuplicateKeyError):  # marked by an earlier delivery
                await applied.insert_one(marker)

        await retry_while_down(insert, event="dependency_unavailable", group=self.group)

    async def _dead_letter(
        self, record: ConsumerRecord[bytes, bytes], reason: str, *, event_id: str = ""
    ) -> None:
        headers = dead_letter_headers(
            reason,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            group=self.group,
            event_id=event_id,
        )
        await retry_while_down(
            lambda: self._producer.publish_raw(
                Topics.dlq(record.topic),
                key=record.key,
                value=record.value,
                headers=headers,
            ),
            event="dead_letter_publish_failed",
            group=self.group,
        )
        EVENTS_CONSUMED.labels(record.topic, "dead_lettered").inc()
        log.warning(
            "event_dead_lettered",
            group=self.group,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            reason=reason,
        )
