"""The platform the fuzzers hit: the five services as processes, once for the whole session.

Signed-document checks are real here (LIENTHONG_SIGNATURE_ACCEPT_UNSIGNED=false), so a
hostile PDF cannot pass as an unsigned development document.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest

from lienthong.document.v1 import document_service_pb2 as doc_pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.routing.v1 import routing_service_pb2 as routing_pb
from lienthong.routing.v1.routing_service_pb2_grpc import RoutingServiceStub
from lienthong_local.platform import Platform
from lienthong_local.sample import sample_units
from lienthong_testing.callers import REGISTRY_ADMIN, as_unit
from lienthong_testing.cleanup import remove_namespace
from lienthong_testing.waiting import eventually_sync

SENDER = "000.00.00.H23"


def load_registry(platform: Platform) -> None:
    with grpc.insecure_channel(platform.endpoint("routing-service")) as channel:
        stub = RoutingServiceStub(channel)
        for unit in sample_units():
            stub.UpsertUnit(
                routing_pb.UpsertUnitRequest(unit=unit), metadata=REGISTRY_ADMIN, timeout=10
            )

    def inbox_answers() -> bool:
        with grpc.insecure_channel(platform.endpoint("document-service")) as channel:
            try:
                DocumentServiceStub(channel).ListInbox(
                    doc_pb.ListInboxRequest(), metadata=as_unit(SENDER), timeout=10
                )
            except grpc.RpcError:
                return False
        return True

    # the gatekeeper admits a unit once the registry's topic reached the service
    eventually_sync(inbox_answers, until=bool, timeout=60, interval=0.5)


@pytest.fixture(scope="session")
def fuzz_platform(infra: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    prefix = f"fz{uuid.uuid4().hex[:8]}_"
    log_dir = tmp_path_factory.mktemp("fuzz-platform")
    extra = {
        "LIENTHONG_SIGNATURE_ACCEPT_UNSIGNED": "false",
        # the shared 2-core machine runs other suites: the start-up check needs more than 60 s
        "LIENTHONG_SIGNATURE_VALIDATION_TIMEOUT_SECONDS": "180",
    }
    with Platform.start(log_dir=log_dir, prefix=prefix, extra_env=extra, timeout=180) as running:
        load_registry(running)
        yield running
    remove_namespace(prefix, kafka="127.0.0.1:9092", mongo="mongodb://127.0.0.1:27017")
