"""The watch hub's own logic (a loader stands in for the store: no I/O is under test here):
a watcher is never left waiting for announcements it silently missed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from lienthong.events.v1.events_pb2 import NotificationRecorded
from lienthong_kit.envelope import EventEnvelope, new_event
from lienthong_kit.errors import Unavailable
from notification_service.store import Notification
from notification_service.watch import QUEUE_LIMIT, NotificationHub

UNIT = "000.01.00.H23"


def stored(notification_id: str) -> Notification:
    return Notification(
        id=notification_id,
        unit_code=UNIT,
        channel="in_app",
        kind="delivery.created",
        urgent=False,
        title="t",
        body="b",
        document_id="d",
        created_at=datetime.now(UTC),
    )


def announced(notification_id: str) -> EventEnvelope:
    return new_event(
        NotificationRecorded(notification_id=notification_id, unit_code=UNIT, channel="in_app"),
        producer="test",
    )


async def test_an_announcement_reaches_the_units_stream() -> None:
    async def load(notification_id: str) -> Notification | None:
        return stored(notification_id)

    hub = NotificationHub(load)
    with hub.watch(UNIT) as stream:
        await hub.on_event(announced("n-1"))
        row = await asyncio.wait_for(anext(stream), 5)
    assert row.id == "n-1"


async def test_a_store_failure_ends_the_units_streams_instead_of_the_tail() -> None:
    async def load(notification_id: str) -> Notification | None:
        raise ConnectionError("store down")

    hub = NotificationHub(load)
    with hub.watch(UNIT) as stream:
        await hub.on_event(announced("n-1"))  # does not raise
        with pytest.raises(Unavailable, match="could not be read from the store"):
            await asyncio.wait_for(anext(stream), 5)


async def test_a_reader_that_falls_behind_is_told_to_list_again() -> None:
    async def load(notification_id: str) -> Notification | None:
        return stored(notification_id)

    hub = NotificationHub(load)
    with hub.watch(UNIT) as stream:
        for number in range(QUEUE_LIMIT + 1):
            await hub.on_event(announced(f"n-{number}"))
        received = [(await asyncio.wait_for(anext(stream), 5)).id for _ in range(QUEUE_LIMIT)]
        with pytest.raises(Unavailable, match="fell too far behind"):
            await asyncio.wait_for(anext(stream), 5)
    assert received == [f"n-{number}" for number in range(QUEUE_LIMIT)]


async def test_the_tail_decodes_only_announcements_for_watched_units() -> None:
    async def load(notification_id: str) -> Notification | None:
        return stored(notification_id)

    hub = NotificationHub(load)
    assert not hub.watched(UNIT.encode())  # nobody watches: skipped undecoded
    assert not hub.watched(None)
    with hub.watch(UNIT):
        assert hub.watched(UNIT.encode())
        assert not hub.watched(b"000.02.00.H23")
    assert not hub.watched(UNIT.encode())
