"""Failpoints: named places where a test can make the process die on purpose.

    failpoint("outbox.after_publish")   # no-op unless named in LIENTHONG_FAILPOINTS

A crash test starts a service with ``LIENTHONG_FAILPOINTS=outbox.after_publish`` and the
process sends itself SIGKILL (kill -9) the first time it passes there: no cleanup, no flush,
no finally blocks. Production leaves the variable unset.

``skip_once(name)`` is the other kind: a detour a test makes the process take once (say,
drop one event as a library was seen to), answered ``True`` the first time only.
"""

from __future__ import annotations

import os
import signal

__all__ = ["arm", "failpoint", "skip_once"]

_armed: frozenset[str] = frozenset()
_taken: set[str] = set()


def arm(names: tuple[str, ...]) -> None:
    """Called once by the bootstrap with the configured failpoints."""
    global _armed
    _armed = frozenset(names)


def failpoint(name: str) -> None:
    if name in _armed:
        os.kill(os.getpid(), signal.SIGKILL)


def skip_once(name: str) -> bool:
    """``True`` the first time the process passes ``name`` if it is armed, else ``False``."""
    if name not in _armed or name in _taken:
        return False
    _taken.add(name)
    return True
