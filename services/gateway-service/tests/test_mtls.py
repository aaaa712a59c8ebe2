"""HTTPS with client certificates: the caller is the unit its certificate's URI SAN names.

The gateway runs in-process (the real server, TLS and all); the doctor needs no other
service, so it shows who was let in.
"""

from __future__ import annotations

import ssl
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway_service.__main__ import NAME, build
from gateway_service.settings import Settings
from lienthong_testing.identities import IdentityCa, Issued

GOLDEN = (
    Path(__file__).resolve().parents[3]
    / "libs" / "edxml" / "tests" / "data" / "golden" / "document_qcvn_bussiness.edxml"
)  # fmt: skip
UNIT = "000.01.00.H23"


def context(ca: IdentityCa, client: Issued | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca.ca_path))
    if client is not None:
        ctx.load_cert_chain(client.cert_path, client.key_path)
    return ctx


@pytest.fixture
async def gateway(start_service: Any, tmp_path: Path) -> tuple[IdentityCa, str]:
    ca = IdentityCa.create(tmp_path / "pki", trust_domain="lienthong.test")
    server = ca.server(NAME)
    app = await start_service(
        NAME,
        build,
        Settings,
        {
            "LIENTHONG_TLS_CERT": str(server.cert_path),
            "LIENTHONG_TLS_KEY": str(server.key_path),
            "LIENTHONG_TLS_CLIENT_CA": str(ca.ca_path),
            "LIENTHONG_DEV_AUTH": "false",
            "LIENTHONG_TRUST_DOMAIN": "lienthong.test",
            "LIENTHONG_GATEWAY_HTTP_PORT": "0",
            "LIENTHONG_HEALTH_PORT": "0",
        },
    )
    # port 0: the gateway binds a free port itself (a port picked beforehand can be taken)
    return ca, str(app.deps.extra["http"].url)


async def doctor(url: str, ctx: ssl.SSLContext, headers: dict[str, str] | None = None) -> Any:
    async with httpx.AsyncClient(verify=ctx, timeout=30) as client:
        return await client.post(
            f"{url}/v1/doctor", content=GOLDEN.read_bytes(), headers=headers or {}
        )


async def test_a_unit_certificate_is_the_caller(gateway: tuple[IdentityCa, str]) -> None:
    ca, url = gateway
    reply = await doctor(url, context(ca, ca.client(f"unit/{UNIT}")))
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"ok": True, "problems": []}


async def test_callers_without_a_unit_identity_are_refused(
    gateway: tuple[IdentityCa, str],
) -> None:
    ca, url = gateway
    # no certificate; the development header is not read when TLS is on
    anonymous = await doctor(url, context(ca, None), {"x-lienthong-identity": f"unit/{UNIT}"})
    assert anonymous.status_code == 401
    assert anonymous.json()["type"].endswith("/no-certificate")
    # issued by the right CA, but in another trust domain
    foreign = replace(ca, trust_domain="elsewhere.test").client(f"unit/{UNIT}")
    other_domain = await doctor(url, context(ca, foreign))
    assert other_domain.status_code == 401
    assert "elsewhere.test" in other_domain.json()["detail"]
    # a certificate naming no identity at all
    nameless = await doctor(url, context(ca, ca.client("", common_name=UNIT)))
    assert nameless.status_code == 401
    # a service is not a unit: the gateway acts only for units
    service = await doctor(url, context(ca, ca.client("service/routing-service")))
    assert service.status_code == 403
    assert service.json()["type"].endswith("/not-a-unit")


async def test_a_certificate_from_another_ca_fails_the_handshake(
    gateway: tuple[IdentityCa, str], tmp_path: Path
) -> None:
    ca, url = gateway
    stranger = IdentityCa.create(tmp_path / "other", trust_domain="lienthong.test")
    with pytest.raises(httpx.HTTPError):
        await doctor(url, context(ca, stranger.client(f"unit/{UNIT}")))
