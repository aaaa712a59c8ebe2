"""Everything reporting-service does because of how faust-streaming behaves, in one place.

    guards = FaustGuards(app, bootstrap, sources=topics, skip=skip_hook(settings.failpoints))
    async for batch in stream.take_events(...):
        with exit_if_raises(topic):
            taken = [e for e in batch if not guards.skipped(e.message)]  # a test's detour
            fold(taken)
            await guards.applied_all([e.message for e in taken], apply)  # what faust skipped
    guards.reset()                                        # after every recovery

- the flush barrier (:func:`make_durable`): the producer flush faust does before each commit
  waits for every changelog record's acknowledgement;
- the commit guard (:func:`guard_commits`, :class:`AppliedOffsets`): faust commits no offset
  past an event the agent has not applied;
- hole filling (:meth:`FaustGuards.applied_all`): records faust skipped are read directly
  (``read_range``) and applied before the partition may be committed past them;
- sources paused while the table recovers (:func:`pause_sources_until_recovered`): faust pauses
  the partitions a worker held before a rebalance, not the ones newly assigned to it, so those
  were fetched during the recovery and their events dropped;
- uncommitted partitions read from their start (:func:`read_uncommitted_from_start`): after
  every recovery faust seeks each partition to its committed offset, and leaves one that has
  none where the recovery's own fetching left it (a dead worker's partitions it never
  committed: their events were fetched and dropped while the table recovered);
- :func:`exit_if_raises`: an error while counting ends the process, as faust would commit the
  event uncounted;
- :func:`skip_hook`: the failpoint ``reporting.skip_record`` makes the worker skip one record
  as faust did, so the hole filling runs in the real worker under test.

Why each exists: docs/decisions/0600-faust-commit-guard.md and 0601-faust-skipped-records.md;
they reach into faust's internals, so faust-streaming's version is pinned (0602).
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import ssl
import sys
import types
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from lienthong_kit.kafka import read_range
from lienthong_kit.logs import get_logger
from reporting_service.metrics import ADOPTION_REREADS

__all__ = [
    "SKIP_RECORD",
    "AppliedOffsets",
    "Apply",
    "FaustGuards",
    "UndeliveredChangelog",
    "exit_if_raises",
    "faust_state",
    "guard_commits",
    "log_state_on_signal",
    "make_durable",
    "pause_sources_until_recovered",
    "read_uncommitted_from_start",
    "skip_hook",
]

log = get_logger(__name__)

#: Applies one source record: (the message or record, its value, its timestamp or 0.0).
Apply = Callable[[Any, bytes, float], Awaitable[None]]
SkipHook = Callable[[Any], bool]

#: The failpoint that makes the worker skip one record in the middle of a partition, once.
SKIP_RECORD = "reporting.skip_record"

_STOPPING_WAIT = 10.0


class UndeliveredChangelog(RuntimeError):
    """A changelog record was not delivered: committing past its event would lose a fact."""


class _DeliveryBarrier:
    """Tracks every record put into faust's producer buffer until its delivery is
    acknowledged; ``flush`` returns only when every record put before it is, and raises if
    one failed (the commit then fails and the events are processed again after a restart).
    faust's own flush can return with records undelivered (docs/decisions/0600)."""

    def __init__(self, buffer: Any) -> None:
        self._buffer = buffer
        self._put = buffer.put
        self._outstanding: set[asyncio.Future[Any]] = set()
        self._failed: BaseException | None = None

    def put(self, fut: asyncio.Future[Any]) -> None:
        self._outstanding.add(fut)
        fut.add_done_callback(self._delivered)
        self._put(fut)

    def _delivered(self, fut: asyncio.Future[Any]) -> None:
        self._outstanding.discard(fut)
        if self._failed is None and not fut.cancelled() and fut.exception() is not None:
            self._failed = fut.exception()

    async def flush(self) -> None:
        # The records put before this call: faust picks the offsets to commit before it
        # flushes, so later records belong to later events (and waiting for them too would
        # never end under steady traffic).
        before = list(self._outstanding)
        if before:
            # The buffer's own stop (after the app's final flush) may find the producer gone:
            # a bounded wait then; nothing is committed after that point.
            timeout = _STOPPING_WAIT if self._buffer.should_stop else None
            await asyncio.wait(before, timeout=timeout)
        if self._failed is not None:
            raise UndeliveredChangelog(f"a changelog record was not delivered: {self._failed!r}")

    @property
    def outstanding(self) -> int:
        return len(self._outstanding)


def make_durable(buffer: Any) -> _DeliveryBarrier:
    """Install the barrier on faust's ``ProducerBuffer`` (``app.producer.buffer``)."""
    barrier = _DeliveryBarrier(buffer)
    buffer.put = barrier.put
    buffer.flush = barrier.flush
    return barrier


class AppliedOffsets:
    """What the agent has applied, per source partition: faust may commit no further.

    faust computes the offsets it commits from its own acknowledgement bookkeeping (acked
    lists, "gaps" it fills in as acknowledged, a head check that lets the first offset after
    the committed one be missing). A commit past an event the agent never applied loses that
    event for good: after a restart the worker resumes behind it. The agent reports each event
    it applied (:meth:`applied`); :meth:`clamp` cuts every offset faust is about to commit down
    to the partition's next unapplied one, and drops partitions the agent has not applied
    anything of since the last (re)assignment.

    A partition whose events arrive with a hole (faust delivered offset 12 after 10) is held at
    the hole: :meth:`applied` returns the first missing offset, the worker reads the skipped
    records itself and applies them, and only then may the partition be committed past it
    (why not seek back: docs/decisions/0601-faust-skipped-records.md).
    """

    def __init__(self) -> None:
        self._next: dict[Any, int] = {}  # partition -> the next offset to apply

    def reset(self) -> None:
        """After a (re)assignment: faust seeks every partition to its committed offset."""
        self._next.clear()

    def applied(self, tp: Any, offset: int, committed: int | None) -> int | None:
        """Record that ``offset`` of ``tp`` is applied; ``committed`` is the partition's
        committed offset (where reading resumed), used for the first event after a reset.

        Returns the first offset faust skipped when ``offset`` comes after a hole: the caller
        reads and applies the records from there to ``offset`` itself, then calls
        :meth:`filled`. Until then nothing past the hole is committed."""
        expected = self._next.get(tp, committed)
        if expected is None or offset == expected:
            self._next[tp] = offset + 1
            return None
        if offset < expected:  # read again (a seek back): applied before, nothing to record
            return None
        self._next[tp] = expected  # held at the hole until filled
        return expected

    def filled(self, tp: Any, offset: int) -> None:
        """The hole before ``offset`` is applied: ``tp`` may be committed past ``offset``."""
        self._next[tp] = offset + 1

    def clamp(self, offsets: Mapping[Any, int]) -> dict[Any, int]:
        """The offsets that may be committed: none past what was applied."""
        return {
            tp: min(offset, self._next[tp]) for tp, offset in offsets.items() if tp in self._next
        }


def guard_commits(consumer: Any, offsets: AppliedOffsets) -> None:
    """Route faust's commits through :meth:`AppliedOffsets.clamp`."""
    commit = consumer._commit  # the one place faust's commits pass

    async def guarded(requested: Any) -> bool:
        allowed = offsets.clamp(requested)
        if not allowed:
            return False
        return bool(await commit(allowed))

    consumer._commit = guarded


def pause_sources_until_recovered(consumer: Any, sources: Collection[str]) -> None:
    """Every source partition of a new assignment starts paused, as faust already does for the
    partitions the worker held before the rebalance: faust resumes them all (and seeks them to
    their committed offsets) once the table has recovered. A newly assigned one left active
    was read during the recovery, and its events dropped (docs/decisions/0603)."""
    set_active = consumer._set_active_tps  # called with the assignment, before recovery starts

    def paused_first(tps: Any) -> Any:
        consumer._paused_partitions.update(tp for tp in tps if tp.topic in sources)
        return set_active(tps)

    consumer._set_active_tps = paused_first


def read_uncommitted_from_start(consumer: Any, sources: Collection[str]) -> None:
    """Make faust's seek to the committed offsets (after every recovery) also seek each source
    partition that has no committed offset back to its first record.

    faust leaves such a partition wherever its position is (aiokafka seeks only offsets > 0):
    one newly assigned in a rebalance was read during the table's recovery, its events never
    reaching the agent, so a worker that took over a dead one's partitions before their first
    commit never counted their first events. Kept beside :func:`pause_sources_until_recovered`
    for any other path that moves such a position before the seek (docs/decisions/0603)."""
    seek_to_committed = consumer.seek_to_committed  # what faust's perform_seek calls

    async def guarded() -> Mapping[Any, int | None]:
        committed: Mapping[Any, int | None] = await seek_to_committed()
        fresh = [tp for tp, offset in committed.items() if tp.topic in sources and not offset]
        if fresh:
            await consumer._thread.seek_to_beginning(*fresh)
            log.info("uncommitted_partitions_read_from_start", partitions=sorted(map(str, fresh)))
        return committed

    consumer.seek_to_committed = guarded


@contextmanager
def exit_if_raises(topic: str) -> Iterator[None]:
    """Exit at once, as a SIGKILL would, if counting an event raises.

    faust acknowledges the event of an agent that raises, and a stopping agent's current
    event too (its stream iterator's ``finally``), so either would be committed uncounted;
    after the exit nothing is committed past the last flush and the restarted worker counts
    the event."""
    try:
        yield
    except Exception:
        log.exception("count_failed_worker_exits", topic=topic)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(70)


def skip_hook(failpoints: Collection[str]) -> SkipHook | None:
    """The detour armed by the failpoint :data:`SKIP_RECORD` (None when not armed): skip,
    once, a record of a partition the worker has already been given a record of, so the next
    record reveals the hole. (A skipped first record is not detectable: nothing says where the
    partition should have started.)"""
    if SKIP_RECORD not in failpoints:
        return None
    started: set[Any] = set()
    skipped: list[Any] = []

    def skip(message: Any) -> bool:
        if skipped:
            return False
        if message.tp not in started:
            started.add(message.tp)
            return False
        skipped.append(message)
        return True

    return skip


class FaustGuards:
    """The guards installed on one faust app (before its worker starts)."""

    def __init__(
        self,
        app: Any,
        bootstrap: str,
        *,
        sources: Collection[str],
        skip: SkipHook | None = None,
        kafka_ssl: ssl.SSLContext | None = None,
    ) -> None:
        self._consumer = app.consumer
        self._bootstrap = bootstrap
        # the hole is re-read as this service's principal, over TLS when the worker is
        self._security: dict[str, Any] | None = (
            {"security_protocol": "SSL", "ssl_context": kafka_ssl} if kafka_ssl else None
        )
        self._skip = skip
        self.changelog_deliveries = make_durable(app.producer.buffer)
        self.offsets = AppliedOffsets()
        guard_commits(self._consumer, self.offsets)
        pause_sources_until_recovered(self._consumer, sources)
        read_uncommitted_from_start(self._consumer, sources)

    def reset(self) -> None:
        """After a (re)covery: faust seeks every partition to its committed offset."""
        self.offsets.reset()

    @property
    def detour(self) -> bool:
        """True when a test's skip detour is armed (never in production)."""
        return self._skip is not None

    def skipped(self, message: Any) -> bool:
        """True when a test's detour skips ``message`` (never in production)."""
        return self._skip is not None and self._skip(message)

    async def applied_all(self, messages: Iterable[Any], apply: Apply) -> None:
        """Each of ``messages`` (in order) is applied; where faust skipped records before one,
        read and apply those (within this batch, so their facts go to its changelog partition,
        which is theirs too), then let the partition be committed past them. Nothing is
        awaited without a hole."""
        committed = self._consumer._committed_offset
        record = self.offsets.applied
        for message in messages:
            hole = record(message.tp, message.offset, committed.get(message.tp))
            if hole is not None:
                await self._fill(message, hole, apply)

    async def _fill(self, message: Any, hole: int, apply: Apply) -> None:
        log.warning(
            "faust_skipped_offsets_reading_them",
            topic=message.topic,
            partition=message.partition,
            from_offset=hole,
            got=message.offset,
        )
        skipped = await read_range(
            self._bootstrap,
            message.topic,
            message.partition,
            hole,
            message.offset,
            security=self._security,
        )
        for record in skipped:
            await apply(record, record.value, record.timestamp / 1000)
        ADOPTION_REREADS.labels(message.topic).inc(len(skipped))
        self.offsets.filled(message.tp, message.offset)


def faust_state(app: Any) -> dict[str, Any]:
    """What faust's consumer, recovery and streams are doing, for a worker that stopped counting
    (logged on SIGUSR2, ``log_state_on_signal``): faust logs nothing when a partition stays paused
    or a stream waits, and asyncio's task stacks stop at async generators."""
    consumer = app.consumer
    recovery = app.tables.recovery
    state: dict[str, Any] = {
        "generation": app.consumer_generation_id,
        "assignment": sorted(map(str, consumer.assignment())),
        "paused": sorted(map(str, consumer._paused_partitions)),
        "active": sorted(map(str, consumer._active_partitions or ())),
        "flow_active": consumer.flow_active,
        "flow_control_resumed": app.flow_control.is_active(),
        "read_offset": {str(tp): o for tp, o in consumer._read_offset.items()},
        "committed": {str(tp): o for tp, o in consumer._committed_offset.items()},
        "unacked": len(consumer._unacked_messages),
        "in_recovery": recovery.in_recovery,
        "recovery_completed": recovery.completed.is_set(),
        "recovery_active": sorted(map(str, recovery.active_tps)),
        "recovery_standby": sorted(map(str, recovery.standby_tps)),
        "active_remaining": {str(tp): n for tp, n in recovery.active_remaining().items()},
        "standby_remaining": {str(tp): n for tp, n in recovery.standby_remaining().items()},
    }
    # where each live async generator (a stream, take_events, getmany) is suspended
    generators = []
    for obj in gc.get_objects():
        if isinstance(obj, types.AsyncGeneratorType) and obj.ag_frame is not None:
            frame = obj.ag_frame
            where = f"{obj.ag_code.co_qualname}:{frame.f_lineno} await={obj.ag_await!r}"
            if obj.ag_code.co_name == "take_events":  # the batch being filled
                local = frame.f_locals
                where += f" buffer={len(local.get('buffer', ()))}"
                where += f" consuming={local.get('buffer_consuming')!r}"
            generators.append(where)
    state["async_generators"] = generators
    queues = {}
    for channels in list(app.topics._topic_name_index.values()):
        for channel in channels:
            queue = getattr(channel, "_queue", None)
            if queue is not None:
                queues[repr(channel)[-40:]] = queue.qsize()
    state["channel_queues"] = queues
    # aiokafka's own view (its consumer runs in faust's consumer thread)
    kafka = consumer._thread._consumer
    fetcher = kafka._fetcher
    assignment = kafka._subscription.subscription.assignment
    state["kafka_buffered"] = {str(tp): repr(r)[:60] for tp, r in list(fetcher._records.items())}
    state["kafka_positions"] = {
        str(tp): (
            assignment.state_value(tp).position
            if assignment.state_value(tp).has_valid_position
            else None
        )
        for tp in assignment.tps
    }
    state["kafka_paused"] = sorted(
        str(tp) for tp in assignment.tps if assignment.state_value(tp).paused
    )
    state["kafka_in_flight"] = sorted(fetcher._in_flight)
    return state


def log_state_on_signal(app: Any) -> None:
    """SIGUSR2 logs :func:`faust_state` (mode's own SIGUSR2 would start pdb on stdin)."""

    def dump() -> None:
        try:
            log.warning("faust_state", **faust_state(app))
        except Exception:
            log.exception("faust_state_failed")

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, dump)
