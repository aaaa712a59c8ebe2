"""Hostile records on every consumed topic: the consumers get past every one of them.

Undecodable, empty, oversized and id-less records are dead-lettered by every group that reads
the topic, with a reason; well-formed envelopes carrying hostile values (every event type on
every topic, empty, huge, unicode-hostile, deeply repeated, out-of-range timestamps) are
applied or dead-lettered with a reason, never jam a group; every service stays SERVING.
"""

from __future__ import annotations

import collections
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2

from lienthong.events.v1 import events_pb2
from lienthong.events.v1.envelope_pb2 import EventEnvelope
from lienthong_kit.envelope import new_event
from lienthong_kit.kafka import Topics
from lienthong_local.platform import Platform
from lienthong_testing.waiting import eventually

pytestmark = pytest.mark.e2e

KAFKA = "127.0.0.1:9092"
#: the consumer groups of each topic (services/*/consumers.py and __main__.py)
GROUPS = {
    "documents": {"signature-service", "document-service-audit", "reporting-service"},
    "verifications": {
        "document-service-verifications",
        "notification-service",
        "routing-service",
        "reporting-service",
    },
    "deliveries": {
        "document-service",
        "document-service-audit",
        "notification-service",
        "reporting-service",
    },
    "deliveries_urgent": {
        "document-service",
        "document-service-audit",
        "notification-service",
        "reporting-service",
    },
    "units": {"document-service-audit"},
    "operator_actions": {"document-service-audit"},
}
EVENT_TYPES = [
    GetMessageClass(descriptor)
    for descriptor in events_pb2.DESCRIPTOR.message_types_by_name.values()
]
HOSTILE = ["", "\x00", "\u202e\u200b", "𝕏" * 50, "../../x", '{"$gt": ""}', "9" * 40]
#: events produced, per topic (docs/benchmarks.md, "Faults and fuzzing")
PRODUCED: collections.Counter[str] = collections.Counter()


def filled(
    descriptor: Descriptor,
    value: Callable[[FieldDescriptor, int], Any],
    depth: int = 0,
    repeat: int = 1,
) -> Message:
    """A message with every field set by ``value`` (nested messages up to a depth)."""
    target = GetMessageClass(descriptor)()
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth > 2 or field.message_type.GetOptions().map_entry:
                continue
            if field.is_repeated:
                for _ in range(3):
                    getattr(target, field.name).add().CopyFrom(
                        filled(field.message_type, value, depth + 1, repeat)
                    )
            elif field.message_type.full_name == "google.protobuf.Timestamp":
                getattr(target, field.name).seconds = 2**62  # far outside datetime's range
            elif field.message_type.full_name != "google.protobuf.Any":
                getattr(target, field.name).CopyFrom(
                    filled(field.message_type, value, depth + 1, repeat)
                )
            continue
        item = value(field, depth)
        if item is None:
            continue
        if field.is_repeated:
            getattr(target, field.name).extend([item] * repeat)
        else:
            setattr(target, field.name, item)
    return target


def hostile_scalar(size: int) -> Callable[[FieldDescriptor, int], Any]:
    def value(field: FieldDescriptor, depth: int) -> Any:
        if field.type == FieldDescriptor.TYPE_STRING:
            return HOSTILE[(field.number + depth) % len(HOSTILE)] if size == 0 else "𝕏" * size
        if field.type == FieldDescriptor.TYPE_BYTES:
            return b"\xff" * max(size, 1)
        if field.type == FieldDescriptor.TYPE_BOOL:
            return True
        if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return float("nan")
        if field.type == FieldDescriptor.TYPE_ENUM:
            return 999
        if field.type in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
            return 2**32 - 1
        if field.type in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
            return 2**64 - 1
        if field.type in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64):
            return -(2**63)
        return -(2**31)

    return value


def hostile_records() -> list[tuple[str, bytes, bool]]:
    """(label, value, must be dead-lettered) for one topic."""
    records: list[tuple[str, bytes, bool]] = [
        ("garbage", b"\x08\x96\x01 garbage \xff\xfe", True),
        ("empty", b"", True),
        ("oversized", b"\xff" * 900_000, True),
        ("no event id", EventEnvelope(event_type="x").SerializeToString(), True),
    ]
    unknown = EventEnvelope(event_id=str(uuid.uuid4()), event_type="document.submitted")
    unknown.payload.type_url = "type.googleapis.com/evil.Unknown"
    unknown.payload.value = b"\xff" * 64
    records.append(("unknown payload type", unknown.SerializeToString(), False))
    for event_type in EVENT_TYPES:
        name = event_type.DESCRIPTOR.name
        variants = {
            "empty": event_type(),
            "hostile": filled(event_type.DESCRIPTOR, hostile_scalar(0), repeat=2_000),
            "huge": filled(event_type.DESCRIPTOR, hostile_scalar(2_000)),
        }
        for label, payload in variants.items():
            envelope = new_event(payload, producer="fuzzer")
            value = envelope.SerializeToString()
            assert len(value) < 1_000_000, f"{name} {label}: {len(value)} bytes"
            records.append((f"{name} {label}", value, False))
    return records


async def committed_everything(
    admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, group: str, topic: str
) -> bool:
    """``consumer`` is subscribed to ``topic`` (without a subscription it knows no partitions,
    and this check held for every group at once: the flaky deliveries.urgent case)."""
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    assert partitions, f"{topic}: no partitions known"
    ends = await consumer.end_offsets(partitions)
    offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
    return all(
        offsets.get(tp) is not None and offsets[tp].offset >= end for tp, end in ends.items()
    )


async def dead_letters(topic: str) -> list[Any]:
    consumer = AIOKafkaConsumer(
        Topics.dlq(topic),
        bootstrap_servers=KAFKA,
        auto_offset_reset="earliest",
        group_id=None,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    try:
        partitions = list(consumer.assignment())
        ends = await consumer.end_offsets(partitions)
        found: list[Any] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                found.extend(batch)
        return found
    finally:
        await consumer.stop()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("attribute", list(GROUPS))
async def test_hostile_records_are_dead_lettered_or_applied(
    fuzz_platform: Platform, attribute: str
) -> None:
    topics = Topics(fuzz_platform.env["LIENTHONG_TOPIC_PREFIX"])
    topic = getattr(topics, attribute)
    run = uuid.uuid4().hex[:8]
    records = hostile_records()
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, max_request_size=2 * 1024 * 1024)
    await producer.start()
    try:
        for index, (_, value, _) in enumerate(records):
            # keyed: the units topic is compacted (a record without a key is refused)
            await producer.send_and_wait(topic, value, key=f"fuzz-{run}-{index}".encode())
    finally:
        await producer.stop()
    PRODUCED[attribute] += len(records)

    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=KAFKA, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        for group in GROUPS[attribute]:
            full = topics.group(group)
            # every group got past every hostile record: nothing jams it
            await eventually(
                lambda full=full: committed_everything(admin, consumer, full, topic),
                until=bool,
                timeout=240,
                interval=1.0,
            )
    finally:
        await consumer.stop()
        await admin.close()

    must = [index for index, (_, _, needed) in enumerate(records) if needed]
    expected = GROUPS[attribute]
    # every group committed past every record, and a group publishes a record's dead letter
    # (acknowledged) before it commits past it: each one is on the dead-letter topic now
    letters = await run_letters(topic, run, topics.prefix)
    by_key: dict[int, set[str]] = collections.defaultdict(set)
    for (index, group), reasons in letters.items():
        assert all(reason.strip() for reason in reasons), (records[index][0], group)
        by_key[index].add(group)
    for index in must:
        label = records[index][0]
        assert by_key[index] >= expected, f"{label}: dead-lettered by {sorted(by_key[index])}"
    for name, service in fuzz_platform.processes.items():
        assert service.process.poll() is None, f"{name} exited: see {service.log_path}"
        assert service.health(timeout=10) == health_pb2.HealthCheckResponse.SERVING, name
    per_group = collections.Counter(group for _, group in letters)
    again = sum(len(reasons) - 1 for reasons in letters.values())
    print(
        f"\n{attribute}: {len(records)} hostile records x {len(expected)} groups;"
        f" dead-lettered (record, group) pairs: {len(letters)}"
        f" (at least {len(must) * len(expected)}: {len(must)} undecodable records x every group),"
        f" per group {dict(sorted(per_group.items()))}, published again {again}"
    )
    for (index, group), reasons in sorted(letters.items()):
        if index not in must:
            print(f"  {records[index][0]} <- {group}: {reasons[0][:160]}")


async def run_letters(topic: str, run: str, prefix: str) -> dict[tuple[int, str], list[str]]:
    """This run's dead letters of ``topic``: (record index, group) -> the reasons given."""
    found: dict[tuple[int, str], list[str]] = collections.defaultdict(list)
    for letter in await dead_letters(topic):
        if not (letter.key or b"").startswith(f"fuzz-{run}-".encode()):
            continue
        headers = dict(letter.headers)
        group = headers["lienthong-consumer-group"].decode().removeprefix(prefix)
        index = int(letter.key.decode().rsplit("-", 1)[1])
        found[index, group].append(headers["lienthong-dlq-reason"].decode())
    return found


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "attribute", ["deliveries", "deliveries_urgent", "units", "operator_actions"]
)
async def test_the_audit_group_dead_letters_garbage(
    fuzz_platform: Platform, attribute: str
) -> None:
    topics = Topics(fuzz_platform.env["LIENTHONG_TOPIC_PREFIX"])
    topic = getattr(topics, attribute)
    key = f"audit-{uuid.uuid4().hex[:8]}".encode()
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"\x08\x96\x01 garbage \xff\xfe", key=key)
    finally:
        await producer.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=KAFKA, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        group = topics.group("document-service-audit")
        await eventually(
            lambda: committed_everything(admin, consumer, group, topic),
            until=bool,
            timeout=240,
            interval=1.0,
        )
    finally:
        await consumer.stop()
        await admin.close()

    async def audit_letters() -> list[Any]:
        return [
            r
            for r in await dead_letters(topic)
            if r.key == key
            and dict(r.headers)["lienthong-consumer-group"].decode().endswith("-audit")
        ]

    # published (acknowledged) before the group committed past the record
    assert await audit_letters(), f"{attribute}: the audit group dead-lettered nothing"
