"""Every registry change names who made it on the units topic, for the audit chains."""

from __future__ import annotations

from typing import Any

import grpc

from lienthong.common.v1.common_pb2 import UnitLevel
from lienthong.events.v1.events_pb2 import UnitChanged
from lienthong.routing.v1 import routing_service_pb2 as pb
from lienthong.routing.v1.routing_service_pb2_grpc import RoutingServiceStub
from lienthong_kit.envelope import decode_envelope, unpack
from lienthong_kit.server import ServiceApp
from lienthong_testing.callers import REGISTRY_ADMIN
from routing_service.__main__ import build
from routing_service.settings import Settings

PROVINCE = "000.00.00.H23"


async def test_a_unit_change_carries_its_actor(start_service: Any, topic_reader: Any) -> None:
    app: ServiceApp = await start_service("routing-service", build, Settings)
    province = pb.Unit(
        code=PROVINCE, name="UBND tỉnh", level=UnitLevel.UNIT_LEVEL_PROVINCE, active=True
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        await RoutingServiceStub(channel).UpsertUnit(
            pb.UpsertUnitRequest(unit=province), metadata=REGISTRY_ADMIN
        )
    records = await topic_reader(app.topics.units, 1)
    changed = unpack(decode_envelope(records[0].value), UnitChanged)
    assert (changed.unit.code, changed.actor) == (PROVINCE, "operator/registry-admin/test-admin")
