"""SubmitDocument throughput against a bare grpc.aio echo server, submit-to-inbox latency,
and a broadcast to thousands of inboxes against the store's grouped-insert ceiling.

    make bench            (or: .venv/bin/python benchmarks/bench_submit.py [--requests N])
    .venv/bin/python benchmarks/bench_submit.py --broadcast-only   (the broadcast figure alone)
    .venv/bin/python benchmarks/bench_submit.py --ratio-only       (the ratios to the echo alone)

The servers run as separate processes on this machine and are driven by the same client
(grpc.aio, fixed concurrency, the same serialized requests). The echo server returns the
request bytes untouched: it is the cost of gRPC in Python alone, so the ratio says how much
of that budget document-service keeps while validating, storing (FerretDB) and, in the
background, publishing (Kafka) and keeping its audit chain. Then, with signature- and
routing-service running too, it measures the time from calling SubmitDocument to the delivery
appearing on the recipient's WatchInbox stream, at a paced rate.

A third server measures the store's ceiling in the same run: a grpc.aio server whose handler
only inserts one document per call into the same FerretDB through the kit's GroupInserter
(nothing else: no validation, no event, no audit). document-service cannot be faster than
that; the ratio of that ceiling to the echo is the best ratio this store allows here.

A round drives each server in turn with the same requests; the medians of the rounds are
compared, and every round's figures are printed. (One round of the echo lasts about a second:
single runs of it varied from 2,740 to 3,450 req/s on this 2-core machine.)

Last, the province's most common send: one document to ``--broadcast`` recipients (synthetic
communes added to the registry), timed from SubmitDocument returning to the last of its
deliveries being in the store (every inbox). Each broadcast is followed by the store's
grouped-insert ceiling, measured in the same run: inserting as many delivery-sized documents
with ``insert_many`` in batches of a consumer poll (200). Materialising a delivery writes two
records (its arrival transition and the delivery), so 0.5 of that ceiling is the most the
store allows; the p99 over the broadcasts and the ratio of the medians are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc

from lienthong.common.v1.common_pb2 import UnitLevel
from lienthong.document.v1 import document_service_pb2 as pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.routing.v1 import routing_service_pb2 as routing_pb
from lienthong.routing.v1.routing_service_pb2 import Unit
from lienthong.routing.v1.routing_service_pb2_grpc import RoutingServiceStub
from lienthong_kit.kafka import Topics
from lienthong_local.platform import Platform, free_port
from lienthong_local.sample import sample_units
from lienthong_testing.cleanup import remove_namespace

SENDER = "000.00.00.H23"
RECIPIENTS = ["000.01.00.H23", "000.00.31.H23"]
MONGO_URL = "mongodb://127.0.0.1:27017"
METHOD = "/lienthong.document.v1.DocumentService/SubmitDocument"

# Both comparison servers answer SubmitDocument with ``handler`` (defined by their head) on a
# bare grpc.aio server (bench_guard.py passes the other two arguments); ``main`` takes
# the port first.
SERVE = """
async def serve(port, handler, interceptors=None, wrap=None):
    server = grpc.aio.server(interceptors=interceptors)
    target = wrap(server) if wrap else server
    target.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "lienthong.document.v1.DocumentService",
        {"SubmitDocument": grpc.unary_unary_rpc_method_handler(handler)})])
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()
"""

ECHO_SERVER = (
    """
import asyncio, sys, grpc
async def echo(request, context):
    return request
"""
    + SERVE
    + """
asyncio.run(serve(int(sys.argv[1]), echo))
"""
)

INSERT_ONLY_SERVER = (
    """
import asyncio, sys, uuid, grpc
from lienthong_kit.mongo import GroupInserter, connect
"""
    + SERVE
    + """
async def main(port, url, database):
    client = connect(url, app_name="bench-insert-only")
    inserter = GroupInserter(client[database]["documents"])
    async def insert(request, context):
        await inserter.insert({"_id": str(uuid.uuid4()), "request": request})
        return request
    await serve(port, insert)
asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
"""
)


def request(number: int, run: str) -> pb.SubmitDocumentRequest:
    return pb.SubmitDocumentRequest(
        idempotency_key=f"{run}-{number}",
        recipients={"unit_codes": RECIPIENTS},
        code={"number": str(number), "notation": f"B{run[:6]}"},
        document_type="",
        subject="Về việc đo hiệu năng liên thông văn bản điện tử",
        content_summary="Nội dung tóm tắt " * 10,
        priority=1,
        promulgation_date="2026-11-20",
    )


async def drive(endpoint: str, payloads: list[bytes], concurrency: int) -> float:
    """Send every payload with ``concurrency`` calls in flight; return requests per second."""
    async with grpc.aio.insecure_channel(endpoint) as channel:
        call = channel.unary_unary(METHOD)  # raw bytes in and out: the same work for both
        metadata = (("x-lienthong-unit", SENDER),)
        queue = iter(payloads)
        started = time.perf_counter()

        async def worker() -> None:
            for payload in queue:
                await call(payload, metadata=metadata, timeout=30)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(payloads) / (time.perf_counter() - started)


async def watch_latency(endpoint: str, count: int, rate: float, run: str) -> list[float]:
    """Milliseconds from SubmitDocument to the delivery on the recipient's WatchInbox."""
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = DocumentServiceStub(channel)
        stream = stub.WatchInbox(
            pb.WatchInboxRequest(), metadata=(("x-lienthong-unit", RECIPIENTS[0]),)
        )

        submitted = asyncio.Event()
        all_seen = asyncio.Event()

        async def read() -> None:
            async for reply in stream:
                seen.setdefault(reply.entry.document.document_id, time.perf_counter())
                if submitted.is_set() and set(sent) <= set(seen):
                    all_seen.set()

        reader = asyncio.create_task(read())
        await asyncio.sleep(0.5)  # the stream is open before the first submit
        for number in range(count):
            at = time.perf_counter()
            reply = await stub.SubmitDocument(
                request(number, run), metadata=(("x-lienthong-unit", SENDER),), timeout=30
            )
            sent[reply.document.document_id] = at
            await asyncio.sleep(max(0.0, 1 / rate - (time.perf_counter() - at)))
        submitted.set()
        if set(sent) <= set(seen):  # the last one arrived while pacing
            all_seen.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_seen.wait(), timeout=120)
        missing = sorted(set(sent) - set(seen))
        if missing:
            print(
                f"WatchInbox: {len(missing)} of {len(sent)} documents not seen in 120 s,"
                f" e.g. {missing[:3]}",
                flush=True,
            )
        stream.cancel()
        reader.cancel()
    return [(seen[doc] - sent[doc]) * 1000 for doc in sent if doc in seen]


@contextlib.contextmanager
def serving(script: list[str]) -> Iterator[str]:
    """Run ``python -c script PORT ARGS...`` until the block ends; yields its endpoint."""
    port = free_port()
    server = subprocess.Popen(  # noqa: S603 - our interpreter, our script
        [sys.executable, "-c", script[0], str(port), *script[1:]],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the {script[0][:40]!r} server did not start")
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait()


def interleaved(
    endpoints: dict[str, str], rounds: list[list[bytes]], concurrency: int
) -> dict[str, list[float]]:
    """Requests/s of each server in each round; a round drives every server in turn, so a
    machine that gets busier or quieter during the run weighs on all of them alike. Every
    round sends new documents (a repeated idempotency key would be a cheaper call)."""
    found: dict[str, list[float]] = {name: [] for name in endpoints}
    for payloads in rounds:
        for name, endpoint in endpoints.items():
            found[name].append(asyncio.run(drive(endpoint, payloads, concurrency)))
    return found


def _drop_database(database: str) -> None:
    from pymongo import MongoClient

    client: MongoClient[dict[str, object]] = MongoClient(MONGO_URL)
    with client:
        client.drop_database(database)


def _wait_for_inbox(database: str, expected: int) -> tuple[int, float]:
    """Wait until the first recipient's inbox holds ``expected`` deliveries (the pipeline has
    caught up), so the latency phase does not queue behind the throughput phase. Returns the
    count and the documents/s the pipeline drained from its first delivery to its last: the
    most it sustains (a steady submit rate above it only grows the backlog)."""
    from pymongo import MongoClient

    with MongoClient(MONGO_URL) as client:
        deliveries = client[database]["deliveries"]
        deadline = time.monotonic() + 600
        first: tuple[int, float] | None = None
        while time.monotonic() < deadline:
            count = deliveries.count_documents({"recipient_code": RECIPIENTS[0]})
            if count and first is None:
                first = (count, time.perf_counter())
            if count >= expected:
                assert first is not None
                elapsed = time.perf_counter() - first[1]
                return count, (count - first[0]) / elapsed if elapsed else 0.0
            time.sleep(1.0)  # a count reads every matching delivery: not more often
    raise TimeoutError(f"only {count} of {expected} deliveries arrived")


# the broadcast's synthetic communes, under a synthetic district of the sample province
BROADCAST_DISTRICT = "000.00.99.H23"


def broadcast_units(count: int) -> list[Unit]:
    district = Unit(
        code=BROADCAST_DISTRICT,
        name="Huyện đo hiệu năng",
        level=UnitLevel.UNIT_LEVEL_DISTRICT,
        parent_code=SENDER,
        active=True,
    )
    return [district] + [
        Unit(
            code=f"B{number:05d}.99.H23",
            name=f"Xã đo hiệu năng {number}",
            level=UnitLevel.UNIT_LEVEL_COMMUNE,
            parent_code=BROADCAST_DISTRICT,
            active=True,
        )
        for number in range(count)
    ]


def _import_units(endpoint: str, units: list[Unit]) -> None:
    with grpc.insecure_channel(endpoint) as channel:
        RoutingServiceStub(channel).ImportRegistry(
            (routing_pb.ImportRegistryRequest(unit=unit) for unit in units),
            metadata=(("x-lienthong-identity", "operator/registry-admin/bench"),),
            timeout=600,  # 3,000 units took over 120 s at a load average of 40
        )


def _broadcast_once(
    endpoint: str, database: str, recipients: int, number: int, run: str, topics: list[str]
) -> float:
    """Seconds from SubmitDocument returning to every commune of the synthetic district
    holding the delivery.

    Polling a count of the document's deliveries would read them all each time (about 2 s
    for 3,000 on FerretDB under load: the probe itself loaded the store and lagged by that
    much). Instead the routed records are read from the deliveries topic, and only the last
    delivery of each partition is looked up by id: document-service writes a partition's
    deliveries in offset order, so the last one present means the partition is done. One
    count then confirms that every delivery is there (polling goes on if not)."""
    return asyncio.run(_broadcast(endpoint, database, recipients, number, run, topics))


async def _broadcast(
    endpoint: str, database: str, recipients: int, number: int, run: str, topics: list[str]
) -> float:
    from aiokafka import AIOKafkaConsumer
    from pymongo import AsyncMongoClient

    from lienthong.events.v1.events_pb2 import DeliveryCreated
    from lienthong_kit.envelope import carries, decode_envelope, unpack

    message = request(number, run)
    message.recipients.Clear()
    message.recipients.scopes.add(
        ancestor_code=BROADCAST_DISTRICT, level=UnitLevel.UNIT_LEVEL_COMMUNE
    )
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers="127.0.0.1:9092", auto_offset_reset="latest", group_id=None
    )
    await consumer.start()
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(MONGO_URL)
    try:
        # the first metadata answer assigns the partitions; aiokafka has no public wait for it
        while not consumer.assignment():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        for tp in consumer.assignment():
            await consumer.position(tp)  # from here: before the submit
        deliveries = client[database]["deliveries"]
        async with grpc.aio.insecure_channel(endpoint) as channel:
            reply = await DocumentServiceStub(channel).SubmitDocument(
                message, metadata=(("x-lienthong-unit", SENDER),), timeout=30
            )
        returned = time.perf_counter()
        document_id = reply.document.document_id
        last: dict[tuple[str, int], str] = {}  # partition -> its last delivery id so far
        routed = 0
        deadline = returned + 600
        while routed < recipients:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"broadcast {number}: {routed} of {recipients} routed")
            for records in (await consumer.getmany(timeout_ms=100)).values():
                for record in records:
                    envelope = decode_envelope(record.value)
                    if carries(envelope, DeliveryCreated):
                        created = unpack(envelope, DeliveryCreated)
                        if created.document.document_id == document_id:
                            last[record.topic, record.partition] = created.delivery_id
                            routed += 1
        waiting = set(last.values())
        query = {"document_id": document_id, "bounced": False}
        while time.perf_counter() < deadline:
            for delivery in list(waiting):
                if await deliveries.find_one({"_id": delivery}, {"_id": 1}) is not None:
                    waiting.discard(delivery)
            if not waiting:
                done = time.perf_counter()
                if await deliveries.count_documents(query) >= recipients:
                    return done - returned
            await asyncio.sleep(0.02)
        raise TimeoutError(f"broadcast {number}: not in every inbox within 600 s")
    finally:
        await consumer.stop()
        await client.close()


def _grouped_insert_ceiling(database: str, count: int, batch: int = 200) -> float:
    """Documents/s the store takes in ``insert_many`` batches of one poll, delivery-sized."""
    from bson import Binary
    from pymongo import MongoClient

    summary = Binary(request(0, "ceiling").SerializeToString())
    with MongoClient(MONGO_URL) as client:
        collection = client[database][f"ceiling_{uuid.uuid4().hex[:8]}"]
        rows = [
            {"_id": str(uuid.uuid4()), "recipient_code": f"B{n:05d}", "summary": summary}
            for n in range(count)
        ]
        started = time.perf_counter()
        for at in range(0, count, batch):
            collection.insert_many(rows[at : at + batch], ordered=False)
        rate = count / (time.perf_counter() - started)
        collection.drop()
    return rate


def broadcasts(
    platform: Platform, recipients: int, count: int, run: str
) -> tuple[list[float], list[float]]:
    """Seconds from SubmitDocument to every inbox, per broadcast, with the store's ceiling."""
    # the sample province first (the sender), as an operator: the registry is empty or not
    _import_units(
        platform.endpoint("routing-service"), sample_units() + broadcast_units(recipients)
    )
    database = f"bench{run}_lienthong_document"
    endpoint = platform.endpoint("document-service")
    topics = Topics(f"bench{run}_").all_deliveries  # the bench's document is urgent
    _broadcast_once(endpoint, database, recipients, 0, "bw" + run[:5], topics)  # warm-up
    seconds: list[float] = []
    ceilings: list[float] = []
    for number in range(count):
        seconds.append(
            _broadcast_once(endpoint, database, recipients, number + 1, "b" + run[:5], topics)
        )
        ceilings.append(_grouped_insert_ceiling(database, recipients))
        print(
            f"  broadcast {number + 1}: {seconds[-1]:.2f} s, ceiling {ceilings[-1]:.0f}/s",
            flush=True,
        )
    return seconds, ceilings


def print_broadcasts(recipients: int, seconds: list[float], ceilings: list[float]) -> None:
    rates = [recipients / value for value in seconds]
    ceiling = statistics.median(ceilings)
    print(
        f"broadcast             {recipients} recipients in every inbox within"
        f" p50 {statistics.median(seconds):.2f} s, p99 {percentile(seconds, 0.99):.2f} s"
        f"  ({len(seconds)} broadcasts; each {', '.join(f'{v:.2f}' for v in seconds)} s;"
        " target p99 <= 3 s)"
    )
    print(
        f"broadcast rate        {statistics.median(rates):8.1f} deliveries/s"
        f"  (median; each {', '.join(f'{v:.0f}' for v in rates)})"
    )
    print(
        f"grouped-insert ceiling {ceiling:7.1f} documents/s  (insert_many of 200, delivery-sized;"
        f" each {', '.join(f'{v:.0f}' for v in ceilings)})"
    )
    print(
        f"of the ceiling        {statistics.median(rates) / ceiling:8.3f}"
        "        (two records per delivery: 0.5 is the store's limit)"
    )


def print_load() -> None:
    one, five, fifteen = os.getloadavg()
    print(f"load average          {one:.1f} {five:.1f} {fifteen:.1f}  ({os.cpu_count()} cores)")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="per server and round")
    parser.add_argument("--rounds", type=int, default=3, help="medians are compared")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument(
        "--latency-rate",
        type=float,
        default=0.0,
        help="submits per second (default: half the sustainable rate measured by the drain)",
    )
    parser.add_argument("--broadcast", type=int, default=3000, help="recipients per broadcast")
    parser.add_argument("--broadcasts", type=int, default=5, help="the p99 is over these")
    parser.add_argument(
        "--broadcast-only", action="store_true", help="measure the broadcast figure alone"
    )
    parser.add_argument(
        "--ratio-only",
        action="store_true",
        help="measure SubmitDocument against the echo and the insert-only ceiling alone",
    )
    args = parser.parse_args()
    if args.broadcast_only:
        return broadcast_only(args.broadcast, args.broadcasts)

    run = uuid.uuid4().hex[:8]
    warmup = [request(n, "w" + run).SerializeToString() for n in range(200)]
    # the round's tag leads: the notation (run[:6]) differs per round, or the same numbers
    # would be refused as already issued
    rounds = [
        [request(n, f"{r}{run}").SerializeToString() for n in range(args.requests)]
        for r in range(args.rounds)
    ]
    database = f"bench{run}_insert_only"

    with tempfile.TemporaryDirectory() as logs:
        platform = Platform.empty(log_dir=Path(logs), prefix=f"bench{run}_")
        try:
            with (
                serving([ECHO_SERVER]) as echo,
                serving([INSERT_ONLY_SERVER, MONGO_URL, database]) as ceiling,
            ):
                # callers must be registered units: the registry is imported first, and
                # routing-service stopped again so that only document-service is measured
                platform.launch("routing-service")
                platform.wait_serving(120, names=("routing-service",))
                _import_units(platform.endpoint("routing-service"), sample_units())
                platform.stop("routing-service")
                # document-service also relays to Kafka and keeps its audit chain meanwhile;
                # the pipeline downstream of it starts afterwards and catches up
                document = platform.launch("document-service")
                platform.wait_serving(120, names=("document-service",))
                endpoints = {"echo": echo, "ceiling": ceiling, "submit": document.endpoint}
                for endpoint in endpoints.values():
                    asyncio.run(drive(endpoint, warmup, args.concurrency))
                measured = interleaved(endpoints, rounds, args.concurrency)
            if args.ratio_only:
                print_ratios(measured, args.rounds, args.requests, args.concurrency)
                print_load()
                return 0
            started = time.perf_counter()
            platform.launch("routing-service")
            platform.launch("signature-service")
            platform.wait_serving(120, names=("routing-service", "signature-service"))
            expected = len(warmup) + args.requests * args.rounds
            deliveries, sustained = _wait_for_inbox(f"bench{run}_lienthong_document", expected)
            drained = time.perf_counter() - started
            latency_rate = args.latency_rate or max(1.0, sustained / 2)
            latencies = asyncio.run(
                watch_latency(document.endpoint, args.latency_samples, latency_rate, "l" + run[:5])
            )
            seconds, ceilings = broadcasts(platform, args.broadcast, args.broadcasts, run)
        finally:
            platform.stop_all()
            _drop_database(database)
            remove_namespace(f"bench{run}_", kafka="127.0.0.1:9092", mongo=MONGO_URL)

    print_ratios(measured, args.rounds, args.requests, args.concurrency)
    print(
        f"end to end            {deliveries * len(RECIPIENTS) / drained:8.1f} deliveries/s"
        f"  ({expected} documents routed to both inboxes in {drained:.1f} s from a standing start)"
    )
    print(
        f"sustainable rate      {sustained:8.1f} documents/s  (the drain's, first delivery to"
        " last: submits beyond it only queue)"
    )
    print(
        f"submit -> WatchInbox  p50 {statistics.median(latencies):.1f} ms,"
        f" p99 {percentile(latencies, 0.99):.1f} ms"
        f"  ({len(latencies)} documents at {latency_rate:.0f}/s,"
        f" {latency_rate / max(sustained, 1):.2f}"
        " of the sustainable rate, through signature and routing; target p99 <= 100 ms)"
    )
    print_broadcasts(args.broadcast, seconds, ceilings)
    print_load()
    return 0


def print_ratios(
    measured: dict[str, list[float]], rounds: int, requests: int, concurrency: int
) -> None:
    submit_rps, echo_rps, ceiling_rps = (
        statistics.median(measured[name]) for name in ("submit", "echo", "ceiling")
    )

    def each(name: str) -> str:
        return ", ".join(f"{value:.0f}" for value in measured[name])

    setup = f"median of {rounds} rounds of {requests}, concurrency {concurrency}"
    print(f"SubmitDocument        {submit_rps:8.1f} req/s  ({setup}; rounds {each('submit')})")
    print(
        f"bare grpc.aio echo    {echo_rps:8.1f} req/s  (same payload, client and concurrency;"
        f" rounds {each('echo')})"
    )
    print(
        f"insert-only ceiling   {ceiling_rps:8.1f} req/s  (gRPC + one grouped insert;"
        f" rounds {each('ceiling')})"
    )
    print(f"ratio                 {submit_rps / echo_rps:8.3f}       (target >= 0.30)")
    per_round = zip(measured["submit"], measured["echo"], strict=True)
    print(f"ratio per round       {', '.join(f'{s / e:.3f}' for s, e in per_round)}")
    print(
        f"ceiling / echo        {ceiling_rps / echo_rps:8.2f}        (the best this store allows)"
    )
    print(f"of the ceiling        {submit_rps / ceiling_rps:8.2f}")


def broadcast_only(recipients: int, count: int) -> int:
    run = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as logs:
        platform = Platform.empty(log_dir=Path(logs), prefix=f"bench{run}_")
        try:
            for name in ("document-service", "routing-service", "signature-service"):
                platform.launch(name)
            platform.wait_serving(  # minutes, not seconds, at a load average of 40
                300, names=("document-service", "routing-service", "signature-service")
            )
            seconds, ceilings = broadcasts(platform, recipients, count, run)
        finally:
            platform.stop_all()
            remove_namespace(f"bench{run}_", kafka="127.0.0.1:9092", mongo=MONGO_URL)
    print_broadcasts(recipients, seconds, ceilings)
    print_load()
    return 0


if __name__ == "__main__":
    sys.exit(main())
