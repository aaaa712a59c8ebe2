"""What each lifecycle event adds to the adoption counts: pure functions, no I/O.

An event becomes zero or more :class:`Fact` instructions, each adding 1 to one count of one
unit on one day (Vietnam time, UTC+7, from the event's business timestamp). A fact has a
``key`` naming what it counts (the document, delivery or paper registration and the count),
so the same event delivered twice, or published twice by an outbox, gives the same key: the
worker stores the keys it applied and counts a key once (app.py).

:class:`Counts` holds the folded counts per unit for each day, month and year a fact falls in,
so a report for any period reads one entry per unit.
"""

from __future__ import annotations

import calendar
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import TypeVar

from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp

from lienthong.events.v1.events_pb2 import (
    DeliveryCreated,
    DeliveryStatusChanged,
    DocumentSubmitted,
    DocumentVerified,
    PaperDocumentRegistered,
)
from lienthong_kit.envelope import EventEnvelope
from lienthong_kit.errors import FieldViolation, InvalidArgument, PoisonEvent
from lienthong_kit.vocabulary import StatusCode, vietnam_time

__all__ = [
    "Count",
    "Counts",
    "Fact",
    "check_period",
    "days_of_period",
    "facts_for",
    "periods_of_day",
    "vn_day",
]


class Count(StrEnum):
    """What a fact adds 1 to; the values are stored in the facts table (never rename one)."""

    INCOMING_NET = "incoming_over_network"
    INCOMING_PAPER = "incoming_on_paper"
    OUTGOING_NET = "outgoing_over_network"
    OUTGOING_PAPER = "outgoing_on_paper"
    SIGNED_PERSONAL = "outgoing_personal_signed"
    SIGNED_ORGANISATION = "outgoing_organisation_signed"
    ACKNOWLEDGED = "deliveries_acknowledged"
    ACK_SAME_DAY = "acknowledged_same_day"
    HANDLED_BEFORE = "handled_before_due"
    HANDLED_ON = "handled_on_due"
    HANDLED_AFTER = "handled_after_due"


# A recipient acknowledges receipt by refusing or registering the delivery; the first such
# change counts.
_ACK_CODES = frozenset({StatusCode.REFUSED, StatusCode.REGISTERED})
_PERIOD = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


@dataclass(frozen=True)
class Fact:
    """Add 1 to ``count`` of ``unit`` on ``day``; ``key`` identifies it for de-duplication."""

    key: str
    unit: str
    day: str
    count: Count


def vn_day(moment: datetime) -> str:
    return vietnam_time(moment).date().isoformat()


M = TypeVar("M", bound=Message)

# Vietnam's fixed offset (vocabulary.VIETNAM) and the last second whose Vietnam day is a date
_VN_OFFSET = 7 * 3600
_LAST_VN_SECOND = 253402300799 - _VN_OFFSET  # 9999-12-31 23:59:59 in Vietnam
_EPOCH = date(1970, 1, 1)


@lru_cache(maxsize=4096)
def _iso_day(epoch_day: int) -> str:
    return (_EPOCH + timedelta(days=epoch_day)).isoformat()


def _day(timestamp: Timestamp, what: str) -> str:
    seconds = timestamp.seconds
    if seconds <= 0:
        raise PoisonEvent(f"{what} is not set")
    # integer arithmetic and a cache instead of a datetime per event (docs/benchmarks.md)
    if seconds <= _LAST_VN_SECOND and 0 <= timestamp.nanos < 1_000_000_000:
        return _iso_day((seconds + _VN_OFFSET) // 86400)
    try:
        return vn_day(timestamp.ToDatetime(UTC))
    except (ValueError, OverflowError) as exc:  # out of 0001-9999 or bad nanos
        raise PoisonEvent(f"{what} is out of range: {exc}") from exc


def _unit(code: str, what: str) -> str:
    if not code:
        raise PoisonEvent(f"{what} is empty")
    return code


def _id(value: str, what: str) -> str:
    if not value:
        raise PoisonEvent(f"{what} is empty")
    return value


def facts_for(envelope: EventEnvelope) -> list[Fact]:
    """The counts an event adds (events that count nothing give []); PoisonEvent when an
    event that should count lacks what it needs (dead-lettered by the caller)."""
    # the payload's type name (as Any.TypeName) picks the handler: one lookup per event
    handler = _HANDLERS.get(envelope.payload.type_url.rpartition("/")[2])
    return handler(envelope) if handler is not None else []


def _payload(envelope: EventEnvelope, cls: type[M]) -> M:
    """The payload as ``cls`` (its type already matched): lienthong_kit.envelope.unpack
    without checking the type name again."""
    message = cls()
    try:
        message.ParseFromString(envelope.payload.value)
    except DecodeError as exc:  # the right type name over corrupt bytes
        raise PoisonEvent(f"payload does not decode as {cls.DESCRIPTOR.full_name}: {exc}") from exc
    return message


def _submitted(envelope: EventEnvelope) -> list[Fact]:
    document = _payload(envelope, DocumentSubmitted).document
    doc_id = _id(document.document_id, "document.document_id")
    sender = _unit(document.sender_code, "document.sender_code")
    day = _day(document.submitted_at, "document.submitted_at")
    return [Fact(f"{doc_id}:{Count.OUTGOING_NET}", sender, day, Count.OUTGOING_NET)]


def _delivery_created(envelope: EventEnvelope) -> list[Fact]:
    delivery = _payload(envelope, DeliveryCreated)
    delivery_id = _id(delivery.delivery_id, "delivery_id")
    recipient = _unit(delivery.recipient_code, "recipient_code")
    day = _day(envelope.occurred_at, "occurred_at")
    return [Fact(f"{delivery_id}:{Count.INCOMING_NET}", recipient, day, Count.INCOMING_NET)]


def _paper_registered(envelope: EventEnvelope) -> list[Fact]:
    paper = _payload(envelope, PaperDocumentRegistered)
    paper_id = _id(paper.paper_document_id, "paper_document_id")
    unit = _unit(paper.unit_code, "unit_code")
    day = _day(paper.registered_at, "registered_at")
    if paper.direction == "incoming":
        count: Count = Count.INCOMING_PAPER
    elif paper.direction == "outgoing":
        count = Count.OUTGOING_PAPER
    else:
        raise PoisonEvent(f"direction {paper.direction!r} is neither incoming nor outgoing")
    return [Fact(f"{paper_id}:{count}", unit, day, count)]


def _verified(envelope: EventEnvelope) -> list[Fact]:
    verified = _payload(envelope, DocumentVerified)
    document = verified.document
    doc_id = _id(document.document_id, "document.document_id")
    sender = _unit(document.sender_code, "document.sender_code")
    # Counted in the period of the submission, beside the outgoing count it is a share of.
    day = _day(document.submitted_at, "document.submitted_at")
    signed = []
    if verified.personal_signature_valid:
        signed.append(Count.SIGNED_PERSONAL)
    if verified.organisation_signature_valid:
        signed.append(Count.SIGNED_ORGANISATION)
    return [Fact(f"{doc_id}:{count}", sender, day, count) for count in signed]


def _status_changed(envelope: EventEnvelope) -> list[Fact]:
    return _status_facts(_payload(envelope, DeliveryStatusChanged))


def _status_facts(changed: DeliveryStatusChanged) -> list[Fact]:
    delivery_id = _id(changed.delivery_id, "delivery_id")
    recipient = _unit(changed.recipient_code, "recipient_code")
    facts: list[Fact] = []

    def add(day: str, count: Count) -> None:
        facts.append(Fact(f"{delivery_id}:{count}", recipient, day, count))

    first_change = changed.previous_status_code in ("", StatusCode.ARRIVED)
    if changed.reported_code in _ACK_CODES and first_change:
        day = _day(changed.changed_at, "changed_at")
        add(day, Count.ACKNOWLEDGED)
        if _day(changed.delivered_at, "delivered_at") == day:
            add(day, Count.ACK_SAME_DAY)
    if changed.status_code == StatusCode.DONE and changed.previous_status_code != StatusCode.DONE:
        due = changed.document.due_at
        if due.seconds > 0:  # without a due date there is nothing to be early or late for
            day = _day(changed.changed_at, "changed_at")
            due_day = _day(due, "document.due_at")
            if day < due_day:
                count = Count.HANDLED_BEFORE
            else:
                count = Count.HANDLED_ON if day == due_day else Count.HANDLED_AFTER
            facts.append(Fact(f"{delivery_id}:handled", recipient, day, count))
    return facts


_HANDLERS: dict[str, Callable[[EventEnvelope], list[Fact]]] = {
    DocumentSubmitted.DESCRIPTOR.full_name: _submitted,
    DeliveryCreated.DESCRIPTOR.full_name: _delivery_created,
    PaperDocumentRegistered.DESCRIPTOR.full_name: _paper_registered,
    DocumentVerified.DESCRIPTOR.full_name: _verified,
    DeliveryStatusChanged.DESCRIPTOR.full_name: _status_changed,
}


def periods_of_day(day: str) -> tuple[str, str, str]:
    """The year, month and day periods a Vietnam day falls in: ("2026", "2026-11", day)."""
    return day[:4], day[:7], day


class Counts:
    """Folded counts: ``of(unit, period)`` for a year, month or day. ``version`` grows with
    every change (watchers compare it)."""

    def __init__(self) -> None:
        self._counts: defaultdict[tuple[str, str], Counter[Count]] = defaultdict(Counter)
        self._units_by_period: defaultdict[str, set[str]] = defaultdict(set)
        self.version = 0

    def add(self, fact: Fact) -> None:
        self.add_all((fact,))

    def add_all(self, facts: Iterable[Fact]) -> None:
        counts, units_by_period = self._counts, self._units_by_period
        # a batch's facts share few (unit, day, count) triples: each is added once, by its number
        grouped = Counter([(fact.unit, fact.day, fact.count) for fact in facts])
        for (unit, day, count), number in grouped.items():
            for period in (day[:4], day[:7], day):  # periods_of_day, inlined
                counts[(unit, period)][count] += number
                units_by_period[period].add(unit)
        self.version += grouped.total()

    def clear(self) -> None:
        self._counts.clear()
        self._units_by_period.clear()
        self.version += 1

    def of(self, unit: str, period: str) -> Counter[Count]:
        return self._counts.get((unit, period)) or Counter()

    def units_in(self, period: str) -> set[str]:
        """Units with anything counted in the period."""
        return set(self._units_by_period.get(period, ()))


def check_period(period: str) -> str:
    """The period if it is a valid yyyy, yyyy-MM or yyyy-MM-dd; InvalidArgument otherwise."""
    days_of_period(period)
    return period


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
