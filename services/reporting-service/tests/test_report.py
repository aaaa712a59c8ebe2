from __future__ import annotations

import asyncio

import pytest

from lienthong.common.v1.common_pb2 import UnitLevel
from lienthong.events.v1.events_pb2 import UnitChanged
from lienthong.reporting.v1 import reporting_service_pb2 as pb
from lienthong.routing.v1.routing_service_pb2 import Unit
from lienthong_kit.authz import Identity, Kind, Role, set_identity
from lienthong_kit.errors import InvalidArgument, PermissionDenied, Unavailable
from reporting_service.api import ReportingServicer
from reporting_service.folding import (
    Count,
    Counts,
    Fact,
)
from reporting_service.report import Registry, display, report_rows

PROVINCE, DEPARTMENT, DISTRICT, COMMUNE = "P", "D01", "H31", "X01"
LEVEL = pb.ReportLevel


def registry() -> Registry:
    units = Registry()
    for code, level, parent in [
        (PROVINCE, UnitLevel.UNIT_LEVEL_PROVINCE, ""),
        (DEPARTMENT, UnitLevel.UNIT_LEVEL_DEPARTMENT, PROVINCE),
        (DISTRICT, UnitLevel.UNIT_LEVEL_DISTRICT, PROVINCE),
        (COMMUNE, UnitLevel.UNIT_LEVEL_COMMUNE, DISTRICT),
    ]:
        unit = Unit(code=code, level=level, parent_code=parent, active=True, name=f"unit {code}")
        units.apply(UnitChanged(unit=unit, revision=1))
    return units


def counted(*facts: tuple[str, str, int]) -> Counts:
    counts = Counts()
    serial = 0
    for unit, count, times in facts:
        for _ in range(times):
            serial += 1
            counts.add(Fact(str(serial), unit, "2026-04-15", count))
    return counts


@pytest.mark.parametrize(
    ("numerator", "denominator", "shown"),
    [
        (34503, 45922, "75.1%"),
        (6241, 11271, "55.4%"),
        (1, 8, "12.5%"),
        (1, 3, "33.3%"),
        (2, 3, "66.7%"),
        (0, 5, "0.0%"),
        (5, 5, "100.0%"),
        (1, 2000, "0.1%"),
        (0, 0, ""),
    ],
)
def test_shares_display_one_decimal_rounded_half_up(
    numerator: int, denominator: int, shown: str
) -> None:
    assert display(numerator, denominator) == shown


def test_the_province_table_has_the_whole_scope_then_each_level() -> None:
    counts = counted(
        (PROVINCE, Count.INCOMING_NET, 3),
        (PROVINCE, Count.INCOMING_PAPER, 1),
        (PROVINCE, Count.OUTGOING_NET, 2),
        (DEPARTMENT, Count.OUTGOING_PAPER, 2),
        (DEPARTMENT, Count.SIGNED_PERSONAL, 1),
        (DISTRICT, Count.INCOMING_NET, 4),
        (DISTRICT, Count.OUTGOING_NET, 1),
        (COMMUNE, Count.INCOMING_NET, 5),
        (COMMUNE, Count.INCOMING_PAPER, 5),
        ("UNKNOWN", Count.INCOMING_NET, 1),
    )
    rows = report_rows(registry(), counts, "2026-04", [], pb.AdoptionScope())
    assert [(r.kind, r.level) for r in rows] == [
        (pb.RowKind.ROW_KIND_SCOPE, LEVEL.REPORT_LEVEL_UNSPECIFIED),
        (pb.RowKind.ROW_KIND_LEVEL, LEVEL.REPORT_LEVEL_PROVINCE),
        (pb.RowKind.ROW_KIND_LEVEL, LEVEL.REPORT_LEVEL_DISTRICT),
        (pb.RowKind.ROW_KIND_LEVEL, LEVEL.REPORT_LEVEL_COMMUNE),
    ]
    whole, province, district, commune = rows
    assert (whole.incoming_total, whole.incoming_over_network) == (19, 13)
    assert (whole.outgoing_total, whole.outgoing_over_network) == (5, 3)
    assert whole.incoming_network_share == pb.Share(numerator=13, denominator=19, display="68.4%")
    assert (whole.units, whole.units_connected, whole.units_only_receiving) == (5, 4, 2)
    # cấp tỉnh = the People's Committee and the departments
    assert (province.incoming_total, province.outgoing_total, province.outgoing_over_network) == (
        4,
        4,
        2,
    )
    assert province.personal_signature_share == pb.Share(
        numerator=1, denominator=2, display="50.0%"
    )
    assert (province.units, province.units_connected, province.units_only_receiving) == (2, 1, 0)
    assert (district.incoming_over_network, district.outgoing_network_share.display) == (
        4,
        "100.0%",
    )
    assert (commune.incoming_total, commune.incoming_network_share.display) == (10, "50.0%")
    assert (commune.units_connected, commune.units_only_receiving) == (1, 1)
    assert commune.outgoing_network_share == pb.Share()  # nothing sent: no share, not 0%


def test_a_district_scope_covers_the_district_and_its_communes_with_unit_rows() -> None:
    counts = counted(
        (DISTRICT, Count.INCOMING_NET, 4),
        (COMMUNE, Count.INCOMING_NET, 2),
        (PROVINCE, Count.INCOMING_NET, 9),
    )
    scope = pb.AdoptionScope(ancestor_code=DISTRICT, per_unit=True)
    rows = report_rows(registry(), counts, "2026", [], scope)
    assert rows[0].incoming_over_network == 6
    assert rows[1].units == 0  # no province-level unit under the district
    assert [(r.unit_code, r.name, r.incoming_over_network) for r in rows[4:]] == [
        (DISTRICT, "unit H31", 4),
        (COMMUNE, "unit X01", 2),
    ]


def test_rows_for_named_units_only_and_periods_that_hold_nothing() -> None:
    counts = counted((DISTRICT, Count.INCOMING_NET, 4))
    rows = report_rows(registry(), counts, "2026-04-15", [DISTRICT, "NOPE"], pb.AdoptionScope())
    assert [(r.unit_code, r.kind, r.incoming_over_network) for r in rows] == [
        (DISTRICT, pb.RowKind.ROW_KIND_UNIT, 4),
        ("NOPE", pb.RowKind.ROW_KIND_UNIT, 0),
    ]
    assert (
        report_rows(registry(), counts, "2026-04-16", [DISTRICT], pb.AdoptionScope())[
            0
        ].incoming_total
        == 0
    )


def test_bad_requests_name_the_field() -> None:
    with pytest.raises(InvalidArgument, match=r"scope\.ancestor_code"):
        report_rows(registry(), Counts(), "2026", [], pb.AdoptionScope(ancestor_code="NOPE"))
    with pytest.raises(InvalidArgument, match="unit_codes"):
        report_rows(registry(), Counts(), "2026", [str(i) for i in range(501)], pb.AdoptionScope())
    with pytest.raises(InvalidArgument, match="period"):
        report_rows(registry(), Counts(), "April", [], pb.AdoptionScope())


def test_the_newest_registry_revision_wins() -> None:
    units = registry()
    moved = Unit(code=COMMUNE, level=UnitLevel.UNIT_LEVEL_DISTRICT, active=True)
    units.apply(UnitChanged(unit=moved, revision=0))  # older: ignored
    assert units.level(COMMUNE) == LEVEL.REPORT_LEVEL_COMMUNE
    units.apply(UnitChanged(unit=moved, revision=2))
    assert units.level(COMMUNE) == LEVEL.REPORT_LEVEL_DISTRICT


class Rebuilding:
    """A worker whose counts are still being rebuilt after a start."""

    ready = asyncio.Event()


@pytest.fixture
def observer() -> None:
    """The call's caller, as the gatekeeper sets it: an observer reads any scope."""
    set_identity(Identity(Kind.OPERATOR, "lan", Role.OBSERVER))


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        pytest.param(pb.GetAdoptionReportRequest(period="2026-13"), "period", id="bad-period"),
        pytest.param(
            pb.GetAdoptionReportRequest(period="2026", unit_codes=[f"u{n}" for n in range(501)]),
            "unit_codes",
            id="too-many-units",
        ),
    ],
)
@pytest.mark.usefixtures("observer")
def test_a_bad_request_is_refused_even_while_the_counts_rebuild(
    request_: pb.GetAdoptionReportRequest, field: str
) -> None:
    servicer = ReportingServicer(Rebuilding())  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument) as info:
        servicer._rows(request_)
    assert [v.field for v in info.value.violations] == [field]


@pytest.mark.usefixtures("observer")
def test_a_good_request_waits_for_the_rebuild() -> None:
    servicer = ReportingServicer(Rebuilding())  # type: ignore[arg-type]
    with pytest.raises(Unavailable):
        servicer._rows(pb.GetAdoptionReportRequest(period="2026-11"))


class RegistryLoading:
    """A restarted worker: counts rebuilt, the units topic not yet read to its end."""

    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.ready.set()
        self.registry_read = asyncio.Event()
        self.registry = Registry()
        self.counts = Counts()


@pytest.mark.usefixtures("observer")
def test_a_scope_is_not_refused_as_unknown_before_the_registry_is_read() -> None:
    worker = RegistryLoading()
    servicer = ReportingServicer(worker)  # type: ignore[arg-type]
    scoped = pb.GetAdoptionReportRequest(
        period="2026-11", scope=pb.AdoptionScope(ancestor_code="000.00.00.H23")
    )
    with pytest.raises(Unavailable) as info:
        servicer._rows(scoped)
    assert info.value.reason == "REGISTRY_LOADING"
    worker.registry_read.set()
    # read to its end: now an unknown ancestor is a definitive client error
    with pytest.raises(InvalidArgument) as refused:
        servicer._rows(scoped)
    assert [v.field for v in refused.value.violations] == ["scope.ancestor_code"]


def test_a_unit_reads_only_its_own_row() -> None:
    set_identity(Identity(Kind.UNIT, "000.01.00.H23"))
    servicer = ReportingServicer(Rebuilding())  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied, match="a unit reads only its own row"):
        servicer._rows(pb.GetAdoptionReportRequest(period="2026-11"))
    with pytest.raises(Unavailable):  # its own row: admitted, then the rebuild answers
        servicer._rows(pb.GetAdoptionReportRequest(period="2026-11", unit_codes=["000.01.00.H23"]))


# -- across the 2025 reorganisation (the two-tier sample: Phú Thọ and its predecessors) ------


def two_tier_registry() -> Registry:
    from lienthong_local.sample import sample_units

    units = Registry()
    for unit in sample_units("two-tier"):
        units.apply(UnitChanged(unit=unit, revision=1))
    return units


OLD_DISTRICT, OLD_COMMUNE = "000.00.31.H43", "000.01.31.H43"
OLD_DEPARTMENT, NEW_PROVINCE, NEW_COMMUNE = "000.02.00.H23", "000.00.00.H43", "000.00.101.H43"


def transition_counts() -> Counts:
    counts = Counts()
    serial = 0
    for unit, day, count, times in [
        (OLD_DISTRICT, "2025-06-10", Count.INCOMING_NET, 3),
        (OLD_DISTRICT, "2025-06-11", Count.OUTGOING_NET, 1),
        (OLD_COMMUNE, "2025-06-30", Count.INCOMING_NET, 2),
        (OLD_DEPARTMENT, "2025-06-12", Count.INCOMING_PAPER, 4),
        (NEW_PROVINCE, "2025-06-20", Count.OUTGOING_NET, 5),
        (NEW_PROVINCE, "2025-07-01", Count.OUTGOING_NET, 7),
        (NEW_COMMUNE, "2025-07-01", Count.INCOMING_NET, 6),
        (NEW_COMMUNE, "2025-07-31", Count.INCOMING_PAPER, 1),
    ]:
        for _ in range(times):
            serial += 1
            counts.add(Fact(str(serial), unit, day, count))
    return counts


def by_level(rows: list[pb.AdoptionRow]) -> dict[int, tuple[int, int, int]]:
    return {
        r.level: (r.incoming_total, r.outgoing_total, r.units)
        for r in rows
        if r.kind == pb.RowKind.ROW_KIND_LEVEL
    }


def test_a_period_before_the_change_has_three_levels_each_event_at_its_units_level() -> None:
    rows = report_rows(
        two_tier_registry(), transition_counts(), "2025-06", [], pb.AdoptionScope(per_unit=True)
    )
    levels = by_level(rows)
    assert list(levels) == [LEVEL.REPORT_LEVEL_PROVINCE, LEVEL.REPORT_LEVEL_DISTRICT,
                            LEVEL.REPORT_LEVEL_COMMUNE]  # fmt: skip
    # 3 old provinces' committees (H43 kept its code), 20 + 20 + 20 departments
    assert levels[LEVEL.REPORT_LEVEL_PROVINCE] == (4, 5, 3 + 60)
    assert levels[LEVEL.REPORT_LEVEL_DISTRICT] == (3, 1, 32)
    assert levels[LEVEL.REPORT_LEVEL_COMMUNE] == (2, 0, 479)
    units = {r.unit_code: r for r in rows if r.kind == pb.RowKind.ROW_KIND_UNIT}
    # units closed during a later period still appear in the one they existed in
    assert units[OLD_DISTRICT].incoming_total == 3
    assert NEW_COMMUNE not in units


def test_a_period_after_the_change_has_no_district_row() -> None:
    rows = report_rows(
        two_tier_registry(), transition_counts(), "2025-07", [], pb.AdoptionScope(per_unit=True)
    )
    levels = by_level(rows)
    assert list(levels) == [LEVEL.REPORT_LEVEL_PROVINCE, LEVEL.REPORT_LEVEL_COMMUNE]
    assert levels[LEVEL.REPORT_LEVEL_PROVINCE] == (0, 7, 1 + 14)
    assert levels[LEVEL.REPORT_LEVEL_COMMUNE] == (7, 0, 148)
    units = {r.unit_code for r in rows if r.kind == pb.RowKind.ROW_KIND_UNIT}
    assert OLD_DISTRICT not in units
    assert OLD_COMMUNE not in units
    # a scope over the province the same
    scoped = report_rows(
        two_tier_registry(), transition_counts(), "2025-07", [],
        pb.AdoptionScope(ancestor_code=NEW_PROVINCE),
    )  # fmt: skip
    assert by_level(scoped) == levels


def test_a_year_spanning_the_change_adds_up_exactly() -> None:
    registry, counts = two_tier_registry(), transition_counts()
    year = report_rows(registry, counts, "2025", [], pb.AdoptionScope())
    months = [
        report_rows(registry, counts, m, [], pb.AdoptionScope()) for m in ("2025-06", "2025-07")
    ]
    levels = by_level(year)
    assert list(levels) == [LEVEL.REPORT_LEVEL_PROVINCE, LEVEL.REPORT_LEVEL_DISTRICT,
                            LEVEL.REPORT_LEVEL_COMMUNE]  # fmt: skip
    for level, (incoming, outgoing, _) in levels.items():
        assert incoming == sum(by_level(m).get(level, (0, 0, 0))[0] for m in months)
        assert outgoing == sum(by_level(m).get(level, (0, 0, 0))[1] for m in months)
    assert year[0].incoming_total == sum(m[0].incoming_total for m in months) == 16
    assert year[0].outgoing_total == sum(m[0].outgoing_total for m in months) == 13
