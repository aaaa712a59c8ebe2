"""The test PKI (keys, a CRL server and an OCSP responder) once per session, the fixture
documents signed with it, and signature-service's real server in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc
import pytest

from lienthong.signature.v1.signature_service_pb2_grpc import SignatureServiceStub
from lienthong_kit.server import ServiceApp
from lienthong_testing.callers import as_unit, default_identity
from lienthong_testing.pki import LocalPki, documents, running_pki
from signature_service.__main__ import build
from signature_service.pki import load_certificates
from signature_service.policy import DEFAULT_RULES, Policy, parse_rules
from signature_service.revocation import RevocationConfig
from signature_service.settings import Settings
from signature_service.verifier import Verifier

# calls name a unit unless they name another caller
AS_A_UNIT = default_identity(as_unit("000.00.00.H23"))


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPki]:
    with running_pki(tmp_path_factory.mktemp("pki")) as running:
        yield running


@pytest.fixture(scope="session")
def docs(pki: LocalPki) -> dict[str, list[tuple[str, bytes]]]:
    return documents(pki)


class ConfiguredTrust:
    """The configured half of the trust store (files only), for tests without the store."""

    version = 1

    def __init__(self, pki: LocalPki) -> None:
        self.anchors = load_certificates(pki.anchors_file)
        self.intermediates = load_certificates(pki.intermediates_file)


@pytest.fixture(scope="session")
def trust(pki: LocalPki) -> ConfiguredTrust:
    return ConfiguredTrust(pki)


def pki_env(pki: LocalPki) -> dict[str, str]:
    """signature-service's settings for the test PKI (one thread each for documents and
    pre-checks)."""
    return {
        "LIENTHONG_SIGNATURE_TRUST_ANCHORS": str(pki.anchors_file),
        "LIENTHONG_SIGNATURE_INTERMEDIATES": str(pki.intermediates_file),
        "LIENTHONG_SIGNATURE_WORKERS": "0",
        "LIENTHONG_SIGNATURE_PRECHECK_WORKERS": "0",
        "LIENTHONG_SIGNATURE_REVOCATION_TIMEOUT_SECONDS": "2",
    }


@pytest.fixture
def start_signature(start_service: Any, pki: LocalPki) -> Any:
    """Start signature-service with test-PKI settings (extra LIENTHONG_* as keywords)."""

    async def start(**env: str) -> ServiceApp[Settings]:
        app: ServiceApp[Settings] = await start_service(
            "signature-service", build, Settings, {**pki_env(pki), **env}
        )
        return app

    return start


@pytest.fixture
async def signature_stub(start_signature: Any) -> AsyncIterator[SignatureServiceStub]:
    app: ServiceApp[Settings] = await start_signature()
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{app.grpc_port}", interceptors=AS_A_UNIT
    ) as channel:
        yield SignatureServiceStub(channel)


@pytest.fixture
async def make_verifier(trust: Any) -> AsyncIterator[Callable[..., Verifier]]:
    made: list[Verifier] = []

    def make(
        *,
        mode: str = "require",
        accept_unsigned: bool = False,
        workers: int = 0,
        timeout: float = 60.0,
        memory_bytes: int = 0,
        precheck_queue: int = 4,
        inline_bytes: int | None = None,
        **revocation: Any,
    ) -> Verifier:
        rules, _ = parse_rules(DEFAULT_RULES)
        checker = Verifier(
            trust,
            RevocationConfig(mode=mode, timeout=2.0, **revocation),
            Policy(rules, accept_unsigned=accept_unsigned),
            workers=workers,
            timeout=timeout,
            memory_bytes=memory_bytes,
            precheck_queue=precheck_queue,
            **({} if inline_bytes is None else {"inline_bytes": inline_bytes}),
        )
        made.append(checker)
        return checker

    yield make
    for checker in made:
        await checker.aclose()
