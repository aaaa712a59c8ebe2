"""gateway-service's settings: the kit's, plus the HTTP listener, the services it calls as
itself and the package limits (docs/configuration.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lienthong_kit.settings import KitSettings, setting

__all__ = ["Settings"]


@dataclass(frozen=True, kw_only=True)
class Settings(KitSettings):
    gateway_http_host: str = setting(
        "LIENTHONG_GATEWAY_HTTP_HOST", "127.0.0.1", doc="address the HTTP (edXML) server binds"
    )
    gateway_http_port: int = setting(
        "LIENTHONG_GATEWAY_HTTP_PORT", 0, doc="HTTP port; 0 picks a free one (logged)"
    )
    gateway_document_service: str = setting(
        "LIENTHONG_GATEWAY_DOCUMENT_SERVICE", "127.0.0.1:50051", doc="document-service address"
    )
    gateway_routing_service: str = setting(
        "LIENTHONG_GATEWAY_ROUTING_SERVICE", "127.0.0.1:50052", doc="routing-service address"
    )
    gateway_upstream_ca: Path | None = setting(
        "LIENTHONG_GATEWAY_UPSTREAM_CA",
        None,
        doc="CA of the services' server certificates: calls them over mTLS with the client"
        " certificate below",
    )
    gateway_client_cert: Path | None = setting(
        "LIENTHONG_GATEWAY_CLIENT_CERT",
        None,
        doc="the gateway's client certificate (URI SAN service/gateway-service)",
    )
    gateway_client_key: Path | None = setting(
        "LIENTHONG_GATEWAY_CLIENT_KEY", None, doc="the gateway's client key"
    )
    gateway_spool_dir: Path | None = setting(
        "LIENTHONG_GATEWAY_SPOOL_DIR",
        None,
        doc="where packages and attachments in transit are spooled; empty: the system's temp",
    )
    gateway_max_package_bytes: int = setting(
        "LIENTHONG_GATEWAY_MAX_PACKAGE_BYTES", 64 * 1024 * 1024, doc="largest package accepted"
    )
    gateway_call_timeout_seconds: float = setting(
        "LIENTHONG_GATEWAY_CALL_TIMEOUT_SECONDS", 30.0, doc="deadline of each call to a service"
    )

    def validate(self) -> list[str]:
        problems = super().validate()
        client = (self.gateway_upstream_ca, self.gateway_client_cert, self.gateway_client_key)
        if any(value is not None for value in client) and None in client:
            problems.append(
                "LIENTHONG_GATEWAY_UPSTREAM_CA, LIENTHONG_GATEWAY_CLIENT_CERT and"
                " LIENTHONG_GATEWAY_CLIENT_KEY must be set together"
            )
        for name in ("gateway_upstream_ca", "gateway_client_cert", "gateway_client_key"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                problems.append(f"LIENTHONG_{name.upper()}: no such file: {path}")
        if self.gateway_max_package_bytes < 1:
            problems.append("LIENTHONG_GATEWAY_MAX_PACKAGE_BYTES: must be at least 1")
        if self.tls_cert is None and not self.dev_auth:
            problems.append(
                "without LIENTHONG_TLS_CERT (HTTPS with client certificates) the gateway can"
                " identify callers only in development: set LIENTHONG_DEV_AUTH=true"
            )
        if self.tls_cert is not None and self.tls_client_ca is None:
            problems.append(
                "LIENTHONG_TLS_CLIENT_CA is required: callers are identified by"
                " their client certificates"
            )
        return problems
