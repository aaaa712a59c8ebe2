"""The faust-streaming application: lifecycle events in, exact adoption counts out.

One agent, ``count``, reads the documents, deliveries (both) and verifications topics in
batches (``take_events``: up to 2,000 events, or what arrived within 100 ms), decodes each
envelope (an undecodable or incomplete record goes to the topic's dead-letter twin) and turns
it into facts (folding.py). A fact's key names what it counts (the document, delivery or paper
registration and the count); a key already applied is a duplicate (the same event delivered
again, or published twice) and counts nothing.

The new facts of a batch go into the ``facts`` table (store.py) as one entry per source
partition, in the changelog partition of the same number: one changelog record per partition
and batch, not per fact. The counts (:class:`Counts`, per unit and day/month/year) and the set
of applied keys are in memory; they grow by the worker's own entries and by every entry faust
reads back from the changelog (recovery, and standby replicas following the partitions another
worker owns), each key counted once. So every replica holds the whole province's counts and
can answer the report, and one that takes over a dead worker's partitions already has their
facts. Faust commits a source offset only after flushing its producer, and only up to what the
agent applied (faust_guards.py), so a SIGKILL at any point loses nothing and counts nothing
twice: what was not committed is processed again and its keys are found applied. Faust's
exactly_once is not used (docs/decisions/0603).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import faust

from lienthong.events.v1.events_pb2 import UnitChanged
from lienthong_kit.envelope import EventEnvelope, carries, decode_envelope, unpack
from lienthong_kit.errors import PoisonEvent
from lienthong_kit.failpoints import failpoint
from lienthong_kit.kafka import EventProducer, Topics, dead_letter_headers
from lienthong_kit.logs import get_logger
from lienthong_kit.metrics import EVENTS_CONSUMED
from lienthong_kit.vocabulary import vietnam_time
from reporting_service.faust_guards import FaustGuards, SkipHook, exit_if_raises
from reporting_service.folding import Counts, Fact, facts_for
from reporting_service.metrics import ADOPTION_FACTS, ADOPTION_FOLD_DELAY, publish_month
from reporting_service.report import Registry
from reporting_service.store import FactTable

__all__ = ["BATCH_EVENTS", "BATCH_WINDOW", "GAUGES_INTERVAL", "ReportingApp"]

log = get_logger(__name__)

BATCH_EVENTS = 2000
BATCH_WINDOW = 0.1  # seconds a partial batch waits: larger entries on a busy machine (0604)
# A dead worker's partitions move to a live one after this long without its heartbeats (the
# broker's group.min.session.timeout.ms is 6 s by default): docs/decisions/0603.
SESSION_TIMEOUT = 6.0
HEARTBEAT_INTERVAL = 1.0
# The month's gauges are recomputed over every unit when the counts changed: at most this often
# (scraped every 30 s; once a second cost ~2 % of a folding worker's CPU, docs/benchmarks.md)
GAUGES_INTERVAL = 5.0

#: One source record to fold: (the message or record, its value, its timestamp or 0.0).
Source = tuple[Any, bytes, float]


class ReportingApp:
    """Builds the faust app; ``producer`` is the kit's (used for dead-letter records);
    ``skip`` is a test's detour (faust_guards.skip_hook), None in production."""

    def __init__(
        self,
        *,
        topics: Topics,
        bootstrap: str,
        partitions: int,
        replication_factor: int,
        data_dir: Path,
        producer: EventProducer,
        skip: SkipHook | None = None,
        kafka_ssl: ssl.SSLContext | None = None,
    ) -> None:
        self.topics = topics
        self.group = topics.group("reporting-service")
        self.producer = producer
        self.counts = Counts()
        self.applied: set[str] = set()
        self.registry = Registry()
        self.ready = asyncio.Event()
        #: set once the units topic has been read to its end (the tail's ``caught_up``): before
        #: that a unit missing from the registry proves nothing
        self.registry_read = asyncio.Event()
        self.recoveries = 0
        self.app = faust.App(
            self.group,
            broker=";".join(f"kafka://{host}" for host in bootstrap.split(",")),
            store="memory://",
            datadir=str(data_dir),
            topic_partitions=partitions,
            topic_replication_factor=replication_factor,
            key_serializer="raw",
            value_serializer="raw",
            producer_acks=-1,
            # Batches changelog records (docs/benchmarks.md, reporting-service); durability is
            # what the commit waits for, not the linger.
            producer_linger=0.01,
            web_enabled=False,
            # TLS with the service's certificate when the kit's settings say SSL
            broker_credentials=kafka_ssl,
            broker_session_timeout=SESSION_TIMEOUT,
            broker_heartbeat_interval=HEARTBEAT_INTERVAL,
            # another replica follows each partition's changelog: it answers the whole report
            # and takes the partitions over with their facts already counted
            table_standby_replicas=1,
        )
        self.source_topics = [topics.documents, *topics.all_deliveries, topics.verifications]
        self.guards = FaustGuards(
            self.app, bootstrap, sources=self.source_topics, skip=skip, kafka_ssl=kafka_ssl
        )
        self.sources = self.app.topic(*self.source_topics)
        self.facts = FactTable(self.app, self.group, partitions, self._count_facts)
        self.facts.on_recover(self._recovered)
        self.changelog = self.facts.changelog
        self.app.agent(self.sources, name="count")(self._count)

    # --- the agent ------------------------------------------------------------------------

    async def _count(self, stream: faust.StreamT[Any]) -> None:
        # the agent's stream is a faust.Stream; StreamT does not declare take_events
        batches = cast("faust.Stream[Any]", stream).take_events(BATCH_EVENTS, BATCH_WINDOW)
        async for events in batches:
            with exit_if_raises(events[0].message.topic if events else ""):
                # the skip detour is a test's (a failpoint): no call per event without it
                taken = (
                    events
                    if not self.guards.detour
                    else [e for e in events if not self.guards.skipped(e.message)]
                )
                await self._fold([(e.message, e.value, 0.0) for e in taken])
                await self.guards.applied_all([e.message for e in taken], self._fold_one)

    async def _fold_one(self, message: Any, value: bytes, timestamp: float = 0.0) -> None:
        await self._fold([(message, value, timestamp)])

    async def _fold(self, sources: Sequence[Source]) -> None:
        """Fold source records: their new facts into the table, one entry per partition,
        then into the counts."""
        fresh: dict[str, Fact] = {}
        by_partition: dict[int, list[Fact]] = {}
        applied = self.applied
        consumed: Counter[str] = Counter()
        duplicates = 0
        now = time.time()
        observe = ADOPTION_FOLD_DELAY.observe
        for message, value, timestamp in sources:
            try:
                facts = facts_for(decode_envelope(value))
            except PoisonEvent as exc:
                await self._dead_letter(message, str(exc))
                continue
            consumed[message.topic] += 1
            for fact in facts:
                key = fact.key
                if key in applied or key in fresh:
                    duplicates += 1
                else:
                    fresh[key] = fact
                    by_partition.setdefault(message.partition, []).append(fact)
            at = timestamp or message.timestamp
            if at:
                observe(max(0.0, now - at))
        # metrics once per batch, not per event (docs/benchmarks.md, reporting-service)
        for topic, number in consumed.items():
            EVENTS_CONSUMED.labels(topic, "applied").inc(number)
        if duplicates:
            _DUPLICATE.inc(duplicates)
        if not fresh:
            return
        for partition, new in by_partition.items():
            self.facts.write(partition, new)
        failpoint("reporting.after_table_write")
        applied.update(fresh)
        self.counts.add_all(fresh.values())
        _COUNTED.inc(len(fresh))

    def _count_facts(self, facts: list[Fact]) -> None:
        """Facts read back from the changelog: counted unless applied already."""
        for fact in facts:
            if fact.key not in self.applied:
                self.applied.add(fact.key)
                self.counts.add(fact)

    async def _dead_letter(self, message: Any, reason: str) -> None:
        await self.producer.publish_raw(
            Topics.dlq(message.topic),
            key=message.key,
            value=message.value,
            headers=dead_letter_headers(
                reason,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                group=self.group,
            ),
        )
        EVENTS_CONSUMED.labels(message.topic, "dead_lettered").inc()
        log.warning("event_dead_lettered", topic=message.topic, reason=reason)

    async def _recovered(self) -> None:
        """After every (re)covery: the changelog has been read back into the counts (entry by
        entry, as faust read it); faust seeks every partition to its committed offset."""
        self.guards.reset()
        self.recoveries += 1
        self.ready.set()
        log.info("adoption_counts_rebuilt", facts=len(self.applied), recoveries=self.recoveries)

    # --- the registry (every replica reads the compacted units topic from the start) -------

    async def on_unit_event(self, envelope: EventEnvelope) -> None:
        if carries(envelope, UnitChanged):
            self.registry.apply(unpack(envelope, UnitChanged))

    # --- Prometheus ---------------------------------------------------------------------------

    def publish_gauges(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        """Set the adoption gauges for the current Vietnam month (per level and province)."""
        publish_month(self.registry, self.counts, vietnam_time(now()).strftime("%Y-%m"))

    async def gauges_loop(self, interval: float = GAUGES_INTERVAL) -> None:
        seen: tuple[int, int, str] | None = None
        while True:
            month = vietnam_time(datetime.now(UTC)).strftime("%Y-%m")
            current = (self.counts.version, len(self.registry), month)
            if current != seen and self.ready.is_set() and self.registry_read.is_set():
                self.publish_gauges()
                seen = current
            await asyncio.sleep(interval)


_COUNTED = ADOPTION_FACTS.labels("counted")
_DUPLICATE = ADOPTION_FACTS.labels("duplicate")
