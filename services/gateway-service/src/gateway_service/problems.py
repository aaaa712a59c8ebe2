"""Errors as problem details (RFC 9457, ``application/problem+json``).

Every refusal names what is wrong: the doctor's problems (XPath, code, Vietnamese and English
reasons) for a bad package, the field violations of a service's INVALID_ARGUMENT
(google.rpc.BadRequest), the reason of its ErrorInfo. A service's failure is a 502/503/504,
never a 500 for bad input.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from starlette.responses import JSONResponse

from lienthong_edxml import Problem

__all__ = ["PROBLEM_TYPE", "ApiProblem", "from_rpc_error", "problem_response"]

PROBLEM_TYPE = "https://lienthong.gov.vn/problems/"
MEDIA_TYPE = "application/problem+json"

# gRPC status -> HTTP status: what the caller can do about it decides the class.
_HTTP = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    # the gateway's own credentials or the service: not the caller's fault
    grpc.StatusCode.UNAUTHENTICATED: 502,
}


class ApiProblem(Exception):
    """A refusal the handlers raise; the app turns it into a problem response."""

    def __init__(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str,
        *,
        problems: Sequence[Problem] = (),
        violations: Iterable[dict[str, str]] = (),
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.problems = list(problems)
        self.violations = list(violations)
        self.extra = extra or {}

    def body(self, instance: str = "") -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE + self.kind,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.problems:
            body["problems"] = [found.as_dict() for found in self.problems]
        if self.violations:
            body["violations"] = self.violations
        body.update(self.extra)
        return body


def problem_response(problem: ApiProblem, instance: str = "") -> JSONResponse:
    return JSONResponse(problem.body(instance), problem.status, media_type=MEDIA_TYPE)


def _details(error: grpc.RpcError) -> tuple[list[dict[str, str]], str]:
    """The BadRequest field violations and the ErrorInfo reason the service attached."""
    metadata = getattr(error, "trailing_metadata", lambda: None)() or ()
    violations: list[dict[str, str]] = []
    reason = ""
    for key, value in metadata:
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            bad = error_details_pb2.BadRequest()
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(bad):
                violations += [
                    {"field": item.field, "description": item.description}
                    for item in bad.field_violations
                ]
            elif detail.Unpack(info):
                reason = info.reason
    return violations, reason


def from_rpc_error(error: grpc.RpcError, service: str, *, field_prefix: str = "") -> ApiProblem:
    """The problem for a failed call; ``field_prefix`` places the violations in the package
    (``attachments[1].`` for the second attachment's upload)."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = error.details() if hasattr(error, "details") else str(error)
    violations, reason = _details(error)
    for violation in violations:
        violation["field"] = field_prefix + violation["field"]
    if field_prefix and violations:
        message = "; ".join(f"{v['field']}: {v['description']}" for v in violations)
    status = _HTTP.get(code, 502)
    kind = reason.lower().replace("_", "-") if reason else code.name.lower().replace("_", "-")
    title = f"{service}: {code.name}"
    extra = {"grpc_status": code.name}
    if reason:
        extra["reason"] = reason
    return ApiProblem(status, kind, title, message or code.name, violations=violations, extra=extra)
