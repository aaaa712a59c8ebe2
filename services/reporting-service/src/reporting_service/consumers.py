"""The faust-streaming application: lifecycle events in, exact adoption counts out.

One agent, ``count``, reads the documents, deliveries (both) and verifications topics,
decodes each envelope (an undecodable or incomplete record goes to the topic's dead-letter
twin) and turns it into facts (folding.py). Each fact goes into the ``facts`` table
(store.py), keyed by what it counts (the document, delivery or paper registration and the
count). A key already in the table is a duplicate (the same event delivered again, or
published twice) and counts nothing. The table is both the record of applied facts and the
source of the counts: one changelog record per fact, so a fact can never be marked applied
without being counted, or the reverse.

The counts themselves (:class:`Counts`, per unit and day/month/year) are in memory, added to
as facts arrive and rebuilt from the table after every recovery (a restart reads the changelog
back). Faust commits a source offset only after flushing its producer, and only up to what the
agent applied (faust_guards.py), so a SIGKILL at any point loses nothing and counts nothing
twice: what was not committed is processed again and found in the table. Faust's exactly_once
is not used. The worker holds every partition (one replica by design): the duplicate check
sees the whole table, and the report reads every unit.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
from reporting_service.folding import Counts, facts_for
from reporting_service.metrics import ADOPTION_FACTS, ADOPTION_FOLD_DELAY, publish_month
from reporting_service.report import Registry
from reporting_service.store import FactTable

__all__ = ["ReportingApp"]

log = get_logger(__name__)


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
        )
        self.guards = FaustGuards(self.app, bootstrap, skip=skip, kafka_ssl=kafka_ssl)
        self.source_topics = [topics.documents, *topics.all_deliveries, topics.verifications]
        self.sources = self.app.topic(*self.source_topics)
        self.facts = FactTable(self.app, self.group, partitions)
        self.facts.on_recover(self._rebuild)
        self.changelog = self.facts.changelog
        self.app.agent(self.sources, name="count")(self._count)

    # --- the agent ------------------------------------------------------------------------

    async def _count(self, stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            message = event.message
            with exit_if_raises(message.topic):
                if self.guards.skipped(message):
                    continue
                await self._count_one(message, event.value)
                await self.guards.applied(message, self._count_one)

    async def _count_one(self, message: Any, value: bytes, timestamp: float = 0.0) -> None:
        try:
            facts = facts_for(decode_envelope(value))
        except PoisonEvent as exc:
            await self._dead_letter(message, str(exc))
            return
        EVENTS_CONSUMED.labels(message.topic, "applied").inc()
        for fact in facts:
            if fact.key in self.facts:
                _DUPLICATE.inc()
                continue
            self.facts.add(fact)
            failpoint("reporting.after_table_write")
            self.counts.add(fact)
            _COUNTED.inc()
        at = timestamp or message.timestamp
        if at:
            ADOPTION_FOLD_DELAY.observe(max(0.0, time.time() - at))

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

    async def _rebuild(self) -> None:
        """After (re)covery the table holds every applied fact: recount from it."""
        self.guards.reset()
        self.counts.clear()
        for fact in self.facts.all():
            self.counts.add(fact)
        self.recoveries += 1
        self.ready.set()
        log.info("adoption_counts_rebuilt", facts=len(self.facts), recoveries=self.recoveries)

    # --- the registry (every replica reads the compacted units topic from the start) -------

    async def on_unit_event(self, envelope: EventEnvelope) -> None:
        if carries(envelope, UnitChanged):
            self.registry.apply(unpack(envelope, UnitChanged))

    # --- Prometheus ---------------------------------------------------------------------------

    def publish_gauges(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        """Set the adoption gauges for the current Vietnam month (per level and province)."""
        publish_month(self.registry, self.counts, vietnam_time(now()).strftime("%Y-%m"))

    async def gauges_loop(self, interval: float = 1.0) -> None:
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
