"""notification-service's settings: the channels, retries, rate limits, reminders, quiet hours.

    settings = load_settings(Settings)   # every problem reported at once

A channel whose endpoint is not configured (no SMTP host, no SMS gateway URL) still records
its jobs; they fail with that reason and land in the dead letters, visible to operators.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import time
from string import Template

from lienthong_kit.settings import KitSettings, setting
from notification_service.egress import parse_networks

__all__ = ["CHANNELS", "Settings", "parse_quiet_hours"]

# The channels a subscription can choose (in-app notices go to the unit regardless).
CHANNELS = ("email", "sms", "webhook")

_QUIET = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


def parse_quiet_hours(raw: str) -> tuple[time, time] | None:
    """``"22:00-07:00"`` -> (22:00, 07:00); ``""`` -> None (no quiet hours)."""
    if not raw.strip():
        return None
    match = _QUIET.match(raw.strip())
    if match is None:
        raise ValueError(f"{raw!r} is not HH:MM-HH:MM")
    start_h, start_m, end_h, end_m = (int(part) for part in match.groups())
    if start_h > 23 or end_h > 23 or start_m > 59 or end_m > 59:
        raise ValueError(f"{raw!r} is not HH:MM-HH:MM")
    start, end = time(start_h, start_m), time(end_h, end_m)
    if start == end:
        raise ValueError(f"{raw!r} is empty: start and end are the same")
    return start, end


@dataclass(frozen=True, kw_only=True)
class Settings(KitSettings):
    smtp_host: str = setting(
        "LIENTHONG_SMTP_HOST", "", doc="SMTP server for e-mail; empty = e-mail jobs fail"
    )
    smtp_port: int = setting("LIENTHONG_SMTP_PORT", 25, doc="SMTP port (465 implicit TLS, 587)")
    smtp_from: str = setting(
        "LIENTHONG_SMTP_FROM", "lienthong@localhost", doc="From address of notification e-mail"
    )
    smtp_tls: bool = setting("LIENTHONG_SMTP_TLS", False, doc="implicit TLS (SMTPS, port 465)")
    smtp_starttls: bool = setting(
        "LIENTHONG_SMTP_STARTTLS", False, doc="upgrade the connection with STARTTLS"
    )
    smtp_username: str = setting("LIENTHONG_SMTP_USERNAME", "", doc="SMTP login; empty = none")
    smtp_password: str = setting("LIENTHONG_SMTP_PASSWORD", "", doc="SMTP password")
    sms_url: str = setting(
        "LIENTHONG_SMS_URL", "", doc="the SMS gateway's HTTP endpoint; empty = SMS jobs fail"
    )
    sms_method: str = setting("LIENTHONG_SMS_METHOD", "POST", doc="HTTP method of the gateway")
    sms_body_template: str = setting(
        "LIENTHONG_SMS_BODY_TEMPLATE",
        '{"to": "$phone", "message": "$text"}',
        doc="JSON body; $phone (+84...), $phone_local (0...), $text, $id are substituted",
    )
    sms_auth_header: str = setting(
        "LIENTHONG_SMS_AUTH_HEADER",
        "",
        doc="'Name: value' header sent to the gateway, e.g. 'Authorization: Bearer ...'",
    )
    send_timeout_seconds: float = setting(
        "LIENTHONG_NOTIFY_SEND_TIMEOUT_SECONDS", 10.0, doc="time one send attempt may take"
    )
    max_attempts: int = setting(
        "LIENTHONG_NOTIFY_MAX_ATTEMPTS", 6, doc="sends tried before a notification is dead"
    )
    backoff_seconds: float = setting(
        "LIENTHONG_NOTIFY_BACKOFF_SECONDS", 2.0, doc="first retry delay; doubles, with jitter"
    )
    backoff_max_seconds: float = setting(
        "LIENTHONG_NOTIFY_BACKOFF_MAX_SECONDS", 600.0, doc="longest retry delay"
    )
    concurrency: int = setting(
        "LIENTHONG_NOTIFY_CONCURRENCY", 4, doc="sends in flight per channel per replica"
    )
    rate_email: float = setting(
        "LIENTHONG_NOTIFY_RATE_EMAIL", 10.0, doc="e-mails per second per replica (token bucket)"
    )
    rate_sms: float = setting("LIENTHONG_NOTIFY_RATE_SMS", 5.0, doc="SMS per second per replica")
    rate_webhook: float = setting(
        "LIENTHONG_NOTIFY_RATE_WEBHOOK", 20.0, doc="webhook calls per second per replica"
    )
    webhook_allow: tuple[str, ...] = setting(
        "LIENTHONG_NOTIFY_WEBHOOK_ALLOW",
        (),
        doc="IP networks webhooks may call although internal (loopback, private, link-local),"
        " e.g. 10.20.0.0/16; empty = public addresses only",
    )
    poll_seconds: float = setting(
        "LIENTHONG_NOTIFY_POLL_SECONDS",
        1.0,
        doc="how often workers look for due jobs (in memory: no store read)",
    )
    sweep_seconds: float = setting(
        "LIENTHONG_NOTIFY_SWEEP_SECONDS",
        60.0,
        doc="how often workers re-read every pending job (jobs of stopped replicas)",
    )
    reminder_lead_days: tuple[int, ...] = setting(
        "LIENTHONG_REMINDER_LEAD_DAYS", (3, 1), doc="reminders this many days before a due date"
    )
    reminder_overdue: bool = setting(
        "LIENTHONG_REMINDER_OVERDUE", True, doc="an overdue notice when the due date passes"
    )
    reminder_poll_seconds: float = setting(
        "LIENTHONG_REMINDER_POLL_SECONDS", 30.0, doc="how often the scheduler looks"
    )
    quiet_hours: str = setting(
        "LIENTHONG_QUIET_HOURS",
        "21:00-07:00",
        doc="Vietnam time (UTC+7) when routine e-mail/SMS wait; empty = none",
    )

    def validate(self) -> list[str]:
        problems = super().validate()
        try:
            parse_quiet_hours(self.quiet_hours)
        except ValueError as exc:
            problems.append(f"LIENTHONG_QUIET_HOURS: {exc}")
        try:
            rendered = Template(self.sms_body_template).substitute(
                phone="+84900000000", phone_local="0900000000", text="x", id="x"
            )
            json.loads(rendered)
        except (KeyError, ValueError) as exc:
            problems.append(f"LIENTHONG_SMS_BODY_TEMPLATE: not a JSON template: {exc}")
        if self.sms_auth_header and ":" not in self.sms_auth_header:
            problems.append("LIENTHONG_SMS_AUTH_HEADER: must be 'Name: value'")
        if self.sms_url and not self.sms_url.startswith(("http://", "https://")):
            problems.append("LIENTHONG_SMS_URL: must be an http(s) URL")
        try:
            parse_networks(self.webhook_allow)
        except ValueError as exc:
            problems.append(f"LIENTHONG_NOTIFY_WEBHOOK_ALLOW: {exc}")
        if self.smtp_tls and self.smtp_starttls:
            problems.append("LIENTHONG_SMTP_TLS and LIENTHONG_SMTP_STARTTLS exclude each other")
        if self.max_attempts < 1:
            problems.append("LIENTHONG_NOTIFY_MAX_ATTEMPTS: must be at least 1")
        if self.concurrency < 1:
            problems.append("LIENTHONG_NOTIFY_CONCURRENCY: must be at least 1")
        for name in ("rate_email", "rate_sms", "rate_webhook"):
            if getattr(self, name) <= 0:
                problems.append(f"LIENTHONG_NOTIFY_{name.upper()}: must be positive")
        for env, value in (
            ("LIENTHONG_NOTIFY_POLL_SECONDS", self.poll_seconds),
            ("LIENTHONG_NOTIFY_SWEEP_SECONDS", self.sweep_seconds),
        ):
            if value <= 0:
                problems.append(f"{env}: must be positive")
        if any(lead < 1 for lead in self.reminder_lead_days):
            problems.append("LIENTHONG_REMINDER_LEAD_DAYS: every lead is at least 1 day")
        return problems
