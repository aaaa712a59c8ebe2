"""GetAttachment by uploader_code: signature-service reads a unit's upload, not yet submitted,
to pre-check it for that unit (SignatureService.VerifyAttachments); nobody else can."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import grpc
import pytest

from lienthong.document.v1 import document_service_pb2 as pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong_testing.callers import as_service, as_unit

UPLOADER, OTHER = "000.00.00.H23", "000.01.00.H23"
SIGNATURE = as_service("signature-service")
PDF = b"%PDF-1.7\n" + b"kiem tra truoc " * 40_000 + b"\n%%EOF\n"  # several chunks


async def _upload(stub: DocumentServiceStub) -> str:
    async def parts() -> AsyncIterator[pb.UploadAttachmentRequest]:
        yield pb.UploadAttachmentRequest(
            header=pb.AttachmentHeader(name="qd-15.pdf", mime_type="application/pdf")
        )
        yield pb.UploadAttachmentRequest(chunk=PDF)

    reply = await stub.UploadAttachment(parts(), metadata=as_unit(UPLOADER))
    return reply.attachment.attachment_id


async def _read(
    stub: DocumentServiceStub, request: pb.GetAttachmentRequest, metadata: tuple[tuple[str, str]]
) -> list[pb.GetAttachmentResponse]:
    return [part async for part in stub.GetAttachment(request, metadata=metadata)]


async def test_signature_service_reads_a_units_upload_for_it(stub: DocumentServiceStub) -> None:
    attachment_id = await _upload(stub)

    parts = await _read(
        stub,
        pb.GetAttachmentRequest(attachment_id=attachment_id, uploader_code=UPLOADER),
        SIGNATURE,
    )

    assert parts[0].attachment.name == "qd-15.pdf"
    assert parts[0].attachment.sha256 == hashlib.sha256(PDF).hexdigest()
    assert b"".join(part.chunk for part in parts[1:]) == PDF


async def test_an_upload_is_read_only_for_the_unit_that_made_it(stub: DocumentServiceStub) -> None:
    attachment_id = await _upload(stub)

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _read(
            stub,
            pb.GetAttachmentRequest(attachment_id=attachment_id, uploader_code=OTHER),
            SIGNATURE,
        )

    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert f"{OTHER} uploaded no attachment" in (info.value.details() or "")


@pytest.mark.parametrize(
    ("request_fields", "metadata", "field"),
    [
        ({"uploader_code": UPLOADER}, as_unit(UPLOADER), "uploader_code"),
        ({"uploader_code": UPLOADER, "document_id": "d"}, SIGNATURE, "uploader_code"),
        ({}, SIGNATURE, "document_id"),
    ],
    ids=["a unit", "with a document id", "neither"],
)
async def test_uploader_code_is_for_signature_service_alone(
    stub: DocumentServiceStub,
    request_fields: dict[str, str],
    metadata: tuple[tuple[str, str]],
    field: str,
) -> None:
    attachment_id = await _upload(stub)
    request = pb.GetAttachmentRequest(attachment_id=attachment_id, **request_fields)

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _read(stub, request, metadata)

    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (info.value.details() or "").startswith(f"{field}:")
