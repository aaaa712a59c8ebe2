"""Remove what a test namespace left behind: its topics (and faust's internal topics, which
carry the same prefix) and its databases. Without this, every test run adds dozens of
partitions to the local broker until its controller slows to a crawl.

    remove_namespace("t1a2b3c4d5_", kafka="127.0.0.1:9092", mongo="mongodb://127.0.0.1:27017")
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from pymongo import MongoClient

__all__ = ["remove_namespace"]


def remove_namespace(prefix: str, *, kafka: str, mongo: str) -> None:
    if not prefix:
        raise ValueError("refusing to remove an empty namespace")
    asyncio.run(_delete_topics(prefix, kafka))
    client: MongoClient[dict[str, Any]] = MongoClient(mongo, serverSelectionTimeoutMS=5000)
    with client:
        for name in client.list_database_names():
            if name.startswith(prefix):
                client.drop_database(name)


async def _delete_topics(prefix: str, bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [topic for topic in await admin.list_topics() if topic.startswith(prefix)]
        if topics:
            await admin.delete_topics(topics)
    finally:
        await admin.close()
