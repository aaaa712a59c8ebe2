"""Trust-store changes announced as ``OperatorAction`` events, so they join the audit chains.

document-service's audit consumer reads the operator-actions topic (Topics.operator_actions)
and chains each action with who did it.
"""

from __future__ import annotations

import contextlib

from cryptography import x509

from lienthong.events.v1.events_pb2 import OperatorAction
from lienthong_kit.authz import current_identity
from lienthong_kit.envelope import new_event
from lienthong_kit.errors import Unauthenticated
from lienthong_kit.kafka import EventProducer, Topics
from signature_service.pki import fingerprint, rfc4514

__all__ = ["TrustAnnouncer", "announce_anchor_added"]


def actor(legacy_caller: str) -> str:
    """The authenticated identity of the call, else the legacy caller name."""
    with contextlib.suppress(Unauthenticated):
        return str(current_identity())
    return legacy_caller


async def announce_anchor_added(
    producer: EventProducer, topics: Topics, cert: x509.Certificate, legacy_caller: str
) -> None:
    target = fingerprint(cert)
    action = OperatorAction(
        actor=actor(legacy_caller),
        action="trust_anchor.added",
        target=target,
        details={"subject": rfc4514(cert.subject)},
    )
    envelope = new_event(action, producer="signature-service")
    await producer.publish(topics.operator_actions, key=target, envelope=envelope)


class TrustAnnouncer:
    """What the servicer calls after a trust-store change."""

    def __init__(self, producer: EventProducer, topics: Topics) -> None:
        self._producer = producer
        self._topics = topics

    async def anchor_added(self, cert: x509.Certificate, legacy_caller: str) -> None:
        await announce_anchor_added(self._producer, self._topics, cert, legacy_caller)

    async def anchor_removed(self, sha256: str, subject: str, legacy_caller: str) -> None:
        action = OperatorAction(
            actor=actor(legacy_caller),
            action="trust_anchor.removed",
            target=sha256,
            details={"subject": subject},
        )
        envelope = new_event(action, producer="signature-service")
        await self._producer.publish(self._topics.operator_actions, key=sha256, envelope=envelope)
