"""The HTTP routes of the edXML gateway: what provincial hubs expose to e-office software.

    POST /v1/documents            send a document package (edXML) -> the submitted document
    GET  /v1/documents/pending    the caller's pending document ids (its inbox, not yet answered)
    GET  /v1/documents/{id}       a received (or sent) document as an edXML package
    POST /v1/statuses             send a status package -> the delivery acknowledged
    GET  /v1/agencies             the agencies of the registry
    POST /v1/doctor               every problem of a package, nothing stored

Each handler validates, calls document-service or routing-service as the gateway for the
calling unit (upstream.py) and maps the answer; nothing else. Packages are spooled to files
and streamed in and out, never held whole in memory.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import grpc
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import FileResponse, Response

from gateway_service.identity import CallerError, caller_from_scope
from gateway_service.metrics import HTTP_DURATION, HTTP_HANDLED, PACKAGE_BYTES
from gateway_service.problems import MEDIA_TYPE, ApiProblem, from_rpc_error, problem_response
from gateway_service.settings import Settings
from gateway_service.upstream import Upstream, file_chunks
from lienthong.document.v1 import document_service_pb2 as doc_pb
from lienthong.routing.v1 import routing_service_pb2 as routing_pb
from lienthong_edxml import (
    BusinessDocType,
    InvalidPackage,
    Limits,
    Organ,
    diagnose,
    parse_document,
    parse_status,
    write_document,
)
from lienthong_edxml.mapping import from_stored_document, to_submit_request
from lienthong_kit.authz import Identity
from lienthong_kit.logs import get_logger

__all__ = ["create_app"]

log = get_logger(__name__)

EDXML = "application/xml"
PENDING = ("01",)  # arrived, not yet answered by the recipient
_XML_BODY = {
    "requestBody": {
        "required": True,
        "content": {EDXML: {"schema": {"type": "string", "format": "binary"}}},
    }
}


class ProblemDetail(BaseModel):
    xpath: str
    code: str
    message_vi: str
    message_en: str


class Violation(BaseModel):
    field: str
    description: str


class Problem(BaseModel):
    """RFC 9457 problem details, with what is wrong in the package or the request."""

    type: str
    title: str
    status: int
    detail: str
    instance: str = ""
    problems: list[ProblemDetail] = []
    violations: list[Violation] = []


class AttachmentOut(BaseModel):
    attachment_id: str
    name: str
    mime_type: str
    size_bytes: int
    sha256: str


class SentDocument(BaseModel):
    document_id: str = Field(description="the platform's id (GET /v1/documents/{id})")
    edxml_document_id: str
    sender_code: str
    attachments: list[AttachmentOut]


class PendingDocument(BaseModel):
    document_id: str
    edxml_document_id: str
    delivery_id: str
    sender_code: str
    subject: str
    priority: int
    status_code: str


class Pending(BaseModel):
    ids: list[str] = Field(description="platform document ids, oldest first")
    documents: list[PendingDocument]


class StatusAccepted(BaseModel):
    delivery_id: str
    document_id: str
    status_code: str


class Agency(BaseModel):
    code: str
    code_2020: str
    name: str
    parent_code: str
    level: int
    active: bool


class Agencies(BaseModel):
    agencies: list[Agency]
    next_page_token: str


class DoctorReport(BaseModel):
    ok: bool
    problems: list[ProblemDetail]


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {MEDIA_TYPE: {}}, "description": text}
    for status, text in (
        (400, "the package or the request is invalid: every problem listed"),
        (401, "no identity: present a client certificate naming a unit"),
        (403, "the caller may not do this"),
        (413, "the package is larger than the gateway accepts"),
        (502, "a platform service failed"),
        (503, "a platform service is unavailable; retry later"),
    )
}


def _caller(request: Request) -> Identity:
    settings: Settings = request.app.state.settings
    try:
        return caller_from_scope(
            request.scope,
            request.headers,
            trust_domain=settings.trust_domain,
            dev_auth=settings.dev_auth,
        )
    except CallerError as exc:
        kind = exc.reason.lower().replace("_", "-")
        title = "unauthenticated" if exc.status == 401 else "forbidden"
        raise ApiProblem(exc.status, kind, title, exc.detail) from None


Caller = Annotated[Identity, Depends(_caller)]


class _Spool:
    """A folder for one request's package and attachments, removed when the request ends."""

    def __init__(self, root: Path | None) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="gateway-", dir=root))

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


async def _receive(request: Request, spool: _Spool, max_bytes: int) -> Path:
    """The request body, streamed to a file; 413 past ``max_bytes``."""
    target = spool.path / "package.edxml"
    size = 0
    with target.open("wb") as out:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise ApiProblem(
                    413,
                    "oversized",
                    "package too large",
                    f"the package exceeds {max_bytes} bytes (LIENTHONG_GATEWAY_MAX_PACKAGE_BYTES)",
                )
            out.write(chunk)
    PACKAGE_BYTES.labels("in").inc(size)
    if size == 0:
        raise ApiProblem(400, "empty-body", "no package", "the request body is empty")
    return target


def _invalid(exc: InvalidPackage) -> ApiProblem:
    return ApiProblem(
        400,
        "invalid-package",
        "invalid edXML package",
        f"the package has {len(exc.problems)} problem(s); nothing was stored",
        problems=exc.problems,
    )


def _measured(app: Any) -> Any:
    """ASGI middleware: the request count and duration by route and status."""

    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await app(scope, receive, sending)
        finally:
            route = scope.get("route")
            operation = getattr(route, "path", "unmatched")
            HTTP_HANDLED.labels(operation, str(status[0])).inc()
            HTTP_DURATION.labels(operation).observe(time.perf_counter() - started)

    return middleware


def create_app(upstream: Upstream, settings: Settings) -> FastAPI:
    app = FastAPI(
        title="lienthong edXML gateway",
        version="1.0.0",
        description="edXML (QCVN 102:2016/BTTTT) packages over HTTP for e-office software:"
        " send, list pending, get, answer with a status package, list agencies, diagnose."
        " Callers are agency units identified by their client certificate (mutual TLS).",
        responses=_ERRORS,
    )
    app.state.settings = settings
    limits = Limits(max_package_bytes=settings.gateway_max_package_bytes)
    spool_root = settings.gateway_spool_dir

    @asynccontextmanager
    async def spooled() -> AsyncIterator[_Spool]:
        spool = _Spool(spool_root)
        try:
            yield spool
        finally:
            spool.remove()

    @app.exception_handler(ApiProblem)
    async def on_problem(request: Request, exc: ApiProblem) -> Response:
        return problem_response(exc, request.url.path)

    @app.exception_handler(grpc.RpcError)
    async def on_rpc_error(request: Request, exc: grpc.RpcError) -> Response:
        problem = from_rpc_error(exc, "platform service")
        if problem.status >= 500:
            log.warning("upstream_failed", path=request.url.path, status=problem.extra)
        return problem_response(problem, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def on_invalid_request(request: Request, exc: RequestValidationError) -> Response:
        violations = [
            {
                "field": ".".join(str(part) for part in error.get("loc", ())),
                "description": str(error.get("msg", "")),
            }
            for error in exc.errors()
        ]
        problem = ApiProblem(
            400, "invalid-request", "invalid request", "the request is invalid",
            violations=violations,
        )  # fmt: skip
        return problem_response(problem, request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        problem = ApiProblem(
            exc.status_code, f"http-{exc.status_code}", str(exc.detail), str(exc.detail)
        )
        return problem_response(problem, request.url.path)

    @app.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception) -> Response:
        log.exception("request_failed", path=request.url.path)
        problem = ApiProblem(500, "internal", "internal error", "internal error; see the log")
        return problem_response(problem, request.url.path)

    @app.post(
        "/v1/documents",
        status_code=201,
        summary="Send a document package",
        response_model=SentDocument,
        openapi_extra=_XML_BODY,
    )
    async def send_document(request: Request, identity: Caller) -> SentDocument:
        async with spooled() as spool:
            path = await _receive(request, spool, settings.gateway_max_package_bytes)
            try:
                with path.open("rb") as source:
                    package = await asyncio.to_thread(
                        parse_document, source, limits=limits, spool=spool.path
                    )
            except InvalidPackage as exc:
                raise _invalid(exc) from None
            if package.from_.organ_id != identity.name:
                raise ApiProblem(
                    403,
                    "sender-mismatch",
                    "not the caller's package",
                    f"From/OrganId is {package.from_.organ_id}; the caller is {identity.name}",
                )
            if package.business.doc_type is not BusinessDocType.NEW:
                raise ApiProblem(
                    422,
                    "business-not-supported",
                    "only new documents",
                    "the gateway accepts new documents (BussinessDocType 0); recall, update and"
                    " replace go through RecallDocument for now",
                )
            refs = []
            for index, attachment in enumerate(package.attachments):
                try:
                    refs.append(
                        await upstream.upload(
                            identity.name,
                            attachment.name,
                            attachment.content_type,
                            file_chunks(attachment.path, attachment.data),
                        )
                    )
                except grpc.RpcError as exc:
                    raise from_rpc_error(
                        exc, "document-service", field_prefix=f"attachments[{index}]."
                    ) from None
            request_pb = to_submit_request(package, [ref.attachment_id for ref in refs])
            reply = await upstream.submit(identity.name, request_pb)
        summary = reply.document
        return SentDocument(
            document_id=summary.document_id,
            edxml_document_id=summary.edxml_document_id,
            sender_code=summary.sender_code,
            attachments=[
                AttachmentOut(
                    attachment_id=ref.attachment_id,
                    name=ref.name,
                    mime_type=ref.mime_type,
                    size_bytes=ref.size_bytes,
                    sha256=ref.sha256,
                )
                for ref in refs
            ],
        )

    @app.get(
        "/v1/documents/pending",
        summary="The caller's pending documents (arrived, not yet answered)",
        response_model=Pending,
    )
    async def pending(identity: Caller) -> Pending:
        entries = [entry async for entry in upstream.inbox(identity.name, PENDING)]
        entries.sort(key=lambda entry: entry.delivered_at.ToNanoseconds())
        documents = [
            PendingDocument(
                document_id=entry.document.document_id,
                edxml_document_id=entry.document.edxml_document_id,
                delivery_id=entry.delivery_id,
                sender_code=entry.document.sender_code,
                subject=entry.document.subject,
                priority=entry.document.priority,
                status_code=entry.status_code,
            )
            for entry in entries
        ]
        return Pending(ids=[doc.document_id for doc in documents], documents=documents)

    @app.get(
        "/v1/documents/{document_id}",
        summary="A document as an edXML package (standard form)",
        response_class=FileResponse,
        responses={200: {"content": {EDXML: {"schema": {"type": "string"}}}}},
    )
    async def get_document(document_id: str, identity: Caller) -> Response:
        spool = _Spool(spool_root)
        try:
            stored = await upstream.get_document(identity.name, document_id)
            contents: dict[str, bytes | Path] = {}
            for ref in stored.attachments:
                path = spool.path / f"attachment-{len(contents)}"
                await upstream.download(identity.name, document_id, ref.attachment_id, path)
                contents[ref.attachment_id] = path
            package = from_stored_document(stored, contents)
            if not package.to:
                # document-service shows a recipient no other recipient: the package it
                # receives is addressed to it alone
                package = replace(package, to=(Organ(identity.name),))
            out = spool.path / "package.edxml"

            def write() -> None:
                with out.open("wb") as sink:
                    write_document(package, sink)

            await asyncio.to_thread(write)
        except BaseException:
            spool.remove()
            raise
        PACKAGE_BYTES.labels("out").inc(out.stat().st_size)
        # the spool goes once the file is sent
        return FileResponse(out, media_type=EDXML, background=BackgroundTask(spool.remove))

    @app.post(
        "/v1/statuses",
        summary="Send a status package (answer a received document)",
        response_model=StatusAccepted,
        openapi_extra=_XML_BODY,
    )
    async def send_status(request: Request, identity: Caller) -> StatusAccepted:
        async with spooled() as spool:
            path = await _receive(request, spool, settings.gateway_max_package_bytes)
            try:
                with path.open("rb") as source:
                    status = await asyncio.to_thread(parse_status, source, limits=limits)
            except InvalidPackage as exc:
                raise _invalid(exc) from None
        if status.from_.organ_id != identity.name:
            raise ApiProblem(
                403,
                "sender-mismatch",
                "not the caller's status",
                f"From/OrganId is {status.from_.organ_id}; the caller is {identity.name}",
            )
        wanted = status.response_for.document_id
        found = None
        async for entry in upstream.inbox(identity.name):
            if wanted in (entry.document.edxml_document_id, entry.document.document_id):
                found = entry
                break
        if found is None:
            raise ApiProblem(
                404,
                "no-delivery",
                "no such document in the caller's inbox",
                f"ResponseFor/DocumentId {wanted} names no document delivered to {identity.name}",
            )
        staff = status.staff_info.staff if status.staff_info else ""
        reply = await upstream.acknowledge(
            identity.name,
            doc_pb.AcknowledgeDeliveryRequest(
                delivery_id=found.delivery_id,
                status_code=str(status.status_code),
                description=status.description,
                staff=staff,
            ),
        )
        return StatusAccepted(
            delivery_id=reply.delivery_id,
            document_id=found.document.document_id,
            status_code=reply.status_code,
        )

    @app.get("/v1/agencies", summary="The agencies of the registry", response_model=Agencies)
    async def agencies(
        identity: Caller,
        parent_code: Annotated[str, Query(max_length=64)] = "",
        page_size: Annotated[int, Query(ge=0, le=500)] = 0,
        page_token: Annotated[str, Query(max_length=512)] = "",
    ) -> Agencies:
        reply = await upstream.units(
            identity.name,
            routing_pb.ListUnitsRequest(
                parent_code=parent_code, page_size=page_size, page_token=page_token
            ),
        )
        return Agencies(
            agencies=[
                Agency(
                    code=unit.code,
                    code_2020=unit.code_2020,
                    name=unit.name,
                    parent_code=unit.parent_code,
                    level=int(unit.level),
                    active=unit.active,
                )
                for unit in reply.units
            ],
            next_page_token=reply.next_page_token,
        )

    @app.post(
        "/v1/doctor",
        summary="Every problem of a package (nothing stored)",
        response_model=DoctorReport,
        openapi_extra=_XML_BODY,
    )
    async def doctor(request: Request, identity: Caller) -> DoctorReport:
        async with spooled() as spool:
            path = await _receive(request, spool, settings.gateway_max_package_bytes)
            with path.open("rb") as source:
                found = await asyncio.to_thread(diagnose, source, limits=limits)
        return DoctorReport(
            ok=not found,
            problems=[ProblemDetail(**problem.as_dict()) for problem in found],
        )

    app.add_middleware(_Middleware, wrap=_measured)
    return app


class _Middleware:
    """Adapts a function wrapping an ASGI app to Starlette's middleware signature."""

    def __init__(self, app: Any, wrap: Callable[[Any], Any]) -> None:
        self._app = wrap(app)

    def __call__(self, scope: Any, receive: Any, send: Any) -> Awaitable[None]:
        return self._app(scope, receive, send)  # type: ignore[no-any-return]
