from __future__ import annotations

from datetime import date

import pytest

from document_service.validation import validate_submission
from lienthong.document.v1.document_service_pb2 import SubmitDocumentRequest
from lienthong_kit.errors import InvalidArgument

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
