"""routing-service: the unit registry and the fan-out of documents to their recipients.

python -m routing_service
"""

from __future__ import annotations

from lienthong.routing.v1 import routing_service_pb2
from lienthong.routing.v1.routing_service_pb2_grpc import add_RoutingServiceServicer_to_server
from lienthong_kit.kafka import ConsumerSpec
from lienthong_kit.server import Deps, GrpcService, Wiring, run_service
from routing_service.access import ACCESS
from routing_service.api import RoutingServicer
from routing_service.consumers import FanOut
from routing_service.registry import Registry
from routing_service.settings import Settings
from routing_service.store import UnitStore

NAME = "routing-service"


async def build(deps: Deps[Settings]) -> Wiring:
    registry = Registry(UnitStore(deps.db), deps.producer, deps.topics, deps.settings)
    # The whole registry is in memory before the first verified document is routed.
    await registry.load()
    fan_out = FanOut(
        registry, deps.producer, deps.topics, forward_closed=deps.settings.forward_closed
    )
    return Wiring(
        services=[
            GrpcService.of(
                routing_service_pb2,
                "RoutingService",
                add_RoutingServiceServicer_to_server,
                RoutingServicer(registry, forward_closed=deps.settings.forward_closed),
                access=ACCESS,
            )
        ],
        # Partitions side by side in one member, each still in order (docs/decisions/0300).
        consumers=[
            ConsumerSpec(
                NAME,
                [deps.topics.verifications],
                fan_out.on_verified,
                concurrent_partitions=True,
                # a redelivery publishes the same records (ids derived from the event), which
                # every reader takes once: no applied-event markers (docs/decisions/0303)
                dedupe=False,
            )
        ],
        tasks=[registry.follow, registry.resync],
    )


def main() -> None:
    run_service(NAME, Settings, build)


if __name__ == "__main__":
    main()
