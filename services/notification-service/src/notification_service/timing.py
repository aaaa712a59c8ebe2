"""Time for notification-service: an injectable clock, quiet hours, backoff, rate limits.

clock = SystemClock()            # ManualClock(start) in tests: clock.advance(days=2)
hold_until(now, quiet)           # when a routine e-mail/SMS may go (now, or the end of
                                 # the quiet hours, Vietnam time)
bucket = TokenBucket(rate=5.0)   # await bucket.take() before each send
"""

from __future__ import annotations

import asyncio
import random
import time as _time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from typing import Protocol

from lienthong_kit.vocabulary import VIETNAM, vietnam_time

__all__ = ["Clock", "ManualClock", "SystemClock", "TokenBucket", "backoff", "hold_until"]


class Clock(Protocol):
    """What the scheduler and the workers ask for the time (UTC, tz-aware)."""

    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told (tests)."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment


def hold_until(now: datetime, quiet: tuple[time, time] | None) -> datetime:
    """``now`` outside the quiet hours; else the moment they end (Vietnam time, UTC+7).
    A window such as 21:00-07:00 crosses midnight."""
    if quiet is None:
        return now
    start, end = quiet
    local = vietnam_time(now)
    moment = local.time()
    inside = (start <= moment < end) if start < end else (moment >= start or moment < end)
    if not inside:
        return now
    release = datetime.combine(local.date(), end, tzinfo=VIETNAM)
    if release <= local:
        release += timedelta(days=1)
    return release.astimezone(UTC)


def backoff(attempt: int, *, first: float, maximum: float) -> float:
    """Seconds before retry ``attempt`` + 1: exponential, capped, with full jitter in
    [delay/2, delay] so retries of many jobs spread out."""
    delay = min(maximum, first * (2 ** max(attempt - 1, 0)))
    return float(delay * (0.5 + random.random() / 2))  # noqa: S311 - jitter, not cryptography


class TokenBucket:
    """At most ``rate`` takes per second on average, bursts up to ``burst`` (one replica)."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        monotonic: Callable[[], float] = _time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self._monotonic = monotonic
        self._sleep = sleep
        self._tokens = self.capacity
        self._last = monotonic()
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        async with self._lock:
            while True:
                current = self._monotonic()
                self._tokens = min(self.capacity, self._tokens + (current - self._last) * self.rate)
                self._last = current
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await self._sleep((1 - self._tokens) / self.rate)
