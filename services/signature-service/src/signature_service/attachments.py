"""Attachment bytes from document-service: streamed to a file (never held whole), size and
SHA-256 checked against the event's AttachmentRef, retried while document-service cannot
answer.

    fetcher = AttachmentFetcher(document_channel(settings), timeout=30.0, max_bytes=20 << 20)
    problem = await fetcher.fetch(document_id, ref, path)   # "" (path written) or why not
    ref, data, problem = await fetcher.fetch_upload(unit, attachment_id)   # a pre-check
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import grpc
from grpc import aio

from lienthong.common.v1.common_pb2 import AttachmentRef
from lienthong.document.v1 import document_service_pb2 as doc_pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong_kit.authz import IDENTITY_HEADER
from lienthong_kit.errors import TransientEventError
from lienthong_kit.tracing import outgoing_metadata
from signature_service.settings import Settings

__all__ = ["IDENTITY", "AttachmentFetcher", "UploadMissingError", "document_channel"]

# the identity signature-service presents to document-service (the URI SAN of its client
# certificate; the dev header carries it on a plaintext channel)
IDENTITY = "service/signature-service"
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def document_channel(settings: Settings) -> aio.Channel:
    """The channel to document-service: mTLS with this service's own client certificate when
    LIENTHONG_SIGNATURE_DOCUMENT_SERVICE_CA is set, plaintext (development) otherwise."""
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
    ]
    target = settings.signature_document_service
    ca = settings.signature_document_service_ca
    if ca is None:
        return aio.insecure_channel(target, options=options)
    assert settings.signature_client_cert is not None  # noqa: S101 - settings.validate
    assert settings.signature_client_key is not None  # noqa: S101
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=settings.signature_client_key.read_bytes(),
        certificate_chain=settings.signature_client_cert.read_bytes(),
    )
    return aio.secure_channel(target, credentials, options=options)


class UploadMissingError(Exception):
    """document-service has no such upload by that unit (never uploaded, removed, another's)."""


class AttachmentFetcher:
    """Streams an attachment's bytes from document-service and checks them against the ref."""

    def __init__(
        self, channel: aio.Channel, *, timeout: float, max_bytes: int, dev_header: bool = True
    ) -> None:
        self._stub = DocumentServiceStub(channel)
        self._timeout = timeout
        self._max_bytes = max_bytes
        # over mTLS the certificate names the service: no header that could be mistaken for it
        self._identity = ((IDENTITY_HEADER, IDENTITY),) if dev_header else ()

    async def fetch(self, document_id: str, ref: AttachmentRef, path: Path) -> str:
        """Write the attachment to ``path``: "" when done, or why the document must be
        rejected; raises TransientEventError while document-service cannot answer."""
        if ref.size_bytes > self._max_bytes:
            return f"{ref.name}: {ref.size_bytes} bytes, more than the {self._max_bytes} verified"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        delay = 0.2
        while True:
            try:
                return await self._once(document_id, ref, path, max(deadline - loop.time(), 1.0))
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.NOT_FOUND:
                    return f"{ref.name}: document-service has no such attachment"
                if code in RETRYABLE and loop.time() + delay < deadline:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                raise TransientEventError(
                    f"fetching attachment {ref.attachment_id} of {document_id} from"
                    f" document-service: {code.name}: {exc.details()}"
                ) from exc

    async def _once(self, document_id: str, ref: AttachmentRef, path: Path, timeout: float) -> str:
        metadata = (*self._identity, *outgoing_metadata())
        digest = hashlib.sha256()
        size = 0
        call = self._stub.GetAttachment(
            doc_pb.GetAttachmentRequest(document_id=document_id, attachment_id=ref.attachment_id),
            metadata=metadata,
            timeout=timeout,
        )
        with path.open("wb") as out:  # a retry starts the file afresh
            async for message in call:
                if message.WhichOneof("part") != "chunk":
                    continue
                size += len(message.chunk)
                if size > self._max_bytes:
                    call.cancel()
                    return f"{ref.name}: more than the {self._max_bytes} bytes verified"
                digest.update(message.chunk)
                out.write(message.chunk)
        if size != ref.size_bytes or digest.hexdigest() != ref.sha256:
            return (
                f"{ref.name}: the bytes fetched ({size} bytes, SHA-256 {digest.hexdigest()})"
                f" do not match the submitted attachment ({ref.size_bytes} bytes, SHA-256"
                f" {ref.sha256})"
            )
        return ""

    async def fetch_upload(
        self, unit: str, attachment_id: str
    ) -> tuple[AttachmentRef, bytes | None, str]:
        """An attachment ``unit`` uploaded, submitted or not (VerifyAttachments' pre-check):
        (its ref, bytes, "") or (ref, None, why it cannot be verified). Raises
        UploadMissingError, or grpc.aio.AioRpcError when document-service cannot answer."""
        metadata = (*self._identity, *outgoing_metadata())
        call = self._stub.GetAttachment(
            doc_pb.GetAttachmentRequest(attachment_id=attachment_id, uploader_code=unit),
            metadata=metadata,
            timeout=self._timeout,
        )
        ref = AttachmentRef(attachment_id=attachment_id)
        digest = hashlib.sha256()
        parts: list[bytes] = []
        size = 0
        try:
            async for message in call:
                if message.WhichOneof("part") == "attachment":
                    ref = message.attachment
                    if ref.size_bytes > self._max_bytes:
                        call.cancel()
                        return ref, None, self._too_large(ref)
                    continue
                size += len(message.chunk)
                if size > self._max_bytes:
                    call.cancel()
                    return ref, None, self._too_large(ref)
                digest.update(message.chunk)
                parts.append(message.chunk)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise UploadMissingError(exc.details() or "") from exc
            raise
        if size != ref.size_bytes or digest.hexdigest() != ref.sha256:
            return (
                ref,
                None,
                (
                    f"{ref.name}: the bytes fetched ({size} bytes, SHA-256 {digest.hexdigest()})"
                    f" do not match the upload ({ref.size_bytes} bytes, SHA-256 {ref.sha256})"
                ),
            )
        return ref, b"".join(parts), ""

    def _too_large(self, ref: AttachmentRef) -> str:
        return f"{ref.name}: {ref.size_bytes} bytes, more than the {self._max_bytes} verified"
