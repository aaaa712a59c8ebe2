"""Fixtures shared by every test tier: the real infrastructure and per-test isolation.

Tests that touch Kafka or the store use the real broker and FerretDB started by
``deploy/local/infra.sh`` (``make test`` starts them; a test session started by hand starts
them too). Every test gets its own topic prefix and database names, so tests never see each
other's data.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from lienthong_kit.settings import KitSettings
from lienthong_testing.cleanup import remove_namespace
from lienthong_testing.settings import isolated_settings

ROOT = Path(__file__).resolve().parent
INFRA = ROOT / "deploy" / "local" / "infra.sh"
KAFKA = "127.0.0.1:9092"
MONGO = "mongodb://127.0.0.1:27017"


@pytest.fixture(scope="session")
def infra() -> None:
    """Kafka and the store answer (reused when running, started otherwise)."""
    status = subprocess.run([str(INFRA), "up"], capture_output=True, text=True, check=False)
    if status.returncode != 0:
        pytest.fail(f"the local infrastructure did not start:\n{status.stdout}\n{status.stderr}")


@pytest.fixture
def prefix() -> Iterator[str]:
    """A fresh namespace for topics, consumer groups and databases, removed afterwards."""
    namespace = f"t{uuid.uuid4().hex[:10]}_"
    yield namespace
    remove_namespace(namespace, kafka=KAFKA, mongo=MONGO)


@pytest.fixture
def settings(infra: None, prefix: str) -> KitSettings:
    """The kit's settings in this test's namespace (see lienthong_testing.settings)."""
    return isolated_settings(KitSettings, prefix)


@pytest.fixture
async def raw_producer(settings: KitSettings) -> AsyncIterator[AIOKafkaProducer]:
    """A plain aiokafka producer, for writing records (even malformed ones) to a topic."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
def topic_reader(settings: KitSettings) -> Any:
    """Read every record of a topic from the beginning until ``count`` arrived (deadline)."""

    async def read(topic: str, count: int, timeout: float = 30.0) -> list[Any]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=settings.kafka_bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        records: list[Any] = []
        try:
            async with asyncio.timeout(timeout):
                while len(records) < count:
                    batch = await consumer.getmany(timeout_ms=200)
                    for partition_records in batch.values():
                        records.extend(partition_records)
        finally:
            await consumer.stop()
        return records

    return read


@pytest.fixture
async def start_service(infra: None, prefix: str) -> AsyncIterator[Any]:
    """Run one service's real gRPC server in-process on port 0 (component tests).

    ``await start_service(name, build, Settings, {"LIENTHONG_X": "1"})``: the service gets
    its own settings type, read from this test's isolated environment plus the overrides.
    """
    from lienthong_kit.server import ServiceApp

    started: list[ServiceApp[Any]] = []

    async def start(
        name: str,
        build: Any,
        settings_type: type[KitSettings] = KitSettings,
        env: dict[str, str] | None = None,
    ) -> ServiceApp[Any]:
        app = ServiceApp(name, isolated_settings(settings_type, prefix, env), build)
        await app.start()
        started.append(app)
        # as behind a readiness probe: no call before the service says it is SERVING
        await asyncio.wait_for(app.serving.wait(), timeout=120)
        return app

    yield start
    for app in reversed(started):
        await app.stop()
