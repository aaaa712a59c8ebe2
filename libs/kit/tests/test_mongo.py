"""The store helpers against the real store (FerretDB locally)."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel

from lienthong_kit.mongo import connect, ensure_indexes
from lienthong_kit.settings import KitSettings


async def test_ensure_indexes_is_idempotent_across_restarts(settings: KitSettings) -> None:
    """Every start-up creates its indexes again; that must keep working (FerretDB v1.24
    drops the connection when a multi-index createIndexes is repeated)."""
    client = connect(settings.mongo_url, app_name="test")
    collection = client[f"{settings.mongo_database_prefix}kit"]["things"]
    indexes = [
        IndexModel([("unit", ASCENDING), ("key", ASCENDING)], unique=True),
        IndexModel([("unit", ASCENDING), ("at", DESCENDING)]),
    ]
    for _ in range(3):
        await ensure_indexes(collection, indexes)
    names = {index["name"] async for index in await collection.list_indexes()}
    assert names == {"_id_", "unit_1_key_1", "unit_1_at_-1"}
    unique = [index async for index in await collection.list_indexes() if index.get("unique")]
    assert [index["name"] for index in unique] == ["unit_1_key_1"]
    await client.close()
