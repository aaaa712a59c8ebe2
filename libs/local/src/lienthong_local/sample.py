"""The sample province: Hòa Bình as it was before the 2025 reorganisation.

    units = sample_units()        # parents before children, ready to upsert or import in order

The districts and communes are the official divisions shipped by the ``vietnam-provinces``
package (version 0.6.0 holds the three-tier structure: 10 districts and 151 communes for Hòa
Bình); the 20 departments carry their standard names (departments are not in that data).

Codes come in both forms (DOMAIN.md): the QCVN 102 form, level 1 at the right
(``000.00.00.H23`` the provincial People's Committee, ``000.DD.00.H23`` department DD,
``000.00.NN.H23`` district NN from 31, ``000.CC.NN.H23`` commune CC of district NN), and the
Decision 20/2020 form, one group per level left to right, built from the official division
codes (``H23.148`` a district, ``H23.148.04789`` one of its communes).
"""

from __future__ import annotations

import json
import unicodedata
from functools import cache
from importlib.resources import files
from typing import Any

from lienthong.common.v1.common_pb2 import UnitLevel
from lienthong.routing.v1.routing_service_pb2 import Unit

__all__ = ["DEPARTMENTS", "PROVINCE", "sample_units"]

PROVINCE = "000.00.00.H23"
_LEVEL_1 = "H23"
_PROVINCE_NAME = "Tỉnh Hòa Bình"
_FIRST_DISTRICT = 31

# The provincial departments, boards and sectors (sở, ban, ngành); the first keeps 01.
DEPARTMENTS = [
    "Sở Tài chính",
    "Sở Ngoại vụ",
    "Sở Thông tin và Truyền thông",
    "Văn phòng Ủy ban nhân dân tỉnh",
    "Sở Nội vụ",
    "Sở Tư pháp",
    "Sở Kế hoạch và Đầu tư",
    "Sở Công Thương",
    "Sở Nông nghiệp và Phát triển nông thôn",
    "Sở Giao thông vận tải",
    "Sở Xây dựng",
    "Sở Tài nguyên và Môi trường",
    "Sở Lao động - Thương binh và Xã hội",
    "Sở Văn hóa, Thể thao và Du lịch",
    "Sở Khoa học và Công nghệ",
    "Sở Giáo dục và Đào tạo",
    "Sở Y tế",
    "Thanh tra tỉnh",
    "Ban Dân tộc",
    "Ban Quản lý các khu công nghiệp",
]


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _same_name(a: str, b: str) -> bool:
    """Names come with old and new tone placement ("Hoà" / "Hòa"): compare without tones."""

    def bare(text: str) -> str:
        decomposed = unicodedata.normalize("NFD", text)
        return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()

    return bare(a) == bare(b)


@cache
def _province_divisions() -> dict[str, Any]:
    raw = files("vietnam_provinces").joinpath("data/nested-divisions.json").read_text("utf-8")
    for province in json.loads(raw):
        if _same_name(province["name"], _PROVINCE_NAME):
            return dict(province)
    raise LookupError(f"{_PROVINCE_NAME} is not in the vietnam-provinces data")


def sample_units() -> list[Unit]:
    """Parents before children, so the list can be upserted in order (about 180 units)."""
    units = [
        Unit(
            code=PROVINCE,
            code_2020=_LEVEL_1,
            name="Ủy ban nhân dân tỉnh Hòa Bình",
            level=UnitLevel.UNIT_LEVEL_PROVINCE,
            active=True,
        )
    ]
    for index, name in enumerate(DEPARTMENTS, start=1):
        units.append(
            Unit(
                code=f"000.{index:02d}.00.{_LEVEL_1}",
                code_2020=f"{_LEVEL_1}.{index:02d}",
                name=name,
                level=UnitLevel.UNIT_LEVEL_DEPARTMENT,
                parent_code=PROVINCE,
                active=True,
            )
        )
    districts = sorted(_province_divisions()["districts"], key=lambda d: int(d["code"]))
    for d_index, district in enumerate(districts, start=_FIRST_DISTRICT):
        district_code = f"000.00.{d_index:02d}.{_LEVEL_1}"
        district_2020 = f"{_LEVEL_1}.{int(district['code']):03d}"
        units.append(
            Unit(
                code=district_code,
                code_2020=district_2020,
                name=_nfc(district["name"]),
                level=UnitLevel.UNIT_LEVEL_DISTRICT,
                parent_code=PROVINCE,
                active=True,
            )
        )
        wards = sorted(district["wards"], key=lambda w: int(w["code"]))
        for c_index, ward in enumerate(wards, start=1):
            units.append(
                Unit(
                    code=f"000.{c_index:02d}.{d_index:02d}.{_LEVEL_1}",
                    code_2020=f"{district_2020}.{int(ward['code']):05d}",
                    name=_nfc(ward["name"]),
                    level=UnitLevel.UNIT_LEVEL_COMMUNE,
                    parent_code=district_code,
                    active=True,
                )
            )
    return units
