"""reporting-service's metrics (docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
