"""Kafka over TLS with the services' own principals: the declared ACLs hold on the local
broker's TLS listener (deploy/local/infra.sh; certificates and ACLs from lienthong_local)."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import TopicAuthorizationFailedError

from lienthong.common.v1.common_pb2 import DocumentSummary
from lienthong.events.v1.events_pb2 import DocumentSubmitted
from lienthong_kit.envelope import new_event
from lienthong_kit.kafka import EventProducer, Topics, ensure_topics, kafka_security, read_range
from lienthong_kit.kafka.security import kafka_security_problems
from lienthong_kit.kafka_access import declared
from lienthong_kit.settings import KitSettings, SettingsError
from lienthong_local.kafka_tls import ADMIN, KafkaTls, apply_acls
from lienthong_testing.settings import isolated_settings

ROOT = Path(__file__).resolve().parents[3]
# the same variables as infra.sh, which made the listener and its certificates
DATA = Path(os.environ.get("LIENTHONG_DATA_DIR", ROOT / "deploy" / "local" / ".data"))
TLS_BOOTSTRAP = f"127.0.0.1:{os.environ.get('LIENTHONG_KAFKA_TLS_PORT', '9094')}"
TLS = KafkaTls(DATA / "kafka" / "tls")


def _listening(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        return False
    return True


@pytest.fixture
def tls(infra: None) -> KafkaTls:
    if not (TLS.ca.is_file() and _listening(TLS_BOOTSTRAP)):
        message = (
            f"the local Kafka has no TLS listener on {TLS_BOOTSTRAP} (started before it existed:"
            " make infra-down infra-up)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return TLS


def as_principal(name: str, prefix: str) -> KitSettings:
    """Settings connecting over TLS with ``name``'s certificate (User:CN=<name>)."""
    return isolated_settings(
        KitSettings, prefix, {"LIENTHONG_KAFKA_BOOTSTRAP": TLS_BOOTSTRAP, **TLS.client_env(name)}
    )


def submitted(document_id: str) -> bytes:
    payload = DocumentSubmitted(document=DocumentSummary(document_id=document_id))
    return new_event(payload, producer="test").SerializeToString()


async def test_a_service_writes_its_own_topics_and_no_other(tls: KafkaTls, prefix: str) -> None:
    topics = Topics(prefix)
    admin = as_principal(ADMIN, prefix)
    await ensure_topics(admin, topics.all())
    await asyncio.to_thread(apply_acls, TLS_BOOTSTRAP, tls, declared(topics).values())

    producer = EventProducer(as_principal("signature-service", prefix), client_id="test")
    await producer.start()
    try:
        # signature-service publishes verdicts, never submissions (document-service's topic)
        await producer.publish_raw(topics.verifications, key=b"doc-1", value=submitted("doc-1"))
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.publish_raw(topics.documents, key=b"doc-2", value=submitted("doc-2"))
    finally:
        await producer.stop()

    # the verdict is there, read over TLS by the admin; nothing reached the documents topic
    consumer = AIOKafkaConsumer(bootstrap_servers=TLS_BOOTSTRAP, **kafka_security(admin))
    await consumer.start()
    try:
        ends = await consumer.end_offsets(
            [
                TopicPartition(topic, p)
                for topic in (topics.verifications, topics.documents)
                for p in range(admin.kafka_partitions)
            ]
        )
    finally:
        await consumer.stop()
    [(written, end)] = [(tp, end) for tp, end in ends.items() if end]
    assert written.topic == topics.verifications
    records = await read_range(admin, written.topic, written.partition, 0, end)
    assert [r.key for r in records] == [b"doc-1"]


def test_tls_settings_that_cannot_work_are_named(tmp_path: Path) -> None:
    cert = tmp_path / "client.pem"
    cert.write_text("not used")
    cases = {
        "LIENTHONG_KAFKA_SECURITY_PROTOCOL: 'SASL_SSL' is not PLAINTEXT or SSL": {
            "LIENTHONG_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"
        },
        "LIENTHONG_KAFKA_TLS_CERT and LIENTHONG_KAFKA_TLS_KEY must be set together": {
            "LIENTHONG_KAFKA_SECURITY_PROTOCOL": "SSL",
            "LIENTHONG_KAFKA_TLS_CERT": str(cert),
        },
        "LIENTHONG_KAFKA_TLS_* are set but LIENTHONG_KAFKA_SECURITY_PROTOCOL is PLAINTEXT": {
            "LIENTHONG_KAFKA_TLS_CA": str(cert)
        },
        f"LIENTHONG_KAFKA_TLS_CA: no such file: {tmp_path / 'absent.pem'}": {
            "LIENTHONG_KAFKA_SECURITY_PROTOCOL": "SSL",
            "LIENTHONG_KAFKA_TLS_CA": str(tmp_path / "absent.pem"),
        },
    }
    for problem, env in cases.items():
        settings = isolated_settings(KitSettings, "t_", env)
        assert problem in kafka_security_problems(settings)
        with pytest.raises(SettingsError, match="LIENTHONG_KAFKA"):
            kafka_security(settings)
    assert kafka_security(isolated_settings(KitSettings, "t_")) == {}
