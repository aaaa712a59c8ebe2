"""The signed audit log through document-service's real server, broker and store: operator
actions join the chains, heads are checkpointed signed on their topic, ExportAudit's output
verifies offline, and an insider's edit, delete, truncation, deleted chain or
rewrite-and-recompute in the store is named by VerifyAudit."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from document_service.__main__ import Settings, build
from document_service.audit_export import dump
from document_service.checkpoints import operator_actions_topic
from lienthong.common.v1.common_pb2 import DocumentSummary
from lienthong.document.v1 import document_service_pb2 as pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.events.v1.events_pb2 import DeliveryCreated, OperatorAction, UnitChanged
from lienthong.routing.v1.routing_service_pb2 import Unit
from lienthong_audit.verify import GENESIS, entry_hash, export_lines, main
from lienthong_kit.envelope import new_event
from lienthong_kit.mongo import Doc
from lienthong_kit.server import ServiceApp
from lienthong_testing.callers import OBSERVER
from lienthong_testing.waiting import eventually

SENDER, A = "000.00.00.H23", "000.01.00.H23"
ADMIN = "operator/registry-admin/lan"


def unit(code: str) -> tuple[tuple[str, str], ...]:
    return (("x-lienthong-unit", code),)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    """A signing key made for this test (never committed) and its public key."""
    private = Ed25519PrivateKey.generate()
    key, pub = tmp_path / "audit.key.pem", tmp_path / "audit.pub.pem"
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pub.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key, pub


@pytest.fixture
async def service(start_service: Any, keys: tuple[Path, Path]) -> ServiceApp:
    env = {
        "LIENTHONG_AUDIT_SIGNING_KEY": str(keys[0]),
        "LIENTHONG_AUDIT_CHECKPOINT_SECONDS": "0.2",
    }
    app: ServiceApp = await start_service("document-service", build, Settings, env)
    return app


@pytest.fixture
async def stub(service: ServiceApp) -> AsyncIterator[DocumentServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
        yield DocumentServiceStub(channel)


async def export(stub: DocumentServiceStub) -> list[pb.ExportAuditResponse]:
    return [r async for r in stub.ExportAudit(pb.ExportAuditRequest(), metadata=OBSERVER)]


def all_signed(records: list[pb.ExportAuditResponse], at_least: int) -> bool:
    """Every chain's last entry is covered by a checkpoint, and ``at_least`` entries exist."""
    heads: dict[str, int] = {}
    signed: dict[str, int] = {}
    for r in records:
        if r.HasField("entry"):
            heads[r.entry.chain] = max(heads.get(r.entry.chain, 0), r.entry.seq)
        else:
            signed[r.checkpoint.chain] = max(signed.get(r.checkpoint.chain, 0), r.checkpoint.seq)
    return sum(heads.values()) >= at_least and all(signed.get(c, 0) >= s for c, s in heads.items())


async def activity(service: ServiceApp, stub: DocumentServiceStub) -> None:
    """A document sent and delivered, a registry change and a trust-store change."""
    fields: dict[str, Any] = {
        "recipients": {"unit_codes": [A]},
        "code": {"number": "7", "notation": "CV-UBND"},
        "subject": "Về việc kiểm tra nhật ký",
        "promulgation_date": "2026-11-20",
    }
    reply = await stub.SubmitDocument(pb.SubmitDocumentRequest(**fields), metadata=unit(SENDER))
    document: DocumentSummary = reply.document
    created = DeliveryCreated(
        delivery_id=f"{document.document_id}/{A}", document=document, recipient_code=A
    )
    topics, producer = service.topics, service.producer
    await producer.publish(
        topics.deliveries, key=A, envelope=new_event(created, producer="routing-service")
    )
    for name in ("Sở Tư pháp", "Sở Tư pháp tỉnh", "Sở Tư pháp tỉnh Bắc Ninh"):
        changed = UnitChanged(unit=Unit(code="000.02.00.H23", name=name), actor=ADMIN)
        await producer.publish(
            topics.units, key="000.02.00.H23", envelope=new_event(changed, producer="routing")
        )
    action = OperatorAction(
        actor="operator/trust-admin/minh",
        action="trust_anchor.added",
        target="ab" * 32,
        details={"subject": "CN=Test Root CA"},
    )
    await producer.publish(
        operator_actions_topic(topics),
        key=action.target,
        envelope=new_event(action, producer="signature-service"),
    )


async def verify(stub: DocumentServiceStub) -> pb.VerifyAuditResponse:
    reply: pb.VerifyAuditResponse = await stub.VerifyAudit(
        pb.VerifyAuditRequest(), metadata=OBSERVER
    )
    return reply


async def test_operator_actions_are_chained_signed_and_verify_offline(
    service: ServiceApp, stub: DocumentServiceStub, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    await activity(service, stub)
    # submitted, created, arrived 01, three unit changes, the trust anchor
    records = await eventually(lambda: export(stub), until=lambda r: all_signed(r, 7))
    operators = {(r.entry.actor, r.entry.action) for r in records if r.entry.actor}
    assert operators == {
        (ADMIN, "unit.changed"),
        ("operator/trust-admin/minh", "trust_anchor.added"),
    }
    report = await verify(stub)
    assert report.intact, report.problem
    assert report.checkpoints_verified >= 3

    exported = tmp_path / "audit.jsonl"
    exported.write_text("\n".join(export_lines(records)) + "\n")
    assert main([str(exported), "--public-key", str(keys[1])]) == 0
    dumped = tmp_path / "dump.jsonl"
    with dumped.open("w") as out:  # the store-side dump, without the gRPC API
        assert await dump(service.settings, out) == len(records)
    assert main([str(dumped), "--public-key", str(keys[1])]) == 0
    other = tmp_path / "other.pub.pem"
    other.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert main([str(exported), "--public-key", str(other)]) == 1  # not our signer


async def test_chains_from_before_signing_are_adopted_at_start(
    start_service: Any, keys: tuple[Path, Path]
) -> None:
    unsigned: ServiceApp = await start_service("document-service", build, Settings)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{unsigned.grpc_port}") as channel:
        stub = DocumentServiceStub(channel)
        await activity(unsigned, stub)
        await eventually(lambda: export(stub), until=lambda r: len(r) >= 7)
        assert (await verify(stub)).checkpoints_verified == 0  # no key: proves nothing
    env = {"LIENTHONG_AUDIT_SIGNING_KEY": str(keys[0])}
    signed: ServiceApp = await start_service("document-service", build, Settings, env)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{signed.grpc_port}") as channel:
        stub = DocumentServiceStub(channel)
        await eventually(lambda: export(stub), until=lambda r: all_signed(r, 7))
        report = await verify(stub)
    assert report.intact, report.problem
    assert report.checkpoints_verified >= 4  # one per chain: documents, deliveries, units, ops


Tamper = Callable[[Any, list[Doc]], Awaitable[str]]


async def _edit(entries: Any, chain: list[Doc]) -> str:
    await entries.update_one({"_id": chain[0]["_id"]}, {"$set": {"producer": "someone-else"}})
    return str(chain[0]["_id"])


async def _delete(entries: Any, chain: list[Doc]) -> str:
    await entries.delete_one({"_id": chain[0]["_id"]})
    return f"{chain[0]['chain']}#1"


async def _truncate(entries: Any, chain: list[Doc]) -> str:
    await entries.delete_one({"_id": chain[-1]["_id"]})
    return f"{chain[-1]['chain']}#{chain[-1]['seq']}"


async def _delete_chain(entries: Any, chain: list[Doc]) -> str:
    await entries.delete_many({"chain": chain[0]["chain"]})
    return f"{chain[0]['chain']}#1"


async def _rewrite(entries: Any, chain: list[Doc]) -> str:
    """The insider edits the first entry and recomputes every hash and link after it."""
    previous = GENESIS
    for index, entry in enumerate(chain):
        if index == 0:
            entry["payload_sha256"] = hashlib.sha256(b"what the insider wants").hexdigest()
        entry["prev_hash"] = previous
        entry["hash"] = previous = entry_hash(entry)
        await entries.replace_one({"_id": entry["_id"]}, entry)
    return str(chain[0]["_id"])


@pytest.mark.parametrize(
    ("tamper", "says"),
    [
        (_edit, "content does not match its hash"),
        (_delete, "is missing (the next entry present is #2)"),
        (_truncate, "the chain was truncated"),
        (_delete_chain, "the whole chain is missing"),
        (_rewrite, "were rewritten after signing"),
    ],
    ids=["edit", "delete", "truncate", "delete-chain", "rewrite-and-recompute"],
)
async def test_an_insider_rewriting_the_store_is_named(
    service: ServiceApp, stub: DocumentServiceStub, tamper: Tamper, says: str
) -> None:
    await activity(service, stub)
    await eventually(lambda: export(stub), until=lambda r: all_signed(r, 7))
    assert (await verify(stub)).intact
    entries = service.db["audit"]
    units_chains = await entries.distinct("chain", {"action": "unit.changed"})
    assert len(units_chains) == 1
    victim = [e async for e in entries.find({"chain": units_chains[0]}).sort("seq", 1)]
    assert len(victim) == 3
    named = await tamper(entries, victim)
    report = await verify(stub)
    assert not report.intact
    assert report.first_broken_entry == named
    assert says in report.problem


async def test_a_negative_grace_is_refused_naming_the_field(stub: DocumentServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.VerifyAudit(pb.VerifyAuditRequest(unsigned_grace_seconds=-1), metadata=OBSERVER)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unsigned_grace_seconds" in (raised.value.details() or "")
