"""document-service: accepts documents, keeps every unit's inbox, takes acknowledgements.

python -m document_service        (configuration: LIENTHONG_* variables, docs/configuration.md)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from document_service.access import ACCESS
from document_service.api import DocumentServicer
from document_service.attachments import AttachmentStore
from document_service.audit import AuditLog
from document_service.checkpoints import (
    Checkpointer,
    CheckpointSigner,
    SignedAudit,
    checkpoint_topic,
    operator_actions_topic,
)
from document_service.consumers import Consumers, inbox_hub
from document_service.settings import Settings
from document_service.store import DocumentStore
from lienthong.document.v1 import document_service_pb2
from lienthong.document.v1.document_service_pb2_grpc import add_DocumentServiceServicer_to_server
from lienthong_audit.verify import load_public_keys
from lienthong_kit.kafka import TopicTail, ensure_topics
from lienthong_kit.logs import get_logger
from lienthong_kit.server import Deps, GrpcService, Wiring, run_service

__all__ = ["NAME", "Settings", "build", "main"]

NAME = "document-service"
log = get_logger(__name__)
Hook = Callable[[], Awaitable[None]]


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
    signed_audit, audit_tasks, audit_stops = await _audit_signing(deps, audit)
    hub = inbox_hub()
    consumers = Consumers(store, audit, hub)
    tail = TopicTail(
        deps.settings,
        deps.topics.all_deliveries,
        consumers.on_live_delivery,
        wanted=consumers.watched,
    )
    hub.follows(tail.positioned)
    return Wiring(
        services=[
            GrpcService.of(
                document_service_pb2,
                "DocumentService",
                add_DocumentServiceServicer_to_server,
                DocumentServicer(store, attachments, signed_audit, hub),
                access=ACCESS,
            )
        ],
        consumers=consumers.specs(deps.topics, operator_actions_topic(deps.topics)),
        tasks=[
            *(relay.run for relay in store.relays),
            tail.run,
            lambda: attachments.sweep(store.referenced_attachments),
            *audit_tasks,
        ],
        on_stop=[*audit_stops, *(relay.stop for relay in store.relays)],
        # a watcher connected before the tail has its offsets would miss live deliveries
        ready=tail.positioned.wait,
    )


async def _audit_signing(
    deps: Deps[Settings], audit: AuditLog
) -> tuple[SignedAudit, list[Hook], list[Hook]]:
    """The checkpoint signer (when a key is configured) and the keys VerifyAudit accepts."""
    settings = deps.settings
    topic = checkpoint_topic(deps.topics)
    if settings.kafka_create_topics:
        # TODO(lead): into Topics.all(); both append-only (never compacted)
        await ensure_topics(settings, [topic, operator_actions_topic(deps.topics)])
    keys = load_public_keys(path.read_bytes() for path in settings.audit_public_keys)
    tasks: list[Hook] = []
    stops: list[Hook] = []
    if settings.audit_signing_key is None:
        log.warning(
            "AUDIT_CHECKPOINTS_UNSIGNED",
            setting="LIENTHONG_AUDIT_SIGNING_KEY",
            note="an insider who rewrites the store can rewrite the audit log; never in production",
        )
    else:
        signer = CheckpointSigner.from_file(settings.audit_signing_key)
        keys[signer.key_id] = signer.public_key
        checkpointer = Checkpointer(
            audit,
            signer,
            deps.producer,
            settings,
            topic,
            every_seconds=settings.audit_checkpoint_seconds,
            every_entries=settings.audit_checkpoint_entries,
        )
        tasks.append(checkpointer.run)
        stops.append(checkpointer.final)
    signed = SignedAudit(
        audit, settings, topic, keys, unsigned_grace_seconds=settings.audit_unsigned_grace_seconds
    )
    return signed, tasks, stops


def main() -> None:
    run_service(NAME, Settings, build)


if __name__ == "__main__":
    main()
