"""The platform's topic names and the headers of a dead-letter record."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["Topics", "dead_letter_headers"]


def dead_letter_headers(
    reason: str, *, topic: str, partition: int, offset: int, group: str, event_id: str = ""
) -> list[tuple[str, bytes]]:
    """The headers of a dead-letter record: why, where it came from, who gave up on it."""
    headers = [
        ("lienthong-dlq-reason", reason.encode()),
        ("lienthong-source-topic", topic.encode()),
        ("lienthong-source-partition", str(partition).encode()),
        ("lienthong-source-offset", str(offset).encode()),
        ("lienthong-consumer-group", group.encode()),
        ("lienthong-dead-lettered-at", datetime.now(UTC).isoformat().encode()),
    ]
    if event_id:
        headers.append(("lienthong-event-id", event_id.encode()))
    return headers


class Topics:
    """The platform's topics (each with a ``.dlq`` twin), behind an optional prefix.

    ``deliveries_urgent`` carries the deliveries of urgent documents (khẩn, thượng khẩn, hỏa
    tốc) so they never queue behind routine ones; consumers of deliveries read both.
    ``units`` is the compacted registry topic, keyed by unit code.
    """

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.documents = f"{prefix}lienthong.documents"
        self.verifications = f"{prefix}lienthong.verifications"
        self.deliveries = f"{prefix}lienthong.deliveries"
        self.deliveries_urgent = f"{prefix}lienthong.deliveries.urgent"
        self.notifications = f"{prefix}lienthong.notifications"
        self.units = f"{prefix}lienthong.units"
        # append-only: signed audit checkpoints, and operators' actions for the audit chain
        self.audit_checkpoints = f"{prefix}lienthong.audit.checkpoints"
        self.operator_actions = f"{prefix}lienthong.operator-actions"

    @property
    def all_deliveries(self) -> list[str]:
        return [self.deliveries, self.deliveries_urgent]

    @staticmethod
    def dlq(topic: str) -> str:
        return f"{topic}.dlq"

    def compacted(self) -> list[str]:
        return [self.units]

    def all(self) -> list[str]:
        main = [
            self.documents,
            self.verifications,
            self.deliveries,
            self.deliveries_urgent,
            self.notifications,
            self.units,
            self.operator_actions,
        ]
        return [*main, self.audit_checkpoints] + [self.dlq(topic) for topic in main]

    def group(self, name: str) -> str:
        return f"{self.prefix}{name}"
