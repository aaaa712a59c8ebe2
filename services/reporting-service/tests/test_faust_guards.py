"""The faust guards (faust_guards.py): the delivery barrier faust's commit flush goes
through, the applied offsets its commits are cut down to, the exit on a counting error and the
test's skip hook.

Unit tests of the logic against a stand-in buffer (a queue nobody drains, as when aiokafka's
``send`` is stuck waiting), a stand-in consumer and plain offsets; the worker tests
(test_worker.py) run every guard inside the real faust worker, hole filling included.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition

from reporting_service.faust_guards import (
    SKIP_RECORD,
    AppliedOffsets,
    UndeliveredChangelog,
    exit_if_raises,
    guard_commits,
    make_durable,
    pause_sources_until_recovered,
    read_uncommitted_from_start,
    skip_hook,
)


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
    monkeypatch.setattr("reporting_service.faust_guards._STOPPING_WAIT", 0.05)
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


# --- AppliedOffsets ------------------------------------------------------------------------

P0, P1 = ("deliveries", 0), ("deliveries", 1)


def test_commits_are_cut_down_to_the_next_unapplied_offset() -> None:
    applied = AppliedOffsets()
    for offset in (40, 41, 42):
        assert applied.applied(P0, offset, committed=40) is None
    # faust wants to commit 50 (acknowledged or "gap" offsets the agent never applied)
    assert applied.clamp({P0: 50}) == {P0: 43}
    assert applied.clamp({P0: 41}) == {P0: 41}


def test_a_partition_nothing_was_applied_of_is_not_committed() -> None:
    applied = AppliedOffsets()
    applied.applied(P0, 0, committed=None)
    assert applied.clamp({P0: 1, P1: 7}) == {P0: 1}


def test_the_first_event_after_the_committed_offset_missing_is_a_hole() -> None:
    applied = AppliedOffsets()
    assert applied.applied(P0, 786, committed=785) == 785  # 785 must be read and applied
    assert applied.clamp({P0: 787}) == {P0: 785}
    applied.filled(P0, 786)
    assert applied.clamp({P0: 787}) == {P0: 787}


def test_a_hole_holds_the_partition_until_it_is_filled() -> None:
    applied = AppliedOffsets()
    applied.applied(P0, 10, committed=10)
    assert applied.applied(P0, 12, committed=10) == 11  # 11 skipped
    assert applied.clamp({P0: 13}) == {P0: 11}  # nothing past the hole
    applied.filled(P0, 12)  # the worker read 11 itself and applied it
    assert applied.clamp({P0: 13}) == {P0: 13}
    assert applied.applied(P0, 13, committed=10) is None
    assert applied.clamp({P0: 14}) == {P0: 14}


def test_offsets_read_again_after_a_seek_back_change_nothing() -> None:
    applied = AppliedOffsets()
    for offset in (5, 6, 7):
        applied.applied(P0, offset, committed=5)
    assert applied.applied(P0, 6, committed=5) is None
    assert applied.clamp({P0: 8}) == {P0: 8}


def test_a_reassignment_starts_over_from_the_committed_offsets() -> None:
    applied = AppliedOffsets()
    applied.applied(P0, 5, committed=5)
    applied.reset()
    assert applied.clamp({P0: 6}) == {}
    assert applied.applied(P0, 9, committed=9) is None
    assert applied.clamp({P0: 10}) == {P0: 10}


# --- the commit guard ----------------------------------------------------------------------


class Consumer:
    """What the guard needs of faust's consumer: ``_commit``."""

    def __init__(self) -> None:
        self.committed: list[dict[Any, int]] = []

    async def _commit(self, offsets: dict[Any, int]) -> bool:
        self.committed.append(dict(offsets))
        return True


async def test_faust_commits_pass_through_the_applied_offsets() -> None:
    consumer, applied = Consumer(), AppliedOffsets()
    guard_commits(consumer, applied)
    applied.applied(P0, 3, committed=3)
    assert await consumer._commit({P0: 9, P1: 4}) is True
    assert consumer.committed == [{P0: 4}]  # cut down to what was applied; P1 left alone


async def test_a_commit_with_nothing_applied_is_not_made() -> None:
    consumer = Consumer()
    guard_commits(consumer, AppliedOffsets())
    assert await consumer._commit({P0: 9}) is False
    assert consumer.committed == []


# --- exit on a counting error --------------------------------------------------------------


def test_an_error_while_counting_ends_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    codes: list[int] = []
    monkeypatch.setattr("os._exit", codes.append)
    with exit_if_raises("deliveries"):
        raise RuntimeError("the store of facts is gone")
    assert codes == [70]


def test_counting_without_an_error_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    codes: list[int] = []
    monkeypatch.setattr("os._exit", codes.append)
    with exit_if_raises("deliveries"):
        pass
    assert codes == []


# --- the skip hook (failpoint) -------------------------------------------------------------


def message(tp: tuple[str, int], offset: int) -> Any:
    return SimpleNamespace(tp=tp, offset=offset)


def test_no_skip_hook_unless_its_failpoint_is_armed() -> None:
    assert skip_hook(()) is None
    assert skip_hook(("reporting.after_table_write",)) is None


def test_the_skip_hook_skips_one_record_after_the_first_of_its_partition_once() -> None:
    skip = skip_hook((SKIP_RECORD,))
    assert skip is not None
    given = [message(P0, 0), message(P1, 0), message(P1, 1), message(P1, 2), message(P0, 1)]
    assert [skip(m) for m in given] == [False, False, True, False, False]


def test_a_record_the_hook_skips_is_found_as_a_hole_by_the_next_one() -> None:
    skip, applied = skip_hook((SKIP_RECORD,)), AppliedOffsets()
    assert skip is not None
    holes = []
    for offset in range(4):
        if not skip(message(P0, offset)):
            hole = applied.applied(P0, offset, committed=None)
            holes.append(hole)
            if hole is not None:
                applied.filled(P0, offset)  # as the worker does once it read the hole
    assert holes == [None, 1, None]  # offset 1 skipped, revealed by offset 2


class SeekingConsumer:
    """What the seek guard needs of faust's consumer: ``seek_to_committed`` (returning the
    committed offsets, None where there is none) and its thread's ``seek_to_beginning``."""

    def __init__(self, committed: dict[Any, int | None]) -> None:
        self.committed = committed
        self.from_start: list[Any] = []
        self._thread = SimpleNamespace(seek_to_beginning=self._seek_to_beginning)

    async def seek_to_committed(self) -> dict[Any, int | None]:
        return self.committed

    async def _seek_to_beginning(self, *partitions: Any) -> None:
        self.from_start += partitions


async def test_a_source_partition_without_a_committed_offset_is_read_from_its_start() -> None:
    never = TopicPartition("deliveries", 1)
    committed = TopicPartition("deliveries", 0)
    changelog = TopicPartition("facts-changelog", 1)
    consumer = SeekingConsumer({never: None, committed: 911, changelog: None})
    read_uncommitted_from_start(consumer, ["deliveries"])
    assert await consumer.seek_to_committed() == consumer.committed  # faust still gets them
    # the changelog's positions are the recovery's, not a source's
    assert consumer.from_start == [never]


async def test_no_seek_when_every_source_partition_is_committed() -> None:
    consumer = SeekingConsumer({TopicPartition("deliveries", 0): 12})
    read_uncommitted_from_start(consumer, ["deliveries"])
    await consumer.seek_to_committed()
    assert consumer.from_start == []


class AssignedConsumer:
    """What the pause guard needs of faust's consumer: ``_paused_partitions`` and
    ``_set_active_tps`` (faust's: the assignment minus the paused partitions)."""

    def __init__(self, paused: set[Any]) -> None:
        self._paused_partitions = paused

    def _set_active_tps(self, tps: set[Any]) -> set[Any]:
        return tps - self._paused_partitions


def test_a_new_assignments_source_partitions_start_paused_its_changelog_does_not() -> None:
    held = TopicPartition("deliveries", 0)  # paused by faust at the rebalance already
    new = TopicPartition("deliveries", 1)  # a dead worker's, newly assigned
    changelog = TopicPartition("facts-changelog", 1)  # the recovery resumes and reads it
    consumer = AssignedConsumer(paused={held})
    pause_sources_until_recovered(consumer, ["deliveries"])
    assert consumer._set_active_tps({held, new, changelog}) == {changelog}
    assert consumer._paused_partitions == {held, new}
