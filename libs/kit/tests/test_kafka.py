"""The consumer loop and the outbox relay against the real broker and store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError
from aiokafka.protocol.metadata import MetadataRequest
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient, IndexModel, monitoring
from pymongo.errors import DuplicateKeyError
from structlog.testing import capture_logs

from lienthong.common.v1.common_pb2 import DocumentSummary
from lienthong.events.v1.events_pb2 import DocumentSubmitted
from lienthong_kit.envelope import EventEnvelope, decode_envelope, new_event, unpack
from lienthong_kit.errors import PoisonEvent, Unavailable
from lienthong_kit.kafka import (
    ConsumerLoop,
    ConsumerSpec,
    EventProducer,
    FetchPacing,
    GroupLagProbe,
    Staging,
    Topics,
    TopicTail,
    ensure_topics,
    read_range,
)
from lienthong_kit.mongo import GroupInserter, connect, ensure_indexes
from lienthong_kit.outbox import OutboxRelay
from lienthong_kit.settings import KitSettings
from lienthong_kit.tracing import configure_tracing, current_trace_id, tracer
from lienthong_testing.waiting import eventually, wait_until


def submitted(document_id: str) -> EventEnvelope:
    payload = DocumentSubmitted(document=DocumentSummary(document_id=document_id))
    return new_event(payload, producer="test")


@pytest.fixture
async def kit(settings: KitSettings) -> AsyncIterator[tuple[EventProducer, Any, Topics]]:
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings, topics.all())
    producer = EventProducer(settings, client_id="test")
    await producer.start()
    client = connect(settings.mongo_url, app_name="test")
    yield producer, client[f"{settings.mongo_database_prefix}kit"], topics
    await producer.stop()
    await client.close()


Recorder = Callable[[EventEnvelope, Any], Any]


@pytest.fixture
async def run_loop(
    settings: KitSettings, kit: tuple[EventProducer, Any, Topics]
) -> AsyncIterator[Callable[[Recorder], Any]]:
    producer, db, topics = kit
    loops: list[ConsumerLoop] = []

    async def start(handler: Recorder, group: str = "kit-test", **options: Any) -> ConsumerLoop:
        loop = ConsumerLoop(
            ConsumerSpec(group, [topics.documents], handler, **options),
            settings=settings,
            producer=producer,
            db=db,
            group_prefix=settings.topic_prefix,
        )
        await loop.start()
        loops.append(loop)
        return loop

    yield start
    for loop in loops:
        await loop.stop()


async def test_events_are_applied_in_order_and_redelivered_ids_skipped(
    kit: tuple[EventProducer, Any, Topics], run_loop: Any
) -> None:
    producer, _, topics = kit
    applied: list[str] = []

    async def handler(envelope: EventEnvelope, _: Any) -> None:
        applied.append(unpack(envelope, DocumentSubmitted).document.document_id)

    first = submitted("d1")
    for envelope in (first, submitted("d2"), first):  # the third is a redelivery
        await producer.publish(topics.documents, key="same-key", envelope=envelope)
    await run_loop(handler)
    await wait_until(lambda: applied == ["d1", "d2"], timeout=30)
    await producer.publish(topics.documents, key="same-key", envelope=submitted("d3"))
    await wait_until(lambda: applied == ["d1", "d2", "d3"], timeout=30)


async def test_malformed_record_is_dead_lettered_and_the_loop_goes_on(
    kit: tuple[EventProducer, Any, Topics],
    run_loop: Any,
    raw_producer: AIOKafkaProducer,
    topic_reader: Any,
) -> None:
    producer, _, topics = kit
    applied: list[str] = []

    async def handler(envelope: EventEnvelope, _: Any) -> None:
        applied.append(unpack(envelope, DocumentSubmitted).document.document_id)

    await raw_producer.send_and_wait(topics.documents, b"this is not protobuf", key=b"k")
    await producer.publish(topics.documents, key="k", envelope=submitted("after"))
    await run_loop(handler)
    (dead,) = await topic_reader(Topics.dlq(topics.documents), 1)
    headers = {key: value.decode() for key, value in dead.headers}
    assert dead.value == b"this is not protobuf"
    assert headers["lienthong-dlq-reason"].startswith("not a protobuf EventEnvelope")
    assert headers["lienthong-source-topic"] == topics.documents
    assert headers["lienthong-consumer-group"].endswith("kit-test")
    await wait_until(lambda: applied == ["after"], timeout=30)


async def test_transient_failures_are_retried_then_applied_once(
    kit: tuple[EventProducer, Any, Topics], run_loop: Any
) -> None:
    producer, _, topics = kit
    attempts: list[str] = []

    async def flaky(envelope: EventEnvelope, _: Any) -> None:
        attempts.append(envelope.event_id)
        if len(attempts) < 3:
            raise ConnectionResetError("the webhook peer hung up")

    await producer.publish(topics.documents, key="k", envelope=submitted("d1"))
    loop = await run_loop(flaky)
    await wait_until(lambda: len(attempts) == 3, timeout=30)
    await loop.stop()
    assert len(set(attempts)) == 1


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        pytest.param(RuntimeError("always broken"), "failed after 3 attempts", id="exhausted"),
        pytest.param(
            PoisonEvent("recipient list is empty"), "recipient list is empty", id="poison"
        ),
    ],
)
async def test_failing_events_go_to_the_dead_letter_topic_with_the_reason(
    kit: tuple[EventProducer, Any, Topics],
    run_loop: Any,
    topic_reader: Any,
    failure: Exception,
    reason: str,
) -> None:
    producer, _, topics = kit
    attempts: list[int] = []

    async def failing(envelope: EventEnvelope, _: Any) -> None:
        attempts.append(1)
        raise failure

    event = submitted("d1")
    await producer.publish(topics.documents, key="k", envelope=event)
    await run_loop(failing)
    (dead,) = await topic_reader(Topics.dlq(topics.documents), 1)
    headers = {key: value.decode() for key, value in dead.headers}
    assert reason in headers["lienthong-dlq-reason"]
    assert headers["lienthong-event-id"] == event.event_id
    assert decode_envelope(dead.value).event_id == event.event_id
    assert len(attempts) == (1 if isinstance(failure, PoisonEvent) else 3)


async def test_offsets_are_committed_only_after_the_effect(
    kit: tuple[EventProducer, Any, Topics], run_loop: Any
) -> None:
    """A loop stopped before its handler finished re-reads the event in the next member."""
    producer, _, topics = kit
    release = asyncio.Event()
    seen: list[str] = []

    async def blocked(envelope: EventEnvelope, _: Any) -> None:
        seen.append(envelope.event_id)
        await release.wait()

    event = submitted("d1")
    await producer.publish(topics.documents, key="k", envelope=event)
    first = await run_loop(blocked)
    await wait_until(lambda: seen == [event.event_id], timeout=30)
    first._task.cancel()  # the process dies mid-handler: nothing is committed
    await first.stop()
    applied: list[str] = []

    async def recorder(envelope: EventEnvelope, _: Any) -> None:
        applied.append(envelope.event_id)

    await run_loop(recorder)
    await wait_until(lambda: applied == [event.event_id], timeout=60)


async def test_handed_over_events_are_published_once_and_a_dead_writers_by_another_relay(
    kit: tuple[EventProducer, Any, Topics], topic_reader: Any
) -> None:
    """Relay ``dead`` stages and stores 5 events, then its process "dies" before publishing
    them; relay ``live`` publishes its own 20 handed-over events, notices that ``dead``'s
    checkpoint went stale and publishes the 5 orphans. Every event goes out exactly once."""
    producer, db, topics = kit
    collection = db["documents"]
    dead = OutboxRelay(collection, producer)
    live = OutboxRelay(collection, producer, heartbeat_seconds=0.2, owner_ttl_seconds=1.0)
    await live.create_indexes()

    async def store(relay: OutboxRelay, name: str) -> str:
        event = submitted(name)
        async with relay.staged(topics.documents, name, event) as staged:
            await collection.insert_one({"_id": name, **staged.fields})
            staged.commit()
        return event.event_id

    await dead._checkpoint()  # it was alive once: its checkpoint is below its records
    orphans = [await store(dead, f"o{number}") for number in range(5)]
    running = asyncio.create_task(live.run())
    try:
        handed = [await store(live, f"h{number}") for number in range(20)]
        records = await topic_reader(topics.documents, 25)
        # the dead owner's checkpoint is removed once its orphans went out
        await eventually(
            lambda: db["documents.relays"].find_one({"_id": dead.owner}), until=lambda d: d is None
        )
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await live.stop()
    published = [decode_envelope(record.value).event_id for record in records]
    assert sorted(published) == sorted([*handed, *orphans])
    with pytest.raises(TimeoutError):  # and nothing else was published
        await topic_reader(topics.documents, 26, timeout=3)


async def test_group_inserts_share_commands_and_report_each_duplicate_to_its_caller(
    settings: KitSettings,
) -> None:
    commands: list[str] = []

    class Inserts(monitoring.CommandListener):
        def started(self, event: monitoring.CommandStartedEvent) -> None:
            if event.command_name == "insert":
                commands.append(event.command_name)

        def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
            pass

        def failed(self, event: monitoring.CommandFailedEvent) -> None:
            pass

    client = AsyncMongoClient(settings.mongo_url, event_listeners=[Inserts()], maxPoolSize=10)
    collection = client[f"{settings.mongo_database_prefix}kit"]["grouped"]
    await ensure_indexes(collection, [IndexModel("number", unique=True)])
    await collection.insert_one({"_id": "taken", "number": 7})
    commands.clear()
    inserter = GroupInserter(collection, max_batch=16)
    # 100 concurrent writers; numbers 7 (taken before) and 50 (wanted twice) collide
    numbers = [*range(100)]
    numbers[99] = 50
    outcomes = await asyncio.gather(
        *(inserter.insert({"_id": f"d{i}", "number": n}) for i, n in enumerate(numbers)),
        return_exceptions=True,
    )
    failed = {i for i, outcome in enumerate(outcomes) if isinstance(outcome, DuplicateKeyError)}
    assert all(o is None or isinstance(o, DuplicateKeyError) for o in outcomes), outcomes
    assert 7 in failed
    assert failed - {7} in ({50}, {99})  # one of the two writers of 50 wins
    assert await collection.count_documents({"_id": {"$ne": "taken"}}) == 98
    assert len(commands) < 20, f"{len(commands)} insert commands for 100 documents"
    await client.close()


async def test_a_tail_from_the_beginning_skips_garbage_and_goes_on(
    settings: KitSettings, kit: tuple[EventProducer, Any, Topics], raw_producer: AIOKafkaProducer
) -> None:
    producer, _, topics = kit
    await producer.publish(topics.units, key="u1", envelope=submitted("first"))
    await raw_producer.send_and_wait(topics.units, b"not an envelope", key=b"u2")
    await producer.publish(topics.units, key="u1", envelope=submitted("after"))
    seen: list[str] = []

    async def collect(envelope: EventEnvelope) -> None:
        seen.append(unpack(envelope, DocumentSubmitted).document.document_id)

    tail = asyncio.create_task(
        TopicTail(settings, [topics.units], collect, from_beginning=True).run()
    )
    try:
        await wait_until(lambda: seen == ["first", "after"], timeout=30)
    finally:
        tail.cancel()
        await asyncio.gather(tail, return_exceptions=True)


async def test_staging_refuses_with_unavailable_while_too_many_events_wait_for_kafka(
    settings: KitSettings, kit: tuple[EventProducer, Any, Topics]
) -> None:
    """Kafka unreachable (this producer was never started): the relay keeps what was handed
    over, and past ``max_in_flight`` refuses new writes before anything is stored."""
    _, db, topics = kit
    collection = db["documents"]
    unreachable = EventProducer(settings, client_id="never-started")
    relay = OutboxRelay(collection, unreachable, max_in_flight=3)
    running = asyncio.create_task(relay.run())
    try:
        for number in range(3):
            event = submitted(f"w{number}")
            async with relay.staged(topics.documents, f"w{number}", event) as staged:
                await collection.insert_one({"_id": f"w{number}", **staged.fields})
                staged.commit()
        with pytest.raises(Unavailable, match="3 events are waiting"):
            async with relay.staged(topics.documents, "w3", submitted("w3")):
                raise AssertionError("not reached: refused before the insert")
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    assert await collection.count_documents({}) == 3


async def test_concurrent_partitions_apply_side_by_side_each_in_order(
    kit: tuple[EventProducer, Any, Topics], run_loop: Any, raw_producer: AIOKafkaProducer
) -> None:
    _, _, topics = kit
    partitions = range(3)
    for number in range(5):
        for partition in partitions:
            envelope = submitted(f"p{partition}-{number}")
            await raw_producer.send_and_wait(
                topics.documents, envelope.SerializeToString(), partition=partition
            )
    applied: dict[int, list[str]] = {partition: [] for partition in partitions}
    in_flight = 0
    most_in_flight = 0
    overlapped = asyncio.Event()

    async def handler(envelope: EventEnvelope, record: Any) -> None:
        nonlocal in_flight, most_in_flight
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        if in_flight > 1:
            overlapped.set()
        with contextlib.suppress(TimeoutError):  # a sequential loop never overlaps: go on
            await asyncio.wait_for(overlapped.wait(), 2)
        applied[record.partition].append(unpack(envelope, DocumentSubmitted).document.document_id)
        in_flight -= 1

    await run_loop(handler, group="kit-concurrent", concurrent_partitions=True)
    await wait_until(lambda: sum(map(len, applied.values())) == 15, timeout=90)
    assert most_in_flight > 1  # partitions were applied side by side
    for partition in partitions:
        assert applied[partition] == [f"p{partition}-{n}" for n in range(5)]


async def test_concurrent_keys_apply_other_keys_past_a_slow_one_and_commit_only_the_prefix(
    kit: tuple[EventProducer, Any, Topics], run_loop: Any, raw_producer: AIOKafkaProducer
) -> None:
    """With concurrent_keys, a key waiting on its first record holds back only its own later
    records; the member dies there: the next one applies exactly the records not applied."""
    _, db, topics = kit
    order = [("a", "a0"), ("b", "b0"), ("a", "a1"), ("b", "b1"), ("c", "c0")]
    for key, name in order:
        await raw_producer.send_and_wait(
            topics.documents, submitted(name).SerializeToString(), key=key.encode(), partition=0
        )
    seen: list[str] = []

    async def slow_a0(envelope: EventEnvelope, _: Any) -> None:
        name = unpack(envelope, DocumentSubmitted).document.document_id
        seen.append(name)
        if name == "a0":
            await asyncio.Event().wait()  # never returns: the member dies here

    first = await run_loop(slow_a0, group="kit-keys", concurrent_keys=4)
    await wait_until(lambda: {"a0", "b0", "b1", "c0"} <= set(seen), timeout=60)
    assert "a1" not in seen  # a's records stay in order behind a0
    assert seen.index("b0") < seen.index("b1")
    markers = {"_id": {"$regex": "kit-keys:"}}
    await eventually(lambda: db["applied_events"].count_documents(markers), until=lambda n: n == 3)
    first._task.cancel()  # nothing committed: a0 was never applied
    await first.stop()
    applied: list[str] = []

    async def recorder(envelope: EventEnvelope, _: Any) -> None:
        applied.append(unpack(envelope, DocumentSubmitted).document.document_id)

    await run_loop(recorder, group="kit-keys", concurrent_keys=4)
    # b0, b1 and c0 were applied (marked) by the first member: only a's records are left
    await wait_until(lambda: applied == ["a0", "a1"], timeout=60)


async def on_one_key(
    producer: EventProducer, topics: Topics, names: tuple[str, ...]
) -> dict[str, EventEnvelope]:
    """Publish a submitted event per name, in order, on one key (so handled in that order)."""
    events = {name: submitted(name) for name in names}
    for envelope in events.values():
        await producer.publish(topics.documents, key="one", envelope=envelope)
    return events


def recording() -> tuple[list[str], Recorder]:
    """A handler that records the document id of each event it is given, and its record."""
    applied: list[str] = []

    async def recorder(envelope: EventEnvelope, _: Any) -> None:
        applied.append(unpack(envelope, DocumentSubmitted).document.document_id)

    return applied, recorder


async def test_events_a_spec_does_not_accept_skip_the_handler_and_the_applied_markers(
    kit: tuple[EventProducer, Any, Topics], run_loop: Any
) -> None:
    producer, db, topics = kit
    events = await on_one_key(producer, topics, ("keep-1", "skip-1", "keep-2"))
    applied, recorder = recording()

    def keep(envelope: EventEnvelope) -> bool:
        return unpack(envelope, DocumentSubmitted).document.document_id.startswith("keep")

    await run_loop(recorder, group="kit-accepts", accepts=keep)
    await wait_until(lambda: applied == ["keep-1", "keep-2"], timeout=60)
    markers = db["applied_events"]
    last = {"_id": {"$regex": f"kit-accepts:{events['keep-2'].event_id}$"}}
    await eventually(lambda: markers.count_documents(last), until=lambda n: n == 1)
    skipped = {"_id": {"$regex": f"kit-accepts:{events['skip-1'].event_id}$"}}
    assert await markers.count_documents(skipped) == 0


async def test_events_a_handler_knows_it_applied_are_counted_duplicates_not_handled(
    kit: tuple[EventProducer, Any, Topics], run_loop: Any
) -> None:
    producer, _, topics = kit
    events = await on_one_key(producer, topics, ("new-1", "known-1", "new-2"))
    applied, recorder = recording()

    def duplicates() -> float:
        labels = {"topic": topics.documents, "outcome": "duplicate"}
        return REGISTRY.get_sample_value("lienthong_events_consumed_total", labels) or 0.0

    before = duplicates()
    known = events["known-1"].event_id
    await run_loop(
        recorder,
        group="kit-known",
        dedupe=False,
        known_applied=lambda envelope: envelope.event_id == known,
    )
    await wait_until(lambda: applied == ["new-1", "new-2"], timeout=60)
    assert duplicates() == before + 1


async def test_read_range_reads_exactly_the_offsets_asked_for(
    settings: KitSettings,
    kit: tuple[EventProducer, Any, Topics],
    raw_producer: AIOKafkaProducer,
) -> None:
    _, _, topics = kit
    for number in range(6):
        await raw_producer.send_and_wait(topics.documents, f"r{number}".encode(), partition=1)
    bootstrap = settings.kafka_bootstrap
    records = await read_range(bootstrap, topics.documents, 1, 2, 5)
    assert [(r.offset, r.value) for r in records] == [(2, b"r2"), (3, b"r3"), (4, b"r4")]
    assert await read_range(bootstrap, topics.documents, 1, 3, 3) == []
    with pytest.raises(KafkaTimeoutError):  # offsets that do not exist yet
        await read_range(bootstrap, topics.documents, 1, 5, 9, timeout=2)


async def test_read_range_ends_at_an_offset_that_holds_no_record(
    settings: KitSettings, kit: tuple[EventProducer, Any, Topics]
) -> None:
    """A transaction's commit marker takes an offset but is no record: a range ending on it
    is read whole, not waited on until the timeout."""
    _, _, topics = kit
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, transactional_id=f"{topics.documents}-tx"
    )
    await producer.start()
    try:
        async with producer.transaction():
            for number in range(3):
                await producer.send(topics.documents, f"t{number}".encode(), partition=2)
    finally:
        await producer.stop()
    # offsets 0, 1, 2 are the records; 3 is the marker
    records = await read_range(settings.kafka_bootstrap, topics.documents, 2, 0, 4, timeout=10)
    assert [(r.offset, r.value) for r in records] == [(0, b"t0"), (1, b"t1"), (2, b"t2")]


async def test_a_consumer_with_a_fetch_wait_reads_larger_polls(
    kit: tuple[EventProducer, Any, Topics], run_loop: Any
) -> None:
    """Ten events 20 ms apart: a consumer that answers at once would run its hook and commit
    about ten times; one whose broker holds the fetch up to a second does it once or twice,
    and still applies every event in order."""
    producer, _, topics = kit
    applied: list[str] = []
    hooks: list[int] = []

    async def handler(envelope: EventEnvelope, _: Any) -> None:
        applied.append(unpack(envelope, DocumentSubmitted).document.document_id)

    async def before_commit() -> None:
        hooks.append(len(applied))

    await run_loop(
        handler,
        group="kit-fetch-wait",
        dedupe=False,
        before_commit=before_commit,
        fetch_wait_ms=1000,
    )
    await producer.publish(topics.documents, key="k", envelope=submitted("first"))
    await wait_until(lambda: applied == ["first"], timeout=30)  # the group has formed
    hooks.clear()
    for number in range(10):
        await producer.publish(topics.documents, key="k", envelope=submitted(f"d{number}"))
        await asyncio.sleep(0.02)
    await wait_until(lambda: len(applied) == 11, timeout=30)
    assert applied == ["first", *(f"d{number}" for number in range(10))]
    assert len(hooks) <= 3, f"{len(hooks)} polls for ten events: {hooks}"


async def test_fetch_pacing_holds_an_idle_consumers_fetches_longer_and_a_record_shortens_them(
    settings: KitSettings, kit: tuple[EventProducer, Any, Topics]
) -> None:
    """The wait is aiokafka's private fetcher attribute: this fails if an upgrade moves it."""
    _, _, topics = kit
    consumer = AIOKafkaConsumer(
        topics.documents, bootstrap_servers=settings.kafka_bootstrap, fetch_max_wait_ms=100
    )
    await consumer.start()
    try:
        pacing = FetchPacing(consumer, busy_ms=100, idle_ms=1000, idle_after=0)
        assert pacing.wait_ms == 100
        pacing.polled(records=False)
        assert pacing.wait_ms == 1000
        pacing.polled(records=True)
        assert pacing.wait_ms == 100
        waiting = FetchPacing(consumer, busy_ms=100, idle_ms=1000, idle_after=3600)
        waiting.polled(records=False)  # not idle long enough yet
        assert waiting.wait_ms == 100
    finally:
        await consumer.stop()


async def test_a_loop_stopped_while_idle_has_committed_what_it_applied(
    kit: tuple[EventProducer, Any, Topics], run_loop: Any
) -> None:
    """stop() cancels a loop waiting for records: nothing was in hand, everything applied is
    committed, and the group's next member starts after it."""
    producer, _, topics = kit
    applied: list[str] = []

    async def handler(envelope: EventEnvelope, _: Any) -> None:
        applied.append(unpack(envelope, DocumentSubmitted).document.document_id)

    # no applied-event markers: a lost commit would apply d1 a second time
    first = await run_loop(handler, group="kit-idle-stop", dedupe=False)
    await producer.publish(topics.documents, key="k", envelope=submitted("d1"))
    await wait_until(lambda: applied == ["d1"], timeout=30)
    await first.stop()
    assert not first.running
    await producer.publish(topics.documents, key="k", envelope=submitted("d2"))
    await run_loop(handler, group="kit-idle-stop", dedupe=False)
    await wait_until(lambda: applied == ["d1", "d2"], timeout=30)


async def test_the_producers_ping_asks_the_broker_for_no_topic(
    settings: KitSettings, kit: tuple[EventProducer, Any, Topics]
) -> None:
    """The health watch pings every few seconds: a producer that sent nothing yet must not
    have every topic of the cluster described to it each time."""
    producer = EventProducer(settings, client_id="ping-test")
    await producer.start()
    client = producer._started().client
    sent: list[Any] = []
    send = client.send

    async def recording(node: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(request)
        return await send(node, request, *args, **kwargs)

    client.send = recording  # type: ignore[method-assign]
    try:
        await producer.ping()
        await producer.ping()
    finally:
        client.send = send  # type: ignore[method-assign]
        await producer.stop()
    asked = [request for request in sent if isinstance(request, MetadataRequest)]
    assert asked, "the ping sent no metadata request"
    # an empty list is "no topic"; None would be every topic of the cluster
    assert all(request._topics == [] for request in asked), [r._topics for r in asked]


async def test_a_tail_from_the_end_gets_every_record_produced_once_it_is_positioned(
    settings: KitSettings, kit: tuple[EventProducer, Any, Topics]
) -> None:
    """document-service reports ready once its watch tail is positioned: a delivery produced
    right after that must reach the watchers (and one produced before it must not be read)."""
    producer, _, topics = kit
    await producer.publish(topics.units, key="u", envelope=submitted("before"))
    seen: list[str] = []

    async def collect(envelope: EventEnvelope) -> None:
        seen.append(unpack(envelope, DocumentSubmitted).document.document_id)

    tail = TopicTail(settings, [topics.units], collect)
    running = asyncio.create_task(tail.run())
    try:
        await asyncio.wait_for(tail.positioned.wait(), timeout=30)
        await producer.publish(topics.units, key="u", envelope=submitted("after"))
        await wait_until(lambda: seen == ["after"], timeout=30)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_a_tail_with_a_key_filter_hands_over_only_the_wanted_keys(
    settings: KitSettings, kit: tuple[EventProducer, Any, Topics]
) -> None:
    """document-service's watch tail decodes only the deliveries of watched recipients."""
    producer, _, topics = kit
    seen: list[str] = []
    keys: list[bytes | None] = []

    async def collect(envelope: EventEnvelope) -> None:
        seen.append(unpack(envelope, DocumentSubmitted).document.document_id)

    def wanted(key: bytes | None) -> bool:
        keys.append(key)
        return key == b"watched"

    tail = TopicTail(settings, [topics.units], collect, wanted=wanted)
    running = asyncio.create_task(tail.run())
    try:
        await asyncio.wait_for(tail.positioned.wait(), timeout=30)
        for number in range(3):
            await producer.publish(topics.units, key="other", envelope=submitted(f"o{number}"))
            await producer.publish(topics.units, key="watched", envelope=submitted(f"w{number}"))
        await wait_until(lambda: len(keys) == 6, timeout=30)
        assert seen == ["w0", "w1", "w2"]
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_a_relay_says_at_start_that_an_older_version_left_flagged_records(
    kit: tuple[EventProducer, Any, Topics],
) -> None:
    """The retired *wake* way's records are published by no relay: said at start, looked up
    only where the old flag's index still exists (decision 0200)."""
    producer, db, _ = kit
    clean, old = db["documents"], db["older_documents"]
    await old.create_index("outbox_pending")  # what an older version built
    await old.insert_one({"_id": "w1", "outbox": {}, "outbox_pending": 1})
    with capture_logs() as captured:
        await OutboxRelay(clean, producer).create_indexes()
        await OutboxRelay(old, producer).create_indexes()
    said = [line for line in captured if line["event"] == "outbox_unpublished_legacy_records"]
    assert [line["collection"] for line in said] == ["older_documents"]


async def test_outbox_events_carry_their_writers_trace_however_they_are_published(
    kit: tuple[EventProducer, Any, Topics], topic_reader: Any
) -> None:
    """The relay publishes outside the request that stored the event: handed over, or looked
    up in the store after an insert of unknown outcome, the record carries the writer's trace."""
    configure_tracing("kit-test")  # as the service bootstrap does
    producer, db, topics = kit
    collection = db["documents"]
    writer = OutboxRelay(collection, producer)
    unsure = OutboxRelay(collection, producer, unconfirmed_seconds=0)  # its own owner's slots
    await writer.create_indexes()
    traces: dict[str, str] = {}
    with tracer.start_as_current_span("request"):
        traces["handed"] = current_trace_id()
        async with writer.staged(topics.documents, "handed", submitted("handed")) as staged:
            await collection.insert_one({"_id": "handed", **staged.fields})
            staged.commit()
    with tracer.start_as_current_span("request"), contextlib.suppress(asyncio.CancelledError):
        traces["uncertain"] = current_trace_id()
        async with unsure.staged(topics.documents, "uncertain", submitted("uncertain")) as staged:
            await collection.insert_one({"_id": "uncertain", **staged.fields})
            raise asyncio.CancelledError  # the caller went away: the insert's outcome unknown
    await writer._publish_handed()  # from the relay's own context: no current trace
    assert await unsure.confirm_uncertain() == 1
    records = await topic_reader(topics.documents, 2)
    published = {
        record.key.decode(): dict(record.headers)["traceparent"].decode().split("-")[1]
        for record in records
    }
    assert published == traces


async def test_the_lag_of_a_revoked_partition_is_no_longer_reported(
    kit: tuple[EventProducer, Any, Topics], run_loop: Any
) -> None:
    producer, _, topics = kit
    for number in range(30):  # keys spread over the 3 partitions
        await producer.publish(topics.documents, key=f"k{number}", envelope=submitted("d"))
    applied: list[str] = []

    async def handler(envelope: EventEnvelope, _: Any) -> None:
        applied.append(envelope.event_id)

    first = await run_loop(handler)
    await wait_until(lambda: len(applied) == 30, timeout=60)

    def lags() -> dict[int, float]:
        found = {
            partition: REGISTRY.get_sample_value(
                "lienthong_consumer_lag_messages",
                {"group": first.group, "topic": topics.documents, "partition": str(partition)},
            )
            for partition in range(3)
        }
        return {partition: lag for partition, lag in found.items() if lag is not None}

    def reported() -> set[int]:
        return set(lags())

    # every partition committed to its end, so the second member has nothing to re-read (in
    # one process both members would report under the same labels)
    await wait_until(lambda: lags() == {0: 0.0, 1: 0.0, 2: 0.0}, timeout=60)
    await run_loop(handler)  # a second member: the first gives partitions up
    await wait_until(lambda: len(first._consumer.assignment()) < 3, timeout=60)
    kept = {tp.partition for tp in first._consumer.assignment()}
    assert reported() <= kept


async def test_the_lag_probe_sees_a_stuck_member_and_a_group_without_members(
    settings: KitSettings, kit: tuple[EventProducer, Any, Topics], run_loop: Any
) -> None:
    producer, _, topics = kit
    for number in range(30):  # keys spread over the 3 partitions
        await producer.publish(topics.documents, key=f"k{number}", envelope=submitted("d"))
    release = asyncio.Event()

    async def stuck(_: EventEnvelope, __: Any) -> None:
        await release.wait()  # e.g. a store call that never returns

    loop = await run_loop(stuck, group="kit-stuck")
    idle = f"{settings.topic_prefix}kit-idle"  # a group nobody runs
    probe = GroupLagProbe(
        settings, {loop.group: [topics.documents], idle: [topics.documents]}, every_seconds=0.2
    )
    task = asyncio.create_task(probe.run())

    def sample(name: str, group: str) -> float | None:
        values = [
            REGISTRY.get_sample_value(
                name, {"group": group, "topic": topics.documents, "partition": str(p)}
            )
            for p in range(3)
        ]
        return None if None in values else sum(v or 0.0 for v in values)

    try:
        # nothing committed: all 30 records wait for both groups, from the broker's view
        # (a round sets one group after the other: wait for both)
        await wait_until(
            lambda: (
                sample("lienthong_consumer_group_lag_messages", loop.group) == 30
                and sample("lienthong_consumer_group_lag_messages", idle) == 30
            ),
            timeout=60,
        )
        assert sample("lienthong_consumer_group_offset", loop.group) == 0
        release.set()
        await wait_until(
            lambda: sample("lienthong_consumer_group_lag_messages", loop.group) == 0, timeout=60
        )
        assert sample("lienthong_consumer_group_offset", loop.group) == 30
        assert sample("lienthong_consumer_group_lag_messages", idle) == 30
    finally:
        release.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_staged_effects_put_back_in_front_when_their_write_fails() -> None:
    staging = Staging[int]()
    staging.extend([1, 2])

    def failed_write() -> None:
        with staging.taken() as taken:
            assert taken == [1, 2]
            staging.add(3)  # staged while the write was under way
            raise RuntimeError("the store is down")

    with pytest.raises(RuntimeError):
        failed_write()
    with staging.taken() as again:
        assert again == [1, 2, 3]
    with staging.taken() as empty:
        assert empty == []
    assert len(staging) == 0
