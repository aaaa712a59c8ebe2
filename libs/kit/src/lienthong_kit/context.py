"""Per-call context: the calling unit, in a context variable, and the current trace id.

The server guard (interceptors.py) sets the caller for every RPC and opens its span (see
tracing.py);
the Kafka consumer loop opens a span per event. Handlers read them::

    unit = caller_unit()        # raises Unauthenticated when the call carries no identity
    log.info("submitted")       # the trace id is added to every log line
"""

from __future__ import annotations

from contextvars import ContextVar

from lienthong_kit.errors import Unauthenticated
from lienthong_kit.tracing import current_trace_id

__all__ = ["caller_unit", "current_trace_id", "set_caller"]

_caller: ContextVar[str] = ContextVar("lienthong_caller_unit", default="")


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
