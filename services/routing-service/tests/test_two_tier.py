"""The two-tier province (Phú Thọ since 1 July 2025) with its predecessors' closed units:
the sample registry, resolution across the change, closing with several successors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from lienthong.common.v1.common_pb2 import Recipients, RecipientScope, UnitLevel
from lienthong.routing.v1 import routing_service_pb2 as pb
from lienthong.routing.v1.routing_service_pb2_grpc import RoutingServiceStub
from lienthong_kit.server import ServiceApp
from lienthong_local.sample import TRANSITION, TWO_TIER_PROVINCE, sample_units
from lienthong_testing.callers import REGISTRY_ADMIN, default_identity
from routing_service.__main__ import build
from routing_service.index import UnitIndex
from routing_service.registry import validate_unit
from routing_service.resolve import resolve
from routing_service.settings import Settings

SAMPLE = sample_units("two-tier")
BY_CODE = {u.code: u for u in SAMPLE}
COMMUNE = UnitLevel.UNIT_LEVEL_COMMUNE
AFTER = "2026-11-20"
BEFORE = "2025-06-15"
OLD_PHU_THO_CITY = "000.00.31.H43"  # Thành phố Việt Trì, closed
HOA_BINH = "000.00.00.H23"
HOA_BINH_FINANCE = "000.01.00.H23"
PHU_THO_FINANCE = "000.01.00.H43"
DIVIDED = "000.17.32.H23"  # Xã Vầy Nưa, divided between two new communes
NEW_COMMUNES = sorted(
    u.code for u in SAMPLE if u.level == COMMUNE and u.parent_code == TWO_TIER_PROVINCE
)


@pytest.fixture
def index() -> UnitIndex:
    index = UnitIndex()
    for unit in SAMPLE:
        index.apply(unit, 1)
    return index


def run(index: UnitIndex, *, codes: tuple[str, ...] = (), scopes: tuple[RecipientScope, ...] = (),
        as_of: str = AFTER, forward: bool = False) -> Any:  # fmt: skip
    return resolve(
        index,
        sender_code=PHU_THO_FINANCE,
        recipients=Recipients(unit_codes=list(codes), scopes=list(scopes)),
        as_of=as_of,
        forward_closed=forward,
    )


def test_the_sample_is_phu_tho_with_its_predecessors_closed() -> None:
    current = [u for u in SAMPLE if not u.valid_until]
    closed = [u for u in SAMPLE if u.valid_until]
    assert len(NEW_COMMUNES) == 148
    assert {u.level for u in current} == {
        UnitLevel.UNIT_LEVEL_PROVINCE,
        UnitLevel.UNIT_LEVEL_DEPARTMENT,
        COMMUNE,
    }
    assert len(current) == 1 + 14 + 148
    # 151 + 207 + 121 old communes, 10 + 13 + 9 districts
    assert sum(u.level == COMMUNE for u in closed) == 479
    assert sum(u.level == UnitLevel.UNIT_LEVEL_DISTRICT for u in closed) == 32
    for unit in closed:
        assert unit.valid_until == TRANSITION
        assert not unit.active
        successors = [unit.successor_code] if unit.successor_code else unit.successor_codes
        assert successors, unit.code
        for code in successors:
            assert not BY_CODE[code].valid_until, f"{unit.code} -> closed {code}"
    assert BY_CODE[HOA_BINH].successor_code == TWO_TIER_PROVINCE
    assert list(BY_CODE[DIVIDED].successor_codes) == ["000.00.103.H43", "000.00.109.H43"]
    seen: set[str] = set()
    for unit in SAMPLE:  # parents first, each unit valid on its own
        validate_unit(unit, parent=BY_CODE.get(unit.parent_code))
        assert not unit.parent_code or unit.parent_code in seen
        seen.add(unit.code)
    assert len(seen) == len(SAMPLE)
    assert len({u.code_2020 for u in SAMPLE}) == len(SAMPLE)


def test_every_commune_of_the_province_has_no_district_between(index: UnitIndex) -> None:
    province_communes = (RecipientScope(ancestor_code=TWO_TIER_PROVINCE, level=COMMUNE),)
    assert run(index, scopes=province_communes).unit_codes == NEW_COMMUNES
    # before the change the same scope meant the old Phú Thọ's communes, under its districts
    before = run(index, scopes=province_communes, as_of=BEFORE).unit_codes
    assert len(before) == 207
    assert all(
        BY_CODE[BY_CODE[c].parent_code].level == UnitLevel.UNIT_LEVEL_DISTRICT for c in before
    )


def test_a_scope_over_a_closed_district_is_refused_naming_the_successors(
    index: UnitIndex,
) -> None:
    scopes = (RecipientScope(ancestor_code=OLD_PHU_THO_CITY, level=COMMUNE),)
    after = run(index, scopes=scopes)
    assert after.unit_codes == []
    [(code, reason)] = after.bounces
    assert code == OLD_PHU_THO_CITY
    assert reason.startswith(
        f"scope under {OLD_PHU_THO_CITY} refused: it was closed on {TRANSITION} and divided;"
        " its successors are "
    )
    for successor in BY_CODE[OLD_PHU_THO_CITY].successor_codes:
        assert f"{successor} ({BY_CODE[successor].name})" in reason
    before = run(index, scopes=scopes, as_of=BEFORE)
    assert before.bounces == []
    assert before.unit_codes == sorted(u.code for u in SAMPLE if u.parent_code == OLD_PHU_THO_CITY)


def test_a_closed_unit_bounces_or_forwards_per_policy(index: UnitIndex) -> None:
    bounced = run(index, codes=(HOA_BINH_FINANCE,))
    assert bounced.unit_codes == []
    assert bounced.bounces == [
        (
            HOA_BINH_FINANCE,
            f"recipient {HOA_BINH_FINANCE} was closed on {TRANSITION}; its successor is"
            f" {PHU_THO_FINANCE} (Sở Tài chính)",
        )
    ]
    merged = "000.01.31.H23"  # a commune of Thành phố Hòa Bình, merged into one new ward
    successor = BY_CODE[merged].successor_code
    forwarded = run(index, codes=(merged, HOA_BINH), forward=True)
    assert forwarded.unit_codes == [successor, TWO_TIER_PROVINCE]
    assert [(c, s) for c, s, _ in forwarded.forwards] == [
        (merged, successor),
        (HOA_BINH, TWO_TIER_PROVINCE),
    ]
    assert forwarded.bounces == []
    # the sender's own predecessor forwards to the sender itself: dropped, as the sender is
    assert run(index, codes=(HOA_BINH_FINANCE,), forward=True).unit_codes == []
    # before the change the old unit itself receives
    assert run(index, codes=(merged,), as_of=BEFORE, forward=True).unit_codes == [merged]


def test_a_divided_commune_bounces_naming_all_its_successors_even_when_forwarding(
    index: UnitIndex,
) -> None:
    result = run(index, codes=(DIVIDED,), forward=True)
    assert result.unit_codes == []
    assert result.forwards == []
    [(code, reason)] = result.bounces
    assert code == DIVIDED
    assert "000.00.103.H43" in reason
    assert "000.00.109.H43" in reason


# -- through the running service -------------------------------------------------------------


def rows(units: list[pb.Unit]) -> Iterator[pb.ImportRegistryRequest]:
    return (pb.ImportRegistryRequest(unit=unit) for unit in units)


def violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    return [(v.field, v.description) for v in bad_request.field_violations]


@pytest.fixture
async def stub(start_service: Any) -> AsyncIterator[RoutingServiceStub]:
    service: ServiceApp = await start_service(
        "routing-service", build, Settings, {"LIENTHONG_ROUTING_FORWARD_CLOSED": "true"}
    )
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{service.grpc_port}", interceptors=default_identity(REGISTRY_ADMIN)
    ) as channel:
        stub = RoutingServiceStub(channel)
        reply = await stub.ImportRegistry(rows(SAMPLE))
        assert reply.applied == reply.created == len(SAMPLE)
        yield stub


async def test_the_two_tier_registry_imports_and_forwards(stub: RoutingServiceStub) -> None:
    divided = await stub.GetUnit(pb.GetUnitRequest(code=BY_CODE[DIVIDED].code_2020))
    assert list(divided.unit.successor_codes) == ["000.00.103.H43", "000.00.109.H43"]
    assert divided.unit.administrative_code == BY_CODE[DIVIDED].administrative_code
    reply = await stub.ResolveRecipients(
        pb.ResolveRecipientsRequest(
            sender_code=PHU_THO_FINANCE,
            recipients=Recipients(unit_codes=[HOA_BINH, DIVIDED]),
            as_of=AFTER,
        )
    )
    assert list(reply.unit_codes) == [TWO_TIER_PROVINCE]
    assert [(f.recipient_code, f.successor_code) for f in reply.forwards] == [
        (HOA_BINH, TWO_TIER_PROVINCE)
    ]
    assert [b.recipient_code for b in reply.bounces] == [DIVIDED]


async def test_close_unit_with_several_successors(stub: RoutingServiceStub) -> None:
    a, b = NEW_COMMUNES[0], NEW_COMMUNES[1]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CloseUnit(
            pb.CloseUnitRequest(
                code=NEW_COMMUNES[2],
                successor_codes=[a, "000.00.999.H43", a, OLD_PHU_THO_CITY],
                closed_on="2026-12-01",
            )
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations(info.value) == [
        ("successor_codes[1]", "no unit '000.00.999.H43' in the registry"),
        ("successor_codes[2]", f"{a} is named twice"),
        ("successor_codes[3]", f"{OLD_PHU_THO_CITY} is closed or inactive itself"),
    ]
    closed = await stub.CloseUnit(
        pb.CloseUnitRequest(code=NEW_COMMUNES[2], successor_codes=[b, a], closed_on="2026-12-01")
    )
    assert list(closed.unit.successor_codes) == [a, b]
    assert not closed.unit.successor_code


async def test_an_import_with_bad_successors_lists_every_problem(stub: RoutingServiceStub) -> None:
    x = pb.Unit(code="000.00.250.H43", name="X", level=COMMUNE, parent_code=TWO_TIER_PROVINCE,
                successor_code="000.00.251.H43")  # fmt: skip
    y = pb.Unit(code="000.00.251.H43", name="Y", level=COMMUNE, parent_code=TWO_TIER_PROVINCE,
                successor_codes=["000.00.250.H43", "000.00.252.H43"])  # fmt: skip
    z = pb.Unit(code="000.00.253.H43", name="Z", level=COMMUNE, parent_code=TWO_TIER_PROVINCE,
                successor_code=NEW_COMMUNES[0], successor_codes=[NEW_COMMUNES[1]])  # fmt: skip
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ImportRegistry(rows([x, y, z]))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations(info.value) == [
        ("rows[1].successor_codes[1]", "no unit '000.00.252.H43' in the registry"),
        ("rows[2].successor_codes", "name one successor_code or several successor_codes"),
        (
            "rows[0].successor_code",
            "successors go round: 000.00.250.H43 → 000.00.251.H43 → 000.00.250.H43",
        ),
        (
            "rows[1].successor_code",
            "successors go round: 000.00.251.H43 → 000.00.250.H43 → 000.00.251.H43",
        ),
    ]
    missing = await stub.ListUnits(
        pb.ListUnitsRequest(parent_code=TWO_TIER_PROVINCE, page_size=500)
    )
    assert "000.00.250.H43" not in {u.code for u in missing.units}


async def test_the_two_tier_sample_loads_unit_by_unit(start_service: Any) -> None:
    service: ServiceApp = await start_service("routing-service", build, Settings)
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{service.grpc_port}", interceptors=default_identity(REGISTRY_ADMIN)
    ) as channel:
        stub = RoutingServiceStub(channel)
        for unit in SAMPLE:
            await stub.UpsertUnit(pb.UpsertUnitRequest(unit=unit))
        listed = await stub.ListUnits(
            pb.ListUnitsRequest(parent_code=TWO_TIER_PROVINCE, level=COMMUNE, page_size=500)
        )
    assert sorted(u.code for u in listed.units) == NEW_COMMUNES
