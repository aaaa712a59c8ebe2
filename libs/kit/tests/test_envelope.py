from __future__ import annotations

import pytest

from lienthong.common.v1.common_pb2 import DocumentSummary
from lienthong.events.v1.events_pb2 import DeliveryCreated, DocumentSubmitted
from lienthong_kit.envelope import (
    EventEnvelope,
    carries,
    decode_envelope,
    derived_event_id,
    event_type_of,
    new_event,
    unpack,
)
from lienthong_kit.errors import PoisonEvent


def test_event_type_is_derived_from_the_payload_name() -> None:
    assert event_type_of(DocumentSubmitted) == "document.submitted"
    assert event_type_of(DeliveryCreated()) == "delivery.created"


def test_round_trip_through_bytes() -> None:
    payload = DocumentSubmitted(document=DocumentSummary(document_id="d1", subject="Về việc"))
    envelope = new_event(payload, producer="document-service", trace_id="abc")
    decoded = decode_envelope(envelope.SerializeToString())
    assert decoded.event_type == "document.submitted"
    assert decoded.trace_id == "abc"
    assert carries(decoded, DocumentSubmitted)
    assert unpack(decoded, DocumentSubmitted).document.subject == "Về việc"


def test_derived_ids_are_deterministic_and_distinct() -> None:
    assert derived_event_id("e1", "000.00.00.H23") == derived_event_id("e1", "000.00.00.H23")
    assert derived_event_id("e1", "A") != derived_event_id("e1", "B")
    assert derived_event_id("e1", "A") != derived_event_id("e2", "A")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(b"", "empty record value", id="empty"),
        pytest.param(None, "empty record value", id="tombstone"),
        pytest.param(b"\xff\xfe not protobuf", "not a protobuf EventEnvelope", id="garbage"),
        pytest.param(EventEnvelope(event_type="x").SerializeToString(), "no event_id", id="no-id"),
        pytest.param(
            EventEnvelope(event_id="e").SerializeToString(), "no payload", id="no-payload"
        ),
    ],
)
def test_undecodable_records_are_poison(raw: bytes | None, reason: str) -> None:
    with pytest.raises(PoisonEvent, match=reason):
        decode_envelope(raw)


def test_unpacking_the_wrong_type_is_poison() -> None:
    envelope = new_event(DeliveryCreated(delivery_id="x"), producer="routing-service")
    with pytest.raises(PoisonEvent, match=r"expected lienthong\.events\.v1\.DocumentSubmitted"):
        unpack(envelope, DocumentSubmitted)
