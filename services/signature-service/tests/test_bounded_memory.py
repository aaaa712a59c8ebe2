"""signature-service holds any document in bounded memory (issue #22, item 5): files reach the
workers as paths, a worker's address space is capped so that a runaway allocation fails in
that worker and the next document is verified as usual, and pre-checks run on a pool of their
own behind a bounded queue: they cannot hold up submitted documents, and a full queue answers
RESOURCE_EXHAUSTED."""

from __future__ import annotations

import asyncio
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest

from lienthong.signature.v1 import signature_service_pb2 as pb
from lienthong.signature.v1.signature_service_pb2_grpc import SignatureServiceStub
from lienthong_testing.callers import as_unit, default_identity
from lienthong_testing.pki import LocalPki
from signature_service import engine
from signature_service.verifier import PrecheckQueueFull

AS_A_UNIT = default_identity(as_unit("000.00.00.H23"))
MiB = 1024 * 1024


async def test_files_reach_the_workers_as_paths(
    make_verifier: Any, docs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, Any, bytes]] = []
    real = engine.check_files

    def spy(files: list[tuple[str, Any]], *args: Any) -> Any:
        seen.extend((name, path, Path(path).read_bytes()) for name, path in files)
        return real(files, *args)

    monkeypatch.setattr(engine, "check_files", spy)  # thread mode: the patched engine runs
    files = docs["cms-signed-appendix"]
    larger = sum(len(content) for _, content in files) - 1  # than the inline cap
    checker = make_verifier(inline_bytes=larger)
    decision = await checker.verify(files, document_type="QĐ", direction="outgoing")
    assert decision.accepted, decision.reason
    assert [(name, content) for name, _, content in seen] == files
    for _, path, _ in seen:
        assert isinstance(path, str)  # a path, not the bytes, crosses to the worker
        assert not await asyncio.to_thread(os.path.exists, path)  # the spooled copy is gone


async def test_a_small_document_travels_with_the_task_and_leaves_no_file(
    make_verifier: Any, docs: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[tuple[str, Any]] = []
    real = engine.check_files

    def spy(files: list[tuple[str, Any]], *args: Any) -> Any:
        seen.extend(files)
        return real(files, *args)

    monkeypatch.setattr(engine, "check_files", spy)  # thread mode: the patched engine runs
    files = docs["cms-signed-appendix"]
    exact = sum(len(content) for _, content in files)  # the cap itself is still inline
    decision = await make_verifier(inline_bytes=exact).verify(
        files, document_type="QĐ", direction="outgoing"
    )
    assert decision.accepted, decision.reason
    assert seen == files  # the bytes themselves, within the cap


async def test_an_allocation_past_the_cap_fails_in_its_worker_and_the_next_document_passes(
    make_verifier: Any, docs: dict[str, Any]
) -> None:
    # pyhanko bounds stream decoding itself (256 MiB a stream); the cap catches whatever else
    # a file makes the validator allocate: here, plainly, 1 GiB in a worker capped at 768 MiB
    checker = make_verifier(workers=1, memory_bytes=768 * MiB)
    await checker.warm_up()
    before = await checker._run(os.getpid)
    with pytest.raises(MemoryError):
        await checker._run(bytearray, 1024 * MiB)
    decision = await checker.verify(
        docs["person-then-organisation"], document_type="QĐ", direction="outgoing"
    )
    assert decision.accepted, decision.reason
    assert await checker._run(os.getpid) == before  # the same worker lives on
    assert await checker._run(engine.memory_limit) == 768 * MiB


@pytest.fixture
def blocked_prechecks(monkeypatch: pytest.MonkeyPatch) -> Any:
    """ValidateCertificate's engine call waits until released (thread mode)."""
    entered = threading.Semaphore(0)
    release = threading.Event()
    real = engine.validate_certificate

    def held(*args: Any) -> Any:
        entered.release()
        release.wait(60)
        return real(*args)

    monkeypatch.setattr(engine, "validate_certificate", held)
    yield entered, release
    release.set()


async def test_prechecks_cannot_hold_up_documents_and_a_full_queue_is_refused(
    make_verifier: Any, docs: dict[str, Any], pki: LocalPki, blocked_prechecks: Any
) -> None:
    entered, release = blocked_prechecks
    checker = make_verifier(precheck_queue=1)  # one running, one waiting
    der = engine.inspect_certificate(pki.signers["person"].cert_file.read_bytes())
    now = datetime.now(UTC)
    running = asyncio.create_task(checker.validate_certificate(der, [], now))
    waiting = asyncio.create_task(checker.validate_certificate(der, [], now))
    assert await asyncio.to_thread(entered.acquire, True, 60)

    with pytest.raises(PrecheckQueueFull):
        await checker.validate_certificate(der, [], now)
    with pytest.raises(PrecheckQueueFull):
        await checker.check_files(docs["only-person"], precheck=True)
    # a submitted document does not wait for the pre-checks
    decision = await checker.verify(
        docs["person-then-organisation"], document_type="QĐ", direction="outgoing"
    )
    assert decision.accepted, decision.reason
    assert not running.done()
    assert not waiting.done()

    release.set()
    assert (await running).valid
    assert (await waiting).valid
    assert (await checker.validate_certificate(der, [], now)).valid  # the slots are free again


async def test_a_full_precheck_queue_answers_resource_exhausted(
    start_signature: Any, pki: LocalPki, blocked_prechecks: Any
) -> None:
    entered, release = blocked_prechecks
    app = await start_signature(LIENTHONG_SIGNATURE_PRECHECK_QUEUE="0")
    request = pb.ValidateCertificateRequest(
        certificate=pki.signers["person"].cert_file.read_bytes()
    )
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{app.grpc_port}", interceptors=AS_A_UNIT
    ) as channel:
        stub = SignatureServiceStub(channel)
        running = asyncio.ensure_future(stub.ValidateCertificate(request))
        assert await asyncio.to_thread(entered.acquire, True, 60)
        with pytest.raises(grpc.aio.AioRpcError) as refusal:
            await stub.ValidateCertificate(request)
        release.set()
        assert (await running).valid
    assert refusal.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "pre-checks are running or waiting" in (refusal.value.details() or "")
