"""The edXML vocabulary: namespaces, status codes, priorities, business types, Vietnam time.

StatusCode("03").meaning_en     # "registered (accepted)"
Priority(3).name                # "FLASH" (hỏa tốc)
"""

from __future__ import annotations

from datetime import date, datetime
from enum import IntEnum, StrEnum
from zoneinfo import ZoneInfo

__all__ = [
    "ACCEPTED_NAMESPACES",
    "NS",
    "OLD_NS",
    "VIETNAM",
    "XLINK_NS",
    "BusinessDocType",
    "Priority",
    "StatusCode",
    "today_in_vietnam",
]

# QCVN 102:2016 namespace: the one written; the older e-Doc namespace is still read.
NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
OLD_NS = "http://www.go.vn/eDoc"
ACCEPTED_NAMESPACES = (NS, OLD_NS)
XLINK_NS = "http://www.w3.org/1999/xlink"

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")


def today_in_vietnam() -> date:
    return datetime.now(VIETNAM).date()


class Priority(IntEnum):
    """OtherInfo/Priority (độ khẩn)."""

    NORMAL = 0  # thường
    URGENT = 1  # khẩn
    VERY_URGENT = 2  # thượng khẩn
    FLASH = 3  # hỏa tốc
    FLASH_SCHEDULED = 4  # hỏa tốc hẹn giờ


class BusinessDocType(IntEnum):
    """TraceHeaderList/Bussiness/BussinessDocType."""

    NEW = 0
    RECALL = 1
    UPDATE = 2
    REPLACE = 3


class StatusCode(StrEnum):
    """StatusCode of a status package."""

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
    def meaning_en(self) -> str:
        return _MEANINGS[self][1]

    @property
    def meaning_vi(self) -> str:
        return _MEANINGS[self][0]


_MEANINGS = {
    StatusCode.ARRIVED: ("đã đến", "arrived"),
    StatusCode.REFUSED: ("từ chối tiếp nhận", "refused"),
    StatusCode.REGISTERED: ("đã tiếp nhận, vào sổ", "registered (accepted)"),
    StatusCode.ASSIGNED: ("đã phân công", "assigned"),
    StatusCode.IN_PROGRESS: ("đang xử lý", "in progress"),
    StatusCode.DONE: ("đã hoàn thành", "done"),
    StatusCode.RECALL_REQUESTED: ("đề nghị thu hồi", "recall requested"),
    StatusCode.RECALL_ACCEPTED: ("đồng ý thu hồi/cập nhật", "recall or update accepted"),
    StatusCode.RECALL_REFUSED: ("từ chối thu hồi/cập nhật", "recall or update refused"),
}
