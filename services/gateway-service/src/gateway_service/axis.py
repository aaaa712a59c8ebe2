"""The transport to the national document axis: a small interface, and its HTTP form.

The axis's own SDK protocol is not public, so the bridge speaks only to ``AxisTransport``;
``HttpAxis`` speaks to an HTTP axis with the operations provincial hubs expose (the sandbox
axis of ``make run`` and the tests, lienthong_local.axis, is one):

    axis = HttpAxis("http://127.0.0.1:8490", timeout=30)
    await axis.send_package(edxml_bytes)             # idempotent by DocumentId
    for item in await axis.pending("H23"):            # what waits for the hub's agencies
        body = await axis.get_package(item.key)
    await axis.send_status(status_bytes)
    for item in await axis.statuses("H23"):
        body = await axis.get_status(item.key); await axis.ack_status(item.key)

Every failure to reach the axis, or an answer 5xx/429, is ``AxisUnavailable`` (retry later);
any other refusal is ``AxisRefused`` (retrying the same package will not help).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import httpx

__all__ = ["AxisRefused", "AxisTransport", "AxisUnavailable", "HttpAxis", "Waiting"]

EDXML = "application/xml"


class AxisUnavailable(Exception):
    """The axis did not answer, or answered that it cannot now: the same call may succeed later."""


class AxisRefused(Exception):
    """The axis refused the request for what it is (an invalid package, an unknown key)."""


@dataclass(frozen=True)
class Waiting:
    """A package or status package waiting at the axis for one agency of the hub."""

    agency: str
    key: str
    document_id: str = ""


class AxisTransport(Protocol):
    async def send_package(self, package: bytes) -> bool:
        """Hand a document package over; False if the axis already had it (a retry)."""

    async def pending(self, hub: str) -> list[Waiting]: ...

    async def get_package(self, key: str) -> bytes: ...

    async def send_status(self, status: bytes) -> None: ...

    async def statuses(self, hub: str) -> list[Waiting]: ...

    async def get_status(self, key: str) -> bytes: ...

    async def ack_status(self, key: str) -> None: ...

    async def close(self) -> None: ...


class HttpAxis:
    """``AxisTransport`` over HTTP (JSON listings, edXML bodies)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout, transport=transport
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, body: bytes | None = None) -> httpx.Response:
        headers = {"content-type": EDXML} if body is not None else None
        try:
            response = await self._client.request(method, path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise AxisUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise AxisUnavailable(f"{method} {path}: HTTP {response.status_code}")
        if response.status_code >= 400:
            raise AxisRefused(f"{method} {path}: HTTP {response.status_code}: {response.text}")
        return response

    async def _json(self, path: str) -> Any:
        return (await self._call("GET", path)).json()

    async def send_package(self, package: bytes) -> bool:
        answer = (await self._call("POST", "/packages", package)).json()
        return not answer.get("duplicate", False)

    async def pending(self, hub: str) -> list[Waiting]:
        listing = await self._json(f"/hubs/{hub}/pending")
        return [
            Waiting(item["agency"], item["key"], item.get("document_id", ""))
            for item in listing["pending"]
        ]

    async def get_package(self, key: str) -> bytes:
        return (await self._call("GET", f"/packages/{key}")).content

    async def send_status(self, status: bytes) -> None:
        await self._call("POST", "/statuses", status)

    async def statuses(self, hub: str) -> list[Waiting]:
        listing = await self._json(f"/hubs/{hub}/statuses")
        return [Waiting(item["agency"], item["key"]) for item in listing["statuses"]]

    async def get_status(self, key: str) -> bytes:
        return (await self._call("GET", f"/statuses/{key}")).content

    async def ack_status(self, key: str) -> None:
        await self._call("POST", f"/statuses/{key}/ack")
