"""Hostile input and faults against document-service's real server, broker and store."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from lienthong.document.v1 import document_service_pb2 as pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub

SENDER = "000.00.00.H23"
RECIPIENTS = ["000.01.00.H23", "000.00.31.H23"]


def as_unit(code: str) -> tuple[tuple[str, str], ...]:
    return (("x-lienthong-unit", code),)


def request(**overrides: Any) -> pb.SubmitDocumentRequest:
    fields: dict[str, Any] = {
        "recipients": {"unit_codes": RECIPIENTS},
        "code": {"number": "15", "notation": "QĐ-UBND"},
        "document_type": "QĐ",
        "subject": "Về việc triển khai liên thông văn bản",
        "promulgation_date": "2026-11-20",
        **overrides,
    }
    return pb.SubmitDocumentRequest(**fields)


def violated_fields(error: grpc.aio.AioRpcError) -> list[str]:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    status = rpc_status.from_call(error)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    return [violation.field for violation in bad_request.field_violations]


async def test_oversized_fields_are_invalid_arguments_naming_them(
    stub: DocumentServiceStub,
) -> None:
    huge = "x" * 100_000
    calls: list[tuple[Any, Any, list[str]]] = [
        (
            stub.SubmitDocument,
            request(content_summary=huge, idempotency_key=huge, attachment_ids=["a"] * 20_000),
            ["idempotency_key", "content_summary", "attachment_ids"],
        ),
        (
            stub.RegisterPaperDocument,
            pb.RegisterPaperDocumentRequest(
                direction=pb.Direction.DIRECTION_INCOMING,
                counterpart=huge,
                subject="Về việc",
                code={"number": "1", "notation": "CV"},
            ),
            ["counterpart"],
        ),
        (
            stub.AcknowledgeDelivery,
            pb.AcknowledgeDeliveryRequest(
                delivery_id="d", status_code="03", description=huge, staff=huge
            ),
            ["description", "staff"],
        ),
        (
            stub.RecallDocument,
            pb.RecallDocumentRequest(
                document_id="d", business_type=pb.BusinessType.BUSINESS_TYPE_RECALL, reason=huge
            ),
            ["reason"],
        ),
        (stub.ListInbox, pb.ListInboxRequest(status_codes=["01"] * 1000), ["status_codes"]),
        (stub.GetDocument, pb.GetDocumentRequest(document_id=huge), ["document_id"]),
        (stub.TrackDocument, pb.TrackDocumentRequest(document_id=huge), ["document_id"]),
    ]
    for method, message, fields in calls:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await method(message, metadata=as_unit(SENDER))
        assert violated_fields(info.value) == fields, method
