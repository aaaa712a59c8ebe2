"""The document-store client: PyMongo's native asyncio API (``AsyncMongoClient``; why not
motor: docs/decisions/0102-pymongo-async.md).

Each service owns one database, named ``<prefix><area>`` (e.g. ``lienthong_document``), and
creates its indexes at start-up.

The store may be MongoDB or FerretDB: use single-document atomic updates, unique indexes for
idempotency, no multi-document transactions, change streams, TTL/partial indexes or keys
containing ``.`` or starting with ``$`` (docs/decisions/0103-ferretdb-storage-rules.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError

from lienthong_kit.metrics import STORE_INSERT_BATCH

__all__ = [
    "AsyncCollection",
    "AsyncDatabase",
    "Doc",
    "GroupInserter",
    "connect",
    "ensure_indexes",
    "insert_all",
    "ping",
]

Doc = dict[str, Any]


def connect(url: str, *, app_name: str, max_pool_size: int = 10) -> AsyncMongoClient[Doc]:
    """A client that does not block: the first operation connects (see :func:`ping`).

    The pool is bounded (PyMongo's default is 100): FerretDB v1 on PostgreSQL deadlocks when
    flooded (docs/decisions/0103-ferretdb-storage-rules.md).
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
    """Create indexes at start-up, one command per index: FerretDB v1 drops the connection
    when a multi-index ``createIndexes`` is repeated, as every restart does
    (docs/decisions/0103-ferretdb-storage-rules.md)."""
    for index in indexes:
        document = index.document
        options = {key: value for key, value in document.items() if key not in ("key", "name")}
        await collection.create_index(
            list(document["key"].items()), name=document["name"], **options
        )


async def insert_all(collection: AsyncCollection[Doc], documents: list[Doc]) -> set[int]:
    """Insert ``documents`` in one unordered ``insertMany``; the indexes of those refused as
    duplicates (already stored: a redelivery) are returned, any other write error raised."""
    if not documents:
        return set()
    try:
        await collection.insert_many(documents, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        other = [error for error in errors if error.get("code") != 11000]
        if other or exc.details.get("writeConcernErrors"):
            raise
        return {int(error["index"]) for error in errors}
    return set()


class GroupInserter:
    """Group commit for inserts: concurrent :meth:`insert` calls share ``insertMany`` commands.

    Each caller still gets its own outcome -- ``None``, or the :class:`DuplicateKeyError` (or
    other write error) of *its* document, exactly as ``insert_one`` would raise it -- because
    the batch is unordered and the store reports every failed document by its index. Nothing
    waits for a batch to fill: while one batch is being written the next calls queue up, so
    the batch size follows the load (1 when idle, up to ``max_batch`` under load).

    Why: an insert is the one write that is exact on every supported store, and on
    FerretDB-on-PostgreSQL a batched ``insertMany`` costs about what one ``insert_one`` does
    (docs/decisions/0103-ferretdb-storage-rules.md; figures in docs/benchmarks.md, "Kit").

    Under load a batch waits, up to ``linger_seconds``, until as many documents are queued as
    the previous batch held: the callers of that batch come back with their next document
    within milliseconds, so it fills, instead of calls arriving one per loop turn being
    written in batches of one or two (each ``insertMany`` costs the one event loop a fixed
    share). A batch after a lone document does not wait: an idle service answers at once.
    """

    def __init__(
        self,
        collection: AsyncCollection[Doc],
        *,
        max_batch: int = 64,
        # one batch at a time: the next one fills while it is written (larger batches, fewer
        # store commands; docs/benchmarks.md, "Before and after the floor plan")
        max_in_flight: int = 1,
        linger_seconds: float = 0.01,
    ) -> None:
        self._collection = collection
        self._max_batch = max_batch
        self._linger = linger_seconds
        self._slots = asyncio.Semaphore(max_in_flight)
        self._queue: list[tuple[Doc, asyncio.Future[None]]] = []
        self._flushers: set[asyncio.Task[None]] = set()
        self._last_batch = 1
        self._filling: tuple[int, asyncio.Future[None]] | None = None  # (wanted, filled)
        self._sizes = STORE_INSERT_BATCH.labels(collection.name)

    async def insert(self, document: Doc) -> None:
        """Insert ``document``; raises what ``insert_one`` would raise for it."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((document, future))
        filling = self._filling
        if filling is not None and len(self._queue) >= filling[0] and not filling[1].done():
            filling[1].set_result(None)
        if len(self._queue) % self._max_batch == 1 or self._max_batch == 1:
            task = asyncio.create_task(self._flush())
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)
        await future

    async def _fill(self) -> None:
        """Wait, at most the linger, until as many documents are queued as the last batch
        held (see the class docstring); at once when that is one or already reached."""
        wanted = min(self._last_batch, self._max_batch)
        if wanted <= len(self._queue) or self._linger <= 0 or self._filling is not None:
            return  # idle, full already, or the other flush is the one filling
        filled = asyncio.get_running_loop().create_future()
        self._filling = (wanted, filled)
        try:
            await asyncio.wait_for(filled, self._linger)
        except TimeoutError:
            pass  # a smaller batch: the load dropped
        finally:
            self._filling = None

    async def _flush(self) -> None:
        async with self._slots:
            await self._fill()
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            if self._queue:  # more arrived than one batch holds: another flush takes them
                task = asyncio.create_task(self._flush())
                self._flushers.add(task)
                task.add_done_callback(self._flushers.discard)
            if not batch:
                return
            self._last_batch = len(batch)
            self._sizes.observe(len(batch))
            try:
                await self._collection.insert_many([doc for doc, _ in batch], ordered=False)
            except BulkWriteError as exc:
                failed = {error["index"]: error for error in exc.details.get("writeErrors", [])}
                for index, (_, future) in enumerate(batch):
                    error = failed.get(index)
                    if future.done():
                        continue
                    if error is None:
                        future.set_result(None)
                    elif error.get("code") == 11000:
                        future.set_exception(
                            DuplicateKeyError(error.get("errmsg", ""), 11000, error)
                        )
                    else:
                        future.set_exception(
                            WriteError(error.get("errmsg", ""), error.get("code"), error)
                        )
                return
            except asyncio.CancelledError:
                for _, future in batch:
                    future.cancel()
                raise
            except Exception as exc:  # noqa: BLE001 - the whole batch failed: each caller raises it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                return
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
