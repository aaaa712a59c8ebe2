from __future__ import annotations

from datetime import date

import pytest

from document_service import validation
from document_service.consumers import Consumers, inbox_hub
from document_service.validation import (
    validate_acknowledgement,
    validate_inbox_query,
    validate_paper,
    validate_recall,
    validate_submission,
)
from lienthong.document.v1.document_service_pb2 import (
    AcknowledgeDeliveryRequest,
    Direction,
    ListInboxRequest,
    RecallDocumentRequest,
    RegisterPaperDocumentRequest,
    SubmitDocumentRequest,
)
from lienthong.events.v1.events_pb2 import DeliveryBounced
from lienthong_kit.envelope import new_event
from lienthong_kit.errors import InvalidArgument, PoisonEvent

SENDER = "000.00.00.H23"
TODAY = date(2026, 11, 23)


def valid() -> SubmitDocumentRequest:
    return SubmitDocumentRequest(
        recipients={"unit_codes": ["000.01.00.H23", "000.00.31.H23"]},
        code={"number": "15", "notation": "QĐ-UBND"},
        document_type="QĐ",
        subject="Về việc triển khai liên thông văn bản",
        priority=0,
        promulgation_date="2026-11-20",
    )


def fields_of(request: SubmitDocumentRequest) -> list[str]:
    with pytest.raises(InvalidArgument) as info:
        validate_submission(request, SENDER, TODAY)
    return [violation.field for violation in info.value.violations]


def test_a_valid_request_passes() -> None:
    validate_submission(valid(), SENDER, TODAY)


def test_cong_van_has_no_type_notation() -> None:
    request = valid()
    request.document_type = ""
    validate_submission(request, SENDER, TODAY)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        pytest.param(
            lambda r: r.recipients.ClearField("unit_codes"),
            "recipients",
            id="no-recipient",
        ),
        pytest.param(
            lambda r: r.recipients.unit_codes.append("000.01.00.H23"),
            "recipients.unit_codes[2]",
            id="duplicate-recipient",
        ),
        pytest.param(
            lambda r: r.recipients.unit_codes.append(SENDER),
            "recipients.unit_codes[2]",
            id="self-send",
        ),
        pytest.param(
            lambda r: r.recipients.unit_codes.append("sở tài chính"),
            "recipients.unit_codes[2]",
            id="malformed-code",
        ),
        pytest.param(
            lambda r: r.recipients.scopes.add(ancestor_code="huyện 1"),
            "recipients.scopes[0].ancestor_code",
            id="bad-scope-ancestor",
        ),
        pytest.param(
            lambda r: r.recipients.scopes.add(exclude_codes=["x y"]),
            "recipients.scopes[0].exclude_codes[0]",
            id="bad-scope-exclusion",
        ),
        pytest.param(lambda r: setattr(r.code, "number", ""), "code.number", id="missing-number"),
        pytest.param(
            lambda r: setattr(r.code, "number", "1" * 12), "code.number", id="long-number"
        ),
        pytest.param(
            lambda r: setattr(r.code, "notation", ""), "code.notation", id="missing-notation"
        ),
        pytest.param(
            lambda r: setattr(r.code, "notation", "x" * 31), "code.notation", id="long-notation"
        ),
        pytest.param(lambda r: setattr(r, "subject", "  "), "subject", id="blank-subject"),
        pytest.param(lambda r: setattr(r, "subject", "x" * 501), "subject", id="long-subject"),
        pytest.param(
            lambda r: setattr(r, "document_type", "XYZ"), "document_type", id="unknown-type"
        ),
        pytest.param(lambda r: setattr(r, "priority", 5), "priority", id="priority-high"),
        pytest.param(lambda r: setattr(r, "priority", -1), "priority", id="priority-negative"),
        pytest.param(
            lambda r: setattr(r, "promulgation_date", "20/11/2026"),
            "promulgation_date",
            id="bad-date",
        ),
        pytest.param(
            lambda r: setattr(r, "promulgation_date", "2026-11-24"),
            "promulgation_date",
            id="future-date",
        ),
    ],
)
def test_each_rule_names_its_field(mutate: object, field: str) -> None:
    request = valid()
    mutate(request)  # type: ignore[operator]
    assert fields_of(request) == [field]


def test_every_violation_is_reported_at_once() -> None:
    request = SubmitDocumentRequest(priority=9)
    assert fields_of(request) == [
        "recipients",
        "code.number",
        "code.notation",
        "subject",
        "priority",
        "promulgation_date",
    ]


def test_twenty_thousand_attachment_ids_are_checked_in_linear_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # once quadratic (a list prefix copied per id): 20,000 ids took 0.4 s, a 32 MiB list hours
    request = valid()
    request.attachment_ids.extend([f"a{index}" for index in range(20_000)] + ["a7"])
    assert fields_of(request) == ["attachment_ids"]  # the count bound: no per-id work at all
    monkeypatch.setattr(validation, "MAX_ATTACHMENTS", 100_000)  # the duplicate check itself
    assert fields_of(request) == ["attachment_ids[20000]"]


def test_a_repeated_attachment_id_is_named() -> None:
    request = valid()
    request.attachment_ids.extend(["a", "b", "a"])
    assert fields_of(request) == ["attachment_ids[2]"]


def test_every_oversized_field_is_named() -> None:
    request = valid()
    request.idempotency_key = "k" * 129
    request.content_summary = "x" * 2001
    request.promulgation_place = "x" * 501
    request.response_for = "x" * 65
    request.signer.position = "x" * 201
    request.signer.full_name = "x" * 201
    request.to_places.extend(["nơi"] * 51)
    request.recipients.unit_codes.extend(["000.01.00.H23"] * 1001)
    request.recipients.scopes.add(ancestor_code="000.00.00.H23").exclude_codes.extend(
        ["000.01.00.H23"] * 501
    )
    assert sorted(fields_of(request)) == sorted(
        [
            "idempotency_key",
            "recipients.scopes[0].exclude_codes",
            "recipients.unit_codes",
            "signer.position",
            "signer.full_name",
            "content_summary",
            "promulgation_place",
            "response_for",
            "to_places",
        ]
    )


def test_oversized_paper_acknowledgement_and_recall_fields_are_named() -> None:
    paper = RegisterPaperDocumentRequest(
        idempotency_key="k" * 129,
        direction=Direction.DIRECTION_INCOMING,
        counterpart="x" * 501,
        subject="Về việc",
        code={"number": "1", "notation": "CV"},
    )
    with pytest.raises(InvalidArgument) as info:
        validate_paper(paper, TODAY)
    assert [v.field for v in info.value.violations] == ["idempotency_key", "counterpart"]
    ack = AcknowledgeDeliveryRequest(
        delivery_id="d" * 65,
        status_code="033",
        description="x" * 2001,
        staff="x" * 201,
        idempotency_key="k" * 129,
    )
    with pytest.raises(InvalidArgument) as info:
        validate_acknowledgement(ack)
    assert [v.field for v in info.value.violations] == [
        "delivery_id",
        "status_code",
        "description",
        "staff",
        "idempotency_key",
    ]
    recall = RecallDocumentRequest(
        document_id="d" * 65, reason="x" * 2001, replacement_document_id="r" * 65
    )
    with pytest.raises(InvalidArgument) as info:
        validate_recall(recall)
    assert [v.field for v in info.value.violations] == [
        "document_id",
        "reason",
        "replacement_document_id",
    ]
    inbox = ListInboxRequest(page_token="t" * 513, status_codes=["01"] * 21)
    with pytest.raises(InvalidArgument) as info:
        validate_inbox_query(inbox)
    assert [v.field for v in info.value.violations] == ["page_token", "status_codes"]


async def test_a_bounce_the_store_cannot_hold_is_poison_not_a_retry() -> None:
    bounce = DeliveryBounced(delivery_id="dl-\x00", recipient_code="000.01.00.H23", reason="x")
    # refused before the store is reached: the consumers' store is never used
    consumers = Consumers(store=None, audit=None, hub=inbox_hub())  # type: ignore[arg-type]
    with pytest.raises(PoisonEvent, match="NUL"):
        await consumers.on_delivery(new_event(bounce, producer="fuzzer"), None)  # type: ignore[arg-type]
