"""gateway-service: edXML packages over HTTP for the e-office software agencies run, and the
bridge to the national document axis.

python -m gateway_service        (configuration: LIENTHONG_* variables, docs/configuration.md)

It owns no data: every operation is a call to document-service or routing-service, made as
the gateway on behalf of the calling unit. The kit's gRPC server carries only health and
reflection; the HTTP server is a background task of the service. With LIENTHONG_AXIS_URL set,
the axis bridge consumes the deliveries (group ``gateway-service-axis``) and pulls from the
axis in the background (bridge.py; why here: docs/decisions/0720-axis-bridge-in-the-gateway.md).
"""

from __future__ import annotations

from gateway_service.api import create_app
from gateway_service.axis import HttpAxis
from gateway_service.bridge import AxisBridge
from gateway_service.consumers import AxisDeliveries
from gateway_service.http_server import HttpServer
from gateway_service.settings import Settings
from gateway_service.upstream import Upstream
from lienthong_kit.kafka import ConsumerSpec
from lienthong_kit.server import Deps, Wiring, run_service

__all__ = ["AXIS_GROUP", "NAME", "Settings", "build", "main"]

NAME = "gateway-service"
AXIS_GROUP = "gateway-service-axis"


async def build(deps: Deps[Settings]) -> Wiring:
    settings = deps.settings
    upstream = Upstream(settings)
    server = HttpServer(create_app(upstream, settings), settings)
    deps.extra["http"] = server
    consumers: list[ConsumerSpec] = []
    tasks = [server.run]
    on_stop = [server.close, upstream.close]
    if settings.axis_url:
        axis = HttpAxis(settings.axis_url, timeout=settings.axis_timeout_seconds)
        bridge = AxisBridge(upstream, axis, settings)
        deps.extra["bridge"] = bridge
        consumers.append(
            ConsumerSpec(AXIS_GROUP, deps.topics.all_deliveries, AxisDeliveries(bridge).on_delivery)
        )
        tasks.append(bridge.run)
        on_stop.append(bridge.close)
    return Wiring(services=[], consumers=consumers, tasks=tasks, on_stop=on_stop)


def main() -> None:
    run_service(NAME, Settings, build)


if __name__ == "__main__":
    main()
