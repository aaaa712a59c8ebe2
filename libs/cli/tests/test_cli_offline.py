"""The command without a platform: profiles, usage errors, exit codes, the shared header."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from lienthong.reporting.v1 import reporting_service_pb2 as pb
from lienthong_cli.connection import IDENTITY_HEADER, ROLES
from lienthong_cli.errors import ExitCode, exit_code_for
from lienthong_cli.report_model import vn_share
from lienthong_kit import authz

LIENTHONG = Path(sys.executable).parent / "lienthong"


def run(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIENTHONG_CONFIG": str(config)}
    env.pop("LIENTHONG_PROFILE", None)
    return subprocess.run(
        [str(LIENTHONG), *args], capture_output=True, text=True, env=env, check=False, timeout=60
    )


def test_the_identity_header_and_roles_are_the_ones_the_services_read() -> None:
    assert IDENTITY_HEADER == authz.IDENTITY_HEADER
    assert tuple(authz.Role) == ROLES


def test_a_malformed_identity_is_a_usage_error(tmp_path: Path) -> None:
    result = run("--identity", "operator/janitor/hoa", "units", "list", config=tmp_path / "c.toml")

    assert result.returncode == ExitCode.USAGE
    assert "unknown operator role 'janitor'" in result.stderr


@pytest.mark.parametrize(
    ("status", "code"),
    [
        pytest.param(grpc.StatusCode.INVALID_ARGUMENT, ExitCode.REFUSED, id="invalid"),
        pytest.param(grpc.StatusCode.UNAVAILABLE, ExitCode.UNAVAILABLE, id="unavailable"),
        pytest.param(grpc.StatusCode.NOT_FOUND, ExitCode.NOT_FOUND, id="not-found"),
        pytest.param(grpc.StatusCode.PERMISSION_DENIED, ExitCode.NOT_ALLOWED, id="denied"),
        pytest.param(grpc.StatusCode.INTERNAL, ExitCode.PLATFORM_FAILED, id="internal"),
    ],
)
def test_status_codes_map_to_exit_codes(status: grpc.StatusCode, code: ExitCode) -> None:
    assert exit_code_for(status) == code


@pytest.mark.parametrize(
    ("numerator", "denominator", "shown"),
    [
        pytest.param(34503, 45922, "75,1%", id="seed-004-incoming"),
        pytest.param(6241, 11271, "55,4%", id="seed-004-outgoing"),
        pytest.param(1, 8, "12,5%", id="half-up"),
        pytest.param(0, 0, "—", id="nothing-counted"),
    ],
)
def test_shares_print_as_the_province_prints_them(
    numerator: int, denominator: int, shown: str
) -> None:
    assert vn_share(pb.Share(numerator=numerator, denominator=denominator)) == shown


def test_profiles_are_added_used_and_shown(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    added = run(
        "profile", "add", "hoabinh", "--host", "10.0.0.5", "--identity", "unit/000.00.00.H23",
        "--endpoint", "reporting=report.local:443", config=config,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    run("profile", "add", "other", "--host", "10.0.0.6", config=config)

    shown = run("profile", "show", "--output", "json", config=config)

    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["profile"] == "hoabinh"
    assert data["endpoints"]["document"] == "10.0.0.5:50051"
    assert data["endpoints"]["reporting"] == "report.local:443"
    assert data["identity"] == "unit/000.00.00.H23"
    assert data["caller"] == "unit/000.00.00.H23"
    assert run("profile", "use", "other", config=config).returncode == 0
    listed = json.loads(run("profile", "list", "--output", "json", config=config).stdout)
    assert listed["current"] == "other"
    assert sorted(listed["profiles"]) == ["hoabinh", "other"]


def test_an_unknown_profile_is_a_usage_error(tmp_path: Path) -> None:
    result = run("--profile", "nowhere", "units", "list", config=tmp_path / "none.toml")

    assert result.returncode == ExitCode.USAGE
    assert "no profile 'nowhere'" in result.stderr


def test_a_bad_endpoint_option_is_a_usage_error(tmp_path: Path) -> None:
    result = run("--endpoint", "mail=x:1", "units", "list", config=tmp_path / "c.toml")

    assert result.returncode == ExitCode.USAGE
    assert "SERVICE=HOST:PORT" in result.stderr


def test_no_service_listening_exits_unavailable(tmp_path: Path) -> None:
    result = run("--host", "127.0.0.1", "--endpoint", "routing=127.0.0.1:1", "units", "list",
                 config=tmp_path / "c.toml")  # fmt: skip

    assert result.returncode == ExitCode.UNAVAILABLE
    assert "UNAVAILABLE" in result.stderr
