"""Failpoints: named places where a test can make the process die on purpose.

    failpoint("outbox.after_publish")   # no-op unless named in LIENTHONG_FAILPOINTS

A crash test starts a service with ``LIENTHONG_FAILPOINTS=outbox.after_publish`` and the
process sends itself SIGKILL (kill -9) the first time it passes there: no cleanup, no flush,
no finally blocks. Production leaves the variable unset.
"""

from __future__ import annotations

import os
import signal

__all__ = ["arm", "failpoint"]

_armed: frozenset[str] = frozenset()


def arm(names: tuple[str, ...]) -> None:
    """Called once by the bootstrap with the configured failpoints."""
    global _armed
    _armed = frozenset(names)


def failpoint(name: str) -> None:
    if name in _armed:
        os.kill(os.getpid(), signal.SIGKILL)
