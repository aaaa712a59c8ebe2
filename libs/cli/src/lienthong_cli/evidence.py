"""Evidence bundles: one document's record, in a zip that is checked with no platform access.

    bundle.zip
      manifest.json         format, document id, when, the SHA-256 and size of every other file
      document.json         GetDocument (metadata, recipients, attachment refs with SHA-256)
      status-trail.json     TrackDocument: each recipient's status history
      verification.json     GetVerification: signature-service's report (absent if none yet)
      attachments/ID/NAME   each attachment's bytes (GetAttachment)
      audit.jsonl           audit entries around the document's events, per chain a run that
                            ends at a signed checkpoint, and those checkpoints (ExportAudit lines)

The manifest's hashes catch any edited, added or removed file; the audit excerpt is anchored by
the checkpoint signatures (Ed25519, the auditors' public key), which nobody can recompute.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from lienthong.document.v1 import document_service_pb2 as doc_pb
from lienthong_audit.verify import entry_from_proto, read_export, verify_excerpt

__all__ = [
    "FORMAT",
    "BundleReport",
    "NotYetSigned",
    "audit_excerpt",
    "verify_bundle",
    "write_bundle",
]

FORMAT = "lienthong-evidence/v1"
MANIFEST = "manifest.json"
AUDIT = "audit.jsonl"
# the chains a document's own events land on (documents and deliveries topics, any prefix)
_DOCUMENT_CHAINS = re.compile(r"lienthong\.(documents|deliveries(\.urgent)?)/\d+$")
# events are stamped by their producer, a little before or after the times the trail shows
_SLACK = timedelta(seconds=5)


class NotYetSigned(Exception):
    """The document's newest audit entries are covered by no signed checkpoint yet."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def audit_excerpt(
    records: Iterable[doc_pb.ExportAuditResponse], start: datetime, end: datetime
) -> list[doc_pb.ExportAuditResponse]:
    """Per document chain, the entries stamped between ``start`` and ``end`` (the log does not
    index entries by document), extended to the first signed checkpoint after them, and the
    checkpoints inside that run. Raises NotYetSigned when no checkpoint covers them yet."""
    entries: dict[str, dict[int, doc_pb.ExportAuditResponse]] = {}
    checkpoints: dict[str, list[doc_pb.ExportAuditResponse]] = {}
    for record in records:
        if record.HasField("entry") and _DOCUMENT_CHAINS.search(record.entry.chain):
            entries.setdefault(record.entry.chain, {})[record.entry.seq] = record
        elif record.HasField("checkpoint") and _DOCUMENT_CHAINS.search(record.checkpoint.chain):
            checkpoints.setdefault(record.checkpoint.chain, []).append(record)
    start, end = start - _SLACK, end + _SLACK
    excerpt: list[doc_pb.ExportAuditResponse] = []
    for chain, by_seq in sorted(entries.items()):
        inside = [
            seq
            for seq, record in by_seq.items()
            if start <= datetime.fromisoformat(record.entry.occurred_at) <= end
        ]
        if not inside:
            continue
        first, last = min(inside), max(inside)
        signed = sorted(r.checkpoint.seq for r in checkpoints.get(chain, []))
        covering = [seq for seq in signed if seq >= last]
        if not covering:
            raise NotYetSigned(
                f"{chain}#{last} is covered by no signed checkpoint yet (signed up to "
                f"#{max(signed, default=0)}); retry after the next checkpoint"
            )
        head = covering[0]
        missing = [seq for seq in range(first, head + 1) if seq not in by_seq]
        if missing:
            raise ValueError(f"the export lacks {chain}#{missing[0]}")
        excerpt += [by_seq[seq] for seq in range(first, head + 1)]
        excerpt += [r for r in checkpoints[chain] if first <= r.checkpoint.seq <= head]
    return excerpt


def write_bundle(
    document_id: str,
    files: Mapping[str, bytes],
    audit_lines: Iterable[str],
    created_at: datetime,
) -> bytes:
    """The zip: ``files`` (name to bytes), ``audit.jsonl`` and the manifest hashing them all."""
    contents = dict(files)
    contents[AUDIT] = "".join(line + "\n" for line in audit_lines).encode()
    manifest = {
        "format": FORMAT,
        "document_id": document_id,
        "created_at": created_at.isoformat(timespec="seconds"),
        "files": {
            name: {"sha256": _sha256(data), "size": len(data)}
            for name, data in sorted(contents.items())
        },
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr(MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=2))
        for name, data in sorted(contents.items()):
            bundle.writestr(name, data)
    return buffer.getvalue()


@dataclass
class BundleReport:
    document_id: str = ""
    files: int = 0
    attachments: int = 0
    audit_entries: int = 0
    chains: int = 0
    checkpoints: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "intact": self.intact,
            "document_id": self.document_id,
            "files": self.files,
            "attachments": self.attachments,
            "audit_entries": self.audit_entries,
            "chains": self.chains,
            "checkpoints": self.checkpoints,
            "problems": self.problems,
        }


def verify_bundle(data: bytes, keys: Mapping[str, Ed25519PublicKey]) -> BundleReport:
    """Every check, every problem named (a file, an attachment, an audit entry); no network."""
    report = BundleReport()
    try:
        bundle = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        report.problems.append(f"not a zip file: {exc}")
        return report
    with bundle:
        names = set(bundle.namelist())
        if MANIFEST not in names:
            report.problems.append(f"{MANIFEST} is missing")
            return report
        try:
            manifest = json.loads(bundle.read(MANIFEST))
            listed: dict[str, dict[str, Any]] = dict(manifest["files"])
            report.document_id = str(manifest["document_id"])
        except (ValueError, KeyError, TypeError) as exc:
            report.problems.append(f"{MANIFEST} is not a bundle manifest: {exc}")
            return report
        if manifest.get("format") != FORMAT:
            report.problems.append(f"{MANIFEST}: format {manifest.get('format')!r}, not {FORMAT}")
        contents: dict[str, bytes] = {}
        for name in sorted(names - {MANIFEST} - set(listed)):
            report.problems.append(f"{name}: added (not in the manifest)")
        for name, expected in sorted(listed.items()):
            if name not in names:
                report.problems.append(f"{name}: removed (listed in the manifest)")
                continue
            contents[name] = bundle.read(name)
            actual, recorded = _sha256(contents[name]), expected.get("sha256")
            if actual != recorded:
                report.problems.append(
                    f"{name}: changed (SHA-256 {actual}, the manifest says {recorded})"
                )
    report.files = len(contents)
    _check_attachments(contents, report)
    _check_audit(contents, keys, report)
    return report


def _check_attachments(contents: Mapping[str, bytes], report: BundleReport) -> None:
    if "document.json" not in contents:
        report.problems.append("document.json: missing")
        return
    document = json.loads(contents["document.json"])
    if document.get("document", {}).get("document_id") != report.document_id:
        report.problems.append("document.json: another document than the manifest names")
    for ref in document.get("attachments", []):
        name = f"attachments/{ref['attachment_id']}/{ref['name']}"
        report.attachments += 1
        if name not in contents:
            report.problems.append(f"{name}: missing (document.json lists it)")
        elif _sha256(contents[name]) != ref.get("sha256"):
            report.problems.append(
                f"{name}: its SHA-256 is not the one the platform recorded in document.json"
            )


def _check_audit(
    contents: Mapping[str, bytes], keys: Mapping[str, Ed25519PublicKey], report: BundleReport
) -> None:
    if AUDIT not in contents:
        report.problems.append(f"{AUDIT}: missing")
        return
    try:
        records = list(read_export(contents[AUDIT].decode().splitlines()))
    except (ValueError, UnicodeDecodeError) as exc:
        report.problems.append(f"{AUDIT}: {exc}")
        return
    entries = [entry_from_proto(r.entry) for r in records if r.HasField("entry")]
    report.chains = len({e["chain"] for e in entries})
    result = verify_excerpt(records, keys)
    report.audit_entries, report.checkpoints = len(entries), result.checkpoints
    if not result.intact:
        report.problems.append(
            f"{AUDIT}: {result.problem} (first broken entry: {result.first_broken})"
        )
    elif not entries or not result.checkpoints:
        report.problems.append(f"{AUDIT}: no signed audit entries (the bundle proves nothing)")
