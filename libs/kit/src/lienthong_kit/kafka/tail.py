"""Reading topics in every replica, outside any group (watch streams, in-memory state)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from lienthong_kit.envelope import EventEnvelope, decode_envelope
from lienthong_kit.errors import PoisonEvent
from lienthong_kit.kafka.consumer import (
    IDLE_FETCH_WAIT_MS,
    IDLE_POLL_MS,
    METADATA_MAX_AGE_MS,
    FetchPacing,
)
from lienthong_kit.kafka.security import kafka_security
from lienthong_kit.logs import get_logger
from lienthong_kit.settings import KitSettings
from lienthong_kit.tracing import SpanKind, context_from_headers, span

__all__ = ["STATE_FETCH_WAIT_MS", "WATCH_FETCH_WAIT_MS", "TopicTail"]

log = get_logger(__name__)

#: how long the broker may hold a watch tail's empty fetch (a record is answered at once)
WATCH_FETCH_WAIT_MS = 100
#: the same for a tail rebuilding state from a compacted topic (the unit registry)
STATE_FETCH_WAIT_MS = IDLE_FETCH_WAIT_MS


class TopicTail:
    """Every replica reads topics outside any group and hands each decoded envelope to
    ``on_event``: from the end, to push to clients connected to *this* replica (watch
    streams), or ``from_beginning``, to rebuild in-memory state from a compacted topic (the
    unit registry). Nothing is committed. A record that cannot be decoded or applied is
    logged and skipped, never fatal: the topic's group consumers dead-letter it, and state
    built this way is also re-read from the store by its owner. ``on_event`` runs in a span
    continuing the producer's trace.

    :attr:`positioned` is set once every partition has its starting offset: a record
    produced after that reaches ``on_event``. (From the end, one produced before it may
    not: a service that pushes to watchers reports ready only then.) ``wanted``, when given,
    is asked each record's key first, and a record it declines is skipped undecoded (a watch
    tail sees every delivery of the province, and decoding them all competed with the
    inbox writes on the same loop). :attr:`caught_up` is set
    once every record that was in the topics when the tail positioned itself has been read
    (state rebuilt from the beginning is complete: a service reports ready only then).

    ``fetch_wait_ms`` is how long the broker may hold an empty fetch while records come (a
    record arriving is answered at once, but a partition whose records were handed over late
    may wait for the fetch in flight on the others): watch streams keep a short one, state
    tails (``from_beginning``) a long one; idle for a while, every tail waits long
    (:class:`~lienthong_kit.kafka.consumer.FetchPacing`).
    """

    def __init__(
        self,
        settings: KitSettings,
        topics: Sequence[str],
        on_event: Callable[[EventEnvelope], Awaitable[None]],
        *,
        from_beginning: bool = False,
        wanted: Callable[[bytes | None], bool] | None = None,
        caught_up: asyncio.Event | None = None,
        fetch_wait_ms: int | None = None,
    ) -> None:
        self._settings = settings
        self._topics = list(topics)
        self._on_event = on_event
        self._from_beginning = from_beginning
        self._wanted = wanted
        if fetch_wait_ms is None:
            fetch_wait_ms = STATE_FETCH_WAIT_MS if from_beginning else WATCH_FETCH_WAIT_MS
        self._fetch_wait_ms = fetch_wait_ms
        self.positioned = asyncio.Event()
        # given by the owner of state fed by this tail, so the state knows before the tail exists
        self.caught_up = caught_up if caught_up is not None else asyncio.Event()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            *self._topics,
            bootstrap_servers=self._settings.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if self._from_beginning else "latest",
            fetch_max_wait_ms=self._fetch_wait_ms,
            metadata_max_age_ms=METADATA_MAX_AGE_MS,
            # aiokafka's fetcher polls its own state this often besides its events (default 200)
            consumer_timeout_ms=IDLE_POLL_MS,
            **kafka_security(self._settings),
        )
        await consumer.start()
        pacing = (
            FetchPacing(consumer, busy_ms=self._fetch_wait_ms)
            if self._fetch_wait_ms < IDLE_FETCH_WAIT_MS
            else None
        )
        try:
            await self._position(consumer)
            ends = await consumer.end_offsets(list(consumer.assignment()))
            while True:
                # a record returns getmany at once; the timeout only paces the caught-up check
                waiting = IDLE_POLL_MS if self.caught_up.is_set() else 100
                batch = await consumer.getmany(timeout_ms=waiting)
                if pacing is not None:
                    pacing.polled(records=bool(batch))
                wanted = self._wanted
                for records in batch.values():
                    for record in records:
                        if wanted is None or wanted(record.key):
                            await self._apply(record)
                # caught up: every record that was there at positioning has been handed to
                # on_event (positions past the ends, and nothing fetched is left unhandled;
                # a position, not the last record: a compacted topic may end in holes)
                if not (self.caught_up.is_set() or batch) and await self._past(consumer, ends):
                    self.caught_up.set()
        finally:
            await consumer.stop()

    @staticmethod
    async def _past(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
        return all([await consumer.position(tp) >= end for tp, end in ends.items()])

    async def _apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            envelope = decode_envelope(record.value)
            with span(
                f"{record.topic} process",
                context=context_from_headers(record.headers, envelope.trace_id),
                kind=SpanKind.CONSUMER,
            ):
                await self._on_event(envelope)
        except PoisonEvent as exc:
            log.warning(
                "tail_record_skipped",
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                reason=str(exc),
            )

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
