"""The faust-streaming application: lifecycle events in, per-unit per-day counts out.

Two agents, so that every count of a unit is written from one partition (a faust table's
changelog is partitioned like the stream that writes it):

1. ``route`` reads the documents and deliveries topics, decodes each envelope (an undecodable
   record goes to the topic's dead-letter twin) and sends one fold per (unit, day) to the
   internal folds topic, keyed by unit;
2. ``fold`` applies folds to the ``unit-days`` table, whose rows remember the event ids they
   counted: a redelivered event counts once, and a row and its applied ids change in one
   changelog write.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import faust

from lienthong_kit.envelope import decode_envelope
from lienthong_kit.errors import PoisonEvent
from lienthong_kit.kafka import EventProducer, Topics, dead_letter_headers
from lienthong_kit.logs import get_logger
from reporting_service.folding import Fold, apply_fold, folds_for

__all__ = ["ReportingApp"]

log = get_logger(__name__)


class FoldRecord(faust.Record, serializer="json"):
    event_id: str
    unit: str
    day: str
    metric: str


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
        self.group = topics.group("reporting-service")
        self.producer = producer
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
            web_enabled=False,
        )
        self.sources = self.app.topic(topics.documents, *topics.all_deliveries)
        self.folds = self.app.topic(
            f"{topics.prefix}lienthong.reporting.folds",
            key_type=str,
            value_type=FoldRecord,
            key_serializer="raw",
            partitions=partitions,
            internal=True,  # faust creates it, with the table's partition count
        )
        self.unit_days = self.app.Table(
            "unit-days", default=dict, key_type=str, value_type=dict, partitions=partitions
        )
        self.app.agent(self.sources, name="route")(self._route)
        self.app.agent(self.folds, name="fold")(self._fold)

    async def _route(self, stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            message = event.message
            try:
                envelope = decode_envelope(event.value)
                folds = folds_for(envelope)
            except PoisonEvent as exc:
                await self.producer.publish_raw(
                    Topics.dlq(message.topic),
                    key=message.key,
                    value=message.value,
                    headers=dead_letter_headers(
                        str(exc),
                        topic=message.topic,
                        partition=message.partition,
                        offset=message.offset,
                        group=self.group,
                    ),
                )
                log.warning("event_dead_lettered", topic=message.topic, reason=str(exc))
                continue
            for fold in folds:
                await self.folds.send(key=fold.unit, value=FoldRecord(**dataclasses.asdict(fold)))

    async def _fold(self, stream: faust.StreamT[FoldRecord]) -> None:
        async for record in stream:
            fold = Fold(record.event_id, record.unit, record.day, record.metric)
            key = f"{fold.unit}|{fold.day}"
            updated = apply_fold(self.unit_days[key], fold)
            if updated is not None:
                self.unit_days[key] = updated

    def count(self, unit: str, day: str, metric: str) -> int:
        row = self.unit_days.get(f"{unit}|{day}") or {}
        return int(row.get(metric, 0))
