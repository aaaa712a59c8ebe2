"""Remove what a test namespace left behind: its topics (and faust's internal topics, which
carry the same prefix) and its databases. Without this, every test run adds dozens of
partitions to the local broker until its controller slows to a crawl.

    remove_namespace("t1a2b3c4d5_", kafka="127.0.0.1:9092", mongo="mongodb://127.0.0.1:27017")

A run that was killed leaves its namespace behind; ``make clean-namespaces`` (this module run
as a program) removes the namespaces of tests and benchmarks from the local broker and store:
names that begin with a word and at least six hex digits and ``_`` (``t1a2b3c4d5_``,
``bench6c254d16_``), as the suites make them. Nothing else is touched (``make run``'s own
topics, databases and reporting changelog, a prefix chosen by hand). A namespace with a
consumer group that has members is in use and kept; a run that only produces or tails is
not seen that way: run it when no tests or benchmarks run (``--dry-run`` lists first).
"""

from __future__ import annotations

import argparse
import asyncio
import re
from collections.abc import Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pymongo import MongoClient

__all__ = ["namespace_of", "namespaced", "remove_namespace", "remove_namespaces"]

#: the prefix of a test's or benchmark's namespace: a word, a random hex tag, "_"
NAMESPACE = re.compile(r"[a-z]+[0-9a-f]{6,}_")


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


def namespace_of(name: str) -> str | None:
    """The test or benchmark namespace ``name`` belongs to, if any."""
    found = NAMESPACE.match(name)
    return found.group(0) if found else None


def namespaced(names: Iterable[str], *, live: Iterable[str] = ()) -> list[str]:
    """The topics or databases of ``names`` that belong to a namespace not in ``live``."""
    kept = set(live)
    return sorted(name for name in names if (prefix := namespace_of(name)) and prefix not in kept)


def remove_namespaces(
    *, kafka: str, mongo: str, dry_run: bool = False
) -> tuple[list[str], list[str], set[str]]:
    """Remove every namespace not in use; returns the topics and databases removed (or that
    would be, with ``dry_run``) and the namespaces kept as in use."""
    topics, live = asyncio.run(_namespaced_topics(kafka, delete=not dry_run))
    client: MongoClient[dict[str, Any]] = MongoClient(mongo, serverSelectionTimeoutMS=5000)
    with client:
        databases = namespaced(client.list_database_names(), live=live)
        if not dry_run:
            for name in databases:
                client.drop_database(name)
    return topics, databases, live


async def _namespaced_topics(bootstrap: str, *, delete: bool) -> tuple[list[str], set[str]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        live = await _live_namespaces(admin)
        topics = namespaced(await admin.list_topics(), live=live)
        for start in range(0, len(topics) if delete else 0, 100):  # bounded requests
            await admin.delete_topics(topics[start : start + 100])
        return topics, live
    finally:
        await admin.close()


async def _live_namespaces(admin: AIOKafkaAdminClient) -> set[str]:
    """Namespaces with a consumer group that has members: a run is using them."""
    groups = [group for group, _ in await admin.list_consumer_groups() if namespace_of(group)]
    live: set[str] = set()
    if not groups:
        return live
    for name in groups:
        # one group a request: aiokafka failed to decode answers describing several at once
        try:
            (response,) = await admin.describe_consumer_groups([name])
            described = response.to_object()["groups"]
        except KafkaError:
            described = [{"group": name, "members": ["?"]}]  # unknown: taken as in use
        for group in described:
            prefix = namespace_of(group["group"])
            if group["members"] and prefix:
                live.add(prefix)
    return live


def main() -> None:
    parser = argparse.ArgumentParser(description="remove the namespaces tests and benchmarks left")
    parser.add_argument("--kafka", default="127.0.0.1:9092")
    parser.add_argument("--mongo", default="mongodb://127.0.0.1:27017")
    parser.add_argument("--dry-run", action="store_true", help="list, remove nothing")
    args = parser.parse_args()
    topics, databases, live = remove_namespaces(
        kafka=args.kafka, mongo=args.mongo, dry_run=args.dry_run
    )
    for name in [*topics, *databases]:
        print(name)
    verb = "would remove" if args.dry_run else "removed"
    print(
        f"{verb} {len(topics)} topics and {len(databases)} databases of test and benchmark"
        f" namespaces; kept {len(live)} in use: {', '.join(sorted(live)) or 'none'}"
    )


if __name__ == "__main__":
    main()
