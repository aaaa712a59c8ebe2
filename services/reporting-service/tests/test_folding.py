from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from lienthong.common.v1.common_pb2 import DocumentSummary
from lienthong.events.v1.events_pb2 import (
    DeliveryCreated,
    DeliveryStatusChanged,
    DocumentSubmitted,
    DocumentVerified,
    NotificationRecorded,
    PaperDocumentRegistered,
)
from lienthong_kit.envelope import new_event
from lienthong_kit.errors import InvalidArgument, PoisonEvent
from reporting_service.folding import (
    Count,
    Counts,
    Fact,
    days_of_period,
    facts_for,
    vn_day,
)


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def summary(submitted: datetime, due: datetime | None = None) -> DocumentSummary:
    document = DocumentSummary(document_id="d1", sender_code="S")
    document.submitted_at.FromDatetime(submitted)
    if due is not None:
        document.due_at.FromDatetime(due)
    return document


def test_a_submitted_document_counts_outgoing_for_the_sender_on_its_vietnam_day() -> None:
    envelope = new_event(
        DocumentSubmitted(document=summary(at(2026, 11, 30, 18, 30))), producer="t"
    )
    assert facts_for(envelope) == [
        Fact(f"d1:{Count.OUTGOING_NET}", "S", "2026-12-01", Count.OUTGOING_NET)
    ]


def test_a_delivery_counts_incoming_for_the_recipient_when_it_arrives() -> None:
    payload = DeliveryCreated(delivery_id="v1", recipient_code="R")
    envelope = new_event(payload, producer="t", occurred_at=at(2026, 4, 30, 16, 59))
    assert facts_for(envelope) == [
        Fact(f"v1:{Count.INCOMING_NET}", "R", "2026-04-30", Count.INCOMING_NET)
    ]


@pytest.mark.parametrize(
    ("direction", "count"), [("incoming", Count.INCOMING_PAPER), ("outgoing", Count.OUTGOING_PAPER)]
)
def test_paper_documents_count_on_their_registration_day(direction: str, count: str) -> None:
    paper = PaperDocumentRegistered(paper_document_id="p1", unit_code="U", direction=direction)
    paper.registered_at.FromDatetime(at(2026, 4, 1, 2, 0))
    assert facts_for(new_event(paper, producer="t")) == [
        Fact(f"p1:{count}", "U", "2026-04-01", count)
    ]


def test_a_verdict_counts_each_valid_signature_in_the_period_of_the_submission() -> None:
    verified = DocumentVerified(
        document=summary(at(2026, 4, 3, 1, 0)),
        personal_signature_valid=True,
        organisation_signature_valid=True,
    )
    facts = facts_for(new_event(verified, producer="t", occurred_at=at(2026, 5, 1)))
    assert [(f.key, f.day, f.count) for f in facts] == [
        (f"d1:{Count.SIGNED_PERSONAL}", "2026-04-03", Count.SIGNED_PERSONAL),
        (f"d1:{Count.SIGNED_ORGANISATION}", "2026-04-03", Count.SIGNED_ORGANISATION),
    ]
    unsigned = DocumentVerified(
        document=summary(at(2026, 4, 3)), organisation_signature_valid=False
    )
    assert facts_for(new_event(unsigned, producer="t")) == []


def status(
    reported: str,
    previous: str,
    delivered: datetime,
    changed: datetime,
    due: datetime | None = None,
) -> DeliveryStatusChanged:
    event = DeliveryStatusChanged(
        delivery_id="v1",
        recipient_code="R",
        document=summary(at(2026, 4, 1), due),
        status_code=reported,
        previous_status_code=previous,
        reported_code=reported,
    )
    event.delivered_at.FromDatetime(delivered)
    event.changed_at.FromDatetime(changed)
    return event


def test_a_first_acknowledgement_on_the_arrival_day_counts_as_same_day() -> None:
    # arrived 23:00 ICT on the 1st, registered 06:00 ICT on the 2nd: not the same day
    late = status("03", "01", at(2026, 4, 1, 16, 0), at(2026, 4, 1, 23, 0))
    assert [f.count for f in facts_for(new_event(late, producer="t"))] == [Count.ACKNOWLEDGED]
    same = status("03", "01", at(2026, 4, 1, 1, 0), at(2026, 4, 1, 9, 0))
    assert [f.count for f in facts_for(new_event(same, producer="t"))] == [
        Count.ACKNOWLEDGED,
        Count.ACK_SAME_DAY,
    ]
    later_change = status("05", "04", at(2026, 4, 1, 1, 0), at(2026, 4, 1, 9, 0))
    assert facts_for(new_event(later_change, producer="t")) == []


@pytest.mark.parametrize(
    ("done", "count"),
    [
        (at(2026, 4, 9, 16, 59), Count.HANDLED_BEFORE),  # 23:59 ICT on the 9th
        (at(2026, 4, 9, 17, 0), Count.HANDLED_ON),  # 00:00 ICT on the 10th
        (at(2026, 4, 10, 17, 0), Count.HANDLED_AFTER),
    ],
)
def test_done_is_before_on_or_after_the_due_day(done: datetime, count: str) -> None:
    due = at(2026, 4, 10, 3, 0)
    facts = facts_for(new_event(status("06", "05", at(2026, 4, 1), done, due), producer="t"))
    assert [(f.key, f.count) for f in facts] == [("v1:handled", count)]
    no_due = status("06", "05", at(2026, 4, 1), done)
    assert facts_for(new_event(no_due, producer="t")) == []


def test_other_events_count_nothing() -> None:
    assert facts_for(new_event(NotificationRecorded(unit_code="U"), producer="t")) == []


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (
            DocumentSubmitted(document=DocumentSummary(document_id="d", sender_code="S")),
            "submitted_at",
        ),
        (DeliveryCreated(delivery_id="v"), "recipient_code"),
        (
            PaperDocumentRegistered(paper_document_id="p", unit_code="U", direction="sideways"),
            "registered_at",
        ),
    ],
)
def test_an_event_missing_what_it_counts_by_is_poison(payload: object, reason: str) -> None:
    with pytest.raises(PoisonEvent, match=reason):
        facts_for(new_event(payload, producer="t"))  # type: ignore[arg-type]


def test_counts_are_kept_per_day_month_and_year() -> None:
    counts = Counts()
    counts.add(Fact("a", "U", "2026-04-30", Count.OUTGOING_NET))
    counts.add(Fact("b", "U", "2026-05-01", Count.OUTGOING_NET))
    assert counts.of("U", "2026-04-30")[Count.OUTGOING_NET] == 1
    assert counts.of("U", "2026-04")[Count.OUTGOING_NET] == 1
    assert counts.of("U", "2026")[Count.OUTGOING_NET] == 2
    assert counts.units_in("2026-05") == {"U"}
    assert counts.of("V", "2026")[Count.OUTGOING_NET] == 0


def test_a_batch_counts_as_its_facts_one_by_one() -> None:
    days = ["2026-04-30", "2026-05-01"]
    facts = [
        Fact(f"k{i}", unit, day, count)
        for i, (unit, day, count) in enumerate(
            (unit, day, count)
            for unit in ("U", "V")
            for day in days
            for count in (Count.OUTGOING_NET, Count.ACKNOWLEDGED)
            for _ in range(3)  # the same (unit, day, count) several times in one batch
        )
    ]
    batched, single = Counts(), Counts()
    batched.add_all(facts)
    for fact in facts:
        single.add(fact)
    for unit in ("U", "V"):
        for period in ("2026", "2026-04", "2026-05", *days):
            assert batched.of(unit, period) == single.of(unit, period)
    assert batched.of("U", "2026")[Count.ACKNOWLEDGED] == 6
    assert batched.units_in("2026-05") == {"U", "V"}
    assert batched.version == single.version == len(facts)


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


def test_an_out_of_range_timestamp_or_corrupt_payload_is_poison_not_a_crash() -> None:
    """Either would otherwise raise ValueError/DecodeError and restart the worker on the same
    record forever."""
    far = DocumentSubmitted(document=DocumentSummary(document_id="d", sender_code="S"))
    far.document.submitted_at.seconds = 400_000_000_000  # year ~14,700
    with pytest.raises(PoisonEvent, match="out of range"):
        facts_for(new_event(far, producer="t"))
    corrupt = new_event(DeliveryCreated(delivery_id="v", recipient_code="R"), producer="t")
    corrupt.payload.value = b"\xff\xff\xff"
    with pytest.raises(PoisonEvent, match="does not decode"):
        facts_for(corrupt)


@given(
    seconds=st.integers(min_value=1, max_value=253_402_300_799 + 86_400),
    nanos=st.integers(min_value=-1, max_value=1_000_000_000),
)
@example(seconds=253_402_300_799 - 7 * 3600, nanos=999_999_999)  # Vietnam's last second
@example(seconds=253_402_300_799 - 7 * 3600 + 1, nanos=0)  # a second later: out of range
@example(seconds=17 * 3600 - 1, nanos=0)  # 1970-01-01 23:59:59 in Vietnam
@example(seconds=17 * 3600, nanos=0)  # 1970-01-02 00:00:00 in Vietnam
def test_the_day_of_a_timestamp_is_its_vietnam_calendar_day_or_poison(
    seconds: int, nanos: int
) -> None:
    """The day is computed from the seconds (a cache per day): it matches the datetime
    conversion everywhere, and what that conversion refuses stays poison."""
    document = DocumentSummary(document_id="d", sender_code="S")
    document.submitted_at.seconds, document.submitted_at.nanos = seconds, nanos
    try:
        expected: str | None = vn_day(document.submitted_at.ToDatetime(UTC))
    except (ValueError, OverflowError):
        expected = None
    envelope = new_event(DocumentSubmitted(document=document), producer="t")
    if expected is None:
        with pytest.raises(PoisonEvent, match="out of range"):
            facts_for(envelope)
    else:
        assert facts_for(envelope)[0].day == expected
