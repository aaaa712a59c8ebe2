"""The command over mutual TLS: routing-service started as a process with its server
certificate and the client CA (dev auth off), the caller named by the client certificate's
URI SAN (lienthong_testing.identities)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lienthong_cli.errors import ExitCode
from lienthong_local.platform import Platform
from lienthong_testing.cleanup import remove_namespace
from lienthong_testing.identities import IdentityCa, Issued
from lienthong_testing.waiting import eventually_sync

pytestmark = pytest.mark.e2e

LIENTHONG = Path(sys.executable).parent / "lienthong"
DOMAIN = "lienthong.test"
FINANCE = "000.01.00.H23"


@dataclass
class Secured:
    ca: IdentityCa
    endpoint: str


@pytest.fixture(scope="module")
def routing(infra: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    ca = IdentityCa.create(tmp_path_factory.mktemp("pki"), trust_domain=DOMAIN)
    server = ca.server("routing-service")
    prefix = f"clitls{uuid.uuid4().hex[:8]}_"
    tls = {
        "LIENTHONG_TLS_CERT": str(server.cert_path),
        "LIENTHONG_TLS_KEY": str(server.key_path),
        "LIENTHONG_TLS_CLIENT_CA": str(ca.ca_path),
        "LIENTHONG_TRUST_DOMAIN": DOMAIN,
        "LIENTHONG_DEV_AUTH": "false",
    }
    platform = Platform.empty(
        log_dir=tmp_path_factory.mktemp("cli-tls-logs"), prefix=prefix, extra_env=tls
    )
    try:
        service = platform.launch("routing-service")
        secured = Secured(ca, service.endpoint)
        admin = ca.client("operator/registry-admin/test-admin")
        # the health check is behind mTLS too: ready when a real call gets through
        eventually_sync(
            lambda: cli(secured, admin, "units", "list", "--output", "json"),
            until=lambda r: (
                r.returncode != ExitCode.UNAVAILABLE or service.process.poll() is not None
            ),
            timeout=90,
            interval=0.5,
        )
        assert service.process.poll() is None, service.log_path.read_text()
        yield secured
    finally:
        platform.stop_all()
        remove_namespace(prefix, kafka="127.0.0.1:9092", mongo="mongodb://127.0.0.1:27017")


def cli(secured: Secured, client: Issued | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIENTHONG_CONFIG": "/nonexistent/lienthong.toml"}
    env.pop("LIENTHONG_PROFILE", None)
    certificate = ["--cert", str(client.cert_path), "--key", str(client.key_path)] if client else []
    return subprocess.run(
        [str(LIENTHONG), "--endpoint", f"routing={secured.endpoint}", "--cacert",
         str(secured.ca.ca_path), *certificate, *args],
        capture_output=True, text=True, env=env, check=False, timeout=120,
    )  # fmt: skip


def test_the_certificate_names_the_caller(routing: Secured, tmp_path: Path) -> None:
    units = tmp_path / "units.csv"
    units.write_text(
        "code,name,level,parent_code\n"
        "000.00.00.H23,Ủy ban nhân dân tỉnh,province,\n"
        f"{FINANCE},Sở Tài chính,department,000.00.00.H23\n",
        "utf-8",
    )
    admin = routing.ca.client("operator/registry-admin/test-admin")
    clerk = routing.ca.client(f"unit/{FINANCE}")

    imported = cli(routing, admin, "units", "import", str(units), "--output", "json")
    assert imported.returncode == 0, imported.stderr
    got = cli(routing, clerk, "units", "get", FINANCE, "--output", "json")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["name"] == "Sở Tài chính"

    # a unit may read the registry but not write it: the certificate, not a header, decides
    refused = cli(routing, clerk, "--identity", "operator/registry-admin/x", "units", "import",
                  str(units))  # fmt: skip
    assert refused.returncode == ExitCode.NOT_ALLOWED, refused.stderr
    assert "PERMISSION_DENIED" in refused.stderr
    nameless = cli(routing, routing.ca.client(""), "units", "get", FINANCE)
    assert nameless.returncode == ExitCode.NOT_ALLOWED, nameless.stderr
    assert "UNAUTHENTICATED" in nameless.stderr
