"""The edXML vocabulary: namespaces, status codes, priorities, business types, Vietnam time.

StatusCode("03").english       # the kit's vocabulary: "registered"
Priority(3).name                # "FLASH" (hỏa tốc)
"""

from __future__ import annotations

from enum import IntEnum

from lienthong_kit.vocabulary import VIETNAM, Priority, StatusCode, today_in_vietnam

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


class BusinessDocType(IntEnum):
    """TraceHeaderList/Bussiness/BussinessDocType."""

    NEW = 0
    RECALL = 1
    UPDATE = 2
    REPLACE = 3
