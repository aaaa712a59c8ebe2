"""The one error hierarchy of lienthong, and its translation to gRPC statuses.

    LienthongError                a domain error a caller can act on (maps to a gRPC status)
    ├── InvalidArgument           INVALID_ARGUMENT, with google.rpc.BadRequest field violations
    ├── NotFound                  NOT_FOUND
    ├── AlreadyExists             ALREADY_EXISTS
    ├── PermissionDenied          PERMISSION_DENIED
    ├── Unauthenticated           UNAUTHENTICATED
    ├── FailedPrecondition        FAILED_PRECONDITION
    └── Unavailable               UNAVAILABLE
    EventError                    a consumed event could not be applied
    ├── PoisonEvent               can never be applied: dead-lettered at once, with the reason
    └── TransientEventError       may succeed later: retried with backoff, then dead-lettered

Handlers raise these; the server guard (interceptors.py) is the only place that turns
them into statuses, and the consumer loop (kafka.py) the only place that dead-letters.

    violations = Violations()
    violations.require(bool(request.subject), "subject", "is required")
    violations.raise_if_any()     # InvalidArgument listing every violation at once
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

__all__ = [
    "AlreadyExists",
    "EventError",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "LienthongError",
    "NotFound",
    "PermissionDenied",
    "PoisonEvent",
    "TransientEventError",
    "Unauthenticated",
    "Unavailable",
    "Violations",
    "to_grpc_status",
]

ERROR_DOMAIN = "lienthong"


class LienthongError(Exception):
    """A domain error; ``reason`` (UPPER_SNAKE) and ``metadata`` go out as google.rpc.ErrorInfo."""

    code = grpc.StatusCode.UNKNOWN

    def __init__(
        self, message: str, *, reason: str = "", metadata: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.metadata = dict(metadata or {})


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class InvalidArgument(LienthongError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = list(violations)
        message = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(message or "invalid argument", reason="INVALID_ARGUMENT")


class NotFound(LienthongError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(LienthongError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(LienthongError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(LienthongError):
    code = grpc.StatusCode.UNAUTHENTICATED


class FailedPrecondition(LienthongError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(LienthongError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(LienthongError):
    """The work asked for did not finish within the service's own limit."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class EventError(Exception):
    """A consumed event could not be applied."""


class PoisonEvent(EventError):
    """The event can never be applied (undecodable, wrong type, invalid content)."""


class TransientEventError(EventError):
    """The event may apply later (a dependency is behind); retried with backoff."""


class Violations:
    """Collects field violations so a request reports all of them at once."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def require(self, condition: bool, field: str, description: str) -> bool:
        if not condition:
            self.add(field, description)
        return condition

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(self.items)


def to_grpc_status(error: LienthongError) -> grpc.Status:
    """The rich status (google.rpc.Status with details) for a domain error."""
    details: list[any_pb2.Any] = []
    if isinstance(error, InvalidArgument):
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in error.violations
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad_request)
        details.append(packed)
    if error.reason:
        info = error_details_pb2.ErrorInfo(
            reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata
        )
        packed = any_pb2.Any()
        packed.Pack(info)
        details.append(packed)
    status = status_pb2.Status(
        code=getattr(code_pb2, error.code.name), message=error.message, details=details
    )
    return rpc_status.to_status(status)
