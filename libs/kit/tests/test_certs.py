"""Client certificates to identities, the client CRL re-read when it changes, expiry."""

from __future__ import annotations

from pathlib import Path

import pytest

from lienthong_kit.authz import Identity, Kind, Role
from lienthong_kit.certs import PeerCertificates, days_to_expiry, load_pem_certificates
from lienthong_kit.errors import Unauthenticated
from lienthong_testing.identities import IdentityCa


def test_a_certificate_names_its_identity_and_a_revoked_one_is_refused(tmp_path: Path) -> None:
    ca = IdentityCa.create(tmp_path, trust_domain="lienthong.test")
    clerk = ca.client("unit/000.01.00.H23")
    admin = ca.client("operator/registry-admin/hoa")
    peers = PeerCertificates(trust_domain="lienthong.test", crl_path=ca.crl_path)
    assert peers.identify(clerk.cert) == Identity(Kind.UNIT, "000.01.00.H23")
    assert peers.identify(admin.cert) == Identity(Kind.OPERATOR, "hoa", Role.REGISTRY_ADMIN)
    ca.revoke(clerk)
    ca.write_crl()  # the operator updates the file: no restart
    with pytest.raises(Unauthenticated, match="revoked"):
        peers.identify(clerk.cert)
    assert peers.identify(admin.cert).kind is Kind.OPERATOR


def test_a_certificate_without_an_identity_of_this_domain_is_refused(tmp_path: Path) -> None:
    ca = IdentityCa.create(tmp_path, trust_domain="lienthong.test")
    peers = PeerCertificates(trust_domain="lienthong.test")
    # the old convention: a bare unit code as CN, no URI SAN
    with pytest.raises(Unauthenticated, match="URI SAN"):
        peers.identify(ca.client("", common_name="000.01.00.H23").cert)
    other = IdentityCa.create(tmp_path / "other", trust_domain="elsewhere.test")
    with pytest.raises(Unauthenticated, match="URI SAN"):
        peers.identify(other.client("unit/000.01.00.H23").cert)


def test_days_to_expiry(tmp_path: Path) -> None:
    ca = IdentityCa.create(tmp_path)
    issued = ca.client("service/routing-service", days=10)
    (certificate,) = load_pem_certificates(issued.cert)
    assert 9.9 < days_to_expiry(certificate) <= 10
