"""The offline audit verifier on exports: a clean chain passes; every tampering an insider with
write access to the store can do is detected and the first broken entry named."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from document_service.checkpoints import CheckpointSigner
from lienthong.document.v1 import document_service_pb2 as pb
from lienthong.events.v1.events_pb2 import AuditCheckpoint
from lienthong_audit.verify import (
    GENESIS,
    AuditReport,
    entry_hash,
    entry_to_proto,
    export_lines,
    key_id,
    main,
    verify_export,
)

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
DOCS, UNITS = "lienthong.documents/0", "lienthong.units/1"

Chain = list[dict[str, Any]]


def chain(name: str, count: int, *, start: datetime = T0) -> Chain:
    entries: Chain = []
    previous = GENESIS
    for seq in range(1, count + 1):
        entry: dict[str, Any] = {
            "_id": f"{name}-e{seq}",
            "chain": name,
            "seq": seq,
            "prev_hash": previous,
            "event_type": "document.submitted",
            "occurred_at": (start + timedelta(seconds=seq)).isoformat(),
            "producer": "document-service",
            "payload_sha256": hashlib.sha256(f"{name}{seq}".encode()).hexdigest(),
            "offset": seq - 1,
        }
        if name == UNITS:
            entry.update(
                event_type="unit.changed",
                actor="operator/registry-admin/lan",
                action="unit.changed",
                target=f"000.00.{seq:02d}.H23",
            )
        entry["hash"] = previous = entry_hash(entry)
        entries.append(entry)
    return entries


def recompute(entries: Chain) -> None:
    """What an insider does after an edit: relink and rehash every later entry."""
    previous = GENESIS
    for seq, entry in enumerate(entries, start=1):
        entry["seq"], entry["prev_hash"] = seq, previous
        entry["hash"] = previous = entry_hash(entry)


@pytest.fixture
def signer() -> CheckpointSigner:
    return CheckpointSigner(Ed25519PrivateKey.generate())


def sign(signer: CheckpointSigner, entries: Chain, *seqs: int) -> list[AuditCheckpoint]:
    return [
        signer.sign(
            entries[s - 1]["chain"], s, entries[s - 1]["hash"], T0 + timedelta(seconds=s + 1)
        )
        for s in seqs
    ]


def records(chains: list[Chain], checkpoints: list[AuditCheckpoint]) -> list[Any]:
    out = [pb.ExportAuditResponse(entry=entry_to_proto(e)) for c in chains for e in c]
    return out + [pb.ExportAuditResponse(checkpoint=c) for c in checkpoints]


def verify(
    signer: CheckpointSigner, chains: list[Chain], checkpoints: list[AuditCheckpoint], **kw: Any
) -> AuditReport:
    kw.setdefault("unsigned_grace", None)
    return verify_export(records(chains, checkpoints), {signer.key_id: signer.public_key}, **kw)


@pytest.fixture
def signed(signer: CheckpointSigner) -> tuple[Chain, Chain, list[AuditCheckpoint]]:
    docs, units = chain(DOCS, 10), chain(UNITS, 4)
    return docs, units, sign(signer, docs, 3, 6, 10) + sign(signer, units, 4)


def test_a_clean_export_is_intact(
    signer: CheckpointSigner, signed: tuple[Chain, Chain, list[AuditCheckpoint]]
) -> None:
    docs, units, checkpoints = signed
    report = verify(signer, [docs, units], checkpoints)
    assert report == AuditReport(True, 14, checkpoints=4)


Tamper = Callable[[Chain], None]


def _edit(entries: Chain) -> None:
    entries[4]["producer"] = "someone-else"


def _delete(entries: Chain) -> None:
    del entries[4]


def _relink(entries: Chain) -> None:
    entries[4]["prev_hash"] = entries[2]["hash"]


@pytest.mark.parametrize(
    ("tamper", "named", "says"),
    [
        (_edit, f"{DOCS}-e5", "content does not match its hash"),
        (_delete, f"{DOCS}#5", "is missing (the next entry present is #6)"),
        (_relink, f"{DOCS}-e5", "link to the previous entry is broken"),
    ],
    ids=["edit", "delete", "relink"],
)
def test_an_edited_or_deleted_entry_is_named(
    signer: CheckpointSigner,
    signed: tuple[Chain, Chain, list[AuditCheckpoint]],
    tamper: Tamper,
    named: str,
    says: str,
) -> None:
    docs, units, checkpoints = signed
    tamper(docs)
    report = verify(signer, [docs, units], checkpoints)
    assert not report.intact
    assert report.first_broken == named
    assert says in report.problem


def test_rewrite_and_recompute_is_caught_by_the_signed_head(
    signer: CheckpointSigner, signed: tuple[Chain, Chain, list[AuditCheckpoint]]
) -> None:
    docs, units, checkpoints = signed
    docs[4]["producer"] = "someone-else"
    recompute(docs)  # every link and hash is consistent again
    report = verify(signer, [docs, units], checkpoints)
    assert not report.intact
    # #3 is the last signed head that still matches: #4 is the first entry it does not cover
    assert report.first_broken == f"{DOCS}-e4"
    assert f"{DOCS}#6 does not match the head signed at" in report.problem
    assert "#4..#6 were rewritten" in report.problem


def test_rewrite_with_a_checkpoint_per_entry_names_the_edited_entry(
    signer: CheckpointSigner,
) -> None:
    docs = chain(DOCS, 6)
    checkpoints = sign(signer, docs, *range(1, 7))
    docs[4]["payload_sha256"] = "0" * 64
    recompute(docs)
    report = verify(signer, [docs], checkpoints)
    assert report.first_broken == f"{DOCS}-e5"


def test_delete_and_renumber_is_caught(
    signer: CheckpointSigner, signed: tuple[Chain, Chain, list[AuditCheckpoint]]
) -> None:
    docs, units, checkpoints = signed
    del docs[7]
    recompute(docs)
    report = verify(signer, [docs, units], checkpoints)
    assert not report.intact
    # the chain is now one short of the head signed at #10 (no signed head between #6 and #10
    # to narrow it down: the finer the checkpoints, the closer the name)
    assert report.first_broken == f"{DOCS}#10"
    assert f"{DOCS}#10 is missing: the chain was truncated" in report.problem


def test_a_truncated_tail_is_named(
    signer: CheckpointSigner, signed: tuple[Chain, Chain, list[AuditCheckpoint]]
) -> None:
    docs, units, checkpoints = signed
    del docs[7:]
    report = verify(signer, [docs, units], checkpoints)
    assert not report.intact
    assert report.first_broken == f"{DOCS}#8"
    assert f"{DOCS}#8..#10 are missing: the chain was truncated" in report.problem


def test_a_deleted_chain_is_named(
    signer: CheckpointSigner, signed: tuple[Chain, Chain, list[AuditCheckpoint]]
) -> None:
    docs, _, checkpoints = signed
    report = verify(signer, [docs], checkpoints)
    assert not report.intact
    assert report.first_broken == f"{UNITS}#1"
    assert "the whole chain is missing" in report.problem


def test_an_edited_operator_action_is_named(
    signer: CheckpointSigner, signed: tuple[Chain, Chain, list[AuditCheckpoint]]
) -> None:
    docs, units, checkpoints = signed
    units[1]["actor"] = "operator/registry-admin/someone-else"
    report = verify(signer, [docs, units], checkpoints)
    assert report.first_broken == f"{UNITS}-e2"


def test_a_forged_or_foreign_checkpoint_is_refused(
    signer: CheckpointSigner, signed: tuple[Chain, Chain, list[AuditCheckpoint]]
) -> None:
    docs, units, checkpoints = signed
    forged = AuditCheckpoint()
    forged.CopyFrom(checkpoints[0])
    forged.head_hash = "f" * 64
    report = verify(signer, [docs, units], [*checkpoints, forged])
    assert (report.intact, report.first_broken) == (False, f"checkpoint {DOCS}#3")
    assert "signature does not verify" in report.problem
    other = CheckpointSigner(Ed25519PrivateKey.generate())
    report = verify(signer, [docs, units], [*checkpoints, *sign(other, docs, 10)])
    assert f"signed by unknown key {other.key_id!r}" in report.problem


def test_an_old_unsigned_tail_is_refused_unless_allowed(signer: CheckpointSigner) -> None:
    docs = chain(DOCS, 10)
    checkpoints = sign(signer, docs, 5)
    other = chain("other/0", 1, start=T0 + timedelta(hours=1))
    late = [signer.sign("other/0", 1, other[0]["hash"], T0 + timedelta(hours=1, seconds=5))]
    report = verify(signer, [docs, other], checkpoints + late, unsigned_grace=timedelta(minutes=5))
    assert (report.intact, report.first_broken) == (False, f"{DOCS}-e6")
    assert "covered by no signed checkpoint (signed up to #5)" in report.problem
    assert verify(signer, [docs, other], checkpoints + late).intact  # grace None: allowed


def test_the_command_line_verifies_an_export_file(
    tmp_path: Path,
    signer: CheckpointSigner,
    signed: tuple[Chain, Chain, list[AuditCheckpoint]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    docs, units, checkpoints = signed
    key = tmp_path / "audit.pub.pem"
    key.write_bytes(
        signer.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    export = tmp_path / "audit.jsonl"
    export.write_text("\n".join(export_lines(records([docs, units], checkpoints))) + "\n")
    assert main([str(export), "--public-key", str(key)]) == 0
    assert "intact: 14 entries, 4 signed checkpoints" in capsys.readouterr().out

    del docs[9]
    export.write_text("\n".join(export_lines(records([docs, units], checkpoints))) + "\n")
    assert main([str(export), "--public-key", str(key)]) == 1
    out = capsys.readouterr().out
    assert f"first broken entry: {DOCS}#10" in out

    export.write_text('{"entry": {"seq": "x"}}\n')
    assert main([str(export), "--public-key", str(key)]) == 2
    assert "line 1: not an audit record" in capsys.readouterr().err


def test_the_key_id_is_the_public_keys_fingerprint(signer: CheckpointSigner) -> None:
    raw = signer.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert key_id(signer.public_key) == hashlib.sha256(raw).hexdigest()[:16] == signer.key_id
