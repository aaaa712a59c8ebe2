"""What points at the units an import closes (a transition plan's dry run), and carrying
their notification contacts, groups and subscriptions over to their successors once applied.

    closing = closing_units(rows)                   # the rows' units that close, with successors
    found = what_points_at(target, closing)         # [Pointing] (document-, notification-service)
    carried = carry_over(target, closing)           # CarryOverUnit per closing unit

Both ask the services (operators' RPCs guarded by their access tables), never the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lienthong.document.v1 import document_service_pb2 as doc_pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.notification.v1 import notification_service_pb2 as note_pb
from lienthong.notification.v1.notification_service_pb2_grpc import NotificationServiceStub
from lienthong.routing.v1 import routing_service_pb2 as pb
from lienthong_cli.connection import Target
from lienthong_cli.options import TIMEOUT

__all__ = ["Carried", "Closing", "Pointing", "carry_over", "closing_units", "what_points_at"]

# units per DescribeUnits / CountPendingDeliveries call (they take 500): each unit is a few
# queries, and a call must answer within the CLI's timeout
BATCH = 100


@dataclass(frozen=True)
class Closing:
    code: str
    successors: tuple[str, ...]


@dataclass
class Pointing:
    """What still points at one closing unit."""

    code: str
    successors: tuple[str, ...]
    pending_deliveries: int = 0
    pending_documents: list[str] = field(default_factory=list)
    pending_reminders: int = 0
    contacts: list[str] = field(default_factory=list)  # "name (role)"
    groups: list[str] = field(default_factory=list)
    subscriptions: list[str] = field(default_factory=list)  # "contact:<id>", "group:<code>"

    @property
    def empty(self) -> bool:
        return not (
            self.pending_deliveries
            or self.pending_reminders
            or self.contacts
            or self.groups
            or self.subscriptions
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "successors": list(self.successors),
            "pending_deliveries": self.pending_deliveries,
            "pending_documents": self.pending_documents,
            "pending_reminders": self.pending_reminders,
            "contacts": self.contacts,
            "groups": self.groups,
            "subscriptions": self.subscriptions,
        }


@dataclass
class Carried:
    units: int = 0
    contacts: int = 0
    groups: int = 0
    subscriptions: int = 0


def _closes(unit: pb.Unit) -> bool:
    return bool(unit.valid_until) or not unit.active


def closing_units(units: list[pb.Unit], registry: list[pb.Unit] | None = None) -> list[Closing]:
    """The units the file closes (a closing date, or inactive), with their successors; given
    the ``registry`` as it is, only those it closes now (not a re-import of an old closure)."""
    before = {unit.code: unit for unit in registry or ()}
    return [
        Closing(
            unit.code,
            (unit.successor_code,) if unit.successor_code else tuple(unit.successor_codes),
        )
        for unit in units
        if _closes(unit)
        and (registry is None or unit.code not in before or not _closes(before[unit.code]))
    ]


def what_points_at(target: Target, closing: list[Closing]) -> list[Pointing]:
    """For each closing unit: pending deliveries to it, its due-date reminders, contacts,
    groups and subscriptions (in ``closing``'s order)."""
    found = {item.code: Pointing(item.code, item.successors) for item in closing}
    codes = list(found)
    with target.channel("document") as channel:
        documents = DocumentServiceStub(channel)
        for start in range(0, len(codes), BATCH):
            reply = documents.CountPendingDeliveries(
                doc_pb.CountPendingDeliveriesRequest(unit_codes=codes[start : start + BATCH]),
                metadata=target.metadata(),
                timeout=TIMEOUT,
            )
            for item in reply.units:
                found[item.unit_code].pending_deliveries = item.pending
                found[item.unit_code].pending_documents = list(item.document_ids)
    with target.channel("notification") as channel:
        notifications = NotificationServiceStub(channel)
        for start in range(0, len(codes), BATCH):
            described = notifications.DescribeUnits(
                note_pb.DescribeUnitsRequest(unit_codes=codes[start : start + BATCH]),
                metadata=target.metadata(),
                timeout=TIMEOUT,
            )
            for unit in described.units:
                pointing = found[unit.unit_code]
                pointing.pending_reminders = unit.pending_reminders
                pointing.contacts = [f"{c.name} ({c.role})" for c in unit.contacts]
                pointing.groups = [g.code for g in unit.groups]
                pointing.subscriptions = [s.subscription_id for s in unit.subscriptions]
    return list(found.values())


def carry_over(target: Target, closing: list[Closing]) -> Carried:
    """CarryOverUnit for every closing unit that has successors (a repeat copies nothing)."""
    carried = Carried()
    with target.channel("notification") as channel:
        stub = NotificationServiceStub(channel)
        for item in closing:
            if not item.successors:
                continue
            reply = stub.CarryOverUnit(
                note_pb.CarryOverUnitRequest(
                    closed_code=item.code, successor_codes=list(item.successors)
                ),
                metadata=target.metadata(),
                timeout=TIMEOUT,
            )
            carried.units += 1
            carried.contacts += reply.contacts
            carried.groups += reply.groups
            carried.subscriptions += reply.subscriptions
    return carried
