"""Checks of contacts, groups and subscriptions: every violation of a request at once.

violations = Violations()
phone = check_contact(request.contact, violations)   # normalised values
violations.raise_if_any()                            # INVALID_ARGUMENT naming each field
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from lienthong.notification.v1 import notification_service_pb2 as pb
from lienthong_kit.errors import Violations
from notification_service.messages import KINDS
from notification_service.settings import CHANNELS

__all__ = [
    "ROLES",
    "check_contact",
    "check_group",
    "check_subscription",
    "normalise_phone",
    "valid_email",
]

ROLES = ("clerk", "leader")

# A practical address check (RFC 5322's full grammar is not what people type): one @, a
# local part of visible characters, a domain of dot-separated labels with a 2+ letter TLD.
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
# Vietnamese mobile numbers since the 2018 renumbering: 0 + 3/5/7/8/9 + 8 digits, or +84/84.
_MOBILE = re.compile(r"^(?:\+84|84|0)([35789]\d{8})$")
_GROUP_CODE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
# Bounds of what a client sends (the proto comments say the same).
MAX_URL = 2048
MAX_SECRET = 256
MAX_GROUPS_OF_CONTACT = 50
MAX_ID = 64


def valid_email(address: str) -> bool:
    if len(address) > 254 or ".." in address:
        return False
    return _EMAIL.match(address) is not None and len(address.split("@")[0]) <= 64


def normalise_phone(raw: str) -> str | None:
    """``"0912 345 678"``, ``"+84912345678"`` -> ``"+84912345678"``; None if not a mobile."""
    compact = re.sub(r"[\s.()-]", "", raw)
    match = _MOBILE.match(compact)
    return f"+84{match.group(1)}" if match else None


def check_contact(
    contact: pb.Contact, violations: Violations, *, has_stored_secret: bool = False
) -> str:
    """Check a contact to be stored; returns the normalised phone ("" when none).
    ``has_stored_secret``: the contact exists with a webhook secret, kept when none is sent."""
    name = contact.name.strip()
    violations.require(bool(name), "contact.name", "is required")
    violations.require(len(name) <= 200, "contact.name", "at most 200 characters")
    violations.require(contact.role in ROLES, "contact.role", f"must be one of {', '.join(ROLES)}")
    if contact.email:
        violations.require(
            valid_email(contact.email), "contact.email", "is not a valid e-mail address"
        )
    phone = ""
    if contact.phone:
        normalised = normalise_phone(contact.phone)
        violations.require(
            normalised is not None,
            "contact.phone",
            "is not a Vietnamese mobile number (10 digits starting 03, 05, 07, 08 or 09,"
            " or +84 and 9 digits)",
        )
        phone = normalised or ""
    violations.require(len(contact.contact_id) <= MAX_ID, "contact.contact_id", "at most 64")
    if contact.webhook_secret:
        violations.require(
            16 <= len(contact.webhook_secret) <= MAX_SECRET,
            "contact.webhook_secret",
            f"16 to {MAX_SECRET} characters",
        )
    if len(contact.webhook_url) > MAX_URL:
        violations.add("contact.webhook_url", f"at most {MAX_URL} characters")
    elif contact.webhook_url:
        parts = urlsplit(contact.webhook_url)
        violations.require(
            parts.scheme in ("http", "https") and bool(parts.hostname),
            "contact.webhook_url",
            "must be an http(s) URL with a host",
        )
        violations.require(
            bool(contact.webhook_secret) or has_stored_secret,
            "contact.webhook_secret",
            "is required with a webhook URL (at least 16 characters)",
        )
    elif contact.webhook_secret:
        violations.add("contact.webhook_url", "is required with a webhook secret")
    groups = list(contact.group_codes)
    if not violations.require(
        len(groups) <= MAX_GROUPS_OF_CONTACT,
        "contact.group_codes",
        f"at most {MAX_GROUPS_OF_CONTACT} entries",
    ):
        groups = []  # one violation, not one per entry
    for index, code in enumerate(groups):
        violations.require(
            _GROUP_CODE.match(code) is not None,
            f"contact.group_codes[{index}]",
            "letters, digits, '-' and '_', at most 40",
        )
    return phone


def check_group(group: pb.Group, violations: Violations) -> None:
    violations.require(
        _GROUP_CODE.match(group.code) is not None,
        "group.code",
        "is required: letters, digits, '-' and '_', at most 40",
    )
    violations.require(bool(group.name.strip()), "group.name", "is required")
    violations.require(len(group.name) <= 200, "group.name", "at most 200 characters")


def check_subscription(subscription: pb.Subscription, violations: Violations) -> None:
    violations.require(
        len(subscription.contact_id) <= MAX_ID, "subscription.contact_id", f"at most {MAX_ID}"
    )
    targets = bool(subscription.contact_id) + bool(subscription.group_code)
    violations.require(
        targets == 1, "subscription.contact_id", "exactly one of contact_id and group_code"
    )
    violations.require(
        len(subscription.event_kinds) > 0, "subscription.event_kinds", "at least one kind"
    )
    kinds = list(subscription.event_kinds)
    if not violations.require(
        len(kinds) <= len(KINDS), "subscription.event_kinds", f"at most {len(KINDS)} entries"
    ):
        kinds = []
    for index, kind in enumerate(kinds):
        violations.require(
            kind in KINDS,
            f"subscription.event_kinds[{index}]",
            f"{kind!r} is not one of {', '.join(KINDS)}",
        )
    violations.require(
        len(subscription.channels) > 0, "subscription.channels", "at least one channel"
    )
    channels = list(subscription.channels)
    if not violations.require(
        len(channels) <= len(CHANNELS), "subscription.channels", f"at most {len(CHANNELS)} entries"
    ):
        channels = []
    for index, channel in enumerate(channels):
        violations.require(
            channel in CHANNELS,
            f"subscription.channels[{index}]",
            f"{channel!r} is not one of {', '.join(CHANNELS)}",
        )
