"""The faust-streaming application: lifecycle events in, exact adoption counts out.

One agent, ``count``, reads the documents, deliveries (both) and verifications topics,
decodes each envelope (an undecodable or incomplete record goes to the topic's dead-letter
twin) and turns it into facts (folding.py). Each fact goes into the ``facts`` table, keyed by
what it counts (the document, delivery or paper registration and the count). A key already in
the table is a duplicate (the same event delivered again, or published twice) and counts
nothing. The table is both the record of applied facts and the source of the counts: one
changelog record per fact, so a fact can never be marked applied without being counted, or
the reverse.

The counts themselves (:class:`Counts`, per unit and day/month/year) are in memory, added to
as facts arrive and rebuilt from the table after every recovery (a restart reads the changelog
back). Faust commits a source offset only after flushing its producer (the changelog records
written while processing it; durability.py makes that flush wait for every record's
acknowledgement, which faust's own does not), so a SIGKILL at any point loses nothing and
counts nothing twice: what was not committed is processed again and found in the table.
Faust's exactly_once is not used. The worker holds every partition (one replica by design):
the duplicate check sees the whole table, and the report reads every unit.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust

from lienthong.events.v1.events_pb2 import UnitChanged
from lienthong_kit.envelope import EventEnvelope, carries, decode_envelope, unpack
from lienthong_kit.errors import PoisonEvent
from lienthong_kit.failpoints import failpoint, skip_once
from lienthong_kit.kafka import EventProducer, Topics, dead_letter_headers, read_range
from lienthong_kit.logs import get_logger
from lienthong_kit.metrics import EVENTS_CONSUMED
from reporting_service.durability import AppliedOffsets, make_durable
from reporting_service.folding import (
    ACK_SAME_DAY,
    ACKNOWLEDGED,
    HANDLED_AFTER,
    HANDLED_BEFORE,
    HANDLED_ON,
    INCOMING_NET,
    INCOMING_PAPER,
    OUTGOING_NET,
    OUTGOING_PAPER,
    SIGNED_ORGANISATION,
    SIGNED_PERSONAL,
    VN_TIME,
    Counts,
    Fact,
    facts_for,
)
from reporting_service.metrics import (
    ADOPTION_ACKNOWLEDGED,
    ADOPTION_DOCUMENTS,
    ADOPTION_FACTS,
    ADOPTION_FOLD_DELAY,
    ADOPTION_HANDLED,
    ADOPTION_PROVINCE_DOCUMENTS,
    ADOPTION_REREADS,
    ADOPTION_SIGNED,
    ADOPTION_UNITS,
)
from reporting_service.report import LEVEL_NAMES, Registry, Tally, level_tallies, tally

__all__ = ["FACTS_TABLE", "ReportingApp"]

log = get_logger(__name__)

FACTS_TABLE = "facts"


class ReportingApp:
    """Builds the faust app; ``producer`` is the kit's (used for dead-letter records)."""

    def __init__(
        self,
        *,
        topics: Topics,
        bootstrap: str,
        partitions: int,
        replication_factor: int,
        data_dir: Path,
        producer: EventProducer,
    ) -> None:
        self.topics = topics
        self.group = topics.group("reporting-service")
        self.bootstrap = bootstrap
        self.producer = producer
        self.counts = Counts()
        self.registry = Registry()
        self.ready = asyncio.Event()
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
            # Changelog records are batched: without a linger every table write is a produce
            # request of its own (measured: one socket send per fact). Counts are visible at
            # once; durability is what the commit waits for (it flushes the producer first).
            producer_linger=0.01,
            web_enabled=False,
        )
        self.changelog_deliveries = make_durable(self.app.producer.buffer)
        self.applied_offsets = AppliedOffsets()
        self._guard_commits(self.app.consumer)
        self.source_topics = [topics.documents, *topics.all_deliveries, topics.verifications]
        self.sources = self.app.topic(*self.source_topics)
        self.facts = self.app.Table(
            FACTS_TABLE,
            schema=faust.Schema(key_serializer="json", value_serializer="json"),
            partitions=partitions,
        )
        self.facts.on_recover(self._rebuild)
        self.changelog = f"{self.group}-{FACTS_TABLE}-changelog"
        self.app.agent(self.sources, name="count")(self._count)

    # --- the agents -----------------------------------------------------------------------

    def _guard_commits(self, consumer: Any) -> None:
        """faust's consumer commits through ``_commit``: only what the agent applied."""
        commit = consumer._commit  # the one place faust's commits pass

        async def guarded(offsets: Any) -> bool:
            allowed = self.applied_offsets.clamp(offsets)
            if not allowed:
                return False
            return bool(await commit(allowed))

        consumer._commit = guarded

    async def _count(self, stream: faust.StreamT[Any]) -> None:
        consumer: Any = self.app.consumer
        async for event in stream.events():
            try:
                message = event.message
                if message.offset == 5 and skip_once("reporting.skip_offset_5"):
                    continue  # tests only: as faust did in CI, the next record comes instead
                await self._count_one(message, event.value)
                committed = consumer._committed_offset.get(message.tp)
                hole = self.applied_offsets.applied(message.tp, message.offset, committed)
                if hole is not None:
                    await self._fill_hole(message, hole)
            except Exception:
                # faust acknowledges the event of an agent that raises, and a stopping agent's
                # current event too (its stream iterator's ``finally``), so either would be
                # committed uncounted. Exit at once instead, as a SIGKILL would: nothing is
                # committed past the last flush, and the restarted worker counts the event.
                log.exception("count_failed_worker_exits", topic=event.message.topic)
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(70)

    async def _fill_hole(self, message: Any, hole: int) -> None:
        """faust delivered ``message`` after skipping the records from ``hole``: read those
        directly and apply them (within this event, so their facts go to its changelog
        partition, which is theirs too), then let the partition be committed past them."""
        log.warning(
            "faust_skipped_offsets_reading_them",
            topic=message.topic,
            partition=message.partition,
            from_offset=hole,
            got=message.offset,
        )
        skipped = await read_range(
            self.bootstrap, message.topic, message.partition, hole, message.offset
        )
        for record in skipped:
            await self._count_one(record, record.value, timestamp=record.timestamp / 1000)
        ADOPTION_REREADS.labels(message.topic).inc(len(skipped))
        self.applied_offsets.filled(message.tp, message.offset)

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
            self.facts[fact.key] = {"u": fact.unit, "d": fact.day, "c": fact.count}
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
        self.applied_offsets.reset()  # faust seeks every partition to its committed offset
        self.counts.clear()
        for key, value in self.facts.items():
            self.counts.add(Fact(key, value["u"], value["d"], value["c"]))
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
        month = now().astimezone(VN_TIME).strftime("%Y-%m")
        levels = level_tallies(self.registry, self.counts, month)
        for level, of in levels.items():
            _publish_level(LEVEL_NAMES[level], of)
        whole = tally(_all_units(self, month), self.counts, month)
        for direction, channel, count in _DOCUMENT_SERIES:
            ADOPTION_PROVINCE_DOCUMENTS.labels(direction, channel).set(whole.counts[count])

    async def gauges_loop(self, interval: float = 1.0) -> None:
        seen: tuple[int, int, str] | None = None
        while True:
            month = datetime.now(VN_TIME).strftime("%Y-%m")
            current = (self.counts.version, len(self.registry), month)
            if current != seen and self.ready.is_set():
                self.publish_gauges()
                seen = current
            await asyncio.sleep(interval)


_COUNTED = ADOPTION_FACTS.labels("counted")
_DUPLICATE = ADOPTION_FACTS.labels("duplicate")
_DOCUMENT_SERIES = (
    ("incoming", "network", INCOMING_NET),
    ("incoming", "paper", INCOMING_PAPER),
    ("outgoing", "network", OUTGOING_NET),
    ("outgoing", "paper", OUTGOING_PAPER),
)


def _all_units(reporting: ReportingApp, period: str) -> set[str]:
    return reporting.registry.active() | reporting.counts.units_in(period)


def _publish_level(level: str, of: Tally) -> None:
    c = of.counts
    for direction, channel, count in _DOCUMENT_SERIES:
        ADOPTION_DOCUMENTS.labels(level, direction, channel).set(c[count])
    ADOPTION_SIGNED.labels(level, "personal").set(c[SIGNED_PERSONAL])
    ADOPTION_SIGNED.labels(level, "organisation").set(c[SIGNED_ORGANISATION])
    ADOPTION_UNITS.labels(level, "registered").set(of.units)
    ADOPTION_UNITS.labels(level, "connected").set(of.connected)
    ADOPTION_UNITS.labels(level, "only_receiving").set(of.only_receiving)
    ADOPTION_ACKNOWLEDGED.labels(level, "same_day").set(c[ACK_SAME_DAY])
    ADOPTION_ACKNOWLEDGED.labels(level, "later").set(c[ACKNOWLEDGED] - c[ACK_SAME_DAY])
    ADOPTION_HANDLED.labels(level, "before").set(c[HANDLED_BEFORE])
    ADOPTION_HANDLED.labels(level, "on").set(c[HANDLED_ON])
    ADOPTION_HANDLED.labels(level, "after").set(c[HANDLED_AFTER])
