"""signature-service's metrics (docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = ["SIGNATURE_REVOCATION_FETCHES", "SIGNATURE_VERIFY_DURATION"]

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
