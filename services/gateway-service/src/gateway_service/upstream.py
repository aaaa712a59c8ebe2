"""The gateway's calls to document-service and routing-service: as itself, for a unit.

Every call carries the gateway's own identity (its client certificate with TLS on, the
``x-lienthong-identity`` header in development) and ``x-lienthong-on-behalf-of: unit/<code>``;
the called service lets it act for the unit only where its access table names the gateway as a
delegate (lienthong_kit.authz). Until every service reads those headers, development calls
also carry ``x-lienthong-unit: <code>``, which today's interceptor takes as the caller.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path

import grpc
from grpc import aio

from gateway_service.settings import Settings
from lienthong.common.v1 import common_pb2
from lienthong.document.v1 import document_service_pb2 as doc_pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.routing.v1 import routing_service_pb2 as routing_pb
from lienthong.routing.v1.routing_service_pb2_grpc import RoutingServiceStub
from lienthong_kit.authz import IDENTITY_HEADER, ON_BEHALF_HEADER

__all__ = ["GATEWAY", "Upstream", "call_metadata", "file_chunks"]

GATEWAY = "gateway-service"
LEGACY_UNIT_HEADER = "x-lienthong-unit"
CHUNK = 256 * 1024


def file_chunks(path: Path | None, data: bytes | None) -> Iterator[bytes]:
    """An attachment spooled to ``path`` (large) or held as ``data`` (small), in pieces."""
    if path is not None:
        with path.open("rb") as source:
            while chunk := source.read(CHUNK):
                yield chunk
    elif data:
        for start in range(0, len(data), CHUNK):
            yield data[start : start + CHUNK]


def call_metadata(unit_code: str, *, dev: bool) -> tuple[tuple[str, str], ...]:
    """The metadata of a call made for ``unit_code`` (the header names live only here)."""
    metadata = [(ON_BEHALF_HEADER, f"unit/{unit_code}")]
    if dev:
        metadata += [(IDENTITY_HEADER, f"service/{GATEWAY}"), (LEGACY_UNIT_HEADER, unit_code)]
    return tuple(metadata)


class Upstream:
    """Channels to document-service and routing-service, opened once per process."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._dev = settings.gateway_upstream_ca is None
        self._timeout = settings.gateway_call_timeout_seconds
        self._document = self._channel(settings.gateway_document_service)
        self._routing = self._channel(settings.gateway_routing_service)
        self.documents = DocumentServiceStub(self._document)
        self.routing = RoutingServiceStub(self._routing)

    def _channel(self, target: str) -> aio.Channel:
        settings = self._settings
        options = [
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
        ]
        if settings.gateway_upstream_ca is None:
            return aio.insecure_channel(target, options=options)
        assert settings.gateway_client_cert is not None  # noqa: S101 - settings.validate
        assert settings.gateway_client_key is not None  # noqa: S101
        credentials = grpc.ssl_channel_credentials(
            root_certificates=settings.gateway_upstream_ca.read_bytes(),
            private_key=settings.gateway_client_key.read_bytes(),
            certificate_chain=settings.gateway_client_cert.read_bytes(),
        )
        return aio.secure_channel(target, credentials, options=options)

    async def close(self) -> None:
        await self._document.close(None)
        await self._routing.close(None)

    def metadata(self, unit_code: str) -> tuple[tuple[str, str], ...]:
        return call_metadata(unit_code, dev=self._dev)

    async def unit(self, code: str) -> routing_pb.Unit | None:
        """The registry's unit ``code`` (either form), read as the gateway itself; None if
        the registry has none."""
        metadata = ((IDENTITY_HEADER, f"service/{GATEWAY}"),) if self._dev else ()
        try:
            reply: routing_pb.GetUnitResponse = await self.routing.GetUnit(
                routing_pb.GetUnitRequest(code=code), metadata=metadata, timeout=self._timeout
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return reply.unit

    async def upload(
        self, unit_code: str, name: str, mime_type: str, chunks: Iterable[bytes]
    ) -> common_pb2.AttachmentRef:
        async def requests() -> AsyncIterator[doc_pb.UploadAttachmentRequest]:
            yield doc_pb.UploadAttachmentRequest(
                header=doc_pb.AttachmentHeader(name=name, mime_type=mime_type)
            )
            for chunk in chunks:
                yield doc_pb.UploadAttachmentRequest(chunk=chunk)

        reply: doc_pb.UploadAttachmentResponse = await self.documents.UploadAttachment(
            requests(), metadata=self.metadata(unit_code), timeout=self._timeout
        )
        return reply.attachment

    async def submit(
        self, unit_code: str, request: doc_pb.SubmitDocumentRequest
    ) -> doc_pb.SubmitDocumentResponse:
        reply: doc_pb.SubmitDocumentResponse = await self.documents.SubmitDocument(
            request, metadata=self.metadata(unit_code), timeout=self._timeout
        )
        return reply

    async def get_document(self, unit_code: str, document_id: str) -> doc_pb.GetDocumentResponse:
        reply: doc_pb.GetDocumentResponse = await self.documents.GetDocument(
            doc_pb.GetDocumentRequest(document_id=document_id),
            metadata=self.metadata(unit_code),
            timeout=self._timeout,
        )
        return reply

    async def download(
        self, unit_code: str, document_id: str, attachment_id: str, path: Path
    ) -> None:
        """Write one attachment's bytes to ``path`` as they stream in."""
        call = self.documents.GetAttachment(
            doc_pb.GetAttachmentRequest(document_id=document_id, attachment_id=attachment_id),
            metadata=self.metadata(unit_code),
            timeout=self._timeout,
        )
        with path.open("wb") as out:
            async for part in call:
                if part.HasField("chunk"):
                    out.write(part.chunk)

    async def inbox(
        self, unit_code: str, status_codes: Iterable[str] = ()
    ) -> AsyncIterator[doc_pb.InboxEntry]:
        """Every entry of the unit's inbox (all pages), newest first as the service lists."""
        token = ""
        while True:
            reply: doc_pb.ListInboxResponse = await self.documents.ListInbox(
                doc_pb.ListInboxRequest(
                    page_size=200, page_token=token, status_codes=list(status_codes)
                ),
                metadata=self.metadata(unit_code),
                timeout=self._timeout,
            )
            for entry in reply.entries:
                yield entry
            token = reply.next_page_token
            if not token:
                return

    async def acknowledge(
        self, unit_code: str, request: doc_pb.AcknowledgeDeliveryRequest
    ) -> doc_pb.AcknowledgeDeliveryResponse:
        reply: doc_pb.AcknowledgeDeliveryResponse = await self.documents.AcknowledgeDelivery(
            request, metadata=self.metadata(unit_code), timeout=self._timeout
        )
        return reply

    async def units(
        self, unit_code: str, request: routing_pb.ListUnitsRequest
    ) -> routing_pb.ListUnitsResponse:
        reply: routing_pb.ListUnitsResponse = await self.routing.ListUnits(
            request, metadata=self.metadata(unit_code), timeout=self._timeout
        )
        return reply
