"""The ``facts`` table: every fact applied, keyed by what it counts (the worker's only state).

    facts = FactTable(app, group, partitions)
    fact.key in facts                     # applied before: a duplicate, counts nothing
    facts.add(fact)                       # one changelog record per fact
    for fact in facts.all(): ...          # after a recovery, to rebuild the counts

A faust table backed by a compacted changelog topic (``<group>-facts-changelog``): the table is
rebuilt from it on every start.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import faust

from reporting_service.folding import Count, Fact

__all__ = ["FACTS_TABLE", "FactTable"]

FACTS_TABLE = "facts"


class FactTable:
    def __init__(self, app: faust.App, group: str, partitions: int) -> None:
        self._table: Any = app.Table(
            FACTS_TABLE,
            schema=faust.Schema(key_serializer="json", value_serializer="json"),
            partitions=partitions,
        )
        self.changelog = f"{group}-{FACTS_TABLE}-changelog"

    def on_recover(self, callback: Callable[[], Awaitable[None]]) -> None:
        self._table.on_recover(callback)

    def __contains__(self, key: str) -> bool:
        return key in self._table

    def __len__(self) -> int:
        return len(self._table)

    def add(self, fact: Fact) -> None:
        self._table[fact.key] = {"u": fact.unit, "d": fact.day, "c": fact.count.value}

    def all(self) -> Iterator[Fact]:
        for key, value in self._table.items():
            yield Fact(key, value["u"], value["d"], Count(value["c"]))
