"""Over HTTP, as an e-office would: the gateway in front of the real services (processes on the
real broker and store), in development mode (the identity header instead of a certificate).

One unit sends a golden package with attachments, the recipient lists its pending ids, fetches
the package (equal to the original on every kept field) and answers with status 03; the
sender's TrackDocument shows 03. Hostile packages are refused with their problems, and nothing
reaches document-service.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lienthong.document.v1 import document_service_pb2 as doc_pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong_edxml import (
    Organ,
    ResponseFor,
    StatusCode,
    StatusPackage,
    document_bytes,
    parse_document,
)
from lienthong_edxml.mapping import kept_fields
from lienthong_edxml.model import Attachment
from lienthong_edxml.writer import status_bytes
from lienthong_local.platform import Platform, free_port
from lienthong_local.run import RUN_SHAPE, load_sample_registry
from lienthong_testing.cleanup import remove_namespace
from lienthong_testing.pki import make_pdf
from lienthong_testing.two_tier_examples import two_tier
from lienthong_testing.waiting import eventually_sync

pytestmark = pytest.mark.e2e

DATA = Path(__file__).resolve().parents[3] / "libs" / "edxml" / "tests" / "data"
GOLDEN = DATA / "golden" / "document_qcvn_bussiness.edxml"
# make run's two-tier province, as the README's example package (docs/examples) names them
SENDER = "000.00.00.H43"
RECIPIENT = "000.01.00.H43"
SERVICES = ("document-service", "routing-service", "signature-service")


@pytest.fixture(scope="module")
def http_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def platform(
    infra: None, tmp_path_factory: pytest.TempPathFactory, http_port: int
) -> Iterator[Platform]:
    prefix = f"gw{uuid.uuid4().hex[:8]}_"
    running = Platform.empty(log_dir=tmp_path_factory.mktemp("gateway-logs"), prefix=prefix)
    try:
        for name in SERVICES:
            running.launch(name)
        running.launch(
            "gateway-service",
            extra_env={
                "LIENTHONG_GATEWAY_HTTP_PORT": str(http_port),
                "LIENTHONG_GATEWAY_DOCUMENT_SERVICE": running.endpoint("document-service"),
                "LIENTHONG_GATEWAY_ROUTING_SERVICE": running.endpoint("routing-service"),
            },
        )
        running.wait_serving(120, (*SERVICES, "gateway-service"))
        load_sample_registry(running.endpoint("routing-service"), RUN_SHAPE)
        yield running
    finally:
        running.stop_all()
        remove_namespace(prefix, kafka="127.0.0.1:9092", mongo="mongodb://127.0.0.1:27017")


@pytest.fixture(scope="module")
def base_url(platform: Platform, http_port: int) -> str:
    return f"http://127.0.0.1:{http_port}"


def as_unit(code: str) -> dict[str, str]:
    return {"x-lienthong-identity": f"unit/{code}"}


def client(base_url: str, code: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers=as_unit(code), timeout=60)


def rpc_count(platform: Platform, method: str) -> float:
    port = platform.processes["document-service"].metrics_port
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "lienthong_rpc_handled_total" and method in str(
                sample.labels.get("method", "")
            ):
                total += sample.value
    return total


def as_two_tier(path: Path) -> bytes:
    """A golden package with the two-tier province's codes and names (the README's example)."""
    return two_tier(path.read_text(encoding="utf-8")).encode()


def sendable() -> bytes:
    """The golden package with its PDF only (document-service accepts no text/plain)."""
    golden = parse_document(as_two_tier(GOLDEN))
    # the golden's PDF is a stub: a readable one, since unreadable files are refused even in
    # development (the readable-files rule runs before the accept-unsigned shortcut)
    pdfs = tuple(
        Attachment.from_bytes(a.content_id, a.name, a.content_type, make_pdf(), a.description)
        for a in golden.attachments
        if a.content_type == "application/pdf"
    )
    return document_bytes(replace(golden, attachments=pdfs, manifest=()).with_manifest())


def test_a_package_goes_from_one_unit_to_another_and_is_answered(
    platform: Platform, base_url: str
) -> None:
    data = sendable()
    original = parse_document(data)
    assert original.attachments, "the package carries an attachment"
    with client(base_url, SENDER) as sender, client(base_url, RECIPIENT) as recipient:
        sent = sender.post(
            "/v1/documents",
            content=data,
            headers={"content-type": "application/xml"},
        )
        assert sent.status_code == 201, sent.text
        document_id = sent.json()["document_id"]
        # the probe the hostile-package test relies on sees the calls
        assert rpc_count(platform, "SubmitDocument") >= 1
        assert rpc_count(platform, "UploadAttachment") >= 1
        assert len(sent.json()["attachments"]) == len(original.attachments)

        pending = eventually_sync(
            lambda: recipient.get("/v1/documents/pending").json(),
            until=lambda body: document_id in body.get("ids", []),
            timeout=60,
        )
        entry = next(doc for doc in pending["documents"] if doc["document_id"] == document_id)
        assert entry["sender_code"] == SENDER

        fetched = recipient.get(f"/v1/documents/{document_id}")
        assert fetched.status_code == 200, fetched.text
        assert fetched.headers["content-type"].startswith("application/xml")
        received = parse_document(fetched.content)
        # a recipient is shown no other recipient: its copy is addressed to it alone
        assert kept_fields(received) == {**kept_fields(original), "to": [RECIPIENT]}
        assert [a.read_bytes() for a in received.attachments] == [
            a.read_bytes() for a in original.attachments
        ]
        own = parse_document(sender.get(f"/v1/documents/{document_id}").content)
        assert kept_fields(own) == kept_fields(original)

        # the golden status package answers the golden document (same DocumentId)
        assert entry["edxml_document_id"] == original.document_id
        answered = recipient.post(
            "/v1/statuses",
            content=as_two_tier(DATA / "golden" / "status_03.edxml"),
            headers={"content-type": "application/xml"},
        )
        assert answered.status_code == 200, answered.text
        assert answered.json()["status_code"] == "03"
        after = recipient.get("/v1/documents/pending").json()
        assert document_id not in after["ids"]

    with grpc.insecure_channel(platform.endpoint("document-service")) as channel:
        track = DocumentServiceStub(channel).TrackDocument(
            doc_pb.TrackDocumentRequest(document_id=document_id),
            metadata=(("x-lienthong-unit", SENDER),),
            timeout=10,
        )
    states = {item.recipient_code: item for item in track.recipients}
    assert states[RECIPIENT].status_code == "03"
    assert states[RECIPIENT].history[-1].description.startswith("Đã tiếp nhận")


def test_the_readme_example_package_is_the_golden_one_with_its_pdf() -> None:
    example = Path(__file__).resolve().parents[3] / "docs" / "examples" / "qd-15-ubnd.edxml"
    assert example.read_bytes() == sendable()


@pytest.mark.parametrize(
    ("name", "code"), [("xxe.edxml", "doctype-refused"), ("not_xml.edxml", "not-xml")]
)
def test_a_hostile_package_is_refused_with_its_problems_and_nothing_is_stored(
    platform: Platform, base_url: str, name: str, code: str
) -> None:
    before = rpc_count(platform, "UploadAttachment") + rpc_count(platform, "SubmitDocument")
    with client(base_url, SENDER) as sender:
        reply = sender.post("/v1/documents", content=(DATA / "hostile" / name).read_bytes())
        doctor = sender.post("/v1/doctor", content=(DATA / "hostile" / name).read_bytes())
    assert reply.status_code == 400
    assert reply.headers["content-type"] == "application/problem+json"
    body = reply.json()
    assert body["type"].endswith("/invalid-package")
    assert [problem["code"] for problem in body["problems"]] == [code]
    assert all(problem["message_vi"] and problem["xpath"] for problem in body["problems"])
    assert doctor.status_code == 200
    assert doctor.json()["ok"] is False
    assert [problem["code"] for problem in doctor.json()["problems"]] == [code]
    after = rpc_count(platform, "UploadAttachment") + rpc_count(platform, "SubmitDocument")
    assert after == before


def test_a_package_from_another_unit_and_a_status_for_nothing_are_refused(base_url: str) -> None:
    with client(base_url, RECIPIENT) as impostor:
        reply = impostor.post("/v1/documents", content=as_two_tier(GOLDEN))
        assert reply.status_code == 403
        assert reply.json()["type"].endswith("/sender-mismatch")
        status = StatusPackage(
            response_for=ResponseFor(SENDER, f"{SENDER},2026/11/20,999/QĐ-UBND"),
            from_=Organ(RECIPIENT),
            status_code=StatusCode("03"),
            timestamp=datetime.now(UTC),
        )
        missing = impostor.post("/v1/statuses", content=status_bytes(status))
        assert missing.status_code == 404
        assert missing.json()["type"].endswith("/no-delivery")


def test_agencies_and_the_caller_requirement(base_url: str) -> None:
    with client(base_url, SENDER) as unit:
        agencies = unit.get("/v1/agencies", params={"page_size": 500}).json()["agencies"]
        codes = {agency["code"] for agency in agencies}
        assert {SENDER, RECIPIENT} <= codes
        bad = unit.get("/v1/agencies", params={"page_size": 100000})
        assert bad.status_code == 400
        assert bad.json()["violations"][0]["field"] == "query.page_size"
    anonymous = httpx.get(f"{base_url}/v1/documents/pending", timeout=10)
    assert anonymous.status_code == 401
    service = httpx.get(
        f"{base_url}/v1/documents/pending",
        headers={"x-lienthong-identity": "service/routing-service"},
        timeout=10,
    )
    assert service.status_code == 403


def test_the_openapi_document_fuzzed_gives_no_server_error(base_url: str, tmp_path: Path) -> None:
    """schemathesis generates requests from the gateway's OpenAPI document: bad bodies, bad
    queries, unknown ids; none may be answered with a 5xx."""
    schemathesis = Path(sys.executable).with_name("schemathesis")
    run = subprocess.run(
        [
            str(schemathesis), "run", f"{base_url}/openapi.json",
            "--checks", "not_a_server_error",
            "--header", f"x-lienthong-identity: unit/{SENDER}",
            "--max-examples", "30",
            "--seed", "1",
            "--generation-database", "none",
            "--request-timeout", "30",
        ],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert re.search(r"Test cases:\s+(\d+) generated, \1 passed", run.stdout), run.stdout
