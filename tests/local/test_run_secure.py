"""``make run-secure``: the platform started as the target starts it (mTLS on every gRPC port,
Kafka over TLS, dev auth off), and the grpcurl/curl examples it prints, run as printed."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lienthong_local.grpc_tls import GrpcTls
from lienthong_local.platform import KafkaTlsListener, Platform, free_port
from lienthong_local.run import local_platform, main, secure_examples, secure_parts
from lienthong_testing.cleanup import remove_namespace

ROOT = Path(__file__).resolve().parents[2]


def tools_path() -> str:
    gopath = subprocess.run(
        ["go", "env", "GOPATH"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return os.pathsep.join([f"{gopath}/bin", str(ROOT / ".tools" / "bin"), os.environ["PATH"]])


@pytest.fixture(scope="module")
def secure(
    infra: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Platform, GrpcTls]]:
    kafka = KafkaTlsListener.local()
    if kafka is None:
        message = "the local Kafka has no TLS listener (infra-down, infra-up)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("run-secure")
    tls = GrpcTls.open(folder / "grpc-tls")
    prefix = f"runsec{uuid.uuid4().hex[:8]}_"
    env = {"LIENTHONG_GATEWAY_HTTP_PORT": str(free_port())}
    # as main(["--secure"]) does, on free ports (a `make run` may hold the fixed ones)
    with local_platform(
        log_dir=folder / "logs",
        environ={},
        prefix=prefix,
        fixed_ports=False,
        extra_env=env,
        grpc_tls=tls,
        kafka_tls=kafka,
        # signature-service's validation worker may take a minute to start on a loaded machine
        timeout=240,
    ) as platform:
        yield platform, tls
    remove_namespace(prefix, kafka="127.0.0.1:9092", mongo="mongodb://127.0.0.1:27017")


def test_the_printed_examples_call_with_client_certificates(
    secure: tuple[Platform, GrpcTls],
) -> None:
    platform, tls = secure
    path = tools_path()
    if not (shutil.which("grpcurl", path=path) and shutil.which("curl", path=path)):
        pytest.fail("grpcurl and curl are needed: make example-tools installs them")
    examples = secure_examples(platform, tls, ROOT)
    assert all("-plaintext" not in line and "x-lienthong" not in line for line in examples)
    outputs = {}
    for line in examples:
        done = subprocess.run(
            shlex.split(line),
            cwd=ROOT,
            env={**os.environ, "PATH": path},
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        outputs[line.split()[-1]] = done.stdout
    assert "lienthong.document.v1.DocumentService" in outputs["list"]
    report = json.loads(outputs["lienthong.reporting.v1.ReportingService/GetAdoptionReport"])
    assert report["rows"], report
    gateway = f"https://127.0.0.1:{platform.env['LIENTHONG_GATEWAY_HTTP_PORT']}"
    pending = json.loads(outputs[f"{gateway}/v1/documents/pending"])
    assert pending == {"ids": [], "documents": []}


def test_without_the_certificate_the_same_call_is_refused(
    secure: tuple[Platform, GrpcTls],
) -> None:
    platform, _ = secure
    documents = platform.endpoint("document-service")
    done = subprocess.run(
        [
            "grpcurl", "-plaintext", "-H", "x-lienthong-identity: unit/000.01.00.H43",
            "-d", "{}", documents, "lienthong.document.v1.DocumentService/ListInbox",
        ],
        env={**os.environ, "PATH": tools_path()},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )  # fmt: skip
    assert done.returncode != 0, done.stdout


def test_without_a_kafka_tls_listener_it_says_how_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit, match="the local Kafka has no TLS listener"):
        secure_parts(tmp_path, {})
    monkeypatch.setenv("LIENTHONG_DATA_DIR", str(tmp_path))
    with pytest.raises(SystemExit, match="no TLS listener"):
        main(["--secure"])
