"""notification-service: tells clerks and leaders what arrived.

python -m notification_service
"""

from __future__ import annotations

from lienthong.notification.v1 import notification_service_pb2
from lienthong.notification.v1.notification_service_pb2_grpc import (
    add_NotificationServiceServicer_to_server,
)
from lienthong_kit.kafka import ConsumerSpec
from lienthong_kit.server import Deps, GrpcService, Wiring, run_service
from lienthong_kit.settings import KitSettings, load_settings
from notification_service.service import NotificationServicer, Notifier

NAME = "notification-service"


async def build(deps: Deps) -> Wiring:
    notifier = Notifier(deps.db)
    await notifier.create_indexes()
    return Wiring(
        services=[
            GrpcService.of(
                notification_service_pb2,
                "NotificationService",
                add_NotificationServiceServicer_to_server,
                NotificationServicer(notifier),
            )
        ],
        consumers=[ConsumerSpec(NAME, deps.topics.all_deliveries, notifier.on_delivery)],
    )


def main() -> None:
    run_service(NAME, load_settings(KitSettings), build)


if __name__ == "__main__":
    main()
