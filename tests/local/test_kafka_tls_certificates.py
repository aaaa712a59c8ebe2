"""The local broker's certificates: a service declared after infra-up gets its certificate
from the CA the running broker already trusts (a new CA would lock every client out)."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from lienthong_local.kafka_tls import ADMIN, issue_certificates


def test_a_service_added_later_gets_a_certificate_of_the_same_ca(tmp_path: Path) -> None:
    tls = issue_certificates(tmp_path, clients=["document-service"])
    ca = tls.ca.read_bytes()
    broker = tls.broker_keystore.read_bytes()
    admin = tls.cert(ADMIN).read_bytes()

    issue_certificates(tmp_path, clients=["document-service", "gateway-service"])

    assert tls.ca.read_bytes() == ca
    assert tls.broker_keystore.read_bytes() == broker
    assert tls.cert(ADMIN).read_bytes() == admin
    issued = x509.load_pem_x509_certificate(tls.cert("gateway-service").read_bytes())
    issued.verify_directly_issued_by(x509.load_pem_x509_certificate(ca))
    assert issued.subject.rfc4514_string() == "CN=gateway-service"
    assert tls.key("gateway-service").stat().st_mode & 0o777 == 0o600
