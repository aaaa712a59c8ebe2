"""``make run``'s development switches and demo PKI: on by default, the environment wins, each
one shown."""

from __future__ import annotations

from pathlib import Path

from lienthong_local.run import demo_settings, describe_demo, describe_switches, dev_switches
from lienthong_testing.pki import demo_pki


def test_the_defaults_let_the_readme_examples_flow() -> None:
    assert dev_switches({}) == {
        "LIENTHONG_DEV_AUTH": "true",
        "LIENTHONG_SIGNATURE_ACCEPT_UNSIGNED": "true",
        "LIENTHONG_FAILPOINTS": "",
    }


def test_a_switch_set_in_the_environment_wins_and_is_shown_off() -> None:
    switches = dev_switches({"LIENTHONG_SIGNATURE_ACCEPT_UNSIGNED": "false", "OTHER": "x"})
    assert switches["LIENTHONG_SIGNATURE_ACCEPT_UNSIGNED"] == "false"
    assert switches["LIENTHONG_DEV_AUTH"] == "true"
    shown = {line.split()[0]: line.split()[1] for line in describe_switches(switches)}
    assert shown == {
        "LIENTHONG_DEV_AUTH": "on",
        "LIENTHONG_SIGNATURE_ACCEPT_UNSIGNED": "off",
        "LIENTHONG_FAILPOINTS": "off",
    }


def test_a_value_that_is_not_a_boolean_is_named() -> None:
    shown = describe_switches(dev_switches({"LIENTHONG_DEV_AUTH": "maybe"}))
    assert "'maybe' is not a boolean" in shown[0]


def test_the_demo_pki_is_trusted_unless_the_environment_names_other_trust(tmp_path: Path) -> None:
    demo = demo_pki(tmp_path / "demo")
    assert demo_settings(demo, {}) == demo.env
    mine = {"LIENTHONG_SIGNATURE_TRUST_ANCHORS": "/etc/lienthong/roots.pem"}
    settings = demo_settings(demo, mine)
    assert "LIENTHONG_SIGNATURE_TRUST_ANCHORS" not in settings
    assert settings["LIENTHONG_SIGNATURE_REVOCATION_DIR"] == str(demo.folder / "pki" / "crl")
    assert any(
        "not the demo's: LIENTHONG_SIGNATURE_TRUST_ANCHORS" in line
        for line in describe_demo(demo, mine)
    )
    shown = "\n".join(describe_demo(demo, {}))
    for name in (*demo.samples, demo.certificate.name, "operator/trust-admin/"):
        assert name in shown
