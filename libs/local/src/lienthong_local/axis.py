"""A sandbox of the national document axis (Trục liên thông văn bản quốc gia): a small stateful
HTTP server for tests and ``make run``, standing in for the axis whose SDK protocol is not
public. It offers what provincial hubs offer, in memory:

    POST /packages                      a document package (edXML); idempotent by DocumentId
                                        (a copy naming only agencies it already reached is a
                                        duplicate; one naming new agencies reaches them)
    GET  /agencies/{code}/pending       keys of the packages addressed to ``code``, unanswered
    GET  /packages/{key}                the package as it was received
    POST /statuses                      a status package; the document leaves the answering
                                        agency's pending list, the status waits for the sender
    GET  /agencies/{code}/statuses      keys of status packages waiting for ``code``
    GET  /statuses/{key}                the status package
    POST /statuses/{key}/ack            the sender took it (it leaves the list)
    GET  /agencies                      the national directory the sandbox was given
    GET  /hubs/{hub}/pending            pending packages of every agency of a provincial hub
                                        (codes whose level-1 part, rightmost, is ``hub``)
    GET  /hubs/{hub}/statuses           waiting status packages of every agency of the hub

and, to test the bridge's retries, admin endpoints:

    PUT    /admin/faults    {"fail_next": 3, "status": 503, "delay_seconds": 0.5,
                             "answer_delay_seconds": 2}
    DELETE /admin/faults    back to normal
    GET    /admin/state     what it holds (counts) and the faults left

    python -m lienthong_local.axis --port 8490     (or create_axis() under uvicorn in a test)
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from lienthong_edxml import InvalidPackage, StatusPackage, parse

__all__ = ["NATIONAL_AGENCIES", "AxisState", "Faults", "create_axis"]

EDXML = "application/xml"

# The sandbox's national directory (illustrative codes): `make run` registers these as
# external agencies, so a document can leave the sample province.
NATIONAL_AGENCIES: list[dict[str, str]] = [
    {"code": "000.00.00.G01", "name": "Văn phòng Chính phủ", "parent": ""},
    {"code": "000.00.00.G09", "name": "Bộ Nội vụ", "parent": ""},
    {"code": "000.00.00.H26", "name": "Ủy ban nhân dân tỉnh Hưng Yên", "parent": ""},
]


class Faults(BaseModel):
    fail_next: int = Field(default=0, ge=0, description="answer the next N requests with `status`")
    status: int = Field(default=503, ge=400, le=599)
    delay_seconds: float = Field(default=0.0, ge=0, le=60, description="added to every request")
    answer_delay_seconds: float = Field(
        default=0.0,
        ge=0,
        le=60,
        description="added after a request was handled: past the caller's deadline the answer"
        " is lost though the request took effect",
    )


@dataclass
class Stored:
    key: str
    document_id: str
    sender: str
    body: bytes


@dataclass
class AxisState:
    """Everything the sandbox holds; tests may read it directly."""

    directory: list[dict[str, str]] = field(default_factory=list)
    packages: dict[str, Stored] = field(default_factory=dict)  # key -> package
    by_document_id: dict[str, str] = field(default_factory=dict)  # DocumentId -> first key
    delivered: set[tuple[str, str]] = field(default_factory=set)  # (DocumentId, agency)
    pending: dict[str, list[str]] = field(default_factory=dict)  # agency -> package keys
    statuses: dict[str, Stored] = field(default_factory=dict)
    status_inbox: dict[str, list[str]] = field(default_factory=dict)  # agency -> status keys
    faults: Faults = field(default_factory=Faults)
    requests: int = 0
    sends: int = 0  # POST /packages that reached the handler (retries included)
    calls: dict[str, int] = field(default_factory=dict)  # "POST /packages" -> requests
    failed: dict[str, int] = field(default_factory=dict)  # the same, answered with a fault


def _problem(status: int, detail: str, problems: list[dict[str, str]] | None = None) -> Response:
    body: dict[str, Any] = {"title": "refused", "status": status, "detail": detail}
    if problems:
        body["problems"] = problems
    return JSONResponse(body, status, media_type="application/problem+json")


def create_axis(directory: list[dict[str, str]] | None = None) -> FastAPI:
    """The sandbox app; ``directory`` is its national directory (code, name, parent)."""
    state = AxisState(directory=list(directory or []))
    app = FastAPI(title="lienthong sandbox national axis", version="1.0.0")
    app.state.axis = state

    @app.middleware("http")
    async def faults(request: Request, call_next: Any) -> Response:
        state.requests += 1
        if request.url.path.startswith("/admin"):
            return await call_next(request)  # type: ignore[no-any-return]
        route = f"{request.method} {request.url.path}"
        state.calls[route] = state.calls.get(route, 0) + 1
        if state.faults.delay_seconds:
            await asyncio.sleep(state.faults.delay_seconds)
        if state.faults.fail_next > 0:
            state.faults.fail_next -= 1
            state.failed[route] = state.failed.get(route, 0) + 1
            return _problem(state.faults.status, "sandbox: failing on request")
        response: Response = await call_next(request)
        if state.faults.answer_delay_seconds:
            await asyncio.sleep(state.faults.answer_delay_seconds)
        return response

    async def read(request: Request) -> tuple[bytes, Any]:
        body = await request.body()
        try:
            return body, await asyncio.to_thread(parse, body)
        except InvalidPackage as exc:
            return body, exc

    @app.post("/packages", status_code=201)
    async def send_package(request: Request) -> Response:
        body, package = await read(request)
        if isinstance(package, InvalidPackage):
            return _problem(400, "invalid package", [p.as_dict() for p in package.problems])
        if isinstance(package, StatusPackage):
            return _problem(400, "a status package goes to /statuses")
        document_id = package.document_id
        if not document_id:
            return _problem(400, "the package carries no DocumentId")
        state.sends += 1
        agencies = [
            o.organ_id for o in package.to if (document_id, o.organ_id) not in state.delivered
        ]
        if not agencies:  # a retry: the first copy stands
            key = state.by_document_id[document_id]
            return JSONResponse({"key": key, "document_id": document_id, "duplicate": True})
        key = uuid.uuid4().hex
        state.packages[key] = Stored(key, document_id, package.from_.organ_id, body)
        state.by_document_id.setdefault(document_id, key)
        for agency in agencies:
            state.delivered.add((document_id, agency))
            state.pending.setdefault(agency, []).append(key)
        return JSONResponse({"key": key, "document_id": document_id, "duplicate": False}, 201)

    @app.get("/agencies/{code}/pending")
    async def pending(code: str) -> dict[str, Any]:
        keys = state.pending.get(code, [])
        return {
            "keys": list(keys),
            "document_ids": [state.packages[key].document_id for key in keys],
        }

    @app.get("/packages/{key}")
    async def get_package(key: str) -> Response:
        stored = state.packages.get(key)
        if stored is None:
            return _problem(404, f"no package {key}")
        return Response(stored.body, media_type=EDXML)

    @app.post("/statuses", status_code=201)
    async def send_status(request: Request) -> Response:
        body, status = await read(request)
        if isinstance(status, InvalidPackage):
            return _problem(400, "invalid package", [p.as_dict() for p in status.problems])
        if not isinstance(status, StatusPackage):
            return _problem(400, "a document package goes to /packages")
        answering = status.from_.organ_id
        document_id = status.response_for.document_id
        state.pending[answering] = [
            key
            for key in state.pending.get(answering, [])
            if state.packages[key].document_id != document_id
        ]
        status_key = uuid.uuid4().hex
        state.statuses[status_key] = Stored(
            status_key, status.response_for.document_id, answering, body
        )
        state.status_inbox.setdefault(status.response_for.organ_id, []).append(status_key)
        return JSONResponse({"key": status_key}, 201)

    @app.get("/agencies/{code}/statuses")
    async def statuses(code: str) -> dict[str, Any]:
        return {"keys": list(state.status_inbox.get(code, []))}

    @app.get("/statuses/{key}")
    async def get_status(key: str) -> Response:
        stored = state.statuses.get(key)
        if stored is None:
            return _problem(404, f"no status {key}")
        return Response(stored.body, media_type=EDXML)

    @app.post("/statuses/{key}/ack")
    async def ack_status(key: str) -> dict[str, bool]:
        for keys in state.status_inbox.values():
            if key in keys:
                keys.remove(key)
                return {"removed": True}
        return {"removed": False}

    def of_hub(hub: str, lists: dict[str, list[str]]) -> list[tuple[str, str]]:
        return [
            (agency, key)
            for agency, keys in sorted(lists.items())
            if agency.rpartition(".")[2] == hub
            for key in keys
        ]

    @app.get("/hubs/{hub}/pending")
    async def hub_pending(hub: str) -> dict[str, Any]:
        return {
            "pending": [
                {"agency": agency, "key": key, "document_id": state.packages[key].document_id}
                for agency, key in of_hub(hub, state.pending)
            ]
        }

    @app.get("/hubs/{hub}/statuses")
    async def hub_statuses(hub: str) -> dict[str, Any]:
        return {
            "statuses": [
                {"agency": agency, "key": key} for agency, key in of_hub(hub, state.status_inbox)
            ]
        }

    @app.get("/agencies")
    async def agencies() -> dict[str, Any]:
        return {"agencies": state.directory}

    @app.put("/admin/faults")
    async def set_faults(faults: Faults) -> Faults:
        state.faults = faults
        return faults

    @app.delete("/admin/faults")
    async def clear_faults() -> Faults:
        state.faults = Faults()
        return state.faults

    @app.get("/admin/state")
    async def describe() -> dict[str, Any]:
        return {
            "packages": len(state.packages),
            "statuses": len(state.statuses),
            "pending": {code: len(keys) for code, keys in state.pending.items() if keys},
            "faults": state.faults.model_dump(),
            "requests": state.requests,
            "sends": state.sends,
        }

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8490)
    args = parser.parse_args()
    uvicorn.run(create_axis(NATIONAL_AGENCIES), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
