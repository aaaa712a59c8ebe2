"""What a notification says: the event kinds, who is told, and the Vietnamese templates.

    notices = notices_for(envelope)          # [] for an event nobody needs to hear about
    notice.title, notice.body                # rendered from TEMPLATES[notice.kind]

Pure functions of the event: the same event always gives the same notices (ids, text), so a
redelivered event maps onto the same stored records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from string import Template

from lienthong.common.v1.common_pb2 import DocumentSummary, Verdict
from lienthong.events.v1.events_pb2 import (
    DeliveryBounced,
    DeliveryCreated,
    DeliveryStatusChanged,
    DocumentVerified,
)
from lienthong_kit.envelope import EventEnvelope, carries, unpack
from lienthong_kit.vocabulary import Priority, StatusCode, vietnam_time

__all__ = [
    "KINDS",
    "Notice",
    "notices_for",
    "reminder_notice",
    "render_new_delivery",
]

_NEW = Template("Văn bản đến mới ($urgency): số $number/$notation")
TEMPLATES: dict[str, tuple[Template, Template]] = {
    "delivery.created": (
        _NEW,
        Template("Từ $sender: $subject"),
    ),
    "delivery.status.changed": (
        Template("Văn bản số $number/$notation: $recipient $status_name"),
        Template(
            "Đơn vị $recipient cập nhật trạng thái văn bản \u201c$subject\u201d:"
            " $status_name (mã $code).$description"
        ),
    ),
    "document.returned": (
        Template("Văn bản số $number/$notation bị trả lại ($urgency)"),
        Template("Văn bản \u201c$subject\u201d gửi $recipient bị trả lại. Lý do: $reason"),
    ),
    "document.forwarded": (
        Template("Văn bản số $number/$notation được chuyển tới đơn vị kế thừa"),
        Template(
            "Văn bản \u201c$subject\u201d gửi $closed (đơn vị đã kết thúc hoạt động) được chuyển"
            " tới đơn vị kế thừa $recipient."
        ),
    ),
    "document.recalled": (
        Template("Thu hồi văn bản số $number/$notation ($urgency)"),
        Template(
            "Đơn vị $sender yêu cầu thu hồi văn bản \u201c$subject\u201d.$description"
            " Đề nghị không xử lý tiếp và xác nhận thu hồi."
        ),
    ),
    "reminder.due": (
        Template("Nhắc hạn xử lý: văn bản số $number/$notation còn $days ngày"),
        Template(
            "Văn bản \u201c$subject\u201d từ $sender ($urgency) có hạn xử lý $due. Còn $days ngày."
        ),
    ),
    "reminder.overdue": (
        Template("Quá hạn xử lý: văn bản số $number/$notation"),
        Template("Văn bản \u201c$subject\u201d từ $sender ($urgency) đã quá hạn xử lý ($due)."),
    ),
}

KINDS = tuple(TEMPLATES)


@dataclass(frozen=True)
class Notice:
    """One thing a unit is told, before it is sent on any channel."""

    kind: str
    unit_code: str
    # The id of what caused it (an event id or a reminder id): with the contact and the
    # channel it makes the notification's key.
    source_id: str
    document_id: str
    delivery_id: str
    urgent: bool
    title: str
    body: str
    # Machine-readable facts, the JSON of a webhook.
    facts: dict[str, str] = field(default_factory=dict)
    due_at: datetime | None = None


def _urgency(priority: int) -> str:
    """Độ khẩn in words; a priority outside the edXML range reads as routine."""
    try:
        return Priority(priority).vietnamese
    except ValueError:
        return Priority.NORMAL.vietnamese


def _status_name(code: str) -> str:
    """The status in words; a code outside the edXML list is shown as it came."""
    try:
        return StatusCode(code).vietnamese
    except ValueError:
        return code


def _values(document: DocumentSummary) -> dict[str, str]:
    due = ""
    if document.HasField("due_at"):
        due = vietnam_time(document.due_at.ToDatetime(UTC)).strftime("%d/%m/%Y %H:%M")
    return {
        "number": document.code.number,
        "notation": document.code.notation,
        "subject": document.subject,
        "sender": document.sender_code,
        "urgency": _urgency(document.priority),
        "due": due,
    }


def _notice(
    kind: str,
    unit: str,
    source_id: str,
    document: DocumentSummary,
    delivery_id: str,
    **extra: str,
) -> Notice:
    values = {**_values(document), **extra}
    title, body = TEMPLATES[kind]
    facts = {
        "kind": kind,
        "unit_code": unit,
        "document_id": document.document_id,
        "delivery_id": delivery_id,
        **values,
    }
    return Notice(
        kind=kind,
        unit_code=unit,
        source_id=source_id,
        document_id=document.document_id,
        delivery_id=delivery_id,
        urgent=document.priority >= 1,
        title=title.substitute(values),
        body=body.substitute(values),
        facts=facts,
        due_at=document.due_at.ToDatetime(UTC) if document.HasField("due_at") else None,
    )


def render_new_delivery(delivery: DeliveryCreated) -> tuple[str, str]:
    """Title and body of the notice of a new delivery, in Vietnamese."""
    notice = _notice("delivery.created", delivery.recipient_code, "", delivery.document, "")
    return notice.title, notice.body


def notices_for(envelope: EventEnvelope) -> list[Notice]:
    """The notices an event causes (the units told and what they are told)."""
    source = envelope.event_id
    if carries(envelope, DeliveryCreated):
        created = unpack(envelope, DeliveryCreated)
        notices = [
            _notice(
                "delivery.created",
                created.recipient_code,
                source,
                created.document,
                created.delivery_id,
            )
        ]
        if created.forwarded_from:  # the sender learns where its document went
            notices.append(
                _notice(
                    "document.forwarded",
                    created.document.sender_code,
                    source,
                    created.document,
                    created.delivery_id,
                    recipient=created.recipient_code,
                    closed=", ".join(hop.closed_code for hop in created.forwarded_from),
                )
            )
        return notices
    if carries(envelope, DeliveryBounced):
        bounced = unpack(envelope, DeliveryBounced)
        return [
            _notice(
                "document.returned",
                bounced.document.sender_code,
                source,
                bounced.document,
                bounced.delivery_id,
                recipient=bounced.recipient_code,
                reason=bounced.reason or "không chuyển được tới đơn vị nhận",
            )
        ]
    if carries(envelope, DeliveryStatusChanged):
        return _status_notices(source, unpack(envelope, DeliveryStatusChanged))
    if carries(envelope, DocumentVerified):
        verified = unpack(envelope, DocumentVerified)
        if verified.verdict != Verdict.VERDICT_REJECTED:
            return []
        return [
            _notice(
                "document.returned",
                verified.document.sender_code,
                source,
                verified.document,
                "",
                recipient="các đơn vị nhận",
                reason=verified.reason or "chữ ký số không hợp lệ",
            )
        ]
    return []


def _status_notices(source: str, changed: DeliveryStatusChanged) -> list[Notice]:
    code = changed.reported_code or changed.status_code
    description = f" {changed.description}" if changed.description else ""
    document = changed.document
    if code == StatusCode.RECALL_REQUESTED:  # the sender's request reached the recipient
        return [
            _notice(
                "document.recalled",
                changed.recipient_code,
                source,
                document,
                changed.delivery_id,
                description=description,
            )
        ]
    if code == StatusCode.REFUSED:  # refused by the recipient: returned to the sender
        return [
            _notice(
                "document.returned",
                document.sender_code,
                source,
                document,
                changed.delivery_id,
                recipient=changed.recipient_code,
                reason=changed.description or StatusCode.REFUSED.vietnamese,
            )
        ]
    return [
        _notice(
            "delivery.status.changed",
            document.sender_code,
            source,
            document,
            changed.delivery_id,
            recipient=changed.recipient_code,
            status_name=_status_name(code),
            code=code,
            description=description,
        )
    ]


def reminder_notice(reminder: dict[str, object], *, overdue: bool) -> Notice:
    """The notice of a stored reminder (see reminders.py for its fields)."""
    document = DocumentSummary()
    document.ParseFromString(reminder["document"])  # type: ignore[arg-type]
    kind = "reminder.overdue" if overdue else "reminder.due"
    return _notice(
        kind,
        str(reminder["unit_code"]),
        str(reminder["_id"]),
        document,
        str(reminder["delivery_id"]),
        days=str(reminder["lead_days"]),
    )
