"""Reading packages: both namespaces and both business spellings in, a typed model out, and
every problem found listed (the doctor is this reader keeping only the problems).

    package = parse_document(open("in.edxml", "rb"), spool=Path("/var/spool/edxml"))
    status = parse_status(data)
    problems = diagnose(data)          # [] when the package is fine
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from lxml import etree

from lienthong_edxml._stream import STREAM_MARK, Limits, Streamed, read_tree
from lienthong_edxml.model import (
    Attachment,
    Business,
    Code,
    DocumentPackage,
    DocumentType,
    ManifestReference,
    Organ,
    OtherInfo,
    PromulgationInfo,
    ReplacementInfo,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    StatusPackage,
    TraceHeader,
)
from lienthong_edxml.problems import InvalidPackage, Problem, problem
from lienthong_edxml.vocabulary import (
    ACCEPTED_NAMESPACES,
    NS,
    OLD_NS,
    VIETNAM,
    XLINK_NS,
    BusinessDocType,
    Priority,
    StatusCode,
    today_in_vietnam,
)
from lienthong_kit.codes import unit_code_problem

__all__ = [
    "diagnose",
    "parse",
    "parse_date",
    "parse_document",
    "parse_status",
    "parse_timestamp",
]

T = TypeVar("T")
Source = bytes | BinaryIO

# Both spellings circulate; "Bussiness" is what the reference SDKs write.
BUSINESS = ("Bussiness", "Business")
BUSINESS_DOC_TYPE = ("BussinessDocType", "BusinessDocType")
BUSINESS_DOC_REASON = ("BussinessDocReason", "BusinessDocReason")

_DATE_FORMATS = ("%Y/%m/%d", "%Y-%m-%d", "%d/%m/%Y")
_TIMESTAMP_FORMATS = ("%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M:%S")
_DATE_PREFIX = re.compile(r"^(\d{4}[/-]\d{1,2}[/-]\d{1,2}|\d{1,2}/\d{1,2}/\d{4})")


def parse_date(text: str) -> date | None:
    """A date as written in circulation (yyyy/MM/dd, yyyy-MM-dd, dd/MM/yyyy, maybe a time)."""
    match = _DATE_PREFIX.match(text.strip())
    if not match:
        return None
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(match.group(1), fmt).date()
        except ValueError:
            continue
    return None


def parse_timestamp(text: str) -> datetime | None:
    """An aware timestamp; one without an offset is Vietnam time."""
    text = text.strip()
    parsed: datetime | None = None
    for fmt in _TIMESTAMP_FORMATS:
        try:
            parsed = datetime.strptime(text, fmt)
            break
        except ValueError:
            continue
    if parsed is None:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=VIETNAM)
    return parsed.astimezone(VIETNAM)


def _local(element: Any) -> str:
    tag = element.tag
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _namespace(element: Any) -> str:
    tag = element.tag
    return tag[1:].partition("}")[0] if tag.startswith("{") else ""


def _xpath(element: Any) -> str:
    """A readable XPath by local names, with a position where siblings share a name."""
    steps: list[str] = []
    while element is not None:
        parent = element.getparent()
        name = _local(element)
        if parent is not None:
            same = [c for c in parent if _local(c) == name]
            if len(same) > 1:
                name = f"{name}[{same.index(element) + 1}]"
        steps.append(name)
        element = parent
    return "/" + "/".join(reversed(steps))


class _Reader:
    """Walks the header tree by local names, collecting every problem on the way."""

    def __init__(self, streams: list[Streamed], today: date) -> None:
        self.streams = streams
        self.today = today
        self.problems: list[Problem] = []

    def add(self, code: str, xpath: str, **params: Any) -> None:
        self.problems.append(problem(code, xpath, **params))

    # --- navigation -------------------------------------------------------------------------

    @staticmethod
    def children(parent: Any, *names: str) -> list[Any]:
        if parent is None:
            return []
        return [child for child in parent if _local(child) in names]

    def child(self, parent: Any, *names: str) -> Any:
        found = self.children(parent, *names)
        return found[0] if found else None

    def required(self, parent: Any, name: str) -> Any:
        found = self.child(parent, name)
        if found is None and parent is not None:
            self.add("missing-element", f"{_xpath(parent)}/{name}", name=name)
        return found

    def text(self, parent: Any, *names: str) -> str:
        found = self.child(parent, *names)
        return (found.text or "").strip() if found is not None else ""

    def required_text(self, parent: Any, name: str) -> str:
        found = self.required(parent, name)
        if found is None:
            return ""
        value = (found.text or "").strip()
        if not value:
            self.add("empty-element", _xpath(found), name=name)
        return value

    def converted(
        self, parent: Any, names: tuple[str, ...], convert: Callable[[str], T | None], code: str
    ) -> T | None:
        found = self.child(parent, *names)
        if found is None or not (found.text or "").strip():
            return None
        value = convert(found.text.strip())
        if value is None:
            self.add(code, _xpath(found), value=found.text.strip())
        return value

    def integer(self, parent: Any, *names: str) -> int | None:
        return self.converted(parent, names, _to_int, "bad-integer")

    def date(self, parent: Any, *names: str) -> date | None:
        return self.converted(parent, names, parse_date, "bad-date")

    def timestamp(self, parent: Any, *names: str) -> datetime | None:
        return self.converted(parent, names, parse_timestamp, "bad-timestamp")

    def organ_id(self, parent: Any) -> str:
        value = self.required_text(parent, "OrganId")
        if value and unit_code_problem(value):
            self.add("bad-organ-id", _xpath(self.child(parent, "OrganId")), value=value)
        return value

    # --- pieces -----------------------------------------------------------------------------

    def organ(self, element: Any) -> Organ:
        return Organ(
            organ_id=self.organ_id(element),
            organization_in_charge=self.text(element, "OrganizationInCharge"),
            organ_name=self.text(element, "OrganName"),
            organ_add=self.text(element, "OrganAdd"),
            email=self.text(element, "Email"),
            telephone=self.text(element, "Telephone"),
            fax=self.text(element, "Fax"),
            website=self.text(element, "Website"),
        )

    def staff_info(self, element: Any) -> StaffInfo | None:
        if element is None:
            return None
        return StaffInfo(
            department=self.text(element, "Department"),
            staff=self.text(element, "Staff"),
            mobile=self.text(element, "Mobile"),
            email=self.text(element, "Email"),
        )

    def response_for(self, element: Any) -> ResponseFor:
        organ = self.text(element, "OrganId")
        organ_element = self.child(element, "OrganId")
        if organ_element is not None and organ and unit_code_problem(organ):
            self.add("bad-organ-id", _xpath(organ_element), value=organ)
        return ResponseFor(
            organ_id=organ,
            document_id=self.text(element, "DocumentId"),
            code=self.text(element, "Code"),
            promulgation_date=self.date(element, "PromulgationDate"),
        )

    def priority(self, other: Any) -> Priority:
        found = self.child(other, "Priority")
        if found is None or not (found.text or "").strip():
            return Priority.NORMAL
        value = _to_int(found.text.strip())
        if value is None or not 0 <= value <= 4:
            self.add("bad-priority", _xpath(found), value=found.text.strip())
            return Priority.NORMAL
        return Priority(value)

    def other_info(self, element: Any) -> OtherInfo:
        if element is None:
            return OtherInfo()
        appendixes = self.children(self.child(element, "Appendixes"), "Appendix")
        return OtherInfo(
            priority=self.priority(element),
            sphere_of_promulgation=self.text(element, "SphereOfPromulgation"),
            typer_notation=self.text(element, "TyperNotation"),
            promulgation_amount=self.integer(element, "PromulgationAmount"),
            page_amount=self.integer(element, "PageAmount"),
            appendixes=tuple(t for a in appendixes if (t := (a.text or "").strip())),
        )

    def business(self, element: Any) -> Business:
        if element is None:
            return Business()
        doc_type = BusinessDocType.NEW
        found = self.child(element, *BUSINESS_DOC_TYPE)
        if found is not None and (found.text or "").strip():
            value = _to_int(found.text.strip())
            if value is None or value not in BusinessDocType._value2member_map_:
                self.add("bad-business-doc-type", _xpath(found), value=found.text.strip())
            else:
                doc_type = BusinessDocType(value)
        replacements = tuple(
            ReplacementInfo(
                document_id=self.text(info, "DocumentId"),
                organ_ids=tuple(
                    (o.text or "").strip()
                    for o in self.children(self.child(info, "OrganIdList"), "OrganId")
                ),
            )
            for info in self.children(self.child(element, "ReplacementInfoList"), "ReplacementInfo")
        )
        return Business(
            doc_type=doc_type,
            doc_reason=self.text(element, *BUSINESS_DOC_REASON),
            paper=self.integer(element, "Paper"),
            staff_info=self.staff_info(self.child(element, "StaffInfo")),
            replacement_info=replacements,
        )

    def traces(self, trace_list: Any) -> tuple[TraceHeader, ...]:
        hops: list[TraceHeader] = []
        for hop in self.children(trace_list, "TraceHeader"):
            organ = self.organ_id(hop)
            self.required(hop, "Timestamp")
            moment = self.timestamp(hop, "Timestamp")
            if moment is not None:
                hops.append(TraceHeader(organ, moment))
        return tuple(hops)

    def signature(self, header: Any) -> bytes | None:
        found = self.child(header, "Signature", "DigitalSignature")
        if found is None:
            return None
        if _namespace(found) == OLD_NS:  # the standard form has one edXML namespace
            found = _moved_to_standard(found)
        try:
            return bytes(etree.tostring(found, method="c14n", exclusive=True, with_comments=False))
        except etree.C14NError as exc:  # e.g. a relative namespace URI, which C14N forbids
            where = _xpath(self.child(header, "Signature", "DigitalSignature"))
            self.add("bad-signature-xml", where, detail=str(exc))
            return None

    def manifest(self, envelope: Any) -> tuple[ManifestReference, ...]:
        body = self.child(envelope, "edXMLBody")
        manifest = self.child(body, "edXMLManifest", "Manifest")
        references: list[ManifestReference] = []
        for ref in self.children(manifest, "Reference"):
            content_id = _content_id(ref.get(f"{{{XLINK_NS}}}href") or self.text(ref, "ContentId"))
            if not content_id:
                self.add("missing-element", f"{_xpath(ref)}/ContentId", name="ContentId")
            references.append(
                ManifestReference(
                    content_id=content_id,
                    content_type=self.text(ref, "ContentType"),
                    description=self.text(ref, "Description"),
                    attachment_name=self.text(ref, "AttachmentName"),
                )
            )
        return tuple(references)

    def attachments(self, container: Any) -> tuple[Attachment, ...]:
        found: list[Attachment] = []
        for element in self.children(container, "Attachment"):
            content_id = _content_id(self.required_text(element, "ContentId"))
            encoded = self.required(element, "ContentTransferEncoded")
            if encoded is None:
                continue
            stream = self.streams[int(encoded.get(STREAM_MARK))]
            if stream.error:
                self.add("bad-base64", _xpath(encoded), detail=stream.error)
                continue
            found.append(
                Attachment(
                    content_id=content_id,
                    name=self.text(element, "AttachmentName"),
                    content_type=self.text(element, "ContentType"),
                    size=stream.size,
                    sha256=stream.sha256,
                    description=self.text(element, "Description"),
                    data=stream.data,
                    path=stream.path,
                )
            )
        return tuple(found)

    def match_manifest(
        self, envelope: Any, container: Any, manifest: tuple[ManifestReference, ...]
    ) -> None:
        listed = [r.content_id for r in manifest]
        carriers = self.children(container, "Attachment")
        carried = [_content_id(self.text(a, "ContentId")) for a in carriers]
        references = self.children(
            self.child(self.child(envelope, "edXMLBody"), "edXMLManifest", "Manifest"), "Reference"
        )
        for ids, elements in ((listed, references), (carried, carriers)):
            seen: set[str] = set()
            for content_id, element in zip(ids, elements, strict=True):
                if content_id and content_id in seen:
                    self.add("duplicate-content-id", _xpath(element), value=content_id)
                seen.add(content_id)
        for content_id, element in zip(listed, references, strict=True):
            if content_id and content_id not in carried:
                self.add("manifest-missing-attachment", _xpath(element), value=content_id)
        for content_id, element in zip(carried, carriers, strict=True):
            if content_id and content_id not in listed:
                self.add("attachment-not-in-manifest", _xpath(element), value=content_id)

    # --- packages ---------------------------------------------------------------------------

    def document(self, root: Any, envelope: Any) -> DocumentPackage | None:
        header = self.required(envelope, "edXMLHeader")
        message = self.required(header, "MessageHeader")
        if message is None:
            return None
        from_element = self.required(message, "From")
        from_ = self.organ(from_element) if from_element is not None else Organ("")
        to_elements = self.required_all(message, "To")
        to = tuple(self.organ(e) for e in to_elements)
        seen: set[str] = set()
        for organ, element in zip(to, to_elements, strict=True):
            if organ.organ_id and organ.organ_id in seen:
                self.add("duplicate-recipient", _xpath(element), value=organ.organ_id)
            seen.add(organ.organ_id)
        code_element = self.required(message, "Code")
        code = Code(
            self.required_text(code_element, "CodeNumber"),
            self.required_text(code_element, "CodeNotation"),
        )
        promulgation_element = self.required(message, "PromulgationInfo")
        self.required(promulgation_element, "PromulgationDate")
        promulgated = self.date(promulgation_element, "PromulgationDate")
        if promulgated is not None and promulgated > self.today:
            self.add(
                "future-promulgation-date",
                _xpath(self.child(promulgation_element, "PromulgationDate")),
                value=promulgated.isoformat(),
                today=self.today.isoformat(),
            )
        due = self.date(message, "DueDate")
        if due is not None and promulgated is not None and due < promulgated:
            self.add(
                "due-before-promulgation",
                _xpath(self.child(message, "DueDate")),
                value=due.isoformat(),
                promulgated=promulgated.isoformat(),
            )
        subject = self.required_text(message, "Subject")
        document_type = self.child(message, "DocumentType")
        signer = self.child(message, "SignerInfo")
        trace_list = self.child(header, "TraceHeaderList")
        container = self.child(root, "AttachmentEncoded")
        if container is None:
            container = self.child(envelope, "AttachmentEncoded")
        manifest = self.manifest(envelope)
        package = DocumentPackage(
            from_=from_,
            to=to,
            code=code,
            promulgation=PromulgationInfo(
                self.text(promulgation_element, "Place"), promulgated or date.min
            ),
            subject=subject,
            document_type=DocumentType(
                type=self.integer(document_type, "Type"),
                type_detail=self.integer(document_type, "TypeDetail"),
                type_name=self.text(document_type, "TypeName"),
            ),
            content=self.text(message, "Content"),
            signer=(
                SignerInfo(
                    competence=self.text(signer, "Competence"),
                    position=self.text(signer, "Position"),
                    full_name=self.text(signer, "FullName"),
                )
                if signer is not None
                else None
            ),
            due_date=due,
            to_places=tuple(
                t
                for p in self.children(self.child(message, "ToPlaces"), "Place")
                if (t := (p.text or "").strip())
            ),
            other_info=self.other_info(self.child(message, "OtherInfo")),
            response_for=tuple(self.response_for(e) for e in self.children(message, "ResponseFor")),
            steering_type=self.integer(message, "SteeringType"),
            document_id=self.text(message, "DocumentId"),
            traces=self.traces(trace_list),
            business=self.business(self.child(trace_list, *BUSINESS)),
            signature=self.signature(header),
            manifest=manifest,
            attachments=self.attachments(container),
        )
        self.match_manifest(envelope, container, manifest)
        return package

    def required_all(self, parent: Any, name: str) -> list[Any]:
        found = self.children(parent, name)
        if not found and parent is not None:
            self.add("missing-element", f"{_xpath(parent)}/{name}", name=name)
        return found

    def status(self, element: Any) -> StatusPackage | None:
        response_element = self.required(element, "ResponseFor")
        from_element = self.required(element, "From")
        code_element = self.required(element, "StatusCode")
        self.required(element, "Timestamp")
        moment = self.timestamp(element, "Timestamp")
        code: StatusCode | None = None
        if code_element is not None:
            value = (code_element.text or "").strip()
            if value in StatusCode._value2member_map_:
                code = StatusCode(value)
            else:
                self.add("bad-status-code", _xpath(code_element), value=value)
        response_for = ResponseFor("", "")
        if response_element is not None:
            self.required(response_element, "DocumentId")
            response_for = self.response_for(response_element)
        from_ = self.organ(from_element) if from_element is not None else Organ("")
        if code is None or moment is None:
            return None
        return StatusPackage(
            response_for=response_for,
            from_=from_,
            status_code=code,
            timestamp=moment,
            description=self.text(element, "Description"),
            staff_info=self.staff_info(self.child(element, "StaffInfo")),
        )


def _moved_to_standard(element: Any, parent: Any = None) -> Any:
    """A copy of ``element`` with its old-namespace elements in the standard namespace."""
    tag = f"{{{NS}}}{_local(element)}" if _namespace(element) == OLD_NS else element.tag
    if parent is None:
        copy = etree.Element(tag, dict(element.attrib), nsmap={None: NS})
    else:
        copy = etree.SubElement(parent, tag, dict(element.attrib))
        copy.tail = element.tail
    copy.text = element.text
    for child in element:
        if isinstance(child.tag, str):
            _moved_to_standard(child, copy)
    return copy


def _to_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _content_id(text: str) -> str:
    text = text.strip().strip("<>")
    if text.lower().startswith("cid:"):
        text = text[4:]
    return text.strip("<>")


def _envelope(reader: _Reader, root: Any) -> Any:
    """The edXMLEnvelope, after checking the root's name and namespace."""
    name, namespace = _local(root), _namespace(root)
    if namespace not in ACCEPTED_NAMESPACES:
        reader.add("wrong-namespace", _xpath(root), found=namespace, expected=NS)
    if name == "edXML":
        return reader.required(root, "edXMLEnvelope")
    if name.lower() == "edxmlenvelope":
        return root
    reader.add("not-edxml", _xpath(root), found=name)
    return None


def _status_element(reader: _Reader, envelope: Any) -> Any:
    header = reader.child(envelope, "edXMLHeader")
    found = reader.child(header, "Status")
    if found is not None:
        return found
    message = reader.child(header, "MessageHeader")
    # Some senders put the status fields straight into a MessageHeader.
    return message if reader.child(message, "StatusCode") is not None else None


def _read(
    source: Source, limits: Limits, spool: Path | bool, today: date | None
) -> tuple[DocumentPackage | StatusPackage | None, list[Problem]]:
    root, streams, fatal = read_tree(source, limits, spool)
    if fatal:
        return None, fatal
    reader = _Reader(streams, today or today_in_vietnam())
    envelope = _envelope(reader, root)
    if envelope is None:
        return None, reader.problems
    status = _status_element(reader, envelope)
    if status is not None:
        return reader.status(status), reader.problems
    return reader.document(root, envelope), reader.problems


def _discard_spooled(package: DocumentPackage | StatusPackage | None) -> None:
    if isinstance(package, DocumentPackage):
        for attachment in package.attachments:
            if attachment.path is not None:
                attachment.path.unlink(missing_ok=True)


def parse(
    source: Source,
    *,
    limits: Limits | None = None,
    spool: Path | None = None,
    today: date | None = None,
) -> DocumentPackage | StatusPackage:
    """The package in ``source`` (bytes or a binary stream), or InvalidPackage listing every
    problem. Attachments are decoded into memory, or into files in ``spool`` if given (the
    caller removes them)."""
    package, problems = _read(source, limits or Limits(), spool or True, today)
    if problems or package is None:
        _discard_spooled(package)
        raise InvalidPackage(problems)
    return package


def parse_document(
    source: Source,
    *,
    limits: Limits | None = None,
    spool: Path | None = None,
    today: date | None = None,
) -> DocumentPackage:
    package = parse(source, limits=limits, spool=spool, today=today)
    if not isinstance(package, DocumentPackage):
        raise InvalidPackage([problem("missing-element", "/edXML", name="MessageHeader")])
    return package


def parse_status(
    source: Source, *, limits: Limits | None = None, today: date | None = None
) -> StatusPackage:
    package = parse(source, limits=limits, today=today)
    if not isinstance(package, StatusPackage):
        raise InvalidPackage([problem("missing-element", "/edXML", name="Status")])
    return package


def diagnose(
    source: Source, *, limits: Limits | None = None, today: date | None = None
) -> list[Problem]:
    """Every problem of the package in ``source``; [] when it is fine. Attachments are only
    decoded only to be sized and hashed, never kept."""
    _, problems = _read(source, limits or Limits(), False, today)
    return problems
