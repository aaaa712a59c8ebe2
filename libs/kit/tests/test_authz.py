"""The authorization decision: identities from certificates and headers, rules, refusals."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from lienthong.events.v1.events_pb2 import UnitChanged
from lienthong.routing.v1.routing_service_pb2 import Unit
from lienthong_kit.authz import (
    Identity,
    Kind,
    Role,
    decide,
    either,
    identity_from_header,
    identity_from_uri,
    operators,
    services,
    units,
)
from lienthong_kit.directory import UnitDirectory
from lienthong_kit.errors import PermissionDenied, Unauthenticated, Unavailable

DOMAIN = "lienthong.phutho.gov.vn"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (f"spiffe://{DOMAIN}/unit/000.00.00.H23", Identity(Kind.UNIT, "000.00.00.H23")),
        (
            f"spiffe://{DOMAIN}/service/signature-service",
            Identity(Kind.SERVICE, "signature-service"),
        ),
        (
            f"spiffe://{DOMAIN}/operator/registry-admin/hoa",
            Identity(Kind.OPERATOR, "hoa", Role.REGISTRY_ADMIN),
        ),
        ("spiffe://other.domain/unit/000.00.00.H23", None),  # another trust domain
        (f"spiffe://{DOMAIN}/operator/root/hoa", None),  # no such role
        (f"spiffe://{DOMAIN}/unit/", None),
        (f"spiffe://{DOMAIN}/unit/a/b", None),
        ("signature-service", None),  # a bare name (the old CN convention) is no identity
    ],
)
def test_identities_come_from_uri_sans_of_the_trust_domain(
    uri: str, expected: Identity | None
) -> None:
    assert identity_from_uri(uri, DOMAIN) == expected


def test_the_development_header_names_every_kind() -> None:
    assert identity_from_header("operator/observer/lan") == Identity(
        Kind.OPERATOR, "lan", Role.OBSERVER
    )
    assert identity_from_header("service/routing-service") == Identity(
        Kind.SERVICE, "routing-service"
    )
    assert identity_from_header("nobody") is None


def test_rules_allow_exactly_whom_they_name_and_say_what_is_required() -> None:
    unit = Identity(Kind.UNIT, "000.01.00.H23")
    signature = Identity(Kind.SERVICE, "signature-service")
    routing = Identity(Kind.SERVICE, "routing-service")
    admin = Identity(Kind.OPERATOR, "hoa", Role.REGISTRY_ADMIN)
    observer = Identity(Kind.OPERATOR, "lan", Role.OBSERVER)
    rule = either(units(), services("signature-service"), operators(Role.OBSERVER))
    for allowed in (unit, signature, observer):
        decide(rule, allowed, "GetAttachment")
    for refused in (routing, admin):
        with pytest.raises(PermissionDenied) as refusal:
            decide(rule, refused, "GetAttachment")
        assert "requires an agency unit or the service signature-service or operator role" in (
            refusal.value.message
        )
    with pytest.raises(PermissionDenied, match="operator role registry-admin"):
        decide(operators(Role.REGISTRY_ADMIN), unit, "UpsertUnit")


def test_no_identity_is_unauthenticated_and_no_rule_is_denied() -> None:
    with pytest.raises(Unauthenticated):
        decide(units(), None, "ListInbox")
    with pytest.raises(PermissionDenied, match="not open to anyone"):
        decide(None, Identity(Kind.UNIT, "000.01.00.H23"), "Secret")


def _changed(code: str, *, active: bool, until: str = "", successor: str = "", rev: int) -> Any:
    return UnitChanged(
        unit=Unit(
            code=code, active=active, valid_until=until, successor_code=successor, code_2020=""
        ),
        revision=rev,
    )


def test_the_directory_refuses_unknown_and_closed_units_naming_the_successor() -> None:
    directory = UnitDirectory()
    directory.apply(_changed("000.00.00.H23", active=True, rev=1))
    directory.apply(
        _changed(
            "000.03.12.H23", active=False, until="2025-07-01", successor="000.00.00.H23", rev=5
        )
    )
    # an older revision arriving late does not reopen it
    directory.apply(_changed("000.03.12.H23", active=True, rev=2))
    today = date(2026, 12, 6)
    assert directory.refusal("000.00.00.H23", today) is None
    assert directory.refusal("000.03.12.H23", today) == (
        "unit 000.03.12.H23 was closed on 2025-07-01; its successor is 000.00.00.H23"
    )
    assert directory.refusal("999.99.99.H99", today) == (
        "unit 999.99.99.H99 is not in the province's registry"
    )
    # closing from a date: open the day before, closed from that day
    directory.apply(_changed("000.04.00.H23", active=True, until="2026-12-07", rev=1))
    assert directory.refusal("000.04.00.H23", today) is None
    assert directory.refusal("000.04.00.H23", date(2026, 12, 7)) is not None
    # a transition plan applied ahead closes units inactive from their date: open until then
    directory.apply(_changed("000.05.00.H23", active=False, until="2026-12-07", rev=1))
    assert directory.refusal("000.05.00.H23", today) is None
    assert directory.refusal("000.05.00.H23", date(2026, 12, 7)) is not None
    directory.apply(_changed("000.06.00.H23", active=False, rev=1))
    assert directory.refusal("000.06.00.H23", today) == "unit 000.06.00.H23 was closed"


def test_a_unit_is_not_refused_while_the_registry_is_still_being_read() -> None:
    from lienthong_kit.authz import IDENTITY_HEADER, AccessTable
    from lienthong_kit.gatekeeper import Gatekeeper

    directory = UnitDirectory()
    gate = Gatekeeper(tls=False, dev_auth=True, peers=None, directory=directory)
    gate.admit_tables([("probe.Probe", ["Get"], AccessTable("probe.Probe", {"Get": units()}))])
    caller = {IDENTITY_HEADER: "unit/000.00.00.H23"}
    # a replica just restarted has not read the unit yet: retry later, not "unknown unit"
    with pytest.raises(Unavailable, match="registry is still being read") as info:
        gate.admit("/probe.Probe/Get", None, caller)  # type: ignore[arg-type]
    assert info.value.reason == "REGISTRY_LOADING"
    directory.read.set()
    with pytest.raises(PermissionDenied, match="not in the province's registry"):
        gate.admit("/probe.Probe/Get", None, caller)  # type: ignore[arg-type]
    directory.apply(_changed("000.00.00.H23", active=True, rev=1))
    admitted = gate.admit("/probe.Probe/Get", None, caller)  # type: ignore[arg-type]
    assert admitted is not None
    assert admitted.name == "000.00.00.H23"


def test_only_a_delegate_named_by_the_rule_acts_for_a_unit() -> None:
    from lienthong_kit.authz import act_for, units_or_gateway

    rule = units_or_gateway()
    gateway = Identity(Kind.SERVICE, "gateway-service")
    acting = act_for(rule, gateway, "000.01.00.H23", "SubmitDocument")
    assert acting == Identity(Kind.UNIT, "000.01.00.H23", via="gateway-service")
    assert str(acting) == "unit/000.01.00.H23 (via service/gateway-service)"
    decide(rule, acting, "SubmitDocument")
    with pytest.raises(PermissionDenied, match="on behalf of a unit"):
        act_for(rule, Identity(Kind.SERVICE, "routing-service"), "000.01.00.H23", "X")
    with pytest.raises(PermissionDenied, match="on behalf of a unit"):
        act_for(units(), gateway, "000.01.00.H23", "X")
