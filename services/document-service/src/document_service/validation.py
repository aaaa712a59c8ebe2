"""Validation of an outgoing document against edXML (QCVN 102:2016) and Decree 30/2020.

Pure functions, no I/O: every rule is unit-tested, and every violation of a request is
reported at once with its field path.
"""

from __future__ import annotations

from datetime import date

from lienthong.document.v1.document_service_pb2 import (
    Direction,
    RegisterPaperDocumentRequest,
    Secrecy,
    SubmitDocumentRequest,
)
from lienthong_kit.codes import unit_code_problem
from lienthong_kit.errors import Violations
from lienthong_kit.vocabulary import Priority

__all__ = ["DOCUMENT_TYPES", "parse_date", "validate_paper", "validate_submission"]

# Decree 30/2020 Art. 7 notations; "" is Công văn, which has none.
DOCUMENT_TYPES = frozenset(
    {
        "", "NQ", "QĐ", "CT", "QC", "QyĐ", "TC", "TB", "HD", "CTr", "KH", "PA", "ĐA", "DA", "BC",
        "BB", "TTr", "HĐ", "CĐ", "BGN", "BTT", "GUQ", "GM", "GGT", "GNP", "PG", "PC", "PB", "SY",
        "TrS", "SL",
    }
)  # fmt: skip
MAX_NUMBER = 11
MAX_NOTATION = 30
MAX_SUBJECT = 500
MAX_ATTACHMENTS = 50
PRIORITIES = frozenset(Priority)
COMPETENCES = frozenset({"", "TM.", "Q.", "KT.", "TL.", "TUQ."})
SECRET = frozenset(
    {Secrecy.SECRECY_CONFIDENTIAL, Secrecy.SECRECY_SECRET, Secrecy.SECRECY_TOP_SECRET}
)


def parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def validate_submission(request: SubmitDocumentRequest, sender: str, today: date) -> None:
    """Raise InvalidArgument naming every problem of ``request``, sent by ``sender``."""
    v = Violations()
    codes = list(request.recipients.unit_codes)
    v.require(
        bool(codes) or bool(request.recipients.scopes),
        "recipients",
        "at least one recipient (a unit code or a scope) is required",
    )
    for index, scope in enumerate(request.recipients.scopes):
        path = f"recipients.scopes[{index}]"
        if scope.ancestor_code:
            problem = unit_code_problem(scope.ancestor_code)
            if problem:
                v.add(f"{path}.ancestor_code", problem)
        for position, excluded in enumerate(scope.exclude_codes):
            problem = unit_code_problem(excluded)
            if problem:
                v.add(f"{path}.exclude_codes[{position}]", problem)
    seen: set[str] = set()
    for index, code in enumerate(codes):
        path = f"recipients.unit_codes[{index}]"
        problem = unit_code_problem(code)
        if problem:
            v.add(path, problem)
        elif code in seen:
            v.add(path, f"duplicate recipient {code}")
        elif code == sender:
            v.add(path, "a unit does not send a document to itself")
        seen.add(code)
    number, notation = request.code.number.strip(), request.code.notation.strip()
    if v.require(bool(number), "code.number", "is required"):
        v.require(len(number) <= MAX_NUMBER, "code.number", f"at most {MAX_NUMBER} characters")
    if v.require(bool(notation), "code.notation", "is required"):
        v.require(
            len(notation) <= MAX_NOTATION, "code.notation", f"at most {MAX_NOTATION} characters"
        )
    subject = request.subject.strip()
    if v.require(bool(subject), "subject", "is required"):
        v.require(len(subject) <= MAX_SUBJECT, "subject", f"at most {MAX_SUBJECT} characters")
    v.require(
        request.document_type in DOCUMENT_TYPES,
        "document_type",
        f"{request.document_type!r} is not a document type of Decree 30/2020 Art. 7",
    )
    v.require(
        request.priority in PRIORITIES,
        "priority",
        f"must be {Priority.NORMAL} (thường) to {Priority.FLASH_SCHEDULED} (hỏa tốc hẹn giờ)",
    )
    promulgated = _promulgation(v, request.promulgation_date, today)
    if request.HasField("due_at") and promulgated is not None:
        due = request.due_at.ToDatetime().date()
        v.require(due >= promulgated, "due_at", f"{due} is before the promulgation date")
    v.require(
        request.secrecy not in SECRET,
        "secrecy",
        "secret documents (độ mật) are not exchanged over this network",
    )
    v.require(
        request.signer.competence in COMPETENCES,
        "signer.competence",
        "must be one of TM., Q., KT., TL., TUQ. or empty",
    )
    for index, place in enumerate(request.to_places):
        v.require(
            bool(place.strip()) and len(place) <= 500, f"to_places[{index}]", "1 to 500 characters"
        )
    v.require(request.steering_type >= 0, "steering_type", "must not be negative")
    ids = list(request.attachment_ids)
    v.require(len(ids) <= MAX_ATTACHMENTS, "attachment_ids", f"at most {MAX_ATTACHMENTS}")
    for index, attachment_id in enumerate(ids):
        v.require(attachment_id not in ids[:index], f"attachment_ids[{index}]", "listed twice")
    v.raise_if_any()


def _promulgation(v: Violations, text: str, today: date) -> date | None:
    promulgated = parse_date(text)
    if promulgated is None:
        v.add("promulgation_date", "must be a date yyyy-MM-dd")
    else:
        v.require(promulgated <= today, "promulgation_date", f"{promulgated} is in the future")
    return promulgated


def validate_paper(request: RegisterPaperDocumentRequest, today: date) -> None:
    """Raise InvalidArgument naming every problem of a paper registration."""
    v = Violations()
    v.require(
        request.direction in (Direction.DIRECTION_INCOMING, Direction.DIRECTION_OUTGOING),
        "direction",
        "must be INCOMING or OUTGOING",
    )
    v.require(bool(request.counterpart.strip()), "counterpart", "is required")
    subject = request.subject.strip()
    if v.require(bool(subject), "subject", "is required"):
        v.require(len(subject) <= MAX_SUBJECT, "subject", f"at most {MAX_SUBJECT} characters")
    v.require(
        len(request.code.number) <= MAX_NUMBER, "code.number", f"at most {MAX_NUMBER} characters"
    )
    v.require(
        len(request.code.notation) <= MAX_NOTATION,
        "code.notation",
        f"at most {MAX_NOTATION} characters",
    )
    v.require(
        request.document_type in DOCUMENT_TYPES,
        "document_type",
        f"{request.document_type!r} is not a document type of Decree 30/2020 Art. 7",
    )
    if request.promulgation_date:
        _promulgation(v, request.promulgation_date, today)
    v.raise_if_any()
