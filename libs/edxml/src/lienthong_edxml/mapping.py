"""Between edXML packages and the platform's protobuf (lienthong.document.v1).

    request = to_submit_request(package, attachment_ids=["att-1"])   # after UploadAttachment
    package = from_stored_document(get_document_response, contents={"att-1": pdf_bytes})
    kept_fields(a) == kept_fields(b)      # what survives a trip through the platform

The platform keeps only part of a package (docs/decisions/0001-edxml-codec.md lists what it
drops); ``kept_fields`` is that part, so a round trip through the platform is checked on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from lienthong.document.v1 import document_service_pb2 as pb
from lienthong_edxml.model import (
    Attachment,
    Code,
    DocumentPackage,
    DocumentType,
    Organ,
    OtherInfo,
    PromulgationInfo,
    SignerInfo,
    TraceHeader,
)
from lienthong_edxml.vocabulary import VIETNAM, Priority

__all__ = [
    "TYPE_NAMES",
    "canonical_document_id",
    "document_type_notation",
    "from_stored_document",
    "kept_fields",
    "to_submit_request",
]

# Decree 30/2020 Art. 7: the notation the platform keeps -> the TypeName edXML carries.
TYPE_NAMES = {
    "NQ": "Nghị quyết", "QĐ": "Quyết định", "CT": "Chỉ thị", "QC": "Quy chế",
    "QyĐ": "Quy định", "TC": "Thông cáo", "TB": "Thông báo", "HD": "Hướng dẫn",
    "CTr": "Chương trình", "KH": "Kế hoạch", "PA": "Phương án", "ĐA": "Đề án", "DA": "Dự án",
    "BC": "Báo cáo", "BB": "Biên bản", "TTr": "Tờ trình", "HĐ": "Hợp đồng", "CĐ": "Công điện",
    "BGN": "Bản ghi nhớ", "BTT": "Bản thỏa thuận", "GUQ": "Giấy ủy quyền", "GM": "Giấy mời",
    "GGT": "Giấy giới thiệu", "GNP": "Giấy nghỉ phép", "PG": "Phiếu gửi", "PC": "Phiếu chuyển",
    "PB": "Phiếu báo", "SY": "Sao y", "TrS": "Trích sao", "SL": "Sao lục", "": "Công văn",
}  # fmt: skip
_NOTATIONS = {name.casefold(): notation for notation, name in TYPE_NAMES.items()}


def document_type_notation(package: DocumentPackage) -> str:
    """The Decree 30 notation of the package's type: from TypeName, else from the notation's
    first part (``QĐ-UBND`` -> ``QĐ``), else "" (Công văn)."""
    by_name = _NOTATIONS.get(package.document_type.type_name.strip().casefold())
    if by_name is not None:
        return by_name
    prefix = package.code.code_notation.partition("-")[0]
    return prefix if prefix in TYPE_NAMES else ""


def canonical_document_id(package: DocumentPackage) -> str:
    """The edXML DocumentId the platform gives a document: sender,yyyy/MM/dd,number/notation."""
    promulgated = package.promulgation.promulgation_date
    code = package.code
    return (
        f"{package.from_.organ_id},{promulgated:%Y/%m/%d},{code.code_number}/{code.code_notation}"
    )


def _end_of_day(day: date) -> Timestamp:
    # 23:59:59 Vietnam time is the same calendar day in UTC too, so either reading agrees.
    stamp = Timestamp()
    stamp.FromDatetime(datetime.combine(day, time(23, 59, 59), VIETNAM))
    return stamp


def to_submit_request(
    package: DocumentPackage,
    attachment_ids: Sequence[str],
    *,
    idempotency_key: str = "",
    response_for_id: str = "",
) -> pb.SubmitDocumentRequest:
    """The SubmitDocument request for ``package``, sent by ``package.from_``.

    ``attachment_ids`` are the UploadAttachment results, in the order of
    ``package.attachments``; ``response_for_id`` is the platform id of the document answered
    (the caller resolves edXML ResponseFor). The idempotency key defaults to the DocumentId, so
    a package sent twice is one document.
    """
    if len(attachment_ids) != len(package.attachments):
        raise ValueError(
            f"{len(package.attachments)} attachments but {len(attachment_ids)} attachment ids"
        )
    request = pb.SubmitDocumentRequest(
        idempotency_key=idempotency_key or package.document_id or canonical_document_id(package),
        document_type=document_type_notation(package),
        subject=package.subject,
        content_summary=package.content,
        priority=int(package.other_info.priority),
        promulgation_date=package.promulgation.promulgation_date.isoformat(),
        to_places=list(package.to_places),
        promulgation_place=package.promulgation.place,
        steering_type=package.steering_type or 0,
        response_for=response_for_id,
        secrecy=pb.Secrecy.SECRECY_NONE,
        attachment_ids=list(attachment_ids),
    )
    request.recipients.unit_codes.extend(o.organ_id for o in package.to)
    request.code.number = package.code.code_number
    request.code.notation = package.code.code_notation
    if package.due_date is not None:
        request.due_at.CopyFrom(_end_of_day(package.due_date))
    if package.signer is not None:
        request.signer.competence = package.signer.competence
        request.signer.position = package.signer.position
        request.signer.full_name = package.signer.full_name
    return request


def from_stored_document(
    stored: pb.GetDocumentResponse, contents: Mapping[str, bytes | Path] | None = None
) -> DocumentPackage:
    """The package of a stored document, as the platform would send it out.

    ``contents`` maps attachment ids to their bytes (or a file holding them), as fetched with
    GetAttachment; the content ids are the attachment ids. The TraceHeaderList holds a hop per
    closed unit the sender addressed that routing forwarded the recipient's copy from (the
    closed unit's code, when it was forwarded); the sender of the package adds its own hop.
    """
    contents = contents or {}
    summary = stored.document
    signer = stored.signer
    attachments = tuple(
        Attachment(
            content_id=ref.attachment_id,
            name=ref.name,
            content_type=ref.mime_type,
            size=ref.size_bytes,
            sha256=ref.sha256,
            data=body if isinstance(body := contents.get(ref.attachment_id), bytes) else None,
            path=body if isinstance(body, Path) else None,
        )
        for ref in stored.attachments
    )
    return DocumentPackage(
        from_=Organ(summary.sender_code),
        to=tuple(Organ(code) for code in stored.recipients.unit_codes),
        code=Code(summary.code.number, summary.code.notation),
        promulgation=PromulgationInfo(
            stored.promulgation_place, date.fromisoformat(summary.promulgation_date)
        ),
        subject=summary.subject,
        document_type=DocumentType(type_name=TYPE_NAMES.get(summary.document_type, "")),
        content=stored.content_summary,
        signer=(
            SignerInfo(signer.competence, signer.position, signer.full_name)
            if stored.HasField("signer")
            else None
        ),
        due_date=_vietnam_date(summary.due_at) if summary.HasField("due_at") else None,
        to_places=tuple(stored.to_places),
        other_info=OtherInfo(priority=Priority(summary.priority)),
        steering_type=stored.steering_type or None,
        document_id=summary.edxml_document_id,
        traces=tuple(
            TraceHeader(hop.closed_code, hop.at.ToDatetime(tzinfo=VIETNAM))
            for hop in stored.forwarded_from
        ),
        attachments=attachments,
    ).with_manifest()


def _vietnam_date(stamp: Timestamp) -> date:
    return stamp.ToDatetime(tzinfo=VIETNAM).date()


def kept_fields(package: DocumentPackage) -> dict[str, Any]:
    """The part of a package the platform keeps, normalised as the platform stores it."""
    signer = package.signer or SignerInfo()
    return {
        "from": package.from_.organ_id,
        "to": [o.organ_id for o in package.to],
        "code": package.code,
        "promulgation": package.promulgation,
        "document_type": document_type_notation(package),
        "subject": package.subject,
        "content": package.content,
        "signer": (signer.competence, signer.position, signer.full_name),
        "due_date": package.due_date,
        "to_places": list(package.to_places),
        "priority": package.other_info.priority,
        "steering_type": package.steering_type or 0,
        "document_id": canonical_document_id(package),
        "attachments": [(a.name, a.content_type, a.size, a.sha256) for a in package.attachments],
    }
