"""VerifyAudit's checkpoints are read back from Kafka as document-service's own principal over
TLS, as the rest of the service talks to Kafka (the reader once went plaintext to the TLS
listener, and VerifyAudit failed wherever Kafka has no plaintext listener: in production)."""

from __future__ import annotations

import asyncio
import os

import pytest

from document_service.checkpoints import read_checkpoints
from document_service.settings import Settings
from lienthong.events.v1.events_pb2 import AuditCheckpoint
from lienthong_kit.kafka import EventProducer, Topics
from lienthong_local.platform import KafkaTlsListener
from lienthong_testing.settings import isolated_settings


async def test_checkpoints_are_read_back_over_kafka_tls(infra: None, prefix: str) -> None:
    listener = KafkaTlsListener.local()
    if listener is None:
        message = "the local Kafka has no TLS listener (infra-down, infra-up)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    await asyncio.to_thread(listener.prepare, prefix)  # topics and ACLs, as the admin
    settings = isolated_settings(Settings, prefix, listener.env("document-service"))
    topic = Topics(prefix).audit_checkpoints
    producer = EventProducer(settings, client_id="document-service")
    await producer.start()
    try:
        checkpoint = AuditCheckpoint(chain=f"{prefix}lienthong.documents/0", seq=3)
        await producer.publish_raw(topic, key=b"chain", value=checkpoint.SerializeToString())
    finally:
        await producer.stop()

    found = await asyncio.wait_for(read_checkpoints(settings, topic), timeout=120)

    assert [(c.chain, c.seq) for c in found] == [(checkpoint.chain, 3)]
