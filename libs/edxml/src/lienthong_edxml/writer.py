"""Writing packages, always in the standard form: the QCVN 102:2016 namespace, the
"Bussiness" spelling of the reference SDKs, dates yyyy/MM/dd, timestamps yyyy/MM/dd HH:mm:ss
in Vietnam time. Attachments are base64-encoded from their streams in chunks.

    with open("out.edxml", "wb") as out:
        write_document(package, out)
    data = document_bytes(package)
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import date, datetime
from io import BytesIO
from typing import Any, BinaryIO

from lxml import etree

from lienthong_edxml._stream import safe_fromstring
from lienthong_edxml.model import (
    Attachment,
    Business,
    DocumentPackage,
    Organ,
    ResponseFor,
    StaffInfo,
    StatusPackage,
)
from lienthong_edxml.problems import EdxmlError
from lienthong_edxml.vocabulary import NS, VIETNAM, XLINK_NS

__all__ = [
    "document_bytes",
    "format_date",
    "format_timestamp",
    "status_bytes",
    "write_document",
    "write_status",
]

_PREFIXES = {"edXML": NS, "xlink": XLINK_NS}
_BASE64_CHUNK = 3 * 16 * 1024  # a multiple of 3: chunks encode without padding in between


def format_date(value: date) -> str:
    return value.strftime("%Y/%m/%d")


def format_timestamp(value: datetime) -> str:
    return value.astimezone(VIETNAM).strftime("%Y/%m/%d %H:%M:%S")


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


class _Tree:
    """Appends edXML elements, leaving out empty optional ones."""

    @staticmethod
    def sub(parent: Any, name: str, text: str | None = None) -> Any:
        element = etree.SubElement(parent, _q(name))
        if text is not None:
            element.text = text
        return element

    def opt(self, parent: Any, name: str, value: str | int | None) -> None:
        if value is None or value == "":
            return
        self.sub(parent, name, str(value))

    def organ(self, parent: Any, name: str, organ: Organ) -> None:
        element = self.sub(parent, name)
        self.sub(element, "OrganId", organ.organ_id)
        self.opt(element, "OrganizationInCharge", organ.organization_in_charge)
        self.opt(element, "OrganName", organ.organ_name)
        self.opt(element, "OrganAdd", organ.organ_add)
        self.opt(element, "Email", organ.email)
        self.opt(element, "Telephone", organ.telephone)
        self.opt(element, "Fax", organ.fax)
        self.opt(element, "Website", organ.website)

    def staff_info(self, parent: Any, staff: StaffInfo | None) -> None:
        if staff is None:
            return
        element = self.sub(parent, "StaffInfo")
        self.opt(element, "Department", staff.department)
        self.opt(element, "Staff", staff.staff)
        self.opt(element, "Mobile", staff.mobile)
        self.opt(element, "Email", staff.email)

    def response_for(self, parent: Any, response: ResponseFor) -> None:
        element = self.sub(parent, "ResponseFor")
        self.sub(element, "OrganId", response.organ_id)
        self.opt(element, "Code", response.code)
        if response.promulgation_date is not None:
            self.sub(element, "PromulgationDate", format_date(response.promulgation_date))
        self.sub(element, "DocumentId", response.document_id)

    def business(self, parent: Any, business: Business) -> None:
        element = self.sub(parent, "Bussiness")
        self.sub(element, "BussinessDocType", str(int(business.doc_type)))
        self.opt(element, "BussinessDocReason", business.doc_reason)
        self.opt(element, "Paper", business.paper)
        self.staff_info(element, business.staff_info)
        if business.replacement_info:
            infos = self.sub(element, "ReplacementInfoList")
            for replaced in business.replacement_info:
                info = self.sub(infos, "ReplacementInfo")
                self.sub(info, "DocumentId", replaced.document_id)
                organs = self.sub(info, "OrganIdList")
                for organ_id in replaced.organ_ids:
                    self.sub(organs, "OrganId", organ_id)

    def message_header(self, parent: Any, p: DocumentPackage) -> None:
        m = self.sub(parent, "MessageHeader")
        self.organ(m, "From", p.from_)
        for organ in p.to:
            self.organ(m, "To", organ)
        code = self.sub(m, "Code")
        self.sub(code, "CodeNumber", p.code.code_number)
        self.sub(code, "CodeNotation", p.code.code_notation)
        promulgation = self.sub(m, "PromulgationInfo")
        self.opt(promulgation, "Place", p.promulgation.place)
        self.sub(promulgation, "PromulgationDate", format_date(p.promulgation.promulgation_date))
        t = p.document_type
        if t.type is not None or t.type_detail is not None or t.type_name:
            kind = self.sub(m, "DocumentType")
            self.opt(kind, "Type", t.type)
            self.opt(kind, "TypeDetail", t.type_detail)
            self.opt(kind, "TypeName", t.type_name)
        self.sub(m, "Subject", p.subject)
        self.opt(m, "Content", p.content)
        if p.signer is not None:
            signer = self.sub(m, "SignerInfo")
            self.opt(signer, "Competence", p.signer.competence)
            self.opt(signer, "Position", p.signer.position)
            self.opt(signer, "FullName", p.signer.full_name)
        if p.due_date is not None:
            self.sub(m, "DueDate", format_date(p.due_date))
        if p.to_places:
            places = self.sub(m, "ToPlaces")
            for place in p.to_places:
                self.sub(places, "Place", place)
        o = p.other_info
        other = self.sub(m, "OtherInfo")
        self.sub(other, "Priority", str(int(o.priority)))
        self.opt(other, "SphereOfPromulgation", o.sphere_of_promulgation)
        self.opt(other, "TyperNotation", o.typer_notation)
        self.opt(other, "PromulgationAmount", o.promulgation_amount)
        self.opt(other, "PageAmount", o.page_amount)
        if o.appendixes:
            appendixes = self.sub(other, "Appendixes")
            for appendix in o.appendixes:
                self.sub(appendixes, "Appendix", appendix)
        for response in p.response_for:
            self.response_for(m, response)
        self.opt(m, "SteeringType", p.steering_type)
        self.opt(m, "DocumentId", p.document_id)

    def envelope(self, p: DocumentPackage) -> Any:
        envelope = etree.Element(_q("edXMLEnvelope"), nsmap=_PREFIXES)
        header = self.sub(envelope, "edXMLHeader")
        self.message_header(header, p)
        traces = self.sub(header, "TraceHeaderList")
        for hop in p.traces:
            element = self.sub(traces, "TraceHeader")
            self.sub(element, "OrganId", hop.organ_id)
            self.sub(element, "Timestamp", format_timestamp(hop.timestamp))
        self.business(traces, p.business)
        if p.signature is not None:
            header.append(safe_fromstring(p.signature))
        manifest = self.sub(self.sub(envelope, "edXMLBody"), "edXMLManifest")
        manifest.set("version", "1.0")
        for ref in p.manifest:
            reference = self.sub(manifest, "Reference")
            reference.set(f"{{{XLINK_NS}}}href", f"cid:{ref.content_id}")
            reference.set(f"{{{XLINK_NS}}}type", "simple")
            self.opt(reference, "Description", ref.description)
            self.opt(reference, "AttachmentName", ref.attachment_name)
            self.opt(reference, "ContentType", ref.content_type)
        return envelope

    def status_envelope(self, s: StatusPackage) -> Any:
        envelope = etree.Element(_q("edXMLEnvelope"), nsmap=_PREFIXES)
        status = self.sub(self.sub(envelope, "edXMLHeader"), "Status")
        self.response_for(status, s.response_for)
        self.organ(status, "From", s.from_)
        self.sub(status, "StatusCode", s.status_code.value)
        self.opt(status, "Description", s.description)
        self.sub(status, "Timestamp", format_timestamp(s.timestamp))
        self.staff_info(status, s.staff_info)
        return envelope


def _write_attachment(xf: Any, attachment: Attachment) -> None:
    with xf.element(_q("Attachment")):
        for name, value in (
            ("ContentType", attachment.content_type),
            ("ContentId", attachment.content_id),
            ("Description", attachment.description),
            ("AttachmentName", attachment.name),
        ):
            if value:
                with xf.element(_q(name)):
                    xf.write(value)
        with xf.element(_q("ContentTransferEncoded")), attachment.open() as stream:
            while chunk := stream.read(_BASE64_CHUNK):
                xf.write(base64.b64encode(chunk).decode("ascii"))


def _write(out: BinaryIO, envelope: Any, attachments: Iterable[Attachment]) -> None:
    with etree.xmlfile(out, encoding="utf-8") as xf:
        xf.write_declaration()
        with xf.element(_q("edXML"), nsmap={None: NS}):
            xf.write(envelope)
            attachments = list(attachments)
            if attachments:
                with xf.element(_q("AttachmentEncoded")):
                    for attachment in attachments:
                        _write_attachment(xf, attachment)


def write_document(package: DocumentPackage, out: BinaryIO) -> None:
    """Write ``package`` to ``out`` in the standard form; EdxmlError if it cannot be XML."""
    try:
        _write(out, _Tree().envelope(package), package.attachments)
    except (ValueError, etree.LxmlError) as exc:  # text that XML cannot carry, a bad signature
        raise EdxmlError(f"the package cannot be written as edXML: {exc}") from exc


def write_status(package: StatusPackage, out: BinaryIO) -> None:
    try:
        _write(out, _Tree().status_envelope(package), ())
    except (ValueError, etree.LxmlError) as exc:
        raise EdxmlError(f"the status package cannot be written as edXML: {exc}") from exc


def document_bytes(package: DocumentPackage) -> bytes:
    out = BytesIO()
    write_document(package, out)
    return out.getvalue()


def status_bytes(package: StatusPackage) -> bytes:
    out = BytesIO()
    write_status(package, out)
    return out.getvalue()
