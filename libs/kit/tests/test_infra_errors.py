"""What counts as "the store or the broker is down" (retried, UNAVAILABLE), found by the
fault harness's PostgreSQL kill: FerretDB answers OperationFailure then, not a connection
error."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka.errors import KafkaConnectionError
from prometheus_client import REGISTRY
from pymongo.errors import AutoReconnect, DuplicateKeyError, OperationFailure

from lienthong_kit.infra import every, is_infra_error, report_failure, retry_while_down

# as FerretDB v1 answered while its PostgreSQL was killed and restarting (harness logs)
FERRETDB_BACKEND_DOWN = [
    "[msg_insert.go:168 handler.(*Handler).MsgInsert] failed to connect to `user=postgres"
    " database=ferretdb`:\n\t127.0.0.1:39031 (127.0.0.1): dial error: dial tcp"
    " 127.0.0.1:39031: connect: connection refused",
    "[msg_find.go:344 handler.handleMaxTimeMSError] failed to connect to `user=postgres"
    " database=ferretdb`: server error: FATAL: the database system is starting up"
    " (SQLSTATE 57P03)",
    "terminating connection due to administrator command (SQLSTATE 57P01)",
]


@pytest.mark.parametrize("message", FERRETDB_BACKEND_DOWN)
def test_ferretdb_without_its_postgresql_is_the_store_being_down(message: str) -> None:
    assert is_infra_error(OperationFailure(message, code=1))


def test_real_failures_are_not_outages() -> None:
    assert not is_infra_error(OperationFailure("unknown operator: $foo", code=2))
    assert not is_infra_error(DuplicateKeyError("E11000 duplicate key"))
    assert not is_infra_error(ValueError("failed to connect to"))  # only the store's answers
    assert is_infra_error(AutoReconnect("connection closed"))


async def test_an_outage_answer_is_retried_until_the_store_is_back() -> None:
    answers = [OperationFailure(FERRETDB_BACKEND_DOWN[0], code=1), None]

    async def operation() -> str:
        answer = answers.pop(0)
        if answer is not None:
            raise answer
        return "done"

    assert await retry_while_down(operation, event="test") == "done"


async def test_another_failure_is_not_retried() -> None:
    async def operation() -> None:
        raise OperationFailure("unknown operator: $foo", code=2)

    with pytest.raises(OperationFailure):
        await retry_while_down(operation, event="test")


def failures(task: str, kind: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "lienthong_background_failures_total", {"task": task, "kind": kind}
        )
        or 0.0
    )


async def test_a_background_loop_outlives_an_outage_and_a_bug() -> None:
    task = f"test_{uuid.uuid4().hex[:8]}"
    answers: list[BaseException | None] = [
        OperationFailure(FERRETDB_BACKEND_DOWN[2], code=1),
        RuntimeError("a bug in one round"),
        None,
    ]
    finished = asyncio.Event()

    async def one_round() -> None:
        answer = answers.pop(0) if answers else None
        if answer is not None:
            raise answer
        finished.set()

    loop = asyncio.create_task(every(0.0, one_round, task=task))
    try:
        await asyncio.wait_for(finished.wait(), timeout=30)
        assert not loop.done()  # neither the outage nor the bug ended it
    finally:
        loop.cancel()
    assert (failures(task, "infra"), failures(task, "error")) == (1.0, 1.0)


def test_a_failed_round_is_an_outage_only_when_the_store_or_broker_is_down() -> None:
    task = f"test_{uuid.uuid4().hex[:8]}"
    assert report_failure(OperationFailure(FERRETDB_BACKEND_DOWN[1], code=1), task=task)
    assert report_failure(KafkaConnectionError(), task=task)
    assert not report_failure(OperationFailure("unknown operator: $foo", code=2), task=task)
    assert (failures(task, "infra"), failures(task, "error")) == (2.0, 1.0)
