"""The ``facts`` table: every fact applied, in entries of many facts (the worker's only state).

    facts = FactTable(app, group, partitions, on_entry=fold_entry)
    facts.write(partition, new_facts)     # one changelog record per source partition and batch
    facts.changelog                       # <group>-facts-changelog, compacted

A faust table backed by a compacted changelog topic. An entry is a list of
``[key, unit, day, count]`` under a key of its own (never overwritten); it is written into the
changelog partition numbered as the source partition its events came from, as faust's own
table writes are (its recovery and standby assignment follow that co-partitioning). Every
changelog record faust reads back (recovery after a start or a rebalance, and standby replicas
following partitions another worker owns) is handed to ``on_entry`` as facts.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust

from reporting_service.folding import Count, Fact

__all__ = ["FACTS_PER_ENTRY", "FACTS_TABLE", "FactTable", "entry_facts"]

FACTS_TABLE = "facts"
# ~150 kB of JSON: far below a Kafka record's 1 MB
FACTS_PER_ENTRY = 2000


def entry_facts(key: Any, value: Any) -> list[Fact]:
    """The facts of one changelog record: an entry (a list of ``[key, unit, day, count]``),
    or a single fact under its own key (the format before entries), or none (a tombstone)."""
    if isinstance(value, list):
        return [Fact(k, unit, day, Count(count)) for k, unit, day, count in value]
    if isinstance(value, dict):
        return [Fact(str(key), value["u"], value["d"], Count(value["c"]))]
    return []


class FactTable:
    def __init__(
        self,
        app: faust.App,
        group: str,
        partitions: int,
        on_entry: Callable[[list[Fact]], None],
    ) -> None:
        async def read_back(event: Any) -> None:
            on_entry(entry_facts(event.key, event.value))

        self._table: Any = app.Table(
            FACTS_TABLE,
            schema=faust.Schema(key_serializer="json", value_serializer="json"),
            partitions=partitions,
            on_changelog_event=read_back,
        )
        self.changelog = f"{group}-{FACTS_TABLE}-changelog"
        # an entry's key: unique to this process (random) and to the entry (a counter);
        # a uuid4 per entry costs a system call
        self._key_prefix = uuid.uuid4().hex
        self._serial = itertools.count()

    def on_recover(self, callback: Callable[[], Awaitable[None]]) -> None:
        self._table.on_recover(callback)

    def write(self, partition: int, facts: Sequence[Fact]) -> int:
        """Put ``facts`` into changelog ``partition`` (faust's producer buffer: durable once
        the flush before the next commit returns); the number of records written."""
        written = 0
        for start in range(0, len(facts), FACTS_PER_ENTRY):
            entry = [
                [f.key, f.unit, f.day, f.count.value]
                for f in facts[start : start + FACTS_PER_ENTRY]
            ]
            self._table.send_changelog(partition, f"{self._key_prefix}-{next(self._serial)}", entry)
            written += 1
        return written
