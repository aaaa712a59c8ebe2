"""Fan-out throughput: one document to every commune of the sample province, against raw
aiokafka produce of the same records.

    make bench      (or: .venv/bin/python benchmarks/bench_fanout.py [--documents N] [--rounds R])

routing-service runs in this process against the real broker and store, with the sample
province imported (151 communes). Each document is a ``document.verified`` event whose
recipients are the scope "every commune of the province"; the figure is deliveries per second
from publishing the verified events to reading the last delivery back from the topic. Then
the same delivery records (same keys, same bytes) are produced with a bare aiokafka producer
(idempotent, acks=all, as the platform's producer) to a fresh topic with the same partitions
and read back the same way: that is the cost of Kafka in Python alone. The ratio says how much
of it routing keeps while consuming, de-duplicating, resolving scopes and enveloping
(target >= 0.5). A second baseline produces the records one document at a time, waiting for
the acknowledgements before the next, as routing must to commit only after the effect.
Rounds alternate routing and raw (load from elsewhere on the machine hits both alike); the
medians are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections import defaultdict
from typing import Any

import grpc
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from lienthong.common.v1.common_pb2 import (
    DocumentSummary,
    Recipients,
    RecipientScope,
    UnitLevel,
    Verdict,
)
from lienthong.events.v1.events_pb2 import DeliveryCreated, DocumentVerified
from lienthong.routing.v1 import routing_service_pb2 as pb
from lienthong.routing.v1.routing_service_pb2_grpc import RoutingServiceStub
from lienthong_kit.envelope import decode_envelope, new_event, unpack
from lienthong_kit.kafka import ensure_topics
from lienthong_kit.server import ServiceApp
from lienthong_kit.settings import KitSettings, load_settings
from lienthong_local.sample import PROVINCE, sample_units
from lienthong_testing.callers import REGISTRY_ADMIN, default_identity
from routing_service.__main__ import build
from routing_service.settings import Settings

TARGET = 0.5


async def tail_from_end(settings: KitSettings, topic: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="latest",
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    await consumer.getmany(timeout_ms=100)  # get the partitions assigned and positioned
    await consumer.seek_to_end()
    return consumer


async def read(consumer: AIOKafkaConsumer, count: int, timeout: float = 120.0) -> list[Any]:
    records: list[Any] = []
    async with asyncio.timeout(timeout):
        while len(records) < count:
            for batch in (await consumer.getmany(timeout_ms=100, max_records=5000)).values():
                records.extend(batch)
    return records


async def fan_out(app: ServiceApp, documents: int, communes: int) -> tuple[float, list[Any]]:
    consumer = await tail_from_end(app.settings, app.topics.deliveries)
    scope = Recipients(scopes=[RecipientScope(level=UnitLevel.UNIT_LEVEL_COMMUNE)])
    run = uuid.uuid4().hex[:8]
    verified = [
        new_event(
            DocumentVerified(
                document=DocumentSummary(document_id=f"{run}-{n}", sender_code=PROVINCE),
                recipients=scope,
                verdict=Verdict.VERDICT_ACCEPTED,
            ),
            producer="bench",
        )
        for n in range(documents)
    ]
    try:
        start = time.perf_counter()
        await app.producer.publish_many(
            [
                (app.topics.verifications, e.event_id.encode(), e.SerializeToString())
                for e in verified
            ]
        )
        records = await read(consumer, documents * communes)
        elapsed = time.perf_counter() - start
    finally:
        await consumer.stop()
    return len(records) / elapsed, records


async def raw_produce(settings: KitSettings, topic: str, groups: list[list[Any]]) -> float:
    """Produce the groups one after the other (each: send all, wait for every ack), reading
    them back; records per second."""
    records = [record for group in groups for record in group]
    await ensure_topics(settings, [topic])
    consumer = await tail_from_end(settings, topic)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True, acks="all", linger_ms=2
    )
    await producer.start()
    try:
        start = time.perf_counter()
        for group in groups:
            futures = [await producer.send(topic, key=r.key, value=r.value) for r in group]
            await asyncio.gather(*futures)
        got = await read(consumer, len(records))
        elapsed = time.perf_counter() - start
    finally:
        await producer.stop()
        await consumer.stop()
    return len(got) / elapsed


async def main(documents: int, rounds: int) -> None:
    prefix = f"bench{uuid.uuid4().hex[:8]}_"
    settings = load_settings(
        Settings,
        {
            "LIENTHONG_GRPC_PORT": "0",
            "LIENTHONG_METRICS_PORT": "0",
            "LIENTHONG_TOPIC_PREFIX": prefix,
            "LIENTHONG_MONGO_DATABASE_PREFIX": f"{prefix}lienthong_",
            "LIENTHONG_LOG_LEVEL": "WARNING",
            "LIENTHONG_DEV_AUTH": "true",
        },
    )
    units = sample_units()
    communes = sum(1 for u in units if u.level == UnitLevel.UNIT_LEVEL_COMMUNE)
    app = ServiceApp("routing-service", settings, build)
    await app.start()
    try:
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{app.grpc_port}", interceptors=default_identity(REGISTRY_ADMIN)
        ) as channel:
            await RoutingServiceStub(channel).ImportRegistry(
                pb.ImportRegistryRequest(unit=u) for u in units
            )
        await fan_out(app, 1, communes)  # warm-up: connections, partitions, caches
        # Rounds alternate between routing and the raw producer so that load from anything
        # else on the machine hits both alike; the medians are reported.
        rates: list[float] = []
        raws: list[float] = []
        per_documents: list[float] = []
        for n in range(rounds):
            rate, records = await fan_out(app, documents, communes)
            rates.append(rate)
            raws.append(await raw_produce(settings, f"{prefix}bench.raw{n}", [records]))
            by_document: dict[str, list[Any]] = defaultdict(list)
            for record in records:
                created = unpack(decode_envelope(record.value), DeliveryCreated)
                by_document[created.document.document_id].append(record)
            per_documents.append(
                await raw_produce(
                    settings, f"{prefix}bench.raw.documents{n}", list(by_document.values())
                )
            )
    finally:
        await app.stop()
    rate, raw, per_document = (statistics.median(x) for x in (rates, raws, per_documents))
    print(
        f"fan-out: {documents} documents x {communes} communes = {documents * communes}"
        f" deliveries per round, median of {rounds} rounds\n"
        f"  routing-service: {rate:,.0f} deliveries/s"
        f" (rounds: {', '.join(f'{r:,.0f}' for r in rates)})\n"
        f"  raw aiokafka produce of the same records, all at once: {raw:,.0f} records/s"
        f" (rounds: {', '.join(f'{r:,.0f}' for r in raws)})\n"
        f"    ratio: {rate / raw:.2f} (target >= {TARGET})\n"
        f"  raw aiokafka produce of the same records, one document's records at a time (send,\n"
        f"  wait for the acks, next document: what routing must do to commit after the\n"
        f"  effect): {per_document:,.0f} records/s\n"
        f"    ratio: {rate / per_document:.2f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=50, help="documents per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.documents, args.rounds))
