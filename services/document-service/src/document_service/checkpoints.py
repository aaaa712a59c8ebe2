"""Signed checkpoints of the audit chains, on an append-only topic a store insider cannot rewrite.

Every ``LIENTHONG_AUDIT_CHECKPOINT_SECONDS`` (sooner once ``LIENTHONG_AUDIT_CHECKPOINT_ENTRIES``
entries were appended), each chain this replica appended to since its last checkpoint gets one:
(chain, seq, head hash, time), signed with the Ed25519 key of ``LIENTHONG_AUDIT_SIGNING_KEY``,
published keyed by chain. The store never holds the key, and in production the service's
KafkaUser may only Write/Describe the topic (never delete, never compacted), so whoever rewrites
the store cannot make the checkpoints agree (docs/security.md, "The audit log").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from document_service.audit import AuditLog
from lienthong.document.v1 import document_service_pb2 as pb
from lienthong.events.v1.events_pb2 import AuditCheckpoint
from lienthong_audit.verify import AuditReport, checkpoint_message, key_id
from lienthong_kit.errors import Unavailable
from lienthong_kit.infra import report_failure
from lienthong_kit.kafka import EventProducer, Topics
from lienthong_kit.kafka.security import kafka_security
from lienthong_kit.logs import get_logger
from lienthong_kit.settings import KitSettings

__all__ = [
    "CheckpointSigner",
    "Checkpointer",
    "SignedAudit",
    "checkpoint_topic",
    "operator_actions_topic",
    "read_checkpoints",
]

log = get_logger(__name__)

# TODO(lead): move both into lienthong_kit.kafka.Topics (append-only, never compacted)


def checkpoint_topic(topics: Topics) -> str:
    return topics.audit_checkpoints


def operator_actions_topic(topics: Topics) -> str:
    return topics.operator_actions


class CheckpointSigner:
    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key: Ed25519PublicKey = private_key.public_key()
        self.key_id = key_id(self.public_key)

    @classmethod
    def from_file(cls, path: Path) -> CheckpointSigner:
        """Raises ValueError saying why the file is not an Ed25519 private key (PEM)."""
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"LIENTHONG_AUDIT_SIGNING_KEY {path}: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"LIENTHONG_AUDIT_SIGNING_KEY {path}: not an Ed25519 private key")
        return cls(key)

    def sign(self, chain: str, seq: int, head_hash: str, at: datetime) -> AuditCheckpoint:
        signed_at = Timestamp()
        signed_at.FromDatetime(at)
        checkpoint = AuditCheckpoint(
            chain=chain, seq=seq, head_hash=head_hash, signed_at=signed_at, key_id=self.key_id
        )
        checkpoint.signature = self._key.sign(checkpoint_message(checkpoint))
        return checkpoint


class Checkpointer:
    """Background task: sign and publish the heads of the chains this replica appended to."""

    def __init__(
        self,
        audit: AuditLog,
        signer: CheckpointSigner,
        producer: EventProducer,
        settings: KitSettings,
        topic: str,
        *,
        every_seconds: float,
        every_entries: int,
    ) -> None:
        self._audit = audit
        self._signer = signer
        self._producer = producer
        self._settings = settings
        self._topic = topic
        self._every_seconds = every_seconds
        self._signed: dict[str, int] = {}
        audit.checkpoint_after = every_entries

    async def run(self) -> None:
        await self.adopt()
        while True:
            # woken early when enough entries were appended
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._audit.grown.wait(), timeout=self._every_seconds)
            try:
                await self.checkpoint()
            except Exception as exc:  # noqa: BLE001 - the next round signs the same heads again
                report_failure(exc, task="audit_checkpoint", topic=self._topic)
                await asyncio.sleep(self._every_seconds)

    async def adopt(self) -> None:
        """At start: sign the store's heads that no checkpoint covers yet (a chain from before
        signing was configured, or a tail appended just before a crash), saying so."""
        try:
            signed: dict[str, int] = {}
            for checkpoint in await read_checkpoints(self._settings, self._topic):
                signed[checkpoint.chain] = max(signed.get(checkpoint.chain, 0), checkpoint.seq)
            for chain, (seq, head) in (await self._audit.store_heads()).items():
                if seq > signed.get(chain, 0) and chain not in self._audit.appended_heads:
                    log.warning(
                        "audit_unsigned_entries_adopted",
                        chain=chain,
                        first=signed.get(chain, 0) + 1,
                        last=seq,
                    )
                    self._audit.appended_heads[chain] = (seq, head)
            self._signed.update(signed)
            await self.checkpoint()
        except Exception as exc:  # noqa: BLE001 - signed at the next append of each chain instead
            report_failure(exc, task="audit_adopt", topic=self._topic)

    async def final(self) -> None:
        """On stop (consumers already stopped): sign what was appended since the last round."""
        try:
            await self.checkpoint()
        except Exception as exc:  # noqa: BLE001 - the store's heads are adopted at the next start
            report_failure(exc, task="audit_checkpoint", topic=self._topic)

    async def checkpoint(self) -> int:
        """Sign and publish every head not yet signed; the number published."""
        self._audit.grown.clear()
        self._audit.appended_since_checkpoint = 0
        now = datetime.now(UTC)
        due = [
            (chain, seq, head)
            for chain, (seq, head) in sorted(self._audit.appended_heads.items())
            if seq > self._signed.get(chain, 0)
        ]
        records: list[tuple[str, bytes | None, bytes | None]] = [
            (
                self._topic,
                chain.encode(),
                self._signer.sign(chain, seq, head, now).SerializeToString(),
            )
            for chain, seq, head in due
        ]
        if records:
            await self._producer.publish_many(records)
        for chain, seq, _ in due:
            self._signed[chain] = seq
        return len(records)


async def read_checkpoints(settings: KitSettings, topic: str) -> list[AuditCheckpoint]:
    """Every checkpoint on the topic, from its first offset to its current end."""
    security = kafka_security(settings)  # as this service's principal, over TLS when it is
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, **security)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = sorted(
        p["partition"] for t in described if t["topic"] == topic for p in t.get("partitions", [])
    )
    if not partitions:
        return []
    assigned = [TopicPartition(topic, p) for p in partitions]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False, **security
    )
    await consumer.start()
    try:
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(assigned)
        found: list[AuditCheckpoint] = []
        remaining = {tp for tp in assigned if ends[tp] > 0}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batches.items():
                for record in records:
                    found.append(
                        _checkpoint(record.value, f"{tp.topic}/{tp.partition}@{record.offset}")
                    )
                    if record.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return found
    finally:
        await consumer.stop()


class SignedAudit:
    """The audit log with its checkpoints: what VerifyAudit and ExportAudit answer from."""

    def __init__(
        self,
        audit: AuditLog,
        settings: KitSettings,
        topic: str,
        keys: Mapping[str, Ed25519PublicKey],
        *,
        unsigned_grace_seconds: float,
    ) -> None:
        self.audit = audit
        self._settings = settings
        self._topic = topic
        self.keys = keys
        self._grace = unsigned_grace_seconds

    async def verify(self, unsigned_grace_seconds: float = 0) -> AuditReport:
        if not self.keys:
            return await self.audit.verify()
        try:
            checkpoints = await read_checkpoints(self._settings, self._topic)
        except KafkaError as exc:
            raise Unavailable(f"the audit checkpoint topic cannot be read: {exc}") from exc
        grace = timedelta(seconds=unsigned_grace_seconds or self._grace)
        return await self.audit.verify(checkpoints, self.keys, unsigned_grace=grace)

    async def export(self, chain: str = "") -> AsyncIterator[pb.ExportAuditResponse]:
        """Entries first, then every checkpoint (of that chain)."""
        async for record in self.audit.export(chain):
            yield record
        for checkpoint in await read_checkpoints(self._settings, self._topic):
            if not chain or checkpoint.chain == chain:
                yield pb.ExportAuditResponse(checkpoint=checkpoint)


def _checkpoint(raw: bytes | None, where: str) -> AuditCheckpoint:
    # a record that is no checkpoint is kept, unsigned, so that verification names it
    try:
        return AuditCheckpoint.FromString(raw or b"")
    except DecodeError:
        return AuditCheckpoint(chain=f"(not a checkpoint: {where})")
