"""Mapping to SubmitDocumentRequest and back from a stored document keeps every kept field."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from lienthong.common.v1 import common_pb2
from lienthong.document.v1 import document_service_pb2 as pb
from lienthong_edxml import DocumentPackage, document_bytes, parse_document
from lienthong_edxml.mapping import (
    canonical_document_id,
    from_stored_document,
    kept_fields,
    to_submit_request,
)
from lienthong_edxml.vocabulary import VIETNAM

GOLDEN = Path(__file__).parent / "data" / "golden"
TODAY = date(2026, 12, 1)
DOCUMENTS = [p for p in sorted(GOLDEN.glob("*.edxml")) if not p.stem.startswith("status")]


def _stored(
    request: pb.SubmitDocumentRequest, sender: str, package: DocumentPackage
) -> pb.GetDocumentResponse:
    """What document-service keeps of a submission and returns from GetDocument."""
    promulgated = date.fromisoformat(request.promulgation_date)
    summary = common_pb2.DocumentSummary(
        document_id="doc-1",
        edxml_document_id=(
            f"{sender},{promulgated:%Y/%m/%d},{request.code.number}/{request.code.notation}"
        ),
        sender_code=sender,
        code=request.code,
        document_type=request.document_type,
        subject=request.subject,
        priority=request.priority,
        promulgation_date=request.promulgation_date,
    )
    if request.HasField("due_at"):
        summary.due_at.CopyFrom(request.due_at)
    refs = [
        common_pb2.AttachmentRef(
            attachment_id=attachment_id,
            name=a.name,
            mime_type=a.content_type,
            size_bytes=a.size,
            sha256=a.sha256,
        )
        for attachment_id, a in zip(request.attachment_ids, package.attachments, strict=True)
    ]
    return pb.GetDocumentResponse(
        document=summary,
        recipients=request.recipients,
        content_summary=request.content_summary,
        attachments=refs,
        to_places=request.to_places,
        promulgation_place=request.promulgation_place,
        signer=request.signer if request.HasField("signer") else None,
        steering_type=request.steering_type,
    )


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.stem)
def test_a_package_through_the_platform_keeps_every_kept_field(path: Path) -> None:
    package = parse_document(path.read_bytes(), today=TODAY)
    ids = [f"att-{i}" for i in range(len(package.attachments))]

    request = to_submit_request(package, ids)
    stored = _stored(request, package.from_.organ_id, package)
    contents = {i: a.read_bytes() for i, a in zip(ids, package.attachments, strict=True)}
    back = from_stored_document(stored, contents)

    assert kept_fields(back) == kept_fields(package)
    assert [a.read_bytes() for a in back.attachments] == list(contents.values())
    assert [m.content_id for m in back.manifest] == ids


def test_submit_request_fields() -> None:
    package = parse_document((GOLDEN / "document_qcvn_bussiness.edxml").read_bytes(), today=TODAY)

    request = to_submit_request(package, ["a", "b"], response_for_id="doc-0")

    assert request.idempotency_key == "000.00.00.H23,2026/11/20,15/QĐ-UBND"
    assert list(request.recipients.unit_codes) == ["000.01.00.H23", "000.00.31.H23"]
    assert request.document_type == "QĐ"
    assert request.priority == 1
    assert request.promulgation_date == "2026-11-20"
    due = request.due_at.ToDatetime(tzinfo=UTC)
    assert (due.date(), due.hour) == (date(2026, 12, 20), 16)  # 23:59:59 Vietnam time
    assert request.signer.competence == "TM."
    assert request.response_for == "doc-0"
    assert list(request.attachment_ids) == ["a", "b"]


def test_the_platform_document_id_is_the_canonical_one() -> None:
    package = parse_document((GOLDEN / "recall.edxml").read_bytes(), today=TODAY)

    assert canonical_document_id(package) == package.document_id


def test_attachment_ids_must_match_the_attachments() -> None:
    package = parse_document((GOLDEN / "document_qcvn_bussiness.edxml").read_bytes(), today=TODAY)

    with pytest.raises(ValueError, match="2 attachments but 1 attachment ids"):
        to_submit_request(package, ["a"])


def test_a_forwarded_copy_carries_the_hop_in_its_trace_header_list() -> None:
    package = parse_document(DOCUMENTS[0].read_bytes(), today=TODAY)
    ids = [f"att-{i}" for i in range(len(package.attachments))]
    stored = _stored(to_submit_request(package, ids), package.from_.organ_id, package)
    hop = stored.forwarded_from.add(closed_code="000.01.31.H23", reason="closed; forwarded")
    hop.at.FromDatetime(datetime(2026, 11, 20, 2, 15, tzinfo=UTC))
    contents = {i: a.read_bytes() for i, a in zip(ids, package.attachments, strict=True)}

    written = document_bytes(from_stored_document(stored, contents))

    [trace] = parse_document(written, today=TODAY).traces
    assert trace.organ_id == "000.01.31.H23"
    assert trace.timestamp == datetime(2026, 11, 20, 9, 15, tzinfo=VIETNAM)
    assert b"<edXML:TraceHeader><edXML:OrganId>000.01.31.H23</edXML:OrganId>" in written
