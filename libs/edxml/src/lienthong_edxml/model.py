"""The typed model of edXML packages: what a document package and a status package carry.

An empty string or ``None`` means the element is absent (the builder leaves it out), so a
package read and written again keeps every field below; what is not modelled is listed in
docs/decisions/0001-edxml-codec.md.

    package = DocumentPackage(
        from_=Organ("000.00.00.H23"), to=(Organ("000.01.00.H23"),),
        code=Code("15", "QĐ-UBND"), promulgation=PromulgationInfo("Lào Cai", date(2026, 11, 20)),
        subject="Về việc triển khai liên thông văn bản điện tử",
        attachments=(Attachment.from_bytes("a1", "qd15.pdf", "application/pdf", pdf),),
    ).with_manifest()
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

from lienthong_edxml.vocabulary import BusinessDocType, Priority, StatusCode

__all__ = [
    "Attachment",
    "Business",
    "Code",
    "DocumentPackage",
    "DocumentType",
    "ManifestReference",
    "Organ",
    "OtherInfo",
    "PromulgationInfo",
    "ReplacementInfo",
    "ResponseFor",
    "SignerInfo",
    "StaffInfo",
    "StatusPackage",
    "TraceHeader",
]


@dataclass(frozen=True)
class Organ:
    """From / To: an organisation by its identifier code (mã định danh)."""

    organ_id: str
    organization_in_charge: str = ""
    organ_name: str = ""
    organ_add: str = ""
    email: str = ""
    telephone: str = ""
    fax: str = ""
    website: str = ""


@dataclass(frozen=True)
class Code:
    code_number: str
    code_notation: str


@dataclass(frozen=True)
class PromulgationInfo:
    place: str
    promulgation_date: date


@dataclass(frozen=True)
class DocumentType:
    """Type (a numeric category), TypeDetail and TypeName (e.g. "Quyết định")."""

    type: int | None = None
    type_detail: int | None = None
    type_name: str = ""


@dataclass(frozen=True)
class SignerInfo:
    competence: str = ""
    position: str = ""
    full_name: str = ""


@dataclass(frozen=True)
class OtherInfo:
    priority: Priority = Priority.NORMAL
    sphere_of_promulgation: str = ""
    typer_notation: str = ""
    promulgation_amount: int | None = None
    page_amount: int | None = None
    appendixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResponseFor:
    """The document a package answers: its sender, number/notation, date and edXML id."""

    organ_id: str
    document_id: str
    code: str = ""
    promulgation_date: date | None = None


@dataclass(frozen=True)
class TraceHeader:
    """One hop: the unit the package passed through and when (aware, kept in Vietnam time)."""

    organ_id: str
    timestamp: datetime


@dataclass(frozen=True)
class StaffInfo:
    department: str = ""
    staff: str = ""
    mobile: str = ""
    email: str = ""


@dataclass(frozen=True)
class ReplacementInfo:
    """The document replaced (its edXML DocumentId) and the units that received it."""

    document_id: str
    organ_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Business:
    doc_type: BusinessDocType = BusinessDocType.NEW
    doc_reason: str = ""
    paper: int | None = None
    staff_info: StaffInfo | None = None
    replacement_info: tuple[ReplacementInfo, ...] = ()


@dataclass(frozen=True)
class ManifestReference:
    """One edXMLBody/edXMLManifest/Reference: a ``cid:`` (kept without the prefix)."""

    content_id: str
    content_type: str = ""
    description: str = ""
    attachment_name: str = ""


@dataclass(frozen=True)
class Attachment:
    """An attachment's metadata and bytes, in memory (``data``) or spooled to a file (``path``).

    Two attachments are equal when their metadata, size and SHA-256 are: where the bytes live
    does not matter.
    """

    content_id: str
    name: str
    content_type: str
    size: int
    sha256: str
    description: str = ""
    data: bytes | None = field(default=None, compare=False, repr=False)
    path: Path | None = field(default=None, compare=False)

    @classmethod
    def from_bytes(
        cls, content_id: str, name: str, content_type: str, data: bytes, description: str = ""
    ) -> Attachment:
        return cls(
            content_id=content_id,
            name=name,
            content_type=content_type,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            description=description,
            data=data,
        )

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        """The bytes as a stream, wherever they are."""
        if self.data is not None:
            yield BytesIO(self.data)
        elif self.path is not None:
            with self.path.open("rb") as stream:
                yield stream
        else:
            raise ValueError(f"attachment {self.content_id!r} has neither data nor path")

    def read_bytes(self) -> bytes:
        with self.open() as stream:
            return stream.read()


@dataclass(frozen=True)
class DocumentPackage:
    """A document package: edXMLHeader (MessageHeader, TraceHeaderList, Signature), the
    edXMLBody manifest and the attachments."""

    from_: Organ
    to: tuple[Organ, ...]
    code: Code
    promulgation: PromulgationInfo
    subject: str
    document_type: DocumentType = DocumentType()
    content: str = ""
    signer: SignerInfo | None = None
    due_date: date | None = None
    to_places: tuple[str, ...] = ()
    other_info: OtherInfo = OtherInfo()
    response_for: tuple[ResponseFor, ...] = ()
    steering_type: int | None = None
    document_id: str = ""
    traces: tuple[TraceHeader, ...] = ()
    business: Business = Business()
    # The Signature element as exclusive canonical XML (C14N), kept opaque.
    signature: bytes | None = None
    manifest: tuple[ManifestReference, ...] = ()
    attachments: tuple[Attachment, ...] = ()

    def with_manifest(self) -> DocumentPackage:
        """This package with a manifest listing exactly its attachments."""
        references = tuple(
            ManifestReference(a.content_id, a.content_type, a.description, a.name)
            for a in self.attachments
        )
        return replace(self, manifest=references)


@dataclass(frozen=True)
class StatusPackage:
    """A status package: a recipient tells the sender where a document stands."""

    response_for: ResponseFor
    from_: Organ
    status_code: StatusCode
    timestamp: datetime
    description: str = ""
    staff_info: StaffInfo | None = None
