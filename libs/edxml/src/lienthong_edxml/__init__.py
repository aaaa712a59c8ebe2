"""edXML (QCVN 102:2016/BTTTT) for lienthong: read and write document and status packages,
and diagnose a package listing every problem (docs/edxml.md).

    from lienthong_edxml import diagnose, parse_document, document_bytes
    package = parse_document(data)          # InvalidPackage lists every problem
    standard = document_bytes(package)      # always the standard form
"""

from __future__ import annotations

from lienthong_edxml._stream import Limits
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
from lienthong_edxml.problems import EdxmlError, InvalidPackage, Problem
from lienthong_edxml.reader import diagnose, parse, parse_document, parse_status
from lienthong_edxml.vocabulary import NS, OLD_NS, BusinessDocType, Priority, StatusCode
from lienthong_edxml.writer import document_bytes, status_bytes, write_document, write_status

__all__ = [
    "NS",
    "OLD_NS",
    "Attachment",
    "Business",
    "BusinessDocType",
    "Code",
    "DocumentPackage",
    "DocumentType",
    "EdxmlError",
    "InvalidPackage",
    "Limits",
    "ManifestReference",
    "Organ",
    "OtherInfo",
    "Priority",
    "Problem",
    "PromulgationInfo",
    "ReplacementInfo",
    "ResponseFor",
    "SignerInfo",
    "StaffInfo",
    "StatusCode",
    "StatusPackage",
    "TraceHeader",
    "diagnose",
    "document_bytes",
    "parse",
    "parse_document",
    "parse_status",
    "status_bytes",
    "write_document",
    "write_status",
]
