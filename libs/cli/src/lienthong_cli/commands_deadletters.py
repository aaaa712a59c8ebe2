"""``lienthong deadletters``: the records consumers gave up on, read from the ``.dlq`` topics
themselves (an operator tool run where the broker is reachable), and re-driven to their source.

    lienthong deadletters list [--topic lienthong.documents.dlq]
    lienthong deadletters show lienthong.documents.dlq:0:12
    lienthong deadletters redrive lienthong.documents.dlq:0:12

A record is named ``TOPIC:PARTITION:OFFSET``; the headers lienthong_kit.kafka.topics'
``dead_letter_headers`` writes say why and where from. A re-drive publishes the original key
and value (and the original headers) to the topic named in ``lienthong-source-topic``; the
consumers are idempotent by event id, so a record re-driven twice is applied once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from lienthong_cli.errors import CliError, ExitCode
from lienthong_cli.options import OutputOption
from lienthong_cli.output import Output, err, out, print_json, table

app = typer.Typer(help="Dead letters on the .dlq topics: list, show the reason, re-drive.")

DLQ_HEADERS = (
    "lienthong-dlq-reason",
    "lienthong-source-topic",
    "lienthong-source-partition",
    "lienthong-source-offset",
    "lienthong-consumer-group",
    "lienthong-dead-lettered-at",
)
REDRIVEN_FROM = "lienthong-redriven-from"


@dataclass(frozen=True)
class Broker:
    bootstrap: str
    prefix: str


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @property
    def name(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"

    def header(self, name: str) -> str:
        return next((v.decode(errors="replace") for k, v in self.headers if k == name), "")

    def as_dict(self, *, full: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.name,
            "source_topic": self.header("lienthong-source-topic"),
            "reason": self.header("lienthong-dlq-reason"),
            "dead_lettered_at": self.header("lienthong-dead-lettered-at"),
            "event_id": self.header("lienthong-event-id"),
            "consumer_group": self.header("lienthong-consumer-group"),
        }
        if full:
            data |= {
                "source": f"{self.header('lienthong-source-topic')}:"
                f"{self.header('lienthong-source-partition')}:"
                f"{self.header('lienthong-source-offset')}",
                "key": (self.key or b"").decode(errors="replace"),
                "value_bytes": len(self.value or b""),
                "headers": {k: v.decode(errors="replace") for k, v in self.headers},
            }
        return data


@app.callback()
def _broker(
    ctx: typer.Context,
    bootstrap: Annotated[
        str, typer.Option(envvar="LIENTHONG_KAFKA_BOOTSTRAP", help="Kafka bootstrap servers.")
    ] = "127.0.0.1:9092",
    topic_prefix: Annotated[
        str, typer.Option(envvar="LIENTHONG_TOPIC_PREFIX", help="The platform's topic prefix.")
    ] = "",
) -> None:
    ctx.obj = Broker(bootstrap, topic_prefix)


def _broker_of(ctx: typer.Context) -> Broker:
    broker = ctx.find_object(Broker)
    if broker is None:
        raise RuntimeError("the broker options were not parsed")
    return broker


def _parse_id(value: str) -> tuple[str, int, int]:
    topic, _, rest = value.rpartition(":")
    topic, _, partition = topic.rpartition(":")
    if not topic.endswith(".dlq") or not partition.isdigit() or not rest.isdigit():
        raise typer.BadParameter(f"{value!r}: use TOPIC.dlq:PARTITION:OFFSET (from `list`)")
    return topic, int(partition), int(rest)


async def _read(
    broker: Broker, topic: str = "", only: tuple[int, int] | None = None
) -> list[DeadLetter]:
    """Every record of the prefix's .dlq topics (or of ``topic``), start to end, no group."""
    # the admin client says which partitions exist (a consumer only knows its subscriptions)
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        topics = sorted(
            t
            for t in await admin.list_topics()
            if t.endswith(".dlq") and t.startswith(f"{broker.prefix}lienthong.")
        )
        if topic:
            topics = [t for t in topics if t == topic]
        described = await admin.describe_topics(topics) if topics else []
    finally:
        await admin.close()
    partitions = [
        TopicPartition(str(d["topic"]), int(p["partition"]))
        for d in described
        for p in d["partitions"]
    ]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=15000,
    )
    await consumer.start()
    try:
        if only is not None:
            partitions = [tp for tp in partitions if tp.partition == only[0]]
        if not partitions:
            return []
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        for tp, start in (await consumer.beginning_offsets(partitions)).items():
            consumer.seek(tp, start)
        found: list[DeadLetter] = []
        pending = {tp for tp in partitions if ends[tp] > await consumer.position(tp)}
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    if only is None or record.offset == only[1]:
                        found.append(
                            DeadLetter(
                                record.topic,
                                record.partition,
                                record.offset,
                                record.key,
                                record.value,
                                tuple(record.headers),
                            )
                        )
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        return found
    finally:
        await consumer.stop()


def _one(broker: Broker, record_id: str) -> DeadLetter:
    topic, partition, offset = _parse_id(record_id)
    found = asyncio.run(_read(broker, topic, (partition, offset)))
    if not found:
        raise CliError(f"no dead letter {record_id}", ExitCode.NOT_FOUND)
    return found[0]


@app.command("list")
def list_(
    ctx: typer.Context,
    topic: Annotated[str, typer.Option(help="Only this .dlq topic (with its prefix).")] = "",
    output: OutputOption = Output.table,
) -> None:
    """Every dead letter: where it came from, why, when."""
    letters = asyncio.run(_read(_broker_of(ctx), topic))
    if output == Output.json:
        print_json([letter.as_dict() for letter in letters])
        return
    table(
        "dead letters",
        ["id", "source", "reason", "when", "event"],
        [
            [
                letter.name,
                letter.header("lienthong-source-topic"),
                letter.header("lienthong-dlq-reason"),
                letter.header("lienthong-dead-lettered-at"),
                letter.header("lienthong-event-id"),
            ]
            for letter in letters
        ],
    )


@app.command("show")
def show(ctx: typer.Context, record_id: str, output: OutputOption = Output.table) -> None:
    """One dead letter in full: the reason, its source, its key and headers."""
    data = _one(_broker_of(ctx), record_id).as_dict(full=True)
    if output == Output.json:
        print_json(data)
        return
    for key, value in data.items():
        if key != "headers":
            out.print(f"{key}: {value}", markup=False)


@app.command("redrive")
def redrive(ctx: typer.Context, record_id: str, output: OutputOption = Output.table) -> None:
    """Publish the original key and value again to the source topic."""
    broker = _broker_of(ctx)
    letter = _one(broker, record_id)
    source = letter.header("lienthong-source-topic")
    if not source:
        raise CliError(f"{record_id} names no source topic", ExitCode.REFUSED)
    headers = [(k, v) for k, v in letter.headers if k not in DLQ_HEADERS]
    headers.append((REDRIVEN_FROM, letter.name.encode()))

    async def publish() -> tuple[int, int]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        await producer.start()
        try:
            sent = await producer.send_and_wait(
                source, letter.value, key=letter.key, headers=headers
            )
            return sent.partition, sent.offset
        finally:
            await producer.stop()

    partition, offset = asyncio.run(publish())
    result = {"id": letter.name, "redriven_to": f"{source}:{partition}:{offset}"}
    if output == Output.json:
        print_json(result)
    else:
        err.print(f"{letter.name} re-driven to {result['redriven_to']}", markup=False)
