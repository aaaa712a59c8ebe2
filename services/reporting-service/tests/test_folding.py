from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lienthong.common.v1.common_pb2 import DocumentSummary
from lienthong.events.v1.events_pb2 import DeliveryCreated, DocumentSubmitted, DocumentVerified
from lienthong_kit.envelope import new_event
from lienthong_kit.errors import InvalidArgument
from reporting_service.folding import (
    INCOMING_NET,
    OUTGOING_NET,
    Fold,
    apply_fold,
    days_of_period,
    folds_for,
)


def test_a_submitted_document_counts_outgoing_for_the_sender_on_its_vietnam_day() -> None:
    summary = DocumentSummary(document_id="d", sender_code="S")
    summary.submitted_at.FromDatetime(datetime(2026, 11, 30, 18, 30, tzinfo=UTC))  # 01:30 ICT
    envelope = new_event(DocumentSubmitted(document=summary), producer="t")
    assert folds_for(envelope) == [Fold(envelope.event_id, "S", "2026-12-01", OUTGOING_NET)]


def test_a_delivery_counts_incoming_for_the_recipient() -> None:
    moment = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    envelope = new_event(DeliveryCreated(recipient_code="R"), producer="t", occurred_at=moment)
    assert folds_for(envelope) == [Fold(envelope.event_id, "R", "2026-11-23", INCOMING_NET)]


def test_other_events_count_nothing() -> None:
    assert folds_for(new_event(DocumentVerified(), producer="t")) == []


def test_an_event_applied_twice_counts_once() -> None:
    fold = Fold("e1", "S", "2026-11-23", OUTGOING_NET)
    once = apply_fold({}, fold)
    assert once is not None
    assert once[OUTGOING_NET] == 1
    assert apply_fold(once, fold) is None
    twice = apply_fold(once, Fold("e2", "S", "2026-11-23", OUTGOING_NET))
    assert twice is not None
    assert twice[OUTGOING_NET] == 2


@pytest.mark.parametrize(
    ("period", "count", "first", "last"),
    [
        pytest.param("2026-11-23", 1, "2026-11-23", "2026-11-23", id="day"),
        pytest.param("2024-02", 29, "2024-02-01", "2024-02-29", id="leap-february"),
        pytest.param("2026", 365, "2026-01-01", "2026-12-31", id="year"),
    ],
)
def test_days_of_a_period(period: str, count: int, first: str, last: str) -> None:
    days = days_of_period(period)
    assert (len(days), days[0], days[-1]) == (count, first, last)


@pytest.mark.parametrize("period", ["", "2026-13", "26-11", "2026-02-30"])
def test_bad_periods_are_refused(period: str) -> None:
    with pytest.raises(InvalidArgument, match="period"):
        days_of_period(period)
