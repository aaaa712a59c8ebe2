from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from lienthong_kit.errors import AlreadyExists, InvalidArgument, Violations, to_grpc_status


def test_violations_collect_every_problem() -> None:
    violations = Violations()
    violations.require(False, "subject", "is required")
    violations.require(True, "priority", "never reported")
    violations.add("code.number", "at most 11 characters")
    with pytest.raises(InvalidArgument) as info:
        violations.raise_if_any()
    assert [v.field for v in info.value.violations] == ["subject", "code.number"]
    assert info.value.message == "subject: is required; code.number: at most 11 characters"


def test_no_violation_raises_nothing() -> None:
    Violations().raise_if_any()


def test_invalid_argument_status_carries_bad_request_details() -> None:
    violations = Violations()
    violations.add("recipients.unit_codes[1]", "duplicate recipient 000.00.00.H23")
    with pytest.raises(InvalidArgument) as info:
        violations.raise_if_any()
    status = to_grpc_status(info.value)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    rich = rpc_status.from_call(_Call(status))
    assert rich is not None
    bad_request = error_details_pb2.BadRequest()
    assert rich.details[0].Unpack(bad_request)
    assert bad_request.field_violations[0].field == "recipients.unit_codes[1]"


def test_error_info_names_the_reason_and_metadata() -> None:
    error = AlreadyExists("duplicate", reason="DUPLICATE_NUMBER", metadata={"document_id": "d1"})
    rich = rpc_status.from_call(_Call(to_grpc_status(error)))
    assert rich is not None
    info = error_details_pb2.ErrorInfo()
    assert rich.details[0].Unpack(info)
    assert (info.reason, dict(info.metadata)) == ("DUPLICATE_NUMBER", {"document_id": "d1"})


class _Call:
    """What rpc_status.from_call reads from a finished call."""

    def __init__(self, status: grpc.Status) -> None:
        self._status = status

    def code(self) -> grpc.StatusCode:
        return self._status.code

    def details(self) -> str:
        return self._status.details

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return tuple(self._status.trailing_metadata)
