"""The province's table from the folded counts and the unit registry: pure, no I/O.

Levels are the province's (seed 004): cấp tỉnh = the People's Committee and the departments,
cấp huyện = districts, cấp xã = communes. A unit's level is read from the registry when the
report is made, so a registry that arrives after the events still places them. Units keep
their level when they close (a district closed on 1 July 2025 stays a district), so an event
counts at the level its unit had when it happened.

Across the 2025 reorganisation: a province's scope holds the units that existed on some day
of the period (closed ones included, for the days before they closed) and those with counts
in it; a period in which no district existed and none has counts has no district row (two
tiers), a period before has three, a year spanning the change has three and adds up exactly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction

from lienthong.common.v1.common_pb2 import UnitLevel
from lienthong.events.v1.events_pb2 import UnitChanged
from lienthong.reporting.v1 import reporting_service_pb2 as pb
from lienthong.routing.v1.routing_service_pb2 import Unit
from lienthong_kit.errors import FieldViolation, InvalidArgument
from reporting_service.folding import (
    Count,
    Counts,
    check_period,
    days_of_period,
)

__all__ = [
    "LEVEL_NAMES",
    "MAX_UNITS",
    "Registry",
    "Tally",
    "check_request",
    "display",
    "level_tallies",
    "report_rows",
    "share",
    "tally",
]

MAX_UNITS = 500
REPORT_LEVELS = (
    pb.ReportLevel.REPORT_LEVEL_PROVINCE,
    pb.ReportLevel.REPORT_LEVEL_DISTRICT,
    pb.ReportLevel.REPORT_LEVEL_COMMUNE,
)
# Metric label values (docs/metrics.md); "unassigned": units not (yet) in the registry.
LEVEL_NAMES = {
    pb.ReportLevel.REPORT_LEVEL_PROVINCE: "province",
    pb.ReportLevel.REPORT_LEVEL_DISTRICT: "district",
    pb.ReportLevel.REPORT_LEVEL_COMMUNE: "commune",
    pb.ReportLevel.REPORT_LEVEL_UNSPECIFIED: "unassigned",
}
_FROM_UNIT_LEVEL = {
    UnitLevel.UNIT_LEVEL_PROVINCE: pb.ReportLevel.REPORT_LEVEL_PROVINCE,
    UnitLevel.UNIT_LEVEL_DEPARTMENT: pb.ReportLevel.REPORT_LEVEL_PROVINCE,
    UnitLevel.UNIT_LEVEL_DISTRICT: pb.ReportLevel.REPORT_LEVEL_DISTRICT,
    UnitLevel.UNIT_LEVEL_COMMUNE: pb.ReportLevel.REPORT_LEVEL_COMMUNE,
}


class Registry:
    """The units, as the compacted units topic says (newest revision of each wins)."""

    def __init__(self) -> None:
        self._units: dict[str, Unit] = {}
        self._revisions: dict[str, int] = {}

    def apply(self, changed: UnitChanged) -> None:
        code = changed.unit.code
        if code and changed.revision >= self._revisions.get(code, -1):
            self._units[code] = changed.unit
            self._revisions[code] = changed.revision

    def __len__(self) -> int:
        return len(self._units)

    def __contains__(self, code: object) -> bool:
        return code in self._units

    def level(self, code: str) -> pb.ReportLevel.ValueType:
        unit = self._units.get(code)
        if unit is None:
            return pb.ReportLevel.REPORT_LEVEL_UNSPECIFIED
        return _FROM_UNIT_LEVEL.get(unit.level, pb.ReportLevel.REPORT_LEVEL_UNSPECIFIED)

    def name(self, code: str) -> str:
        unit = self._units.get(code)
        return unit.name if unit is not None else ""

    def active(self) -> set[str]:
        return {code for code, unit in self._units.items() if unit.active}

    def existing(self, first_day: str, last_day: str) -> set[str]:
        """Units open on some day from ``first_day`` to ``last_day`` (ISO dates): active ones
        and closed ones (inactive with a closing day), within their validity span."""
        return {
            code
            for code, unit in self._units.items()
            if (unit.active or unit.valid_until)
            and (not unit.valid_from or unit.valid_from <= last_day)
            and (not unit.valid_until or unit.valid_until > first_day)
        }

    def under(self, ancestor: str) -> set[str]:
        """The units at or under ``ancestor`` (following parent codes)."""
        found: set[str] = set()
        for code in self._units:
            seen: set[str] = set()
            current = code
            while current and current not in seen:
                if current == ancestor:
                    found.add(code)
                    break
                seen.add(current)
                unit = self._units.get(current)
                current = unit.parent_code if unit is not None else ""
        return found


@dataclass
class Tally:
    """The counts of a set of units in a period, and how many of them are connected."""

    counts: Counter[Count] = field(default_factory=Counter)
    units: int = 0
    connected: int = 0
    only_receiving: int = 0


def tally(codes: Iterable[str], counts: Counts, period: str) -> Tally:
    total = Tally()
    for code in codes:
        of_unit = counts.of(code, period)
        total.counts.update(of_unit)
        total.units += 1
        received, sent = of_unit[Count.INCOMING_NET] > 0, of_unit[Count.OUTGOING_NET] > 0
        total.connected += received or sent
        total.only_receiving += received and not sent
    return total


def display(numerator: int, denominator: int) -> str:
    """Percent with one decimal, rounded half up: display(34503, 45922) == "75.1%"."""
    if denominator <= 0:
        return ""
    tenths = int(Fraction(numerator * 1000, denominator) + Fraction(1, 2))
    return f"{tenths // 10}.{tenths % 10}%"


def share(numerator: int, denominator: int) -> pb.Share:
    return pb.Share(
        numerator=numerator, denominator=denominator, display=display(numerator, denominator)
    )


def _row(
    kind: pb.RowKind.ValueType,
    code: str,
    level: pb.ReportLevel.ValueType,
    period: str,
    of: Tally,
    name: str = "",
) -> pb.AdoptionRow:
    c = of.counts
    incoming = c[Count.INCOMING_NET] + c[Count.INCOMING_PAPER]
    outgoing = c[Count.OUTGOING_NET] + c[Count.OUTGOING_PAPER]
    return pb.AdoptionRow(
        unit_code=code,
        period=period,
        kind=kind,
        level=level,
        name=name,
        incoming_total=incoming,
        incoming_over_network=c[Count.INCOMING_NET],
        outgoing_total=outgoing,
        outgoing_over_network=c[Count.OUTGOING_NET],
        incoming_network_share=share(c[Count.INCOMING_NET], incoming),
        outgoing_network_share=share(c[Count.OUTGOING_NET], outgoing),
        outgoing_personal_signed=c[Count.SIGNED_PERSONAL],
        outgoing_organisation_signed=c[Count.SIGNED_ORGANISATION],
        personal_signature_share=share(c[Count.SIGNED_PERSONAL], c[Count.OUTGOING_NET]),
        organisation_signature_share=share(c[Count.SIGNED_ORGANISATION], c[Count.OUTGOING_NET]),
        units=of.units,
        units_connected=of.connected,
        units_only_receiving=of.only_receiving,
        deliveries_acknowledged=c[Count.ACKNOWLEDGED],
        acknowledged_same_day=c[Count.ACK_SAME_DAY],
        same_day_share=share(c[Count.ACK_SAME_DAY], c[Count.ACKNOWLEDGED]),
        handled_before_due=c[Count.HANDLED_BEFORE],
        handled_on_due=c[Count.HANDLED_ON],
        handled_after_due=c[Count.HANDLED_AFTER],
    )


def _scope_units(registry: Registry, counts: Counts, period: str, ancestor: str) -> set[str]:
    days = days_of_period(period)
    of_period = registry.existing(days[0], days[-1]) | counts.units_in(period)
    if not ancestor:
        return of_period
    if ancestor not in registry:
        raise InvalidArgument(
            [FieldViolation("scope.ancestor_code", f"{ancestor!r} is not in the unit registry")]
        )
    return registry.under(ancestor) & of_period


def level_tallies(
    registry: Registry, counts: Counts, period: str, units: set[str] | None = None
) -> dict[pb.ReportLevel.ValueType, Tally]:
    """Per level (UNSPECIFIED: units not in the registry) for ``units`` or every unit."""
    if units is None:
        units = _scope_units(registry, counts, period, "")
    by_level: dict[pb.ReportLevel.ValueType, list[str]] = {level: [] for level in LEVEL_NAMES}
    for code in units:
        by_level[registry.level(code)].append(code)
    return {level: tally(codes, counts, period) for level, codes in by_level.items()}


def check_request(period: str, unit_codes: Iterable[str]) -> list[str]:
    """What a request alone can get wrong (InvalidArgument); the unit codes, once each."""
    check_period(period)
    wanted = list(dict.fromkeys(unit_codes))
    if len(wanted) > MAX_UNITS:
        raise InvalidArgument([FieldViolation("unit_codes", f"at most {MAX_UNITS} unit codes")])
    return wanted


def _unit_row(registry: Registry, counts: Counts, period: str, code: str) -> pb.AdoptionRow:
    of = tally([code], counts, period)
    level = registry.level(code)
    return _row(pb.RowKind.ROW_KIND_UNIT, code, level, period, of, registry.name(code))


def report_rows(
    registry: Registry,
    counts: Counts,
    period: str,
    unit_codes: Iterable[str],
    scope: pb.AdoptionScope,
) -> list[pb.AdoptionRow]:
    """GetAdoptionReport's rows (see the proto for their order and meaning)."""
    wanted = check_request(period, unit_codes)
    if wanted:
        return [_unit_row(registry, counts, period, code) for code in wanted]
    units = _scope_units(registry, counts, period, scope.ancestor_code)
    rows = [
        _row(
            pb.RowKind.ROW_KIND_SCOPE,
            scope.ancestor_code,
            pb.ReportLevel.REPORT_LEVEL_UNSPECIFIED,
            period,
            tally(units, counts, period),
        )
    ]
    levels = level_tallies(registry, counts, period, units)
    rows += [
        _row(pb.RowKind.ROW_KIND_LEVEL, scope.ancestor_code, level, period, levels[level])
        for level in REPORT_LEVELS
        if level != pb.ReportLevel.REPORT_LEVEL_DISTRICT or levels[level].units
    ]
    if scope.per_unit:
        rows += [_unit_row(registry, counts, period, code) for code in sorted(units)]
    return rows
