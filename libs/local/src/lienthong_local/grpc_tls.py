"""Mutual TLS on every gRPC port of the local platform (``make run-secure``, the secure e2e
tests): one CA, a server certificate per service, the client certificates the services call
one another with, and the callers' (a unit, operators), made once under one folder.

    tls = GrpcTls.open(Path("deploy/local/.data/grpc-tls"))
    tls.service_env("signature-service")   # its server certificate, the client CA, dev auth
                                           # off, its client certificate for the fetch
    tls.credentials("unit/000.00.00.H23")  # a caller's channel credentials

Keys are generated here, on this machine, and never committed; a certificate is re-issued
when it would expire within a day (the CA too, and then every certificate with it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from lienthong_testing.identities import IdentityCa, Issued

__all__ = ["CALLERS", "TRUST_DOMAIN", "GrpcTls"]

#: the kit's default LIENTHONG_TRUST_DOMAIN
TRUST_DOMAIN = "lienthong.local"

#: the callers make run-secure prints examples for (the sample registry's province and a
#: department under it, an observer, the registry administrator that loads the registry)
CALLERS = (
    "unit/000.00.00.H23",
    "unit/000.01.00.H23",
    "operator/observer/make-run",
    "operator/registry-admin/make-run",
)

# who each service calls others as (its client certificate's identity)
_CLIENTS = {
    "signature-service": "service/signature-service",
    "gateway-service": "service/gateway-service",
}


@dataclass(frozen=True)
class GrpcTls:
    ca: IdentityCa

    @classmethod
    def open(cls, folder: Path, *, trust_domain: str = TRUST_DOMAIN) -> GrpcTls:
        return cls(IdentityCa.open(folder, trust_domain=trust_domain))

    @property
    def folder(self) -> Path:
        return self.ca.folder

    @property
    def ca_path(self) -> Path:
        return self.ca.ca_path

    def _current(self, stem: str) -> Issued | None:
        cert_path, key_path = self.folder / f"{stem}.pem", self.folder / f"{stem}.key"
        if not (cert_path.is_file() and key_path.is_file()):
            return None
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        try:
            cert.verify_directly_issued_by(self.ca.cert)
        except (ValueError, TypeError, InvalidSignature):  # an older CA's: issue again
            return None
        if cert.not_valid_after_utc < datetime.now(UTC) + timedelta(days=1):
            return None
        return Issued(cert_path, key_path, cert.serial_number, cert.not_valid_after_utc)

    def server(self, service: str) -> Issued:
        return self._current(f"server-{service}") or self.ca.server(service)

    def client(self, identity: str) -> Issued:
        """The client certificate naming ``identity`` (``unit/<code>``, ``service/<name>``,
        ``operator/<role>/<name>``)."""
        stem = "client-" + identity.replace("/", "_")
        return self._current(stem) or self.ca.client(identity)

    def credentials(self, identity: str) -> grpc.ChannelCredentials:
        client = self.client(identity)
        return grpc.ssl_channel_credentials(self.ca_path.read_bytes(), client.key, client.cert)

    def prepare(self, services: tuple[str, ...]) -> None:
        """Every certificate the services and CALLERS need, made now (not while starting)."""
        for service in services:
            self.server(service)
            if service in _CLIENTS:
                self.client(_CLIENTS[service])
        for identity in CALLERS:
            self.client(identity)

    def service_env(self, service: str) -> dict[str, str]:
        """``service``'s settings: mTLS on its gRPC port (and the gateway's HTTPS), dev auth
        off, and the client certificate it calls the other services with."""
        server = self.server(service)
        env = {
            "LIENTHONG_TLS_CERT": str(server.cert_path),
            "LIENTHONG_TLS_KEY": str(server.key_path),
            "LIENTHONG_TLS_CLIENT_CA": str(self.ca_path),
            "LIENTHONG_TRUST_DOMAIN": self.ca.trust_domain,
            "LIENTHONG_DEV_AUTH": "false",
        }
        if service == "signature-service":
            client = self.client(_CLIENTS[service])
            env |= {
                "LIENTHONG_SIGNATURE_DOCUMENT_SERVICE_CA": str(self.ca_path),
                "LIENTHONG_SIGNATURE_CLIENT_CERT": str(client.cert_path),
                "LIENTHONG_SIGNATURE_CLIENT_KEY": str(client.key_path),
            }
        if service == "gateway-service":
            client = self.client(_CLIENTS[service])
            env |= {
                "LIENTHONG_GATEWAY_UPSTREAM_CA": str(self.ca_path),
                "LIENTHONG_GATEWAY_CLIENT_CERT": str(client.cert_path),
                "LIENTHONG_GATEWAY_CLIENT_KEY": str(client.key_path),
            }
        return env

    def files(self, identity: str, root: Path | None = None) -> tuple[str, str, str]:
        """The CA, ``identity``'s certificate and key, as paths relative to ``root``."""
        client = self.client(identity)

        def shown(path: Path) -> str:
            if root is not None and path.is_relative_to(root):
                return str(path.relative_to(root))
            return str(path)

        return shown(self.ca_path), shown(client.cert_path), shown(client.key_path)

    def grpcurl(self, identity: str, root: Path | None = None) -> str:
        """``grpcurl``'s options to call as ``identity``."""
        ca, cert, key = self.files(identity, root)
        return f"-cacert {ca} -cert {cert} -key {key}"

    def curl(self, identity: str, root: Path | None = None) -> str:
        """``curl``'s options to call the gateway's HTTPS as ``identity``."""
        ca, cert, key = self.files(identity, root)
        return f"--cacert {ca} --cert {cert} --key {key}"
