"""Crash tests: document-service dies (as with kill -9) between storing a document and
publishing its event, or between publishing and marking it published; after a restart the
event reaches the downstream service exactly once."""

from __future__ import annotations

import asyncio
import signal
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from lienthong.document.v1 import document_service_pb2 as doc_pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.events.v1.events_pb2 import DocumentVerified
from lienthong_kit.envelope import decode_envelope, unpack
from lienthong_kit.kafka import Topics
from lienthong_local.platform import Platform, ServiceProcess
from lienthong_testing.cleanup import remove_namespace
from lienthong_testing.waiting import eventually_sync

pytestmark = pytest.mark.e2e

SENDER = "000.00.00.H23"


@pytest.fixture
def platform(infra: None, tmp_path: Path) -> Iterator[Platform]:
    prefix = f"crash{uuid.uuid4().hex[:8]}_"
    # document-service alone: no registry to check the sender against (the outbox is tested)
    running = Platform.empty(
        log_dir=tmp_path,
        prefix=prefix,
        extra_env={"LIENTHONG_REQUIRE_REGISTERED_UNITS": "false"},
    )
    try:
        yield running
    finally:
        running.stop_all()
        remove_namespace(prefix, kafka="127.0.0.1:9092", mongo="mongodb://127.0.0.1:27017")


def submit(service: ServiceProcess) -> str:
    with grpc.insecure_channel(service.endpoint) as channel:
        reply = DocumentServiceStub(channel).SubmitDocument(
            doc_pb.SubmitDocumentRequest(
                idempotency_key="crash-1",
                recipients={"unit_codes": ["000.01.00.H23"]},
                code={"number": "1", "notation": "TB-UBND"},
                subject="Thông báo lịch họp",
                promulgation_date="2026-11-20",
            ),
            metadata=(("x-lienthong-unit", SENDER),),
            timeout=10,
        )
    return reply.document.document_id


def records(topic: str) -> list[bytes]:
    return asyncio.run(_records(topic))


async def _records(topic: str) -> list[bytes]:
    """Every record of a topic so far (reads to the end offsets, no waiting for more)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers="127.0.0.1:9092", auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        partitions = consumer.assignment()
        ends = await consumer.end_offsets(list(partitions))
        values: list[bytes] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                values.extend(record.value for record in batch)
        return values
    finally:
        await consumer.stop()


def duplicates_skipped(service: ServiceProcess, topic: str) -> float:
    url = f"http://127.0.0.1:{service.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == "lienthong_events_consumed_total"
        and sample.labels == {"topic": topic, "outcome": "duplicate"}
    )


@pytest.mark.parametrize("failpoint", ["outbox.before_publish", "outbox.after_publish"])
def test_a_crash_around_the_publish_delivers_the_event_once(
    platform: Platform, failpoint: str
) -> None:
    topics = Topics(platform.env["LIENTHONG_TOPIC_PREFIX"])
    signature = platform.launch("signature-service")
    document = platform.launch("document-service", extra_env={"LIENTHONG_FAILPOINTS": failpoint})
    platform.wait_serving(60, names=("signature-service", "document-service"))

    document_id = submit(document)  # acknowledged: stored with its event in the outbox
    assert document.process.wait(timeout=30) == -signal.SIGKILL  # killed at the failpoint

    restarted = platform.launch("document-service", document.grpc_port, document.metrics_port)
    platform.wait_serving(60, names=("document-service",))

    published = eventually_sync(
        lambda: [decode_envelope(v) for v in records(topics.documents)],
        until=lambda events: len(events) >= (2 if failpoint == "outbox.after_publish" else 1),
    )
    assert {event.payload.type_url for event in published} == {
        "type.googleapis.com/lienthong.events.v1.DocumentSubmitted"
    }
    assert len({event.event_id for event in published}) == 1  # one event, maybe sent twice
    if failpoint == "outbox.after_publish":
        # the copy sent again after the restart reached signature-service and was skipped
        eventually_sync(
            lambda: duplicates_skipped(signature, topics.documents), until=lambda n: n >= 1
        )
    verdicts = eventually_sync(
        lambda: [
            unpack(decode_envelope(v), DocumentVerified) for v in records(topics.verifications)
        ],
        until=lambda found: len(found) >= 1,
    )
    assert [v.document.document_id for v in verdicts] == [document_id]
    assert restarted.process.poll() is None
