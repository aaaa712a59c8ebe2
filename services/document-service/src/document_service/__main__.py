"""document-service: accepts documents, keeps every unit's inbox.

python -m document_service        (configuration: LIENTHONG_* variables, docs/configuration.md)
"""

from __future__ import annotations

from aiokafka import ConsumerRecord

from document_service.servicer import DocumentServicer
from document_service.store import DocumentStore
from lienthong.document.v1 import document_service_pb2
from lienthong.document.v1.document_service_pb2_grpc import add_DocumentServiceServicer_to_server
from lienthong.events.v1.events_pb2 import DeliveryBounced, DeliveryCreated
from lienthong_kit.envelope import EventEnvelope, carries, unpack
from lienthong_kit.kafka import ConsumerSpec
from lienthong_kit.outbox import OutboxRelay
from lienthong_kit.server import Deps, GrpcService, Wiring, run_service
from lienthong_kit.settings import KitSettings, load_settings

NAME = "document-service"


async def build(deps: Deps) -> Wiring:
    store = DocumentStore(deps.db)
    await store.create_indexes()
    relay = OutboxRelay(store.documents, deps.producer, idle_seconds=0.5)
    await relay.create_indexes()

    async def on_delivery(envelope: EventEnvelope, _: ConsumerRecord[bytes, bytes]) -> None:
        if carries(envelope, DeliveryCreated):
            await store.materialise(unpack(envelope, DeliveryCreated))
        elif carries(envelope, DeliveryBounced):
            await store.record_bounce(unpack(envelope, DeliveryBounced))

    return Wiring(
        services=[
            GrpcService.of(
                document_service_pb2,
                "DocumentService",
                add_DocumentServiceServicer_to_server,
                DocumentServicer(store, relay, deps.topics),
            )
        ],
        consumers=[ConsumerSpec(NAME, [deps.topics.deliveries], on_delivery)],
        tasks=[relay.run],
    )


def main() -> None:
    run_service(NAME, load_settings(KitSettings), build)


if __name__ == "__main__":
    main()
