"""What each lifecycle event adds to the adoption counts: pure functions, no I/O.

An event becomes zero or more :class:`Fold` instructions, each for one unit on one day
(Vietnam time). Folding is keyed by ``(unit, day)`` and remembers the event ids it applied,
so an event delivered twice counts once.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

from lienthong.events.v1.events_pb2 import DeliveryCreated, DocumentSubmitted
from lienthong_kit.envelope import EventEnvelope, carries, unpack
from lienthong_kit.errors import FieldViolation, InvalidArgument

__all__ = ["COUNTS", "Fold", "apply_fold", "days_of_period", "folds_for", "vn_day"]

VN_TIME = timezone(timedelta(hours=7), "ICT")
OUTGOING_NET = "outgoing_over_network"
INCOMING_NET = "incoming_over_network"
COUNTS = (INCOMING_NET, OUTGOING_NET)
_PERIOD = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


@dataclass(frozen=True)
class Fold:
    event_id: str
    unit: str
    day: str
    metric: str


def vn_day(moment: datetime) -> str:
    return moment.astimezone(VN_TIME).date().isoformat()


def folds_for(envelope: EventEnvelope) -> list[Fold]:
    """The counts an event adds; events that count nothing give an empty list."""
    if carries(envelope, DocumentSubmitted):
        submitted = unpack(envelope, DocumentSubmitted)
        day = vn_day(submitted.document.submitted_at.ToDatetime(UTC))
        return [Fold(envelope.event_id, submitted.document.sender_code, day, OUTGOING_NET)]
    if carries(envelope, DeliveryCreated):
        delivery = unpack(envelope, DeliveryCreated)
        day = vn_day(envelope.occurred_at.ToDatetime(UTC))
        return [Fold(envelope.event_id, delivery.recipient_code, day, INCOMING_NET)]
    return []


def apply_fold(day_counts: dict[str, object], fold: Fold) -> dict[str, object] | None:
    """The new value of a (unit, day) row, or None when the event was already counted."""
    applied = list(day_counts.get("applied", []))  # type: ignore[call-overload]
    marker = f"{fold.event_id}:{fold.metric}"
    if marker in applied:
        return None
    updated = dict(day_counts)
    updated[fold.metric] = int(updated.get(fold.metric, 0)) + 1  # type: ignore[call-overload]
    updated["applied"] = [*applied, marker]
    return updated


def days_of_period(period: str) -> list[str]:
    """Every day of a period given as yyyy, yyyy-MM or yyyy-MM-dd."""
    if not _PERIOD.match(period):
        raise InvalidArgument([FieldViolation("period", "must be yyyy, yyyy-MM or yyyy-MM-dd")])
    parts = [int(part) for part in period.split("-")]
    try:
        if len(parts) == 3:
            return [date(*parts).isoformat()]
        if len(parts) == 2:
            first = date(parts[0], parts[1], 1)
            count = calendar.monthrange(parts[0], parts[1])[1]
        else:
            first = date(parts[0], 1, 1)
            count = 366 if calendar.isleap(parts[0]) else 365
    except ValueError as exc:
        raise InvalidArgument([FieldViolation("period", str(exc))]) from exc
    return [(first + timedelta(days=offset)).isoformat() for offset in range(count)]
