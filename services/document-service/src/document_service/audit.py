"""The hash-chained audit log of every state change.

Every state change is announced by an event (through the outbox), so the audit log is built
from the events themselves: an audit consumer appends each event of the documents and
deliveries topics to the chain of its partition, in offset order. An entry carries the hash of
the previous entry of its chain and its own hash over its content::

    hash = sha256(prev_hash | chain | seq | event_id | event_type | occurred_at | producer
                  | payload_sha256 [| actor | action | target: operator actions only])

Redelivery appends nothing (the event id is the entry's key); two replicas briefly sharing a
partition during a rebalance cannot fork a chain (``(chain, seq)`` is unique). The consumer
keeps each chain's head in memory, links the events of one poll in memory and appends them
with one ordered ``insertMany`` before the offsets are committed; when that meets a conflict
(a redelivery, or another member appended: a stale head) the rest of the poll is appended one
by one, re-reading the head, which costs retries but never forks a chain.

Operator actions join the chains: ``unit.changed`` (the units topic) and ``operator.action``
(the operator-actions topic) entries carry who did what to what in the clear, covered by the
hash. The heads this replica appended are signed and checkpointed by checkpoints.py; ``verify``
runs lienthong_audit's checks (links, hashes, signed heads, truncation) over the store and the
checkpoints, and names the first broken, missing or truncated entry.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime, timedelta

from aiokafka import ConsumerRecord
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import BulkWriteError, DuplicateKeyError

from lienthong.document.v1 import document_service_pb2 as pb
from lienthong.events.v1.events_pb2 import AuditCheckpoint, OperatorAction, UnitChanged
from lienthong_audit.verify import (
    GENESIS,
    AuditReport,
    Verification,
    entry_hash,
    entry_to_proto,
)
from lienthong_kit.envelope import EventEnvelope, carries, unpack
from lienthong_kit.errors import PoisonEvent, TransientEventError
from lienthong_kit.mongo import AsyncDatabase, Doc, ensure_indexes

__all__ = ["GENESIS", "AuditLog", "AuditReport", "entry_hash"]

#: the longest text of an entry (ids, types, actors): longer is no event of this platform
MAX_TEXT = 1024


class AuditLog:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.entries = db["audit"]
        self._heads: dict[str, tuple[int, str]] = {}
        self._staged: dict[str, list[Doc]] = {}
        # heads this replica appended (what checkpoints.py signs), and when to sign early
        self.appended_heads: dict[str, tuple[int, str]] = {}
        self.appended_since_checkpoint = 0
        self.checkpoint_after = 0
        self.grown = asyncio.Event()

    async def create_indexes(self) -> None:
        await ensure_indexes(
            self.entries, [IndexModel([("chain", ASCENDING), ("seq", ASCENDING)], unique=True)]
        )

    async def on_event(self, envelope: EventEnvelope, record: ConsumerRecord[bytes, bytes]) -> None:
        """Stage the event; :meth:`flush` appends the staged events before the commit.

        The entry's content is made here, where a PoisonEvent dead-letters the record: in
        ``flush`` (retried until it succeeds) it would stop the audit log for good."""
        chain = f"{record.topic}/{record.partition}"
        # the content first: a refused event must not leave an empty chain staged
        content = _content(envelope, record.offset)
        self._staged.setdefault(chain, []).append(content)

    async def flush(self) -> None:
        """Append every staged event to its chain (the consumer's ``before_commit``)."""
        while self._staged:
            chain, staged = next(iter(self._staged.items()))
            head = self._heads.get(chain)
            if head is None:
                head = await self._read_head(chain)
            entries = []
            for content in staged:
                entries.append(_entry(chain, head, content))
                head = (entries[-1]["seq"], entries[-1]["hash"])
            try:
                await self.entries.insert_many(entries, ordered=True)
                self._appended(chain, head, len(entries))
            except BulkWriteError as exc:
                inserted = int(exc.details.get("nInserted", 0))
                if inserted:
                    last = entries[inserted - 1]
                    self._appended(chain, (last["seq"], last["hash"]), inserted)
                for content in staged[inserted:]:
                    await self._append(chain, content)
            del self._staged[chain]

    async def _append(self, chain: str, content: Doc) -> None:
        head = self._heads.get(chain)
        if head is None:
            head = await self._read_head(chain)
        for _ in range(100):
            entry = _entry(chain, head, content)
            try:
                await self.entries.insert_one(entry)
            except DuplicateKeyError:
                if await self.entries.find_one({"_id": content["_id"]}, {"_id": 1}):
                    return  # already in the log: a redelivery
                head = await self._read_head(chain)  # another member appended: relink
                continue
            self._appended(chain, (entry["seq"], entry["hash"]), 1)
            return
        raise TransientEventError(f"could not append to audit chain {chain}")

    async def _read_head(self, chain: str) -> tuple[int, str]:
        last = await self.entries.find_one(
            {"chain": chain}, {"seq": 1, "hash": 1}, sort=[("seq", DESCENDING)]
        )
        head = (int(last["seq"]), str(last["hash"])) if last else (0, GENESIS)
        self._heads[chain] = head
        return head

    def _appended(self, chain: str, head: tuple[int, str], count: int) -> None:
        self._heads[chain] = head
        self.appended_heads[chain] = head
        self.appended_since_checkpoint += count
        if self.checkpoint_after and self.appended_since_checkpoint >= self.checkpoint_after:
            self.grown.set()

    async def store_heads(self) -> dict[str, tuple[int, str]]:
        """The last entry of every chain in the store."""
        heads: dict[str, tuple[int, str]] = {}
        for chain in await self.entries.distinct("chain"):
            last = await self.entries.find_one(
                {"chain": chain}, {"seq": 1, "hash": 1}, sort=[("seq", DESCENDING)]
            )
            if last is not None:
                heads[chain] = (int(last["seq"]), str(last["hash"]))
        return heads

    async def verify(
        self,
        checkpoints: Iterable[AuditCheckpoint] = (),
        keys: Mapping[str, Ed25519PublicKey] | None = None,
        *,
        unsigned_grace: timedelta | None = None,
    ) -> AuditReport:
        """The offline verifier's checks over the store; without ``keys`` links and hashes only."""
        verification = Verification(checkpoints if keys else (), keys or {})
        problem = verification.check_signatures()
        if problem is not None:
            return AuditReport(False, 0, problem.entry, problem.text)
        signed = len(verification.checkpoints)
        before = verification.unsigned_before(unsigned_grace, datetime.now(UTC)) if keys else None
        checked = 0
        for chain in verification.chains(await self.entries.distinct("chain")):
            check = verification.chain(chain)
            async for entry in self.entries.find({"chain": chain}).sort("seq", ASCENDING):
                problem = check.add(entry)
                if problem is not None:
                    break
            else:
                problem = check.end(before)
            checked += check.checked
            if problem is not None:
                return AuditReport(False, checked, problem.entry, problem.text, signed)
        return AuditReport(True, checked, checkpoints=signed)

    async def export(self, chain: str = "") -> AsyncIterator[pb.ExportAuditResponse]:
        """Every entry (of one chain, if named), chain by chain, in sequence order."""
        query = {"chain": chain} if chain else {}
        cursor = self.entries.find(query).sort([("chain", ASCENDING), ("seq", ASCENDING)])
        async for entry in cursor:
            yield pb.ExportAuditResponse(entry=entry_to_proto(entry))


def _content(envelope: EventEnvelope, offset: int) -> Doc:
    """An entry's own fields (its place in the chain is added by :func:`_entry`); PoisonEvent
    when the event cannot be an entry."""
    try:
        occurred_at = envelope.occurred_at.ToDatetime(UTC).isoformat()
    except (ValueError, OverflowError) as exc:
        raise PoisonEvent(f"occurred_at is not a time: {exc}") from exc
    content: Doc = {
        "_id": envelope.event_id,
        "event_type": envelope.event_type,
        "occurred_at": occurred_at,
        "producer": envelope.producer,
        "payload_sha256": hashlib.sha256(envelope.payload.value).hexdigest(),
        "offset": offset,
    }
    content.update(_operator(envelope))
    for name, value in content.items():
        if isinstance(value, str) and len(value) > MAX_TEXT:
            raise PoisonEvent(f"{name} is {len(value)} characters; an audit entry takes {MAX_TEXT}")
        if isinstance(value, str) and "\x00" in value:
            # the store (PostgreSQL under FerretDB) keeps no NUL character in text
            raise PoisonEvent(f"{name} holds a NUL character")
    return content


def _entry(chain: str, head: tuple[int, str], content: Doc) -> Doc:
    entry: Doc = {**content, "chain": chain, "seq": head[0] + 1, "prev_hash": head[1]}
    entry["hash"] = entry_hash(entry)
    return entry


def _operator(envelope: EventEnvelope) -> Doc:
    """Who did what to what, for the entries of operator actions (empty for other events)."""
    if carries(envelope, UnitChanged):
        changed = unpack(envelope, UnitChanged)
        return {"actor": changed.actor, "action": "unit.changed", "target": changed.unit.code}
    if carries(envelope, OperatorAction):
        action = unpack(envelope, OperatorAction)
        return {"actor": action.actor, "action": action.action, "target": action.target}
    return {}
