"""What "the infrastructure is down" means, once, and how the kit waits for it to come back.

The store's and the broker's connection failures are :data:`INFRA_ERRORS`. Consumers retry
them without limit; an RPC that meets one answers UNAVAILABLE (retryable), never INTERNAL;
the store's duplicate key is the kit's AlreadyExists. Every "retry while Kafka or the store
is down" in the kit is :func:`retry_while_down`::

    found = await retry_while_down(
        lambda: applied.find_one({"_id": key}), event="dependency_unavailable", group=group
    )

A background loop that goes on after a failed round (a sweep, a scheduler, a reload) runs
with :func:`every` (or reports its own failures with :func:`report_failure`): an outage is a
warning and ``lienthong_background_failures_total{kind="infra"}``, anything else is logged
with its traceback (``kind="error"``); neither stops the loop::

    await every(60.0, sweep_once, task="attachments_sweep")

Why a small own helper rather than tenacity: docs/decisions/0100-retry.md.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
)
from pymongo.errors import ConnectionFailure, DuplicateKeyError, OperationFailure

from lienthong_kit.logs import get_logger
from lienthong_kit.metrics import BACKGROUND_FAILURES

__all__ = [
    "INFRA_ERRORS",
    "DuplicateKeyError",
    "every",
    "is_infra_error",
    "report_failure",
    "retry_while_down",
]

log = get_logger(__name__)

T = TypeVar("T")

INFRA_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionFailure,
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
)

FIRST_DELAY = 0.5
MAX_DELAY = 5.0


#: FerretDB answers a command with an OperationFailure (not a connection error) while the
#: PostgreSQL under it is down or restarting: these messages mean "retry", not "bug"
_BACKEND_DOWN = re.compile(
    r"failed to connect to|SQLSTATE (?:57P0[1-3]|08[0-9A-Z]{3})|connection refused"
    r"|conn closed|unexpected EOF|broken pipe|the database system is",
    re.IGNORECASE,
)


def is_infra_error(error: BaseException) -> bool:
    """The store or the broker is unreachable (or the store's own database is): retryable.
    Use this, not ``except INFRA_ERRORS``, where FerretDB's answers can arrive."""
    if isinstance(error, INFRA_ERRORS):
        return True
    return isinstance(error, OperationFailure) and bool(_BACKEND_DOWN.search(str(error)))


async def retry_while_down(
    operation: Callable[[], Awaitable[T]],
    *,
    event: str,
    errors: tuple[type[BaseException], ...] = INFRA_ERRORS,
    on_retry: Callable[[BaseException], None] | None = None,
    **log_fields: Any,
) -> T:
    """``operation()``'s result, retrying it without limit while it raises one of ``errors``
    (each failure logged as ``event`` at WARNING); backoff doubles from 0.5 s to 5 s, with
    jitter so that replicas do not retry in step. Any other exception propagates at once;
    cancellation stops the wait."""
    delay = FIRST_DELAY
    while True:
        try:
            return await operation()
        except Exception as exc:
            if not isinstance(exc, errors) and not is_infra_error(exc):
                raise
            if on_retry is not None:
                on_retry(exc)
            log.warning(event, error=repr(exc), retry_in=round(delay, 2), **log_fields)
            await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter only
            delay = min(delay * 2, MAX_DELAY)


def report_failure(error: BaseException, *, task: str, **log_fields: Any) -> bool:
    """Log and count a failed round of background ``task`` that will be tried again; True
    when it was an outage (the store or broker unreachable), False for anything else."""
    if is_infra_error(error):
        BACKGROUND_FAILURES.labels(task, "infra").inc()
        log.warning("dependency_unavailable", task=task, error=repr(error), **log_fields)
        return True
    BACKGROUND_FAILURES.labels(task, "error").inc()
    log.error("background_round_failed", task=task, exc_info=error, **log_fields)
    return False


async def every(
    seconds: float,
    round_: Callable[[], Awaitable[object]],
    *,
    task: str,
    first_delay: float = 0.0,
) -> None:
    """Run ``round_()`` every ``seconds`` (after ``first_delay``) until cancelled; a failed
    round is reported (:func:`report_failure`) and the next one comes as usual."""
    await asyncio.sleep(first_delay)
    while True:
        try:
            await round_()
        except Exception as exc:  # noqa: BLE001 - reported; the loop must outlive any round
            report_failure(exc, task=task)
        await asyncio.sleep(seconds)
