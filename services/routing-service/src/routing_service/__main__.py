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
        # One consumer per partition of the verifications topic (in one group): documents
        # on different partitions are routed concurrently, each partition still in order,
        # and the loop's commit-after-effect guarantee is untouched. The kit loop handles one
        # record at a time, and a fan-out waits for the broker's acknowledgement and two
        # store round trips per document: with one loop the fan-out benchmark reaches about
        # a third of raw produce, with three over a half. The price: each extra member's
        # join is a group rebalance (about 3 s each at start-up on the local broker).
        consumers=[
            ConsumerSpec(NAME, [deps.topics.verifications], fan_out.on_verified)
            for _ in range(max(1, deps.settings.kafka_partitions))
        ],
        tasks=[registry.follow, registry.resync],
    )


def main() -> None:
    run_service(NAME, load_settings(KitSettings), build)


if __name__ == "__main__":
    main()
