"""The faust-streaming application: lifecycle events in, exact adoption counts out.

One agent, ``count``, reads the documents, deliveries (both) and verifications topics in
batches (``take_events``: up to 2,000 events, or what arrived within 10 ms), decodes each
envelope (an undecodable or incomplete record goes to the topic's dead-letter twin) and turns
it into facts (folding.py). A fact's key names what it counts (the document, delivery or paper
registration and the count); a key already applied is a duplicate (the same event delivered
again, or published twice) and counts nothing.

The facts a batch adds are written to the ``facts`` table as one entry per source partition
(in the changelog partition of the same number, as faust's own table writes are), under a key
of its own: one changelog record per partition and batch instead of one per fact. The table is
both the record of applied fact keys and the source of the counts, so a fact can never be
marked applied without being counted, or the reverse.

The counts themselves (:class:`Counts`, per unit and day/month/year) and the set of applied
keys are in memory, added to as batches are folded and rebuilt from the table after every
recovery (a restart reads the changelog back). Faust commits a source offset only after
flushing its producer (the changelog records written while processing it), so a SIGKILL at any
point loses nothing and counts nothing twice: what was not committed is processed again and
its keys are found applied. Faust's exactly_once is not used. The worker holds every partition
(one replica by design): the duplicate check sees the whole table, and the report reads every
unit.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
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
from lienthong_kit.metrics import (
    ADOPTION_ACKNOWLEDGED,
    ADOPTION_DOCUMENTS,
    ADOPTION_FACTS,
    ADOPTION_FOLD_DELAY,
    ADOPTION_HANDLED,
    ADOPTION_PROVINCE_DOCUMENTS,
    ADOPTION_SIGNED,
    ADOPTION_UNITS,
    EVENTS_CONSUMED,
)
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
from reporting_service.report import LEVEL_NAMES, Registry, Tally, level_tallies, tally

__all__ = ["FACTS_TABLE", "ReportingApp"]

log = get_logger(__name__)

FACTS_TABLE = "facts"
BATCH_EVENTS = 2000
BATCH_WINDOW = 0.01  # seconds a partial batch waits for more events
FACTS_PER_ENTRY = 2000  # ~150 kB of JSON: well under a Kafka record's 1 MB


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
        self.producer = producer
        self.counts = Counts()
        self.applied: set[str] = set()
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

    async def _count(self, stream: faust.StreamT[Any]) -> None:
        # the agent's stream is a faust.Stream; StreamT does not declare take_events
        batches = cast("faust.Stream[Any]", stream).take_events(BATCH_EVENTS, BATCH_WINDOW)
        async for events in batches:
            try:
                await self._count_batch(events)
            except Exception:
                # faust acknowledges a batch when the agent leaves it, whether it was counted or
                # not (take_events' ``finally``), so it would be committed uncounted. Exit at
                # once instead, as a SIGKILL would: nothing is committed past the last flush,
                # and the restarted worker counts the batch.
                log.exception("count_failed_worker_exits", events=len(events))
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(70)

    async def _count_batch(self, events: Sequence[faust.EventT[Any]]) -> None:
        fresh: dict[str, tuple[Fact, int]] = {}  # key -> (fact, source partition)
        applied = self.applied
        now = time.time()
        for event in events:
            message = event.message
            try:
                facts = facts_for(decode_envelope(event.value))
            except PoisonEvent as exc:
                await self._dead_letter(message, str(exc))
                continue
            EVENTS_CONSUMED.labels(message.topic, "applied").inc()
            for fact in facts:
                if fact.key in applied or fact.key in fresh:
                    _DUPLICATE.inc()
                else:
                    fresh[fact.key] = (fact, message.partition)
            if message.timestamp:
                ADOPTION_FOLD_DELAY.observe(max(0.0, now - message.timestamp))
        if not fresh:
            return
        # One entry per source partition, in the changelog partition of the same number, as
        # faust's own table writes are (its recovery assigns changelog partitions with the
        # source partitions they belong to).
        by_partition: dict[int, list[Fact]] = {}
        for fact, partition in fresh.values():
            by_partition.setdefault(partition, []).append(fact)
        for partition, facts in by_partition.items():
            for start in range(0, len(facts), FACTS_PER_ENTRY):
                entry = [
                    [f.key, f.unit, f.day, f.count] for f in facts[start : start + FACTS_PER_ENTRY]
                ]
                key = uuid.uuid4().hex
                self.facts.send_changelog(partition, key, entry)
                self.facts.data[key] = entry
        failpoint("reporting.after_table_write")
        for fact, _ in fresh.values():
            applied.add(fact.key)
            self.counts.add(fact)
        _COUNTED.inc(len(fresh))

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
        self.counts.clear()
        self.applied.clear()
        for entry in self.facts.values():
            for key, unit, day, count in entry:
                if key not in self.applied:  # an entry written twice by a retried send
                    self.applied.add(key)
                    self.counts.add(Fact(key, unit, day, count))
        self.recoveries += 1
        self.ready.set()
        log.info(
            "adoption_counts_rebuilt",
            entries=len(self.facts),
            facts=len(self.applied),
            recoveries=self.recoveries,
        )

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
