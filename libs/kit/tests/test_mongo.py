"""The store helpers against the real store (FerretDB locally)."""

from __future__ import annotations

import pytest
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


def index_names(plan: object) -> set[str]:
    """The index names anywhere in a PostgreSQL plan (FerretDB's explain output)."""
    if isinstance(plan, dict):
        found = {str(plan["Index Name"])} if "Index Name" in plan else set()
        for value in plan.values():
            found |= index_names(value)
        return found
    if isinstance(plan, list):
        return set().union(*(index_names(item) for item in plan)) if plan else set()
    return set()


async def test_equality_lookups_use_an_index(settings: KitSettings) -> None:
    """FerretDB v1 on PostgreSQL answers {"field": value} with `_jsonb->'field' @> value`, which
    its own btree indexes cannot serve: without deploy/postgres/ferretdb-lookup-indexes.sql
    (installed by the infra script) every lookup by _id scans the whole collection."""
    client = connect(settings.mongo_url, app_name="test")
    database = client[f"{settings.mongo_database_prefix}kit"]
    collection = database["lookups"]
    await ensure_indexes(collection, [IndexModel([("unit", ASCENDING), ("at", DESCENDING)])])
    await collection.insert_many(
        [{"_id": f"e{n}", "unit": f"u{n % 500}", "at": n} for n in range(5000)]
    )
    for query in ({"_id": "e4321"}, {"unit": "u7"}):
        explained = await database.command("explain", {"find": "lookups", "filter": query})
        if "ferretdbVersion" not in explained.get("serverInfo", {}):
            pytest.skip("not FerretDB: the store indexes equality lookups itself")
        plan = explained.get("queryPlanner", {})
        if "Plan" not in plan:
            pytest.skip("FerretDB on SQLite: no PostgreSQL plan to check")
        names = index_names(plan)
        assert any(name.endswith("_gin") for name in names), (query, plan)
    await client.close()
