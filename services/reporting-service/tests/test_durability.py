"""The delivery barrier that faust's commit flush goes through (durability.py).

Unit tests of the barrier's logic against a stand-in buffer (a queue nobody drains, as when
aiokafka's ``send`` is stuck waiting); the worker tests run it inside the real faust worker.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reporting_service.durability import UndeliveredChangelog, make_durable


class Buffer:
    """What the barrier needs of faust's ProducerBuffer: ``put``, ``flush``, ``should_stop``."""

    def __init__(self) -> None:
        self.queued: list[asyncio.Future[Any]] = []
        self.should_stop = False

    def put(self, fut: asyncio.Future[Any]) -> None:
        self.queued.append(fut)

    async def flush(self) -> None:  # faust's: returns although records are not delivered
        return


async def test_flush_waits_until_every_record_put_before_it_is_delivered() -> None:
    buffer = Buffer()
    barrier = make_durable(buffer)
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    buffer.put(first)
    buffer.put(second)
    assert buffer.queued == [first, second]  # still handed to faust's own queue
    flushing = asyncio.create_task(buffer.flush())
    await asyncio.sleep(0.2)  # longer than faust's 0.1 s give-up
    assert not flushing.done()
    first.set_result("delivered")
    await asyncio.sleep(0)
    assert not flushing.done()
    second.set_result("delivered")
    await asyncio.wait_for(flushing, timeout=1)
    assert barrier.outstanding == 0


async def test_a_failed_delivery_fails_the_flush_so_nothing_is_committed_past_it() -> None:
    buffer = Buffer()
    make_durable(buffer)
    fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    buffer.put(fut)
    fut.set_exception(ConnectionError("broker gone"))
    with pytest.raises(UndeliveredChangelog, match="broker gone"):
        await buffer.flush()


async def test_flush_with_nothing_outstanding_returns_at_once() -> None:
    buffer = Buffer()
    make_durable(buffer)
    await asyncio.wait_for(buffer.flush(), timeout=1)


async def test_the_buffers_own_stop_waits_a_bounded_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("reporting_service.durability._STOPPING_WAIT", 0.05)
    buffer = Buffer()
    make_durable(buffer)
    buffer.put(asyncio.get_running_loop().create_future())  # never delivered
    buffer.should_stop = True
    await asyncio.wait_for(buffer.flush(), timeout=1)


async def test_flush_does_not_wait_for_records_put_after_it_began() -> None:
    buffer = Buffer()
    make_durable(buffer)
    loop = asyncio.get_running_loop()
    earlier: asyncio.Future[Any] = loop.create_future()
    buffer.put(earlier)
    flushing = asyncio.create_task(buffer.flush())
    await asyncio.sleep(0)
    buffer.put(loop.create_future())  # a later event's fact, never delivered here
    earlier.set_result("delivered")
    await asyncio.wait_for(flushing, timeout=1)
