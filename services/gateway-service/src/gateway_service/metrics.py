"""gateway-service's metrics (docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = ["AXIS_PACKAGES", "HTTP_DURATION", "HTTP_HANDLED", "PACKAGE_BYTES"]

HTTP_HANDLED = Counter(
    "lienthong_gateway_requests_total",
    "HTTP requests the edXML gateway answered, by operation and HTTP status.",
    ["operation", "status"],
)
HTTP_DURATION = Histogram(
    "lienthong_gateway_request_duration_seconds",
    "Time to answer an HTTP request of the edXML gateway, by operation.",
    ["operation"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PACKAGE_BYTES = Counter(
    "lienthong_gateway_package_bytes_total",
    "Bytes of edXML packages received and sent by the gateway, by direction (in, out).",
    ["direction"],
)
AXIS_PACKAGES = Counter(
    "lienthong_gateway_axis_packages_total",
    "Packages and status packages the axis bridge handled, by direction (in, out) and outcome"
    " (sent, duplicate, submitted, refused, invalid, status NN).",
    ["direction", "outcome"],
)
