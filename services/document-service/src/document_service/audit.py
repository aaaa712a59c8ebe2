"""The hash-chained audit log of every state change.

Every state change is announced by an event (through the outbox), so the audit log is built
from the events themselves: an audit consumer appends each event of the documents and
deliveries topics to the chain of its partition, in offset order. An entry carries the hash of
the previous entry of its chain and its own hash over its content::

    hash = sha256(prev_hash | chain | seq | event_id | event_type | occurred_at | producer
                  | payload_sha256)

Redelivery appends nothing (the event id is the entry's key); two replicas briefly sharing a
partition during a rebalance cannot fork a chain (``(chain, seq)`` is unique). The consumer
keeps each chain's head in memory, links the events of one poll in memory and appends them
with one ordered ``insertMany`` before the offsets are committed; when that meets a conflict
(a redelivery, or another member appended: a stale head) the rest of the poll is appended one
by one, re-reading the head, which costs retries but never forks a chain. ``verify``
recomputes every chain and names the first entry whose hash or link does not match.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC

from aiokafka import ConsumerRecord
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import BulkWriteError, DuplicateKeyError

from lienthong_kit.envelope import EventEnvelope
from lienthong_kit.errors import TransientEventError
from lienthong_kit.mongo import AsyncDatabase, Doc, ensure_indexes

__all__ = ["AuditLog", "AuditReport", "entry_hash"]

GENESIS = "0" * 64


def entry_hash(entry: Doc) -> str:
    parts = [
        entry["prev_hash"],
        entry["chain"],
        str(entry["seq"]),
        entry["_id"],
        entry["event_type"],
        entry["occurred_at"],
        entry["producer"],
        entry["payload_sha256"],
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class AuditReport:
    intact: bool
    checked: int
    first_broken: str = ""
    problem: str = ""


class AuditLog:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.entries = db["audit"]
        self._heads: dict[str, tuple[int, str]] = {}
        self._staged: dict[str, list[tuple[EventEnvelope, int]]] = {}

    async def create_indexes(self) -> None:
        await ensure_indexes(
            self.entries, [IndexModel([("chain", ASCENDING), ("seq", ASCENDING)], unique=True)]
        )

    async def on_event(self, envelope: EventEnvelope, record: ConsumerRecord[bytes, bytes]) -> None:
        """Stage the event; :meth:`flush` appends the staged events before the commit."""
        chain = f"{record.topic}/{record.partition}"
        self._staged.setdefault(chain, []).append((envelope, record.offset))

    async def flush(self) -> None:
        """Append every staged event to its chain (the consumer's ``before_commit``)."""
        while self._staged:
            chain, staged = next(iter(self._staged.items()))
            head = self._heads.get(chain)
            if head is None:
                head = await self._read_head(chain)
            entries = []
            for envelope, offset in staged:
                entries.append(_entry(chain, head, envelope, offset))
                head = (entries[-1]["seq"], entries[-1]["hash"])
            try:
                await self.entries.insert_many(entries, ordered=True)
                self._heads[chain] = head
            except BulkWriteError as exc:
                inserted = int(exc.details.get("nInserted", 0))
                if inserted:
                    last = entries[inserted - 1]
                    self._heads[chain] = (last["seq"], last["hash"])
                for envelope, offset in staged[inserted:]:
                    await self._append(chain, envelope, offset)
            del self._staged[chain]

    async def _append(self, chain: str, envelope: EventEnvelope, offset: int) -> None:
        head = self._heads.get(chain)
        if head is None:
            head = await self._read_head(chain)
        for _ in range(100):
            entry = _entry(chain, head, envelope, offset)
            try:
                await self.entries.insert_one(entry)
            except DuplicateKeyError:
                if await self.entries.find_one({"_id": envelope.event_id}, {"_id": 1}):
                    return  # already in the log: a redelivery
                head = await self._read_head(chain)  # another member appended: relink
                continue
            self._heads[chain] = (entry["seq"], entry["hash"])
            return
        raise TransientEventError(f"could not append to audit chain {chain}")

    async def _read_head(self, chain: str) -> tuple[int, str]:
        last = await self.entries.find_one(
            {"chain": chain}, {"seq": 1, "hash": 1}, sort=[("seq", DESCENDING)]
        )
        head = (int(last["seq"]), str(last["hash"])) if last else (0, GENESIS)
        self._heads[chain] = head
        return head

    async def verify(self) -> AuditReport:
        checked = 0
        chains = sorted(await self.entries.distinct("chain"))
        for chain in chains:
            previous = GENESIS
            expected_seq = 1
            async for entry in self.entries.find({"chain": chain}).sort("seq", ASCENDING):
                checked += 1
                if entry["seq"] != expected_seq:
                    return AuditReport(
                        False, checked, entry["_id"], f"{chain}: entry {expected_seq} is missing"
                    )
                if entry["prev_hash"] != previous:
                    return AuditReport(
                        False,
                        checked,
                        entry["_id"],
                        f"{chain}#{entry['seq']}: link to the previous entry is broken",
                    )
                if entry_hash(entry) != entry["hash"]:
                    return AuditReport(
                        False,
                        checked,
                        entry["_id"],
                        f"{chain}#{entry['seq']}: content does not match its hash",
                    )
                previous = entry["hash"]
                expected_seq += 1
        return AuditReport(True, checked)


def _entry(chain: str, head: tuple[int, str], envelope: EventEnvelope, offset: int) -> Doc:
    entry: Doc = {
        "_id": envelope.event_id,
        "chain": chain,
        "seq": head[0] + 1,
        "prev_hash": head[1],
        "event_type": envelope.event_type,
        "occurred_at": envelope.occurred_at.ToDatetime(UTC).isoformat(),
        "producer": envelope.producer,
        "payload_sha256": hashlib.sha256(envelope.payload.value).hexdigest(),
        "offset": offset,
    }
    entry["hash"] = entry_hash(entry)
    return entry
