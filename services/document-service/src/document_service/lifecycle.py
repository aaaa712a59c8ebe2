"""The delivery state machine (edXML status codes), as a pure function.

    01 arrived ──► 02 refused (final)                 set on delivery, automatically
       │
       ▼
    03 registered ──► 02 refused (final)
       │      └─────────────┐
       ▼                    ▼
    04 assigned ──► 04 (reassigned) ──► 05 in progress ──► 06 done (final)

A recall, update or replacement runs beside the status: the sender's request sets the recall
status to 13; the recipient answers 15 (accepted: the incoming copy is withdrawn, nothing more
can happen to it) or 16 (refused: the delivery carries on). A refused recall may be asked
again. Refusing a delivery (02) or a recall (16) needs a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from lienthong_kit.errors import FailedPrecondition, FieldViolation, InvalidArgument

__all__ = [
    "ARRIVED",
    "FINAL",
    "RECALL_ACCEPTED",
    "RECALL_REFUSED",
    "RECALL_REQUESTED",
    "REFUSED",
    "STATUS_NAMES",
    "DeliveryState",
    "acknowledge",
    "request_recall",
]

ARRIVED, REFUSED, REGISTERED, ASSIGNED, IN_PROGRESS, DONE = "01", "02", "03", "04", "05", "06"
RECALL_REQUESTED, RECALL_ACCEPTED, RECALL_REFUSED = "13", "15", "16"
FINAL = frozenset({REFUSED, DONE})

STATUS_NAMES = {
    ARRIVED: "arrived",
    REFUSED: "refused",
    REGISTERED: "registered",
    ASSIGNED: "assigned",
    IN_PROGRESS: "in progress",
    DONE: "done",
    RECALL_REQUESTED: "recall requested",
    RECALL_ACCEPTED: "recall accepted",
    RECALL_REFUSED: "recall refused",
}

_NEXT = {
    ARRIVED: frozenset({REFUSED, REGISTERED}),
    REGISTERED: frozenset({REFUSED, ASSIGNED, IN_PROGRESS}),
    ASSIGNED: frozenset({ASSIGNED, IN_PROGRESS}),
    IN_PROGRESS: frozenset({DONE}),
    REFUSED: frozenset(),
    DONE: frozenset(),
}
_NEEDS_REASON = frozenset({REFUSED, RECALL_REFUSED})


@dataclass(frozen=True)
class DeliveryState:
    status: str = ARRIVED
    recall: str = ""  # "", 13, 15 or 16
    withdrawn: bool = False


def acknowledge(state: DeliveryState, code: str, description: str) -> DeliveryState:
    """The state after the recipient reports ``code``; raises for an illegal move."""
    if code not in STATUS_NAMES or code in (ARRIVED, RECALL_REQUESTED):
        raise InvalidArgument(
            [
                FieldViolation(
                    "status_code",
                    f"{code!r} is not a status a recipient reports (02, 03, 04, 05, 06, 15 or 16)",
                )
            ]
        )
    if code in _NEEDS_REASON and not description.strip():
        raise InvalidArgument(
            [
                FieldViolation(
                    "description", f"a reason is required with {code} ({STATUS_NAMES[code]})"
                )
            ]
        )
    if state.withdrawn:
        raise FailedPrecondition(
            "the delivery was withdrawn after its recall was accepted", reason="WITHDRAWN"
        )
    if code in (RECALL_ACCEPTED, RECALL_REFUSED):
        if state.recall != RECALL_REQUESTED:
            raise FailedPrecondition(
                f"no recall is pending, so {code} ({STATUS_NAMES[code]}) is not possible",
                reason="NO_RECALL_PENDING",
            )
        return replace(state, recall=code, withdrawn=code == RECALL_ACCEPTED)
    if code not in _NEXT[state.status]:
        allowed = ", ".join(sorted(_NEXT[state.status])) or "nothing (final)"
        raise FailedPrecondition(
            f"cannot move from {state.status} ({STATUS_NAMES[state.status]}) to {code}"
            f" ({STATUS_NAMES[code]}); allowed: {allowed}",
            reason="ILLEGAL_TRANSITION",
            metadata={"from": state.status, "to": code},
        )
    return replace(state, status=code)


def request_recall(state: DeliveryState) -> DeliveryState | None:
    """The state after the sender asks for a recall, or None when it does not apply."""
    if state.withdrawn or state.status == REFUSED or state.recall == RECALL_REQUESTED:
        return None
    return replace(state, recall=RECALL_REQUESTED)
