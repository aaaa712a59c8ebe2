"""The platform's shared vocabulary: edXML status codes and priorities, Vietnam's time.

    StatusCode.REGISTERED.value == "03"; StatusCode("03").vietnamese == "đã tiếp nhận"
    Priority(1).vietnamese == "Khẩn"
    today_in_vietnam()                     # the calendar day in Vietnam now

Names and codes come from QCVN 102:2016 (edXML) as listed in ../shared/design/DOMAIN.md.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from enum import IntEnum, StrEnum

__all__ = ["VIETNAM", "Priority", "StatusCode", "today_in_vietnam", "vietnam_time"]

# Vietnam has kept UTC+7 without daylight saving since 1975: a fixed offset needs no tz database.
VIETNAM = timezone(timedelta(hours=7), "ICT")


def vietnam_time(moment: datetime) -> datetime:
    """``moment`` (timezone-aware) as Vietnam's wall-clock time."""
    return moment.astimezone(VIETNAM)


def today_in_vietnam(now: datetime | None = None) -> date:
    """The calendar day in Vietnam at ``now`` (default: the current time)."""
    return (now or datetime.now(VIETNAM)).astimezone(VIETNAM).date()


class StatusCode(StrEnum):
    """edXML status codes of a delivery (the status package's StatusCode)."""

    ARRIVED = "01"
    REFUSED = "02"
    REGISTERED = "03"
    ASSIGNED = "04"
    IN_PROGRESS = "05"
    DONE = "06"
    RECALL_REQUESTED = "13"
    RECALL_ACCEPTED = "15"
    RECALL_REFUSED = "16"

    @property
    def english(self) -> str:
        return _STATUS_NAMES[self][0]

    @property
    def vietnamese(self) -> str:
        return _STATUS_NAMES[self][1]


_STATUS_NAMES: dict[StatusCode, tuple[str, str]] = {
    StatusCode.ARRIVED: ("arrived", "đã đến"),
    StatusCode.REFUSED: ("refused", "bị từ chối"),
    StatusCode.REGISTERED: ("registered", "đã tiếp nhận"),
    StatusCode.ASSIGNED: ("assigned", "đã phân công xử lý"),
    StatusCode.IN_PROGRESS: ("in progress", "đang xử lý"),
    StatusCode.DONE: ("done", "đã hoàn thành"),
    StatusCode.RECALL_REQUESTED: ("recall requested", "yêu cầu thu hồi"),
    StatusCode.RECALL_ACCEPTED: ("recall accepted", "đồng ý thu hồi/cập nhật"),
    StatusCode.RECALL_REFUSED: ("recall refused", "từ chối thu hồi/cập nhật"),
}


class Priority(IntEnum):
    """Độ khẩn: the edXML OtherInfo/Priority of a document."""

    NORMAL = 0
    URGENT = 1
    VERY_URGENT = 2
    FLASH = 3
    FLASH_SCHEDULED = 4

    @property
    def vietnamese(self) -> str:
        return _PRIORITY_NAMES[self]


_PRIORITY_NAMES = {
    Priority.NORMAL: "Thường",
    Priority.URGENT: "Khẩn",
    Priority.VERY_URGENT: "Thượng khẩn",
    Priority.FLASH: "Hỏa tốc",
    Priority.FLASH_SCHEDULED: "Hỏa tốc hẹn giờ",
}
