"""The hand-written golden packages: every variant in circulation parses, and re-serialised in
the standard form parses to an equal model; every hostile one gives exactly its problems."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from lxml import etree

from lienthong_edxml import (
    NS,
    BusinessDocType,
    DocumentPackage,
    InvalidPackage,
    Priority,
    StatusCode,
    StatusPackage,
    diagnose,
    document_bytes,
    parse,
    parse_document,
    parse_status,
    status_bytes,
)

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "golden"
HOSTILE = DATA / "hostile"
TODAY = date(2026, 12, 1)
DOCUMENTS = sorted(GOLDEN.glob("document_*.edxml"))


def _reserialise(package: DocumentPackage | StatusPackage) -> bytes:
    if isinstance(package, DocumentPackage):
        return document_bytes(package)
    return status_bytes(package)


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.edxml")), ids=lambda p: p.stem)
def test_golden_round_trips_through_the_standard_form(path: Path) -> None:
    package = parse(path.read_bytes(), today=TODAY)

    standard = _reserialise(package)

    assert parse(standard, today=TODAY) == package
    assert diagnose(standard, today=TODAY) == []


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.edxml")), ids=lambda p: p.stem)
def test_standard_form_uses_the_qcvn_namespace_and_the_sdk_spelling(path: Path) -> None:
    standard = _reserialise(parse(path.read_bytes(), today=TODAY))

    root = etree.fromstring(standard)
    namespaces = {element.tag.partition("}")[0][1:] for element in root.iter()}
    assert namespaces <= {NS, "http://www.w3.org/2000/09/xmldsig#"}
    assert b"Business" not in standard.replace(b"Bussiness", b"")


@pytest.mark.parametrize("path", DOCUMENTS[1:], ids=lambda p: p.stem)
def test_every_spelling_and_namespace_reads_as_the_same_document(path: Path) -> None:
    reference = parse_document(DOCUMENTS[0].read_bytes(), today=TODAY)

    assert parse_document(path.read_bytes(), today=TODAY) == reference


def test_golden_document_fields() -> None:
    package = parse_document((GOLDEN / "document_qcvn_bussiness.edxml").read_bytes(), today=TODAY)

    assert package.from_.organ_id == "000.00.00.H23"
    assert [o.organ_id for o in package.to] == ["000.01.00.H23", "000.00.31.H23"]
    assert package.promulgation.promulgation_date == date(2026, 11, 20)
    assert package.other_info.priority is Priority.URGENT
    assert package.other_info.appendixes == ("Phụ lục I: danh sách đơn vị",)
    assert [a.content_id for a in package.attachments] == ["qd15-2026", "phuluc-1"]
    assert package.attachments[0].read_bytes().startswith(b"%PDF-1.4")
    assert package.attachments[1].read_bytes() == b"Phu luc: danh sach don vi\n"
    assert package.signature is not None
    assert package.signature.startswith(b'<Signature xmlns="http://www.w3.org/2000/09/xmldsig#">')


def test_golden_recall() -> None:
    package = parse_document((GOLDEN / "recall.edxml").read_bytes(), today=TODAY)

    assert package.business.doc_type is BusinessDocType.RECALL
    assert package.business.doc_reason == "Sai sót về nơi nhận, đề nghị thu hồi"
    assert package.business.replacement_info[0].organ_ids == ("000.01.00.H23",)
    assert len(package.traces) == 2


def test_golden_status() -> None:
    status = parse_status((GOLDEN / "status_03.edxml").read_bytes(), today=TODAY)

    assert status.status_code is StatusCode.REGISTERED
    assert status.response_for.document_id == "000.00.00.H23,2026/11/20,15/QĐ-UBND"
    assert status.from_.organ_id == "000.01.00.H23"
    assert status.staff_info is not None
    assert status.staff_info.staff == "Lê Thị Cúc"


M = "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"
MANIFEST = "/edXML/edXMLEnvelope/edXMLBody/edXMLManifest"
HOSTILE_PROBLEMS = {
    "xxe": [("doctype-refused", "/")],
    "billion_laughs": [("doctype-refused", "/")],
    "external_dtd": [("doctype-refused", "/")],
    "not_xml": [("not-xml", "/")],
    "wrong_namespace": [("wrong-namespace", "/edXML")],
    "missing_elements": [
        ("missing-element", f"{M}/To"),
        ("missing-element", f"{M}/Code/CodeNumber"),
        ("missing-element", f"{M}/PromulgationInfo/PromulgationDate"),
        ("empty-element", f"{M}/Subject"),
    ],
    "bad_fields": [
        ("bad-organ-id", f"{M}/From/OrganId"),
        ("bad-organ-id", f"{M}/To[3]/OrganId"),
        ("duplicate-recipient", f"{M}/To[2]"),
        ("due-before-promulgation", f"{M}/DueDate"),
        ("bad-priority", f"{M}/OtherInfo/Priority"),
        ("bad-integer", f"{M}/OtherInfo/PageAmount"),
        (
            "bad-business-doc-type",
            "/edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList/Bussiness/BussinessDocType",
        ),
    ],
    "future_date": [
        ("future-promulgation-date", f"{M}/PromulgationInfo/PromulgationDate"),
    ],
    "manifest_mismatch": [
        ("bad-base64", "/edXML/AttachmentEncoded/Attachment[2]/ContentTransferEncoded"),
        ("manifest-missing-attachment", f"{MANIFEST}/Reference[1]"),
        ("attachment-not-in-manifest", "/edXML/AttachmentEncoded/Attachment[2]"),
        ("attachment-not-in-manifest", "/edXML/AttachmentEncoded/Attachment[3]"),
    ],
    "bad_status": [
        ("bad-timestamp", "/edXML/edXMLEnvelope/edXMLHeader/Status/Timestamp"),
        ("bad-status-code", "/edXML/edXMLEnvelope/edXMLHeader/Status/StatusCode"),
    ],
}


def test_every_hostile_package_has_its_expectation() -> None:
    assert {p.stem for p in HOSTILE.glob("*.edxml")} == set(HOSTILE_PROBLEMS)


@pytest.mark.parametrize("name", sorted(HOSTILE_PROBLEMS))
def test_hostile_package_gives_every_expected_problem(name: str) -> None:
    data = (HOSTILE / f"{name}.edxml").read_bytes()

    problems = diagnose(data, today=TODAY)

    assert [(p.code, p.xpath) for p in problems] == HOSTILE_PROBLEMS[name]
    assert all(p.message_vi and p.message_en for p in problems)


@pytest.mark.parametrize("name", sorted(HOSTILE_PROBLEMS))
def test_hostile_package_is_refused_by_the_parser(name: str) -> None:
    with pytest.raises(InvalidPackage) as info:
        parse((HOSTILE / f"{name}.edxml").read_bytes(), today=TODAY)

    assert [p.code for p in info.value.problems] == [c for c, _ in HOSTILE_PROBLEMS[name]]


def test_the_future_is_decided_in_vietnam_time() -> None:
    data = (HOSTILE / "future_date.edxml").read_bytes()

    assert diagnose(data, today=date(2026, 12, 2)) == []
