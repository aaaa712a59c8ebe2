"""Kafka for every service: topic names, the idempotent producer and the consumer loop.

    topics = Topics(settings.topic_prefix)
    producer = EventProducer(settings, client_id="document-service")
    await producer.publish(topics.documents, key=document_id, envelope=envelope)

    loop = ConsumerLoop(
        ConsumerSpec(group="routing-service", topics=[topics.verifications], handler=on_event),
        settings=settings, producer=producer, db=db,
    )

The loop's contract: an offset is committed only after the handler's effect is stored (or the
record is dead-lettered); an event id already applied by the group is skipped; a handler
failure is retried with exponential backoff and jitter up to ``consumer_max_attempts``, then
the record goes to the topic's dead-letter twin with the reason in its headers. A
``PoisonEvent`` goes there at once. An outage of Kafka or the store is not the event's fault:
it is retried until the dependency answers again, and never dead-letters an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CommitFailedError,
    KafkaConnectionError,
    KafkaTimeoutError,
    TopicAlreadyExistsError,
)
from aiokafka.partitioner import DefaultPartitioner
from pymongo.errors import DuplicateKeyError

from lienthong_kit.context import set_trace_id
from lienthong_kit.envelope import EventEnvelope, decode_envelope
from lienthong_kit.errors import PoisonEvent
from lienthong_kit.infra import INFRA_ERRORS
from lienthong_kit.logs import get_logger
from lienthong_kit.metrics import CONSUMER_LAG, EVENTS_CONSUMED, EVENTS_PRODUCED, HANDLER_ERRORS
from lienthong_kit.mongo import AsyncDatabase, Doc
from lienthong_kit.settings import KitSettings

__all__ = [
    "INFRA_ERRORS",
    "ConsumerLoop",
    "ConsumerSpec",
    "EventProducer",
    "Handler",
    "TopicTail",
    "Topics",
    "dead_letter_headers",
    "ensure_topics",
    "read_range",
]

log = get_logger(__name__)

_BATCH_BYTES = 512 * 1024

Handler = Callable[[EventEnvelope, ConsumerRecord[bytes, bytes]], Awaitable[None]]


def dead_letter_headers(
    reason: str, *, topic: str, partition: int, offset: int, group: str, event_id: str = ""
) -> list[tuple[str, bytes]]:
    """The headers of a dead-letter record: why, where it came from, who gave up on it."""
    headers = [
        ("lienthong-dlq-reason", reason.encode()),
        ("lienthong-source-topic", topic.encode()),
        ("lienthong-source-partition", str(partition).encode()),
        ("lienthong-source-offset", str(offset).encode()),
        ("lienthong-consumer-group", group.encode()),
        ("lienthong-dead-lettered-at", datetime.now(UTC).isoformat().encode()),
    ]
    if event_id:
        headers.append(("lienthong-event-id", event_id.encode()))
    return headers


class Topics:
    """The platform's topics (each with a ``.dlq`` twin), behind an optional prefix.

    ``deliveries_urgent`` carries the deliveries of urgent documents (khẩn, thượng khẩn, hỏa
    tốc) so they never queue behind routine ones; consumers of deliveries read both.
    ``units`` is the compacted registry topic, keyed by unit code.
    """

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.documents = f"{prefix}lienthong.documents"
        self.verifications = f"{prefix}lienthong.verifications"
        self.deliveries = f"{prefix}lienthong.deliveries"
        self.deliveries_urgent = f"{prefix}lienthong.deliveries.urgent"
        self.notifications = f"{prefix}lienthong.notifications"
        self.units = f"{prefix}lienthong.units"

    @property
    def all_deliveries(self) -> list[str]:
        return [self.deliveries, self.deliveries_urgent]

    @staticmethod
    def dlq(topic: str) -> str:
        return f"{topic}.dlq"

    def compacted(self) -> list[str]:
        return [self.units]

    def all(self) -> list[str]:
        main = [
            self.documents,
            self.verifications,
            self.deliveries,
            self.deliveries_urgent,
            self.notifications,
            self.units,
        ]
        return main + [self.dlq(topic) for topic in main]

    def group(self, name: str) -> str:
        return f"{self.prefix}{name}"


async def ensure_topics(
    settings: KitSettings, names: Sequence[str], *, compacted: Sequence[str] = ()
) -> None:
    """Create the missing topics (local and test runs; Strimzi owns them in production)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in names if name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another replica was first
                await admin.create_topics(
                    [
                        NewTopic(
                            name,
                            num_partitions=settings.kafka_partitions,
                            replication_factor=settings.kafka_replication_factor,
                            topic_configs=(
                                {"cleanup.policy": "compact"} if name in compacted else {}
                            ),
                        )
                        for name in missing
                    ]
                )
            log.info("topics_created", topics=missing)
    finally:
        await admin.close()


class EventProducer:
    """An idempotent producer (``enable_idempotence`` implies ``acks=all``)."""

    def __init__(self, settings: KitSettings, *, client_id: str) -> None:
        self._settings = settings
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._partitioner = DefaultPartitioner()

    async def start(self) -> None:
        """Connect (aiokafka binds its producer to the running loop, so it is made here)."""
        if self._producer is not None:
            return
        producer = AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            client_id=self._client_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=2,
            max_request_size=self._settings.max_message_bytes,
            max_batch_size=min(_BATCH_BYTES, self._settings.max_message_bytes),
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def publish(self, topic: str, *, key: str, envelope: EventEnvelope) -> None:
        """Send and wait for the broker's acknowledgement."""
        await self.publish_raw(topic, key=key.encode(), value=envelope.SerializeToString())

    async def publish_batch(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Send many (key, value) records to one topic as one batch per partition and wait
        until every one is acknowledged. A document fanned out to every commune is hundreds
        of records at once: appending them to per-partition batches costs about a third of
        one ``send()`` each (measured: 151 records, 9.7 ms against 3.2 ms). Keys go to the
        same partitions as with ``publish`` (the default murmur2 partitioner); order per
        partition is kept."""
        producer = self._producer
        if producer is None:
            raise KafkaConnectionError("the producer is not started")
        try:
            partitions = sorted(await producer.partitions_for(topic))
            open_batches: dict[int, Any] = {}
            sent: list[asyncio.Future[Any]] = []
            for key, value in records:
                partition = self._partitioner(key, partitions, partitions)
                batch = open_batches.get(partition)
                if batch is not None and batch.append(key=key, value=value, timestamp=None):
                    continue
                if batch is not None:  # full: send it and start the next one
                    sent.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"a record of {len(value)} bytes does not fit a batch")
                open_batches[partition] = batch
            for partition, batch in open_batches.items():
                sent.append(await producer.send_batch(batch, topic, partition=partition))
            await asyncio.gather(*sent)
        except Exception:
            EVENTS_PRODUCED.labels(topic, "error").inc(len(records))
            raise
        EVENTS_PRODUCED.labels(topic, "ok").inc(len(records))

    async def publish_many(self, records: Sequence[tuple[str, bytes | None, bytes | None]]) -> None:
        """Send (topic, key, value) records together and wait for every acknowledgement: one
        round trip for a batch instead of one per record (order per partition is kept)."""
        if self._producer is None:
            raise KafkaConnectionError("the producer is not started")
        futures = []
        try:
            for topic, key, value in records:
                futures.append(await self._producer.send(topic, value=value, key=key))
            await asyncio.gather(*futures)
        except Exception:
            for topic, _, _ in records:
                EVENTS_PRODUCED.labels(topic, "error").inc()
            raise
        for topic, _, _ in records:
            EVENTS_PRODUCED.labels(topic, "ok").inc()

    async def publish_raw(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        if self._producer is None:
            raise KafkaConnectionError("the producer is not started")
        try:
            await self._producer.send_and_wait(topic, value=value, key=key, headers=list(headers))
        except Exception:
            EVENTS_PRODUCED.labels(topic, "error").inc()
            raise
        EVENTS_PRODUCED.labels(topic, "ok").inc()


async def read_range(
    bootstrap: str, topic: str, partition: int, start: int, end: int, timeout: float = 30.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """The records at offsets ``start`` to ``end`` (exclusive) of one partition, read by a
    short-lived consumer outside any group (nothing is committed). Raises
    :class:`KafkaTimeoutError` if they are not all read within ``timeout`` seconds."""
    if end <= start:
        return []
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, start)
        found: list[ConsumerRecord[bytes, bytes]] = []
        deadline = asyncio.get_running_loop().time() + timeout
        # Done when the consumer has moved past the range, not when a record at end - 1 was
        # read: an offset may hold no record (a transaction marker), and waiting for one
        # would time out every time (a worker filling a hole would then never get past it).
        while await consumer.position(tp) < end:
            if asyncio.get_running_loop().time() > deadline:
                raise KafkaTimeoutError(
                    f"read {len(found)} of the records {start}..{end - 1} of {topic}[{partition}]"
                )
            batches = await consumer.getmany(tp, timeout_ms=500)
            found += [r for r in batches.get(tp, []) if start <= r.offset < end]
        return found
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class ConsumerSpec:
    """What a service consumes: a group (prefixed by the loop), topics and the handler.

    ``dedupe=False`` skips the applied-event markers (two store round trips per event) for a
    handler whose own write is already keyed by the event id, so a redelivery is a no-op.

    ``before_commit``, when given, is awaited before each offset commit: a handler may then
    only *stage* its effect per record and store the staged effects of a whole poll in one
    write there (the audit log does: one ``insertMany`` instead of one insert per event). The
    commit waits until it succeeded; it is retried, never skipped.

    ``concurrent_partitions=True`` applies the records of the partitions a poll returned
    side by side (each partition still in offset order, each committed when its records are
    applied) for a handler that is safe to run concurrently. It replaces running several
    members of one group in one process, whose joins at start-up were seen to leave one
    partition unread for the 300 s of ``max.poll.interval``.

    ``fetch_wait_ms``, for a consumer nobody waits on (the audit log), lets the broker hold a
    fetch until 64 KiB are there or that long has passed: fewer and larger polls, so fewer
    hook runs and offset commits per record (measured with the audit consumer at 200 ms:
    +8% SubmitDocument throughput, 4 of 4 alternating runs). 0, the default, answers at once.
    """

    group: str
    topics: Sequence[str]
    handler: Handler
    dedupe: bool = True
    before_commit: Callable[[], Awaitable[None]] | None = None
    concurrent_partitions: bool = False
    fetch_wait_ms: int = 0


METADATA_MAX_AGE_MS = 30_000


class ConsumerLoop:
    """Consume, apply, commit: see the module docstring for the guarantees."""

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

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            *self.spec.topics,
            bootstrap_servers=self._settings.kafka_bootstrap,
            group_id=self.group,
            client_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=200,
            # Seen in bench_submit: one of routing's three members sat on its assigned
            # partition for exactly the default 300 s (a topic created moments before the
            # group formed) and resumed at the next metadata refresh. Refresh every 30 s.
            metadata_max_age_ms=METADATA_MAX_AGE_MS,
            **(
                {"fetch_min_bytes": 64 * 1024, "fetch_max_wait_ms": self.spec.fetch_wait_ms}
                if self.spec.fetch_wait_ms
                else {}
            ),
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name=f"consumer:{self.group}")

    async def stop(self) -> None:
        """Finish the record in hand, commit what was applied, leave the group."""
        self._stopping.set()
        if self._task is not None:
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
            try:
                batches = await consumer.getmany(timeout_ms=200)
            except INFRA_ERRORS as exc:
                log.warning("consumer_poll_failed", group=self.group, error=repr(exc))
                await asyncio.sleep(1.0)
                continue
            if self.spec.concurrent_partitions and len(batches) > 1:
                await asyncio.gather(
                    *(self._apply(consumer, tp, records) for tp, records in batches.items())
                )
            else:
                for tp, records in batches.items():
                    await self._apply(consumer, tp, records)

    async def _apply(
        self,
        consumer: AIOKafkaConsumer,
        tp: TopicPartition,
        records: list[ConsumerRecord[bytes, bytes]],
    ) -> None:
        """Apply one partition's records in order, then commit past them."""
        done = None
        for record in records:
            if self._stopping.is_set():
                break
            await self._process(record)
            done = record.offset
        if done is not None:
            async with self._committing:  # one hook run and one commit at a time
                await self._before_commit()
                await self._commit(consumer, tp, done + 1)
            high = consumer.highwater(tp)
            if high is not None:
                CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(high - done - 1, 0))

    async def _before_commit(self) -> None:
        hook = self.spec.before_commit
        attempt = 0
        while hook is not None:
            attempt += 1
            try:
                await hook()
                return
            except Exception as exc:  # noqa: BLE001 - retried: the commit must follow the effect
                log.warning("before_commit_failed", group=self.group, error=repr(exc))
                await asyncio.sleep(min(5.0, self._backoff(min(attempt, 8))))

    async def _commit(self, consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> None:
        try:
            await consumer.commit({tp: offset})
        except CommitFailedError as exc:
            # The partition moved to another member during a rebalance; it re-reads from the
            # last commit and the applied-event check makes the replay harmless.
            log.warning("commit_failed", group=self.group, partition=str(tp), error=repr(exc))

    async def _process(self, record: ConsumerRecord[bytes, bytes]) -> None:
        topic = record.topic
        try:
            envelope = decode_envelope(record.value)
        except PoisonEvent as exc:
            HANDLER_ERRORS.labels(topic, "poison").inc()
            await self._dead_letter(record, str(exc))
            return
        set_trace_id(envelope.trace_id)
        if await self._already_applied(envelope.event_id):
            EVENTS_CONSUMED.labels(topic, "duplicate").inc()
            return
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.spec.handler(envelope, record)
                break
            except PoisonEvent as exc:
                HANDLER_ERRORS.labels(topic, "poison").inc()
                await self._dead_letter(record, str(exc), event_id=envelope.event_id)
                return
            except INFRA_ERRORS as exc:
                HANDLER_ERRORS.labels(topic, "infra").inc()
                log.warning("dependency_unavailable", group=self.group, error=repr(exc))
                await asyncio.sleep(min(5.0, self._backoff(attempt)))
                attempt = min(attempt, 1)  # an outage does not use up the event's attempts
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
        if self._applied is None:
            return False
        while True:
            try:
                found = await self._applied.find_one(
                    {"_id": f"{self.group}:{event_id}"}, {"_id": 1}
                )
                return found is not None
            except INFRA_ERRORS as exc:
                log.warning("dependency_unavailable", group=self.group, error=repr(exc))
                await asyncio.sleep(1.0)

    async def _mark_applied(self, event_id: str) -> None:
        if self._applied is None:
            return
        marker: dict[str, Any] = {
            "_id": f"{self.group}:{event_id}",
            "applied_at": datetime.now(UTC),
        }
        while True:
            try:
                await self._applied.insert_one(marker)
                return
            except DuplicateKeyError:
                return
            except INFRA_ERRORS as exc:
                log.warning("dependency_unavailable", group=self.group, error=repr(exc))
                await asyncio.sleep(1.0)

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
        while True:
            try:
                await self._producer.publish_raw(
                    Topics.dlq(record.topic), key=record.key, value=record.value, headers=headers
                )
                break
            except INFRA_ERRORS as exc:
                log.warning("dead_letter_publish_failed", group=self.group, error=repr(exc))
                await asyncio.sleep(1.0)
        EVENTS_CONSUMED.labels(record.topic, "dead_lettered").inc()
        log.warning(
            "event_dead_lettered",
            group=self.group,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            reason=reason,
        )


class TopicTail:
    """Every replica reads topics outside any group and hands each decoded envelope to
    ``on_event``: from the end, to push to clients connected to *this* replica (watch
    streams), or ``from_beginning``, to rebuild in-memory state from a compacted topic (the
    unit registry). Nothing is committed. A record that cannot be decoded or applied is
    logged and skipped, never fatal: the topic's group consumers dead-letter it, and state
    built this way is also re-read from the store by its owner.

    :attr:`positioned` is set once every partition has its starting offset: a record
    produced after that reaches ``on_event``. (From the end, one produced before it may
    not: a service that pushes to watchers reports ready only then.)
    """

    def __init__(
        self,
        settings: KitSettings,
        topics: Sequence[str],
        on_event: Callable[[EventEnvelope], Awaitable[None]],
        *,
        from_beginning: bool = False,
    ) -> None:
        self._settings = settings
        self._topics = list(topics)
        self._on_event = on_event
        self._from_beginning = from_beginning
        self.positioned = asyncio.Event()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            *self._topics,
            bootstrap_servers=self._settings.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if self._from_beginning else "latest",
            fetch_max_wait_ms=100,
            metadata_max_age_ms=METADATA_MAX_AGE_MS,
        )
        await consumer.start()
        try:
            await self._position(consumer)
            async for record in consumer:
                try:
                    await self._on_event(decode_envelope(record.value))
                except PoisonEvent as exc:
                    log.warning(
                        "tail_record_skipped",
                        topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                        reason=str(exc),
                    )
        finally:
            await consumer.stop()

    async def _position(self, consumer: AIOKafkaConsumer) -> None:
        """Wait for the subscription's partitions and resolve where each starts."""
        # the first metadata answer assigns them; aiokafka has no public wait for that
        waited = 0
        while not consumer.assignment():
            await asyncio.sleep(0.05)
            waited += 1
            if waited % 600 == 0:  # every 30 s: the service stays NOT_SERVING meanwhile
                log.warning("tail_waiting_for_partitions", topics=self._topics)
        for tp in consumer.assignment():
            await consumer.position(tp)
        self.positioned.set()
