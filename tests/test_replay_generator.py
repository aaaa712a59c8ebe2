"""The replay generator (lienthong_local.replay) makes exactly the traffic its plan asks for."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from lienthong.reporting.v1 import reporting_service_pb2 as pb
from lienthong_local.replay import APRIL, LevelPlan, Plan, expected_rows, generate, mismatches

NOW = datetime(2026, 4, 20, 5, 0, tzinfo=UTC)  # 12:00 on 20 April in Vietnam


def test_the_april_plan_is_the_seed_whole_system_line() -> None:
    assert APRIL.total() == LevelPlan(45_922, 34_503, 11_271, 6_241)


@pytest.mark.parametrize("plan", [APRIL, APRIL.scaled(0.02)], ids=["april", "april-1/50"])
def test_generated_traffic_has_the_plan_totals_per_level(plan: Plan) -> None:
    traffic = generate(plan, now=NOW)
    totals = traffic.level_totals()
    for level, figures in plan.levels.items():
        assert totals[level] == Counter(
            incoming_total=figures.incoming_total,
            incoming_over_network=figures.incoming_network,
            outgoing_total=figures.outgoing_total,
            outgoing_over_network=figures.outgoing_network,
        )
    assert len(traffic.documents) == plan.total().outgoing_network
    deliveries = sum(len(recipients) for _, recipients in traffic.documents)
    assert deliveries == plan.total().incoming_network
    for sender, recipients in traffic.documents:
        assert recipients
        assert sender not in recipients
        assert len(set(recipients)) == len(recipients)
    # paper documents are registered in the current Vietnam month, never in the future
    assert all(f"{when:%Y-%m-%d}" >= "2026-04-01" and when <= NOW for _, _, when in traffic.paper)


def test_the_check_names_every_row_that_differs() -> None:
    plan = Plan(
        {
            "province": LevelPlan(3, 2, 2, 1),
            "district": LevelPlan(2, 1, 0, 0),
            "commune": LevelPlan(0, 0, 0, 0),
        }
    )
    traffic = generate(plan, now=NOW)
    expected = expected_rows(traffic, [])
    scope = pb.AdoptionRow(
        kind=pb.RowKind.ROW_KIND_SCOPE,
        incoming_total=5,
        incoming_over_network=3,
        outgoing_total=2,
        outgoing_over_network=1,
    )
    problems = mismatches(expected, [scope])
    assert not [p for p in problems if p.startswith("scope")]
    assert any(p.startswith("level province") for p in problems)  # no level rows given
    wrong = pb.AdoptionRow(kind=pb.RowKind.ROW_KIND_SCOPE, incoming_total=6)
    assert any(p.startswith("scope") for p in mismatches(expected, [wrong]))


def test_a_plan_that_cannot_be_addressed_is_refused() -> None:
    impossible = Plan(
        {
            "province": LevelPlan(1, 1, 5, 5),
            "district": LevelPlan(0, 0, 0, 0),
            "commune": LevelPlan(0, 0, 0, 0),
        }
    )
    with pytest.raises(ValueError, match="deliveries"):
        generate(impossible, now=NOW)


def test_a_two_tier_month_goes_between_the_current_units_only() -> None:
    from lienthong_local.sample import TWO_TIER_PROVINCE, sample_units

    plan = APRIL.scaled(0.02).two_tier()
    assert set(plan.levels) == {"province", "commune"}
    assert plan.total() == APRIL.scaled(0.02).total()
    traffic = generate(plan, now=NOW, shape="two-tier")
    current = {u.code for u in sample_units("two-tier") if u.active}
    assert len(current) == 1 + 14 + 148
    assert set(traffic.expected) == current
    assert set(traffic.level_of.values()) == {"province", "commune"}
    totals = traffic.level_totals()
    assert totals["district"] == Counter()
    for level, figures in plan.levels.items():
        assert totals[level]["incoming_total"] == figures.incoming_total
        assert totals[level]["outgoing_over_network"] == figures.outgoing_network
    for sender, recipients in traffic.documents:
        assert sender in current
        assert set(recipients) <= current
    assert TWO_TIER_PROVINCE in current
