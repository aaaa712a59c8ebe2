"""The unit registry: the store (source of truth), the in-memory index, the units topic.

    registry = Registry(UnitStore(deps.db), deps.producer, deps.topics, deps.settings)
    await registry.load()                 # the store into the index, before any routing
    await registry.upsert(unit)           # store, then this replica's index, then the topic
    registry.follow                       # background task: the units topic from offset 0

Every write goes to the store and then, as a ``UnitChanged`` keyed by the unit's code, to the
compacted units topic; every replica reads that topic from the beginning (outside any
consumer group) into its index, so a change made on one replica reaches the others within
the broker's fetch wait. A periodic reload from the store repairs a change whose publish
failed. Each record carries a revision (nanoseconds since the epoch): an index keeps the
newest, so replaying old records never undoes a newer change (the store: store.py).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Sequence
from datetime import date

from lienthong.common.v1.common_pb2 import UnitLevel
from lienthong.events.v1.events_pb2 import UnitChanged
from lienthong.routing.v1.routing_service_pb2 import Unit
from lienthong_kit.authz import current_identity
from lienthong_kit.codes import unit_code_problem
from lienthong_kit.context import caller_unit
from lienthong_kit.envelope import EventEnvelope, new_event, unpack
from lienthong_kit.errors import NotFound, Unauthenticated, Violations
from lienthong_kit.infra import every
from lienthong_kit.kafka import EventProducer, Topics, TopicTail
from lienthong_kit.logs import get_logger
from lienthong_kit.settings import KitSettings
from lienthong_kit.vocabulary import today_in_vietnam
from routing_service.index import UnitIndex
from routing_service.store import UnitStore

__all__ = [
    "MAX_IMPORT_ROWS",
    "Registry",
    "date_problem",
    "today",
    "unit_violations",
    "validate_unit",
]

log = get_logger(__name__)

PRODUCER = "routing-service"
MAX_IMPORT_ROWS = 20_000
RESYNC_SECONDS = 60.0
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def today() -> str:
    """Today's ISO date in Vietnam."""
    return today_in_vietnam().isoformat()


def date_problem(value: str) -> str | None:
    if not _DATE.match(value):
        return f"{value!r} is not an ISO 8601 date (yyyy-MM-dd)"
    try:
        date.fromisoformat(value)
    except ValueError:
        return f"{value!r} is not a calendar date"
    return None


def unit_violations(
    unit: Unit,
    v: Violations,
    *,
    prefix: str,
    parent: Unit | None,
    parent_known: bool | None = None,
) -> None:
    """Add every problem of ``unit`` to ``v`` (fields named ``<prefix>.<field>``).

    ``parent`` is the parent's current record if known; ``parent_known`` overrides whether a
    parent counts as existing (an import's parent may be another row of the same import).
    """
    exists = parent is not None if parent_known is None else parent_known
    for name in ("code", "code_2020", "parent_code", "successor_code"):
        value = getattr(unit, name)
        if value or name == "code":
            problem = unit_code_problem(value)
            if problem:
                v.add(f"{prefix}.{name}", problem)
    v.require(bool(unit.name.strip()), f"{prefix}.name", "is required")
    field = f"{prefix}.parent_code"
    if unit.external:
        # a national directory entry: its parent is in the national directory, not here
        v.require(
            unit.level != UnitLevel.UNIT_LEVEL_PROVINCE,
            f"{prefix}.level",
            "an external agency is not the province",
        )
    elif unit.level == UnitLevel.UNIT_LEVEL_UNSPECIFIED:
        v.add(f"{prefix}.level", "is required")
    elif unit.level == UnitLevel.UNIT_LEVEL_PROVINCE:
        v.require(not unit.parent_code, field, "a province has no parent")
    else:
        below = v.require(bool(unit.parent_code), field, "is required below the province")
        known = below and v.require(exists, field, f"no unit {unit.parent_code!r} in the registry")
        if known and parent is not None and parent.level >= unit.level:
            levels = f"{UnitLevel.Name(unit.level)} under a {UnitLevel.Name(parent.level)}"
            v.add(field, f"a unit cannot be a {levels}")
    if unit.code and unit.parent_code == unit.code:
        v.add(field, "a unit is not its own parent")
    if unit.code and unit.successor_code == unit.code:
        v.add(f"{prefix}.successor_code", "a unit does not succeed itself")
    if unit.successor_code and unit.successor_codes:
        v.add(f"{prefix}.successor_codes", "name one successor_code or several successor_codes")
    named: set[str] = set()
    for i, code in enumerate(unit.successor_codes):
        field = f"{prefix}.successor_codes[{i}]"
        problem = unit_code_problem(code)
        if problem:
            v.add(field, problem)
        elif code == unit.code:
            v.add(field, "a unit does not succeed itself")
        elif code in named:
            v.add(field, f"{code} is named twice")
        named.add(code)
    for name in ("valid_from", "valid_until"):
        value = getattr(unit, name)
        if value:
            problem = date_problem(value)
            if problem:
                v.add(f"{prefix}.{name}", problem)
    if (
        unit.valid_from
        and unit.valid_until
        and not date_problem(unit.valid_from)
        and not date_problem(unit.valid_until)
        and unit.valid_until < unit.valid_from
    ):
        v.add(f"{prefix}.valid_until", "is before valid_from")
    for i, contact in enumerate(unit.contacts):
        v.require(
            bool(contact.name or contact.email or contact.phone),
            f"{prefix}.contacts[{i}]",
            "needs a name, an e-mail or a phone number",
        )


def validate_unit(unit: Unit, *, parent: Unit | None, parent_known: bool | None = None) -> None:
    v = Violations()
    unit_violations(unit, v, prefix="unit", parent=parent, parent_known=parent_known)
    v.raise_if_any()


def _clean(unit: Unit) -> Unit:
    out = Unit()
    out.CopyFrom(unit)
    out.name = unit.name.strip()
    return out


class _Revisions:
    """Strictly increasing nanosecond revisions on this replica."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        self._last = max(time.time_ns(), self._last + 1)
        return self._last


class Registry:
    def __init__(
        self,
        store: UnitStore,
        producer: EventProducer,
        topics: Topics,
        settings: KitSettings,
        index: UnitIndex | None = None,
    ) -> None:
        self._store = store
        self.index = index if index is not None else UnitIndex()
        self._producer = producer
        self._topics = topics
        self._settings = settings
        self._revisions = _Revisions()

    # -- reading the store and the topic into the index -------------------------------------

    async def load(self) -> int:
        """Every unit of the store into the index (a few hundred documents: one read)."""
        count = 0
        async for stored in self._store.all():
            self.index.apply(stored.unit, stored.revision)
            count += 1
        return count

    async def resync(self) -> None:
        """Background task: reload the store now and then (repairs a lost publish)."""
        await every(RESYNC_SECONDS, self.load, task="registry_resync", first_delay=RESYNC_SECONDS)

    async def follow(self) -> None:
        """Background task: the units topic from its first offset, for ever, into the index."""

        async def apply(envelope: EventEnvelope) -> None:
            changed = unpack(envelope, UnitChanged)
            self.index.apply(changed.unit, changed.revision)

        await TopicTail(self._settings, [self._topics.units], apply, from_beginning=True).run()

    # -- writing ------------------------------------------------------------------------------

    async def _write(self, units: Sequence[Unit]) -> None:
        """Store each unit (in order), take it into this replica's index, then publish all."""
        records: list[tuple[str, bytes | None, bytes | None]] = []
        actor = _actor()
        for unit in units:
            revision = self._revisions.next()
            await self._store.save(unit, revision)
            self.index.apply(unit, revision)
            envelope = new_event(
                UnitChanged(unit=unit, revision=revision, actor=actor), producer=PRODUCER
            )
            records.append((self._topics.units, unit.code.encode(), envelope.SerializeToString()))
        await self._producer.publish_many(records)

    def _violations(self, unit: Unit, v: Violations, prefix: str) -> None:
        parent = self.index.get(unit.parent_code) if unit.parent_code else None
        unit_violations(unit, v, prefix=prefix, parent=parent)
        self._reference_violations(unit, v, prefix, {})

    def _reference_violations(
        self, unit: Unit, v: Violations, prefix: str, batch: dict[str, Unit]
    ) -> None:
        if unit.code_2020:
            owner = self.index.owner_of_2020(unit.code_2020)
            if owner is not None and owner != unit.code:
                v.add(f"{prefix}.code_2020", f"{unit.code_2020!r} belongs to {owner}")
        _successor_reference_violations(unit, v, prefix, batch, self.index)

    async def upsert(self, unit: Unit) -> Unit:
        unit = _clean(unit)
        v = Violations()
        self._violations(unit, v, "unit")
        v.raise_if_any()
        await self._write([unit])
        return unit

    async def import_rows(self, rows: Sequence[Unit]) -> tuple[int, int]:
        """Validate every row (all problems, ``rows[i].field``), then apply all; (applied,
        created). Rows may come in any order: a parent may be a later row."""
        rows = [_clean(row) for row in rows]
        v = Violations()
        batch: dict[str, Unit] = {}
        first_row: dict[str, int] = {}
        owners_2020: dict[str, int] = {}
        for i, row in enumerate(rows):
            if row.code in first_row:
                v.add(f"rows[{i}].code", f"{row.code} is also row {first_row[row.code]}")
            else:
                first_row[row.code] = i
                batch[row.code] = row
            if row.code_2020:
                if row.code_2020 in owners_2020:
                    v.add(
                        f"rows[{i}].code_2020",
                        f"{row.code_2020} is also row {owners_2020[row.code_2020]}",
                    )
                owners_2020.setdefault(row.code_2020, i)
        for i, row in enumerate(rows):
            prefix = f"rows[{i}]"
            parent = batch.get(row.parent_code) or self.index.get(row.parent_code)
            unit_violations(row, v, prefix=prefix, parent=parent if row.parent_code else None)
            if row.code_2020:
                owner = self.index.owner_of_2020(row.code_2020)
                moved = (
                    owner is not None
                    and owner in batch
                    and batch[owner].code_2020 != (row.code_2020)
                )
                if owner is not None and owner != row.code and not moved:
                    v.add(f"{prefix}.code_2020", f"{row.code_2020!r} belongs to {owner}")
            _successor_reference_violations(row, v, prefix, batch, self.index)
        for i, row in enumerate(rows):
            cycle = _successor_cycle(row.code, batch, self.index)
            if cycle:
                v.add(f"rows[{i}].successor_code", "successors go round: " + " → ".join(cycle))
        v.raise_if_any()
        created = sum(1 for code in batch if self.index.get(code) is None)
        await self._write(_parents_first(list(batch.values())))
        return len(batch), created

    async def close(
        self,
        code: str,
        *,
        successor_code: str,
        closed_on: str,
        successor_codes: Sequence[str] = (),
    ) -> Unit:
        unit = self.index.get(code)
        if unit is None:
            raise NotFound(f"code: no unit {code!r} in the registry")
        v = Violations()
        closed_on = closed_on or today()
        problem = date_problem(closed_on)
        if problem:
            v.add("closed_on", problem)
        if successor_code and successor_codes:
            v.add("successor_codes", "name one successor_code or several successor_codes")
        named = [(f"successor_codes[{i}]", c) for i, c in enumerate(successor_codes)]
        if successor_code:
            named = [("successor_code", successor_code)]
        canonical: list[str] = []
        for field, wanted in named:
            successor = self.index.get(wanted)
            if successor is None:
                v.add(field, f"no unit {wanted!r} in the registry")
            elif successor.code == unit.code:
                v.add(field, "a unit does not succeed itself")
            elif successor.valid_until or not successor.active:
                v.add(field, f"{successor.code} is closed or inactive itself")
            elif successor.code in canonical:
                v.add(field, f"{successor.code} is named twice")
            else:
                canonical.append(successor.code)
        if not problem and unit.valid_from and closed_on < unit.valid_from:
            v.add("closed_on", f"is before the unit's valid_from {unit.valid_from}")
        v.raise_if_any()
        closed = _clean(unit)
        closed.active = False
        closed.valid_until = closed_on
        del closed.successor_codes[:]
        closed.successor_code = canonical[0] if successor_code and canonical else ""
        if not successor_code:
            closed.successor_codes.extend(sorted(canonical))
        await self._write([closed])
        return closed


def _successor_reference_violations(
    unit: Unit, v: Violations, prefix: str, batch: dict[str, Unit], index: UnitIndex
) -> None:
    """Every successor a unit names must be a unit of the registry or of the same batch."""
    named = [(f"{prefix}.successor_code", unit.successor_code)] if unit.successor_code else []
    named += [(f"{prefix}.successor_codes[{i}]", c) for i, c in enumerate(unit.successor_codes)]
    for field, code in named:
        if code and code != unit.code:
            v.require(
                code in batch or index.get(code) is not None,
                field,
                f"no unit {code!r} in the registry",
            )


def _successor_cycle(code: str, batch: dict[str, Unit], index: UnitIndex) -> list[str]:
    """The successor chain from ``code`` back to itself, if there is one (else empty)."""

    def successors(at: str) -> list[str]:
        unit = batch.get(at) or index.get(at)
        if unit is None:
            return []
        return [unit.successor_code] if unit.successor_code else list(unit.successor_codes)

    path = [code]
    stack = [(code, iter(successors(code)))]
    on_path = {code}
    visited: set[str] = set()
    while stack:
        at, pending = stack[-1]
        nxt = next(pending, None)
        if nxt is None:
            stack.pop()
            on_path.discard(at)
            path.pop()
            visited.add(at)
            continue
        if nxt == code:
            return [*path, code]
        if nxt in on_path or nxt in visited:
            continue
        path.append(nxt)
        on_path.add(nxt)
        stack.append((nxt, iter(successors(nxt))))
    return []


def _parents_first(units: list[Unit]) -> list[Unit]:
    """Order a batch so that every parent precedes its children (within the batch)."""
    by_code = {unit.code: unit for unit in units}
    ordered: list[Unit] = []
    placed: set[str] = set()

    def place(unit: Unit, depth: int = 0) -> None:
        if unit.code in placed:
            return
        parent = by_code.get(unit.parent_code)
        if parent is not None and depth < len(units):
            place(parent, depth + 1)
        placed.add(unit.code)
        ordered.append(unit)

    for unit in units:
        place(unit)
    return ordered


def _actor() -> str:
    """Who makes this registry change, for the audit: the identity, else the legacy caller."""
    with contextlib.suppress(Unauthenticated):
        return str(current_identity())
    with contextlib.suppress(Unauthenticated):
        return caller_unit()
    return ""  # no call: a file import at start
