"""Identity, trace, logging, metrics and error mapping around every RPC of a service.

Every method handler is wrapped once, when it is added to the server (:class:`GuardedServer`),
not by a ``grpc.aio`` interceptor: an interceptor runs a chain of coroutines on every call
(docs/benchmarks.md, "Session 10"). Around each call:

1. the call runs in a span continuing the caller's trace (W3C ``traceparent`` metadata; a
   legacy ``x-trace-id`` of 32 hex digits is continued too) or starting a new one;
2. the gatekeeper (gatekeeper.py) admits the caller: its identity from the client
   certificate's URI SAN (or, in dev mode without TLS, a header), the service's access rule
   for the method, the unit open in the registry; refusals are UNAUTHENTICATED or
   PERMISSION_DENIED saying why;
3. a :class:`~lienthong_kit.errors.LienthongError` becomes its gRPC status with
   ``google.rpc`` details (BadRequest field violations, ErrorInfo); the store or broker
   unreachable becomes UNAVAILABLE (retryable); any other exception becomes
   INTERNAL with the trace id, and is logged with its traceback;
4. ``lienthong_rpc_handled_total`` and ``lienthong_rpc_duration_seconds`` are recorded.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Iterable, Mapping
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import grpc
from grpc import aio

from lienthong_kit.authz import set_identity
from lienthong_kit.context import set_caller
from lienthong_kit.errors import LienthongError, to_grpc_status
from lienthong_kit.gatekeeper import UNIT_HEADER, Gatekeeper
from lienthong_kit.infra import is_infra_error
from lienthong_kit.logs import get_logger
from lienthong_kit.metrics import RPC_DURATION, RPC_HANDLED
from lienthong_kit.requests import refuse_nul_characters
from lienthong_kit.tracing import (
    LEGACY_TRACE_HEADER,
    SpanKind,
    context_from_metadata,
    current_trace_id,
    span,
)

__all__ = ["TRACE_HEADER", "UNIT_HEADER", "GuardedServer", "ServerGuard"]

#: Deprecated: send :func:`lienthong_kit.tracing.outgoing_metadata` instead.
TRACE_HEADER = LEGACY_TRACE_HEADER

log = get_logger(__name__)


class ServerGuard:
    """Wraps method handlers in the per-call steps of the module docstring."""

    def __init__(self, gate: Gatekeeper) -> None:
        self._gate = gate
        self._handled: dict[tuple[str, grpc.StatusCode], Any] = {}
        self._durations: dict[str, Any] = {}

    def wrap(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """``handler`` (of the full method name ``method``) with the guard around each call."""
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(method, handler.stream_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            self._wrap_stream(method, handler.stream_stream),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    # One flat try per call, not nested context managers: this runs on every RPC.
    def _wrap_unary(self, method: str, behaviour: Any) -> Any:
        async def unary(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
            metadata = dict(context.invocation_metadata() or ())
            with span(method, context=context_from_metadata(metadata), kind=SpanKind.SERVER):
                started = time.perf_counter()
                code = grpc.StatusCode.OK
                try:
                    self._admit(method, context, metadata)
                    refuse_nul_characters(request)
                    return await behaviour(request, context)
                except BaseException as exc:
                    code = _code_of(exc, context)
                    await self._answer(method, context, exc)
                    raise
                finally:
                    self._record(method, code, started)

        return unary

    def _wrap_stream(self, method: str, behaviour: Any) -> Any:
        if not inspect.isasyncgenfunction(behaviour):
            # A coroutine that answers with context.write() (e.g. the health service's Watch).
            return self._wrap_unary(method, behaviour)

        # a stream is answered by writes from one coroutine: one wrapper for both kinds
        async def written(request: Any, context: aio.ServicerContext[Any, Any]) -> None:
            async with aclosing(behaviour(request, context)) as responses:
                async for response in responses:
                    await context.write(response)

        return self._wrap_unary(method, written)

    def _admit(
        self, method: str, context: aio.ServicerContext[Any, Any], metadata: dict[str, Any]
    ) -> None:
        identity = self._gate.admit(method, context, metadata)
        set_identity(identity)
        set_caller((identity.unit_code or "") if identity is not None else "")

    async def _answer(
        self, method: str, context: aio.ServicerContext[Any, Any], exc: BaseException
    ) -> None:
        """Abort the call with ``exc``'s status (raising AbortError): a refusal with its
        details, an unreachable store or broker as UNAVAILABLE, anything unexpected as INTERNAL
        with the trace id; return for an abort, a cancellation or a generator's close."""
        if isinstance(exc, LienthongError):
            status = to_grpc_status(exc)
            log.info("rpc_refused", method=method, code=exc.code.name, reason=exc.message)
            await context.abort(status.code, status.details, status.trailing_metadata)
        if not isinstance(exc, Exception) or isinstance(exc, aio.AbortError):
            return
        trace_id = current_trace_id()
        if is_infra_error(exc):
            log.warning("rpc_infrastructure_unavailable", method=method, error=repr(exc))
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"the store or the broker is unreachable; retry (trace id {trace_id})",
            )
        log.exception("rpc_failed", method=method)
        await context.abort(
            grpc.StatusCode.INTERNAL, f"internal error; quote trace id {trace_id} to support"
        )

    def _record(self, method: str, code: grpc.StatusCode, started: float) -> None:
        handled = self._handled.get((method, code))
        if handled is None:
            handled = self._handled[method, code] = RPC_HANDLED.labels(method, code.name)
        handled.inc()
        duration = self._durations.get(method)
        if duration is None:
            duration = self._durations[method] = RPC_DURATION.labels(method)
        duration.observe(time.perf_counter() - started)


def _code_of(exc: BaseException, context: aio.ServicerContext[Any, Any]) -> grpc.StatusCode:
    """The status code a call that raised ``exc`` ends with (what :meth:`_answer` sends)."""
    if isinstance(exc, LienthongError):
        return exc.code
    if isinstance(exc, aio.AbortError):
        code = context.code()
        return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN
    if isinstance(exc, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    if not isinstance(exc, Exception):
        return grpc.StatusCode.OK  # a stream closed by its reader (GeneratorExit)
    return grpc.StatusCode.UNAVAILABLE if is_infra_error(exc) else grpc.StatusCode.INTERNAL


if TYPE_CHECKING:  # the stubs make it generic; the runtime class is not subscriptable
    _Generic = grpc.GenericRpcHandler[Any, Any]
else:
    _Generic = grpc.GenericRpcHandler


class _GuardedGeneric(_Generic):
    """A generic handler whose method handlers come out wrapped (each one once)."""

    def __init__(self, inner: _Generic, guard: ServerGuard) -> None:
        self._inner = inner
        self._guard = guard
        # method -> (the handler the inner one gave, its wrapped twin)
        self._wrapped: dict[str, tuple[Any, grpc.RpcMethodHandler[Any, Any]]] = {}

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = self._inner.service(handler_call_details)
        if handler is None:  # not this service's method: the next handler, or UNIMPLEMENTED
            return None
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._guard.wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped


class GuardedServer(aio.Server):
    """A ``grpc.aio`` server as the generated ``add_*_to_server`` functions see it: every
    handler they add is wrapped by the guard; the rest is the server's own."""

    def __init__(self, server: aio.Server, guard: ServerGuard) -> None:
        self._server = server
        self._guard = guard

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Iterable[_Generic]) -> None:
        self._server.add_generic_rpc_handlers(
            [_GuardedGeneric(handler, self._guard) for handler in generic_rpc_handlers]
        )

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, Any]
    ) -> None:
        self._server.add_registered_method_handlers(  # type: ignore[attr-defined]
            service_name,
            {
                name: self._guard.wrap(f"/{service_name}/{name}", handler)
                for name, handler in method_handlers.items()
            },
        )

    def add_insecure_port(self, address: str) -> int:
        return self._server.add_insecure_port(address)

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        return self._server.add_secure_port(address, server_credentials)

    async def start(self) -> None:
        await self._server.start()

    async def stop(self, grace: float | None = None) -> None:
        await self._server.stop(grace)

    async def wait_for_termination(self, timeout: float | None = None) -> bool:
        return await self._server.wait_for_termination(timeout)
