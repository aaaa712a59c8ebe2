"""reporting-service's metrics (docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from reporting_service.folding import Count, Counts
from reporting_service.report import LEVEL_NAMES, Registry, Tally, level_tallies, tally

__all__ = [
    "ADOPTION_ACKNOWLEDGED",
    "ADOPTION_DOCUMENTS",
    "ADOPTION_FACTS",
    "ADOPTION_FOLD_DELAY",
    "ADOPTION_HANDLED",
    "ADOPTION_PROVINCE_DOCUMENTS",
    "ADOPTION_REREADS",
    "ADOPTION_SIGNED",
    "ADOPTION_UNITS",
    "publish_month",
]

# Adoption figures (reporting-service, docs/reporting.md): the current month in Vietnam time,
# per level of the province's table and for the whole province. Never per unit: per-unit
# figures come from GetAdoptionReport, so the label sets stay small.
ADOPTION_DOCUMENTS = Gauge(
    "lienthong_adoption_month_documents",
    "Documents counted this month (Vietnam time), by level (province, district, commune,"
    " unassigned), direction (incoming, outgoing) and channel (network, paper).",
    ["level", "direction", "channel"],
)
ADOPTION_PROVINCE_DOCUMENTS = Gauge(
    "lienthong_adoption_month_province_documents",
    "Documents counted this month (Vietnam time) in the whole province, by direction and channel.",
    ["direction", "channel"],
)
ADOPTION_SIGNED = Gauge(
    "lienthong_adoption_month_signed_documents",
    "Outgoing documents over the network this month with a valid signature, by level and"
    " signature (personal, organisation).",
    ["level", "signature"],
)
ADOPTION_UNITS = Gauge(
    "lienthong_adoption_month_units",
    "Units by level and state this month: registered, connected (sent or received over the"
    " network), only_receiving.",
    ["level", "state"],
)
ADOPTION_ACKNOWLEDGED = Gauge(
    "lienthong_adoption_month_acknowledged_deliveries",
    "Deliveries acknowledged this month, by level and timing (same_day, later).",
    ["level", "timing"],
)
ADOPTION_HANDLED = Gauge(
    "lienthong_adoption_month_handled_deliveries",
    "Deliveries done this month with a due date, by level and due (before, on, after).",
    ["level", "due"],
)
ADOPTION_FACTS = Counter(
    "lienthong_adoption_facts_total",
    "Facts reaching reporting-service's table, by outcome (counted, duplicate).",
    ["outcome"],
)
ADOPTION_REREADS = Counter(
    "lienthong_adoption_rereads_total",
    "Source records reporting-service read itself because faust skipped them.",
    ["topic"],
)
ADOPTION_FOLD_DELAY = Histogram(
    "lienthong_adoption_fold_delay_seconds",
    "Time from an event's record reaching Kafka to its count being visible in reports.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)


_DOCUMENT_SERIES = (
    ("incoming", "network", Count.INCOMING_NET),
    ("incoming", "paper", Count.INCOMING_PAPER),
    ("outgoing", "network", Count.OUTGOING_NET),
    ("outgoing", "paper", Count.OUTGOING_PAPER),
)


def publish_month(registry: Registry, counts: Counts, month: str) -> None:
    """Set the adoption gauges for ``month`` (yyyy-MM), per level and for the province."""
    for level, of in level_tallies(registry, counts, month).items():
        _publish_level(LEVEL_NAMES[level], of)
    units = registry.active() | counts.units_in(month)
    whole = tally(units, counts, month)
    for direction, channel, count in _DOCUMENT_SERIES:
        ADOPTION_PROVINCE_DOCUMENTS.labels(direction, channel).set(whole.counts[count])


def _publish_level(level: str, of: Tally) -> None:
    c = of.counts
    for direction, channel, count in _DOCUMENT_SERIES:
        ADOPTION_DOCUMENTS.labels(level, direction, channel).set(c[count])
    ADOPTION_SIGNED.labels(level, "personal").set(c[Count.SIGNED_PERSONAL])
    ADOPTION_SIGNED.labels(level, "organisation").set(c[Count.SIGNED_ORGANISATION])
    ADOPTION_UNITS.labels(level, "registered").set(of.units)
    ADOPTION_UNITS.labels(level, "connected").set(of.connected)
    ADOPTION_UNITS.labels(level, "only_receiving").set(of.only_receiving)
    ADOPTION_ACKNOWLEDGED.labels(level, "same_day").set(c[Count.ACK_SAME_DAY])
    ADOPTION_ACKNOWLEDGED.labels(level, "later").set(c[Count.ACKNOWLEDGED] - c[Count.ACK_SAME_DAY])
    ADOPTION_HANDLED.labels(level, "before").set(c[Count.HANDLED_BEFORE])
    ADOPTION_HANDLED.labels(level, "on").set(c[Count.HANDLED_ON])
    ADOPTION_HANDLED.labels(level, "after").set(c[Count.HANDLED_AFTER])
