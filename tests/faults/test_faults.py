"""The fault harness: a steady load with a ledger of every acknowledged call, and a SIGKILL of
each service process under it (restarted at once, as a supervisor would); then the ledger is
checked against what the platform shows: every acknowledged submission in every inbox exactly
once, every acknowledgement in the sender's track, the report equal to the ledger, every
delivery notified in-app exactly once, and the audit chain intact.

The short round (one kill per service, a small load) runs in the test suite, on the shared
infrastructure. ``make faults`` sets LIENTHONG_FAULTS=full: several kills per service, a longer
load, and kill -9 of the Kafka broker, FerretDB and PostgreSQL, each restarted with
deploy/local/infra.sh up. LIENTHONG_FAULTS=infra runs only those three. Both start a private
infrastructure of their own (a data folder and free ports; the Kafka jars and the FerretDB
binary shared with deploy/local/.data) and stop it afterwards, so the kills never touch the
infrastructure other suites on the machine use.

Besides the ledger, the harness checks what the faults must not cause: an answer INTERNAL,
UNKNOWN or a refusal of a known caller (an outage is UNAVAILABLE, retryable), and a consumer
that does not resume by itself (every acknowledged submission must reach the inboxes
afterwards, without a restart).
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from lienthong.document.v1 import document_service_pb2 as doc_pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.notification.v1 import notification_service_pb2 as note_pb
from lienthong.notification.v1.notification_service_pb2_grpc import NotificationServiceStub
from lienthong.reporting.v1 import reporting_service_pb2 as rep_pb
from lienthong.reporting.v1.reporting_service_pb2_grpc import ReportingServiceStub
from lienthong.routing.v1 import routing_service_pb2 as routing_pb
from lienthong.routing.v1.routing_service_pb2_grpc import RoutingServiceStub
from lienthong_local.platform import SERVICES, Platform, free_port
from lienthong_local.sample import sample_units
from lienthong_testing.callers import OBSERVER, REGISTRY_ADMIN, as_unit
from lienthong_testing.cleanup import remove_namespace
from lienthong_testing.waiting import eventually_sync

pytestmark = pytest.mark.e2e

MODE = os.environ.get("LIENTHONG_FAULTS", "")
FULL = MODE == "full"
INFRA_FAULTS = MODE in ("full", "infra")
ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "deploy" / "local" / "infra.sh"
SHARED_DATA = ROOT / "deploy" / "local" / ".data"
SHARED_KAFKA = "127.0.0.1:9092"
SHARED_MONGO = "mongodb://127.0.0.1:27017"
SENDER = "000.00.00.H23"
RECIPIENTS = ["000.01.00.H23", "000.00.31.H23"]
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


@dataclass
class Ledger:
    """Every call the platform acknowledged (OK), with when; and every unexpected answer."""

    submitted: dict[str, float] = field(default_factory=dict)  # document id -> when
    acknowledged: dict[str, tuple[str, str, float]] = field(default_factory=dict)
    papers: dict[str, float] = field(default_factory=dict)  # idempotency key -> when
    unresolved: int = 0  # calls never acknowledged despite retries (not in the ledger)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def times(self) -> list[float]:
        with self.lock:
            return sorted(
                [*self.submitted.values(), *self.papers.values()]
                + [when for _, _, when in self.acknowledged.values()]
            )


def retrying(ledger: Ledger, call: Callable[[], object], give_up: float = 120.0) -> object:
    """Call until acknowledged; a retryable failure is retried with the same request (same
    idempotency key), anything else is recorded and ends the attempt."""
    deadline = time.monotonic() + give_up
    while time.monotonic() < deadline:
        try:
            return call()
        except grpc.RpcError as exc:
            code = exc.code()
            if code not in RETRYABLE:
                with ledger.lock:
                    ledger.errors[f"{code.name}: {exc.details()}"[:200]] += 1
                return None
            time.sleep(0.2)
    with ledger.lock:
        ledger.unresolved += 1
    return None


class Load:
    """Three client threads: submissions, acknowledgements of what arrived, paper documents."""

    def __init__(self, platform: Platform, ledger: Ledger, pace: float) -> None:
        self.platform = platform
        self.ledger = ledger
        self.pace = pace
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._loop, args=(step,), daemon=True)
            for step in (self._submit, self._acknowledge, self._paper)
        ]
        self.run = uuid.uuid4().hex[:6]
        self.count = 0

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(180)

    def _loop(self, step: Callable[[grpc.Channel], None]) -> None:
        while not self.stopping.is_set():
            with grpc.insecure_channel(self.platform.endpoint("document-service")) as channel:
                step(channel)
            self.stopping.wait(self.pace)

    def _submit(self, channel: grpc.Channel) -> None:
        self.count += 1
        request = doc_pb.SubmitDocumentRequest(
            idempotency_key=f"fault-{self.run}-{self.count}",
            recipients={"unit_codes": RECIPIENTS},
            code={"number": str(self.count), "notation": "TB-UBND"},
            subject="Thông báo (fault harness)",
            promulgation_date="2026-11-20",
        )
        reply = retrying(
            self.ledger,
            lambda: DocumentServiceStub(channel).SubmitDocument(
                request, metadata=as_unit(SENDER), timeout=10
            ),
        )
        if isinstance(reply, doc_pb.SubmitDocumentResponse):
            with self.ledger.lock:
                self.ledger.submitted[reply.document.document_id] = time.monotonic()

    def _acknowledge(self, channel: grpc.Channel) -> None:
        unit = RECIPIENTS[0]
        try:
            page = DocumentServiceStub(channel).ListInbox(
                doc_pb.ListInboxRequest(page_size=20, status_codes=["01"]),
                metadata=as_unit(unit),
                timeout=10,
            )
        except grpc.RpcError as exc:
            if exc.code() not in RETRYABLE:
                with self.ledger.lock:
                    self.ledger.errors[f"{exc.code().name}: {exc.details()}"[:200]] += 1
            return
        for entry in page.entries[:5]:
            request = doc_pb.AcknowledgeDeliveryRequest(
                delivery_id=entry.delivery_id,
                status_code="03",
                staff="harness",
                # a retry after a lost answer must not be refused as a move from 03 to 03
                idempotency_key=f"ack-{entry.delivery_id}",
            )
            reply = retrying(
                self.ledger,
                lambda request=request: DocumentServiceStub(channel).AcknowledgeDelivery(
                    request, metadata=as_unit(unit), timeout=10
                ),
            )
            if reply is not None:
                with self.ledger.lock:
                    self.ledger.acknowledged[entry.delivery_id] = (
                        entry.document.document_id,
                        unit,
                        time.monotonic(),
                    )

    def _paper(self, channel: grpc.Channel) -> None:
        key = f"paper-{self.run}-{uuid.uuid4().hex[:8]}"
        request = doc_pb.RegisterPaperDocumentRequest(
            idempotency_key=key,
            direction=doc_pb.DIRECTION_INCOMING,
            counterpart="Công ty TNHH Ví Dụ",
            code={"number": "7", "notation": "CV"},
            subject="Đơn đề nghị (giấy)",
            promulgation_date="2026-11-20",
        )
        reply = retrying(
            self.ledger,
            lambda: DocumentServiceStub(channel).RegisterPaperDocument(
                request, metadata=as_unit(RECIPIENTS[1]), timeout=10
            ),
        )
        if reply is not None:
            with self.ledger.lock:
                self.ledger.papers[key] = time.monotonic()


@dataclass
class Fault:
    name: str
    started: float
    recovered: float | None = None


def kill_service(platform: Platform, name: str) -> None:
    service = platform.processes[name]
    assert platform.stop(name, signal.SIGKILL) == -signal.SIGKILL
    platform.launch(name, service.grpc_port, service.metrics_port)
    platform.wait_serving(180, names=(name,))


@dataclass
class PrivateInfra:
    """A broker, FerretDB and PostgreSQL of the harness's own (infra.sh with its own data
    folder and ports), which it may kill without disturbing anyone."""

    data: Path
    ports: dict[str, int]

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "LIENTHONG_DATA_DIR": str(self.data),
            "LIENTHONG_KAFKA_PORT": str(self.ports["kafka"]),
            "LIENTHONG_KAFKA_CONTROLLER_PORT": str(self.ports["controller"]),
            "LIENTHONG_KAFKA_TLS_PORT": "off",
            "LIENTHONG_MONGO_PORT": str(self.ports["mongo"]),
            "LIENTHONG_PG_PORT": str(self.ports["pg"]),
            "KAFKA_HEAP": "384m",
        }

    @property
    def kafka(self) -> str:
        return f"127.0.0.1:{self.ports['kafka']}"

    @property
    def mongo(self) -> str:
        return f"mongodb://127.0.0.1:{self.ports['mongo']}"

    def run(self, command: str, attempts: int = 1) -> str:
        """``infra.sh command``; retried (a killed PostgreSQL's backends may hold its shared
        memory for a moment, and the new server refuses to start until they are gone)."""
        for attempt in range(1, attempts + 1):
            done = subprocess.run(
                [str(INFRA), command],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if done.returncode == 0:
                return done.stdout
            if attempt == attempts:
                raise RuntimeError(f"infra.sh {command}: {done.stdout}\n{done.stderr}")
            time.sleep(3)
        return ""

    def pidfile(self, component: str) -> Path:
        if component == "postgresql":
            folder = self.run("status").rsplit("data in ", 1)[1].strip()
            return Path(folder) / "postmaster.pid"
        return self.data / {"kafka broker": "kafka", "ferretdb": "ferretdb"}[component] / "pid"

    def kill(self, component: str) -> None:
        """kill -9 of one component, then infra.sh up restarts what is missing."""
        pid = int(self.pidfile(component).read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        time.sleep(2)  # the outage: clients meet it before the restart
        self.run("up", attempts=10)


def private_infra(data: Path) -> PrivateInfra:
    for shared in ("kafka-libs", "bin"):  # resolved and built once, by the shared install
        (data / shared).symlink_to(SHARED_DATA / shared)
    return PrivateInfra(
        data, {name: free_port() for name in ("kafka", "controller", "mongo", "pg")}
    )


def inbox_ids(platform: Platform, unit: str) -> list[str]:
    ids: list[str] = []
    token = ""
    with grpc.insecure_channel(platform.endpoint("document-service")) as channel:
        while True:
            page = DocumentServiceStub(channel).ListInbox(
                doc_pb.ListInboxRequest(page_size=200, page_token=token),
                metadata=as_unit(unit),
                timeout=30,
            )
            ids += [entry.document.document_id for entry in page.entries]
            token = page.next_page_token
            if not token:
                return ids


def track(platform: Platform, document_id: str) -> dict[str, str]:
    with grpc.insecure_channel(platform.endpoint("document-service")) as channel:
        reply = DocumentServiceStub(channel).TrackDocument(
            doc_pb.TrackDocumentRequest(document_id=document_id),
            metadata=as_unit(SENDER),
            timeout=30,
        )
    return {r.recipient_code: r.status_code for r in reply.recipients}


def report(platform: Platform, period: str) -> dict[str, rep_pb.AdoptionRow]:
    with grpc.insecure_channel(platform.endpoint("reporting-service")) as channel:
        reply = ReportingServiceStub(channel).GetAdoptionReport(
            rep_pb.GetAdoptionReportRequest(period=period, unit_codes=[SENDER, *RECIPIENTS]),
            metadata=OBSERVER,
            timeout=30,
        )
    return {row.unit_code: row for row in reply.rows}


def recovery_seconds(times: list[float], fault: Fault, window: float = 3.0) -> float | None:
    """Seconds from the fault until the acknowledged-call rate over ``window`` is back to 90% of
    the rate over the 10 s before it."""
    before = [t for t in times if fault.started - 10 <= t < fault.started]
    baseline = len(before) / 10
    if baseline == 0:
        return None
    moment = fault.started
    while moment + window <= (times[-1] if times else fault.started):
        rate = len([t for t in times if moment <= t < moment + window]) / window
        if rate >= 0.9 * baseline:
            return round(moment - fault.started, 1)
        moment += 0.5
    return None


@pytest.fixture
def where(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrivateInfra | None]:
    """The private infrastructure when the broker or the store are killed, else None (the
    shared one)."""
    if not INFRA_FAULTS:
        request.getfixturevalue("infra")
        yield None
        return
    infra = private_infra(tmp_path_factory.mktemp("fault-infra"))
    try:
        infra.run("up")
        yield infra
    finally:
        infra.run("purge")  # stops it and deletes its data (PostgreSQL's included)


@pytest.fixture
def fault_platform(where: PrivateInfra | None, tmp_path: Path) -> Iterator[Platform]:
    prefix = f"fault{uuid.uuid4().hex[:8]}_"
    kafka, mongo = (where.kafka, where.mongo) if where else (SHARED_KAFKA, SHARED_MONGO)
    with Platform.start(
        log_dir=tmp_path,
        prefix=prefix,
        timeout=420 if INFRA_FAULTS else 180,
        extra_env={
            # slow start-up checks on a busy shared machine; the harness is about faults
            "LIENTHONG_SIGNATURE_VALIDATION_TIMEOUT_SECONDS": "180",
            "LIENTHONG_KAFKA_BOOTSTRAP": kafka,
            "LIENTHONG_MONGO_URL": mongo,
        },
    ) as running:
        with grpc.insecure_channel(running.endpoint("routing-service")) as channel:
            stub = RoutingServiceStub(channel)
            for unit in sample_units():
                stub.UpsertUnit(
                    routing_pb.UpsertUnitRequest(unit=unit), metadata=REGISTRY_ADMIN, timeout=30
                )
        eventually_sync(lambda: _answers(running), until=bool, timeout=120, interval=0.5)
        yield running
    if where is None:
        remove_namespace(prefix, kafka=kafka, mongo=mongo)


def _answers(platform: Platform) -> bool:
    try:
        inbox_ids(platform, SENDER)
    except grpc.RpcError:
        return False
    return True


@pytest.mark.timeout(7200 if FULL else 900)
def test_nothing_acknowledged_is_lost_or_duplicated_under_kills(
    fault_platform: Platform, where: PrivateInfra | None
) -> None:
    ledger = Ledger()
    rounds = 3 if FULL else 0 if MODE == "infra" else 1
    settle = 30.0 if INFRA_FAULTS else 6.0
    faults: list[Fault] = []
    injections: list[tuple[str, Callable[[], None]]] = [
        (f"SIGKILL {name}", lambda name=name: kill_service(fault_platform, name))
        for _ in range(rounds)
        for name in SERVICES
    ]
    if where is not None:
        injections += [
            (f"kill -9 {part}", lambda part=part: where.kill(part))
            for part in ("kafka broker", "ferretdb", "postgresql")
        ]
    with Load(fault_platform, ledger, pace=0.05 if INFRA_FAULTS else 0.2):
        time.sleep(settle)  # the baseline rate before the first fault
        for name, inject in injections:
            faults.append(Fault(name, time.monotonic()))
            inject()
            time.sleep(settle)
    assert ledger.submitted, f"no submission acknowledged: {ledger.errors}"

    # every acknowledged submission in every inbox, exactly once
    def counted() -> dict[str, collections.Counter[str]]:
        return {unit: collections.Counter(inbox_ids(fault_platform, unit)) for unit in RECIPIENTS}

    try:
        # within 5 minutes, with no restart: a consumer that never resumes fails here
        inboxes = eventually_sync(
            counted,
            until=lambda found: all(set(ledger.submitted) <= set(found[u]) for u in RECIPIENTS),
            timeout=300,
            interval=2.0,
        )
    except TimeoutError:
        inboxes = counted()  # the table below says after which fault they went missing
    table = ["fault | acknowledged | lost | duplicated | seconds to recover"]
    ends = [f.started for f in faults[1:]] + [float("inf")]
    lost_total = duplicated_total = 0
    for fault, end in zip(faults, ends, strict=True):
        window = [d for d, when in ledger.submitted.items() if fault.started <= when < end]
        lost = sum(1 for d in window for u in RECIPIENTS if inboxes[u][d] == 0)
        duplicated = sum(1 for d in window for u in RECIPIENTS if inboxes[u][d] > 1)
        acks = sum(1 for *_, when in ledger.acknowledged.values() if fault.started <= when < end)
        papers_in = sum(1 for when in ledger.papers.values() if fault.started <= when < end)
        lost_total += lost
        duplicated_total += duplicated
        table.append(
            f"{fault.name} | {len(window) + acks + papers_in} | {lost} | {duplicated}"
            f" | {recovery_seconds(ledger.times(), fault)}"
        )
    print("\n" + "\n".join(table))
    print(
        f"ledger: {len(ledger.submitted)} submissions, {len(ledger.acknowledged)}"
        f" acknowledgements, {len(ledger.papers)} paper registrations,"
        f" {ledger.unresolved} unresolved; other answers: {dict(ledger.errors)}"
    )
    assert lost_total == 0
    assert duplicated_total == 0
    # an outage is UNAVAILABLE (the client retries), never INTERNAL or UNKNOWN, and never a
    # refusal of a known caller (a restarted replica that has not read the registry yet)
    wrong = ("INTERNAL", "UNKNOWN", "PERMISSION_DENIED", "UNAUTHENTICATED")
    faulty = {error: n for error, n in ledger.errors.items() if error.startswith(wrong)}
    assert not faulty, faulty
    # every acknowledgement in the sender's track
    for delivery_id, (document_id, unit, _) in ledger.acknowledged.items():
        states = eventually_sync(
            lambda document_id=document_id: track(fault_platform, document_id),
            until=lambda s, unit=unit: s.get(unit) not in (None, "01"),
            timeout=120,
        )
        assert states[unit] == "03", f"delivery {delivery_id} acknowledged, track says {states}"

    # the report equals the ledger (a fresh namespace: everything in it came from this load)
    period = time.strftime("%Y", time.gmtime(time.time() + 7 * 3600))  # Vietnam time
    papers = len(ledger.papers)
    expected = len(ledger.submitted)
    rows = eventually_sync(
        lambda: report(fault_platform, period),
        until=lambda r: (
            r[SENDER].outgoing_over_network >= expected
            and r[RECIPIENTS[1]].incoming_total - r[RECIPIENTS[1]].incoming_over_network >= papers
        ),
        timeout=300,
        interval=2.0,
    )

    assert rows[SENDER].outgoing_over_network == expected, rows[SENDER]
    for unit in RECIPIENTS:
        assert rows[unit].incoming_over_network == expected, rows[unit]
    assert rows[RECIPIENTS[1]].incoming_total - rows[RECIPIENTS[1]].incoming_over_network == papers
    assert rows[RECIPIENTS[0]].deliveries_acknowledged == len(ledger.acknowledged), rows
    assert not ledger.unresolved, "calls never acknowledged despite retries"

    # notifications once per event and channel: every delivery told in-app exactly once
    unit = RECIPIENTS[1]
    told = eventually_sync(
        lambda: notices(fault_platform, unit),
        until=lambda found: set(ledger.submitted) <= set(found),
        timeout=300,
        interval=2.0,
    )
    missing = set(ledger.submitted) - set(told)
    twice = {document: n for document, n in told.items() if n > 1}
    assert not missing, f"{len(missing)} deliveries to {unit} never notified"
    assert not twice, f"deliveries to {unit} notified more than once: {twice}"

    # the audit chain intact after every kill
    with grpc.insecure_channel(fault_platform.endpoint("document-service")) as channel:
        audit = DocumentServiceStub(channel).VerifyAudit(
            doc_pb.VerifyAuditRequest(), metadata=OBSERVER, timeout=120
        )
    print(f"audit: {audit.entries_checked} entries checked, intact={audit.intact}")
    assert audit.intact, (audit.first_broken_entry, audit.problem)
    assert audit.entries_checked > 0


def notices(platform: Platform, unit: str) -> collections.Counter[str]:
    """How many in-app ``delivery.created`` notifications ``unit`` has, per document."""
    counted: collections.Counter[str] = collections.Counter()
    token = ""
    with grpc.insecure_channel(platform.endpoint("notification-service")) as channel:
        while True:
            page = NotificationServiceStub(channel).ListNotifications(
                note_pb.ListNotificationsRequest(page_size=200, page_token=token),
                metadata=as_unit(unit),
                timeout=30,
            )
            counted.update(
                n.document_id
                for n in page.notifications
                if n.kind == "delivery.created" and n.channel == "in_app"
            )
            token = page.next_page_token
            if not token:
                return counted
