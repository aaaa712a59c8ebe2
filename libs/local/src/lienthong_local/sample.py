"""A small sample registry: one province, departments, districts and communes.

Codes follow the QCVN 102 form (level 1 at the right: ``000.00.00.H23`` is the provincial
People's Committee) with the Decision 20/2020 form beside them. The full generator for a
realistic province comes with the routing issue; this one is enough to exchange documents.
"""

from __future__ import annotations

from lienthong.common.v1.common_pb2 import UnitLevel
from lienthong.routing.v1.routing_service_pb2 import Unit

__all__ = ["PROVINCE", "sample_units"]

PROVINCE = "000.00.00.H23"


def sample_units() -> list[Unit]:
    """Parents before children, so the list can be upserted in order."""
    units = [
        Unit(
            code=PROVINCE,
            code_2020="H23",
            name="Ủy ban nhân dân tỉnh Hòa Bình",
            level=UnitLevel.UNIT_LEVEL_PROVINCE,
            active=True,
        )
    ]
    departments = ["Sở Tài chính", "Sở Ngoại vụ", "Sở Thông tin và Truyền thông"]
    for index, name in enumerate(departments, start=1):
        units.append(
            Unit(
                code=f"000.{index:02d}.00.H23",
                code_2020=f"H23.{index:02d}",
                name=name,
                level=UnitLevel.UNIT_LEVEL_DEPARTMENT,
                parent_code=PROVINCE,
                active=True,
            )
        )
    districts = {
        "Thành phố Hòa Bình": ["Phường Phương Lâm", "Xã Sủ Ngòi"],
        "Huyện Mai Châu": ["Xã Chiềng Châu", "Xã Mai Hạ"],
    }
    for d_index, (district, communes) in enumerate(districts.items(), start=31):
        district_code = f"000.00.{d_index:02d}.H23"
        units.append(
            Unit(
                code=district_code,
                code_2020=f"H23.{d_index:03d}",
                name=district,
                level=UnitLevel.UNIT_LEVEL_DISTRICT,
                parent_code=PROVINCE,
                active=True,
            )
        )
        for c_index, commune in enumerate(communes, start=1):
            units.append(
                Unit(
                    code=f"000.{c_index:02d}.{d_index:02d}.H23",
                    code_2020=f"H23.{d_index:03d}.{c_index:02d}",
                    name=commune,
                    level=UnitLevel.UNIT_LEVEL_COMMUNE,
                    parent_code=district_code,
                    active=True,
                )
            )
    return units
