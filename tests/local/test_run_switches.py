"""``make run``'s development switches: on by default, the environment wins, each one shown."""

from __future__ import annotations

from lienthong_local.run import describe_switches, dev_switches


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
