"""reporting-service: events folded per second by the faust worker against a plain aiokafka
consumer doing the same aggregation, and the freshness lag (event produced -> visible in the
report).

    make bench      (or: .venv/bin/python benchmarks/bench_reporting.py [--events N] [--probes M])

1. N lifecycle events (deliveries, submissions, paper registrations, verdicts with both
   signatures: the sample province's units) are written to a fresh namespace's topics.
2. The reporting worker (``python -m reporting_service``, a separate process, as deployed)
   folds them: the rate is the facts counted per second between the first and the last one
   becoming visible (its ``lienthong_adoption_facts_total`` counter alone, polled every 0.1 s).
3. Baseline, in the same run on the same records: one aiokafka consumer in this process that
   decodes the same envelopes, derives the same facts (reporting_service.folding), skips
   repeated keys with a Python set and adds them to the same in-memory counts. No changelog,
   no repartition, nothing survives a restart: the floor of the work. Ratio = faust / plain
   (target >= 0.3).
4. faust's own ceiling, in the same run on the same records: a faust app (same loop, same
   settings) whose agent only counts the events it is given, once iterating in the worker's
   batches (``take_events``) and once event by event; the worker is compared with the faster
   of the two. No worker built on faust's stream can fold faster than this; floor / plain is
   the best ratio faust allows on this machine.
5. Freshness: M events, one at a time, each for a unit of its own; the time from the
   producer's acknowledgement to GetAdoptionReport showing it (polled every 5 ms), p50/p99.
6. Failover (docs/decisions/0603): a second replica joins; the first is killed with SIGKILL
   and 60 events (units of their own, every partition) are produced at once; the seconds
   from the SIGKILL to the survivor's next answered report and to the report showing all 60.
   Then the survivor, now alone, is killed and started again at once (as Kubernetes would):
   the same two figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import faust
import grpc
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from lienthong.common.v1.common_pb2 import DocumentSummary
from lienthong.events.v1.events_pb2 import (
    DeliveryCreated,
    DocumentSubmitted,
    DocumentVerified,
    PaperDocumentRegistered,
)
from lienthong.reporting.v1 import reporting_service_pb2 as pb
from lienthong.reporting.v1.reporting_service_pb2_grpc import ReportingServiceStub
from lienthong_kit.envelope import decode_envelope, new_event
from lienthong_kit.kafka import Topics, ensure_topics
from lienthong_kit.settings import KitSettings, load_settings
from lienthong_local.platform import Platform
from lienthong_local.sample import sample_units
from lienthong_testing.callers import OBSERVER
from lienthong_testing.cleanup import remove_namespace
from reporting_service.consumers import BATCH_EVENTS, BATCH_WINDOW
from reporting_service.folding import Counts, facts_for

KAFKA = "127.0.0.1:9092"
TARGET_RATIO = 0.3
POLL = 0.1  # seconds between polls of the worker's counter: its last batch is seen within one
IDLE_POLLS = 40  # 4 s of the worker idle, polled as while it folds


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def lifecycle_events(topics: Topics, count: int) -> list[tuple[str, str, bytes]]:
    rng = random.Random(11)  # noqa: S311 - reproducible load
    units = [unit.code for unit in sample_units()]
    start = datetime.now(UTC) - timedelta(days=20)
    records = []
    for index in range(count):
        moment = start + timedelta(seconds=index * 60)
        unit = rng.choice(units)
        kind = rng.random()
        document = DocumentSummary(document_id=f"d{index}", sender_code=unit)
        document.submitted_at.FromDatetime(moment)
        if kind < 0.6:
            payload: object = DeliveryCreated(delivery_id=f"v{index}", recipient_code=unit)
            topic = topics.deliveries
        elif kind < 0.75:
            payload, topic = DocumentSubmitted(document=document), topics.documents
        elif kind < 0.95:
            payload = PaperDocumentRegistered(
                paper_document_id=f"p{index}", unit_code=unit, direction="incoming"
            )
            payload.registered_at.FromDatetime(moment)
            topic = topics.documents
        else:
            payload = DocumentVerified(
                document=document, personal_signature_valid=True, organisation_signature_valid=True
            )
            topic = topics.verifications
        envelope = new_event(payload, producer="bench", occurred_at=moment)  # type: ignore[arg-type]
        records.append((topic, unit, envelope.SerializeToString()))
    return records


async def produce(records: list[tuple[str, str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, acks="all", linger_ms=20)
    await producer.start()
    try:
        futures = [await producer.send(t, key=k.encode(), value=v) for t, k, v in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def counted(metrics_port: int) -> float:
    # only the counter (prometheus_client's name[] filter): a full scrape costs the worker
    # ~3.5 ms of CPU, four times a second, which faust's ceiling does not pay
    url = f"http://127.0.0.1:{metrics_port}/metrics?name[]=lienthong_adoption_facts_total"
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            body = r.read().decode()
    except OSError:
        return 0.0
    return sum(
        sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == "lienthong_adoption_facts_total" and sample.labels["outcome"] == "counted"
    )


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process, all its threads (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def faust_rate(platform: Platform, facts: int) -> tuple[float, float, float, float]:
    """Facts per second folded by the worker, the seconds it took, the CPU seconds the
    worker used (scaled to all the facts: the first poll may find some counted already) and
    the CPU seconds per second it uses idle, polled the same way (its timers, tails, probes
    and the polls themselves: a load-stretched window holds more of them)."""
    service = platform.launch("reporting-service")
    platform.wait_serving(120, names=("reporting-service",))
    first = last = 0.0
    cpu_first = cpu_last = 0.0
    before = 0.0  # facts already counted at the first poll that saw any: not in the window
    while True:
        value = counted(service.metrics_port)
        now = time.monotonic()
        if value > 0 and not first:
            first, cpu_first, before = now, cpu_seconds(service.process.pid), value
        if value >= facts:
            last, cpu_last = now, cpu_seconds(service.process.pid)
            break
        if service.process.poll() is not None:
            raise RuntimeError(f"reporting-service exited; see {service.log_path}")
        time.sleep(POLL)  # a (filtered) scrape costs the worker under 1 ms of CPU
    idle_from, idle_start = cpu_seconds(service.process.pid), time.monotonic()
    for _ in range(IDLE_POLLS):
        counted(service.metrics_port)
        time.sleep(POLL)
    idle = (cpu_seconds(service.process.pid) - idle_from) / (time.monotonic() - idle_start)
    return (
        (facts - before) / (last - first),
        last - first,
        (cpu_last - cpu_first) * facts / (facts - before),
        idle,
    )


async def plain_rate(topics: Topics, facts: int) -> tuple[float, float]:
    consumer = AIOKafkaConsumer(
        topics.documents,
        *topics.all_deliveries,
        topics.verifications,
        bootstrap_servers=KAFKA,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    counts, seen, applied = Counts(), set[str](), 0
    first = 0.0
    try:
        while applied < facts:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for batch in batches.values():
                for record in batch:
                    if not first:
                        first = time.monotonic()
                    for fact in facts_for(decode_envelope(record.value)):
                        if fact.key not in seen:
                            seen.add(fact.key)
                            counts.add(fact)
                            applied += 1
    finally:
        await consumer.stop()
    elapsed = time.monotonic() - first
    return facts / elapsed, elapsed


def floor_rate(prefix: str, events: int, *, batches: bool) -> tuple[float, float, float]:
    """Events per second through a faust agent that does nothing with them (a subprocess: a
    faust worker owns its process), iterating in the worker's batches or event by event; the
    seconds and the CPU seconds it took."""
    mode = "--floor-batches" if batches else "--floor-worker"
    result = subprocess.run(  # noqa: S603 - our interpreter, this script
        [sys.executable, __file__, mode, prefix, "--events", str(events)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # faust's terminal handling may write escape codes before the line
    lines = [line[line.index("FLOOR ") :] for line in result.stdout.splitlines() if "FLOOR" in line]
    if not lines:
        raise RuntimeError(
            f"the faust floor worker failed ({result.returncode}):\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        )
    rate, seconds, cpu = lines[-1].split()[1:4]
    return float(rate), float(seconds), float(cpu)


def floor_worker(prefix: str, events: int, *, batches: bool) -> None:
    """The faust floor: the worker's app settings, an agent that only counts."""
    topics = Topics(prefix)
    settings = load_settings(KitSettings, {"LIENTHONG_TOPIC_PREFIX": prefix})
    app = faust.App(
        f"{prefix}faust-floor-{'batches' if batches else 'events'}",
        broker=f"kafka://{KAFKA}",
        store="memory://",
        topic_partitions=settings.kafka_partitions,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
    )
    sources = app.topic(topics.documents, *topics.all_deliveries, topics.verifications)
    seen = {"events": 0, "first": 0.0, "cpu": 0.0}

    def counted(number: int) -> None:
        if not seen["first"]:
            seen["first"], seen["cpu"] = time.monotonic(), time.process_time()
        seen["events"] += number
        if seen["events"] >= events:
            elapsed = time.monotonic() - seen["first"]
            cpu = time.process_time() - seen["cpu"]
            print(f"FLOOR {events / elapsed:.1f} {elapsed:.3f} {cpu:.3f}", flush=True)
            os._exit(0)

    async def count(stream: faust.StreamT[bytes]) -> None:
        async for _ in stream.events():
            counted(1)

    async def count_batches(stream: faust.StreamT[bytes]) -> None:
        taken = cast("faust.Stream[bytes]", stream).take_events(BATCH_EVENTS, BATCH_WINDOW)
        async for batch in taken:
            counted(len(batch))

    app.agent(sources, name="floor")(count_batches if batches else count)
    faust.Worker(
        app, loglevel="WARNING", quiet=True, override_logging=False, redirect_stdouts=False
    ).execute_from_commandline()


async def freshness(topics: Topics, endpoint: str, probes: int) -> list[float]:
    lags: list[float] = []
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, acks="all")
    await producer.start()
    try:
        async with grpc.aio.insecure_channel(endpoint) as channel:
            stub = ReportingServiceStub(channel)
            period = datetime.now(UTC).strftime("%Y")
            for index in range(probes):
                unit = f"000.{index % 100:02d}.{index // 100:02d}.B{uuid.uuid4().hex[:2]}"
                envelope = new_event(
                    DeliveryCreated(delivery_id=f"fresh-{index}", recipient_code=unit),
                    producer="bench",
                )
                await producer.send_and_wait(
                    topics.deliveries, envelope.SerializeToString(), key=unit.encode()
                )
                sent = time.monotonic()
                request = pb.GetAdoptionReportRequest(period=period, unit_codes=[unit])
                while True:
                    reply = await stub.GetAdoptionReport(request, metadata=OBSERVER, timeout=10)
                    if reply.rows[0].incoming_over_network == 1:
                        lags.append(time.monotonic() - sent)
                        break
                    await asyncio.sleep(0.005)
    finally:
        await producer.stop()
    return lags


FAILOVER_PROBES = 60


def failover(
    platform: Platform, topics: Topics, logs: Path, *, restart: bool
) -> tuple[float, float]:
    """Seconds from a SIGKILL to the next answered report and to the report showing
    FAILOVER_PROBES events produced just after the kill (units of their own: every partition).
    ``restart``: the only replica is killed and started again at once; otherwise a second
    replica joins first and the first one is killed."""
    name = "reporting-service"
    doomed = platform.processes[name]
    survivor = doomed
    if not restart:
        data = logs / f"second-{uuid.uuid4().hex[:6]}"
        # INFO: its recoveries are logged (the group is stable with both once it has one)
        survivor = platform.launch(
            name,
            extra_env={"LIENTHONG_REPORTING_DATA_DIR": str(data), "LIENTHONG_LOG_LEVEL": "INFO"},
        )
        platform.wait_serving(120, names=(name,))
        deadline = time.monotonic() + 120
        while '"adoption_counts_rebuilt"' not in survivor.log_path.read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise TimeoutError("the second replica never recovered")
            time.sleep(0.2)
    tag = uuid.uuid4().hex[:4]
    units = [f"000.{i // 10:02d}.{i % 10:02d}.F{tag[:2]}" for i in range(FAILOVER_PROBES)]
    doomed.process.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    doomed.process.wait()
    if restart:
        survivor = platform.launch(name, doomed.grpc_port, doomed.metrics_port)
    asyncio.run(
        produce(
            [
                (
                    topics.deliveries,
                    unit,
                    new_event(
                        DeliveryCreated(delivery_id=f"failover-{tag}-{unit}", recipient_code=unit),
                        producer="bench",
                    ).SerializeToString(),
                )
                for unit in units
            ]
        )
    )
    answered = shown = 0.0
    period = datetime.now(UTC).strftime("%Y")
    request = pb.GetAdoptionReportRequest(period=period, unit_codes=units)
    with grpc.insecure_channel(survivor.endpoint) as channel:
        stub = ReportingServiceStub(channel)
        while time.monotonic() - killed < 300:
            try:
                reply = stub.GetAdoptionReport(request, metadata=OBSERVER, timeout=5)
            except grpc.RpcError:
                time.sleep(0.05)
                continue
            now = time.monotonic() - killed
            answered = answered or now
            if sum(row.incoming_over_network for row in reply.rows) >= FAILOVER_PROBES:
                shown = now
                break
            time.sleep(0.05)
    if not shown:
        raise TimeoutError(f"the probes never showed; see {survivor.log_path}")
    return answered, shown


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--floor-worker", metavar="PREFIX", help=argparse.SUPPRESS)
    parser.add_argument("--floor-batches", metavar="PREFIX", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_worker or args.floor_batches:
        floor_worker(
            args.floor_worker or args.floor_batches, args.events, batches=bool(args.floor_batches)
        )
        return
    prefix = f"bench{uuid.uuid4().hex[:8]}_"
    topics = Topics(prefix)
    settings = load_settings(KitSettings, {"LIENTHONG_TOPIC_PREFIX": prefix})
    records = lifecycle_events(topics, args.events)
    facts = sum(len(facts_for(decode_envelope(value))) for _, _, value in records)
    with tempfile.TemporaryDirectory() as logs:
        platform = Platform.empty(
            log_dir=Path(logs), prefix=prefix, extra_env={"LIENTHONG_LOG_LEVEL": "WARNING"}
        )
        try:
            asyncio.run(ensure_topics(settings, topics.all(), compacted=topics.compacted()))
            asyncio.run(produce(records))
            faust, faust_seconds, faust_cpu, idle_cpu = faust_rate(platform, facts)
            plain, plain_seconds = asyncio.run(plain_rate(topics, facts))
            floor_b, floor_b_seconds, floor_b_cpu = floor_rate(prefix, args.events, batches=True)
            floor_e, floor_e_seconds, floor_e_cpu = floor_rate(prefix, args.events, batches=False)
            endpoint = platform.endpoint("reporting-service")
            lags = asyncio.run(freshness(topics, endpoint, args.probes))
            takeover = failover(platform, topics, Path(logs), restart=False)
            restart = failover(platform, topics, Path(logs), restart=True)
        finally:
            platform.stop_all()
            remove_namespace(prefix, kafka=KAFKA, mongo=settings.mongo_url)
    ratio = faust / plain
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(f"bench_reporting: {args.events} events -> {facts} facts, {os.cpu_count()} cores")
    print(
        f"  faust worker (agent + facts table):      {faust:8.0f} facts/s ({faust_seconds:.1f} s)"
    )
    print(f"  baseline: plain aiokafka, same folding: {plain:8.0f} facts/s ({plain_seconds:.1f} s)")
    floor = max(floor_b, floor_e)
    print(
        f"  faust's ceiling: an agent that only iterates: {floor_b:8.0f} events/s in the"
        f" worker's batches ({floor_b_seconds:.1f} s), {floor_e:.0f} event by event"
        f" ({floor_e_seconds:.1f} s); ratio {floor / plain:.2f} to the baseline"
    )
    print(f"  ratio faust / plain: {ratio:.2f} ({verdict} the target >= {TARGET_RATIO})")
    print(f"  the worker reaches {faust / floor:.2f} of faust's ceiling")
    # CPU per event depends less on how much of a core other processes leave (loaded runs)
    worker_us = faust_cpu / args.events * 1e6
    net_us = (faust_cpu - idle_cpu * faust_seconds) / args.events * 1e6
    floor_b_us, floor_e_us = (cpu / args.events * 1e6 for cpu in (floor_b_cpu, floor_e_cpu))
    floor_us = min(floor_b_us, floor_e_us)
    print(
        f"  CPU per event: the worker {worker_us:.0f} us ({net_us:.0f} us without its idle"
        f" {idle_cpu * 1000:.0f} ms/s), faust's ceiling {floor_b_us:.0f} us in the worker's"
        f" batches, {floor_e_us:.0f} us event by event; the worker reaches"
        f" {floor_us / worker_us:.2f} ({floor_us / net_us:.2f}) of the ceiling's events per"
        " CPU second"
    )
    print(
        f"  freshness (produced -> visible in GetAdoptionReport), {len(lags)} events: "
        f"p50 {percentile(lags, 0.5) * 1000:.0f} ms, p99 {percentile(lags, 0.99) * 1000:.0f} ms, "
        f"mean {statistics.fmean(lags) * 1000:.0f} ms"
    )
    print(
        f"  failover, one of two replicas killed (SIGKILL): the other answers after"
        f" {takeover[0]:.2f} s, shows {FAILOVER_PROBES} events produced after the kill"
        f" {takeover[1]:.1f} s after it"
    )
    print(
        f"  failover, the only replica killed and started again at once: answers after"
        f" {restart[0]:.1f} s, shows {FAILOVER_PROBES} new events {restart[1]:.1f} s after the kill"
    )


if __name__ == "__main__":
    main()
