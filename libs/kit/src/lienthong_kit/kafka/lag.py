"""Each consumer group's lag and committed offset per partition, as the broker sees them.

    probe = GroupLagProbe(settings, {"document-service": [topics.deliveries, ...]})
    tasks=[probe.run]      # every LIENTHONG_LAG_PROBE_SECONDS

The consumer loop's own gauge (``lienthong_consumer_lag_messages``) is set after a poll was
applied, by the member holding the partition: a member stuck inside a handler, or a group
with no member at all, never updates it. This probe asks the broker for the group's
committed offsets and each partition's end, whatever the members do, so "records wait and
the committed offset does not move" is visible (the LienthongConsumerStuck alert); it also
covers faust's group (reporting-service), which the kit's loop does not run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from lienthong_kit.kafka.security import kafka_security
from lienthong_kit.logs import get_logger
from lienthong_kit.metrics import CONSUMER_GROUP_LAG, CONSUMER_GROUP_OFFSET
from lienthong_kit.settings import KitSettings

__all__ = ["GroupLagProbe"]

log = get_logger(__name__)


class GroupLagProbe:
    """Measures ``groups`` (full group id -> its topics) every ``every_seconds``."""

    def __init__(
        self,
        settings: KitSettings,
        groups: Mapping[str, Sequence[str]],
        *,
        every_seconds: float | None = None,
    ) -> None:
        self._settings = settings
        self._groups = {group: list(topics) for group, topics in groups.items()}
        self._every = every_seconds if every_seconds is not None else settings.lag_probe_seconds

    async def run(self) -> None:
        if not self._groups:
            return
        security = kafka_security(self._settings)
        admin = AIOKafkaAdminClient(bootstrap_servers=self._settings.kafka_bootstrap, **security)
        ends = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap, group_id=None, **security
        )
        await admin.start()
        try:
            await ends.start()
            try:
                while True:
                    try:
                        await self.measure(admin, ends)
                    except (KafkaError, OSError, TimeoutError) as exc:  # broker away: retried
                        log.warning("lag_probe_failed", error=repr(exc))
                    await asyncio.sleep(self._every)
            finally:
                await ends.stop()
        finally:
            await admin.close()

    async def measure(self, admin: AIOKafkaAdminClient, ends: AIOKafkaConsumer) -> None:
        """One round: set both gauges for every partition of every group's topics."""
        topics = sorted({topic for topics in self._groups.values() for topic in topics})
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(ends.partitions_for_topic(topic) or ())
        ]
        if len(partitions) < len(topics):  # metadata not there yet for some topic
            await ends._client.force_metadata_update()  # aiokafka has no public refresh
            partitions = [
                TopicPartition(topic, partition)
                for topic in topics
                for partition in sorted(ends.partitions_for_topic(topic) or ())
            ]
        if not partitions:
            return
        end = await ends.end_offsets(partitions)
        start = await ends.beginning_offsets(partitions)
        for group, group_topics in self._groups.items():
            mine = [tp for tp in partitions if tp.topic in group_topics]
            committed = await admin.list_consumer_group_offsets(group, partitions=mine)
            for tp in mine:
                found = committed.get(tp)
                # no commit yet: the group starts at the earliest offset (auto_offset_reset)
                offset = found.offset if found is not None and found.offset >= 0 else start[tp]
                labels = (group, tp.topic, str(tp.partition))
                CONSUMER_GROUP_OFFSET.labels(*labels).set(offset)
                CONSUMER_GROUP_LAG.labels(*labels).set(max(end[tp] - offset, 0))
