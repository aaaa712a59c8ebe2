"""CountPendingDeliveries: what a transition plan's dry run reports of the units it closes, on
document-service's real server, broker and store."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from lienthong.common.v1.common_pb2 import DocumentSummary
from lienthong.document.v1 import document_service_pb2 as pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.events.v1.events_pb2 import DeliveryCreated
from lienthong_kit.envelope import new_event
from lienthong_kit.server import ServiceApp
from lienthong_testing.callers import OBSERVER, REGISTRY_ADMIN, as_unit
from lienthong_testing.waiting import eventually

SENDER = "000.00.00.H23"
A, B = "000.01.31.H23", "000.00.31.H23"  # a commune and a district a plan closes
_numbers = iter(range(1, 1_000_000))


async def submit(stub: DocumentServiceStub, *to: str) -> DocumentSummary:
    reply = await stub.SubmitDocument(
        pb.SubmitDocumentRequest(
            recipients={"unit_codes": list(to)},
            code={"number": str(next(_numbers)), "notation": "CV-UBND"},
            subject="Về việc báo cáo tình hình thực hiện",
            promulgation_date="2026-11-20",
        ),
        metadata=as_unit(SENDER),
    )
    return reply.document


async def deliver(
    service: ServiceApp, stub: DocumentServiceStub, document: DocumentSummary, *to: str
) -> dict[str, str]:
    """Route ``document`` to ``to`` as routing-service would; delivery ids by unit."""
    ids = {}
    for recipient in to:
        ids[recipient] = f"{document.document_id}/{recipient}"
        event = new_event(
            DeliveryCreated(
                delivery_id=ids[recipient], document=document, recipient_code=recipient
            ),
            producer="routing-service",
        )
        await service.producer.publish(service.topics.deliveries, key=recipient, envelope=event)
    for recipient, delivery_id in ids.items():
        await eventually(
            lambda recipient=recipient: stub.ListInbox(
                pb.ListInboxRequest(), metadata=as_unit(recipient)
            ),
            until=lambda reply, d=delivery_id: d in {e.delivery_id for e in reply.entries},
        )
    return ids


async def ack(
    stub: DocumentServiceStub, delivery_id: str, code: str, who: str, why: str = ""
) -> None:
    await stub.AcknowledgeDelivery(
        pb.AcknowledgeDeliveryRequest(
            delivery_id=delivery_id, status_code=code, description=why, staff="Nguyễn Văn An"
        ),
        metadata=as_unit(who),
    )


def violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    return [(v.field, v.description) for v in bad_request.field_violations]


async def test_only_deliveries_not_yet_final_count(
    stub: DocumentServiceStub, service: ServiceApp
) -> None:
    first = await submit(stub, A, B)
    second = await submit(stub, A)
    ids = await deliver(service, stub, first, A, B)
    await deliver(service, stub, second, A)
    await ack(stub, ids[B], "02", B, "Gửi nhầm đơn vị")  # refused: final
    await ack(stub, ids[A], "03", A)  # registered: still pending

    reply = await stub.CountPendingDeliveries(
        pb.CountPendingDeliveriesRequest(unit_codes=[A, B, "000.99.99.H23"]),
        metadata=REGISTRY_ADMIN,
    )

    assert [(u.unit_code, u.pending) for u in reply.units] == [
        (A, 2),
        (B, 0),
        ("000.99.99.H23", 0),
    ]
    assert sorted(reply.units[0].document_ids) == sorted([first.document_id, second.document_id])
    observed = await stub.CountPendingDeliveries(
        pb.CountPendingDeliveriesRequest(unit_codes=[A]), metadata=OBSERVER
    )
    assert observed.units[0].pending == 2


async def test_a_unit_may_not_count_and_bad_codes_are_named(stub: DocumentServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CountPendingDeliveries(
            pb.CountPendingDeliveriesRequest(unit_codes=[A]), metadata=as_unit(A)
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED

    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stub.CountPendingDeliveries(
            pb.CountPendingDeliveriesRequest(unit_codes=[A, " ", "9" * 65]),
            metadata=REGISTRY_ADMIN,
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations(bad.value) == [
        ("unit_codes[1]", "is empty"),
        ("unit_codes[2]", "longer than 64 characters"),
    ]
    with pytest.raises(grpc.aio.AioRpcError) as none:
        await stub.CountPendingDeliveries(
            pb.CountPendingDeliveriesRequest(), metadata=REGISTRY_ADMIN
        )
    assert violations(none.value) == [("unit_codes", "between 1 and 500 unit codes (got 0)")]
