"""The platform's Prometheus metrics, defined once, and the /metrics HTTP endpoint.

Naming follows Prometheus conventions: ``lienthong_<noun>_<unit>``, counters end in
``_total``, durations are ``_seconds`` histograms, labels are low-cardinality (a gRPC method,
a topic, an outcome: never a document id). docs/metrics.md lists every metric; a test keeps
the page and this module in agreement.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Gauge, Histogram, start_http_server

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
    "BUILD_INFO",
    "CONSUMER_LAG",
    "EVENTS_CONSUMED",
    "EVENTS_PRODUCED",
    "HANDLER_ERRORS",
    "NOTIFICATIONS_FAILED",
    "NOTIFICATIONS_RETRIED",
    "NOTIFICATIONS_SENT",
    "NOTIFICATION_DELIVERY",
    "OUTBOX_PENDING",
    "RPC_DURATION",
    "RPC_HANDLED",
    "SIGNATURE_REVOCATION_FETCHES",
    "SIGNATURE_VERIFY_DURATION",
    "STORE_INSERT_BATCH",
    "MetricsServer",
    "start_metrics_server",
]

RPC_HANDLED = Counter(
    "lienthong_rpc_handled_total",
    "gRPC calls completed, by full method name and status code.",
    ["method", "code"],
)
RPC_DURATION = Histogram(
    "lienthong_rpc_duration_seconds",
    "Time to handle a gRPC call, by full method name.",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
EVENTS_CONSUMED = Counter(
    "lienthong_events_consumed_total",
    "Kafka records handled by a consumer, by topic and outcome"
    " (applied, duplicate, dead_lettered).",
    ["topic", "outcome"],
)
EVENTS_PRODUCED = Counter(
    "lienthong_events_produced_total",
    "Kafka records produced, by topic and outcome (ok, error).",
    ["topic", "outcome"],
)
HANDLER_ERRORS = Counter(
    "lienthong_handler_errors_total",
    "Failed attempts to apply a consumed event, by topic and kind (transient, poison, infra).",
    ["topic", "kind"],
)
CONSUMER_LAG = Gauge(
    "lienthong_consumer_lag_messages",
    "Records between a consumer's position and the partition's high watermark.",
    ["topic", "partition"],
)
OUTBOX_PENDING = Gauge(
    "lienthong_outbox_pending_events",
    "Events stored in an outbox and not yet acknowledged by Kafka, as last seen by the relay.",
)
STORE_INSERT_BATCH = Histogram(
    "lienthong_store_insert_batch_documents",
    "Documents written per grouped insert (the kit's GroupInserter), by collection.",
    ["collection"],
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
NOTIFICATIONS_SENT = Counter(
    "lienthong_notifications_sent_total",
    "Notifications accepted by their channel (SMTP server, SMS gateway, webhook receiver, the"
    " in-app store), by channel.",
    ["channel"],
)
NOTIFICATIONS_FAILED = Counter(
    "lienthong_notifications_failed_total",
    "Notifications given up after their attempts (dead-lettered), by channel.",
    ["channel"],
)
NOTIFICATIONS_RETRIED = Counter(
    "lienthong_notifications_retried_total",
    "Failed notification attempts scheduled for another try, by channel.",
    ["channel"],
)
NOTIFICATION_DELIVERY = Histogram(
    "lienthong_notification_delivery_seconds",
    "Time from a notification being recorded to its channel accepting it (retries and a"
    " quiet-hours hold included), by channel.",
    ["channel"],
    buckets=(
        0.01,
        0.05,
        0.1,
        0.25,
        0.5,
        1.0,
        2.5,
        5.0,
        10.0,
        30.0,
        60.0,
        300.0,
        900.0,
        3600.0,
        14400.0,
        43200.0,
    ),
)
# signature-service's own (defined here with the rest, so the metrics page and this module
# stay one list)
SIGNATURE_REVOCATION_FETCHES = Counter(
    "lienthong_signature_revocation_fetches_total",
    "Revocation look-ups by signature-service, by kind (ocsp, crl) and outcome"
    " (fetched, cached, failed).",
    ["kind", "outcome"],
)
SIGNATURE_VERIFY_DURATION = Histogram(
    "lienthong_signature_verify_duration_seconds",
    "Time to verify one document's files (revocation fetching included), by outcome"
    " (accepted, rejected).",
    ["outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
BUILD_INFO = Gauge(
    "lienthong_build_info",
    "Always 1; labels name the running service and its version.",
    ["service", "version"],
)


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


@dataclass
class MetricsServer:
    """The HTTP server behind /metrics; ``port`` is the bound port (useful when asked for 0)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_metrics_server(host: str, port: int) -> MetricsServer:
    server, thread = start_http_server(port, addr=host)
    return MetricsServer(server, thread)
