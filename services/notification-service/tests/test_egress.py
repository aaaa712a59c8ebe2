"""Webhooks cannot reach the platform's own network (SSRF): the guard, its resolver, and the
HTTP client's redirects and reply cap, against real servers on loopback."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from notification_service.channels import REPLY_EXCERPT, CannotSend, HttpClient, SendFailed
from notification_service.egress import EgressGuard, ForbiddenTarget, GuardedResolver
from notification_service.settings import Settings

REFUSED = [
    "127.0.0.1",
    "127.8.8.8",
    "::1",
    "10.0.0.5",
    "172.16.3.4",
    "192.168.1.1",
    "169.254.169.254",  # AWS, GCP, Azure metadata
    "100.100.100.200",  # Alibaba metadata (shared address space)
    "fd00:ec2::254",  # AWS metadata over IPv6
    "fe80::1",
    "0.0.0.0",
    "::ffff:127.0.0.1",  # loopback in IPv6 clothing
    "::ffff:a9fe:a9fe",  # 169.254.169.254 likewise
    "224.0.0.1",
    "[::1]",
]


@pytest.mark.parametrize("address", REFUSED)
def test_internal_addresses_are_refused(address: str) -> None:
    reason = EgressGuard().refusal(address)
    assert reason is not None
    assert "LIENTHONG_NOTIFY_WEBHOOK_ALLOW" in reason


@pytest.mark.parametrize("address", ["8.8.8.8", "203.162.4.190", "2001:4860:4860::8888"])
def test_public_addresses_and_names_pass(address: str) -> None:
    assert EgressGuard().refusal(address) is None
    assert EgressGuard().refusal("hooks.agency.example") is None  # names: judged resolved


def test_the_operator_allowlist_admits_exactly_its_networks() -> None:
    guard = EgressGuard.of(["10.20.0.0/16", "127.0.0.1"])
    assert guard.refusal("10.20.7.7") is None
    assert guard.refusal("127.0.0.1") is None
    assert guard.refusal("10.21.0.1") is not None
    assert guard.refusal("127.0.0.2") is not None


def test_a_bad_allowlist_entry_is_named_at_start() -> None:
    problems = Settings(webhook_allow=("10.0.0.0/8", "intranet")).validate()
    assert any(
        p.startswith("LIENTHONG_NOTIFY_WEBHOOK_ALLOW") and "'intranet'" in p for p in problems
    )


async def test_a_name_is_judged_by_what_it_resolves_to() -> None:
    assert await EgressGuard().check_host("localhost") is not None
    assert await EgressGuard().check_host("169.254.169.254") is not None
    # not resolvable (yet): the check at send time decides
    assert await EgressGuard().check_host("no-such-host.invalid") is None


class Rebinding(AbstractResolver):
    """A name that answers a public address first and an internal one afterwards."""

    def __init__(self) -> None:
        self.answers = ["93.184.215.14", "10.0.0.5"]

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = self.answers.pop(0)
        return [
            ResolveResult(hostname=host, host=address, port=port, family=family, proto=0, flags=0)
        ]

    async def close(self) -> None:
        pass


async def test_dns_rebinding_is_refused_on_the_addresses_the_connection_uses() -> None:
    resolver = GuardedResolver(EgressGuard(), Rebinding())
    first = await resolver.resolve("hooks.agency.example", 443)
    assert [r["host"] for r in first] == ["93.184.215.14"]
    with pytest.raises(ForbiddenTarget, match=r"hooks\.agency\.example resolves to 10\.0\.0\.5"):
        await resolver.resolve("hooks.agency.example", 443)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[tuple[int, list[Any]]]]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> tuple[int, list[Any]]:
        seen: list[Any] = []

        async def record(request: web.Request) -> web.StreamResponse:
            seen.append(request.path)
            return await handler(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return runner.addresses[0][1], seen

    yield start
    for runner in runners:
        await runner.cleanup()


async def ok(_: web.Request) -> web.StreamResponse:
    return web.Response(text="ok")


async def test_loopback_is_refused_by_address_and_by_name_unless_allowed(
    serve: Callable[[Handler], Awaitable[tuple[int, list[Any]]]],
) -> None:
    port, seen = await serve(ok)
    guarded = HttpClient(5.0, EgressGuard())
    allowed = HttpClient(5.0, EgressGuard.of(["127.0.0.0/8", "::1/128"]))
    try:
        for host in ("127.0.0.1", "localhost"):
            with pytest.raises(CannotSend, match="loopback address: webhooks may not call it"):
                await guarded.call(
                    "POST", f"http://{host}:{port}/hook", body=b"{}", headers={}, what="the webhook"
                )
        assert seen == []  # nothing reached the server
        await allowed.call(
            "POST", f"http://127.0.0.1:{port}/hook", body=b"{}", headers={}, what="the webhook"
        )
        assert seen == ["/hook"]
    finally:
        await guarded.close()
        await allowed.close()


async def test_redirects_are_not_followed(
    serve: Callable[[Handler], Awaitable[tuple[int, list[Any]]]],
) -> None:
    inner_port, inner_seen = await serve(ok)

    async def bounce(_: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"http://127.0.0.1:{inner_port}/admin")

    port, _ = await serve(bounce)
    client = HttpClient(5.0, EgressGuard.of(["127.0.0.1/32"]))
    try:
        with pytest.raises(SendFailed, match=r"HTTP 302 .*redirects are not followed"):
            await client.call(
                "POST", f"http://127.0.0.1:{port}/hook", body=b"{}", headers={}, what="the webhook"
            )
    finally:
        await client.close()
    assert inner_seen == []


async def test_an_error_reply_is_read_no_further_than_the_excerpt(
    serve: Callable[[Handler], Awaitable[tuple[int, list[Any]]]],
) -> None:
    async def flood(request: web.Request) -> web.StreamResponse:
        reply = web.StreamResponse(status=500)
        await reply.prepare(request)
        for _ in range(64):  # 64 MiB, if anyone read it all
            await reply.write(b"x" * (1024 * 1024))
        return reply

    port, _ = await serve(flood)
    client = HttpClient(30.0, EgressGuard.of(["127.0.0.1/32"]))
    try:
        with pytest.raises(SendFailed) as failed:
            await client.call(
                "POST", f"http://127.0.0.1:{port}/hook", body=b"{}", headers={}, what="the webhook"
            )
    finally:
        await client.close()
    message = str(failed.value)
    assert message.startswith("HTTP 500 from the webhook: xxx")
    assert message.count("x") == REPLY_EXCERPT
