"""What "the infrastructure is down" means, once, and how the kit waits for it to come back.

The store's and the broker's connection failures are :data:`INFRA_ERRORS`. Consumers retry
them without limit; an RPC that meets one answers UNAVAILABLE (retryable), never INTERNAL;
the store's duplicate key is the kit's AlreadyExists. Every "retry while Kafka or the store
is down" in the kit is :func:`retry_while_down`::

    found = await retry_while_down(
        lambda: applied.find_one({"_id": key}), event="dependency_unavailable", group=group
    )

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

__all__ = ["INFRA_ERRORS", "DuplicateKeyError", "is_infra_error", "retry_while_down"]

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
