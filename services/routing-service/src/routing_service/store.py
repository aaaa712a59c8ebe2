"""The registry's collection: every unit as a document keyed by its code, with its revision.

    store = UnitStore(deps.db)
    async for stored in store.all():      # StoredUnit(unit, revision), the whole registry
    await store.save(unit, revision)      # a whole-document replace keyed by the code

FerretDB: only whole-document replaces keyed by ``_id`` and full reads of a small collection,
no conditional updates (docs/architecture.md, "Storage rules").
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from lienthong.routing.v1.routing_service_pb2 import Contact, Unit
from lienthong_kit.mongo import AsyncDatabase, Doc

__all__ = ["StoredUnit", "UnitStore"]


@dataclass(frozen=True)
class StoredUnit:
    unit: Unit
    revision: int


class UnitStore:
    """Owns the ``units`` collection (no index besides ``_id``)."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._units = db["units"]

    async def all(self) -> AsyncIterator[StoredUnit]:
        async for doc in self._units.find({}):
            yield StoredUnit(_to_unit(doc), int(doc.get("revision", 0)))

    async def save(self, unit: Unit, revision: int) -> None:
        await self._units.replace_one({"_id": unit.code}, _to_doc(unit, revision), upsert=True)


def _to_doc(unit: Unit, revision: int) -> Doc:
    return {
        "_id": unit.code,
        "code_2020": unit.code_2020,
        "name": unit.name,
        "level": int(unit.level),
        "parent_code": unit.parent_code,
        "active": unit.active,
        "contacts": [{"name": c.name, "email": c.email, "phone": c.phone} for c in unit.contacts],
        "valid_from": unit.valid_from,
        "valid_until": unit.valid_until,
        "successor_code": unit.successor_code,
        "external": unit.external,
        "revision": revision,
    }


def _to_unit(doc: Doc) -> Unit:
    return Unit(
        code=doc["_id"],
        code_2020=doc.get("code_2020", ""),
        name=doc["name"],
        level=doc["level"],
        parent_code=doc.get("parent_code", ""),
        active=doc.get("active", False),
        contacts=[Contact(**c) for c in doc.get("contacts", [])],
        valid_from=doc.get("valid_from", ""),
        valid_until=doc.get("valid_until", ""),
        successor_code=doc.get("successor_code", ""),
        external=doc.get("external", False),
    )
