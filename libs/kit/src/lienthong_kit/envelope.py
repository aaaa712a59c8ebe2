"""The event envelope: every record on a lienthong topic is an ``EventEnvelope``.

    envelope = new_event(DocumentSubmitted(...), producer="document-service")
    envelope.event_type            # "document.submitted", derived from the payload's name
    submitted = unpack(envelope, DocumentSubmitted)   # PoisonEvent if it is something else

An event produced *because of* another uses :func:`derived_event_id`, so a redelivered input
yields the same output id and downstream de-duplication sees one event.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from lienthong.events.v1.envelope_pb2 import EventEnvelope
from lienthong_kit.context import current_trace_id
from lienthong_kit.errors import PoisonEvent

__all__ = [
    "EventEnvelope",
    "carries",
    "decode_envelope",
    "derived_event_id",
    "event_type_of",
    "new_event",
    "unpack",
]

M = TypeVar("M", bound=Message)

_NAMESPACE = uuid.UUID("6f1c3a52-8e1d-4c59-9b7e-2f4d3c1a0b9e")
_WORD = re.compile(r"[A-Z][a-z0-9]*")


def event_type_of(payload: Message | type[Message]) -> str:
    """``DocumentSubmitted`` -> ``document.submitted``."""
    name = payload.DESCRIPTOR.name
    return ".".join(word.lower() for word in _WORD.findall(name))


def derived_event_id(parent_event_id: str, *parts: str) -> str:
    """A deterministic id for an event caused by ``parent_event_id`` (and ``parts``)."""
    return str(uuid.uuid5(_NAMESPACE, "/".join((parent_event_id, *parts))))


def new_event(
    payload: Message,
    *,
    producer: str,
    event_id: str | None = None,
    trace_id: str | None = None,
    occurred_at: datetime | None = None,
) -> EventEnvelope:
    envelope = EventEnvelope(
        event_id=event_id or str(uuid.uuid4()),
        event_type=event_type_of(payload),
        producer=producer,
        trace_id=trace_id if trace_id is not None else current_trace_id(),
    )
    envelope.occurred_at.FromDatetime(occurred_at or datetime.now(UTC))
    envelope.payload.Pack(payload)
    return envelope


def decode_envelope(raw: bytes | None) -> EventEnvelope:
    """Parse a record value; PoisonEvent names what is wrong with it."""
    if not raw:
        raise PoisonEvent("empty record value: expected a lienthong.events.v1.EventEnvelope")
    envelope = EventEnvelope()
    try:
        envelope.ParseFromString(raw)
    except DecodeError as exc:
        raise PoisonEvent(f"not a protobuf EventEnvelope: {exc}") from exc
    if not envelope.event_id:
        raise PoisonEvent("envelope has no event_id")
    if not envelope.payload.type_url:
        raise PoisonEvent("envelope has no payload")
    return envelope


def carries(envelope: EventEnvelope, cls: type[Message]) -> bool:
    """Whether the envelope's payload is a ``cls``: ``if carries(envelope, DeliveryCreated):``."""
    return envelope.payload.TypeName() == cls.DESCRIPTOR.full_name


def unpack(envelope: EventEnvelope, cls: type[M]) -> M:
    message = cls()
    if not carries(envelope, cls):
        raise PoisonEvent(
            f"payload is {envelope.payload.type_url}, expected {cls.DESCRIPTOR.full_name}"
        )
    try:
        decoded = envelope.payload.Unpack(message)
    except DecodeError as exc:  # the right type name over corrupt bytes
        raise PoisonEvent(f"payload does not decode as {cls.DESCRIPTOR.full_name}: {exc}") from exc
    if not decoded:
        raise PoisonEvent(f"payload does not decode as {cls.DESCRIPTOR.full_name}")
    return message
