"""The attachment fetch over mutual TLS: signature-service presents its own client certificate
(LIENTHONG_SIGNATURE_CLIENT_CERT/KEY, CA LIENTHONG_SIGNATURE_DOCUMENT_SERVICE_CA) to a real
document-service that accepts only client certificates and no development header."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from document_service.__main__ import Settings as DocumentSettings
from document_service.__main__ import build as build_documents
from lienthong.common.v1.common_pb2 import AttachmentRef, Recipients
from lienthong.document.v1 import document_service_pb2 as doc_pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong_kit.errors import TransientEventError
from lienthong_kit.server import ServiceApp
from lienthong_testing.identities import IdentityCa
from lienthong_testing.settings import isolated_settings
from signature_service.attachments import AttachmentFetcher, document_channel
from signature_service.settings import Settings

DOMAIN = "lienthong.test"
SENDER = "000.00.00.H23"
CONTENT = b"%PDF-1.7 not really a PDF, only bytes to fetch\n" * 100


@dataclass
class Secured:
    ca: IdentityCa
    address: str
    document_id: str
    ref: AttachmentRef


def credentials(ca: IdentityCa, identity: str) -> grpc.ChannelCredentials:
    client = ca.client(identity)
    return grpc.ssl_channel_credentials(ca.ca_path.read_bytes(), client.key, client.cert)


@pytest.fixture
async def secured(start_service: Any, tmp_path: Path) -> Secured:
    ca = IdentityCa.create(tmp_path / "ca", trust_domain=DOMAIN)
    server = ca.server("document-service")
    documents: ServiceApp = await start_service(
        "document-service",
        build_documents,
        DocumentSettings,
        {
            "LIENTHONG_DEV_AUTH": "false",
            "LIENTHONG_TRUST_DOMAIN": DOMAIN,
            "LIENTHONG_TLS_CERT": str(server.cert_path),
            "LIENTHONG_TLS_KEY": str(server.key_path),
            "LIENTHONG_TLS_CLIENT_CA": str(ca.ca_path),
        },
    )
    address = f"127.0.0.1:{documents.grpc_port}"
    async with grpc.aio.secure_channel(address, credentials(ca, f"unit/{SENDER}")) as channel:
        stub = DocumentServiceStub(channel)

        async def parts() -> AsyncIterator[doc_pb.UploadAttachmentRequest]:
            yield doc_pb.UploadAttachmentRequest(
                header=doc_pb.AttachmentHeader(name="qd.pdf", mime_type="application/pdf")
            )
            yield doc_pb.UploadAttachmentRequest(chunk=CONTENT)

        ref = (await stub.UploadAttachment(parts(), timeout=10)).attachment
        submitted = await stub.SubmitDocument(
            doc_pb.SubmitDocumentRequest(
                idempotency_key="fetch-mtls-1",
                recipients=Recipients(unit_codes=["000.01.00.H23"]),
                code={"number": "7", "notation": "QĐ-UBND"},
                document_type="QĐ",
                subject="Quyết định phê duyệt kế hoạch",
                promulgation_date="2026-11-20",
                attachment_ids=[ref.attachment_id],
            ),
            timeout=10,
        )
    return Secured(ca, address, submitted.document.document_id, ref)


def fetch_settings(prefix: str, secured: Secured, identity: str) -> Settings:
    client = secured.ca.client(identity)
    return isolated_settings(
        Settings,
        prefix,
        {
            "LIENTHONG_SIGNATURE_DOCUMENT_SERVICE": secured.address,
            "LIENTHONG_SIGNATURE_DOCUMENT_SERVICE_CA": str(secured.ca.ca_path),
            "LIENTHONG_SIGNATURE_CLIENT_CERT": str(client.cert_path),
            "LIENTHONG_SIGNATURE_CLIENT_KEY": str(client.key_path),
        },
    )


async def test_signature_service_fetches_with_its_own_client_certificate(
    secured: Secured, prefix: str, tmp_path: Path
) -> None:
    settings = fetch_settings(prefix, secured, "service/signature-service")
    channel = document_channel(settings)
    try:
        fetcher = AttachmentFetcher(channel, timeout=10, max_bytes=1 << 20, dev_header=False)
        problem = await fetcher.fetch(secured.document_id, secured.ref, tmp_path / "fetched")
    finally:
        await channel.close(None)
    assert problem == ""
    assert (tmp_path / "fetched").read_bytes() == CONTENT
    assert secured.ref.sha256 == hashlib.sha256(CONTENT).hexdigest()


async def test_without_a_client_certificate_the_fetch_is_refused(
    secured: Secured, tmp_path: Path
) -> None:
    # the CA alone (what the broken prod overlay had): document-service ends the handshake
    anonymous = grpc.ssl_channel_credentials(secured.ca.ca_path.read_bytes())
    async with grpc.aio.secure_channel(secured.address, anonymous) as channel:
        fetcher = AttachmentFetcher(channel, timeout=1.0, max_bytes=1 << 20)
        with pytest.raises(TransientEventError, match="UNAVAILABLE"):
            await fetcher.fetch(secured.document_id, secured.ref, tmp_path / "fetched")
    # nor over plaintext with the development header naming signature-service
    async with grpc.aio.insecure_channel(secured.address) as channel:
        fetcher = AttachmentFetcher(channel, timeout=1.0, max_bytes=1 << 20)
        with pytest.raises(TransientEventError, match="UNAVAILABLE"):
            await fetcher.fetch(secured.document_id, secured.ref, tmp_path / "fetched")


async def test_another_identity_s_certificate_does_not_open_any_document(
    secured: Secured, prefix: str
) -> None:
    settings = fetch_settings(prefix, secured, "unit/000.03.12.H23")
    channel = document_channel(settings)
    try:
        stub = DocumentServiceStub(channel)
        call = stub.GetAttachment(
            doc_pb.GetAttachmentRequest(
                document_id=secured.document_id, attachment_id=secured.ref.attachment_id
            ),
            timeout=10,
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in call:
                pass
    finally:
        await channel.close(None)
    assert refused.value.code() in {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND}
