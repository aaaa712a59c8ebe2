"""The audit verifier: checks hash chains against signed checkpoints, with or without the platform.

    python -m lienthong_audit EXPORT.jsonl --public-key KEY.pem [--public-key OLD.pem]
        [--unsigned-grace SECONDS | --allow-unsigned]

An export is JSON lines, one ``ExportAuditResponse`` each (an entry or a checkpoint), as the
``ExportAudit`` RPC streams them. It checks, chain by chain, that every entry links to the one
before and matches its hash, that every checkpoint is signed by a given key, that every entry
up to each signed head is present and that the entry at the signed sequence number has the
signed hash (an insider who edits an entry and recomputes the rest of the chain fails here),
and that no entry older than the grace period (counted back from the newest checkpoint of the
export) is left unsigned. It names the first broken, missing or truncated entry. Exit status:
0 intact, 1 not intact, 2 unreadable input. ``VerifyAudit`` runs the same checks on the store
and the checkpoint topic.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf import json_format

from lienthong.document.v1 import document_service_pb2 as pb
from lienthong.events.v1.events_pb2 import AuditCheckpoint

__all__ = [
    "GENESIS",
    "AuditReport",
    "ChainCheck",
    "Verification",
    "checkpoint_message",
    "entry_from_proto",
    "entry_hash",
    "entry_to_proto",
    "export_lines",
    "key_id",
    "load_public_keys",
    "main",
    "read_export",
    "verify_excerpt",
    "verify_export",
]

GENESIS = "0" * 64
OPERATOR_FIELDS = ("actor", "action", "target")


def entry_hash(entry: Mapping[str, Any]) -> str:
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
    # operator entries say who did what in the clear; older entries hash as before
    if any(entry.get(name) for name in OPERATOR_FIELDS):
        parts += [str(entry.get(name, "")) for name in OPERATOR_FIELDS]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def checkpoint_message(checkpoint: AuditCheckpoint) -> bytes:
    """The bytes a checkpoint's signature covers (every field but the signature)."""
    at = checkpoint.signed_at
    return "|".join(
        [
            "lienthong-audit-checkpoint/v1",
            checkpoint.chain,
            str(checkpoint.seq),
            checkpoint.head_hash,
            f"{at.seconds}.{at.nanos:09d}",
            checkpoint.key_id,
        ]
    ).encode()


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_keys(pems: Iterable[bytes]) -> dict[str, Ed25519PublicKey]:
    """Ed25519 public keys (PEM) by key id; raises ValueError naming a key that is not one."""
    keys: dict[str, Ed25519PublicKey] = {}
    for index, pem in enumerate(pems):
        key = serialization.load_pem_public_key(pem)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"public key {index + 1} is not an Ed25519 key")
        keys[key_id(key)] = key
    return keys


def entry_to_proto(entry: Mapping[str, Any]) -> pb.AuditEntry:
    return pb.AuditEntry(
        event_id=entry["_id"],
        chain=entry["chain"],
        seq=int(entry["seq"]),
        prev_hash=entry["prev_hash"],
        event_type=entry["event_type"],
        occurred_at=entry["occurred_at"],
        producer=entry["producer"],
        payload_sha256=entry["payload_sha256"],
        offset=int(entry.get("offset", 0)),
        hash=entry["hash"],
        actor=str(entry.get("actor", "")),
        action=str(entry.get("action", "")),
        target=str(entry.get("target", "")),
    )


def entry_from_proto(message: pb.AuditEntry) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "_id": message.event_id,
        "chain": message.chain,
        "seq": message.seq,
        "prev_hash": message.prev_hash,
        "event_type": message.event_type,
        "occurred_at": message.occurred_at,
        "producer": message.producer,
        "payload_sha256": message.payload_sha256,
        "offset": message.offset,
        "hash": message.hash,
    }
    for name in OPERATOR_FIELDS:
        if getattr(message, name):
            entry[name] = getattr(message, name)
    return entry


@dataclass(frozen=True)
class AuditReport:
    intact: bool
    checked: int
    first_broken: str = ""
    problem: str = ""
    checkpoints: int = 0


@dataclass(frozen=True)
class Problem:
    entry: str  # the entry's event id, or ``chain#seq`` when the entry is missing
    text: str


def _when(checkpoint: AuditCheckpoint) -> str:
    return checkpoint.signed_at.ToDatetime(UTC).isoformat(timespec="seconds")


@dataclass
class ChainCheck:
    """One chain's entries, fed in sequence order, against its signed checkpoints."""

    chain: str
    signed: dict[int, AuditCheckpoint]
    checked: int = 0
    _previous: str = GENESIS
    _seq: int = 0
    # the last signed head the entries match, and the id of the entry after it
    _confirmed: int = 0
    _after_confirmed: str = ""
    _occurred: list[tuple[int, str, str]] = field(default_factory=list)

    def add(self, entry: Mapping[str, Any]) -> Problem | None:
        self.checked += 1
        seq, entry_id, where = int(entry["seq"]), str(entry["_id"]), f"{self.chain}#{entry['seq']}"
        if seq != self._seq + 1:
            missing = self._seq + 1
            return Problem(
                f"{self.chain}#{missing}",
                f"{self.chain}#{missing} is missing (the next entry present is #{seq})",
            )
        if entry["prev_hash"] != self._previous:
            return Problem(entry_id, f"{where}: link to the previous entry is broken")
        if entry_hash(entry) != entry["hash"]:
            return Problem(entry_id, f"{where}: content does not match its hash")
        if not self._after_confirmed:
            self._after_confirmed = entry_id
        signed = self.signed.get(seq)
        if signed is not None:
            if signed.head_hash != entry["hash"]:
                return Problem(
                    self._after_confirmed,
                    f"{where} does not match the head signed at {_when(signed)}: entries"
                    f" #{self._confirmed + 1}..#{seq} were rewritten after signing (#"
                    f"{self._confirmed + 1} is the first entry no matching signature covers)",
                )
            self._confirmed, self._after_confirmed = seq, ""
        self._previous, self._seq = entry["hash"], seq
        if seq > self.last_signed:
            self._occurred.append((seq, entry_id, str(entry["occurred_at"])))
        return None

    @property
    def last_signed(self) -> int:
        return max(self.signed, default=0)

    def end(self, unsigned_before: datetime | None) -> Problem | None:
        """After the last entry: nothing signed may be missing, nothing old left unsigned."""
        last = self.last_signed
        if self._seq < last:
            checkpoint = self.signed[last]
            gone = "the whole chain is missing" if self._seq == 0 else "the chain was truncated"
            first = self._seq + 1
            span = f"#{first} is" if first == last else f"#{first}..#{last} are"
            return Problem(
                f"{self.chain}#{first}",
                f"{self.chain}{span} missing: {gone} (#{last} was signed at {_when(checkpoint)})",
            )
        if unsigned_before is not None:
            for seq, entry_id, occurred in self._occurred:
                if datetime.fromisoformat(occurred) < unsigned_before:
                    return Problem(
                        entry_id,
                        f"{self.chain}#{seq} (of {occurred}) is covered by no signed checkpoint"
                        f" (signed up to #{last})",
                    )
        return None


class Verification:
    """Signature checks of every checkpoint, then one :class:`ChainCheck` per chain."""

    def __init__(
        self, checkpoints: Iterable[AuditCheckpoint], keys: Mapping[str, Ed25519PublicKey]
    ) -> None:
        self.checkpoints = list(checkpoints)
        self.keys = keys
        self.signed: dict[str, dict[int, AuditCheckpoint]] = {}

    def check_signatures(self) -> Problem | None:
        for checkpoint in self.checkpoints:
            where = f"checkpoint {checkpoint.chain}#{checkpoint.seq}"
            key = self.keys.get(checkpoint.key_id)
            if key is None:
                return Problem(where, f"{where} is signed by unknown key {checkpoint.key_id!r}")
            try:
                key.verify(checkpoint.signature, checkpoint_message(checkpoint))
            except InvalidSignature:
                return Problem(where, f"{where}: the signature does not verify")
            heads = self.signed.setdefault(checkpoint.chain, {})
            other = heads.get(checkpoint.seq)
            if other is not None and other.head_hash != checkpoint.head_hash:
                return Problem(where, f"{where}: two signed heads differ (a forked chain)")
            heads[checkpoint.seq] = checkpoint
        return None

    def chain(self, name: str) -> ChainCheck:
        return ChainCheck(name, self.signed.get(name, {}))

    def unsigned_before(self, grace: timedelta | None, now: datetime | None) -> datetime | None:
        """Entries older than this must be signed: ``grace`` before ``now`` (default: the
        newest checkpoint, so an export verifies the same whenever it is checked)."""
        if grace is None:
            return None
        if now is None:
            if not self.checkpoints:
                return None
            now = max(c.signed_at.ToDatetime(UTC) for c in self.checkpoints)
        return now - grace

    def chains(self, present: Iterable[str]) -> list[str]:
        """Every chain to check: those with entries and those with only checkpoints."""
        return sorted(set(present) | set(self.signed))


def verify_export(
    records: Iterable[pb.ExportAuditResponse],
    keys: Mapping[str, Ed25519PublicKey],
    *,
    unsigned_grace: timedelta | None = timedelta(minutes=5),
    now: datetime | None = None,
) -> AuditReport:
    """Verify an export (entries in any order) against ``keys``: the offline verifier's core."""
    entries, checkpoints = _split(records)
    verification = Verification(checkpoints, keys)
    problem = verification.check_signatures()
    if problem is not None:
        return AuditReport(False, 0, problem.entry, problem.text)
    before = verification.unsigned_before(unsigned_grace, now)
    checked = 0
    for name in verification.chains(entries):
        check = verification.chain(name)
        for entry in sorted(entries.get(name, []), key=lambda e: int(e["seq"])):
            problem = check.add(entry)
            if problem is not None:
                break
        else:
            problem = check.end(before)
        checked += check.checked
        if problem is not None:
            return AuditReport(False, checked, problem.entry, problem.text, len(checkpoints))
    return AuditReport(True, checked, checkpoints=len(checkpoints))


def _split(
    records: Iterable[pb.ExportAuditResponse],
) -> tuple[dict[str, list[dict[str, Any]]], list[AuditCheckpoint]]:
    entries: dict[str, list[dict[str, Any]]] = {}
    checkpoints: list[AuditCheckpoint] = []
    for record in records:
        if record.HasField("entry"):
            entry = entry_from_proto(record.entry)
            entries.setdefault(entry["chain"], []).append(entry)
        elif record.HasField("checkpoint"):
            checkpoints.append(record.checkpoint)
    return entries, checkpoints


def verify_excerpt(
    records: Iterable[pb.ExportAuditResponse], keys: Mapping[str, Ed25519PublicKey]
) -> AuditReport:
    """Verify an excerpt of the log (an evidence bundle's): per chain, a run of consecutive
    entries whose first link is taken as given, ending at an entry a signed checkpoint covers.
    The signed head's hash covers every link before it, so the whole run is anchored."""
    entries, checkpoints = _split(records)
    verification = Verification(checkpoints, keys)
    problem = verification.check_signatures()
    if problem is not None:
        return AuditReport(False, 0, problem.entry, problem.text)
    checked = 0
    for name in verification.chains(entries):
        run = sorted(entries.get(name, []), key=lambda e: int(e["seq"]))
        if not run:
            problem = Problem(name, f"{name}: signed checkpoints but no entries")
            return AuditReport(False, checked, problem.entry, problem.text, len(checkpoints))
        first = run[0]
        check = ChainCheck(
            name,
            verification.signed.get(name, {}),
            _previous=str(first["prev_hash"]),
            _seq=int(first["seq"]) - 1,
        )
        for entry in run:
            problem = check.add(entry)
            if problem is not None:
                break
        else:
            last = int(run[-1]["seq"])
            problem = check.end(None)
            if problem is None and last not in check.signed:
                problem = Problem(
                    str(run[-1]["_id"]),
                    f"{name}#{last}: the excerpt ends at an entry no signed checkpoint covers",
                )
        checked += check.checked
        if problem is not None:
            return AuditReport(False, checked, problem.entry, problem.text, len(checkpoints))
    return AuditReport(True, checked, checkpoints=len(checkpoints))


def export_lines(records: Iterable[pb.ExportAuditResponse]) -> Iterator[str]:
    for record in records:
        yield json.dumps(json_format.MessageToDict(record, preserving_proto_field_name=True))


def read_export(lines: Iterable[str]) -> Iterator[pb.ExportAuditResponse]:
    """Parse JSON lines; raises ValueError naming the first line that is not a record."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield json_format.Parse(line, pb.ExportAuditResponse())
        except json_format.ParseError as exc:
            raise ValueError(f"line {number}: not an audit record: {exc}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lienthong_audit",
        description="Verify an exported audit log against the public key(s) of its signer.",
    )
    parser.add_argument("export", type=Path, help="JSON lines from ExportAudit")
    parser.add_argument(
        "--public-key",
        type=Path,
        action="append",
        required=True,
        help="Ed25519 public key (PEM) of the signer; repeat for keys rotated out",
    )
    parser.add_argument(
        "--unsigned-grace",
        type=float,
        default=300.0,
        help="seconds an entry may stay unsigned before the newest checkpoint (default 300)",
    )
    parser.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="accept entries after the last checkpoint of their chain, however old",
    )
    args = parser.parse_args(argv)
    try:
        keys = load_public_keys(path.read_bytes() for path in args.public_key)
        with args.export.open(encoding="utf-8") as lines:
            records = list(read_export(lines))
    except (OSError, ValueError) as exc:
        print(f"lienthong_audit: {exc}", file=sys.stderr)
        return 2
    grace = None if args.allow_unsigned else timedelta(seconds=args.unsigned_grace)
    report = verify_export(records, keys, unsigned_grace=grace)
    if report.intact:
        print(f"intact: {report.checked} entries, {report.checkpoints} signed checkpoints")
        return 0
    print(f"NOT INTACT after {report.checked} entries: {report.problem}")
    print(f"first broken entry: {report.first_broken}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
