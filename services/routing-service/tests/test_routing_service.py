"""routing-service: registry rules, and the fan-out through the real broker and store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from lienthong.common.v1.common_pb2 import DocumentSummary, Recipients, UnitLevel, Verdict
from lienthong.events.v1.events_pb2 import DeliveryBounced, DeliveryCreated, DocumentVerified
from lienthong.routing.v1 import routing_service_pb2 as pb
from lienthong.routing.v1.routing_service_pb2_grpc import RoutingServiceStub
from lienthong_kit.envelope import carries, decode_envelope, new_event, unpack
from lienthong_kit.errors import InvalidArgument
from lienthong_kit.server import ServiceApp
from lienthong_local.sample import PROVINCE, sample_units
from routing_service.__main__ import build
from routing_service.registry import validate_unit
from routing_service.service import delivery_id


def unit(**fields: Any) -> pb.Unit:
    base: dict[str, Any] = {
        "code": "000.01.00.H23",
        "name": "Sở Tài chính",
        "level": UnitLevel.UNIT_LEVEL_DEPARTMENT,
        "parent_code": PROVINCE,
        "active": True,
    }
    return pb.Unit(**{**base, **fields})


@pytest.mark.parametrize(
    ("fields", "parent_exists", "field"),
    [
        pytest.param({"code": "sở 1"}, True, "unit.code", id="malformed-code"),
        pytest.param({"name": " "}, True, "unit.name", id="no-name"),
        pytest.param(
            {"level": UnitLevel.UNIT_LEVEL_UNSPECIFIED}, True, "unit.level", id="no-level"
        ),
        pytest.param({"parent_code": ""}, True, "unit.parent_code", id="no-parent"),
        pytest.param({}, False, "unit.parent_code", id="unknown-parent"),
        pytest.param(
            {"level": UnitLevel.UNIT_LEVEL_PROVINCE},
            True,
            "unit.parent_code",
            id="province-with-parent",
        ),
    ],
)
def test_unit_rules_name_the_field(fields: dict[str, Any], parent_exists: bool, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_unit(unit(**fields), parent_exists=parent_exists)
    assert [v.field for v in info.value.violations] == [field]


@pytest.fixture
async def service(start_service: Any) -> ServiceApp:
    app: ServiceApp = await start_service("routing-service", build)
    return app


@pytest.fixture
async def stub(service: ServiceApp) -> AsyncIterator[RoutingServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
        stub = RoutingServiceStub(channel)
        for sample in sample_units():
            await stub.UpsertUnit(pb.UpsertUnitRequest(unit=sample))
        yield stub


async def test_list_units_by_parent_pages_in_code_order(stub: RoutingServiceStub) -> None:
    codes: list[str] = []
    token = ""
    while True:
        page = await stub.ListUnits(
            pb.ListUnitsRequest(parent_code=PROVINCE, page_size=2, page_token=token)
        )
        codes.extend(u.code for u in page.units)
        token = page.next_page_token
        if not token:
            break
    expected = sorted(u.code for u in sample_units() if u.parent_code == PROVINCE)
    assert codes == expected


async def test_unknown_unit_is_not_found(stub: RoutingServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetUnit(pb.GetUnitRequest(code="999.99.99.H99"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_fan_out_delivers_to_known_units_and_bounces_the_rest(
    stub: RoutingServiceStub, service: ServiceApp, topic_reader: Any
) -> None:
    await stub.UpsertUnit(pb.UpsertUnitRequest(unit=unit(code="000.03.00.H23", active=False)))
    document = DocumentSummary(document_id="doc-1", sender_code=PROVINCE)
    recipients = ["000.01.00.H23", "000.00.31.H23", "999.99.99.H99", "000.03.00.H23", PROVINCE]
    verified = DocumentVerified(
        document=document,
        recipients=Recipients(unit_codes=recipients),
        verdict=Verdict.VERDICT_ACCEPTED,
    )
    await service.producer.publish(
        service.topics.verifications,
        key="doc-1",
        envelope=new_event(verified, producer="signature-service"),
    )
    records = await topic_reader(service.topics.deliveries, 4)
    outcome: dict[str, str] = {}
    for record in records:
        envelope = decode_envelope(record.value)
        if carries(envelope, DeliveryCreated):
            created = unpack(envelope, DeliveryCreated)
            assert record.key == created.recipient_code.encode()
            assert created.delivery_id == delivery_id("doc-1", created.recipient_code)
            outcome[created.recipient_code] = "delivered"
        else:
            bounced = unpack(envelope, DeliveryBounced)
            outcome[bounced.recipient_code] = bounced.reason
    assert outcome == {
        "000.01.00.H23": "delivered",
        "000.00.31.H23": "delivered",
        "999.99.99.H99": "unknown recipient 999.99.99.H99: no such unit in the registry",
        "000.03.00.H23": "recipient 000.03.00.H23 is not active",
    }
