"""The move to two tiers: the plan from the old registry and the official mapping, its
problems, its CSV, and applying it through ImportRegistry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from lienthong.common.v1.common_pb2 import Recipients, RecipientScope, UnitLevel
from lienthong.routing.v1 import routing_service_pb2 as pb
from lienthong.routing.v1.routing_service_pb2_grpc import RoutingServiceStub
from lienthong_cli.units_file import read_units
from lienthong_kit.server import ServiceApp
from lienthong_local.sample import (
    TRANSITION,
    TWO_TIER_PROVINCE,
    phu_tho_2025_csv,
    predecessor_units,
    sample_units,
)
from lienthong_testing.callers import REGISTRY_ADMIN, default_identity
from routing_service.__main__ import build
from routing_service.settings import Settings
from routing_service.transition import (
    CLOSE,
    CREATE,
    PlanRow,
    plan_csv,
    plan_problems,
    plan_transition,
    read_mapping,
    summary,
)

MERGED = ["000.00.00.H23", "000.00.00.H60"]
OLD = predecessor_units()
COMMUNE = UnitLevel.UNIT_LEVEL_COMMUNE


def make_plan() -> list[PlanRow]:
    communes, problems = read_mapping(phu_tho_2025_csv())
    assert problems == []
    return plan_transition(
        OLD, communes, province=TWO_TIER_PROVINCE, merged=MERGED, effective=TRANSITION
    )


def test_the_plan_gives_the_two_tier_sample_for_communes_and_districts() -> None:
    plan = make_plan()
    sample = {
        u.code: u
        for u in sample_units("two-tier")
        if u.level in (COMMUNE, UnitLevel.UNIT_LEVEL_DISTRICT)
        or u.level == UnitLevel.UNIT_LEVEL_PROVINCE
    }
    planned = {row.unit.code: row.unit for row in plan if row.unit.code in sample}
    assert set(planned) == set(sample) - {TWO_TIER_PROVINCE}
    for code, unit in planned.items():
        assert unit == sample[code], code
    assert plan_problems(plan, OLD, pending={}) == []
    assert summary(plan, pending={"000.17.32.H23": 2}) == [
        "close: 2 province, 40 department, 32 district, 479 commune",
        "create: 148 commune",
        "closed with several successors: 35",  # 32 districts, 3 divided communes
        "closed without a successor: 0",
        "pending deliveries to closing units: 2 at 1 units",
        "effective: 2025-07-01",
    ]


def test_the_plan_csv_is_an_import_file(tmp_path: Path) -> None:
    plan = make_plan()
    path = tmp_path / "plan.csv"
    path.write_text(plan_csv(plan), "utf-8")
    rows = read_units(path)
    assert [row.problems for row in rows if row.problems] == []
    assert [row.unit for row in rows] == [row.unit for row in plan]


def test_a_bad_plan_lists_every_problem() -> None:
    plan = make_plan()
    index = {row.unit.code: i for i, row in enumerate(plan)}
    first_new = plan[0].unit.code
    old_commune = "000.01.31.H23"
    divided = "000.17.32.H23"
    bad = list(plan)

    def edit(code: str, **changes: Any) -> None:
        unit = pb.Unit()
        unit.CopyFrom(plan[index[code]].unit)
        for name, value in changes.items():
            if name == "successor_codes":
                del unit.successor_codes[:]
                unit.successor_codes.extend(value)
            else:
                setattr(unit, name, value)
        bad[index[code]] = PlanRow(plan[index[code]].action, unit)

    edit(old_commune, successor_code="000.00.999.H43")  # unknown
    edit(divided, successor_codes=[])  # no successor while deliveries wait
    edit(first_new, parent_code="000.00.31.H43")  # re-parented under a closing district
    cycle_a, cycle_b = "000.01.00.H23", "000.02.00.H23"
    edit(cycle_a, successor_code=cycle_b)
    edit(cycle_b, successor_code=cycle_a)
    problems = plan_problems(bad, OLD, pending={divided: 3})
    assert problems == [
        (f"rows[{index[first_new]}].parent_code", "the parent 000.00.31.H43 closes on 2025-07-01"),
        (f"rows[{index[cycle_a]}].successor_code", f"{cycle_b} is closed itself"),
        (
            f"rows[{index[cycle_a]}].successor_code",
            f"successors go round: {cycle_a} → {cycle_b} → {cycle_a}",
        ),
        (f"rows[{index[cycle_b]}].successor_code", f"{cycle_a} is closed itself"),
        (
            f"rows[{index[cycle_b]}].successor_code",
            f"successors go round: {cycle_b} → {cycle_a} → {cycle_b}",
        ),
        (
            f"rows[{index[old_commune]}].successor_code",
            "no unit '000.00.999.H43' in the registry or the plan",
        ),
        (
            f"rows[{index[divided]}].successor_codes",
            f"3 deliveries to {divided} are pending: name a successor",
        ),
    ]


def test_a_plan_with_duplicate_and_unknown_rows_is_refused() -> None:
    ghost = pb.Unit(code="000.99.99.H43", name="Ghost", level=COMMUNE, valid_until=TRANSITION)
    first = make_plan()[0]
    problems = plan_problems(
        [first, first, PlanRow(CLOSE, ghost), PlanRow("merge", first.unit)], OLD, pending={}
    )
    assert problems == [
        ("rows[1].code", f"{first.unit.code} is also row 0"),
        ("rows[2].code", "no unit '000.99.99.H43' in the registry to close"),
        ("rows[3].code", f"{first.unit.code} is also row 0"),
    ]
    assert read_mapping("code,name,old_codes\nx,,\n07900,A,1\n07900,B,2\n")[1] == [
        "line 2: code: 'x' is not an administrative code",
        "line 2: name: is required",
        "line 2: old_codes: name the old communes it was made of",
        "line 4: code: 07900 is also line 3",
    ]
    assert CREATE != CLOSE


@pytest.fixture
async def stub(start_service: Any) -> AsyncIterator[RoutingServiceStub]:
    service: ServiceApp = await start_service("routing-service", build, Settings)
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{service.grpc_port}", interceptors=default_identity(REGISTRY_ADMIN)
    ) as channel:
        stub = RoutingServiceStub(channel)
        reply = await stub.ImportRegistry(pb.ImportRegistryRequest(unit=u) for u in OLD)
        assert reply.applied == reply.created == len(OLD)
        yield stub


async def test_the_plan_applied_through_the_import_moves_the_province_to_two_tiers(
    stub: RoutingServiceStub, tmp_path: Path
) -> None:
    path = tmp_path / "plan.csv"
    path.write_text(plan_csv(make_plan()), "utf-8")
    rows = read_units(path)
    reply = await stub.ImportRegistry(pb.ImportRegistryRequest(unit=row.unit) for row in rows)
    assert reply.applied == len(rows)
    assert reply.created == 148
    every_commune = Recipients(
        scopes=[RecipientScope(ancestor_code=TWO_TIER_PROVINCE, level=COMMUNE)]
    )

    async def communes(as_of: str) -> list[str]:
        resolved = await stub.ResolveRecipients(
            pb.ResolveRecipientsRequest(
                sender_code="000.01.00.H43", recipients=every_commune, as_of=as_of
            )
        )
        assert list(resolved.bounces) == []
        return list(resolved.unit_codes)

    after = await communes("2025-07-01")
    assert after == sorted(row.unit.code for row in make_plan() if row.action == CREATE)
    before = await communes("2025-06-30")
    assert len(before) == 207
    closed = await stub.ResolveRecipients(
        pb.ResolveRecipientsRequest(
            sender_code="000.01.00.H43",
            recipients=Recipients(
                scopes=[RecipientScope(ancestor_code="000.00.31.H23", level=COMMUNE)]
            ),
            as_of="2025-07-01",
        )
    )
    assert [b.recipient_code for b in closed.bounces] == ["000.00.31.H23"]
    assert "its successors are" in closed.bounces[0].reason


async def test_the_operator_tool_dry_runs_and_writes_the_plan(
    start_service: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    from routing_service.transition_cli import main

    service: ServiceApp = await start_service("routing-service", build, Settings)
    endpoint = f"127.0.0.1:{service.grpc_port}"
    admin = default_identity(REGISTRY_ADMIN)
    async with grpc.aio.insecure_channel(endpoint, interceptors=admin) as channel:
        await RoutingServiceStub(channel).ImportRegistry(
            pb.ImportRegistryRequest(unit=u) for u in OLD
        )
    mapping = tmp_path / "mapping.csv"
    mapping.write_text(phu_tho_2025_csv(), "utf-8")
    pending = tmp_path / "pending.csv"
    pending.write_text("code,count\n000.17.32.H23,2\n", "utf-8")
    out = tmp_path / "plan.csv"
    args = ["--mapping", str(mapping), "--province", TWO_TIER_PROVINCE, "--merged", MERGED[0],
            "--merged", MERGED[1], "--effective", TRANSITION, "--pending", str(pending),
            "--out", str(out), "--endpoint", endpoint]  # fmt: skip
    assert await asyncio.to_thread(main, args) == 0
    printed = capsys.readouterr().out
    assert "pending deliveries to closing units: 2 at 1 units" in printed
    assert out.read_text("utf-8") == plan_csv(make_plan())
    # a broken mapping is refused before anything is read or written
    mapping.write_text("code,name,old_codes\n07900,,04789\n", "utf-8")
    out.unlink()
    assert await asyncio.to_thread(main, args) == 1
    assert "line 2: name: is required" in capsys.readouterr().err
    assert not out.exists()
