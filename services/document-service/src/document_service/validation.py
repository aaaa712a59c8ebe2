"""Validation of an outgoing document against edXML (QCVN 102:2016) and Decree 30/2020.

Pure functions, no I/O: every rule is unit-tested, and every violation of a request is
reported at once with its field path.
"""

from __future__ import annotations

from collections.abc import Sized
from datetime import date

from lienthong.document.v1.document_service_pb2 import (
    AcknowledgeDeliveryRequest,
    Direction,
    ListInboxRequest,
    RecallDocumentRequest,
    RegisterPaperDocumentRequest,
    Secrecy,
    SubmitDocumentRequest,
)
from lienthong_kit.codes import unit_code_problem
from lienthong_kit.errors import Violations
from lienthong_kit.vocabulary import Priority

__all__ = [
    "DOCUMENT_TYPES",
    "parse_date",
    "validate_acknowledgement",
    "validate_id",
    "validate_inbox_query",
    "validate_paper",
    "validate_recall",
    "validate_submission",
]

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
# Every string and list a client sends is bounded (the proto comments say the same): the event a
# request makes must fit the topic's record limit, and no check may take more than linear time.
MAX_KEY = 128
MAX_ID = 64
MAX_UNIT_CODES = 1000
MAX_SCOPES = 50
MAX_EXCLUSIONS = 500
MAX_TEXT = 2000
MAX_PLACE = 500
MAX_PLACES = 50
MAX_NAME = 200
MAX_STATUS_FILTERS = 20
MAX_PAGE_TOKEN = 512
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


# The checks below format a message only for a violation: they run on every request.


def _bounded(v: Violations, field: str, text: str, maximum: int) -> bool:
    if len(text) <= maximum:
        return True
    v.add(field, f"at most {maximum} characters")
    return False


def _counted(v: Violations, field: str, items: Sized, maximum: int) -> bool:
    """False (and a violation) when a list is too long: its items are then not checked one by
    one, so an oversized list costs one violation, not one per item."""
    if len(items) <= maximum:
        return True
    v.add(field, f"at most {maximum} entries")
    return False


def validate_submission(request: SubmitDocumentRequest, sender: str, today: date) -> None:
    """Raise InvalidArgument naming every problem of ``request``, sent by ``sender``."""
    v = Violations()
    _bounded(v, "idempotency_key", request.idempotency_key, MAX_KEY)
    codes = list(request.recipients.unit_codes)
    v.require(
        bool(codes) or bool(request.recipients.scopes),
        "recipients",
        "at least one recipient (a unit code or a scope) is required",
    )
    scopes = request.recipients.scopes
    for index, scope in enumerate(
        scopes if _counted(v, "recipients.scopes", scopes, MAX_SCOPES) else ()
    ):
        path = f"recipients.scopes[{index}]"
        if scope.ancestor_code:
            problem = unit_code_problem(scope.ancestor_code)
            if problem:
                v.add(f"{path}.ancestor_code", problem)
        excluded_codes = scope.exclude_codes
        if not _counted(v, f"{path}.exclude_codes", excluded_codes, MAX_EXCLUSIONS):
            continue
        for position, excluded in enumerate(excluded_codes):
            problem = unit_code_problem(excluded)
            if problem:
                v.add(f"{path}.exclude_codes[{position}]", problem)
    if not _counted(v, "recipients.unit_codes", codes, MAX_UNIT_CODES):
        codes = []
    seen: set[str] = set()
    for index, code in enumerate(codes):
        problem = unit_code_problem(code)
        if not problem and code in seen:
            problem = f"duplicate recipient {code}"
        elif not problem and code == sender:
            problem = "a unit does not send a document to itself"
        if problem:
            v.add(f"recipients.unit_codes[{index}]", problem)
        seen.add(code)
    number, notation = request.code.number.strip(), request.code.notation.strip()
    if v.require(bool(number), "code.number", "is required"):
        _bounded(v, "code.number", number, MAX_NUMBER)
    if v.require(bool(notation), "code.notation", "is required"):
        _bounded(v, "code.notation", notation, MAX_NOTATION)
    subject = request.subject.strip()
    if v.require(bool(subject), "subject", "is required"):
        _bounded(v, "subject", subject, MAX_SUBJECT)
    _document_type(v, request.document_type)
    if request.priority not in PRIORITIES:
        v.add(
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
    _bounded(v, "signer.position", request.signer.position, MAX_NAME)
    _bounded(v, "signer.full_name", request.signer.full_name, MAX_NAME)
    _bounded(v, "content_summary", request.content_summary, MAX_TEXT)
    _bounded(v, "promulgation_place", request.promulgation_place, MAX_PLACE)
    _bounded(v, "response_for", request.response_for, MAX_ID)
    places = request.to_places
    for index, place in enumerate(places if _counted(v, "to_places", places, MAX_PLACES) else ()):
        v.require(
            bool(place.strip()) and len(place) <= MAX_PLACE,
            f"to_places[{index}]",
            f"1 to {MAX_PLACE} characters",
        )
    v.require(request.steering_type >= 0, "steering_type", "must not be negative")
    ids = request.attachment_ids
    listed: set[str] = set()  # linear: a list prefix copied per id was quadratic
    for index, attachment_id in enumerate(
        ids if _counted(v, "attachment_ids", ids, MAX_ATTACHMENTS) else ()
    ):
        if _bounded(v, f"attachment_ids[{index}]", attachment_id, MAX_ID):
            v.require(attachment_id not in listed, f"attachment_ids[{index}]", "listed twice")
        listed.add(attachment_id)
    v.raise_if_any()


def _document_type(v: Violations, document_type: str) -> None:
    if document_type not in DOCUMENT_TYPES:
        v.add("document_type", f"{document_type!r} is not a document type of Decree 30/2020 Art. 7")


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
    _bounded(v, "idempotency_key", request.idempotency_key, MAX_KEY)
    v.require(
        request.direction in (Direction.DIRECTION_INCOMING, Direction.DIRECTION_OUTGOING),
        "direction",
        "must be INCOMING or OUTGOING",
    )
    if v.require(bool(request.counterpart.strip()), "counterpart", "is required"):
        _bounded(v, "counterpart", request.counterpart, MAX_PLACE)
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
    _document_type(v, request.document_type)
    if request.promulgation_date:
        _promulgation(v, request.promulgation_date, today)
    v.raise_if_any()


def validate_id(field: str, value: str) -> None:
    """An id a client names (a document, a delivery, an attachment): bounded before any lookup."""
    v = Violations()
    _bounded(v, field, value, MAX_ID)
    v.raise_if_any()


def validate_acknowledgement(request: AcknowledgeDeliveryRequest) -> None:
    v = Violations()
    _bounded(v, "delivery_id", request.delivery_id, MAX_ID)
    _bounded(v, "status_code", request.status_code, 2)
    _bounded(v, "description", request.description, MAX_TEXT)
    _bounded(v, "staff", request.staff, MAX_NAME)
    _bounded(v, "idempotency_key", request.idempotency_key, MAX_KEY)
    v.raise_if_any()


def validate_recall(request: RecallDocumentRequest) -> None:
    v = Violations()
    _bounded(v, "document_id", request.document_id, MAX_ID)
    _bounded(v, "reason", request.reason, MAX_TEXT)
    _bounded(v, "replacement_document_id", request.replacement_document_id, MAX_ID)
    v.raise_if_any()


def validate_inbox_query(request: ListInboxRequest) -> None:
    v = Violations()
    _bounded(v, "page_token", request.page_token, MAX_PAGE_TOKEN)
    codes = request.status_codes
    for index, code in enumerate(
        codes if _counted(v, "status_codes", codes, MAX_STATUS_FILTERS) else ()
    ):
        _bounded(v, f"status_codes[{index}]", code, 2)
    v.raise_if_any()
