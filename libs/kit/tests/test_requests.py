"""Text the store cannot hold is refused before any handler runs, naming each field."""

from __future__ import annotations

import pytest

from lienthong.document.v1 import document_service_pb2 as pb
from lienthong_kit.errors import InvalidArgument
from lienthong_kit.requests import refuse_nul_characters


def test_a_nul_character_anywhere_in_a_request_is_refused_naming_the_field() -> None:
    request = pb.SubmitDocumentRequest(
        subject="Về việc\x00",
        recipients={"unit_codes": ["000.01.00.H23", "000.02\x00"]},
        code={"number": "15", "notation": "QĐ\x00"},
    )
    with pytest.raises(InvalidArgument) as refusal:
        refuse_nul_characters(request)
    assert sorted(v.field for v in refusal.value.violations) == [
        "code.notation",
        "recipients.unit_codes[1]",
        "subject",
    ]
    refuse_nul_characters(pb.SubmitDocumentRequest(subject="Về việc triển khai"))  # passes


def test_zero_bytes_that_are_no_text_pass_and_big_requests_are_walked() -> None:
    # a zero on the wire that is no character (a length, a number) sends it to the field walk
    request = pb.SubmitDocumentRequest(subject="", code={"number": "1", "notation": ""})
    request.recipients.unit_codes.append("")
    assert b"\x00" in request.SerializeToString()
    refuse_nul_characters(request)
    # past the size served by the wire check, the fields are walked: still found
    big = pb.SubmitDocumentRequest(subject="x" * 70_000, content_summary="a\x00b")
    with pytest.raises(InvalidArgument) as refusal:
        refuse_nul_characters(big)
    assert [v.field for v in refusal.value.violations] == ["content_summary"]
