"""document-service: accepts documents, keeps every unit's inbox, takes acknowledgements.

python -m document_service        (configuration: LIENTHONG_* variables, docs/configuration.md)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC

from aiokafka import ConsumerRecord

from document_service.attachments import AttachmentStore
from document_service.audit import AuditLog
from document_service.servicer import DocumentServicer
from document_service.store import DocumentStore
from document_service.watch import WatchHub
from lienthong.document.v1 import document_service_pb2
from lienthong.document.v1.document_service_pb2_grpc import add_DocumentServiceServicer_to_server
from lienthong.events.v1.events_pb2 import DeliveryBounced, DeliveryCreated, DocumentVerified
from lienthong_kit.envelope import EventEnvelope, carries, unpack
from lienthong_kit.kafka import ConsumerSpec, TopicTail
from lienthong_kit.outbox import OutboxRelay
from lienthong_kit.server import Deps, GrpcService, Wiring, run_service
from lienthong_kit.settings import KitSettings, setting

NAME = "document-service"


@dataclass(frozen=True, kw_only=True)
class Settings(KitSettings):
    attachment_max_bytes: int = setting(
        "LIENTHONG_ATTACHMENT_MAX_BYTES", 20 * 1024 * 1024, doc="largest attachment accepted"
    )


async def build(deps: Deps[Settings]) -> Wiring:
    max_bytes = deps.settings.attachment_max_bytes
    store = DocumentStore(deps.db, deps.topics, deps.producer)
    attachments = AttachmentStore(deps.db, max_bytes=max_bytes)
    audit = AuditLog(deps.db)
    relays = {
        "documents": OutboxRelay(store.documents, deps.producer, idle_seconds=0.5),
        "deliveries": store.transitions_relay,
        "paper": OutboxRelay(store.paper, deps.producer, idle_seconds=0.5),
    }
    await store.create_indexes()
    await attachments.create_indexes()
    await audit.create_indexes()
    for relay in relays.values():
        await relay.create_indexes()
    hub = WatchHub()

    async def on_delivery(envelope: EventEnvelope, _: ConsumerRecord[bytes, bytes]) -> None:
        if carries(envelope, DeliveryCreated):
            delivery = unpack(envelope, DeliveryCreated)
            await store.materialise(delivery, envelope.occurred_at.ToDatetime(UTC))
        elif carries(envelope, DeliveryBounced):
            await store.record_bounce(unpack(envelope, DeliveryBounced))

    async def on_verified(envelope: EventEnvelope, _: ConsumerRecord[bytes, bytes]) -> None:
        if carries(envelope, DocumentVerified):
            verified = unpack(envelope, DocumentVerified)
            await store.record_verification(verified, envelope.occurred_at.ToDatetime(UTC))

    tail = TopicTail(deps.settings, deps.topics.all_deliveries, hub.on_event)
    servicer = DocumentServicer(store, attachments, audit, hub, relays, deps.topics)
    return Wiring(
        services=[
            GrpcService.of(
                document_service_pb2,
                "DocumentService",
                add_DocumentServiceServicer_to_server,
                servicer,
            )
        ],
        consumers=[
            ConsumerSpec(NAME, deps.topics.all_deliveries, on_delivery),
            # the verdict is stored under the document's id: a redelivery inserts nothing
            ConsumerSpec(
                f"{NAME}-verifications", [deps.topics.verifications], on_verified, dedupe=False
            ),
            # the audit log's insert is keyed by event id: no separate applied-event markers
            ConsumerSpec(
                f"{NAME}-audit",
                [deps.topics.documents, *deps.topics.all_deliveries],
                audit.on_event,
                dedupe=False,
                before_commit=audit.flush,
                fetch_wait_ms=200,  # nobody waits on the audit log: fewer, larger polls
            ),
        ],
        tasks=[*(relay.run for relay in relays.values()), tail.run],
        on_stop=[relay.stop for relay in relays.values()],
        # a watcher connected before the tail has its offsets would miss live deliveries
        ready=tail.positioned.wait,
    )


def main() -> None:
    run_service(NAME, Settings, build)


if __name__ == "__main__":
    main()
