"""VerifyAttachments' request checks (the fetch from document-service and the verdict are
exercised end to end by libs/cli/tests: `lienthong documents check` of a signed 6 MB PDF)."""

from __future__ import annotations

import grpc
import pytest

from lienthong.signature.v1 import signature_service_pb2 as pb
from lienthong.signature.v1.signature_service_pb2_grpc import SignatureServiceStub


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({}, "attachment_ids: at least one (the main document)"),
        ({"attachment_ids": ["a"] * 51}, "attachment_ids: at most 50 entries"),
        ({"attachment_ids": ["a", " "]}, "attachment_ids[1]: is required"),
        ({"attachment_ids": ["x" * 65]}, "attachment_ids[0]: at most 64 characters"),
        ({"attachment_ids": ["a", "b", "a"]}, "attachment_ids[2]: named twice"),
        ({"attachment_ids": ["a"], "direction": 7}, "direction: unknown value 7"),
        (
            {"attachment_ids": ["a"], "document_type": "Q" * 17},
            "document_type: at most 16 characters",
        ),
    ],
    ids=["none", "too many", "blank", "too long", "twice", "direction", "document type"],
)
async def test_a_bad_request_names_the_field(
    signature_stub: SignatureServiceStub, request_fields: dict[str, object], message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await signature_stub.VerifyAttachments(pb.VerifyAttachmentsRequest(**request_fields))  # type: ignore[arg-type]

    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == message
