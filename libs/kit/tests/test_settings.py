from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from lienthong_kit.settings import KitSettings, SettingsError, load_settings, setting


@dataclass(frozen=True, kw_only=True)
class ExampleSettings(KitSettings):
    lead_days: tuple[int, ...] = setting("LIENTHONG_TEST_LEAD_DAYS", (3, 1))
    secret_path: Path | None = setting("LIENTHONG_TEST_SECRET_PATH", None)
    gateway: str = setting("LIENTHONG_TEST_GATEWAY")


def test_defaults_apply_when_unset() -> None:
    settings = load_settings(ExampleSettings, {"LIENTHONG_TEST_GATEWAY": "http://sms"})
    assert settings.grpc_port == 50051
    assert settings.lead_days == (3, 1)
    assert settings.secret_path is None
    assert settings.dev_auth is False


def test_values_are_parsed_by_type() -> None:
    settings = load_settings(
        ExampleSettings,
        {
            "LIENTHONG_TEST_GATEWAY": "http://sms",
            "LIENTHONG_GRPC_PORT": "6000",
            "LIENTHONG_DEV_AUTH": "yes",
            "LIENTHONG_SHUTDOWN_GRACE_SECONDS": "2.5",
            "LIENTHONG_TEST_LEAD_DAYS": "7, 2,1",
        },
    )
    assert settings.grpc_port == 6000
    assert settings.dev_auth is True
    assert settings.shutdown_grace_seconds == 2.5
    assert settings.lead_days == (7, 2, 1)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(
            ExampleSettings,
            {"LIENTHONG_GRPC_PORT": "fifty", "LIENTHONG_DEV_AUTH": "maybe"},
        )
    problems = info.value.problems
    assert len(problems) == 3
    assert any(p.startswith("LIENTHONG_GRPC_PORT:") for p in problems)
    assert any(p.startswith("LIENTHONG_DEV_AUTH:") for p in problems)
    assert "LIENTHONG_TEST_GATEWAY: required but not set" in problems


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param(
            {"LIENTHONG_TLS_CERT": "/nonexistent/cert.pem"},
            "LIENTHONG_TLS_CERT and LIENTHONG_TLS_KEY must be set together",
            id="cert-without-key",
        ),
        pytest.param(
            {"LIENTHONG_TLS_CLIENT_CA": "/nonexistent/ca.pem"},
            "LIENTHONG_TLS_CLIENT_CA needs LIENTHONG_TLS_CERT and LIENTHONG_TLS_KEY",
            id="client-ca-without-server-cert",
        ),
        pytest.param(
            {"LIENTHONG_LOG_LEVEL": "loud"},
            "LIENTHONG_LOG_LEVEL: 'loud' is not debug, info, warning or error",
            id="unknown-log-level",
        ),
    ],
)
def test_cross_field_problems(env: dict[str, str], expected: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(KitSettings, env)
    assert expected in info.value.problems
