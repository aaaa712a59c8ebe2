"""What "the infrastructure is down" means, once: the store's and the broker's connection
failures. Consumers retry them without limit; an RPC that meets one answers UNAVAILABLE
(retryable), never INTERNAL; the store's duplicate key is the kit's AlreadyExists."""

from __future__ import annotations

from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
)
from pymongo.errors import ConnectionFailure, DuplicateKeyError

__all__ = ["INFRA_ERRORS", "DuplicateKeyError", "is_infra_error"]

INFRA_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionFailure,
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
)


def is_infra_error(error: BaseException) -> bool:
    return isinstance(error, INFRA_ERRORS)
