"""Reading a range of offsets of one partition, outside any consumer group."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaTimeoutError

from lienthong_kit.kafka.security import kafka_security
from lienthong_kit.settings import KitSettings

__all__ = ["read_range"]


async def read_range(
    bootstrap: str | KitSettings,
    topic: str,
    partition: int,
    start: int,
    end: int,
    timeout: float = 30.0,
    *,
    security: Mapping[str, Any] | None = None,
) -> list[ConsumerRecord[bytes, bytes]]:
    """The records at offsets ``start`` to ``end`` (exclusive) of one partition, read by a
    short-lived consumer outside any group (nothing is committed). ``bootstrap`` is the
    settings (their TLS too), or servers with ``security`` (kafka_security's arguments;
    plaintext when None). Raises
    :class:`KafkaTimeoutError` if they are not all read within ``timeout`` seconds."""
    if end <= start:
        return []
    tp = TopicPartition(topic, partition)
    if isinstance(bootstrap, KitSettings):
        servers, security = bootstrap.kafka_bootstrap, kafka_security(bootstrap)
    else:
        servers = bootstrap
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers, group_id=None, enable_auto_commit=False, **(security or {})
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, start)
        found: list[ConsumerRecord[bytes, bytes]] = []
        deadline = asyncio.get_running_loop().time() + timeout
        # Past the range, not "read a record at end - 1": an offset may hold no record (a
        # transaction marker), and waiting for one would time out every time.
        while await consumer.position(tp) < end:
            if asyncio.get_running_loop().time() > deadline:
                raise KafkaTimeoutError(
                    f"read {len(found)} of the records {start}..{end - 1} of {topic}[{partition}]"
                )
            batches = await consumer.getmany(tp, timeout_ms=500)
            found += [r for r in batches.get(tp, []) if start <= r.offset < end]
        return found
    finally:
        await consumer.stop()
