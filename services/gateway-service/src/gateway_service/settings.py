"""gateway-service's settings: the kit's, plus the HTTP listener, the services it calls as
itself, the package limits and the bridge to the national axis (docs/configuration.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lienthong_kit.codes import unit_code_problem
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

    axis_url: str = setting(
        "LIENTHONG_AXIS_URL",
        "",
        doc="the national axis (HTTP transport; the sandbox of `make run`); empty: no bridge",
    )
    axis_hub_code: str = setting(
        "LIENTHONG_AXIS_HUB_CODE",
        "",
        doc="the province's code at the axis (e.g. 000.00.00.H23): the hop written in"
        " TraceHeaderList; its level-1 part (H23) names the hub whose packages are pulled",
    )
    axis_poll_seconds: float = setting(
        "LIENTHONG_AXIS_POLL_SECONDS", 5.0, doc="how often the bridge pulls packages and statuses"
    )
    axis_timeout_seconds: float = setting(
        "LIENTHONG_AXIS_TIMEOUT_SECONDS", 30.0, doc="deadline of each call to the axis"
    )

    @property
    def axis_hub(self) -> str:
        """The level-1 part of the hub code (rightmost), e.g. ``H23``."""
        return self.axis_hub_code.rpartition(".")[2]

    def validate(self) -> list[str]:
        problems = super().validate()
        if self.axis_url and not self.axis_url.startswith(("http://", "https://")):
            problems.append("LIENTHONG_AXIS_URL: must be an http:// or https:// URL")
        if self.axis_url and unit_code_problem(self.axis_hub_code):
            problems.append(
                "LIENTHONG_AXIS_HUB_CODE: the province's code at the axis is required with"
                f" LIENTHONG_AXIS_URL ({unit_code_problem(self.axis_hub_code)})"
            )
        if self.axis_poll_seconds <= 0 or self.axis_timeout_seconds <= 0:
            problems.append(
                "LIENTHONG_AXIS_POLL_SECONDS and LIENTHONG_AXIS_TIMEOUT_SECONDS: must be positive"
            )
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
