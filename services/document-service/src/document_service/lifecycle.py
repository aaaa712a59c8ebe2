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
from lienthong_kit.vocabulary import StatusCode

__all__ = ["FINAL", "DeliveryState", "acknowledge", "request_recall"]

FINAL = frozenset({StatusCode.REFUSED, StatusCode.DONE})

# str keys: a stored state reads back as a plain string
_NEXT: dict[str, frozenset[StatusCode]] = {
    StatusCode.ARRIVED: frozenset({StatusCode.REFUSED, StatusCode.REGISTERED}),
    StatusCode.REGISTERED: frozenset(
        {StatusCode.REFUSED, StatusCode.ASSIGNED, StatusCode.IN_PROGRESS}
    ),
    StatusCode.ASSIGNED: frozenset({StatusCode.ASSIGNED, StatusCode.IN_PROGRESS}),
    StatusCode.IN_PROGRESS: frozenset({StatusCode.DONE}),
    StatusCode.REFUSED: frozenset(),
    StatusCode.DONE: frozenset(),
}
_NEEDS_REASON = frozenset({StatusCode.REFUSED, StatusCode.RECALL_REFUSED})
_ANSWERS = frozenset({StatusCode.RECALL_ACCEPTED, StatusCode.RECALL_REFUSED})
# what a recipient may report: every code but the two the platform sets itself
_REPORTED = frozenset(StatusCode) - {StatusCode.ARRIVED, StatusCode.RECALL_REQUESTED}


@dataclass(frozen=True)
class DeliveryState:
    status: str = StatusCode.ARRIVED
    recall: str = ""  # "", 13, 15 or 16 (a StatusCode)
    withdrawn: bool = False


def acknowledge(state: DeliveryState, code: str, description: str) -> DeliveryState:
    """The state after the recipient reports ``code``; raises for an illegal move."""
    status = StatusCode(code) if code in _REPORTED else None
    if status is None:
        raise InvalidArgument(
            [
                FieldViolation(
                    "status_code",
                    f"{code!r} is not a status a recipient reports (02, 03, 04, 05, 06, 15 or 16)",
                )
            ]
        )
    if status in _NEEDS_REASON and not description.strip():
        raise InvalidArgument(
            [
                FieldViolation(
                    "description", f"a reason is required with {status} ({status.english})"
                )
            ]
        )
    if state.withdrawn:
        raise FailedPrecondition(
            "the delivery was withdrawn after its recall was accepted", reason="WITHDRAWN"
        )
    if status in _ANSWERS:
        if state.recall != StatusCode.RECALL_REQUESTED:
            raise FailedPrecondition(
                f"no recall is pending, so {status} ({status.english}) is not possible",
                reason="NO_RECALL_PENDING",
            )
        return replace(state, recall=status, withdrawn=status == StatusCode.RECALL_ACCEPTED)
    if status not in _NEXT[state.status]:
        allowed = ", ".join(sorted(_NEXT[state.status])) or "nothing (final)"
        raise FailedPrecondition(
            f"cannot move from {state.status} ({StatusCode(state.status).english}) to {status}"
            f" ({status.english}); allowed: {allowed}",
            reason="ILLEGAL_TRANSITION",
            metadata={"from": state.status, "to": status},
        )
    return replace(state, status=status)


def request_recall(state: DeliveryState) -> DeliveryState | None:
    """The state after the sender asks for a recall, or None when it does not apply."""
    if (
        state.withdrawn
        or state.status == StatusCode.REFUSED
        or state.recall == StatusCode.RECALL_REQUESTED
    ):
        return None
    return replace(state, recall=StatusCode.RECALL_REQUESTED)
