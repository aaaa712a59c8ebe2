"""Dead letters on the real broker: a record parked on a .dlq topic with the kit's headers is
listed with its reason, shown, and re-driven to its source topic as it was."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from lienthong_kit.kafka.topics import Topics, dead_letter_headers
from lienthong_testing.cleanup import remove_namespace

LIENTHONG = Path(sys.executable).parent / "lienthong"
KAFKA = "127.0.0.1:9092"


@pytest.fixture
def topics(infra: None) -> Iterator[Topics]:
    prefix = f"clidlq{uuid.uuid4().hex[:8]}_"
    names = Topics(prefix)

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(t, 1, 1) for t in (names.documents, names.dlq(names.documents))]
            )
        finally:
            await admin.close()

    asyncio.run(create())
    yield names
    remove_namespace(prefix, kafka=KAFKA, mongo="mongodb://127.0.0.1:27017")


def cli(topics: Topics, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIENTHONG_CONFIG": "/nonexistent/lienthong.toml"}
    return subprocess.run(
        [str(LIENTHONG), "deadletters", "--bootstrap", KAFKA, "--topic-prefix", topics.prefix,
         *args, "--output", "json"],
        capture_output=True, text=True, env=env, check=False, timeout=120,
    )  # fmt: skip


def test_a_dead_letter_is_listed_shown_and_redriven(topics: Topics) -> None:
    dlq = topics.dlq(topics.documents)
    parked = dead_letter_headers(
        "PoisonEvent: no event_id", topic=topics.documents, partition=0, offset=41,
        group=f"{topics.prefix}routing-service", event_id="e-1",
    )  # fmt: skip
    headers = [("traceparent", b"00-abc-def-01"), *parked]

    async def park() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=KAFKA)
        await producer.start()
        try:
            await producer.send_and_wait(
                dlq, b"payload-\xc4\x91", key=b"doc-1", headers=headers, partition=0
            )
        finally:
            await producer.stop()

    asyncio.run(park())

    listed = cli(topics, "list")
    assert listed.returncode == 0, listed.stderr
    [letter] = json.loads(listed.stdout)
    assert letter["id"] == f"{dlq}:0:0"
    assert letter["source_topic"] == topics.documents
    assert letter["reason"] == "PoisonEvent: no event_id"
    shown = json.loads(cli(topics, "show", letter["id"]).stdout)
    assert shown["source"] == f"{topics.documents}:0:41"
    assert shown["key"] == "doc-1"

    redriven = cli(topics, "redrive", letter["id"])

    assert redriven.returncode == 0, redriven.stderr
    assert json.loads(redriven.stdout)["redriven_to"] == f"{topics.documents}:0:0"

    async def source_record() -> tuple[bytes | None, bytes | None, dict[str, bytes]]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=KAFKA, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            partition = TopicPartition(topics.documents, 0)
            consumer.assign([partition])
            await consumer.seek_to_beginning(partition)
            record = await asyncio.wait_for(consumer.getone(), 30)
            return record.key, record.value, dict(record.headers)
        finally:
            await consumer.stop()

    key, value, sent_headers = asyncio.run(source_record())
    assert (key, value) == (b"doc-1", b"payload-\xc4\x91")
    assert sent_headers["traceparent"] == b"00-abc-def-01"
    assert sent_headers["lienthong-redriven-from"] == letter["id"].encode()
    assert "lienthong-dlq-reason" not in sent_headers
    missing = cli(topics, "show", f"{dlq}:0:7")
    assert missing.returncode == 4, missing.stderr
