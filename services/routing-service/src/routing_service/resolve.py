"""Recipient resolution: explicit codes and scopes to the exact list of recipients.

    resolution = resolve(index, sender_code="000.00.00.H23", recipients=recipients,
                         as_of="2026-11-20", forward_closed=False)
    resolution.unit_codes       # deliver to these, in this order
    resolution.bounces          # (code, reason): tell the sender
    resolution.forwards         # (closed code, successor code, reason): delivered instead
    resolution.via_axis         # the codes of unit_codes that are external agencies

The rules (the same for the fan-out and the ResolveRecipients dry run):

- Either code form is accepted; every recipient is named by its QCVN 102 code, once.
- The sender never delivers to itself (it is dropped silently, wherever it appears).
- Explicit codes come first, in the order given. An unknown, closed, not-yet-valid or
  inactive unit named explicitly bounces with the reason; a closed one names its
  successor(s). With ``forward_closed`` (the province's policy) a closed unit with exactly
  one successor open that day is delivered to that successor instead (following a chain of
  closures) and the forward is reported; one divided among several still bounces, naming
  them all.
- An external agency (a national directory entry) named explicitly is delivered through the
  national axis bridge (``via_axis``); scopes never include one, and a scope under one is
  refused.
- A scope is the units below ``ancestor_code`` (the whole registry when empty), of ``level``
  (every level when UNSPECIFIED), in code order, without each excluded unit *and everything
  below it*. Exclusions apply to their own scope only: an explicit code is delivered even if
  a scope excludes it. Units of a scope that are closed or inactive on the date are skipped
  silently: a scope means the units that exist that day.
- A scope under an unknown, closed or inactive ancestor is refused: one bounce keyed by the
  ancestor's code (after the 2025 reorganisation "every commune of district X" is refused
  for new documents once X is closed; resolving as of an earlier date still works).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from lienthong.common.v1.common_pb2 import Recipients, UnitLevel
from lienthong.routing.v1.routing_service_pb2 import Unit
from routing_service.index import UnitIndex

__all__ = ["Resolution", "resolve", "successors_of", "unit_state_problem"]

_EVERY_LEVEL = int(UnitLevel.UNIT_LEVEL_UNSPECIFIED)


@dataclass
class Resolution:
    unit_codes: list[str] = field(default_factory=list)
    bounces: list[tuple[str, str]] = field(default_factory=list)
    forwards: list[tuple[str, str, str]] = field(default_factory=list)
    via_axis: set[str] = field(default_factory=set)


def successors_of(unit: Unit) -> list[str]:
    """The codes of the units that took over ``unit`` (one, several or none)."""
    if unit.successor_code:
        return [unit.successor_code]
    return list(unit.successor_codes)


def _named(index: UnitIndex, code: str) -> str:
    unit = index.get(code)
    return f"{unit.code} ({unit.name})" if unit is not None else code


def unit_state_problem(index: UnitIndex, unit: Unit, as_of: str) -> str | None:
    """Why ``unit`` cannot receive on ``as_of`` (ISO date), phrased after its code."""
    if unit.valid_until and unit.valid_until <= as_of:
        successors = successors_of(unit)
        if len(successors) == 1:
            return (
                f"was closed on {unit.valid_until}; its successor is {_named(index, successors[0])}"
            )
        if successors:
            return f"was closed on {unit.valid_until} and divided; its successors are " + ", ".join(
                _named(index, code) for code in successors
            )
        return f"was closed on {unit.valid_until}; it has no successor"
    if unit.valid_from and as_of < unit.valid_from:
        return f"is valid only from {unit.valid_from}"
    if not unit.active and not unit.valid_until:
        # A closed unit is inactive from its closing day on, and open before it.
        return "is not active"
    return None


def _forward_target(index: UnitIndex, unit: Unit, as_of: str) -> Unit | None:
    """The one unit open on ``as_of`` that took over the closed ``unit``, if there is one."""
    seen = {unit.code}
    while unit.valid_until and unit.valid_until <= as_of:
        successors = successors_of(unit)
        if len(successors) != 1 or successors[0] in seen:
            return None
        successor = index.get(successors[0])
        if successor is None:
            return None
        seen.add(successor.code)
        unit = successor
    return unit if unit_state_problem(index, unit, as_of) is None else None


def _unknown_reason(index: UnitIndex, code: str) -> str:
    """Why an unknown code bounces; one of another province says how it could be reached."""
    level_1 = code.rpartition(".")[2]
    provinces = {
        unit.code.rpartition(".")[2]
        for unit in index.units(index.children(""))
        if unit.level == UnitLevel.UNIT_LEVEL_PROVINCE
    }
    if provinces and level_1 not in provinces:
        return (
            f"unknown recipient {code}: no such unit in the registry; it is outside the"
            " province: register it as an external agency to reach it through the national axis"
        )
    return f"unknown recipient {code}: no such unit in the registry"


def _canonical(index: UnitIndex, code: str) -> str:
    unit = index.get(code)
    return unit.code if unit is not None else code


def _excluded(index: UnitIndex, codes: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for code in codes:
        canonical = _canonical(index, code.strip())
        out.add(canonical)
        out.update(index.descendants(canonical))
    return out


def resolve(
    index: UnitIndex,
    *,
    sender_code: str,
    recipients: Recipients,
    as_of: str,
    forward_closed: bool = False,
) -> Resolution:
    result = Resolution()
    sender = _canonical(index, sender_code)
    seen: set[str] = {sender}
    bounced: set[str] = set()

    def bounce(code: str, reason: str) -> None:
        if code not in bounced:
            bounced.add(code)
            result.bounces.append((code, reason))

    for raw in recipients.unit_codes:
        code = raw.strip()
        unit = index.get(code)
        if unit is None:
            if code not in seen:
                bounce(code, _unknown_reason(index, code))
            continue
        if unit.code in seen:
            continue
        problem = unit_state_problem(index, unit, as_of)
        target = _forward_target(index, unit, as_of) if problem and forward_closed else None
        if target is not None:
            if target.code == sender:
                continue
            if target.code not in seen:
                seen.add(target.code)
                result.unit_codes.append(target.code)
                if target.external:
                    result.via_axis.add(target.code)
            result.forwards.append(
                (unit.code, target.code, f"recipient {unit.code} {problem}; forwarded to it")
            )
            seen.add(unit.code)
            continue
        if problem:
            bounce(unit.code, f"recipient {unit.code} {problem}")
            continue
        seen.add(unit.code)
        result.unit_codes.append(unit.code)
        if unit.external:
            result.via_axis.add(unit.code)

    members: set[str] = set()
    for scope in recipients.scopes:
        if scope.ancestor_code:
            ancestor = index.get(scope.ancestor_code.strip())
            if ancestor is None:
                bounce(
                    scope.ancestor_code,
                    f"scope refused: unknown unit {scope.ancestor_code}, no such unit in the"
                    " registry",
                )
                continue
            problem = unit_state_problem(index, ancestor, as_of)
            if ancestor.external:
                problem = "is an external agency (scopes stay inside the province)"
            if problem:
                bounce(ancestor.code, f"scope under {ancestor.code} refused: it {problem}")
                continue
            candidates = index.descendants(ancestor.code)
        else:
            candidates = index.codes()
        excluded = _excluded(index, scope.exclude_codes)
        level = scope.level
        for unit in index.units(candidates):
            if unit.external or (level != _EVERY_LEVEL and unit.level != level):
                continue
            if unit.code in seen or unit.code in excluded or unit.code in members:
                continue
            if unit_state_problem(index, unit, as_of) is None:
                members.add(unit.code)
    result.unit_codes.extend(sorted(members))
    return result
