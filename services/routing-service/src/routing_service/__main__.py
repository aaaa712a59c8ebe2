"""routing-service: the unit registry and the fan-out of documents to their recipients.

python -m routing_service
"""

from __future__ import annotations

from lienthong.routing.v1 import routing_service_pb2
from lienthong.routing.v1.routing_service_pb2_grpc import add_RoutingServiceServicer_to_server
from lienthong_kit.kafka import ConsumerSpec
from lienthong_kit.server import Deps, GrpcService, Wiring, run_service
from lienthong_kit.settings import KitSettings
from routing_service.registry import Registry
from routing_service.service import FanOut, RoutingServicer

NAME = "routing-service"


async def build(deps: Deps[KitSettings]) -> Wiring:
    registry = Registry(deps.db, deps.producer, deps.topics, deps.settings)
    # The whole registry is in memory before the first verified document is routed.
    await registry.load()
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
        # Documents on different partitions of the verifications topic are routed side by
        # side (each partition still in order, commit-after-effect untouched): a fan-out
        # waits for the broker's acknowledgement and two store round trips per document.
        # One member applying partitions concurrently, not one member per partition: three
        # members joining at once were seen to leave a partition unread for 300 s.
        consumers=[
            ConsumerSpec(
                NAME,
                [deps.topics.verifications],
                fan_out.on_verified,
                concurrent_partitions=True,
            )
        ],
        tasks=[registry.follow, registry.resync],
    )


def main() -> None:
    run_service(NAME, KitSettings, build)


if __name__ == "__main__":
    main()
