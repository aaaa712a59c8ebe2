"""The channel workers against the real store: two replicas never send the same attempt, and
an attempt whose replica died is taken over after its lease."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lienthong_kit.mongo import AsyncDatabase, Doc, connect
from lienthong_kit.settings import KitSettings
from lienthong_testing.waiting import eventually, wait_until
from notification_service.dispatch import ChannelWorker
from notification_service.store import JobStore
from notification_service.timing import SystemClock


class CountingChannel:
    """Records what it was asked to send; the sending itself is what the loopback tests in
    test_channels.py exercise."""

    name = "sms"

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()

    async def send(self, job: Doc) -> None:
        await asyncio.sleep(0.01)  # a send takes a moment: let the replicas overlap
        self.sent[job["_id"]] += 1


@pytest.fixture
async def db(settings: KitSettings) -> AsyncIterator[AsyncDatabase[Doc]]:
    client = connect(settings.mongo_url, app_name="test-dispatch")
    database = client[f"{settings.mongo_database_prefix}notification"]
    await JobStore(database).create_indexes()
    yield database
    await client.close()


def worker(
    channel: CountingChannel, db: AsyncDatabase[Doc], *, sweep_seconds: float = 60.0
) -> ChannelWorker:
    return ChannelWorker(
        channel,
        JobStore(db),
        clock=SystemClock(),
        rate=1000.0,
        concurrency=4,
        max_attempts=3,
        backoff_seconds=0.05,
        backoff_max_seconds=0.1,
        send_timeout_seconds=5.0,
        poll_seconds=0.02,
        sweep_seconds=sweep_seconds,
    )


def job(number: int, now: datetime) -> Doc:
    return {
        "_id": f"job-{number}",
        "channel": "sms",
        "state": "pending",
        "unit_code": "000.01.00.H23",
        "contact_id": "c-1",
        "address": "+84912345678",
        "kind": "delivery.created",
        "urgent": number % 2 == 0,
        "title": "t",
        "body": "b",
        "facts": {},
        "document_id": "d",
        "created_at": now,
        "recorded_at": now,
        "not_before": now,
        "attempts": 0,
        "last_error": "",
    }


async def states(db: AsyncDatabase[Doc]) -> list[str]:
    return [row["state"] async for row in db["jobs"].find({})]


async def run_until_sent(db: AsyncDatabase[Doc], workers: list[ChannelWorker]) -> None:
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        await eventually(lambda: states(db), until=lambda s: bool(s) and set(s) == {"sent"})
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_two_replicas_send_each_job_once(db: AsyncDatabase[Doc]) -> None:
    now = datetime.now(UTC)
    await db["jobs"].insert_many([job(n, now) for n in range(30)])
    first, second = CountingChannel(), CountingChannel()

    await run_until_sent(db, [worker(first, db), worker(second, db)])

    together = first.sent + second.sent
    assert sorted(together) == sorted(f"job-{n}" for n in range(30))
    assert set(together.values()) == {1}
    rows: list[Any] = [row async for row in db["jobs"].find({})]
    assert {row["attempts"] for row in rows} == {1}


async def test_an_attempt_abandoned_by_a_dead_replica_is_taken_over(
    db: AsyncDatabase[Doc],
) -> None:
    now = datetime.now(UTC)
    await db["jobs"].insert_one(job(1, now))
    await db["attempts"].insert_one(
        {
            "_id": "job-1#1",
            "job_id": "job-1",
            "number": 1,
            "owner": "a-replica-that-died",
            "started_at": now - timedelta(minutes=5),
            "outcome": "",
        }
    )
    channel = CountingChannel()

    await run_until_sent(db, [worker(channel, db)])

    assert channel.sent == Counter({"job-1": 1})
    row = await db["jobs"].find_one({"_id": "job-1"})
    assert row is not None
    assert row["attempts"] == 2


async def test_an_attempt_in_progress_elsewhere_is_left_alone(db: AsyncDatabase[Doc]) -> None:
    now = datetime.now(UTC)
    await db["jobs"].insert_one(job(1, now))
    await db["attempts"].insert_one(
        {
            "_id": "job-1#1",
            "job_id": "job-1",
            "number": 1,
            "owner": "another-live-replica",
            "started_at": now,
            "outcome": "",
        }
    )
    channel = CountingChannel()
    watched = worker(channel, db, sweep_seconds=0.02)  # a sweep finds it pending every time
    claims: list[int | None] = []
    claim = watched._claim

    async def counted(row: Doc) -> int | None:
        claims.append(await claim(row))
        return claims[-1]

    watched._claim = counted  # type: ignore[method-assign]
    task = asyncio.create_task(watched.run())
    try:
        await wait_until(lambda: len(claims) >= 5)  # the worker tried the job five times
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    assert set(claims) == {None}
    assert channel.sent == Counter()
    assert await states(db) == ["pending"]


class CountingFinds:
    """The job store, counting the queries that read many jobs."""

    def __init__(self, store: JobStore) -> None:
        self._store = store
        self.finds = 0

    async def pending(self, channel: str) -> Any:
        self.finds += 1
        return await self._store.pending(channel)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


async def test_held_jobs_are_not_read_again_between_sweeps(db: AsyncDatabase[Doc]) -> None:
    now = datetime.now(UTC)
    held = [job(n, now) | {"not_before": now + timedelta(hours=8)} for n in range(50)]
    await db["jobs"].insert_many(held)  # a quiet-hours backlog
    channel = CountingChannel()
    watched = worker(channel, db)
    jobs = CountingFinds(watched.store)
    watched.store = jobs  # type: ignore[assignment]
    task = asyncio.create_task(watched.run())
    try:
        await wait_until(lambda: jobs.finds == 1)
        await asyncio.sleep(0.3)  # 15 polls
        await db["jobs"].insert_one(job(100, datetime.now(UTC)))
        watched.wake(["job-100"])
        await wait_until(lambda: channel.sent["job-100"] == 1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert jobs.finds == 1  # the start's sweep only: the new job was read by its id
    assert channel.sent == Counter({"job-100": 1})


async def test_a_sweep_finds_jobs_nobody_woke_the_worker_for(db: AsyncDatabase[Doc]) -> None:
    channel = CountingChannel()
    watched = worker(channel, db, sweep_seconds=0.2)
    task = asyncio.create_task(watched.run())
    try:
        await asyncio.sleep(0.1)  # after the first sweep: recorded by a replica that stopped
        await db["jobs"].insert_one(job(7, datetime.now(UTC)))
        # the attempt's outcome is written after the send: cancelled in between, it stays
        # pending (seen once under load)
        await eventually(lambda: states(db), until=lambda found: found == ["sent"])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert channel.sent == Counter({"job-7": 1})
