"""gateway-service: edXML packages over HTTP for the e-office software agencies run.

python -m gateway_service        (configuration: LIENTHONG_* variables, docs/configuration.md)

It owns no data: every operation is a call to document-service or routing-service, made as
the gateway on behalf of the calling unit. The kit's gRPC server carries only health and
reflection; the HTTP server is a background task of the service.
"""

from __future__ import annotations

from gateway_service.api import create_app
from gateway_service.http_server import HttpServer
from gateway_service.settings import Settings
from gateway_service.upstream import Upstream
from lienthong_kit.server import Deps, Wiring, run_service

__all__ = ["NAME", "Settings", "build", "main"]

NAME = "gateway-service"


async def build(deps: Deps[Settings]) -> Wiring:
    upstream = Upstream(deps.settings)
    server = HttpServer(create_app(upstream, deps.settings), deps.settings)
    deps.extra["http"] = server
    return Wiring(
        services=[],
        tasks=[server.run],
        on_stop=[server.close, upstream.close],
    )


def main() -> None:
    run_service(NAME, Settings, build)


if __name__ == "__main__":
    main()
