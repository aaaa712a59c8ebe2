"""The kit's Prometheus metrics (RPCs, events, consumers, outbox, store) and the /metrics
HTTP endpoint. Each service defines its own domain metrics in its ``metrics.py``.

Naming follows Prometheus conventions: ``lienthong_<noun>_<unit>``, counters end in
``_total``, durations are ``_seconds`` histograms, labels are low-cardinality (a gRPC method,
a topic, an outcome: never a document id). docs/metrics.md lists every metric; a test keeps
the page and the code in agreement.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Gauge, Histogram, start_http_server

__all__ = [
    "BACKGROUND_FAILURES",
    "BUILD_INFO",
    "CERTIFICATE_EXPIRY",
    "CONSUMER_GROUP_LAG",
    "CONSUMER_GROUP_OFFSET",
    "CONSUMER_LAG",
    "DEPENDENCY_UP",
    "EVENTS_CONSUMED",
    "EVENTS_PRODUCED",
    "HANDLER_ERRORS",
    "OUTBOX_PARKED",
    "OUTBOX_PENDING",
    "RPC_DURATION",
    "RPC_HANDLED",
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
    " (applied, duplicate, dead_lettered, skipped).",
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
    "Records between a consumer group's position and the partition's high watermark.",
    ["group", "topic", "partition"],
)
CONSUMER_GROUP_LAG = Gauge(
    "lienthong_consumer_group_lag_messages",
    "Records between a consumer group's committed offset and the partition's end, as the"
    " broker reports them (kafka/lag.py; every replica reports its groups' partitions).",
    ["group", "topic", "partition"],
)
CONSUMER_GROUP_OFFSET = Gauge(
    "lienthong_consumer_group_offset",
    "A consumer group's committed offset per partition, as the broker reports it.",
    ["group", "topic", "partition"],
)
BACKGROUND_FAILURES = Counter(
    "lienthong_background_failures_total",
    "Failed rounds of a background loop (a sweep, a scheduler, a reload), by task and kind"
    " (infra: the store or broker unreachable, retried next round; error: anything else).",
    ["task", "kind"],
)
OUTBOX_PENDING = Gauge(
    "lienthong_outbox_pending_events",
    "Events stored in an outbox and not yet acknowledged by Kafka, as last seen by the relay.",
)
OUTBOX_PARKED = Counter(
    "lienthong_outbox_parked_total",
    "Events the broker refused for good (e.g. too large), parked with their reason.",
    ["topic"],
)
STORE_INSERT_BATCH = Histogram(
    "lienthong_store_insert_batch_documents",
    "Documents written per grouped insert (the kit's GroupInserter), by collection.",
    ["collection"],
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
CERTIFICATE_EXPIRY = Gauge(
    "lienthong_certificate_expiry_days",
    "Days until the soonest-expiring certificate of each file a service holds expires (server,"
    " client_ca, ...); negative once expired.",
    ["service", "certificate"],
)
DEPENDENCY_UP = Gauge(
    "lienthong_dependency_up",
    "1 when the dependency (store, kafka) answered the service's last probe, 0 otherwise.",
    ["service", "dependency"],
)
BUILD_INFO = Gauge(
    "lienthong_build_info",
    "Always 1; labels name the running service and its version.",
    ["service", "version"],
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
