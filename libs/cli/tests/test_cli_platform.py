"""The command as a subprocess against the five services started as processes on the real
broker and store (lienthong_local's launcher, a namespace of its own)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import grpc
import openpyxl
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from lienthong.reporting.v1 import reporting_service_pb2 as rep_pb
from lienthong.reporting.v1.reporting_service_pb2_grpc import ReportingServiceStub
from lienthong.routing.v1 import routing_service_pb2 as routing_pb
from lienthong.routing.v1.routing_service_pb2_grpc import RoutingServiceStub
from lienthong.signature.v1 import signature_service_pb2 as sig_pb
from lienthong.signature.v1.signature_service_pb2_grpc import SignatureServiceStub
from lienthong_cli.errors import ExitCode
from lienthong_cli.report_model import LEVEL_LABELS, LEVELS, ratio
from lienthong_local.platform import Platform
from lienthong_local.sample import sample_units
from lienthong_testing.callers import OBSERVER, REGISTRY_ADMIN, as_unit
from lienthong_testing.cleanup import remove_namespace
from lienthong_testing.pki import LocalPki, make_pdf, modify_signed_bytes, running_pki, sign_pdf
from lienthong_testing.waiting import eventually_sync

pytestmark = pytest.mark.e2e

LIENTHONG = Path(sys.executable).parent / "lienthong"
PROVINCE = "000.00.00.H23"
FINANCE = "000.01.00.H23"
DISTRICT = "000.00.31.H23"
VIETNAM = timezone(timedelta(hours=7))
ADMIN = "operator/registry-admin/test-admin"
WATCHER = "operator/observer/test-observer"


def load_registry(endpoint: str) -> None:
    with grpc.insecure_channel(endpoint) as channel:
        stub = RoutingServiceStub(channel)
        for unit in sample_units():
            request = routing_pb.UpsertUnitRequest(unit=unit)
            stub.UpsertUnit(request, metadata=REGISTRY_ADMIN, timeout=10)


@pytest.fixture(scope="module")
def audit_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The audit signing key (document-service's) and its public half (the auditors')."""
    folder = tmp_path_factory.mktemp("audit-key")
    key = Ed25519PrivateKey.generate()
    private, public = folder / "audit.key.pem", folder / "audit.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPki]:
    """The test PKI (with its CRL server and OCSP responder) signature-service trusts."""
    with running_pki(tmp_path_factory.mktemp("pki")) as running:
        yield running


@pytest.fixture(scope="module")
def platform(
    infra: None,
    tmp_path_factory: pytest.TempPathFactory,
    audit_keys: tuple[Path, Path],
    pki: LocalPki,
) -> Iterator[Platform]:
    prefix = f"cli{uuid.uuid4().hex[:8]}_"
    signing = {
        "LIENTHONG_AUDIT_SIGNING_KEY": str(audit_keys[0]),
        "LIENTHONG_AUDIT_CHECKPOINT_SECONDS": "1",
        "LIENTHONG_SIGNATURE_TRUST_ANCHORS": str(pki.anchors_file),
        "LIENTHONG_SIGNATURE_INTERMEDIATES": str(pki.intermediates_file),
    }
    # five services and the gateway starting on a machine shared with other test runs
    with Platform.start(
        log_dir=tmp_path_factory.mktemp("cli-logs"), prefix=prefix, extra_env=signing, timeout=300
    ) as running:
        load_registry(running.endpoint("routing-service"))
        yield running
    remove_namespace(prefix, kafka="127.0.0.1:9092", mongo="mongodb://127.0.0.1:27017")


def endpoints(platform: Platform) -> list[str]:
    args = []
    for name in ("document", "routing", "signature", "notification", "reporting"):
        args += ["--endpoint", f"{name}={platform.endpoint(f'{name}-service')}"]
    return args


def cli(
    platform: Platform, *args: str, unit: str = "", identity: str = "", cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIENTHONG_CONFIG": "/nonexistent/lienthong.toml"}
    env.pop("LIENTHONG_PROFILE", None)
    caller = identity or (f"unit/{unit}" if unit else "")
    identity_args = ["--identity", caller] if caller else []
    return subprocess.run(
        [str(LIENTHONG), *endpoints(platform), *identity_args, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
        timeout=120,
    )


def ok(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip().startswith(("{", "[")) else None


def test_an_import_with_bad_rows_lists_every_one_and_applies_nothing(
    platform: Platform, tmp_path: Path
) -> None:
    units = tmp_path / "units.csv"
    units.write_text(
        "code,name,level,parent_code\n"
        "000.41.31.H23,Xã Mới Một,commune,000.00.31.H23\n"
        "not a code,Xã Sai Mã,commune,000.00.31.H23\n"
        "000.42.31.H23,,commune,000.00.31.H23\n"
        "000.43.31.H23,Xã Mồ Côi,commune,000.00.99.H23\n",
        "utf-8",
    )

    result = cli(platform, "units", "import", str(units), identity=ADMIN)

    assert result.returncode == ExitCode.REFUSED
    assert "3 problems, nothing imported" in result.stderr
    assert "line 3: code:" in result.stderr
    assert "line 4: name: is required" in result.stderr
    assert "line 5: parent_code: no unit '000.00.99.H23' in the registry" in result.stderr
    listed = ok(
        cli(platform, "units", "list", "--parent", DISTRICT, "--output", "json", identity=ADMIN)
    )
    assert "000.41.31.H23" not in {unit["code"] for unit in listed}


def test_an_exported_registry_imports_back_from_xlsx(platform: Platform, tmp_path: Path) -> None:
    exported = tmp_path / "district.xlsx"
    ok(cli(platform, "units", "export", str(exported), "--parent", DISTRICT, identity=ADMIN))
    sheet = openpyxl.load_workbook(exported).active
    assert sheet is not None
    sheet.append(["000.44.31.H23", "", "Xã Thử Nghiệm", "commune", DISTRICT, "true"])
    openpyxl.Workbook.save(sheet.parent, exported)

    result = ok(cli(platform, "units", "import", str(exported), "--output", "json", identity=ADMIN))

    assert result["created"] == 1
    got = ok(cli(platform, "units", "get", "000.44.31.H23", "--output", "json", unit=PROVINCE))
    assert got["name"] == "Xã Thử Nghiệm"


def send(platform: Platform, tmp_path: Path, to: str, number: str) -> dict[str, Any]:
    attachment = tmp_path / f"cong-van-{number}.pdf"
    # a readable (unsigned) PDF of about 600 KB: make run accepts unsigned documents, never
    # unreadable ones
    attachment.write_bytes(make_pdf("CONG VAN " + "X" * 600_000))
    sent = ok(
        cli(
            platform, "documents", "send", str(attachment), "--to", to, "--number", number,
            "--notation", "UBND-VP", "--subject", "Về việc báo cáo chuyển đổi số tháng",
            "--output", "json", unit=PROVINCE,
        )
    )  # fmt: skip
    assert sent["attachments"][0]["size_bytes"] == str(attachment.stat().st_size)
    return dict(sent["document"])


def test_a_sent_file_reaches_the_recipients_inbox(platform: Platform, tmp_path: Path) -> None:
    document = send(platform, tmp_path, FINANCE, "301")

    def inbox() -> list[dict[str, Any]]:
        return list(ok(cli(platform, "inbox", "list", "--output", "json", unit=FINANCE)))

    entries = eventually_sync(
        inbox,
        until=lambda e: document["document_id"] in {x["document"]["document_id"] for x in e},
        timeout=60,
    )
    entry = next(e for e in entries if e["document"]["document_id"] == document["document_id"])
    assert entry["document"]["subject"] == "Về việc báo cáo chuyển đổi số tháng"
    acked = ok(cli(platform, "inbox", "ack", entry["delivery_id"], "03", "--output", "json",
                   unit=FINANCE))  # fmt: skip
    assert acked["status_code"] == "03"
    tracked = ok(cli(platform, "documents", "track", document["document_id"], "--output", "json",
                     unit=PROVINCE))  # fmt: skip
    assert tracked["recipients"][0]["status_code"] == "03"


def test_inbox_watch_receives_a_document(platform: Platform, tmp_path: Path) -> None:
    recipient = "000.02.00.H23"
    since = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    env = {**os.environ, "LIENTHONG_CONFIG": "/nonexistent/lienthong.toml"}
    # --since before the send: the document arrives whether the watch was up before it or not
    watch = subprocess.Popen(
        [str(LIENTHONG), *endpoints(platform), "--identity", f"unit/{recipient}", "inbox", "watch",
         "--since", since, "--count", "1", "--output", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        document = send(platform, tmp_path, recipient, "302")
        stdout, stderr = watch.communicate(timeout=90)
    finally:
        watch.kill()
        watch.wait()  # reaped here, not warned about in a later test
    assert watch.returncode == 0, stderr
    entry = json.loads(stdout.splitlines()[0])
    assert entry["document"]["document_id"] == document["document_id"]


def reference_report(platform: Platform, period: str) -> list[rep_pb.AdoptionRow]:
    with grpc.insecure_channel(platform.endpoint("reporting-service")) as channel:
        reply = ReportingServiceStub(channel).GetAdoptionReport(
            rep_pb.GetAdoptionReportRequest(
                period=period, scope=rep_pb.AdoptionScope(per_unit=True)
            ),
            metadata=OBSERVER,
            timeout=30,
        )
    return list(reply.rows)


def test_the_report_document_holds_the_reports_figures(platform: Platform, tmp_path: Path) -> None:
    document = send(platform, tmp_path, DISTRICT, "303")
    submitted = datetime.fromisoformat(document["submitted_at"].replace("Z", "+00:00"))
    period = submitted.astimezone(VIETNAM).strftime("%Y-%m")
    rows = eventually_sync(
        lambda: reference_report(platform, period),
        until=lambda rows: (
            rows[0].outgoing_over_network >= 1
            and any(r.unit_code == DISTRICT and r.incoming_over_network >= 1 for r in rows)
        ),
        timeout=60,
    )
    xlsx, pdf = tmp_path / "bao-cao.xlsx", tmp_path / "bao-cao.pdf"

    printed = ok(cli(platform, "report", "--period", period, "--xlsx", str(xlsx), "--pdf",
                     str(pdf), "--output", "json", identity=WATCHER))  # fmt: skip

    assert len(printed["rows"]) == 4  # the province, then each level
    summary = openpyxl.load_workbook(xlsx)["Tổng hợp"]
    by_label = {summary.cell(row=r, column=1).value: r for r in range(5, 9)}
    expected = {LEVEL_LABELS[0]: rows[0]} | {
        LEVEL_LABELS[r.level]: r for r in rows if r.kind == rep_pb.RowKind.ROW_KIND_LEVEL
    }
    assert set(by_label) == {LEVEL_LABELS[0], *(LEVEL_LABELS[level] for level in LEVELS)}
    for label, row in expected.items():
        cells = [summary.cell(row=by_label[label], column=c).value for c in range(2, 11)]
        assert cells == [
            row.incoming_total, row.incoming_over_network, ratio(row.incoming_network_share),
            row.outgoing_total, row.outgoing_over_network, ratio(row.outgoing_network_share),
            row.units, row.units_connected, row.units_only_receiving,
        ], label  # fmt: skip
    signed = openpyxl.load_workbook(xlsx)["Ký số"]
    sender = next(r for r in rows if r.unit_code == PROVINCE)
    line = next(r for r in range(4, signed.max_row + 1) if signed.cell(r, 1).value == PROVINCE)
    assert signed.cell(line, 3).value == sender.outgoing_over_network
    assert signed.cell(line, 4).value == sender.outgoing_personal_signed
    receiving = openpyxl.load_workbook(xlsx)["Chỉ nhận"]
    only = {receiving.cell(r, 1).value for r in range(4, receiving.max_row + 1)}
    assert only == {
        r.unit_code
        for r in rows
        if r.kind == rep_pb.RowKind.ROW_KIND_UNIT and r.units_only_receiving
    }
    assert DISTRICT in only

    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    assert re.search(r"^Pages:\s+2$", info.stdout, re.MULTILINE), info.stdout
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == 2
    with Image.open(pages[0]) as image:
        grey = image.convert("L")
        dark = sum(grey.histogram()[:128])  # pixels darker than mid-grey
    assert dark > 0.01 * grey.width * grey.height  # text, table and charts, not a blank page


def export_evidence(platform: Platform, tmp_path: Path, document_id: str) -> Path:
    """An observer exports the audit log; the sender exports the bundle with it, once a signed
    checkpoint covers the document's entries (exit 3 until then)."""
    audit, bundle = tmp_path / "audit.jsonl", tmp_path / "bang-chung.zip"

    def attempt() -> subprocess.CompletedProcess[str]:
        ok(cli(platform, "audit", "export", str(audit), identity=WATCHER))
        return cli(platform, "evidence", "export", document_id, "-o", str(bundle),
                   "--audit", str(audit), unit=PROVINCE)  # fmt: skip

    result = eventually_sync(
        attempt, until=lambda r: r.returncode != ExitCode.UNAVAILABLE, timeout=60, interval=1.0
    )
    assert result.returncode == 0, result.stderr
    return bundle


def rewrite(bundle: Path, edit: dict[str, bytes], *, fix_manifest: bool = False) -> Path:
    """A copy of the bundle with files replaced; ``fix_manifest``: their hashes recomputed
    in the manifest too, as an insider would."""
    tampered = bundle.with_name("tampered.zip")
    with zipfile.ZipFile(bundle) as source:
        files = {name: source.read(name) for name in source.namelist()}
    files.update(edit)
    if fix_manifest:
        manifest = json.loads(files["manifest.json"])
        for name, data in edit.items():
            manifest["files"][name]["sha256"] = hashlib.sha256(data).hexdigest()
        files["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(tampered, "w") as target:
        for name, data in files.items():
            target.writestr(name, data)
    return tampered


def verify(platform: Platform, bundle: Path, public_key: Path) -> subprocess.CompletedProcess[str]:
    # no endpoint and no identity: the verifier needs nothing of the platform
    env = {**os.environ, "LIENTHONG_CONFIG": "/nonexistent/lienthong.toml"}
    return subprocess.run(
        [str(LIENTHONG), "--host", "192.0.2.1", "evidence", "verify", str(bundle),
         "--public-key", str(public_key), "--output", "json"],
        capture_output=True, text=True, env=env, check=False, timeout=60,
    )  # fmt: skip


def test_an_evidence_bundle_verifies_offline_and_names_what_was_changed(
    platform: Platform, tmp_path: Path, audit_keys: tuple[Path, Path]
) -> None:
    document = send(platform, tmp_path, FINANCE, "304")
    bundle = export_evidence(platform, tmp_path, document["document_id"])

    report = ok(verify(platform, bundle, audit_keys[1]))
    whole = cli(platform, "audit", "verify", str(tmp_path / "audit.jsonl"), "--public-key",
                str(audit_keys[1]), "--allow-unsigned", "--output", "json")  # fmt: skip
    assert ok(whole)["intact"] is True

    assert report["intact"] is True
    assert report["document_id"] == document["document_id"]
    assert report["attachments"] == 1
    assert report["audit_entries"] >= 1
    assert report["checkpoints"] >= 1
    with zipfile.ZipFile(bundle) as opened:
        names = opened.namelist()
        attachment = next(n for n in names if n.startswith("attachments/"))
        lines = opened.read("audit.jsonl").decode().splitlines()
    assert attachment.endswith("cong-van-304.pdf")
    assert (tmp_path / "cong-van-304.pdf").read_bytes() == zipfile.ZipFile(bundle).read(attachment)

    swapped = verify(platform, rewrite(bundle, {attachment: b"%PDF-1.4 forged"}), audit_keys[1])
    assert swapped.returncode == ExitCode.REFUSED
    problems = json.loads(swapped.stdout)["problems"]
    assert f"{attachment}: changed" in problems[0]
    assert any("not the one the platform recorded" in p for p in problems)

    # an insider edits an audit entry and recomputes the manifest: the signatures still catch it
    index, line = next((i, x) for i, x in enumerate(lines) if '"entry"' in x)
    record = json.loads(line)
    record["entry"]["event_type"] = "document.recalled"
    lines[index] = json.dumps(record)
    edited = ("\n".join(lines) + "\n").encode()
    rewritten = verify(
        platform, rewrite(bundle, {"audit.jsonl": edited}, fix_manifest=True), audit_keys[1]
    )
    assert rewritten.returncode == ExitCode.REFUSED
    problems = json.loads(rewritten.stdout)["problems"]
    entry = record["entry"]
    assert problems == [
        f"audit.jsonl: {entry['chain']}#{entry['seq']}: content does not match its hash"
        f" (first broken entry: {entry['event_id']})"
    ]

    other = tmp_path / "other.pub.pem"
    other.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    forged = verify(platform, bundle, other)
    assert forged.returncode == ExitCode.REFUSED
    assert "is signed by unknown key" in json.loads(forged.stdout)["problems"][0]


def long_pdf(min_bytes: int) -> bytes:
    """A PDF of as many pages of text as it takes to reach ``min_bytes`` (uncompressed
    streams, so the size is content, not padding); page 1 carries the ORIGINAL marker."""
    lines = " ".join(
        f"(Dong {n:02d}: so lieu lien thong van ban dien tu cua cac co quan nam 2026) Tj T*"
        for n in range(60)
    )
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", b"<< /Type /Font /Subtype /Type1"
               b" /BaseFont /Helvetica >>"]  # fmt: skip
    kids: list[int] = []
    size = 0
    while size < min_bytes:
        page = len(kids) + 1
        title = f"BT /F1 14 Tf 72 820 Td (QUYET DINH 15/QD-UBND ORIGINAL trang {page}) Tj ET "
        content = (title + f"BT /F1 9 Tf 11 TL 40 800 Td {lines} ET").encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n%b\nendstream" % (len(content), content))
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents %d 0 R"
            b" /Resources << /Font << /F1 3 0 R >> >> >>" % len(objects)
        )
        kids.append(len(objects))
        size += len(content) + 200
    pages = " ".join(f"{kid} 0 R" for kid in kids)
    objects[1] = f"<< /Type /Pages /Kids [{pages}] /Count {len(kids)} >>".encode()
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%b\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


# 6 MB uploaded three times, fetched and validated four: minutes on a loaded machine
@pytest.mark.timeout(900)
def test_a_signed_pdf_over_5_mb_is_checked_streamed_then_sent(
    platform: Platform, pki: LocalPki, tmp_path: Path
) -> None:
    signers = pki.signers
    signed = sign_pdf(
        sign_pdf(long_pdf(6 * 1024 * 1024), signers["person"]), signers["organisation"]
    )
    big = tmp_path / "qd-15-phu-luc-day-du.pdf"
    big.write_bytes(signed)
    assert big.stat().st_size > 5 * 1024 * 1024

    checked = ok(cli(platform, "documents", "check", str(big), "--output", "json", unit=PROVINCE))
    verification, attachment = checked["verification"], checked["attachments"][0]
    assert verification["verdict"] == "VERDICT_ACCEPTED", verification
    assert [s["valid"] for s in verification["signatures"]] == [True, True]
    assert attachment["size_bytes"] == str(len(signed))
    assert attachment["sha256"] == hashlib.sha256(signed).hexdigest()

    tampered = tmp_path / "qd-15-sua.pdf"
    tampered.write_bytes(modify_signed_bytes(signed))
    refused = cli(platform, "documents", "check", str(tampered), unit=PROVINCE)
    assert refused.returncode == ExitCode.REFUSED, refused.stderr
    assert refused.stdout.startswith("REJECTED"), refused.stdout
    assert "changed after signing" in refused.stdout

    # another unit cannot have the province's upload checked (nor learn it exists)
    with (
        grpc.insecure_channel(platform.endpoint("signature-service")) as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        SignatureServiceStub(channel).VerifyAttachments(
            sig_pb.VerifyAttachmentsRequest(attachment_ids=[attachment["attachment_id"]]),
            metadata=as_unit(FINANCE),
            timeout=30,
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND

    sent = ok(
        cli(
            platform, "documents", "send", str(big), "--check", "--to", FINANCE, "--number",
            "305", "--notation", "QĐ-UBND", "--type", "QĐ", "--subject",
            "Về việc phê duyệt phụ lục số liệu", "--output", "json", unit=PROVINCE,
        )
    )  # fmt: skip
    document_id = sent["document"]["document_id"]
    assert sent["attachments"][0]["sha256"] == attachment["sha256"]
    read = eventually_sync(
        lambda: ok(cli(platform, "documents", "get", document_id, "-o", "json", unit=FINANCE)),
        until=lambda r: bool(r.get("verification", {}).get("verdict")),
        timeout=90,
    )
    assert read["verification"]["verdict"] == "VERDICT_ACCEPTED", read["verification"]
    assert read["attachments"][0]["size_bytes"] == str(len(signed))

    not_sent = cli(platform, "documents", "send", str(tampered), "--check", "--to", FINANCE,
                   "--number", "306", "--notation", "QĐ-UBND", "--subject", "Sửa",
                   unit=PROVINCE)  # fmt: skip
    assert not_sent.returncode == ExitCode.REFUSED
    assert "not sent" in not_sent.stderr
