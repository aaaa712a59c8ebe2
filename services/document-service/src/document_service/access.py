"""Who may call document-service's RPCs (docs/security.md shows this table as the matrix).

The rule admits a kind of caller; the handler then keeps a unit to what it may see: its own
inbox, the documents it sent or received."""

from __future__ import annotations

from lienthong.document.v1 import document_service_pb2
from lienthong_kit.authz import AccessTable, Role, either, operators, services, units_or_gateway

ACCESS = AccessTable.of(
    document_service_pb2,
    "DocumentService",
    {
        "UploadAttachment": units_or_gateway("owned by the uploading unit"),
        "SubmitDocument": units_or_gateway("sent as the calling unit"),
        "ReserveNumber": units_or_gateway("the calling unit's own series"),
        "RegisterPaperDocument": units_or_gateway("registered for the calling unit"),
        "GetDocument": units_or_gateway("the document's sender and recipients"),
        "GetAttachment": either(
            units_or_gateway("the document's sender and recipients"),
            services(
                "signature-service",
                scope="any document, to verify it; a unit's uploads, to pre-check them for it",
            ),
        ),
        "ListInbox": units_or_gateway("own inbox"),
        "WatchInbox": units_or_gateway("own inbox"),
        "AcknowledgeDelivery": units_or_gateway("deliveries to the calling unit"),
        "TrackDocument": units_or_gateway("documents the calling unit sent"),
        "RecallDocument": units_or_gateway("documents the calling unit sent"),
        "VerifyAudit": operators(Role.OBSERVER, scope="the whole audit log"),
        "ExportAudit": operators(Role.OBSERVER, scope="the whole audit log, to verify offline"),
        "ListParkedEvents": operators(Role.OBSERVER, scope="events the broker refused"),
        "CountPendingDeliveries": operators(
            Role.REGISTRY_ADMIN, Role.OBSERVER, scope="pending deliveries to any unit (counts)"
        ),
    },
)
