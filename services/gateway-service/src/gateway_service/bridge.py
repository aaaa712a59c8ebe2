"""The bridge to the national document axis (docs/edxml.md, "The bridge to the national axis").

    bridge = AxisBridge(upstream, HttpAxis(url, timeout=30), settings)
    await bridge.send_out(created)        # a delivery to an external agency -> the axis
    await bridge.send_status(code, ...)   # a province unit answered an external sender
    await bridge.run()                    # background task: pull packages and statuses

Out: a document addressed to an external agency (routing marks its ``DeliveryCreated``
``via_axis``) is fetched as its sender, written as edXML with the province's hop appended to
``TraceHeaderList`` and handed to the axis; the axis keeps one copy per DocumentId and
addressee, so a retry after a failure or a timeout sends it exactly once.

In: the packages waiting at the axis for the hub's agencies are submitted as their (external)
sender through the same path as any document (UploadAttachment, SubmitDocument: signature
verification, routing, inboxes); the idempotency key is the DocumentId, so pulling a package
twice is one document. A status package from an external agency is that agency's
AcknowledgeDelivery of the document it answers, so the sender's TrackDocument shows it. When
the province's recipient answers (its inbox's 01 on arrival included) or the document bounces,
the answer goes back to the axis as a status package, which takes it off the pending list.

The gateway acts on behalf of the units involved (delegation, lienthong_kit.authz); an
external agency acts only through the bridge, since it holds no certificate of the province.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import grpc

from gateway_service.axis import AxisTransport, AxisUnavailable, Waiting
from gateway_service.metrics import AXIS_PACKAGES
from gateway_service.settings import Settings
from gateway_service.upstream import Upstream, file_chunks
from lienthong.common.v1.common_pb2 import DocumentSummary
from lienthong.document.v1 import document_service_pb2 as doc_pb
from lienthong.events.v1.events_pb2 import DeliveryCreated
from lienthong_edxml import (
    BusinessDocType,
    InvalidPackage,
    Limits,
    Organ,
    ResponseFor,
    StaffInfo,
    StatusCode,
    StatusPackage,
    TraceHeader,
    parse_document,
    parse_status,
    status_bytes,
    write_document,
)
from lienthong_edxml.mapping import from_stored_document, to_submit_request
from lienthong_kit.infra import retry_while_down
from lienthong_kit.logs import get_logger

__all__ = ["AxisBridge", "UpstreamUnavailable", "with_hop"]

log = get_logger(__name__)

T = TypeVar("T")
# a platform service that does not answer now may answer later: retry, never give up
_TRANSIENT = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED}
)
_STATUS_CODES = frozenset(code.value for code in StatusCode)


class UpstreamUnavailable(Exception):
    """document-service or routing-service did not answer; the same call may succeed later."""


def with_hop(
    package_traces: tuple[TraceHeader, ...], hub_code: str, at: datetime
) -> tuple[TraceHeader, ...]:
    """The trace list of a package leaving through ``hub_code`` at ``at``: one hop appended."""
    return (*package_traces, TraceHeader(hub_code, at))


class AxisBridge:
    def __init__(self, upstream: Upstream, axis: AxisTransport, settings: Settings) -> None:
        self._upstream = upstream
        self.axis = axis
        self._hub_code = settings.axis_hub_code
        self._hub = settings.axis_hub
        self._poll = settings.axis_poll_seconds
        self._spool = settings.gateway_spool_dir
        self._limits = Limits(max_package_bytes=settings.gateway_max_package_bytes)
        self._external: dict[str, bool] = {}
        # keys this process submitted that the axis still lists (until the recipients' 01
        # goes out): not submitted again; after a restart the DocumentId key dedupes them
        self._taken: set[str] = set()

    async def close(self) -> None:
        await self.axis.close()

    async def _platform(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except grpc.RpcError as exc:
            if exc.code() in _TRANSIENT:
                raise UpstreamUnavailable(f"{exc.code().name}: {exc.details()}") from exc
            raise

    async def _retrying(self, operation: Callable[[], Awaitable[T]], event: str) -> T:
        return await retry_while_down(
            operation, event=event, errors=(AxisUnavailable, UpstreamUnavailable)
        )

    # -- out -----------------------------------------------------------------------------

    async def send_out(self, created: DeliveryCreated) -> None:
        """Hand the document of ``created`` to the axis for its external recipient; retried
        while the axis or a platform service is unavailable."""
        await self._retrying(lambda: self._send_out(created), "axis_send_retry")

    async def _send_out(self, created: DeliveryCreated) -> None:
        summary = created.document
        sender = summary.sender_code
        with tempfile.TemporaryDirectory(prefix="axis-out-", dir=self._spool) as folder:
            stored = await self._platform(self._upstream.get_document(sender, summary.document_id))
            contents: dict[str, bytes | Path] = {}
            for ref in stored.attachments:
                path = Path(folder) / f"attachment-{len(contents)}"
                await self._platform(
                    self._upstream.download(sender, summary.document_id, ref.attachment_id, path)
                )
                contents[ref.attachment_id] = path
            package = from_stored_document(stored, contents)
            package = replace(
                package,
                to=(Organ(created.recipient_code),),
                traces=with_hop(package.traces, self._hub_code, datetime.now(UTC)),
            )
            out = Path(folder) / "package.edxml"

            def write() -> None:
                with out.open("wb") as sink:
                    write_document(package, sink)

            await asyncio.to_thread(write)
            first = await self.axis.send_package(out.read_bytes())
        AXIS_PACKAGES.labels("out", "sent" if first else "duplicate").inc()
        log.info(
            "axis_package_sent",
            document_id=summary.document_id,
            edxml_document_id=package.document_id,
            recipient=created.recipient_code,
            duplicate=not first,
        )

    async def is_external(self, code: str) -> bool:
        """Whether ``code`` is an external agency (remembered: a code's flag does not change)."""
        known = self._external.get(code)
        if known is None:
            unit = await self._retrying(
                lambda: self._platform(self._upstream.unit(code)), "axis_registry_retry"
            )
            known = unit is not None and unit.external
            self._external[code] = known
        return known

    async def send_status(
        self,
        document: DocumentSummary,
        recipient_code: str,
        code: str,
        *,
        description: str = "",
        staff: str = "",
        at: datetime | None = None,
    ) -> None:
        """Tell the external sender of ``document``, through the axis, that the province's
        ``recipient_code`` reported ``code``."""
        if code not in _STATUS_CODES:
            return
        status = StatusPackage(
            response_for=ResponseFor(document.sender_code, document.edxml_document_id),
            from_=Organ(recipient_code),
            status_code=StatusCode(code),
            timestamp=at or datetime.now(UTC),
            description=description,
            staff_info=StaffInfo(staff=staff) if staff else None,
        )
        body = status_bytes(status)
        await self._retrying(lambda: self.axis.send_status(body), "axis_status_retry")
        AXIS_PACKAGES.labels("out", f"status {code}").inc()

    # -- in ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Pull what waits at the axis for the hub, every LIENTHONG_AXIS_POLL_SECONDS."""
        while True:
            try:
                await self.pull()
            except (AxisUnavailable, UpstreamUnavailable) as exc:
                log.warning("axis_pull_deferred", error=str(exc))
            except Exception:
                log.exception("axis_pull_failed")
            await asyncio.sleep(self._poll)

    async def pull(self) -> None:
        """One round: every waiting package, then every waiting status package."""
        waiting = await self.axis.pending(self._hub)
        by_key: dict[str, list[str]] = {}
        for item in waiting:
            by_key.setdefault(item.key, []).append(item.agency)
        self._taken &= set(by_key)
        for key, agencies in by_key.items():
            if key not in self._taken:
                await self._take_package(key, agencies)
        for item in await self.axis.statuses(self._hub):
            await self._take_status(item)

    async def _take_package(self, key: str, agencies: list[str]) -> None:
        body = await self.axis.get_package(key)
        with tempfile.TemporaryDirectory(prefix="axis-in-", dir=self._spool) as folder:
            try:
                package = await asyncio.to_thread(
                    parse_document, body, limits=self._limits, spool=Path(folder)
                )
            except InvalidPackage as exc:
                # nothing to answer: without a valid package there is no sender to tell
                log.warning("axis_package_invalid", key=key, problems=len(exc.problems))
                AXIS_PACKAGES.labels("in", "invalid").inc()
                return
            sender = package.from_.organ_id
            if package.business.doc_type is not BusinessDocType.NEW:
                await self._refuse(package.document_id, sender, agencies, "only new documents")
                self._taken.add(key)
                return
            try:
                refs = [
                    await self._platform(
                        self._upstream.upload(
                            sender,
                            attachment.name,
                            attachment.content_type,
                            file_chunks(attachment.path, attachment.data),
                        )
                    )
                    for attachment in package.attachments
                ]
                request = to_submit_request(
                    replace(package, to=tuple(Organ(code) for code in agencies)),
                    [ref.attachment_id for ref in refs],
                )
                reply = await self._platform(self._upstream.submit(sender, request))
            except grpc.RpcError as exc:
                # refused for what it is (unknown sender, invalid content): the sender learns why
                reason = f"{exc.code().name}: {exc.details()}"
                log.warning("axis_package_refused", key=key, sender=sender, reason=reason)
                await self._refuse(package.document_id, sender, agencies, reason)
                self._taken.add(key)
                AXIS_PACKAGES.labels("in", "refused").inc()
                return
        self._taken.add(key)
        AXIS_PACKAGES.labels("in", "submitted").inc()
        log.info(
            "axis_package_received",
            key=key,
            document_id=reply.document.document_id,
            edxml_document_id=package.document_id,
            sender=sender,
            recipients=agencies,
        )

    async def _refuse(
        self, document_id: str, sender: str, agencies: list[str], reason: str
    ) -> None:
        summary = DocumentSummary(sender_code=sender, edxml_document_id=document_id)
        for agency in agencies:
            await self.send_status(summary, agency, "02", description=reason[:1000])

    async def _take_status(self, item: Waiting) -> None:
        body = await self.axis.get_status(item.key)
        try:
            status = await asyncio.to_thread(parse_status, body, limits=self._limits)
        except InvalidPackage as exc:
            log.warning("axis_status_invalid", key=item.key, problems=len(exc.problems))
            await self.axis.ack_status(item.key)
            return
        external = status.from_.organ_id
        wanted = status.response_for.document_id
        found: doc_pb.InboxEntry | None = None

        async def find() -> None:
            nonlocal found
            async for entry in self._upstream.inbox(external):
                if entry.document.edxml_document_id == wanted:
                    found = entry
                    return

        try:
            await self._platform(find())
        except grpc.RpcError as exc:
            log.warning("axis_status_dropped", key=item.key, reason=exc.details())
            await self.axis.ack_status(item.key)
            return
        if found is None:
            # the delivery may not be materialised yet: the next round looks again
            log.info("axis_status_waiting", key=item.key, document=wanted, agency=external)
            return
        delivery_id = found.delivery_id
        staff = status.staff_info.staff if status.staff_info else ""
        try:
            await self._platform(
                self._upstream.acknowledge(
                    external,
                    doc_pb.AcknowledgeDeliveryRequest(
                        delivery_id=delivery_id,
                        status_code=str(status.status_code),
                        description=status.description,
                        staff=staff,
                        # the axis may hand the same status again: one move, whatever the retries
                        idempotency_key="axis-" + hashlib.sha256(item.key.encode()).hexdigest(),
                    ),
                )
            )
            AXIS_PACKAGES.labels("in", f"status {status.status_code}").inc()
        except grpc.RpcError as exc:
            # an illegal or repeated move (01 again, 03 after 06): nothing to record
            log.info("axis_status_ignored", key=item.key, reason=exc.details())
        await self.axis.ack_status(item.key)
