"""make run-secure's certificates: made once, reused by the next run, and each service's
settings from them accepted by that service (mTLS on, dev auth off, its own client
certificate for the calls it makes)."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway_service.settings import Settings as GatewaySettings
from lienthong_kit.settings import load_settings
from lienthong_local.grpc_tls import TRUST_DOMAIN, GrpcTls
from lienthong_local.platform import SERVICES
from signature_service.settings import Settings as SignatureSettings


def test_the_certificates_are_made_once(tmp_path: Path) -> None:
    first = GrpcTls.open(tmp_path)
    first.prepare(SERVICES)
    ca = first.ca_path.read_bytes()
    unit = first.client("unit/000.01.00.H23").cert

    again = GrpcTls.open(tmp_path)
    again.prepare(SERVICES)
    assert again.ca_path.read_bytes() == ca
    assert again.client("unit/000.01.00.H23").cert == unit


def test_a_certificate_of_another_ca_is_issued_again(tmp_path: Path) -> None:
    GrpcTls.open(tmp_path / "a").client("unit/000.01.00.H23")
    stale = GrpcTls.open(tmp_path / "b")
    stale.client("unit/000.01.00.H23")
    # the folder's CA is replaced (say, expired): its old certificates must not be served
    (tmp_path / "b" / "ca.pem").write_bytes((tmp_path / "a" / "ca.pem").read_bytes())
    (tmp_path / "b" / "ca.key").write_bytes((tmp_path / "a" / "ca.key").read_bytes())
    reopened = GrpcTls.open(tmp_path / "b")
    issued = x509.load_pem_x509_certificate(reopened.client("unit/000.01.00.H23").cert)
    issued.verify_directly_issued_by(reopened.ca.cert)


def test_signature_service_fetches_with_a_client_certificate_of_its_own(tmp_path: Path) -> None:
    tls = GrpcTls.open(tmp_path)
    env = tls.service_env("signature-service")
    settings = load_settings(SignatureSettings, env)
    assert settings.dev_auth is False
    assert settings.trust_domain == TRUST_DOMAIN
    assert settings.signature_client_cert != settings.tls_cert
    assert settings.signature_client_cert is not None
    client = x509.load_pem_x509_certificate(settings.signature_client_cert.read_bytes())
    sans = client.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
    assert uris == [f"spiffe://{TRUST_DOMAIN}/service/signature-service"]
    usage = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_the_gateway_serves_https_and_calls_as_itself(tmp_path: Path) -> None:
    settings = load_settings(GatewaySettings, GrpcTls.open(tmp_path).service_env("gateway-service"))
    assert settings.tls_client_ca is not None
    assert settings.gateway_client_cert is not None
    assert settings.gateway_upstream_ca == settings.tls_client_ca
