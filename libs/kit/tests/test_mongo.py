"""The store helpers against the real store (FerretDB locally)."""

from __future__ import annotations

import asyncio

import pytest
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel, monitoring

from lienthong_kit.mongo import Doc, GroupInserter, connect, ensure_indexes
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
    # two indexes led by the same field share one GIN twin: the lookup still finds it
    await ensure_indexes(
        collection,
        [
            IndexModel([("unit", ASCENDING), ("at", DESCENDING)]),
            IndexModel([("unit", ASCENDING), ("_id", ASCENDING)], unique=True),
        ],
    )
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


class _InsertSizes(monitoring.CommandListener):
    """The number of documents of every ``insert`` command the client sends."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "insert":
            self.sizes.append(len(event.command.get("documents", ())))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_group_inserter_waits_under_load_for_a_batch_as_large_as_the_last(
    settings: KitSettings,
) -> None:
    """A lone insert is written at once; after a batch of 8 the next batch waits (here up to
    a minute) until 8 are queued, and a shorter burst is written when the linger ends."""
    sizes = _InsertSizes()
    client: AsyncMongoClient[Doc] = AsyncMongoClient(settings.mongo_url, event_listeners=[sizes])
    collection = client[f"{settings.mongo_database_prefix}kit"]["lingered"]
    await collection.delete_many({})
    inserter = GroupInserter(collection, linger_seconds=60)

    # idle: the previous batch held one, so nothing waits (a wait would be the minute)
    await asyncio.wait_for(inserter.insert({"_id": "alone"}), timeout=10)
    # eight at once: one batch, written at once (the last batch held one)
    await asyncio.wait_for(
        asyncio.gather(*(inserter.insert({"_id": f"a{i}"}) for i in range(8))), timeout=10
    )
    assert sizes.sizes == [1, 8]
    # three: the batch waits for eight
    first = [asyncio.create_task(inserter.insert({"_id": f"b{i}"})) for i in range(3)]
    await asyncio.sleep(0.5)
    assert sizes.sizes == [1, 8], "three documents were written without waiting for eight"
    assert not any(task.done() for task in first)
    # five more fill it: written at once, as one batch
    rest = [asyncio.create_task(inserter.insert({"_id": f"b{i}"})) for i in range(3, 8)]
    await asyncio.wait_for(asyncio.gather(*first, *rest), timeout=10)
    assert sizes.sizes == [1, 8, 8]

    # the load drops: after the linger a smaller batch goes
    short = GroupInserter(collection, linger_seconds=0.2)
    await asyncio.gather(*(short.insert({"_id": f"c{i}"}) for i in range(8)))
    await asyncio.wait_for(
        asyncio.gather(*(short.insert({"_id": f"d{i}"}) for i in range(3))), timeout=10
    )
    assert sizes.sizes == [1, 8, 8, 8, 3]
    assert await collection.count_documents({}) == 1 + 8 + 8 + 8 + 3
    await client.close()
