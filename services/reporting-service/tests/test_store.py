"""The facts table's records read back (store.entry_facts): entries, the older one-fact
records, tombstones."""

from __future__ import annotations

from reporting_service.folding import Count, Fact
from reporting_service.store import entry_facts


def test_an_entry_gives_every_fact_it_holds() -> None:
    entry = [
        ["v1:incoming_over_network", "000.01.31.H99", "2026-04-15", "incoming_over_network"],
        ["d1:outgoing_over_network", "000.01.00.H99", "2026-04-16", "outgoing_over_network"],
    ]
    assert entry_facts("a1b2", entry) == [
        Fact("v1:incoming_over_network", "000.01.31.H99", "2026-04-15", Count.INCOMING_NET),
        Fact("d1:outgoing_over_network", "000.01.00.H99", "2026-04-16", Count.OUTGOING_NET),
    ]


def test_a_record_of_the_older_format_is_one_fact_under_its_key() -> None:
    value = {"u": "000.00.00.H99", "d": "2026-04-15", "c": "outgoing_on_paper"}
    assert entry_facts("p2:outgoing_on_paper", value) == [
        Fact("p2:outgoing_on_paper", "000.00.00.H99", "2026-04-15", Count.OUTGOING_PAPER)
    ]


def test_a_tombstone_gives_nothing() -> None:
    assert entry_facts("a1b2", None) == []
