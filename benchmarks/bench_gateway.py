"""The edXML gateway streams packages: peak RSS of the gateway process while a 21 MiB package
(one 16 MiB attachment) is sent through it and fetched back, against its RSS after a small
request. Starts document-, routing- and signature-service and the gateway as processes.

    .venv/bin/python benchmarks/bench_gateway.py          (figures in docs/edxml.md)
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

import httpx

from lienthong_edxml import Attachment, parse_document, write_document
from lienthong_local.platform import Platform, free_port
from lienthong_local.run import RUN_SHAPE, load_sample_registry
from lienthong_testing.cleanup import remove_namespace

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "qd-15-ubnd.edxml"
SERVICES = ("document-service", "routing-service", "signature-service")
SENDER = {"x-lienthong-identity": "unit/000.00.00.H43"}  # the example's sender, in two tiers


def peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def big_package(folder: Path) -> Path:
    pdf = folder / "big.pdf"
    pdf.write_bytes(b"%PDF-1.7\n" + os.urandom(16 * 1024 * 1024) + b"\n%%EOF\n")
    example = parse_document(EXAMPLE.read_bytes())
    attachment = Attachment(
        content_id="big",
        name="big.pdf",
        content_type="application/pdf",
        size=pdf.stat().st_size,
        sha256=hashlib.sha256(pdf.read_bytes()).hexdigest(),
        path=pdf,
    )
    number = str(uuid.uuid4().int % 10**6)
    package = replace(
        example,
        attachments=(attachment,),
        manifest=(),
        document_id="",
        code=replace(example.code, code_number=number),
    ).with_manifest()
    out = folder / "big.edxml"
    with out.open("wb") as sink:
        write_document(package, sink)
    return out


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    package = big_package(folder)
    prefix = f"bgw{uuid.uuid4().hex[:6]}_"
    port = free_port()
    platform = Platform.empty(log_dir=folder / "logs", prefix=prefix)
    try:
        for name in SERVICES:
            platform.launch(name)
        gateway = platform.launch(
            "gateway-service",
            extra_env={
                "LIENTHONG_GATEWAY_HTTP_PORT": str(port),
                "LIENTHONG_GATEWAY_DOCUMENT_SERVICE": platform.endpoint("document-service"),
                "LIENTHONG_GATEWAY_ROUTING_SERVICE": platform.endpoint("routing-service"),
            },
        )
        platform.wait_serving(120, (*SERVICES, "gateway-service"))
        load_sample_registry(platform.endpoint("routing-service"), RUN_SHAPE)
        base = f"http://127.0.0.1:{port}"
        httpx.post(f"{base}/v1/doctor", headers=SENDER, content=EXAMPLE.read_bytes(), timeout=60)
        before = peak_mib(gateway.process.pid)
        started = time.perf_counter()
        with package.open("rb") as body:
            sent = httpx.post(f"{base}/v1/documents", headers=SENDER, content=body, timeout=300)
        assert sent.status_code == 201, sent.text
        send_seconds = time.perf_counter() - started
        after_send = peak_mib(gateway.process.pid)
        started = time.perf_counter()
        url = f"{base}/v1/documents/{sent.json()['document_id']}"
        with httpx.stream("GET", url, headers=SENDER, timeout=300) as got:
            size = sum(len(chunk) for chunk in got.iter_bytes())
        get_seconds = time.perf_counter() - started
        after_get = peak_mib(gateway.process.pid)
        mib = package.stat().st_size / 2**20
        print(f"gateway: {mib:.1f} MiB package, peak RSS {before:.0f} MiB after a small request")
        print(f"  send {send_seconds:.2f} s, peak RSS +{after_send - before:.1f} MiB")
        print(
            f"  get  {get_seconds:.2f} s ({size / 2**20:.1f} MiB), peak +{after_get - before:.1f}"
        )
    finally:
        platform.stop_all()
        remove_namespace(prefix, kafka="127.0.0.1:9092", mongo="mongodb://127.0.0.1:27017")


if __name__ == "__main__":
    main()
