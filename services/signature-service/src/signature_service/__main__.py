"""signature-service: verifies the signatures on every submitted document.

python -m signature_service
"""

from __future__ import annotations

from lienthong.signature.v1 import signature_service_pb2
from lienthong.signature.v1.signature_service_pb2_grpc import add_SignatureServiceServicer_to_server
from lienthong_kit.kafka import ConsumerSpec
from lienthong_kit.server import Deps, GrpcService, Wiring, run_service
from lienthong_kit.settings import KitSettings, load_settings
from signature_service.service import SignatureServicer, VerificationFlow

NAME = "signature-service"


async def build(deps: Deps) -> Wiring:
    flow = VerificationFlow(deps.db, deps.producer, deps.topics)
    return Wiring(
        services=[
            GrpcService.of(
                signature_service_pb2,
                "SignatureService",
                add_SignatureServiceServicer_to_server,
                SignatureServicer(flow),
            )
        ],
        consumers=[ConsumerSpec(NAME, [deps.topics.documents], flow.on_document)],
    )


def main() -> None:
    run_service(NAME, load_settings(KitSettings), build)


if __name__ == "__main__":
    main()
