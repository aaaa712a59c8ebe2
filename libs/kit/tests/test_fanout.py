"""The watch streams' fan-out: a stream opened before the feeding tail is positioned would
miss what is published meanwhile, so it is refused as retryable instead."""

from __future__ import annotations

import asyncio

import pytest

from lienthong_kit.errors import Unavailable
from lienthong_kit.fanout import FanOutHub


async def test_a_stream_before_the_tail_is_positioned_is_told_to_retry() -> None:
    hub: FanOutHub[str] = FanOutHub(queue_limit=10, fell_behind="behind")
    positioned = asyncio.Event()
    hub.follows(positioned)
    with pytest.raises(Unavailable) as info, hub.watch("000.01.00.H23"):
        pass
    assert info.value.reason == "WATCH_STARTING"
    assert not hub.watching("000.01.00.H23")

    positioned.set()
    with hub.watch("000.01.00.H23") as items:
        hub.publish("000.01.00.H23", "delivery-1")
        assert await anext(items) == "delivery-1"


async def test_a_hub_without_a_tail_takes_streams_at_once() -> None:
    hub: FanOutHub[str] = FanOutHub(queue_limit=10, fell_behind="behind")
    with hub.watch("k") as items:
        hub.publish("k", "x")
        assert await anext(items) == "x"
