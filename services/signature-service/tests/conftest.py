"""The test PKI (keys, CRL server, `openssl ocsp` responder) once per session, the fixture
documents signed with it, and signature-service's real server in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest

from lienthong.signature.v1.signature_service_pb2_grpc import SignatureServiceStub
from lienthong_kit.server import ServiceApp
from lienthong_kit.settings import KitSettings, load_settings
from lienthong_testing.pki import LocalPki, documents, running_pki
from signature_service.__main__ import build
from signature_service.pki import load_certificates
from signature_service.settings import Settings


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


def service_settings(base: KitSettings, pki: LocalPki, **env: str) -> Settings:
    values = {
        "LIENTHONG_GRPC_PORT": "0",
        "LIENTHONG_METRICS_PORT": "0",
        "LIENTHONG_TOPIC_PREFIX": base.topic_prefix,
        "LIENTHONG_MONGO_DATABASE_PREFIX": base.mongo_database_prefix,
        "LIENTHONG_DEV_AUTH": "true",
        "LIENTHONG_SHUTDOWN_GRACE_SECONDS": "5",
        "LIENTHONG_CONSUMER_BACKOFF_SECONDS": "0.01",
        "LIENTHONG_CONSUMER_MAX_ATTEMPTS": "3",
        "LIENTHONG_SIGNATURE_TRUST_ANCHORS": str(pki.anchors_file),
        "LIENTHONG_SIGNATURE_INTERMEDIATES": str(pki.intermediates_file),
        "LIENTHONG_SIGNATURE_WORKERS": "0",
        "LIENTHONG_SIGNATURE_REVOCATION_TIMEOUT_SECONDS": "2",
        "LIENTHONG_SIGNATURE_OPERATORS": "province-it",
        **env,
    }
    return load_settings(Settings, values)


@pytest.fixture
async def start_signature(settings: KitSettings, pki: LocalPki) -> AsyncIterator[Any]:
    """Start signature-service with test-PKI settings (extra LIENTHONG_* as keywords)."""
    started: list[ServiceApp] = []

    async def start(**env: str) -> ServiceApp:
        app = ServiceApp("signature-service", service_settings(settings, pki, **env), build)
        await app.start()
        started.append(app)
        return app

    yield start
    for app in reversed(started):
        await app.stop()


@pytest.fixture
async def signature_stub(start_signature: Any) -> AsyncIterator[SignatureServiceStub]:
    app: ServiceApp = await start_signature()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        yield SignatureServiceStub(channel)
