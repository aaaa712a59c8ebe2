"""The bridge to the national axis, against the sandbox axis (lienthong_local.axis, served in
this process) and the real services (processes on the real broker and store).

Out of the province: a package for an external agency reaches the axis with its trace hop;
the axis's status package reaches the sender's track; a package the axis holds for a unit of
the province lands in its inbox (through signature verification, like any other) and its
answers go back; the axis failing, stalling or losing its answers, then recovering, gets each
package once.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import grpc
import httpx
import pytest
import uvicorn

from lienthong.document.v1 import document_service_pb2 as doc_pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.routing.v1 import routing_service_pb2 as routing_pb
from lienthong.routing.v1.routing_service_pb2_grpc import RoutingServiceStub
from lienthong_edxml import (
    Code,
    DocumentPackage,
    Organ,
    ResponseFor,
    StatusCode,
    StatusPackage,
    document_bytes,
    parse_document,
    parse_status,
    status_bytes,
)
from lienthong_edxml.mapping import canonical_document_id
from lienthong_edxml.model import Attachment
from lienthong_local.axis import AxisState, create_axis
from lienthong_local.platform import Platform, free_port
from lienthong_local.run import REGISTRY_ADMIN, load_sample_registry
from lienthong_testing.cleanup import remove_namespace
from lienthong_testing.pki import make_pdf
from lienthong_testing.waiting import eventually_sync

pytestmark = pytest.mark.e2e

DATA = Path(__file__).resolve().parents[3] / "libs" / "edxml" / "tests" / "data"
GOLDEN = DATA / "golden" / "document_qcvn_bussiness.edxml"
PROVINCE = "000.00.00.H23"  # the sample province: the hub's code at the axis
SENDER = "000.00.00.H23"
RECIPIENT = "000.01.00.H23"
OUTSIDE = "000.00.00.G01"  # an external agency (the national directory)
SERVICES = ("document-service", "routing-service", "signature-service")
AXIS_TIMEOUT = 0.5  # the bridge's deadline per axis call: the stall test outlasts it


class Sandbox:
    """The sandbox axis served by uvicorn in a thread of this process."""

    def __init__(self) -> None:
        self.port = free_port()
        self.app = create_axis([{"code": OUTSIDE, "name": "Văn phòng Chính phủ", "parent": ""}])
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state(self) -> AxisState:
        state: AxisState = self.app.state.axis
        return state

    def __enter__(self) -> Sandbox:
        self.thread.start()
        eventually_sync(lambda: self.server.started, until=bool, timeout=10)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def copies(self, document_id: str) -> list[bytes]:
        """Every stored copy of the package ``document_id`` (one per send that was not a
        retry)."""
        return [p.body for p in list(self.state.packages.values()) if p.document_id == document_id]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as running:
        yield running


@pytest.fixture(scope="module")
def http_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def platform(
    infra: None, tmp_path_factory: pytest.TempPathFactory, http_port: int, sandbox: Sandbox
) -> Iterator[Platform]:
    prefix = f"ax{uuid.uuid4().hex[:8]}_"
    running = Platform.empty(log_dir=tmp_path_factory.mktemp("axis-logs"), prefix=prefix)
    try:
        for name in SERVICES:
            running.launch(name)
        running.launch(
            "gateway-service",
            extra_env={
                "LIENTHONG_GATEWAY_HTTP_PORT": str(http_port),
                "LIENTHONG_GATEWAY_DOCUMENT_SERVICE": running.endpoint("document-service"),
                "LIENTHONG_GATEWAY_ROUTING_SERVICE": running.endpoint("routing-service"),
                "LIENTHONG_AXIS_URL": sandbox.url,
                "LIENTHONG_AXIS_HUB_CODE": PROVINCE,
                "LIENTHONG_AXIS_POLL_SECONDS": "0.2",
                "LIENTHONG_AXIS_TIMEOUT_SECONDS": str(AXIS_TIMEOUT),
            },
        )
        running.wait_serving(120, (*SERVICES, "gateway-service"))
        load_sample_registry(running.endpoint("routing-service"))
        with grpc.insecure_channel(running.endpoint("routing-service")) as channel:
            RoutingServiceStub(channel).UpsertUnit(
                routing_pb.UpsertUnitRequest(
                    unit=routing_pb.Unit(
                        code=OUTSIDE, name="Văn phòng Chính phủ", active=True, external=True
                    )
                ),
                metadata=REGISTRY_ADMIN,
                timeout=10,
            )
        yield running
    finally:
        running.stop_all()
        remove_namespace(prefix, kafka="127.0.0.1:9092", mongo="mongodb://127.0.0.1:27017")


@pytest.fixture(scope="module")
def base_url(platform: Platform, http_port: int) -> str:
    return f"http://127.0.0.1:{http_port}"


def gateway(base_url: str, code: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"x-lienthong-identity": f"unit/{code}"},
                        timeout=60)  # fmt: skip


def package(sender: str, to: str, number: str) -> DocumentPackage:
    """The golden package from ``sender`` to ``to``, numbered ``number``, with a readable PDF."""
    golden = parse_document(GOLDEN.read_bytes())
    pdfs = tuple(
        Attachment.from_bytes(a.content_id, a.name, a.content_type, make_pdf(), a.description)
        for a in golden.attachments
        if a.content_type == "application/pdf"
    )
    made = replace(
        golden,
        from_=Organ(sender),
        to=(Organ(to),),
        code=Code(number, golden.code.code_notation),
        attachments=pdfs,
        manifest=(),
        traces=(),
    )
    return replace(made, document_id=canonical_document_id(made)).with_manifest()


def number() -> str:
    return str(uuid.uuid4().int % 900_000 + 100_000)


def send_out(base_url: str, made: DocumentPackage) -> str:
    with gateway(base_url, made.from_.organ_id) as sender:
        sent = sender.post("/v1/documents", content=document_bytes(made),
                           headers={"content-type": "application/xml"})  # fmt: skip
    assert sent.status_code == 201, sent.text
    document_id: str = sent.json()["document_id"]
    return document_id


def track(platform: Platform, sender: str, document_id: str) -> dict[str, str]:
    with grpc.insecure_channel(platform.endpoint("document-service")) as channel:
        reply = DocumentServiceStub(channel).TrackDocument(
            doc_pb.TrackDocumentRequest(document_id=document_id),
            metadata=(("x-lienthong-unit", sender),),
            timeout=10,
        )
    return {item.recipient_code: item.status_code for item in reply.recipients}


def test_a_document_for_an_external_agency_goes_out_with_its_hop_and_its_answer_comes_back(
    platform: Platform, base_url: str, sandbox: Sandbox
) -> None:
    made = package(SENDER, OUTSIDE, number())
    document_id = send_out(base_url, made)

    copies = eventually_sync(lambda: sandbox.copies(made.document_id), until=bool, timeout=60)
    assert len(copies) == 1
    left = parse_document(copies[0])
    assert left.from_.organ_id == SENDER
    assert [o.organ_id for o in left.to] == [OUTSIDE]
    assert [hop.organ_id for hop in left.traces] == [PROVINCE]
    assert [a.read_bytes() for a in left.attachments] == [a.read_bytes() for a in made.attachments]
    assert made.document_id in sandbox.state.by_document_id
    assert any(
        sandbox.state.packages[key].document_id == made.document_id
        for key in sandbox.state.pending.get(OUTSIDE, [])
    )

    # the external agency answers through the axis: the sender's track shows it
    status = StatusPackage(
        response_for=ResponseFor(SENDER, made.document_id),
        from_=Organ(OUTSIDE),
        status_code=StatusCode("03"),
        timestamp=datetime.now(UTC),
        description="Đã tiếp nhận",
    )
    answered = httpx.post(f"{sandbox.url}/statuses", content=status_bytes(status), timeout=10)
    assert answered.status_code == 201, answered.text
    states = eventually_sync(
        lambda: track(platform, SENDER, document_id),
        until=lambda got: got.get(OUTSIDE) == "03",
        timeout=60,
    )
    assert states[OUTSIDE] == "03"
    # the bridge took the status off the axis once it was recorded
    eventually_sync(lambda: sandbox.state.status_inbox.get(SENDER, []), until=lambda k: not k)


def test_a_package_from_the_axis_lands_in_a_province_inbox_and_is_answered_back(
    base_url: str, sandbox: Sandbox
) -> None:
    made = package(OUTSIDE, RECIPIENT, number())
    handed = httpx.post(f"{sandbox.url}/packages", content=document_bytes(made), timeout=10)
    assert handed.status_code == 201, handed.text

    with gateway(base_url, RECIPIENT) as recipient:
        pending = eventually_sync(
            lambda: recipient.get("/v1/documents/pending").json(),
            until=lambda body: any(
                doc["edxml_document_id"] == made.document_id for doc in body.get("documents", [])
            ),
            timeout=60,
        )
        entries = [d for d in pending["documents"] if d["edxml_document_id"] == made.document_id]
        # pulled every round until answered, submitted once (idempotent by DocumentId)
        assert len(entries) == 1
        assert entries[0]["sender_code"] == OUTSIDE
        received = parse_document(
            recipient.get(f"/v1/documents/{entries[0]['document_id']}").content
        )
        assert [a.read_bytes() for a in received.attachments] == [
            a.read_bytes() for a in made.attachments
        ]

        # its arrival (01) goes back to the axis, which takes it off the pending list
        eventually_sync(
            lambda: sandbox.state.pending.get(RECIPIENT, []), until=lambda keys: not keys
        )
        answer = StatusPackage(
            response_for=ResponseFor(OUTSIDE, made.document_id),
            from_=Organ(RECIPIENT),
            status_code=StatusCode("03"),
            timestamp=datetime.now(UTC),
        )
        answered = recipient.post("/v1/statuses", content=status_bytes(answer))
        assert answered.status_code == 200, answered.text

    def codes() -> list[str]:
        keys = list(sandbox.state.status_inbox.get(OUTSIDE, []))
        return [
            str(parse_status(sandbox.state.statuses[key].body).status_code)
            for key in keys
            if sandbox.state.statuses[key].document_id == made.document_id
        ]

    assert eventually_sync(codes, until=lambda got: "03" in got, timeout=60)[:2] == ["01", "03"]


@pytest.mark.parametrize("fault", ["failing", "stalling", "losing-answers"])
def test_the_axis_failing_stalling_or_losing_answers_then_recovering_gets_the_package_once(
    base_url: str, sandbox: Sandbox, fault: str
) -> None:
    faults = {
        "failing": {"fail_next": 10_000, "status": 503},
        "stalling": {"delay_seconds": AXIS_TIMEOUT * 3},
        # the axis stores the package but the bridge's deadline passes before the answer
        "losing-answers": {"answer_delay_seconds": AXIS_TIMEOUT * 3},
    }[fault]
    route = "POST /packages"
    before = sandbox.state.calls.get(route, 0)
    assert httpx.put(f"{sandbox.url}/admin/faults", json=faults, timeout=10).status_code == 200
    try:
        made = package(SENDER, OUTSIDE, number())
        send_out(base_url, made)
        # the bridge keeps trying while the axis fails or outlasts its deadline
        eventually_sync(
            lambda: sandbox.state.calls.get(route, 0) - before, until=lambda n: n >= 3, timeout=60
        )
    finally:
        httpx.delete(f"{sandbox.url}/admin/faults", timeout=10)
    eventually_sync(lambda: sandbox.copies(made.document_id), until=bool, timeout=60)
    # whatever answers were lost, one copy: later retries were recognised by DocumentId
    time.sleep(AXIS_TIMEOUT * 4)
    assert len(sandbox.copies(made.document_id)) == 1
    pending = [
        key
        for key in sandbox.state.pending.get(OUTSIDE, [])
        if sandbox.state.packages[key].document_id == made.document_id
    ]
    assert len(pending) == 1
