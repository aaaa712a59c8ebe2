"""The document-store client: PyMongo's native asyncio API (``AsyncMongoClient``).

motor, named in the first design, is deprecated by its maintainers in favour of this API.
Each service owns one database, named ``<prefix><area>`` (e.g. ``lienthong_document``), and
creates its indexes at start-up.

The store may be MongoDB or FerretDB: use single-document atomic updates, unique indexes for
idempotency, no multi-document transactions, change streams, TTL/partial indexes or keys
containing ``.`` or starting with ``$``.
"""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

__all__ = ["AsyncCollection", "AsyncDatabase", "Doc", "connect", "ensure_indexes", "ping"]

Doc = dict[str, Any]


def connect(url: str, *, app_name: str, max_pool_size: int = 10) -> AsyncMongoClient[Doc]:
    """A client that does not block: the first operation connects (see :func:`ping`).

    The pool is bounded (PyMongo's default is 100 connections per client): FerretDB v1 on
    PostgreSQL deadlocks its own connection pool when more operations arrive at once than half
    that pool, and a service gains nothing from more parallel store calls than this anyway.
    """
    return AsyncMongoClient(
        url,
        appname=app_name,
        serverSelectionTimeoutMS=5000,
        connectTimeoutMS=5000,
        tz_aware=True,
        maxPoolSize=max_pool_size,
    )


async def ping(db: AsyncDatabase[Doc]) -> None:
    await db.command("ping")


async def ensure_indexes(collection: AsyncCollection[Doc], indexes: list[IndexModel]) -> None:
    """Create indexes at start-up, one command per index. FerretDB v1.24 drops the connection
    (a panic on its side) when a ``createIndexes`` command naming several indexes is repeated
    after they exist, which every restart does; one index per command is safe everywhere."""
    for index in indexes:
        document = index.document
        options = {key: value for key, value in document.items() if key not in ("key", "name")}
        await collection.create_index(
            list(document["key"].items()), name=document["name"], **options
        )
