"""What faust commits, made safe: only offsets whose facts are written and acknowledged.

:class:`AppliedOffsets` keeps faust from committing past an event the agent has not applied;
:func:`make_durable` makes the producer flush that precedes every commit a real barrier.

Faust commits a source offset only after ``producer.flush()``; make that flush complete.

Table writes reach the changelog through the producer's buffer (``send_soon``: a queue that a
background task hands to aiokafka). Faust 0.15's ``ProducerBuffer.flush`` is not a barrier:

- it stops waiting when one hand-over takes longer than 0.1 s (``flush_atmost`` returns on
  its timeout with records still queued), and
- it measures the queue, so a record already taken off the queue but not yet in aiokafka's
  accumulator (its ``send`` awaiting metadata or buffer space) counts as flushed.

Either way the commit that follows can cover an event whose fact has not been written, and a
SIGKILL then loses that fact (seen as a replayed month one fact short). :func:`make_durable`
replaces the buffer's ``put`` and ``flush`` on the producer instance: every record put is
tracked until its delivery is acknowledged, and ``flush`` returns only when every record put
before it is acknowledged, raising if any delivery failed (the commit then fails, and the
events are processed again after the restart instead of being committed uncounted).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

__all__ = ["AppliedOffsets", "UndeliveredChangelog", "make_durable"]

_STOPPING_WAIT = 10.0


class UndeliveredChangelog(RuntimeError):
    """A changelog record was not delivered: committing past its event would lose a fact."""


class _DeliveryBarrier:
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
    records itself and applies them, and only then may the partition be committed past it.
    (Seeking faust's consumer back to the hole was tried first: in one CI run the seek never
    delivered the skipped record again.)
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
