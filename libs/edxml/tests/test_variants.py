"""Smaller variants seen in circulation, and the doctor never crashing on damaged input."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lienthong_edxml import StatusCode, diagnose, document_bytes, parse_document, parse_status
from lienthong_edxml.reader import parse_date, parse_timestamp
from lienthong_edxml.vocabulary import VIETNAM

TODAY = date(2026, 12, 1)
GOLDEN = Path(__file__).parent / "data" / "golden"

HEADER = """<MessageHeader>
  <From><OrganId>000.00.00.H23</OrganId></From><To><OrganId>000.01.00.H23</OrganId></To>
  <Code><CodeNumber>15</CodeNumber><CodeNotation>QĐ-UBND</CodeNotation></Code>
  <PromulgationInfo><PromulgationDate>20/11/2026</PromulgationDate></PromulgationInfo>
  <Subject>Về việc triển khai</Subject>
</MessageHeader>"""


def test_a_bare_envelope_with_a_manifest_content_id_child() -> None:
    data = f"""<edXMLEnvelope xmlns="http://www.go.vn/eDoc">
      <edXMLHeader>{HEADER}</edXMLHeader>
      <edXMLBody><edXMLManifest><Reference><ContentId>&lt;cid:a1&gt;</ContentId></Reference>
      </edXMLManifest></edXMLBody>
      <AttachmentEncoded><Attachment><ContentId>cid:a1</ContentId>
        <ContentTransferEncoded>aGVsbG8=</ContentTransferEncoded></Attachment></AttachmentEncoded>
    </edXMLEnvelope>""".encode()

    package = parse_document(data, today=TODAY)

    assert package.promulgation.promulgation_date == date(2026, 11, 20)
    assert [m.content_id for m in package.manifest] == ["a1"]
    assert package.attachments[0].read_bytes() == b"hello"


def test_status_fields_straight_in_the_message_header() -> None:
    data = """<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"><edXMLEnvelope><edXMLHeader>
      <MessageHeader>
        <ResponseFor><OrganId>000.00.00.H23</OrganId><DocumentId>x</DocumentId></ResponseFor>
        <From><OrganId>000.01.00.H23</OrganId></From>
        <StatusCode>02</StatusCode><Description>Sai nơi nhận</Description>
        <Timestamp>20/11/2026 14:05:30</Timestamp>
      </MessageHeader></edXMLHeader></edXMLEnvelope></edXML>""".encode()

    status = parse_status(data, today=TODAY)

    assert status.status_code is StatusCode.REFUSED
    assert status.timestamp == datetime(2026, 11, 20, 14, 5, 30, tzinfo=VIETNAM)


@pytest.mark.parametrize(
    ("data", "codes"),
    [
        pytest.param(b"<html/>", ["wrong-namespace", "not-edxml"], id="not-edxml"),
        pytest.param(
            b'<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"/>',
            ["missing-element"],
            id="empty-root",
        ),
        pytest.param(
            b'<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"><edXMLEnvelope>'
            b"<edXMLHeader><Status/></edXMLHeader></edXMLEnvelope></edXML>",
            ["missing-element"] * 4,
            id="empty-status",
        ),
    ],
)
def test_skeletons(data: bytes, codes: list[str]) -> None:
    assert [p.code for p in diagnose(data, today=TODAY)] == codes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026/11/20", date(2026, 11, 20)),
        ("2026-11-20", date(2026, 11, 20)),
        ("20/11/2026", date(2026, 11, 20)),
        ("2026/11/20 08:00:00", date(2026, 11, 20)),
        ("2026/13/20", None),
        ("hôm qua", None),
    ],
)
def test_dates(text: str, expected: date | None) -> None:
    assert parse_date(text) == expected


def test_a_timestamp_with_an_offset_is_kept_as_the_same_instant() -> None:
    moment = parse_timestamp("2026-11-20T01:00:00+00:00")

    assert moment == datetime(2026, 11, 20, 8, 0, tzinfo=VIETNAM)


GOLDEN_BYTES = (GOLDEN / "document_qcvn_bussiness.edxml").read_bytes()


@settings(deadline=None, max_examples=200)
@given(st.data())
def test_the_doctor_never_crashes_on_a_damaged_package(data: st.DataObject) -> None:
    damaged = bytearray(GOLDEN_BYTES)
    for _ in range(data.draw(st.integers(1, 5))):
        at = data.draw(st.integers(0, len(damaged) - 1))
        if data.draw(st.booleans()):
            del damaged[at : at + data.draw(st.integers(1, 40))]
        else:
            damaged[at:at] = data.draw(st.binary(min_size=1, max_size=10))

    problems = diagnose(bytes(damaged), today=TODAY)

    assert all(p.code and p.xpath.startswith("/") for p in problems)


def test_a_digital_signature_in_the_old_namespace_is_written_in_the_standard_one() -> None:
    data = f"""<edXML xmlns="http://www.go.vn/eDoc"><edXMLEnvelope><edXMLHeader>{HEADER}
      <DigitalSignature><SignedBy>UBND</SignedBy></DigitalSignature>
      </edXMLHeader></edXMLEnvelope></edXML>""".encode()

    package = parse_document(data, today=TODAY)

    assert package.signature == (
        b'<DigitalSignature xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">'
        b"<SignedBy>UBND</SignedBy></DigitalSignature>"
    )
    assert b"go.vn" not in document_bytes(package)
