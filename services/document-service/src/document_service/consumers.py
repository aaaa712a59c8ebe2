"""document-service's event handlers: deliveries into inboxes, verdicts, the audit log, and the
live tail that feeds WatchInbox.

Every replica tails the deliveries topics from their end (outside any consumer group), so a
delivery reaches a watcher whichever replica it is connected to, whichever replica stored it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiokafka import ConsumerRecord

from document_service.audit import AuditLog
from document_service.store import Arrival, Delivery, DocumentStore, arrival
from lienthong.events.v1.events_pb2 import DeliveryBounced, DeliveryCreated, DocumentVerified
from lienthong_kit.envelope import EventEnvelope, carries, unpack
from lienthong_kit.errors import InvalidArgument, PoisonEvent
from lienthong_kit.fanout import FanOutHub
from lienthong_kit.kafka import ConsumerSpec, Staging, Topics
from lienthong_kit.requests import refuse_nul_characters

__all__ = ["WATCH_QUEUE_LIMIT", "Consumers", "inbox_hub"]

GROUP = "document-service"
# a watcher this far behind is ended; it reconnects with ``since`` and replays from the store
WATCH_QUEUE_LIMIT = 1000
# records written per insertMany by the staged consumers: a broadcast's 3,000 deliveries in
# 3 flushes rather than 15 (docs/benchmarks.md, "document-service")
POLL_RECORDS = 1000
# a stored verdict is one document of the store, which holds at most 16 MiB
MAX_VERDICT_BYTES = 15 * 1024 * 1024


def inbox_hub() -> FanOutHub[Delivery]:
    """New deliveries by recipient, to the WatchInbox streams of this replica."""
    return FanOutHub(
        queue_limit=WATCH_QUEUE_LIMIT,
        fell_behind="the watcher fell too far behind; reconnect with since",
        identity=lambda delivery: delivery.id,
    )


class Consumers:
    def __init__(self, store: DocumentStore, audit: AuditLog, hub: FanOutHub[Delivery]) -> None:
        self._store = store
        self._audit = audit
        self._hub = hub
        self._arrivals = Staging[Arrival]()  # staged by on_delivery, written by flush_arrivals
        self._verdicts = Staging[tuple[DocumentVerified, datetime]]()  # by on_verified

    def specs(self, topics: Topics, operator_actions: str) -> list[ConsumerSpec]:
        return [
            # a poll's arrivals are written together before its commit; the writes are keyed
            # by delivery id, so a redelivery inserts nothing: no applied-event markers
            ConsumerSpec(
                GROUP,
                topics.all_deliveries,
                self.on_delivery,
                dedupe=False,
                before_commit=self.flush_arrivals,
                max_records=POLL_RECORDS,
            ),
            # the verdicts are stored under their documents' ids, a poll's together before its
            # commit: a redelivery inserts nothing
            ConsumerSpec(
                f"{GROUP}-verifications",
                [topics.verifications],
                self.on_verified,
                dedupe=False,
                before_commit=self.flush_verdicts,
                max_records=POLL_RECORDS,
            ),
            # the audit log's insert is keyed by event id: no separate applied-event markers
            ConsumerSpec(
                f"{GROUP}-audit",
                # registry and trust-store changes: operator actions join the chains
                [topics.documents, *topics.all_deliveries, topics.units, operator_actions],
                self._audit.on_event,
                dedupe=False,
                before_commit=self._audit.flush,
                # nobody waits on the audit log: fewer, larger polls (docs/benchmarks.md)
                fetch_wait_ms=200,
                max_records=POLL_RECORDS,
            ),
        ]

    async def on_delivery(self, envelope: EventEnvelope, _: ConsumerRecord[bytes, bytes]) -> None:
        if carries(envelope, DeliveryCreated):
            delivery = unpack(envelope, DeliveryCreated)
            try:
                at = envelope.occurred_at.ToDatetime(UTC)
                # refused here, where the record is dead-lettered: in flush_arrivals (retried
                # until it succeeds) a delivery the store cannot hold would stop the inboxes
                refuse_nul_characters(delivery)
                self._arrivals.add(self._store.stage_arrival(delivery, at))
            except (InvalidArgument, ValueError, OverflowError) as exc:
                raise PoisonEvent(f"the delivery cannot be stored: {exc}") from exc
        elif carries(envelope, DeliveryBounced):
            bounce = unpack(envelope, DeliveryBounced)
            try:
                # the store refuses a NUL for good: retried, it only slowed the group down
                refuse_nul_characters(bounce)
            except InvalidArgument as exc:
                raise PoisonEvent(f"the bounce cannot be stored: {exc}") from exc
            await self._store.record_bounce(bounce)

    async def flush_arrivals(self) -> None:
        """Write the arrivals staged since the last commit (the consumer loop retries a
        failure, and commits only after this returned)."""
        with self._arrivals.taken() as arrivals:
            await self._store.materialise_many(arrivals)

    async def on_verified(self, envelope: EventEnvelope, _: ConsumerRecord[bytes, bytes]) -> None:
        if carries(envelope, DocumentVerified):
            verified = unpack(envelope, DocumentVerified)
            try:
                at = envelope.occurred_at.ToDatetime(UTC)
            except (ValueError, OverflowError) as exc:  # outside the calendar: no retry helps
                raise PoisonEvent(f"document.verified: occurred_at is out of range: {exc}") from exc
            # refused here, where the record is dead-lettered: in flush_verdicts (retried until
            # it succeeds) a verdict the store cannot hold would stop the verdicts for good
            if verified.ByteSize() > MAX_VERDICT_BYTES:
                raise PoisonEvent(
                    f"document.verified is {verified.ByteSize()} bytes; the store keeps at most"
                    f" {MAX_VERDICT_BYTES}"
                )
            self._verdicts.add((verified, at))

    async def flush_verdicts(self) -> None:
        """Write the verdicts staged since the last commit (retried by the consumer loop)."""
        with self._verdicts.taken() as verdicts:
            await self._store.record_verifications(verdicts)

    def watched(self, key: bytes | None) -> bool:
        """The deliveries tail decodes only records keyed by a watched recipient (both
        deliveries topics are keyed by the recipient's code)."""
        return key is not None and self._hub.watching(key.decode(errors="replace"))

    async def on_live_delivery(self, envelope: EventEnvelope) -> None:
        """The deliveries tail: push an arrival to its recipient's open watch streams."""
        if not carries(envelope, DeliveryCreated):
            return
        delivery = unpack(envelope, DeliveryCreated)
        if self._hub.watching(delivery.recipient_code):
            arrived = arrival(delivery, envelope.occurred_at.ToDatetime(UTC))
            self._hub.publish(delivery.recipient_code, arrived)
