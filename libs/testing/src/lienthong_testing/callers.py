"""Who a test calls as, in development mode (no TLS): the metadata naming each kind of
identity (docs/security.md), and a channel interceptor that names one by default."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import grpc
from grpc import aio

from lienthong_kit.authz import AccessTable, units

__all__ = [
    "OBSERVER",
    "REGISTRY_ADMIN",
    "TRUST_ADMIN",
    "as_identity",
    "as_service",
    "as_unit",
    "default_identity",
    "open_to_units",
    "with_default_identity",
]

IDENTITY_HEADER = "x-lienthong-identity"
Metadata = tuple[tuple[str, str], ...]


def as_identity(identity: str) -> Metadata:
    return ((IDENTITY_HEADER, identity),)


def as_unit(code: str) -> Metadata:
    return as_identity(f"unit/{code}")


def as_service(name: str) -> Metadata:
    return as_identity(f"service/{name}")


REGISTRY_ADMIN = as_identity("operator/registry-admin/test-admin")
TRUST_ADMIN = as_identity("operator/trust-admin/test-admin")
OBSERVER = as_identity("operator/observer/test-observer")


def _with_default(details: Any, default: Metadata) -> Any:
    metadata = aio.Metadata(*(details.metadata or ()))
    if IDENTITY_HEADER not in metadata and "x-lienthong-unit" not in metadata:
        for key, value in default:
            metadata.add(key, value)
    return details._replace(metadata=metadata)


class _UnaryUnary(aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    def __init__(self, default: Metadata) -> None:
        self._default = default

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(_with_default(client_call_details, self._default), request)


class _UnaryStream(aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    def __init__(self, default: Metadata) -> None:
        self._default = default

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(_with_default(client_call_details, self._default), request)


class _StreamUnary(aio.StreamUnaryClientInterceptor):  # type: ignore[type-arg]
    def __init__(self, default: Metadata) -> None:
        self._default = default

    async def intercept_stream_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(
            _with_default(client_call_details, self._default), request_iterator
        )


def default_identity(default: Metadata) -> list[Any]:
    """Channel interceptors adding ``default`` to every call that names no identity of its
    own (grpc takes one interceptor object per kind of call)."""
    return [_UnaryUnary(default), _UnaryStream(default), _StreamUnary(default)]


def open_to_units(module: ModuleType, service: str) -> AccessTable:
    """An access table letting any unit call every RPC of ``service`` (kit tests' probes)."""
    methods = module.DESCRIPTOR.services_by_name[service].methods
    return AccessTable.of(module, service, {method.name: units() for method in methods})


class _SyncDefault(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[type-arg]
):
    def __init__(self, default: Metadata) -> None:
        self._default = default

    def _details(self, details: Any) -> Any:
        metadata = list(details.metadata or ())
        names = {key for key, _ in metadata}
        if IDENTITY_HEADER not in names and "x-lienthong-unit" not in names:
            metadata.extend(self._default)
        return details._replace(metadata=metadata)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


def with_default_identity(channel: grpc.Channel, default: Metadata) -> grpc.Channel:
    """A blocking channel whose calls name ``default`` unless they name a caller."""
    return grpc.intercept_channel(channel, _SyncDefault(default))
