"""The in-memory registry index each replica keeps: every unit, by either code form.

    index = UnitIndex()
    index.apply(unit, revision)          # newer revisions win; older ones are ignored
    index.get("H23.148")                 # the unit, looked up by either code form
    index.descendants("000.00.31.H23")   # every unit below, in code order

The registry is small (hundreds of units), so the whole of it lives in memory; the store is
the source of truth and the compacted units topic keeps every replica's copy fresh.
"""

from __future__ import annotations

from collections.abc import Iterable

from lienthong.routing.v1.routing_service_pb2 import Unit

__all__ = ["UnitIndex"]


class UnitIndex:
    def __init__(self) -> None:
        self._units: dict[str, Unit] = {}
        self._revisions: dict[str, int] = {}
        self._by_2020: dict[str, str] = {}
        self._children: dict[str, set[str]] = {}
        self._sorted: list[str] | None = None

    def __len__(self) -> int:
        return len(self._units)

    def apply(self, unit: Unit, revision: int) -> bool:
        """Take ``unit`` unless a newer revision of it is already here; True if taken."""
        code = unit.code
        if revision < self._revisions.get(code, -1):
            return False
        old = self._units.get(code)
        if old is not None:
            self._children.get(old.parent_code, set()).discard(code)
            if old.code_2020 and self._by_2020.get(old.code_2020) == code:
                del self._by_2020[old.code_2020]
        else:
            self._sorted = None
        copy = Unit()
        copy.CopyFrom(unit)
        self._units[code] = copy
        self._revisions[code] = revision
        if unit.code_2020:
            self._by_2020[unit.code_2020] = code
        self._children.setdefault(unit.parent_code, set()).add(code)
        return True

    def get(self, code: str) -> Unit | None:
        """The unit with this code in either form (QCVN 102 or Decision 20/2020)."""
        unit = self._units.get(code)
        if unit is None and code in self._by_2020:
            unit = self._units.get(self._by_2020[code])
        return unit

    def owner_of_2020(self, code_2020: str) -> str | None:
        return self._by_2020.get(code_2020)

    def codes(self) -> list[str]:
        """Every code, sorted."""
        if self._sorted is None:
            self._sorted = sorted(self._units)
        return self._sorted

    def units(self, codes: Iterable[str]) -> list[Unit]:
        return [self._units[code] for code in codes]

    def children(self, code: str) -> list[str]:
        return sorted(self._children.get(code, ()))

    def descendants(self, code: str) -> list[str]:
        """Every unit below ``code`` (not ``code`` itself), sorted; cycles are cut."""
        found: set[str] = set()
        stack = [code]
        while stack:
            for child in self._children.get(stack.pop(), ()):
                if child not in found and child != code:
                    found.add(child)
                    stack.append(child)
        return sorted(found)
