"""The move to two tiers as an operator runs it: a plan built from the old registry and the
official mapping, every problem it has, and its CSV for the province's approval. Pure, no I/O.

    communes = read_mapping(text)       # each new commune and the old communes it was made of
    plan = plan_transition(units, communes, province="000.00.00.H43",
                           merged=["000.00.00.H23", "000.00.00.H60"], effective="2025-07-01")
    plan_problems(plan, units, pending={})  # [(rows[i].field, problem)], every one
    summary(plan, pending={})           # the dry run, in lines an operator reads
    plan_csv(plan)                      # a registry import file with an action column

The plan closes, from the effective date, every district of the provinces (they have no
successor of their own: a district's successors are the new communes its communes went into),
every old commune (with the new communes it went into: several when it was divided), the
merged provinces' committees (their successor is the surviving province) and their
departments (the surviving province's department of the same name, else its committee); it
creates the new communes directly under the province. The surviving province keeps its code
and its departments (Decision 09/2025/QĐ-TTg). Applying the file is an import
(``lienthong units import plan.csv``): validated whole before anything changes.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from lienthong.common.v1.common_pb2 import UnitLevel
from lienthong.routing.v1.routing_service_pb2 import Unit

__all__ = [
    "CSV_COLUMNS",
    "NewCommune",
    "PlanRow",
    "plan_csv",
    "plan_problems",
    "plan_transition",
    "read_mapping",
    "summary",
]

CREATE, CLOSE = "create", "close"
CSV_COLUMNS = (
    "action", "code", "code_2020", "administrative_code", "name", "level", "parent_code",
    "active", "valid_from", "valid_until", "successor_code", "successor_codes",
    "contact_name", "contact_email", "contact_phone",
)  # fmt: skip
_LEVEL_NAMES = {
    UnitLevel.UNIT_LEVEL_PROVINCE: "province",
    UnitLevel.UNIT_LEVEL_DEPARTMENT: "department",
    UnitLevel.UNIT_LEVEL_DISTRICT: "district",
    UnitLevel.UNIT_LEVEL_COMMUNE: "commune",
}


@dataclass(frozen=True)
class NewCommune:
    administrative_code: str
    name: str
    old_codes: tuple[str, ...]  # the old communes' administrative codes


@dataclass(frozen=True)
class PlanRow:
    action: str  # CREATE or CLOSE
    unit: Unit  # the unit as it is from the effective date


def _bare(text: str) -> str:
    """Names come in NFC/NFD and old/new tone placement: compare without marks."""
    decomposed = unicodedata.normalize("NFD", text.replace("Đ", "D").replace("đ", "d"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


def read_mapping(text: str) -> tuple[list[NewCommune], list[str]]:
    """``code,name,old_codes`` rows (official division codes, old ones space-separated); the
    communes, and every problem by line."""
    communes: list[NewCommune] = []
    problems: list[str] = []
    reader = csv.DictReader(io.StringIO(text))
    missing = {"code", "name", "old_codes"} - set(reader.fieldnames or ())
    if missing:
        return [], [f"line 1: missing columns {', '.join(sorted(missing))}"]
    seen: dict[str, int] = {}
    for record in reader:
        line = reader.line_num
        code = (record["code"] or "").strip()
        name = unicodedata.normalize("NFC", (record["name"] or "").strip())
        olds = tuple((record["old_codes"] or "").split())
        if not code.isdigit():
            problems.append(f"line {line}: code: {code!r} is not an administrative code")
        elif code in seen:
            problems.append(f"line {line}: code: {code} is also line {seen[code]}")
        seen.setdefault(code, line)
        if not name:
            problems.append(f"line {line}: name: is required")
        if not olds:
            problems.append(f"line {line}: old_codes: name the old communes it was made of")
        communes.append(NewCommune(code, name, olds))
    return communes, problems


def _closed(unit: Unit, effective: str, successors: Iterable[str]) -> Unit:
    out = Unit()
    out.CopyFrom(unit)
    out.active = False
    out.valid_until = effective
    out.successor_code = ""
    del out.successor_codes[:]
    named = sorted(set(successors))
    if len(named) == 1:
        out.successor_code = named[0]
    else:
        out.successor_codes.extend(named)
    return out


def _is_open(unit: Unit, day: str) -> bool:
    return not unit.valid_until or unit.valid_until > day


def plan_transition(
    units: Sequence[Unit],
    communes: Sequence[NewCommune],
    *,
    province: str,
    merged: Sequence[str],
    effective: str,
    first_number: int = 101,
) -> list[PlanRow]:
    """The plan (creates in code order, then closes by level and code); ValueError if ``province``
    or a merged province is not in ``units``."""
    by_code = {unit.code: unit for unit in units}
    for code in (province, *merged):
        if code not in by_code:
            raise ValueError(f"{code}: no such unit in the registry")
    top = by_code[province]
    level_1 = province.rsplit(".", 1)[-1]
    prefix_2020 = top.code_2020 or level_1

    def top_of(unit: Unit) -> str:
        seen: set[str] = set()
        while unit.parent_code and unit.parent_code in by_code and unit.code not in seen:
            seen.add(unit.code)
            unit = by_code[unit.parent_code]
        return unit.code

    provinces = {province, *merged}
    in_scope = [u for u in units if top_of(u) in provinces and _is_open(u, effective)]
    old_communes = {
        u.administrative_code: u.code
        for u in in_scope
        if u.level == UnitLevel.UNIT_LEVEL_COMMUNE and u.administrative_code
    }
    plan: list[PlanRow] = []
    successors: dict[str, list[str]] = {}
    ordered = sorted(communes, key=lambda c: c.administrative_code)
    for number, commune in enumerate(ordered, start=first_number):
        code = f"000.00.{number:03d}.{level_1}"
        plan.append(
            PlanRow(
                CREATE,
                Unit(
                    code=code,
                    code_2020=f"{prefix_2020}.{commune.administrative_code}",
                    administrative_code=commune.administrative_code,
                    name=commune.name,
                    level=UnitLevel.UNIT_LEVEL_COMMUNE,
                    parent_code=province,
                    active=True,
                    valid_from=effective,
                ),
            )
        )
        for old in commune.old_codes:
            if old in old_communes:
                successors.setdefault(old_communes[old], []).append(code)
    departments = {
        _bare(u.name): u.code
        for u in in_scope
        if u.parent_code == province and u.level == UnitLevel.UNIT_LEVEL_DEPARTMENT
    }
    district_parts: dict[str, list[str]] = {}
    for unit in in_scope:
        if unit.level == UnitLevel.UNIT_LEVEL_COMMUNE:
            district_parts.setdefault(unit.parent_code, []).extend(successors.get(unit.code, []))
    # level, then code: the same plan however the registry was read
    for unit in sorted(in_scope, key=lambda u: (u.level, u.code)):
        if unit.code == province:
            continue
        if unit.level == UnitLevel.UNIT_LEVEL_PROVINCE:
            plan.append(PlanRow(CLOSE, _closed(unit, effective, [province])))
        elif unit.level == UnitLevel.UNIT_LEVEL_DEPARTMENT:
            if unit.parent_code == province:
                continue  # the surviving province keeps its departments
            heir = departments.get(_bare(unit.name), province)
            plan.append(PlanRow(CLOSE, _closed(unit, effective, [heir])))
        elif unit.level == UnitLevel.UNIT_LEVEL_DISTRICT:
            parts = district_parts.get(unit.code, [])
            plan.append(PlanRow(CLOSE, _closed(unit, effective, parts)))
        elif unit.level == UnitLevel.UNIT_LEVEL_COMMUNE:
            plan.append(PlanRow(CLOSE, _closed(unit, effective, successors.get(unit.code, []))))
    return plan


def _successors(unit: Unit) -> list[str]:
    return [unit.successor_code] if unit.successor_code else list(unit.successor_codes)


def plan_problems(
    plan: Sequence[PlanRow], units: Sequence[Unit], *, pending: Mapping[str, int]
) -> list[tuple[str, str]]:
    """Every problem of the plan against the registry, as ``(rows[i].field, problem)``:
    duplicate rows, closing an unknown unit, creating an existing one, an unknown or closing
    successor, a cycle of successors, a unit left under a closed parent, and a unit closed
    without a successor while deliveries to it are pending (``pending``: code -> count)."""
    registry = {unit.code: unit for unit in units}
    problems: list[tuple[str, str]] = []
    first: dict[str, int] = {}
    final = dict(registry)
    for i, row in enumerate(plan):
        code = row.unit.code
        if code in first:
            problems.append((f"rows[{i}].code", f"{code} is also row {first[code]}"))
            continue
        first[code] = i
        if row.action == CLOSE and code not in registry:
            problems.append((f"rows[{i}].code", f"no unit {code!r} in the registry to close"))
        elif row.action == CREATE and code in registry:
            problems.append((f"rows[{i}].code", f"{code} is already in the registry"))
        elif row.action not in (CREATE, CLOSE):
            problems.append((f"rows[{i}].action", f"{row.action!r} is not create or close"))
        final[code] = row.unit

    def closing(code: str) -> bool:
        unit = final.get(code)
        return unit is not None and bool(unit.valid_until)

    for i, row in enumerate(plan):
        unit = row.unit
        named = _successors(unit)
        field = "successor_code" if unit.successor_code else "successor_codes"
        for k, code in enumerate(named):
            where = field if field == "successor_code" else f"{field}[{k}]"
            if code not in final:
                problems.append(
                    (f"rows[{i}].{where}", f"no unit {code!r} in the registry or the plan")
                )
            elif closing(code):
                problems.append((f"rows[{i}].{where}", f"{code} is closed itself"))
        if row.action == CLOSE and not named and pending.get(unit.code, 0) > 0:
            problems.append(
                (
                    f"rows[{i}].successor_codes",
                    f"{pending[unit.code]} deliveries to {unit.code} are pending: name a successor",
                )
            )
        if not unit.valid_until and unit.parent_code and closing(unit.parent_code):
            problems.append(
                (
                    f"rows[{i}].parent_code",
                    f"the parent {unit.parent_code} closes on"
                    f" {final[unit.parent_code].valid_until}",
                )
            )
        cycle = _cycle(unit.code, final)
        if cycle:
            problems.append((f"rows[{i}].{field}", "successors go round: " + " → ".join(cycle)))
    # units the plan leaves open under a parent it closes
    for code, unit in registry.items():
        if code not in first and _is_open(unit, "9999-12-31") and unit.parent_code in first:
            parent = final[unit.parent_code]
            if parent.valid_until:
                problems.append(
                    (
                        f"rows[{first[unit.parent_code]}].code",
                        f"{code} stays open under it: close or move it too",
                    )
                )
    return problems


def _cycle(start: str, final: Mapping[str, Unit]) -> list[str]:
    """The successor chain from ``start`` back to itself, if there is one (else empty)."""
    path = [start]
    stack = [iter(_successors(final[start]))] if start in final else []
    done: set[str] = set()
    while stack:
        nxt = next(stack[-1], None)
        if nxt is None:
            stack.pop()
            done.add(path.pop())
            continue
        if nxt == start:
            return [*path, start]
        if nxt in path or nxt in done or nxt not in final:
            continue
        path.append(nxt)
        stack.append(iter(_successors(final[nxt])))
    return []


def summary(plan: Sequence[PlanRow], *, pending: Mapping[str, int]) -> list[str]:
    """The dry run: what changes, in lines."""
    by = Counter((row.action, int(row.unit.level)) for row in plan)
    lines = []
    for action in (CLOSE, CREATE):
        parts = [
            f"{n} {_LEVEL_NAMES.get(level, '?')}"  # type: ignore[call-overload]
            for (a, level), n in sorted(by.items())
            if a == action
        ]
        lines.append(f"{action}: " + (", ".join(parts) or "nothing"))
    closes = [row.unit for row in plan if row.action == CLOSE]
    divided = [u.code for u in closes if len(u.successor_codes) > 1]
    orphans = [u.code for u in closes if not _successors(u)]
    lines.append(f"closed with several successors: {len(divided)}")
    lines.append(
        f"closed without a successor: {len(orphans)}"
        + (f" ({', '.join(orphans[:10])})" if orphans else "")
    )
    waiting = {u.code: pending[u.code] for u in closes if pending.get(u.code, 0) > 0}
    lines.append(
        f"pending deliveries to closing units: {sum(waiting.values())} at {len(waiting)} units"
    )
    if plan:
        lines.append(f"effective: {next(r.unit.valid_from or r.unit.valid_until for r in plan)}")
    return lines


def plan_csv(plan: Sequence[PlanRow]) -> str:
    """The plan as a registry import file (`lienthong units import`) plus an ``action`` column."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in plan:
        u = row.unit
        contact = u.contacts[0] if u.contacts else None
        writer.writerow(
            [
                row.action, u.code, u.code_2020, u.administrative_code, u.name,
                _LEVEL_NAMES.get(u.level, ""), u.parent_code, "true" if u.active else "false",
                u.valid_from, u.valid_until, u.successor_code, " ".join(u.successor_codes),
                contact.name if contact else "", contact.email if contact else "",
                contact.phone if contact else "",
            ]
        )  # fmt: skip
    return out.getvalue()
