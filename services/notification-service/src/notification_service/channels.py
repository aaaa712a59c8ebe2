"""The outbound channels: e-mail over SMTP, SMS over a generic HTTP gateway, signed webhooks.

Each channel's ``send(job)`` returns when the other side accepted the notification, or raises
:class:`SendFailed` (worth retrying) or :class:`CannotSend` (retrying cannot help: no address,
the channel is not configured). A webhook is signed::

    X-Lienthong-Timestamp: 1763912345
    X-Lienthong-Signature: hex(HMAC-SHA256(contact secret, "1763912345." + body))

(docs/notification.md shows the receiver's check).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from email.header import Header
from email.mime.text import MIMEText
from email.utils import formatdate
from string import Template
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
import aiosmtplib

from lienthong_kit.mongo import Doc
from notification_service.egress import EgressGuard, ForbiddenTarget, GuardedResolver
from notification_service.settings import Settings
from notification_service.store import NotificationStore

__all__ = [
    "CannotSend",
    "Channel",
    "EmailChannel",
    "HttpClient",
    "SendFailed",
    "SmsChannel",
    "WebhookChannel",
    "sign",
]

SIGNATURE_HEADER = "X-Lienthong-Signature"
TIMESTAMP_HEADER = "X-Lienthong-Timestamp"
ID_HEADER = "X-Lienthong-Notification-Id"
#: bytes of an error reply read (and shown to operators as the failure's reason)
REPLY_EXCERPT = 200


class SendFailed(Exception):
    """This attempt failed; a later one may succeed."""


class CannotSend(Exception):
    """No attempt can succeed (missing address or configuration)."""


class Channel(Protocol):
    name: str

    async def send(self, job: Doc) -> None: ...


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The webhook signature: hex HMAC-SHA256 over ``timestamp + "." + body``."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class HttpClient:
    """One aiohttp session for the service, made inside the running loop, closed on stop.

    Redirects are never followed (a receiver could bounce a call anywhere) and no more than
    ``REPLY_EXCERPT`` bytes of a reply are read. With a ``guard`` the session's resolver
    refuses names resolving to internal addresses, and address literals are checked here
    (aiohttp does not resolve them): egress.py."""

    def __init__(self, timeout_seconds: float, guard: EgressGuard | None = None) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None
        self._guard = guard

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = (
                # the DNS cache off: each send is checked on the addresses it connects to
                aiohttp.TCPConnector(resolver=GuardedResolver(self._guard), use_dns_cache=False)
                if self._guard is not None
                else None
            )
            self._session = aiohttp.ClientSession(timeout=self._timeout, connector=connector)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(
        self, method: str, url: str, *, body: bytes, headers: dict[str, str], what: str
    ) -> None:
        if self._guard is not None:
            refused = self._guard.refusal(urlsplit(url).hostname or "")
            if refused is not None:
                raise CannotSend(f"{what}: {refused}")
        try:
            async with self.session().request(
                method, url, data=body, headers=headers, allow_redirects=False
            ) as reply:
                if reply.status // 100 != 2:
                    excerpt = await _excerpt(reply)
                    moved = " (redirects are not followed)" if reply.status // 100 == 3 else ""
                    raise SendFailed(f"HTTP {reply.status} from {what}{moved}: {excerpt}")
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, ForbiddenTarget):
                raise CannotSend(f"{what}: {exc.os_error}") from exc
            raise SendFailed(f"{what} unreachable: {type(exc).__name__}: {exc}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SendFailed(f"{what} unreachable: {type(exc).__name__}: {exc}") from exc


async def _excerpt(reply: aiohttp.ClientResponse) -> str:
    """The start of a reply's body, read no further than ``REPLY_EXCERPT`` bytes."""
    data = b""
    while len(data) < REPLY_EXCERPT:
        chunk = await reply.content.read(REPLY_EXCERPT - len(data))
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", errors="replace")


class EmailChannel:
    name = "email"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def send(self, job: Doc) -> None:
        settings = self._settings
        if not settings.smtp_host:
            raise CannotSend("e-mail is not configured (LIENTHONG_SMTP_HOST is empty)")
        if not job["address"]:
            raise CannotSend("the contact has no e-mail address")
        # compat32 MIMEText + Header: the default policy's header folding drops the space
        # before a Vietnamese word that starts a new encoded word ("H23 đã" -> "H23đã")
        message = MIMEText(
            f"{job['body']}\n\n-- \nHệ thống liên thông văn bản điện tử\n", "plain", "utf-8"
        )
        message["From"] = settings.smtp_from
        message["To"] = job["address"]
        message["Subject"] = Header(job["title"], "utf-8")  # type: ignore[assignment]
        message["X-Lienthong-Notification-Id"] = job["_id"]
        message["Date"] = formatdate(localtime=False)
        try:
            await aiosmtplib.send(
                message,
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username or None,
                password=settings.smtp_password or None,
                use_tls=settings.smtp_tls,
                start_tls=settings.smtp_starttls,
                timeout=settings.send_timeout_seconds,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise SendFailed(f"SMTP {settings.smtp_host}: {type(exc).__name__}: {exc}") from exc


def _json_text(value: str) -> str:
    """A string as it goes between the quotes of a JSON template."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


class SmsChannel:
    name = "sms"

    def __init__(self, settings: Settings, http: HttpClient) -> None:
        self._settings = settings
        self._http = http
        self._template = Template(settings.sms_body_template)
        self._headers = {"Content-Type": "application/json; charset=utf-8"}
        if settings.sms_auth_header:
            header, _, value = settings.sms_auth_header.partition(":")
            self._headers[header.strip()] = value.strip()

    async def send(self, job: Doc) -> None:
        if not self._settings.sms_url:
            raise CannotSend("SMS is not configured (LIENTHONG_SMS_URL is empty)")
        phone = job["address"]
        if not phone:
            raise CannotSend("the contact has no mobile number")
        text = f"{job['title']}. {job['body']}"[:480]
        body = self._template.substitute(
            phone=_json_text(phone),
            phone_local=_json_text("0" + phone.removeprefix("+84")),
            text=_json_text(text),
            id=_json_text(job["_id"]),
        )
        await self._http.call(
            self._settings.sms_method,
            self._settings.sms_url,
            body=body.encode(),
            headers=self._headers,
            what="the SMS gateway",
        )


class WebhookChannel:
    name = "webhook"

    def __init__(self, store: NotificationStore, http: HttpClient) -> None:
        self._store = store
        self._http = http

    async def send(self, job: Doc) -> None:
        contact = await self._store.contact(job["contact_id"])
        if contact is None or not contact.webhook_url or not contact.webhook_secret:
            raise CannotSend("the contact has no webhook URL and secret any more")
        body = json.dumps(
            {
                "notification_id": job["_id"],
                "kind": job["kind"],
                "unit_code": job["unit_code"],
                "contact_id": job["contact_id"],
                "title": job["title"],
                "body": job["body"],
                "urgent": job["urgent"],
                "facts": job["facts"],
            },
            ensure_ascii=False,
            sort_keys=True,
        ).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(contact.webhook_secret, timestamp, body),
            ID_HEADER: job["_id"],
        }
        await self._http.call(
            "POST", contact.webhook_url, body=body, headers=headers, what="the webhook"
        )
