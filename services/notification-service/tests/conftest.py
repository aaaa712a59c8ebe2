"""Real servers on loopback for notification-service's channels: an SMTP server (aiosmtpd),
and HTTP servers (aiohttp) standing in for an SMS gateway and an agency's webhook receiver."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from lienthong_testing.ports import free_port


class Mailbox:
    """What the SMTP server received (aiosmtpd runs it in its own thread)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.port = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[Mailbox]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    mailbox.port = controller.port
    yield mailbox
    controller.stop()


@dataclass
class HttpRecorder:
    """A loopback HTTP server: records each request and answers per ``behaviour``:
    "ok"; "fail-twice" (503, 503, then 200); "fail" (always 503); "hold" (answers once
    ``release`` is set). ``check`` refuses a request with 401 (the webhook's signature)."""

    url: str = ""
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    accepted: list[bytes] = field(default_factory=list)
    behaviour: str = "ok"
    release: asyncio.Event = field(default_factory=asyncio.Event)
    check: Callable[[dict[str, str], bytes], bool] | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers)
        self.requests.append((headers, body))
        if self.behaviour == "fail" or (self.behaviour == "fail-twice" and len(self.requests) <= 2):
            return web.Response(status=503, text="gateway overloaded")
        if self.behaviour == "hold":
            await self.release.wait()
        if self.check is not None and not self.check(headers, body):
            return web.Response(status=401, text="bad or stale signature")
        self.accepted.append(body)
        return web.json_response({"status": "queued"})


@pytest.fixture
async def http_server() -> AsyncIterator[Callable[[], Awaitable[HttpRecorder]]]:
    started: list[tuple[web.AppRunner, HttpRecorder]] = []

    async def start() -> HttpRecorder:
        recorder = HttpRecorder()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", recorder.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        started.append((runner, recorder))
        recorder.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
        return recorder

    yield start
    for runner, recorder in started:
        recorder.release.set()  # a held request must finish for the server to stop
        await runner.cleanup()
