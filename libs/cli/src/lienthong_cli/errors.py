"""Exit codes, and gRPC errors made readable: the one place a status code becomes an exit code.

=====  ===========================================================================
code   meaning
=====  ===========================================================================
0      done
1      refused or failed: the platform said no (INVALID_ARGUMENT, FAILED_PRECONDITION,
       ALREADY_EXISTS, ABORTED, OUT_OF_RANGE), a file with bad rows, a signature rejected
2      usage: the command line is wrong (unknown option, missing argument, bad profile)
3      unavailable: no connection, deadline exceeded, overloaded (UNAVAILABLE,
       DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, CANCELLED): retrying later may help
4      not found (NOT_FOUND)
5      not allowed (PERMISSION_DENIED, UNAUTHENTICATED): wrong unit or certificate
6      the platform failed (INTERNAL, UNKNOWN, DATA_LOSS, UNIMPLEMENTED)
130    interrupted (Ctrl-C)
=====  ===========================================================================
"""

from __future__ import annotations

from enum import IntEnum

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

__all__ = ["CliError", "ExitCode", "describe_rpc_error", "exit_code_for"]


class ExitCode(IntEnum):
    OK = 0
    REFUSED = 1
    USAGE = 2
    UNAVAILABLE = 3
    NOT_FOUND = 4
    NOT_ALLOWED = 5
    PLATFORM_FAILED = 6
    INTERRUPTED = 130


_BY_STATUS = {
    grpc.StatusCode.OK: ExitCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT: ExitCode.REFUSED,
    grpc.StatusCode.FAILED_PRECONDITION: ExitCode.REFUSED,
    grpc.StatusCode.ALREADY_EXISTS: ExitCode.REFUSED,
    grpc.StatusCode.ABORTED: ExitCode.REFUSED,
    grpc.StatusCode.OUT_OF_RANGE: ExitCode.REFUSED,
    grpc.StatusCode.UNAVAILABLE: ExitCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: ExitCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ExitCode.UNAVAILABLE,
    grpc.StatusCode.CANCELLED: ExitCode.UNAVAILABLE,
    grpc.StatusCode.NOT_FOUND: ExitCode.NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED: ExitCode.NOT_ALLOWED,
    grpc.StatusCode.UNAUTHENTICATED: ExitCode.NOT_ALLOWED,
    grpc.StatusCode.INTERNAL: ExitCode.PLATFORM_FAILED,
    grpc.StatusCode.UNKNOWN: ExitCode.PLATFORM_FAILED,
    grpc.StatusCode.DATA_LOSS: ExitCode.PLATFORM_FAILED,
    grpc.StatusCode.UNIMPLEMENTED: ExitCode.PLATFORM_FAILED,
}


class CliError(Exception):
    """A failure the command explains itself (lines to print, and its exit code)."""

    def __init__(self, lines: list[str] | str, code: ExitCode = ExitCode.REFUSED) -> None:
        self.lines = [lines] if isinstance(lines, str) else lines
        self.code = code
        super().__init__("; ".join(self.lines))


def exit_code_for(status: grpc.StatusCode) -> ExitCode:
    return _BY_STATUS.get(status, ExitCode.PLATFORM_FAILED)


def field_violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    """The google.rpc.BadRequest field violations of an error, (field, description)."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    out: list[tuple[str, str]] = []
    for detail in status.details if status else ():
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            out.extend((v.field, v.description) for v in bad_request.field_violations)
    return out


def describe_rpc_error(error: grpc.RpcError, service: str = "") -> list[str]:
    """Readable lines: the status and message, then each field violation and ErrorInfo."""
    code: grpc.StatusCode = error.code()
    message: str = error.details() or ""
    where = f" ({service})" if service else ""
    lines = [f"{code.name}{where}: {message}"]
    if code == grpc.StatusCode.UNAVAILABLE:
        lines.append("  is the service running and the endpoint right? (lienthong profile show)")
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status else ():
        bad_request = error_details_pb2.BadRequest()
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(bad_request):
            lines.extend(f"  {v.field}: {v.description}" for v in bad_request.field_violations)
        elif detail.Unpack(info):
            extra = ", ".join(f"{k}={v}" for k, v in sorted(info.metadata.items()))
            lines.append(f"  {info.reason}" + (f" ({extra})" if extra else ""))
    return lines
