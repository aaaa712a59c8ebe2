"""The sample registries: a province in three tiers (before 1 July 2025) or in two (since).

    units = sample_units()              # Hòa Bình as it was: province, districts, communes
    units = sample_units("two-tier")    # Phú Thọ today, with its predecessors' closed units

Both lists put parents before children, ready to upsert or import in order.

The three-tier shape is Hòa Bình before the 2025 reorganisation: the official divisions of
the ``vietnam-provinces`` package (version 0.6.0 holds the three-tier structure: 10 districts
and 151 communes) and the 20 departments under their standard names (departments are not in
that data).

The two-tier shape is Phú Thọ since 1 July 2025: the province, its 14 departments under their
2025 names and its 148 communes and wards directly under it (data/phu_tho_2025.csv, derived
from ``vietnam-provinces`` 2025.10.1 and ``vietnamadminunits`` 1.0.4: docs/decisions/0301).
Its registry also holds the units of the three provinces merged into it (Hòa Bình, Vĩnh Phúc,
the old Phú Thọ: province, departments, districts, communes), closed from TRANSITION with
their successors: an old commune's are the new communes it went into (several when it was
divided), a district's the new communes its communes went into, a merged province's the new
province, a department's the 2025 department that took it over.

Codes come in both forms (DOMAIN.md): the QCVN 102 form, level 1 at the right
(``000.00.00.H23`` the provincial People's Committee, ``000.DD.00.H23`` department DD,
``000.00.NN.H23`` district NN from 31, ``000.CC.NN.H23`` commune CC of district NN; in two
tiers ``000.00.NNN.H43`` commune NNN from 101, directly under the province), and the Decision
20/2020 form, one group per level left to right, built from the official division codes
(``H23.148`` a district, ``H23.148.04789`` one of its communes, ``H43.07900`` a commune in
two tiers). ``administrative_code`` holds the official division code itself.
"""

from __future__ import annotations

import csv
import json
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any, Literal

from lienthong.common.v1.common_pb2 import UnitLevel
from lienthong.routing.v1.routing_service_pb2 import Unit

__all__ = [
    "DEPARTMENTS",
    "DEPARTMENTS_2025",
    "PROVINCE",
    "SHAPES",
    "TRANSITION",
    "TWO_TIER_PROVINCE",
    "Shape",
    "phu_tho_2025_csv",
    "predecessor_units",
    "sample_province",
    "sample_units",
]

Shape = Literal["three-tier", "two-tier"]
SHAPES: tuple[Shape, ...] = ("three-tier", "two-tier")

PROVINCE = "000.00.00.H23"
TWO_TIER_PROVINCE = "000.00.00.H43"
# The first day of two tiers: the predecessors' units receive nothing from this day on
# (their last day was 30 June 2025) and the new communes are valid from it.
TRANSITION = "2025-07-01"
_FIRST_DISTRICT = 31
_FIRST_TWO_TIER_COMMUNE = 101


@dataclass(frozen=True)
class _Province:
    level_1: str
    division_code: int  # the statistics office's province code (vietnam-provinces)
    name: str


# Level-1 codes are sample values (docs/decisions/0301): H23 as the three-tier sample always had.
_HOA_BINH = _Province("H23", 17, "Hòa Bình")
_PHU_THO = _Province("H43", 25, "Phú Thọ")
_VINH_PHUC = _Province("H60", 26, "Vĩnh Phúc")

# The provincial departments, boards and sectors (sở, ban, ngành) before March 2025.
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

# The 2025 departments (Decree 45/2025/NĐ-CP) and the old ones (1-based positions in
# DEPARTMENTS) each took over; each keeps the code of the first.
DEPARTMENTS_2025: list[tuple[str, tuple[int, ...]]] = [
    ("Sở Tài chính", (1, 7)),
    ("Văn phòng Ủy ban nhân dân tỉnh", (4, 2)),
    ("Sở Nội vụ", (5, 13)),
    ("Sở Tư pháp", (6,)),
    ("Sở Công Thương", (8,)),
    ("Sở Nông nghiệp và Môi trường", (9, 12)),
    ("Sở Xây dựng", (11, 10)),
    ("Sở Văn hóa, Thể thao và Du lịch", (14,)),
    ("Sở Khoa học và Công nghệ", (15, 3)),
    ("Sở Giáo dục và Đào tạo", (16,)),
    ("Sở Y tế", (17,)),
    ("Thanh tra tỉnh", (18,)),
    ("Sở Dân tộc và Tôn giáo", (19,)),
    ("Ban Quản lý các khu công nghiệp", (20,)),
]


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


@cache
def _divisions_2020() -> dict[int, dict[str, Any]]:
    raw = files("vietnam_provinces").joinpath("data/nested-divisions.json").read_text("utf-8")
    return {int(p["code"]): dict(p) for p in json.loads(raw)}


@dataclass(frozen=True)
class _Commune2025:
    division_code: str
    name: str
    old_division_codes: tuple[str, ...]


@cache
def _communes_2025() -> tuple[_Commune2025, ...]:
    text = phu_tho_2025_csv()
    return tuple(
        _Commune2025(row["code"], _nfc(row["name"]), tuple(row["old_codes"].split()))
        for row in csv.DictReader(text.splitlines())
    )


@dataclass
class _Built:
    units: list[Unit] = field(default_factory=list)
    # official commune division code -> QCVN 102 code (for the successor mapping)
    communes: dict[str, str] = field(default_factory=dict)
    # QCVN 102 district code -> its communes' division codes
    district_communes: dict[str, list[str]] = field(default_factory=dict)


def _three_tier(province: _Province) -> _Built:
    """A province as it was before 1 July 2025: province, 20 departments, districts, communes."""
    l1 = province.level_1
    top = f"000.00.00.{l1}"
    out = _Built()
    out.units.append(
        Unit(
            code=top,
            code_2020=l1,
            name=f"Ủy ban nhân dân tỉnh {province.name}",
            level=UnitLevel.UNIT_LEVEL_PROVINCE,
            active=True,
            administrative_code=f"{province.division_code:02d}",
        )
    )
    for index, name in enumerate(DEPARTMENTS, start=1):
        out.units.append(
            Unit(
                code=f"000.{index:02d}.00.{l1}",
                code_2020=f"{l1}.{index:02d}",
                name=name,
                level=UnitLevel.UNIT_LEVEL_DEPARTMENT,
                parent_code=top,
                active=True,
            )
        )
    divisions = _divisions_2020()[province.division_code]
    districts = sorted(divisions["districts"], key=lambda d: int(d["code"]))
    for d_index, district in enumerate(districts, start=_FIRST_DISTRICT):
        district_code = f"000.00.{d_index:02d}.{l1}"
        district_2020 = f"{l1}.{int(district['code']):03d}"
        out.units.append(
            Unit(
                code=district_code,
                code_2020=district_2020,
                name=_nfc(district["name"]),
                level=UnitLevel.UNIT_LEVEL_DISTRICT,
                parent_code=top,
                active=True,
                administrative_code=f"{int(district['code']):03d}",
            )
        )
        wards = sorted(district["wards"], key=lambda w: int(w["code"]))
        out.district_communes[district_code] = []
        for c_index, ward in enumerate(wards, start=1):
            code = f"000.{c_index:02d}.{d_index:02d}.{l1}"
            division = f"{int(ward['code']):05d}"
            out.units.append(
                Unit(
                    code=code,
                    code_2020=f"{district_2020}.{division}",
                    name=_nfc(ward["name"]),
                    level=UnitLevel.UNIT_LEVEL_COMMUNE,
                    parent_code=district_code,
                    active=True,
                    administrative_code=division,
                )
            )
            out.communes[division] = code
            out.district_communes[district_code].append(division)
    return out


def _close(unit: Unit, successors: Iterable[str]) -> None:
    unit.active = False
    unit.valid_until = TRANSITION
    named = sorted(set(successors))
    if len(named) == 1:
        unit.successor_code = named[0]
    else:
        unit.successor_codes.extend(named)


def _two_tier() -> list[Unit]:
    l1 = _PHU_THO.level_1
    top = TWO_TIER_PROVINCE
    new_communes: dict[str, str] = {}  # new division code -> QCVN 102 code
    successors: dict[str, list[str]] = {}  # old division code -> new QCVN 102 codes
    current: list[Unit] = [
        Unit(
            code=top,
            code_2020=l1,
            name=f"Ủy ban nhân dân tỉnh {_PHU_THO.name}",
            level=UnitLevel.UNIT_LEVEL_PROVINCE,
            active=True,
            administrative_code=f"{_PHU_THO.division_code:02d}",
        )
    ]
    department_successor: dict[int, str] = {}
    for name, predecessors in DEPARTMENTS_2025:
        code = f"000.{predecessors[0]:02d}.00.{l1}"
        current.append(
            Unit(
                code=code,
                code_2020=f"{l1}.{predecessors[0]:02d}",
                name=name,
                level=UnitLevel.UNIT_LEVEL_DEPARTMENT,
                parent_code=top,
                active=True,
            )
        )
        department_successor.update(dict.fromkeys(predecessors, code))
    for index, commune in enumerate(_communes_2025(), start=_FIRST_TWO_TIER_COMMUNE):
        code = f"000.00.{index:03d}.{l1}"
        new_communes[commune.division_code] = code
        for old in commune.old_division_codes:
            successors.setdefault(old, []).append(code)
        current.append(
            Unit(
                code=code,
                code_2020=f"{l1}.{commune.division_code}",
                name=commune.name,
                level=UnitLevel.UNIT_LEVEL_COMMUNE,
                parent_code=top,
                active=True,
                valid_from=TRANSITION,
                administrative_code=commune.division_code,
            )
        )

    closed: list[Unit] = []
    current_codes = {unit.code for unit in current}
    for province in (_HOA_BINH, _PHU_THO, _VINH_PHUC):
        built = _three_tier(province)
        for unit in built.units:
            if unit.code in current_codes:
                continue  # the same unit, under its 2025 name (the new province keeps H43)
            if unit.level == UnitLevel.UNIT_LEVEL_PROVINCE:
                _close(unit, [top])
            elif unit.level == UnitLevel.UNIT_LEVEL_DEPARTMENT:
                _close(unit, [department_successor[int(unit.code.split(".")[1])]])
            elif unit.level == UnitLevel.UNIT_LEVEL_DISTRICT:
                parts = built.district_communes[unit.code]
                _close(unit, [s for part in parts for s in successors[part]])
            else:
                _close(unit, successors[unit.administrative_code])
            closed.append(unit)
    return current + closed


def predecessor_units() -> list[Unit]:
    """Hòa Bình, the old Phú Thọ and Vĩnh Phúc as they were on 30 June 2025, all open: the
    registry a transition plan starts from."""
    return [unit for p in (_PHU_THO, _HOA_BINH, _VINH_PHUC) for unit in _three_tier(p).units]


def phu_tho_2025_csv() -> str:
    """Today's Phú Thọ communes and the old communes each was made of (``code,name,old_codes``,
    official division codes): the mapping a transition plan is built from."""
    return files("lienthong_local").joinpath("data/phu_tho_2025.csv").read_text("utf-8")


def sample_province(shape: Shape = "three-tier") -> str:
    """The QCVN 102 code of the shape's (current) province."""
    return PROVINCE if shape == "three-tier" else TWO_TIER_PROVINCE


def sample_units(shape: Shape = "three-tier") -> list[Unit]:
    """Parents before children, so the list can be upserted in order (about 180 units in
    three tiers; about 700 in two, of which 163 current)."""
    if shape == "three-tier":
        return _three_tier(_HOA_BINH).units
    if shape == "two-tier":
        return _two_tier()
    raise ValueError(f"shape: {shape!r} is not one of {', '.join(SHAPES)}")
