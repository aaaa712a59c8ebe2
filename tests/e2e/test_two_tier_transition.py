"""The move to two tiers through the running platform (issue #18's acceptance).

The services run as processes on the real broker and store; document-service and
routing-service, whose clocks date submissions and deliveries, run under a set clock
(lienthong_testing.clock). In June 2025 the registry is the three predecessors' (Hòa Bình,
the old Phú Thọ, Vĩnh Phúc: three tiers, all open) and generated three-tier traffic flows; the
registry administrator then plans the transition against the running registry and imports the
plan (effective 1 July), as docs/operations.md says, and a closing commune still sends until
then; the two services are restarted under a July clock and generated two-tier traffic
flows, with a document to a merged commune (forwarded: the province's policy here), to a
divided one (bounced naming its successors) and to the communes of a closed district
(refused naming the successors). June's, July's and the year's reports must equal the
generated counts exactly, per unit, level and province. Before the plan is applied the
merged commune has a clerk subscribed by e-mail and a pending delivery with a due date: the
plan's dry run lists them, and after the import its successor has the clerk, who is e-mailed
the forwarded document.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import io
import json
import socket
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiosmtpd.controller import Controller

from lienthong.common.v1.common_pb2 import Recipients, RecipientScope, UnitLevel
from lienthong.document.v1 import document_service_pb2 as doc_pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.notification.v1 import notification_service_pb2 as note_pb
from lienthong.notification.v1.notification_service_pb2_grpc import NotificationServiceStub
from lienthong.reporting.v1 import reporting_service_pb2 as rep_pb
from lienthong.routing.v1 import routing_service_pb2 as routing_pb
from lienthong.routing.v1.routing_service_pb2_grpc import RoutingServiceStub
from lienthong_cli.units_file import read_units
from lienthong_edxml.mapping import from_stored_document
from lienthong_kit.kafka import Topics, ensure_topics
from lienthong_kit.settings import KitSettings, load_settings
from lienthong_local.platform import SERVICES, Platform
from lienthong_local.replay import (
    APRIL,
    Replay,
    Traffic,
    expected_rows,
    generate,
    mismatches,
    read_report,
)
from lienthong_local.run import REGISTRY_ADMIN, wait_until_admitted
from lienthong_local.sample import (
    TRANSITION,
    TWO_TIER_PROVINCE,
    phu_tho_2025_csv,
    predecessor_units,
)
from lienthong_testing.cleanup import remove_namespace
from lienthong_testing.clock import clocked
from lienthong_testing.waiting import eventually_sync
from routing_service import transition_cli

pytestmark = pytest.mark.e2e

VN = timezone(timedelta(hours=7))
JUNE = datetime(2025, 6, 16, 10, 0, tzinfo=VN)
JULY = datetime(2025, 7, 16, 10, 0, tzinfo=VN)
CLOCKED = ("document-service", "routing-service")
FIVE = tuple(name for name in SERVICES if name != "gateway-service")
PLAN = APRIL.scaled(1 / 400)
KAFKA = "127.0.0.1:9092"
MONGO = "mongodb://127.0.0.1:27017"

PROVINCE = TWO_TIER_PROVINCE  # the surviving province keeps its code
MERGED = ["000.00.00.H23", "000.00.00.H60"]  # Hòa Bình, Vĩnh Phúc
MERGED_COMMUNE = "000.01.31.H23"  # Phường Thái Bình, merged into one new ward
DIVIDED = "000.17.32.H23"  # Xã Vầy Nưa, divided between two new communes
CLOSED_DISTRICT = "000.00.31.H23"  # Thành phố Hòa Bình
OLD = predecessor_units()


def unit_md(code: str) -> tuple[tuple[str, str], ...]:
    return (("x-lienthong-identity", f"unit/{code}"),)


OBSERVER_MD = (("x-lienthong-identity", "operator/observer/transition-test"),)


CLERK = "hoa.vt@thaibinh.example"
FAR_DUE = datetime(2099, 6, 30, 17, 0, tzinfo=VN)  # ahead of notification-service's real clock


class Mailbox:
    """An SMTP server on loopback (aiosmtpd, its own thread): what notification-service sent."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        content = envelope.content  # type: ignore[attr-defined]
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        self.messages.append(message)
        return "250 Message accepted for delivery"


@dataclass
class Transition:
    platform: Platform
    june: Traffic
    july: Traffic
    forwarded_id: str
    scoped_id: str
    plan_output: str
    dry_run: dict[str, Any]
    due_id: str
    clerk_id: str
    mailbox: Mailbox


def kept_topics(prefix: str) -> None:
    """The namespace's topics, created first with no time retention: the services stamp
    records with their set clock (2025), which the broker's 7-day retention would delete."""
    topics = Topics(prefix)
    settings = load_settings(
        KitSettings, {"LIENTHONG_KAFKA_BOOTSTRAP": KAFKA, "LIENTHONG_TOPIC_PREFIX": prefix}
    )

    async def create() -> None:
        await ensure_topics(settings, topics.all(), compacted=topics.compacted())
        admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
        await admin.start()
        try:
            await admin.alter_configs(
                [
                    ConfigResource(ConfigResourceType.TOPIC, name, {"retention.ms": "-1"})
                    for name in topics.all()
                    if name not in topics.compacted()
                ]
            )
        finally:
            await admin.close()

    asyncio.run(create())


def launch_all(platform: Platform, moment: datetime) -> None:
    for name in FIVE:
        platform.launch(name, wrapper=clocked(moment) if name in CLOCKED else ())
    platform.wait_serving(300, FIVE)


def relaunch_clocked(platform: Platform, moment: datetime) -> None:
    for name in CLOCKED:  # both stop side by side (each takes its shutdown grace)
        platform.processes[name].process.terminate()
    for name in CLOCKED:
        old = platform.processes[name]
        try:
            old.process.wait(60)
        except subprocess.TimeoutExpired:
            old.process.kill()
            old.process.wait()
        platform.launch(name, old.grpc_port, old.metrics_port, wrapper=clocked(moment))
    platform.wait_serving(300, CLOCKED)


def wait_applied(platform: Platform, plan_file: Path) -> None:
    """Until routing's registry shows every row of the imported plan: the import answers once
    the rows are stored, the registry view follows from the units topic a moment later."""
    planned = {row.unit.code: row.unit for row in read_units(plan_file)}

    def pending() -> list[str]:
        seen = {unit.code: unit for unit in registry(platform)}
        return [
            code
            for code, unit in planned.items()
            if code not in seen
            or (seen[code].valid_until, seen[code].valid_from, seen[code].successor_code)
            != (unit.valid_until, unit.valid_from, unit.successor_code)
        ]

    eventually_sync(pending, until=lambda left: not left, timeout=120, interval=0.5)


def send(platform: Platform, traffic: Traffic, day: datetime) -> None:
    document = platform.endpoint("document-service")
    for unit in {s for s, _ in traffic.documents} | {u for u, _, _ in traffic.paper}:
        wait_until_admitted(document, unit)
    replay = Replay(traffic, document, concurrency=16, today=day.date().isoformat())
    asyncio.run(replay.send())


def report(platform: Platform, period: str) -> list[rep_pb.AdoptionRow]:
    return asyncio.run(read_report(platform.endpoint("reporting-service"), period))


def exact(platform: Platform, period: str, expected: dict[object, Counter[str]]) -> list[str]:
    """The report's differences from ``expected``, once none are left (or at the deadline)."""
    problems: list[str] = []

    def differences() -> list[str]:
        problems[:] = mismatches(expected, report(platform, period))  # type: ignore[arg-type]
        return problems

    with contextlib.suppress(AssertionError, TimeoutError):
        eventually_sync(differences, until=lambda found: not found, timeout=90, interval=0.5)
    return problems


def merged(*traffics: Traffic) -> Traffic:
    out = Traffic()
    for traffic in traffics:
        for unit, counts in traffic.expected.items():
            out.expected.setdefault(unit, Counter()).update(counts)
            out.level_of[unit] = traffic.level_of[unit]
    return out


def registry(platform: Platform) -> list[routing_pb.Unit]:
    units: list[routing_pb.Unit] = []
    token = ""
    with grpc.insecure_channel(platform.endpoint("routing-service")) as channel:
        stub = RoutingServiceStub(channel)
        while True:
            reply = stub.ListUnits(
                routing_pb.ListUnitsRequest(page_size=500, page_token=token),
                metadata=OBSERVER_MD,
                timeout=30,
            )
            units.extend(reply.units)
            token = reply.next_page_token
            if not token:
                return units


def submit(
    platform: Platform,
    number: str,
    recipients: Recipients,
    *,
    sender: str = PROVINCE,
    day: datetime = JULY,
    due: datetime | None = None,
) -> str:
    request = doc_pb.SubmitDocumentRequest(
        idempotency_key=f"transition-{number}",
        recipients=recipients,
        code={"number": number, "notation": "TB-UBND"},
        document_type="TB",
        subject="Thông báo về việc sắp xếp đơn vị hành chính",
        promulgation_date=day.date().isoformat(),
    )
    if due is not None:
        request.due_at.FromDatetime(due)
    with grpc.insecure_channel(platform.endpoint("document-service")) as channel:
        reply = DocumentServiceStub(channel).SubmitDocument(
            request, metadata=unit_md(sender), timeout=30
        )
    return reply.document.document_id


@contextlib.contextmanager
def notifications(platform: Platform) -> Iterator[NotificationServiceStub]:
    with grpc.insecure_channel(platform.endpoint("notification-service")) as channel:
        yield NotificationServiceStub(channel)


def subscribe_clerk(platform: Platform, unit: str) -> str:
    """A clerk of ``unit`` told of new deliveries by e-mail; the contact's id."""
    with notifications(platform) as stub:
        return _subscribe_clerk(stub, unit)


def _subscribe_clerk(stub: NotificationServiceStub, unit: str) -> str:
    contact = stub.PutContact(
        note_pb.PutContactRequest(
            contact=note_pb.Contact(name="Vũ Thị Hoa", role="clerk", email=CLERK)
        ),
        metadata=unit_md(unit),
        timeout=30,
    ).contact
    stub.Subscribe(
        note_pb.SubscribeRequest(
            subscription=note_pb.Subscription(
                contact_id=contact.contact_id, event_kinds=["delivery.created"], channels=["email"]
            )
        ),
        metadata=unit_md(unit),
        timeout=30,
    )
    return contact.contact_id


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def inbox(platform: Platform, unit: str) -> list[str]:
    with grpc.insecure_channel(platform.endpoint("document-service")) as channel:
        reply = DocumentServiceStub(channel).ListInbox(
            doc_pb.ListInboxRequest(page_size=200), metadata=unit_md(unit), timeout=30
        )
    return [entry.document.document_id for entry in reply.entries]


def run_tool(main: Callable[[list[str]], int], *args: str) -> str:
    """An operator's command (its console script's ``main``), its output as printed."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    assert code == 0, f"{main.__module__} failed:\n{out.getvalue()}\n{err.getvalue()}"
    return out.getvalue()


@pytest.fixture(scope="module")
def transition(infra: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Transition]:
    prefix = f"tt{uuid.uuid4().hex[:8]}_"
    work = tmp_path_factory.mktemp("transition")
    kept_topics(prefix)
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    platform = Platform.empty(
        log_dir=work / "logs",
        prefix=prefix,
        extra_env={
            "LIENTHONG_ROUTING_FORWARD_CLOSED": "true",
            # the documents are unsigned: no validation worker processes to start
            "LIENTHONG_SIGNATURE_WORKERS": "0",
            "LIENTHONG_SMTP_HOST": "127.0.0.1",
            "LIENTHONG_SMTP_PORT": str(smtp.port),
            "LIENTHONG_QUIET_HOURS": "",  # notification-service's clock is the real one
        },
    )
    try:
        launch_all(platform, JUNE)
        routing = platform.endpoint("routing-service")
        with grpc.insecure_channel(routing) as channel:
            RoutingServiceStub(channel).ImportRegistry(
                (routing_pb.ImportRegistryRequest(unit=unit) for unit in OLD),
                metadata=REGISTRY_ADMIN,
                timeout=120,
            )

        # June: three tiers
        june = generate(PLAN, seed=6, now=JUNE, registry=OLD)
        send(platform, june, JUNE)
        assert exact(platform, "2025-06", expected_rows(june, [])) == []

        # the merged commune's clerk, and a delivery to it still pending with a due date
        clerk_id = subscribe_clerk(platform, MERGED_COMMUNE)
        due_id = submit(
            platform, "600", Recipients(unit_codes=[MERGED_COMMUNE]), day=JUNE, due=FAR_DUE
        )
        eventually_sync(
            lambda: inbox(platform, MERGED_COMMUNE), until=lambda ids: due_id in ids, timeout=120
        )
        for name in ("outgoing_total", "outgoing_over_network"):
            june.expected[PROVINCE][name] += 1
        for name in ("incoming_total", "incoming_over_network"):
            june.expected[MERGED_COMMUNE][name] += 1

        # the plan, against the running registry, approved as a file and imported
        mapping = work / "mapping.csv"
        mapping.write_text(phu_tho_2025_csv(), "utf-8")
        plan_file = work / "plan.csv"
        merged_args = [arg for code in MERGED for arg in ("--merged", code)]
        plan_output = run_tool(
            transition_cli.main,
            "--mapping", str(mapping), "--province", PROVINCE, *merged_args,
            "--effective", TRANSITION, "--out", str(plan_file), "--endpoint", routing,
            "--document", platform.endpoint("document-service"),
        )  # fmt: skip
        # the registry administrator dry-runs, then applies the approved file with the CLI
        # (docs/operations.md)
        cli = [
            sys.executable, "-m", "lienthong_cli", "--endpoint", f"routing={routing}",
            "--endpoint", f"document={platform.endpoint('document-service')}",
            "--endpoint", f"notification={platform.endpoint('notification-service')}",
            "--identity", "operator/registry-admin/test", "units", "import", str(plan_file),
        ]  # fmt: skip
        checked = subprocess.run(
            [*cli, "--dry-run", "--output", "json"],
            check=True, capture_output=True, timeout=300, text=True,
        )  # fmt: skip
        dry_run = json.loads(checked.stdout)
        subprocess.run(cli, check=True, capture_output=True, timeout=300)
        wait_applied(platform, plan_file)
        # applied ahead: a closing commune still sends in June, to a closing district
        late = submit(
            platform,
            "601",
            Recipients(unit_codes=[CLOSED_DISTRICT]),
            sender=MERGED_COMMUNE,
            day=JUNE,
        )
        # delivered in June: routed after the restart it would count on July's day
        eventually_sync(
            lambda: inbox(platform, CLOSED_DISTRICT), until=lambda ids: late in ids, timeout=120
        )
        for name in ("outgoing_total", "outgoing_over_network"):
            june.expected[MERGED_COMMUNE][name] += 1
        for name in ("incoming_total", "incoming_over_network"):
            june.expected[CLOSED_DISTRICT][name] += 1

        # July: two tiers, on the registry the plan left
        relaunch_clocked(platform, JULY)
        now_open = registry(platform)
        july = generate(PLAN.two_tier(), seed=7, now=JULY, registry=now_open)
        send(platform, july, JULY)
        wait_until_admitted(platform.endpoint("document-service"), PROVINCE)
        forwarded_id = submit(platform, "701", Recipients(unit_codes=[MERGED_COMMUNE, DIVIDED]))
        scoped_id = submit(
            platform,
            "702",
            Recipients(
                scopes=[
                    RecipientScope(
                        ancestor_code=CLOSED_DISTRICT, level=UnitLevel.UNIT_LEVEL_COMMUNE
                    )
                ]
            ),
        )
        # both count as outgoing over the network for the province; the forward as incoming
        # for the merged commune's successor
        successor = next(u.successor_code for u in now_open if u.code == MERGED_COMMUNE)
        for name in ("outgoing_total", "outgoing_over_network"):
            july.expected[PROVINCE][name] += 2
        for name in ("incoming_total", "incoming_over_network"):
            july.expected[successor][name] += 1
        yield Transition(
            platform, june, july, forwarded_id, scoped_id, plan_output, dry_run, due_id, clerk_id,
            mailbox,
        )  # fmt: skip
    finally:
        platform.stop_all()
        smtp.stop()
        remove_namespace(prefix, kafka=KAFKA, mongo=MONGO)


def level_rows(rows: list[rep_pb.AdoptionRow]) -> set[int]:
    return {row.level for row in rows if row.kind == rep_pb.RowKind.ROW_KIND_LEVEL}


@pytest.mark.timeout(600)
def test_june_july_and_the_year_equal_the_generated_counts(transition: Transition) -> None:
    platform, june, july = transition.platform, transition.june, transition.july
    assert {june.level_of[u] for u, c in june.expected.items() if sum(c.values())} == {
        "province",
        "district",
        "commune",
    }
    assert "district" not in july.level_of.values()
    assert exact(platform, "2025-07", expected_rows(july, [])) == []
    assert exact(platform, "2025-06", expected_rows(june, [])) == []
    assert exact(platform, "2025", expected_rows(merged(june, july), [])) == []
    district = rep_pb.ReportLevel.REPORT_LEVEL_DISTRICT
    assert district in level_rows(report(platform, "2025-06"))
    assert district not in level_rows(report(platform, "2025-07"))
    assert district in level_rows(report(platform, "2025"))


def test_the_plan_was_made_against_the_running_registry(transition: Transition) -> None:
    assert "create: 148 commune" in transition.plan_output
    assert "effective: 2025-07-01" in transition.plan_output
    # pending deliveries as document-service counts them: at least the one with a due date
    [line] = [
        line for line in transition.plan_output.splitlines() if line.startswith("pending deliver")
    ]
    pending, units = (int(word) for word in line.split() if word.isdigit())
    assert pending >= 1
    assert units >= 1


def track(platform: Platform, document_id: str) -> doc_pb.TrackDocumentResponse:
    with grpc.insecure_channel(platform.endpoint("document-service")) as channel:
        reply: doc_pb.TrackDocumentResponse = DocumentServiceStub(channel).TrackDocument(
            doc_pb.TrackDocumentRequest(document_id=document_id),
            metadata=unit_md(PROVINCE),
            timeout=30,
        )
    return reply


def test_a_document_to_a_merged_commune_is_forwarded_and_the_sender_told(
    transition: Transition,
) -> None:
    platform = transition.platform
    now_open = {unit.code: unit for unit in registry(platform)}
    successor = now_open[MERGED_COMMUNE].successor_code
    divided_into = list(now_open[DIVIDED].successor_codes)
    assert successor
    assert len(divided_into) == 2

    answer = eventually_sync(
        lambda: track(platform, transition.forwarded_id),
        until=lambda reply: len(reply.recipients) == 2,
    )
    rows = {row.recipient_code: row for row in answer.recipients}
    assert set(rows) == {successor, DIVIDED}
    [hop] = rows[successor].forwarded_from
    assert hop.closed_code == MERGED_COMMUNE
    assert successor in hop.reason
    assert hop.at.ToDatetime(tzinfo=VN).date() == JULY.date()
    assert rows[successor].status_code == "01"
    assert all(code in rows[DIVIDED].bounce_reason for code in divided_into)
    assert not rows[DIVIDED].forwarded_from

    # the successor's copy, as the gateway writes it in edXML: the hop in its TraceHeaderList
    with grpc.insecure_channel(platform.endpoint("document-service")) as channel:
        stored = DocumentServiceStub(channel).GetDocument(
            doc_pb.GetDocumentRequest(document_id=transition.forwarded_id),
            metadata=unit_md(successor),
            timeout=30,
        )
    [trace] = from_stored_document(stored).traces
    assert trace.organ_id == MERGED_COMMUNE
    assert trace.timestamp.date() == JULY.date()

    def told() -> list[note_pb.Notification]:
        with grpc.insecure_channel(platform.endpoint("notification-service")) as channel:
            reply = NotificationServiceStub(channel).ListNotifications(
                note_pb.ListNotificationsRequest(page_size=200),
                metadata=unit_md(PROVINCE),
                timeout=30,
            )
        return [
            n
            for n in reply.notifications
            if n.kind == "document.forwarded" and n.document_id == transition.forwarded_id
        ]

    [notice] = eventually_sync(told, until=bool, timeout=60)
    assert MERGED_COMMUNE in notice.body
    assert successor in notice.body


def test_a_scope_over_a_closed_district_is_refused_naming_its_successors(
    transition: Transition,
) -> None:
    platform = transition.platform
    district = next(unit for unit in registry(platform) if unit.code == CLOSED_DISTRICT)
    successors = list(district.successor_codes)
    assert len(successors) > 1
    answer = eventually_sync(
        lambda: track(platform, transition.scoped_id),
        until=lambda reply: len(reply.recipients) == 1,
    )
    [row] = answer.recipients
    assert row.recipient_code == CLOSED_DISTRICT
    assert "refused" in row.bounce_reason
    assert all(code in row.bounce_reason for code in successors)
    # still resolved for a day before the transition: the district's communes then
    with grpc.insecure_channel(platform.endpoint("routing-service")) as channel:
        earlier = RoutingServiceStub(channel).ResolveRecipients(
            routing_pb.ResolveRecipientsRequest(
                sender_code=PROVINCE,
                recipients=Recipients(
                    scopes=[
                        RecipientScope(
                            ancestor_code=CLOSED_DISTRICT, level=UnitLevel.UNIT_LEVEL_COMMUNE
                        )
                    ]
                ),
                as_of="2025-06-20",
            ),
            metadata=OBSERVER_MD,
            timeout=30,
        )
    communes = sorted(u.code for u in OLD if u.parent_code == CLOSED_DISTRICT)
    assert sorted(earlier.unit_codes) == communes


def test_the_dry_run_lists_what_points_at_a_closing_commune(transition: Transition) -> None:
    dry_run = transition.dry_run
    assert dry_run["dry_run"] is True
    pointing = {item["code"]: item for item in dry_run["pointing_at_closing"]}
    merged = pointing[MERGED_COMMUNE]
    assert merged["pending_deliveries"] >= 1
    assert transition.due_id in merged["pending_documents"]
    assert merged["pending_reminders"] >= 1
    assert merged["contacts"] == ["Vũ Thị Hoa (clerk)"]
    assert merged["subscriptions"] == [f"contact:{transition.clerk_id}"]
    assert len(merged["successors"]) == 1


def test_the_merged_communes_clerk_is_carried_over_and_told_of_the_forward(
    transition: Transition,
) -> None:
    platform = transition.platform
    successor = next(u.successor_code for u in registry(platform) if u.code == MERGED_COMMUNE)
    with notifications(platform) as stub:
        [clerk] = stub.ListContacts(
            note_pb.ListContactsRequest(), metadata=unit_md(successor), timeout=30
        ).contacts
        subscriptions = stub.ListSubscriptions(
            note_pb.ListSubscriptionsRequest(), metadata=unit_md(successor), timeout=30
        ).subscriptions
    assert (clerk.name, clerk.email) == ("Vũ Thị Hoa", CLERK)
    assert [s.subscription_id for s in subscriptions] == [f"contact:{clerk.contact_id}"]

    def mailed() -> list[str]:
        return [str(m["Subject"]) for m in transition.mailbox.messages if str(m["To"]) == CLERK]

    # the forwarded document (701) reaches the successor, whose carried clerk is e-mailed
    subjects = eventually_sync(mailed, until=lambda found: any("701/" in s for s in found))
    assert any("701/TB-UBND" in subject for subject in subjects)
