"""Remove what a test namespace left behind: its topics (and faust's internal topics, which
carry the same prefix) and its databases. Without this, every test run adds dozens of
partitions to the local broker until its controller slows to a crawl.

    remove_namespace("t1a2b3c4d5_", kafka="127.0.0.1:9092", mongo="mongodb://127.0.0.1:27017")

A run that was killed leaves its namespace behind; ``make clean-namespaces`` (this module run
as a program) removes every namespace from the local broker and store: all topics and
databases but the platform's own (``lienthong``...) and the broker's and store's internal
ones. Not while tests or benchmarks run: their namespaces would go too.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from pymongo import MongoClient

__all__ = ["namespaced", "remove_namespace", "remove_namespaces"]

#: what belongs to `make run`'s platform, to Kafka or to the store itself: never removed
KEEP = ("lienthong", "__", "admin", "local", "config")


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


def namespaced(names: Iterable[str]) -> list[str]:
    """The topics or databases of ``names`` that belong to a namespace (a test's, a benchmark's)."""
    return sorted(name for name in names if not name.startswith(KEEP))


def remove_namespaces(*, kafka: str, mongo: str) -> tuple[list[str], list[str]]:
    """Remove every namespace's topics and databases; returns what was removed."""
    topics = asyncio.run(_delete_namespaced_topics(kafka))
    client: MongoClient[dict[str, Any]] = MongoClient(mongo, serverSelectionTimeoutMS=5000)
    with client:
        databases = namespaced(client.list_database_names())
        for name in databases:
            client.drop_database(name)
    return topics, databases


async def _delete_namespaced_topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = namespaced(await admin.list_topics())
        for start in range(0, len(topics), 100):  # a bounded request per batch of topics
            await admin.delete_topics(topics[start : start + 100])
        return topics
    finally:
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="remove every test and benchmark namespace")
    parser.add_argument("--kafka", default="127.0.0.1:9092")
    parser.add_argument("--mongo", default="mongodb://127.0.0.1:27017")
    args = parser.parse_args()
    topics, databases = remove_namespaces(kafka=args.kafka, mongo=args.mongo)
    print(f"removed {len(topics)} topics and {len(databases)} databases of test namespaces")


if __name__ == "__main__":
    main()
