"""The HTTP server: uvicorn on a socket bound at build time, HTTPS with client certificates
when the kit's TLS settings are given.

uvicorn does not fill the ASGI TLS extension, so :class:`PeerCertH11Protocol` adds
``scope["extensions"]["tls"]`` (``client_cert_chain``: the verified client certificate, PEM)
from the connection's SSL object. Client certificates are requested, verified against
LIENTHONG_TLS_CLIENT_CA, but optional at the handshake, so a caller without one gets a 401
problem that says what is missing instead of a bare TLS alert.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from gateway_service.settings import Settings
from lienthong_kit.logs import get_logger

__all__ = ["HttpServer", "PeerCertH11Protocol"]

log = get_logger(__name__)


class PeerCertH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with the ASGI TLS extension for each request's scope."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return
        der = ssl_object.getpeercert(binary_form=True)
        chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
        tls = {
            "server_cert": None,
            "client_cert_chain": chain,
            "client_cert_name": None,
            "client_cert_error": None,
            "tls_version": None,
            "cipher_suite": None,
        }
        app = self.app

        async def with_tls(scope: Any, receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})["tls"] = tls
            await app(scope, receive, send)

        self.app = with_tls


class HttpServer:
    """Serve ``app`` until cancelled; then stop accepting and let requests in flight finish."""

    def __init__(self, app: Any, settings: Settings) -> None:
        tls = settings.tls_cert is not None
        self.config = uvicorn.Config(
            app,
            http=PeerCertH11Protocol,
            lifespan="off",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) or 1,
            ssl_certfile=str(settings.tls_cert) if tls else None,
            ssl_keyfile=str(settings.tls_key) if tls else None,
            ssl_ca_certs=str(settings.tls_client_ca) if settings.tls_client_ca else None,
            ssl_cert_reqs=ssl.CERT_OPTIONAL if settings.tls_client_ca else ssl.CERT_NONE,
        )
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((settings.gateway_http_host, settings.gateway_http_port))
        # listening from now on: connections made before the server task runs wait in the backlog
        self.socket.listen(self.config.backlog)
        self.port = int(self.socket.getsockname()[1])
        self.scheme = "https" if tls else "http"
        self._server = uvicorn.Server(self.config)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.socket.getsockname()[0]}:{self.port}"

    async def run(self) -> None:
        log.info("http_serving", url=self.url)
        serving = asyncio.ensure_future(self._server.serve(sockets=[self.socket]))
        try:
            await asyncio.shield(serving)
        except asyncio.CancelledError:
            self._server.should_exit = True
            await serving
            raise

    async def close(self) -> None:
        self.socket.close()
