"""routing-service: the unit registry and the fan-out of documents to their recipients.

python -m routing_service
"""

from __future__ import annotations

from lienthong.routing.v1 import routing_service_pb2
from lienthong.routing.v1.routing_service_pb2_grpc import add_RoutingServiceServicer_to_server
from lienthong_kit.kafka import ConsumerSpec
from lienthong_kit.server import Deps, GrpcService, Wiring, run_service
from lienthong_kit.settings import KitSettings, load_settings
from routing_service.registry import Registry
from routing_service.service import FanOut, RoutingServicer

NAME = "routing-service"


async def build(deps: Deps) -> Wiring:
    registry = Registry(deps.db)
    await registry.create_indexes()
    fan_out = FanOut(registry, deps.producer, deps.topics)
    return Wiring(
        services=[
            GrpcService.of(
                routing_service_pb2,
                "RoutingService",
                add_RoutingServiceServicer_to_server,
                RoutingServicer(registry),
            )
        ],
        consumers=[ConsumerSpec(NAME, [deps.topics.verifications], fan_out.on_verified)],
    )


def main() -> None:
    run_service(NAME, load_settings(KitSettings), build)


if __name__ == "__main__":
    main()
