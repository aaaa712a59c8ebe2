"""Which units exist and are open, as every service sees it: the registry's compacted
``units`` topic, tailed from the beginning by each replica (routing-service publishes it).

    directory = UnitDirectory()
    tail = TopicTail(settings, [topics.units], directory.on_event, from_beginning=True,
                     caught_up=directory.read)
    problem = directory.refusal("000.03.12.H23", today)   # None when the unit may act
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date

from lienthong.events.v1.events_pb2 import UnitChanged
from lienthong_kit.envelope import EventEnvelope, carries, unpack

__all__ = ["UnitDirectory", "UnitState"]


@dataclass(frozen=True)
class UnitState:
    code: str
    active: bool
    valid_until: str  # ISO date the code closed, or ""
    successor_code: str
    revision: int

    def refusal(self, today: date) -> str | None:
        """Why this unit may not act today, or None."""
        # a unit closing on a date (a transition plan applied ahead) acts until that day, as
        # routing still delivers to it; without a date, inactive means closed now
        if self.valid_until:
            if self.valid_until > today.isoformat():
                return None
        elif self.active:
            return None
        reason = f"unit {self.code} was closed"
        if self.valid_until:
            reason += f" on {self.valid_until}"
        if self.successor_code:
            reason += f"; its successor is {self.successor_code}"
        return reason


class UnitDirectory:
    def __init__(self) -> None:
        self._units: dict[str, UnitState] = {}
        # set once the registry is read to its end (the tail feeding it sets it): before that an
        # unknown code proves nothing, a replica just restarted would refuse real units
        self.read = asyncio.Event()

    @property
    def loaded(self) -> bool:
        return self.read.is_set()

    def __len__(self) -> int:
        return len(self._units)

    async def on_event(self, envelope: EventEnvelope) -> None:
        if carries(envelope, UnitChanged):
            self.apply(unpack(envelope, UnitChanged))

    def apply(self, changed: UnitChanged) -> None:
        unit = changed.unit
        state = UnitState(
            unit.code, unit.active, unit.valid_until, unit.successor_code, changed.revision
        )
        for code in filter(None, (unit.code, unit.code_2020)):
            known = self._units.get(code)
            # a replica keeps the newest revision whatever order the records came in
            if known is None or known.revision <= changed.revision:
                self._units[code] = state

    def get(self, code: str) -> UnitState | None:
        return self._units.get(code)

    def refusal(self, code: str, today: date) -> str | None:
        """Why ``code`` may not call the platform today (unknown or closed), or None."""
        state = self._units.get(code)
        if state is None:
            return f"unit {code} is not in the province's registry"
        return state.refusal(today)
