"""The idempotent producer; every record it sends carries the current trace in its headers."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.protocol.metadata import MetadataRequest

from lienthong_kit.envelope import EventEnvelope
from lienthong_kit.kafka.security import kafka_security
from lienthong_kit.metrics import EVENTS_PRODUCED
from lienthong_kit.settings import KitSettings
from lienthong_kit.tracing import kafka_headers

__all__ = ["EventProducer", "Headers", "ProducerRecord"]

_BATCH_BYTES = 512 * 1024

Headers = Sequence[tuple[str, bytes]]
#: (topic, key, value), or (topic, key, value, headers) for a record whose trace was taken
#: when it was made (the outbox's: published later, outside the request's trace)
ProducerRecord = (
    tuple[str, bytes | None, bytes | None] | tuple[str, bytes | None, bytes | None, Headers]
)


class EventProducer:
    """An idempotent producer (``enable_idempotence`` implies ``acks=all``)."""

    def __init__(self, settings: KitSettings, *, client_id: str) -> None:
        self._settings = settings
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._partitioner = DefaultPartitioner()

    async def start(self) -> None:
        """Connect (aiokafka binds its producer to the running loop, so it is made here)."""
        if self._producer is not None:
            return
        producer = AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            client_id=self._client_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=2,
            max_request_size=self._settings.max_message_bytes,
            max_batch_size=min(_BATCH_BYTES, self._settings.max_message_bytes),
            **kafka_security(self._settings),
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise KafkaConnectionError("the producer is not started")
        return self._producer

    async def ping(self) -> None:
        """Raise KafkaConnectionError unless a broker answers a metadata request."""
        client = self._started().client
        brokers = [broker.nodeId for broker in client.cluster.brokers()]
        random.shuffle(brokers)
        for node in brokers:
            # for no topic: a refresh asked for every topic of the cluster (a producer that
            # sent nothing yet names none), every few seconds (docs/benchmarks.md, "Idle CPU")
            with contextlib.suppress(KafkaError, OSError, TimeoutError):
                if (await client.send(node, MetadataRequest([]))).brokers:
                    return
        raise KafkaConnectionError("no Kafka broker answered a metadata request")

    async def publish(self, topic: str, *, key: str, envelope: EventEnvelope) -> None:
        """Send and wait for the broker's acknowledgement."""
        await self.publish_raw(topic, key=key.encode(), value=envelope.SerializeToString())

    async def publish_batch(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Send many (key, value) records to one topic as one batch per partition and wait
        until every one is acknowledged: far cheaper than one ``send()`` each for a document
        fanned out to hundreds of units (docs/benchmarks.md, "Kit"). Keys go to the same
        partitions as with ``publish`` (the default murmur2 partitioner); order per
        partition is kept."""
        producer = self._started()
        headers = kafka_headers()
        try:
            partitions = sorted(await producer.partitions_for(topic))
            open_batches: dict[int, Any] = {}
            sent: list[asyncio.Future[Any]] = []
            for key, value in records:
                partition = self._partitioner(key, partitions, partitions)
                batch = open_batches.get(partition)
                if batch is not None and batch.append(
                    key=key, value=value, timestamp=None, headers=headers
                ):
                    continue
                if batch is not None:  # full: send it and start the next one
                    sent.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                    raise ValueError(f"a record of {len(value)} bytes does not fit a batch")
                open_batches[partition] = batch
            for partition, batch in open_batches.items():
                sent.append(await producer.send_batch(batch, topic, partition=partition))
            await asyncio.gather(*sent)
        except Exception:
            EVENTS_PRODUCED.labels(topic, "error").inc(len(records))
            raise
        EVENTS_PRODUCED.labels(topic, "ok").inc(len(records))

    async def publish_many(self, records: Sequence[ProducerRecord]) -> None:
        """Send records together and wait for every acknowledgement: one round trip for a
        batch instead of one per record (order per partition is kept). A record without
        headers gets the current trace's."""
        producer = self._started()
        current = kafka_headers()
        futures = []
        try:
            for record in records:
                topic, key, value = record[0], record[1], record[2]
                headers = list(record[3]) if len(record) == 4 else current
                futures.append(await producer.send(topic, value=value, key=key, headers=headers))
            await asyncio.gather(*futures)
        except Exception:
            for record in records:
                EVENTS_PRODUCED.labels(record[0], "error").inc()
            raise
        for record in records:
            EVENTS_PRODUCED.labels(record[0], "ok").inc()

    async def publish_raw(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Headers = (),
    ) -> None:
        """Send one record and wait for the acknowledgement; unless ``headers`` carry a trace
        already (a replayed record), the current trace's are added to them."""
        producer = self._started()
        sent = list(headers)
        if not any(name == "traceparent" for name, _ in sent):
            sent += kafka_headers()
        try:
            await producer.send_and_wait(topic, value=value, key=key, headers=sent)
        except Exception:
            EVENTS_PRODUCED.labels(topic, "error").inc()
            raise
        EVENTS_PRODUCED.labels(topic, "ok").inc()
