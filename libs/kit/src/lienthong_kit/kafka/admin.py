"""Topic creation for local and test runs (Strimzi owns the topics in production)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from lienthong_kit.kafka.security import kafka_security
from lienthong_kit.logs import get_logger
from lienthong_kit.settings import KitSettings

__all__ = ["ensure_topics"]

log = get_logger(__name__)


async def ensure_topics(
    settings: KitSettings, names: Sequence[str], *, compacted: Sequence[str] = ()
) -> None:
    """Create the missing topics (local and test runs; Strimzi owns them in production)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, **kafka_security(settings)
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in names if name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another replica was first
                await admin.create_topics(
                    [
                        NewTopic(
                            name,
                            num_partitions=settings.kafka_partitions,
                            replication_factor=settings.kafka_replication_factor,
                            topic_configs=(
                                {"cleanup.policy": "compact"} if name in compacted else {}
                            ),
                        )
                        for name in missing
                    ]
                )
            log.info("topics_created", topics=missing)
    finally:
        await admin.close()
