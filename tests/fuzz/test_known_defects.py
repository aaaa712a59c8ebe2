"""Defects the fuzzers found, each pinned by the exact request: an id holding a NUL character
(text the store cannot hold) and a timestamp outside datetime's range were answered INTERNAL;
the kit now refuses NUL characters in every request (lienthong_kit.requests) and WatchInbox
checks `since`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from lienthong.document.v1 import document_service_pb2 as doc_pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.notification.v1 import notification_service_pb2 as note_pb
from lienthong.notification.v1.notification_service_pb2_grpc import NotificationServiceStub
from lienthong_local.platform import Platform
from lienthong_testing.callers import OBSERVER, as_unit

pytestmark = pytest.mark.e2e

SENDER = as_unit("000.00.00.H23")
NUL = "\x00"
CASES: dict[str, tuple[str, Callable[[grpc.Channel], Any]]] = {
    "GetDocument": (
        "document-service",
        lambda ch: DocumentServiceStub(ch).GetDocument(
            doc_pb.GetDocumentRequest(document_id=NUL), metadata=SENDER, timeout=30
        ),
    ),
    "GetAttachment": (
        "document-service",
        lambda ch: list(
            DocumentServiceStub(ch).GetAttachment(
                doc_pb.GetAttachmentRequest(document_id=NUL), metadata=SENDER, timeout=30
            )
        ),
    ),
    "AcknowledgeDelivery": (
        "document-service",
        lambda ch: DocumentServiceStub(ch).AcknowledgeDelivery(
            doc_pb.AcknowledgeDeliveryRequest(delivery_id=NUL, status_code="03"),
            metadata=SENDER,
            timeout=30,
        ),
    ),
    "ExportAudit": (
        "document-service",
        lambda ch: list(
            DocumentServiceStub(ch).ExportAudit(
                doc_pb.ExportAuditRequest(chain=NUL), metadata=OBSERVER, timeout=30
            )
        ),
    ),
    "ReserveNumber": (
        "document-service",
        lambda ch: DocumentServiceStub(ch).ReserveNumber(
            doc_pb.ReserveNumberRequest(series=NUL), metadata=SENDER, timeout=30
        ),
    ),
    "TrackDocument": (
        "document-service",
        lambda ch: DocumentServiceStub(ch).TrackDocument(
            doc_pb.TrackDocumentRequest(document_id=NUL), metadata=SENDER, timeout=30
        ),
    ),
    "WatchInbox nanos -1": (
        "document-service",
        lambda ch: list(
            DocumentServiceStub(ch).WatchInbox(
                doc_pb.WatchInboxRequest(since={"nanos": -1}), metadata=SENDER, timeout=5
            )
        ),
    ),
    "WatchInbox": (
        "document-service",
        lambda ch: list(
            DocumentServiceStub(ch).WatchInbox(
                doc_pb.WatchInboxRequest(since={"seconds": -(2**63)}),
                metadata=SENDER,
                timeout=5,
            )
        ),
    ),
    "GetContact": (
        "notification-service",
        lambda ch: NotificationServiceStub(ch).GetContact(
            note_pb.GetContactRequest(contact_id=NUL), metadata=SENDER, timeout=30
        ),
    ),
    "DeleteContact": (
        "notification-service",
        lambda ch: NotificationServiceStub(ch).DeleteContact(
            note_pb.DeleteContactRequest(contact_id=NUL), metadata=SENDER, timeout=30
        ),
    ),
    "DeleteGroup": (
        "notification-service",
        lambda ch: NotificationServiceStub(ch).DeleteGroup(
            note_pb.DeleteGroupRequest(code=NUL), metadata=SENDER, timeout=30
        ),
    ),
    "Unsubscribe": (
        "notification-service",
        lambda ch: NotificationServiceStub(ch).Unsubscribe(
            note_pb.UnsubscribeRequest(subscription_id=NUL), metadata=SENDER, timeout=30
        ),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_id_is_a_client_error(fuzz_platform: Platform, case: str) -> None:
    service, call = CASES[case]
    with grpc.insecure_channel(fuzz_platform.endpoint(service)) as channel:
        try:
            call(channel)
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details()
        else:
            code, details = grpc.StatusCode.OK, ""
    assert code not in {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}, f"{case}: {details}"
    assert code in {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}, (
        f"{case}: {code.name} {details}"
    )
