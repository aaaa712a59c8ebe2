"""signature-service's settings: documented, and every problem reported at once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lienthong_kit.settings import SettingsError, describe_settings, load_settings
from signature_service.settings import Settings

DOCS = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def test_every_setting_is_on_the_configuration_page() -> None:
    documented = set(re.findall(r"^\| `(LIENTHONG_[A-Z0-9_]+)` \|", DOCS.read_text(), re.M))
    in_code = {env for env, _, _ in describe_settings(Settings)}
    assert in_code <= documented, sorted(in_code - documented)


def test_the_production_defaults_are_strict() -> None:
    settings = load_settings(Settings, {})
    assert settings.signature_revocation_mode == "require"
    assert settings.signature_accept_unsigned is False


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        pytest.param(
            {"LIENTHONG_SIGNATURE_REVOCATION_MODE": "maybe"},
            "LIENTHONG_SIGNATURE_REVOCATION_MODE: 'maybe' is not one of",
            id="revocation-mode",
        ),
        pytest.param(
            {"LIENTHONG_SIGNATURE_POLICY": "QĐ=organisation"},
            "LIENTHONG_SIGNATURE_POLICY: 'QĐ=organisation': expected",
            id="policy",
        ),
        pytest.param(
            {"LIENTHONG_SIGNATURE_TRUST_ANCHORS": "/no/such/anchors"},
            "LIENTHONG_SIGNATURE_TRUST_ANCHORS: no such file or folder",
            id="anchors-path",
        ),
        pytest.param(
            {"LIENTHONG_SIGNATURE_REVOCATION_OFFLINE": "true"},
            "LIENTHONG_SIGNATURE_REVOCATION_OFFLINE needs LIENTHONG_SIGNATURE_REVOCATION_DIR",
            id="offline-without-dir",
        ),
        pytest.param(
            {"LIENTHONG_SIGNATURE_TRUST_RELOAD_SECONDS": "0"},
            "LIENTHONG_SIGNATURE_TRUST_RELOAD_SECONDS: must be greater than 0",
            id="reload-zero",
        ),
        pytest.param(
            {"LIENTHONG_SIGNATURE_VALIDATION_TIMEOUT_SECONDS": "-1"},
            "LIENTHONG_SIGNATURE_VALIDATION_TIMEOUT_SECONDS: must be greater than 0",
            id="timeout-negative",
        ),
        pytest.param(
            {"LIENTHONG_SIGNATURE_MEMORY_PER_WORKER_BYTES": "-1"},
            "LIENTHONG_SIGNATURE_MEMORY_PER_WORKER_BYTES: must be 0 or more",
            id="memory-negative",
        ),
        pytest.param(
            {"LIENTHONG_SIGNATURE_MAX_ATTEMPTS": "0"},
            "LIENTHONG_SIGNATURE_MAX_ATTEMPTS: must be 1 or more",
            id="attempts-zero",
        ),
        pytest.param(
            {"LIENTHONG_SIGNATURE_MAX_DOCUMENT_BYTES": "0"},
            "LIENTHONG_SIGNATURE_MAX_DOCUMENT_BYTES: must be greater than 0",
            id="document-cap-zero",
        ),
        pytest.param(
            {"LIENTHONG_SIGNATURE_REVOCATION_MAX_BYTES": "0"},
            "LIENTHONG_SIGNATURE_REVOCATION_MAX_BYTES: must be greater than 0",
            id="revocation-cap-zero",
        ),
        pytest.param(
            {"LIENTHONG_SIGNATURE_PRECHECK_QUEUE": "-2"},
            "LIENTHONG_SIGNATURE_PRECHECK_QUEUE: must be 0 or more",
            id="precheck-queue-negative",
        ),
        pytest.param(
            {"LIENTHONG_SIGNATURE_SPOOL_DIR": "/no/such/spool"},
            "LIENTHONG_SIGNATURE_SPOOL_DIR: no such folder",
            id="spool-missing",
        ),
        pytest.param(
            {"LIENTHONG_SIGNATURE_DOCUMENT_SERVICE_CA": "/etc/hostname"},
            "LIENTHONG_SIGNATURE_DOCUMENT_SERVICE_CA, LIENTHONG_SIGNATURE_CLIENT_CERT and"
            " LIENTHONG_SIGNATURE_CLIENT_KEY must be set together",
            id="ca-without-client-certificate",
        ),
        pytest.param(
            {
                "LIENTHONG_SIGNATURE_DOCUMENT_SERVICE_CA": "/etc/hostname",
                "LIENTHONG_SIGNATURE_CLIENT_CERT": "/no/such/client.pem",
                "LIENTHONG_SIGNATURE_CLIENT_KEY": "/etc/hostname",
            },
            "LIENTHONG_SIGNATURE_CLIENT_CERT: no such file: /no/such/client.pem",
            id="client-certificate-missing",
        ),
        pytest.param(
            # the prod overlay's defect: mTLS on every port, the fetch still plaintext
            {
                "LIENTHONG_DEV_AUTH": "false",
                "LIENTHONG_TLS_CERT": "/etc/hostname",
                "LIENTHONG_TLS_KEY": "/etc/hostname",
                "LIENTHONG_TLS_CLIENT_CA": "/etc/hostname",
            },
            "mTLS is on (LIENTHONG_TLS_CLIENT_CA) but the attachment fetch is plaintext",
            id="mtls-with-a-plaintext-fetch",
        ),
    ],
)
def test_bad_settings_are_named(env: dict[str, str], problem: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(Settings, env)
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems
