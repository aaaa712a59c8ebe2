"""Settings of a service under test: the real infrastructure, a namespace of its own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from lienthong_kit.settings import KitSettings, load_settings

__all__ = ["isolated_env", "isolated_settings"]

S = TypeVar("S", bound=KitSettings)


def isolated_env(prefix: str) -> dict[str, str]:
    """The environment of a service under test: free ports, its own topics and databases,
    dev auth, fast retries."""
    return {
        "LIENTHONG_GRPC_PORT": "0",
        "LIENTHONG_METRICS_PORT": "0",
        "LIENTHONG_TOPIC_PREFIX": prefix,
        "LIENTHONG_MONGO_DATABASE_PREFIX": f"{prefix}lienthong_",
        "LIENTHONG_DEV_AUTH": "true",
        # a service tested alone has no registry to check callers against; the e2e tests do
        "LIENTHONG_REQUIRE_REGISTERED_UNITS": "false",
        "LIENTHONG_SHUTDOWN_GRACE_SECONDS": "5",
        "LIENTHONG_CONSUMER_BACKOFF_SECONDS": "0.01",
        "LIENTHONG_CONSUMER_MAX_ATTEMPTS": "3",
    }


def isolated_settings(
    settings_type: type[S], prefix: str, overrides: Mapping[str, str] | None = None
) -> S:
    """``settings_type`` read from :func:`isolated_env` plus ``overrides`` (variable names)."""
    return load_settings(settings_type, {**isolated_env(prefix), **(overrides or {})})
