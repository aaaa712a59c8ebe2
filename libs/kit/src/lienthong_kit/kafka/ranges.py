"""Reading a range of offsets of one partition, outside any consumer group."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaTimeoutError

__all__ = ["read_range"]


async def read_range(
    bootstrap: str, topic: str, partition: int, start: int, end: int, timeout: float = 30.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """The records at offsets ``start`` to ``end`` (exclusive) of one partition, read by a
    short-lived consumer outside any group (nothing is committed). Raises
    :class:`KafkaTimeoutError` if they are not all read within ``timeout`` seconds."""
    if end <= start:
        return []
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
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
