"""The unit registry: identifier codes, levels, parents, active flags."""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel

from lienthong.common.v1.common_pb2 import UnitLevel
from lienthong.routing.v1.routing_service_pb2 import Unit
from lienthong_kit.codes import unit_code_problem
from lienthong_kit.errors import Violations
from lienthong_kit.mongo import AsyncDatabase, Doc, ensure_indexes

__all__ = ["Registry", "validate_unit"]


def validate_unit(unit: Unit, *, parent_exists: bool) -> None:
    v = Violations()
    for field in ("code", "code_2020", "parent_code"):
        value = getattr(unit, field)
        if value or field == "code":
            problem = unit_code_problem(value)
            if problem:
                v.add(f"unit.{field}", problem)
    v.require(bool(unit.name.strip()), "unit.name", "is required")
    v.require(unit.level != UnitLevel.UNIT_LEVEL_UNSPECIFIED, "unit.level", "is required")
    if unit.level == UnitLevel.UNIT_LEVEL_PROVINCE:
        v.require(not unit.parent_code, "unit.parent_code", "a province has no parent")
    elif unit.level != UnitLevel.UNIT_LEVEL_UNSPECIFIED and v.require(
        bool(unit.parent_code), "unit.parent_code", "is required below the province"
    ):
        v.require(
            parent_exists, "unit.parent_code", f"no unit {unit.parent_code!r} in the registry"
        )
    v.require(unit.parent_code != unit.code, "unit.parent_code", "a unit is not its own parent")
    v.raise_if_any()


def _to_doc(unit: Unit) -> Doc:
    return {
        "_id": unit.code,
        "code_2020": unit.code_2020,
        "name": unit.name.strip(),
        "level": int(unit.level),
        "parent_code": unit.parent_code,
        "active": unit.active,
    }


def _to_unit(doc: Doc) -> Unit:
    return Unit(
        code=doc["_id"],
        code_2020=doc["code_2020"],
        name=doc["name"],
        level=doc["level"],
        parent_code=doc["parent_code"],
        active=doc["active"],
    )


class Registry:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.units = db["units"]

    async def create_indexes(self) -> None:
        await ensure_indexes(
            self.units,
            [IndexModel([("parent_code", ASCENDING)]), IndexModel([("level", ASCENDING)])],
        )

    async def upsert(self, unit: Unit) -> Unit:
        parent_exists = bool(unit.parent_code) and await self.get(unit.parent_code) is not None
        validate_unit(unit, parent_exists=parent_exists)
        await self.units.replace_one({"_id": unit.code}, _to_doc(unit), upsert=True)
        return unit

    async def get(self, code: str) -> Unit | None:
        doc = await self.units.find_one({"_id": code})
        return _to_unit(doc) if doc else None

    async def page(self, *, parent_code: str, level: int, after: str, limit: int) -> list[Unit]:
        query: Doc = {}
        if parent_code:
            query["parent_code"] = parent_code
        if level:
            query["level"] = level
        if after:
            query["_id"] = {"$gt": after}
        cursor = self.units.find(query).sort("_id", ASCENDING).limit(limit)
        return [_to_unit(doc) async for doc in cursor]
