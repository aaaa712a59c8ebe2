"""Run a service (any ``python -m`` module) under a set wall clock, for tests only.

    python -m lienthong_testing.clock 2025-06-16T10:00:00+07:00 -m document_service

The process's wall clock (``datetime.now``, ``time.time``) starts at the given moment and
ticks on from there (time-machine); monotonic clocks, which timeouts use, are untouched. The
platform's tests use it to produce traffic in June and July 2025 (the move to two tiers);
production never runs under it. Platform.launch(..., wrapper=clocked(moment)) starts one.
"""

from __future__ import annotations

import runpy
import sys
from collections.abc import Sequence
from datetime import datetime

import time_machine

__all__ = ["clocked", "main"]


def clocked(moment: datetime) -> tuple[str, ...]:
    """The interpreter arguments that run a ``-m`` module under ``moment`` (timezone-aware)."""
    if moment.tzinfo is None:
        raise ValueError(f"moment: {moment} has no timezone")
    return ("-m", __name__, moment.isoformat())


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3 or args[1] != "-m":
        raise SystemExit("usage: python -m lienthong_testing.clock MOMENT -m MODULE [ARGS...]")
    moment = datetime.fromisoformat(args[0])
    if moment.tzinfo is None:
        raise SystemExit(f"MOMENT: {args[0]} has no timezone")
    module = args[2]
    time_machine.travel(moment, tick=True).start()
    sys.argv = [module, *args[3:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
