"""Bad requests get problem details, never a 500: an oversized package (413, read no further),
an empty body, an unknown path. The gateway runs in-process in development mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway_service.__main__ import NAME, build
from gateway_service.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "qd-15-ubnd.edxml"
UNIT = {"x-lienthong-identity": "unit/000.01.00.H23"}


@pytest.fixture
async def gateway(start_service: Any) -> str:
    # port 0: the gateway binds a free port itself (a port picked beforehand can be taken)
    app = await start_service(
        NAME,
        build,
        Settings,
        {"LIENTHONG_GATEWAY_HTTP_PORT": "0", "LIENTHONG_GATEWAY_MAX_PACKAGE_BYTES": "1000"},
    )
    return str(app.deps.extra["http"].url)


async def test_bad_requests_get_problem_details(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway, headers=UNIT, timeout=30) as client:
        oversized = await client.post("/v1/doctor", content=EXAMPLE.read_bytes())
        empty = await client.post("/v1/documents", content=b"")
        unknown = await client.get("/v1/nothing-here")
        bad_header = await client.get(
            "/v1/documents/pending", headers={"x-lienthong-identity": "unit/"}
        )
    assert EXAMPLE.stat().st_size > 1000
    assert oversized.status_code == 413
    assert oversized.json()["type"].endswith("/oversized")
    assert empty.status_code == 400
    assert empty.json()["type"].endswith("/empty-body")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert bad_header.status_code == 401
