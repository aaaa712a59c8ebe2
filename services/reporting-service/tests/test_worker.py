"""The reporting worker as a process on the real broker: exact counts under duplicates, a
poison record, and a SIGKILL in the middle of folding."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from google.protobuf.message import Message

from lienthong.common.v1.common_pb2 import DocumentSummary, UnitLevel
from lienthong.events.v1.events_pb2 import (
    DeliveryCreated,
    DeliveryStatusChanged,
    DocumentSubmitted,
    DocumentVerified,
    PaperDocumentRegistered,
    UnitChanged,
)
from lienthong.reporting.v1 import reporting_service_pb2 as pb
from lienthong.reporting.v1.reporting_service_pb2_grpc import ReportingServiceStub
from lienthong.routing.v1.routing_service_pb2 import Unit
from lienthong_kit.envelope import EventEnvelope, new_event
from lienthong_kit.kafka import Topics
from lienthong_local.platform import KafkaTlsListener, Platform, ServiceProcess
from lienthong_testing.callers import OBSERVER, with_default_identity
from lienthong_testing.waiting import eventually_sync

KAFKA = "127.0.0.1:9092"
PROVINCE, DEPARTMENT, DISTRICT, COMMUNE = (
    "000.00.00.H99",
    "000.01.00.H99",
    "000.00.31.H99",
    "000.01.31.H99",
)
DAY = datetime(2026, 4, 15, 2, 0, tzinfo=UTC)  # 09:00 in Vietnam
Record = tuple[str, str, bytes]


@pytest.fixture
def platform(infra: None, prefix: str, tmp_path: Path) -> Iterator[Platform]:
    running = Platform.empty(log_dir=tmp_path, prefix=prefix)
    try:
        yield running
    finally:
        running.stop_all()


def launch(platform: Platform, ports: tuple[int, int] = (0, 0)) -> ServiceProcess:
    service = platform.launch("reporting-service", *ports)
    platform.wait_serving(90, names=("reporting-service",))
    return service


def publish(records: list[Record], *, chunk: int = 0, pause: float = 0.0) -> None:
    """Send ``records`` (with ``chunk``, that many at a time, ``pause`` seconds apart)."""

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=KAFKA, acks="all", linger_ms=5)
        await producer.start()
        try:
            step = chunk or len(records) or 1
            for start in range(0, len(records), step):
                futures = [
                    await producer.send(t, key=k.encode(), value=v)
                    for t, k, v in records[start : start + step]
                ]
                await asyncio.gather(*futures)
                await asyncio.sleep(pause)
        finally:
            await producer.stop()

    asyncio.run(send())


def dead_letters(topic: str, expected: int) -> list[tuple[bytes, dict[str, bytes]]]:
    """The dead-letter topic's records (value, headers), read until ``expected`` are there or
    30 s have passed (the worker writes them asynchronously)."""

    async def read() -> list[tuple[bytes, dict[str, bytes]]]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=KAFKA, auto_offset_reset="earliest")
        await consumer.start()
        found: list[tuple[bytes, dict[str, bytes]]] = []
        try:
            deadline = asyncio.get_running_loop().time() + 30
            while len(found) < expected and asyncio.get_running_loop().time() < deadline:
                batches = await consumer.getmany(timeout_ms=500)
                found += [
                    (r.value, dict(r.headers))
                    for batch in batches.values()
                    for r in batch
                    if r.value is not None
                ]
            batches = await consumer.getmany(timeout_ms=500)  # and nothing more behind them
            found += [(r.value, dict(r.headers)) for b in batches.values() for r in b if r.value]
            return found
        finally:
            await consumer.stop()

    return asyncio.run(read())


def report(service: ServiceProcess, period: str, **scope: object) -> list[pb.AdoptionRow]:
    with with_default_identity(grpc.insecure_channel(service.endpoint), OBSERVER) as channel:
        reply = ReportingServiceStub(channel).GetAdoptionReport(
            pb.GetAdoptionReportRequest(period=period, scope=pb.AdoptionScope(**scope)),
            timeout=10,
        )
    return list(reply.rows)


def report_when_ready(
    service: ServiceProcess, period: str, **scope: object
) -> list[pb.AdoptionRow]:
    def attempt() -> list[pb.AdoptionRow] | None:
        try:
            return report(service, period, **scope)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.UNAVAILABLE:  # rebuilding after a start
                return None
            raise

    rows = eventually_sync(attempt, until=lambda rows: rows is not None, timeout=90)
    assert rows is not None
    return rows


def envelope_record(topic: str, key: str, envelope: EventEnvelope) -> Record:
    return topic, key, envelope.SerializeToString()


def event(topic: str, key: str, payload: Message, at: datetime = DAY) -> Record:
    return envelope_record(topic, key, new_event(payload, producer="test", occurred_at=at))


def registry_records(topics: Topics) -> list[Record]:
    units = [
        (PROVINCE, UnitLevel.UNIT_LEVEL_PROVINCE, ""),
        (DEPARTMENT, UnitLevel.UNIT_LEVEL_DEPARTMENT, PROVINCE),
        (DISTRICT, UnitLevel.UNIT_LEVEL_DISTRICT, PROVINCE),
        (COMMUNE, UnitLevel.UNIT_LEVEL_COMMUNE, DISTRICT),
    ]
    return [
        event(
            topics.units,
            code,
            UnitChanged(
                unit=Unit(code=code, level=level, parent_code=parent, active=True), revision=1
            ),
        )
        for code, level, parent in units
    ]


def lifecycle_records(topics: Topics) -> list[Record]:
    document = DocumentSummary(document_id="d1", sender_code=DEPARTMENT)
    document.submitted_at.FromDatetime(DAY)
    document.due_at.FromDatetime(datetime(2026, 4, 20, tzinfo=UTC))
    incoming = PaperDocumentRegistered(
        paper_document_id="p1", unit_code=COMMUNE, direction="incoming"
    )
    incoming.registered_at.FromDatetime(DAY)
    outgoing = PaperDocumentRegistered(
        paper_document_id="p2", unit_code=PROVINCE, direction="outgoing"
    )
    outgoing.registered_at.FromDatetime(DAY)
    registered = DeliveryStatusChanged(
        delivery_id="v1",
        document=document,
        recipient_code=DISTRICT,
        status_code="03",
        previous_status_code="01",
        reported_code="03",
    )
    registered.delivered_at.FromDatetime(DAY)
    registered.changed_at.FromDatetime(DAY.replace(hour=5))
    done = DeliveryStatusChanged()
    done.CopyFrom(registered)
    done.status_code = done.reported_code = "06"
    done.previous_status_code = "05"
    done.changed_at.FromDatetime(datetime(2026, 4, 17, tzinfo=UTC))
    submitted = DocumentSubmitted(document=document)
    return [
        event(topics.documents, "d1", submitted),
        event(topics.documents, "d1", submitted),  # published again under a new event id
        event(
            topics.deliveries,
            DISTRICT,
            DeliveryCreated(delivery_id="v1", document=document, recipient_code=DISTRICT),
        ),
        event(
            topics.deliveries_urgent,
            COMMUNE,
            DeliveryCreated(delivery_id="v2", document=document, recipient_code=COMMUNE),
        ),
        event(
            topics.verifications,
            "d1",
            DocumentVerified(
                document=document, personal_signature_valid=True, organisation_signature_valid=True
            ),
        ),
        event(topics.documents, "p1", incoming),
        event(topics.documents, "p2", outgoing),
        event(topics.deliveries, DISTRICT, registered),
        event(topics.deliveries, DISTRICT, done),
    ]


def figures(row: pb.AdoptionRow) -> tuple[int, ...]:
    return (
        row.incoming_total,
        row.incoming_over_network,
        row.outgoing_total,
        row.outgoing_over_network,
        row.outgoing_personal_signed,
        row.outgoing_organisation_signed,
        row.units,
        row.units_connected,
        row.units_only_receiving,
        row.deliveries_acknowledged,
        row.acknowledged_same_day,
        row.handled_before_due,
        row.handled_on_due,
        row.handled_after_due,
    )


def test_every_lifecycle_event_counts_once_and_poison_is_dead_lettered(
    platform: Platform, prefix: str
) -> None:
    topics = Topics(prefix)
    service = launch(platform)
    records = lifecycle_records(topics)
    publish(registry_records(topics) + records + records)  # every record delivered twice
    publish([(topics.documents, "x", b"not an envelope")])
    expected = (3, 2, 2, 1, 1, 1, 4, 3, 2, 1, 1, 1, 0, 0)

    rows = eventually_sync(
        lambda: report_when_ready(service, "2026-04"),
        until=lambda rows: figures(rows[0]) == expected,
    )
    whole, province, district, commune = rows
    assert whole.incoming_network_share == pb.Share(numerator=2, denominator=3, display="66.7%")
    assert whole.outgoing_network_share == pb.Share(numerator=1, denominator=2, display="50.0%")
    assert figures(province)[:4] == (0, 0, 2, 1)  # the department's and the committee's
    assert figures(district)[:4] == (1, 1, 0, 0)
    assert figures(commune)[:4] == (2, 1, 0, 0)
    assert [figures(r)[:4] for r in report_when_ready(service, "2026-04-16")] == [(0, 0, 0, 0)] * 4
    assert figures(report_when_ready(service, "2026")[0]) == expected
    [(value, headers)] = dead_letters(Topics.dlq(topics.documents), expected=1)
    assert value == b"not an envelope"
    assert headers["lienthong-source-topic"] == topics.documents.encode()
    assert b"envelope" in headers["lienthong-dlq-reason"].lower()

    # A restart rebuilds the same counts from the changelog; a third copy still counts nothing.
    assert platform.stop("reporting-service", signal.SIGKILL) == -signal.SIGKILL
    service = launch(platform, (service.grpc_port, service.metrics_port))
    assert figures(report_when_ready(service, "2026-04")[0]) == expected
    extra = DeliveryCreated(delivery_id="v3", recipient_code=COMMUNE)
    publish([*records, event(topics.deliveries, COMMUNE, extra)])
    rows = eventually_sync(
        lambda: report_when_ready(service, "2026-04"),
        until=lambda rows: rows[3].incoming_over_network == 2,
    )
    assert figures(rows[0]) == (4, 3, *expected[2:])

    # WatchAdoption: every row first, then only the rows an event changed.
    with with_default_identity(grpc.insecure_channel(service.endpoint), OBSERVER) as channel:
        stub = ReportingServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            next(stub.WatchAdoption(pb.WatchAdoptionRequest(period="April"), timeout=10))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        watch = stub.WatchAdoption(pb.WatchAdoptionRequest(period="2026-04"), timeout=120)
        first = next(watch)
        assert [figures(row)[:2] for row in first.rows] == [(4, 3), (0, 0), (1, 1), (3, 2)]
        later = DeliveryCreated(delivery_id="v4", recipient_code=DISTRICT)
        publish([event(topics.deliveries, DISTRICT, later)])
        changed = next(watch)
        watch.cancel()
    assert [(row.kind, row.level, figures(row)[:2]) for row in changed.rows] == [
        (pb.RowKind.ROW_KIND_SCOPE, pb.ReportLevel.REPORT_LEVEL_UNSPECIFIED, (5, 4)),
        (pb.RowKind.ROW_KIND_LEVEL, pb.ReportLevel.REPORT_LEVEL_DISTRICT, (2, 2)),
    ]


def test_a_worker_killed_while_folding_ends_with_exact_counts(
    platform: Platform, prefix: str
) -> None:
    topics = Topics(prefix)
    service = launch(platform)
    rng = random.Random(7)  # noqa: S311 - reproducible load
    units = [PROVINCE, DEPARTMENT, DISTRICT, COMMUNE]
    expected = dict.fromkeys(units, 0)
    records = registry_records(topics)
    for number in range(3000):
        unit = rng.choice(units)
        expected[unit] += 1
        payload = DeliveryCreated(delivery_id=f"v{number}", recipient_code=unit)
        records.append(event(rng.choice(topics.all_deliveries), unit, payload))
    records += rng.sample(records[4:], 600)  # redelivered copies
    # sent over seconds, so that the kill lands while the worker folds (a fold faster than
    # one publish would otherwise be over before the first count is seen)
    sender = threading.Thread(target=publish, args=(records,), kwargs={"chunk": 100, "pause": 0.1})
    sender.start()

    def whole() -> int:
        return report_when_ready(service, "2026-04")[0].incoming_over_network

    # a tenth counted: several batches folded and their changelog entries written, most of
    # the records still to come
    partial = eventually_sync(whole, until=lambda count: count >= 300, interval=0.01)
    killed = time.monotonic()
    assert platform.stop("reporting-service", signal.SIGKILL) == -signal.SIGKILL
    service = launch(platform, (service.grpc_port, service.metrics_port))
    report_when_ready(service, "2026-04")
    answered_after = time.monotonic() - killed
    sender.join()
    rows = eventually_sync(
        lambda: report_when_ready(service, "2026-04", per_unit=True),
        until=lambda rows: rows[0].incoming_over_network >= 3000,
        timeout=120,
    )
    assert {r.unit_code: r.incoming_over_network for r in rows[4:]} == expected
    assert rows[0].incoming_over_network == 3000
    # the kill landed mid-fold: the restarted worker recovered some facts, not all of them
    recovered = rebuilt_facts(service)[-1]
    assert 0 < recovered < 3000
    print(
        f"killed after {partial} of 3000 deliveries were counted; {recovered} recovered; the"
        f" worker started at once answered {answered_after:.1f} s after the SIGKILL"
    )


def rebuilt_facts(service: ServiceProcess) -> list[int]:
    """The ``facts`` of every ``adoption_counts_rebuilt`` line in the worker's log."""
    found = []
    for line in service.log_path.read_text(errors="replace").splitlines():
        if '"adoption_counts_rebuilt"' in line:
            found.append(int(json.loads(line[line.index("{") :])["facts"]))
    return found


def test_a_worker_killed_between_table_write_and_commit_counts_the_event_once(
    platform: Platform, prefix: str
) -> None:
    topics = Topics(prefix)
    doomed = platform.launch(
        "reporting-service", extra_env={"LIENTHONG_FAILPOINTS": "reporting.after_table_write"}
    )
    platform.wait_serving(90, names=("reporting-service",))
    publish([*registry_records(topics), *lifecycle_records(topics)])
    # the first fact written to the table kills the worker before its count, its changelog
    # flush and its offset commit
    assert doomed.process.wait(timeout=120) == -signal.SIGKILL
    service = launch(platform, (doomed.grpc_port, doomed.metrics_port))
    expected = (3, 2, 2, 1, 1, 1, 4, 3, 2, 1, 1, 1, 0, 0)
    rows = eventually_sync(
        lambda: report_when_ready(service, "2026-04"),
        until=lambda rows: figures(rows[0]) == expected,
        timeout=90,
    )
    assert figures(rows[0]) == expected


def test_a_record_faust_skips_is_read_directly_and_counted_once(
    platform: Platform, prefix: str
) -> None:
    """faust may hand the worker offset N+1 of a partition without N (docs/decisions/0601).
    Here the worker skips one record after the first of its partition (the failpoint
    reporting.skip_record; each delivery partition gets about 50): the next record of that
    partition reveals the hole, the worker reads the skipped record itself, and the counts
    come out exact."""
    skip_one_and_count(platform, prefix)


@pytest.fixture
def tls_platform(infra: None, prefix: str, tmp_path: Path) -> Iterator[Platform]:
    listener = KafkaTlsListener.local()
    if listener is None:
        message = "the local Kafka has no TLS listener (infra-down, infra-up)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    running = Platform.empty(log_dir=tmp_path, prefix=prefix, kafka_tls=listener)
    try:
        yield running
    finally:
        running.stop_all()


def test_over_kafka_tls_the_skipped_record_is_read_as_the_service_s_principal(
    tls_platform: Platform, prefix: str
) -> None:
    """The direct read of a skipped record (read_range, outside faust) connects as faust does:
    TLS, User:CN=reporting-service (it once went plaintext to the TLS port, and the worker
    exited on the first hole)."""
    skip_one_and_count(tls_platform, prefix)


def skip_one_and_count(platform: Platform, prefix: str) -> None:
    topics = Topics(prefix)
    service = platform.launch(
        "reporting-service", extra_env={"LIENTHONG_FAILPOINTS": "reporting.skip_record"}
    )
    platform.wait_serving(90, names=("reporting-service",))
    units = [PROVINCE, DEPARTMENT, DISTRICT, COMMUNE]
    records = registry_records(topics)
    for number in range(300):
        payload = DeliveryCreated(delivery_id=f"s{number}", recipient_code=units[number % 4])
        records.append(event(topics.all_deliveries[number % 2], units[number % 4], payload))
    publish(records)
    rows = eventually_sync(
        lambda: report_when_ready(service, "2026-04"),
        until=lambda rows: rows[0].incoming_over_network >= 300,
        timeout=90,
    )
    assert rows[0].incoming_over_network == 300
    log = service.log_path.read_text(errors="replace")
    assert log.count('"faust_skipped_offsets_reading_them"') == 1, "the detour was not taken"
    with urllib.request.urlopen(
        f"http://127.0.0.1:{service.metrics_port}/metrics", timeout=10
    ) as reply:
        metrics = reply.read().decode()
    reread = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("lienthong_adoption_rereads_total{")
    ]
    assert sum(reread) == 1, reread


@pytest.mark.parametrize("kill_first", [True, False], ids=["first-killed", "second-killed"])
def test_a_second_replica_answers_through_a_workers_sigkill_and_ends_exact(
    platform: Platform, prefix: str, tmp_path: Path, kill_first: bool
) -> None:
    """Two replicas in one group: each owns half the partitions and follows the other half's
    changelog as a standby, so each answers the whole report. One (the group's leader, or the
    other) is killed with SIGKILL in the middle of folding; the other keeps answering, takes
    the dead one's partitions over after the session timeout (committed or not) and ends with
    the exact counts. Prints the seconds from the SIGKILL to the next answered report and to
    the exact one (docs/decisions/0603)."""
    topics = Topics(prefix)
    first = launch(platform)
    second = platform.launch(
        "reporting-service", extra_env={"LIENTHONG_REPORTING_DATA_DIR": str(tmp_path / "second")}
    )
    victim, survivor = (first, second) if kill_first else (second, first)
    try:
        platform.wait_serving(90, names=("reporting-service",))
        # both members placed: the second worker's first recovery follows the rebalance
        eventually_sync(lambda: rebuilt_facts(second), until=lambda found: len(found) >= 3)
        rng = random.Random(9)  # noqa: S311 - reproducible load
        units = [PROVINCE, DEPARTMENT, DISTRICT, COMMUNE]
        expected = dict.fromkeys(units, 0)
        records = registry_records(topics)
        for number in range(3000):
            unit = rng.choice(units)
            expected[unit] += 1
            payload = DeliveryCreated(delivery_id=f"f{number}", recipient_code=unit)
            records.append(event(rng.choice(topics.all_deliveries), unit, payload))
        records += rng.sample(records[4:], 600)  # redelivered copies
        publish(records)

        def whole(service: ServiceProcess) -> int:
            return report_when_ready(service, "2026-04")[0].incoming_over_network

        eventually_sync(lambda: whole(victim), until=lambda count: count > 0, interval=0.01)
        victim.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        assert victim.process.wait(timeout=30) == -signal.SIGKILL
        answered = whole(survivor)  # no wait, no retry: the survivor answers at once
        answered_after = time.monotonic() - killed
        try:
            rows = eventually_sync(
                lambda: report(survivor, "2026-04", per_unit=True),
                until=lambda rows: rows[0].incoming_over_network >= 3000,
                timeout=120,
                interval=0.05,
            )
        except TimeoutError:
            survivor.process.send_signal(signal.SIGUSR2)  # faust's state into its log
            time.sleep(2)
            raise
        exact_after = time.monotonic() - killed
        assert {r.unit_code: r.incoming_over_network for r in rows[4:]} == expected
        assert rows[0].incoming_over_network == 3000
        print(
            f"failover: killed the {'first' if kill_first else 'second'} of two replicas; the"
            f" other answered {answered_after:.2f} s"
            f" after the SIGKILL ({answered} counted) and exactly ({rows[0].incoming_over_network})"
            f" {exact_after:.1f} s after it"
        )
    finally:
        # both are "reporting-service" to the platform, which stops only the later one
        for replica in (first, second):
            if replica.process.poll() is None:
                replica.process.kill()
                replica.process.wait()
