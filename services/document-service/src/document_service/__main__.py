"""document-service: accepts documents, keeps every unit's inbox, takes acknowledgements.

python -m document_service        (configuration: LIENTHONG_* variables, docs/configuration.md)
"""

from __future__ import annotations

from document_service.access import ACCESS
from document_service.api import DocumentServicer
from document_service.attachments import AttachmentStore
from document_service.audit import AuditLog
from document_service.consumers import Consumers, inbox_hub
from document_service.settings import Settings
from document_service.store import DocumentStore
from lienthong.document.v1 import document_service_pb2
from lienthong.document.v1.document_service_pb2_grpc import add_DocumentServiceServicer_to_server
from lienthong_kit.kafka import TopicTail
from lienthong_kit.server import Deps, GrpcService, Wiring, run_service

__all__ = ["NAME", "Settings", "build", "main"]

NAME = "document-service"


async def build(deps: Deps[Settings]) -> Wiring:
    store = DocumentStore(
        deps.db,
        deps.topics,
        deps.producer,
        max_event_bytes=deps.settings.event_max_bytes,
        unconfirmed_seconds=deps.settings.outbox_unconfirmed_seconds,
    )
    attachments = AttachmentStore(
        deps.db,
        max_bytes=deps.settings.attachment_max_bytes,
        max_total_bytes=deps.settings.document_attachments_max_bytes,
        unreferenced_seconds=deps.settings.attachment_unreferenced_seconds,
    )
    audit = AuditLog(deps.db)
    await store.create_indexes()
    await attachments.create_indexes()
    await audit.create_indexes()
    hub = inbox_hub()
    consumers = Consumers(store, audit, hub)
    tail = TopicTail(deps.settings, deps.topics.all_deliveries, consumers.on_live_delivery)
    return Wiring(
        services=[
            GrpcService.of(
                document_service_pb2,
                "DocumentService",
                add_DocumentServiceServicer_to_server,
                DocumentServicer(store, attachments, audit, hub),
                access=ACCESS,
            )
        ],
        consumers=consumers.specs(deps.topics),
        tasks=[
            *(relay.run for relay in store.relays),
            tail.run,
            lambda: attachments.sweep(store.referenced_attachments),
        ],
        on_stop=[relay.stop for relay in store.relays],
        # a watcher connected before the tail has its offsets would miss live deliveries
        ready=tail.positioned.wait,
    )


def main() -> None:
    run_service(NAME, Settings, build)


if __name__ == "__main__":
    main()
