"""Per-call context: the trace id and the calling unit, carried in context variables.

The server interceptor sets both for every RPC; the Kafka consumer loop sets the trace id
from each event's envelope. Handlers read them::

    unit = caller_unit()        # raises Unauthenticated when the call carries no identity
    log.info("submitted")       # the trace id is added to every log line
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar

from lienthong_kit.errors import Unauthenticated

__all__ = ["caller_unit", "current_trace_id", "new_trace_id", "set_caller", "set_trace_id"]

_trace_id: ContextVar[str] = ContextVar("lienthong_trace_id", default="")
_caller: ContextVar[str] = ContextVar("lienthong_caller_unit", default="")


def new_trace_id() -> str:
    return uuid.uuid4().hex


def current_trace_id() -> str:
    return _trace_id.get()


def set_trace_id(trace_id: str) -> None:
    _trace_id.set(trace_id)


def set_caller(unit_code: str) -> None:
    _caller.set(unit_code)


def caller_unit() -> str:
    """The identifier code of the unit making this call (from mTLS or, in dev, a header)."""
    unit = _caller.get()
    if not unit:
        raise Unauthenticated(
            "the call carries no unit identity: present a client certificate"
            " (or the x-lienthong-unit header when dev auth is on)"
        )
    return unit
