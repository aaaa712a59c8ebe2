"""Wait for a condition with a deadline, never with a bare sleep.

inbox = await eventually(lambda: list_inbox(unit), until=lambda r: len(r.entries) == 2)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["eventually", "eventually_sync", "wait_until"]

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    *,
    until: Callable[[T], bool],
    timeout: float = 30.0,
    interval: float = 0.05,
) -> T:
    """Call ``probe`` until ``until(result)`` holds; TimeoutError shows the last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if until(result):
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s; last result: {result!r}")
        await asyncio.sleep(interval)


def eventually_sync(
    probe: Callable[[], T],
    *,
    until: Callable[[T], bool],
    timeout: float = 30.0,
    interval: float = 0.05,
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if until(result):
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s; last result: {result!r}")
        time.sleep(interval)


async def wait_until(condition: Callable[[], bool], *, timeout: float = 30.0) -> None:
    """Wait for a condition on local state (a list a handler appends to, say)."""

    async def check() -> bool:
        return condition()

    await eventually(check, until=bool, timeout=timeout)
