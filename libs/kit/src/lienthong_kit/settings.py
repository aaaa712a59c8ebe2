"""Typed settings, read once from environment variables.

A service declares its own settings by extending :class:`KitSettings`::

    @dataclass(frozen=True, kw_only=True)
    class Settings(KitSettings):
        reminder_lead_days: tuple[int, ...] = setting("LIENTHONG_REMINDER_LEAD_DAYS", (3, 1))

    settings = load_settings(Settings)  # SettingsError names every missing or bad variable

Supported field types: ``str``, ``int``, ``float``, ``bool``, ``Path``, ``X | None`` and
``tuple[str, ...]`` / ``tuple[int, ...]`` (comma-separated). Nothing else in the code base
reads ``os.environ``.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["KitSettings", "SettingsError", "describe_settings", "load_settings", "setting"]

S = TypeVar("S", bound="KitSettings")

_REQUIRED = object()
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """Every problem found in the environment, reported at once."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))


def setting(env: str, default: Any = _REQUIRED, *, doc: str = "") -> Any:
    """Declare a settings field read from the environment variable ``env``."""
    metadata = {"env": env, "doc": doc}
    if default is _REQUIRED:
        return field(metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True, kw_only=True)
class KitSettings:
    """What every service reads: ports, Kafka, the store, TLS, logging, shutdown."""

    grpc_host: str = setting(
        "LIENTHONG_GRPC_HOST", "127.0.0.1", doc="address the gRPC server binds"
    )
    grpc_port: int = setting("LIENTHONG_GRPC_PORT", 50051, doc="gRPC port; 0 picks a free one")
    metrics_port: int = setting(
        "LIENTHONG_METRICS_PORT", 9100, doc="Prometheus /metrics port; 0 picks a free one"
    )
    health_port: int = setting(
        "LIENTHONG_HEALTH_PORT", 0, doc="plaintext health-only port when mTLS is on; 0 = none"
    )
    kafka_bootstrap: str = setting(
        "LIENTHONG_KAFKA_BOOTSTRAP",
        "127.0.0.1:9092",
        doc="Kafka bootstrap servers, comma-separated",
    )
    kafka_create_topics: bool = setting(
        "LIENTHONG_KAFKA_CREATE_TOPICS",
        True,
        doc="create missing topics at start (off with Strimzi)",
    )
    kafka_partitions: int = setting(
        "LIENTHONG_KAFKA_PARTITIONS", 3, doc="partitions of topics this service creates"
    )
    kafka_replication_factor: int = setting(
        "LIENTHONG_KAFKA_REPLICATION_FACTOR", 1, doc="replication factor of topics it creates"
    )
    kafka_security_protocol: str = setting(
        "LIENTHONG_KAFKA_SECURITY_PROTOCOL",
        "PLAINTEXT",
        doc="PLAINTEXT, or SSL: TLS to the brokers, with a client certificate when one is set",
    )
    kafka_tls_ca: Path | None = setting(
        "LIENTHONG_KAFKA_TLS_CA", None, doc="CA bundle (PEM) the brokers' certificates chain to"
    )
    kafka_tls_cert: Path | None = setting(
        "LIENTHONG_KAFKA_TLS_CERT",
        None,
        doc="client certificate (PEM): the service's Kafka principal User:CN=<service>",
    )
    kafka_tls_key: Path | None = setting(
        "LIENTHONG_KAFKA_TLS_KEY", None, doc="private key (PEM) of LIENTHONG_KAFKA_TLS_CERT"
    )
    topic_prefix: str = setting("LIENTHONG_TOPIC_PREFIX", "", doc="prefix of every topic and group")
    mongo_url: str = setting(
        "LIENTHONG_MONGO_URL", "mongodb://127.0.0.1:27017", doc="MongoDB or FerretDB connection URL"
    )
    mongo_database_prefix: str = setting(
        "LIENTHONG_MONGO_DATABASE_PREFIX", "lienthong_", doc="database = prefix + service area"
    )
    mongo_max_pool_size: int = setting(
        "LIENTHONG_MONGO_MAX_POOL_SIZE", 10, doc="store connections per service process"
    )
    log_level: str = setting("LIENTHONG_LOG_LEVEL", "info", doc="debug, info, warning or error")
    otlp_endpoint: str = setting(
        "LIENTHONG_OTLP_ENDPOINT",
        "",
        doc="OTLP/gRPC collector for trace spans (http://collector:4317); empty = no export",
    )
    tls_cert: Path | None = setting("LIENTHONG_TLS_CERT", None, doc="server certificate (PEM)")
    tls_key: Path | None = setting("LIENTHONG_TLS_KEY", None, doc="server private key (PEM)")
    tls_client_ca: Path | None = setting(
        "LIENTHONG_TLS_CLIENT_CA", None, doc="CA bundle for client certificates: enables mTLS"
    )
    tls_client_crl: Path | None = setting(
        "LIENTHONG_TLS_CLIENT_CRL",
        None,
        doc="revoked client certificates (PEM CRLs of the client CA); re-read when it changes",
    )
    trust_domain: str = setting(
        "LIENTHONG_TRUST_DOMAIN",
        "lienthong.local",
        doc="the spiffe://<domain>/... URI SANs that name identities (docs/security.md)",
    )
    dev_auth: bool = setting(
        "LIENTHONG_DEV_AUTH",
        False,
        doc="without TLS only: trust the x-lienthong-identity / x-lienthong-unit headers",
    )
    require_registered_units: bool = setting(
        "LIENTHONG_REQUIRE_REGISTERED_UNITS",
        True,
        doc="refuse calls of units that are unknown or closed in the registry",
    )
    dependency_grace_seconds: float = setting(
        "LIENTHONG_DEPENDENCY_GRACE_SECONDS",
        30.0,
        doc="how long the store or Kafka may be unreachable before health says NOT_SERVING",
    )
    shutdown_grace_seconds: float = setting(
        "LIENTHONG_SHUTDOWN_GRACE_SECONDS", 10.0, doc="time in-flight calls get after SIGTERM"
    )
    consumer_max_attempts: int = setting(
        "LIENTHONG_CONSUMER_MAX_ATTEMPTS", 5, doc="tries before an event is dead-lettered"
    )
    consumer_backoff_seconds: float = setting(
        "LIENTHONG_CONSUMER_BACKOFF_SECONDS", 0.2, doc="first retry delay; doubles, with jitter"
    )
    lag_probe_seconds: float = setting(
        "LIENTHONG_LAG_PROBE_SECONDS",
        15.0,
        doc="how often each consumer group's lag is read from the broker (kafka/lag.py)",
    )
    max_message_bytes: int = setting(
        "LIENTHONG_MAX_MESSAGE_BYTES",
        32 * 1024 * 1024,
        doc="largest gRPC message and Kafka request",
    )

    failpoints: tuple[str, ...] = setting(
        "LIENTHONG_FAILPOINTS", (), doc="crash tests only: places where the process dies"
    )

    def validate(self) -> list[str]:
        """Cross-field checks; subclasses extend and call super()."""
        problems = []
        if (self.tls_cert is None) != (self.tls_key is None):
            problems.append("LIENTHONG_TLS_CERT and LIENTHONG_TLS_KEY must be set together")
        if self.dev_auth and self.tls_cert is not None:
            problems.append(
                "LIENTHONG_DEV_AUTH must be off when TLS is configured: its header would let any"
                " caller name any identity"
            )
        if self.tls_client_crl is not None and self.tls_client_ca is None:
            problems.append("LIENTHONG_TLS_CLIENT_CRL needs LIENTHONG_TLS_CLIENT_CA")
        if self.tls_client_ca is not None and self.tls_cert is None:
            problems.append(
                "LIENTHONG_TLS_CLIENT_CA needs LIENTHONG_TLS_CERT and LIENTHONG_TLS_KEY"
            )
        for name in ("tls_cert", "tls_key", "tls_client_ca", "tls_client_crl"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                problems.append(f"LIENTHONG_{name.upper()}: no such file: {path}")
        if self.log_level.lower() not in {"debug", "info", "warning", "error"}:
            problems.append(
                f"LIENTHONG_LOG_LEVEL: {self.log_level!r} is not debug, info, warning or error"
            )
        if self.lag_probe_seconds <= 0:
            problems.append("LIENTHONG_LAG_PROBE_SECONDS: must be positive")
        if self.consumer_max_attempts < 1:
            problems.append("LIENTHONG_CONSUMER_MAX_ATTEMPTS: must be at least 1")
        return problems


def _parse(kind: Any, raw: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):
        inner = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return None if raw == "" else _parse(inner[0], raw)
    if origin is tuple:
        item = typing.get_args(kind)[0]
        return tuple(_parse(item, part.strip()) for part in raw.split(",") if part.strip())
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"{raw!r} is not a boolean (true/false)")
    if kind is int:
        return int(raw)
    if kind is float:
        return float(raw)
    if kind is Path:
        return Path(raw)
    if kind is str:
        return raw
    raise TypeError(f"unsupported settings type {kind!r}")


def load_settings(cls: type[S], environ: Mapping[str, str] | None = None) -> S:
    """Build ``cls`` from the environment, reporting every problem in one SettingsError."""
    env = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    problems: list[str] = []
    for spec in dataclasses.fields(cls):
        name = spec.metadata.get("env")
        if name is None:
            continue
        if name in env:
            try:
                values[spec.name] = _parse(hints[spec.name], env[name])
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
        elif spec.default is dataclasses.MISSING:
            problems.append(f"{name}: required but not set")
    if problems:
        raise SettingsError(problems)
    settings = cls(**values)
    problems = settings.validate()
    if problems:
        raise SettingsError(problems)
    return settings


def describe_settings(cls: type[KitSettings]) -> list[tuple[str, str, str]]:
    """(variable, default, description) for every setting: the source of the docs table."""
    rows = []
    for spec in dataclasses.fields(cls):
        if "env" not in spec.metadata:
            continue
        default = "(required)" if spec.default is dataclasses.MISSING else repr(spec.default)
        rows.append((spec.metadata["env"], default, spec.metadata.get("doc", "")))
    return rows
