"""A throw-away CA for mutual TLS in tests and local secure runs: server certificates for
loopback, client certificates carrying a lienthong identity as a URI SAN, and a CRL.

    ca = IdentityCa.create(tmp_path, trust_domain="lienthong.test")
    server = ca.server("document-service")          # CN + SAN 127.0.0.1/localhost
    clerk = ca.client("unit/000.01.00.H23")          # spiffe://lienthong.test/unit/000.01.00.H23
    ca.revoke(clerk); ca.write_crl()                 # ca.crl_path now lists it

Keys are generated at run time and never leave the folder given (docs/security.md has the
production profiles and the openssl commands).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["IdentityCa", "Issued", "issuing_ca"]


@dataclass(frozen=True)
class Issued:
    cert_path: Path
    key_path: Path
    serial: int
    not_after: datetime

    @property
    def cert(self) -> bytes:
        return self.cert_path.read_bytes()

    @property
    def key(self) -> bytes:
        return self.key_path.read_bytes()


def issuing_ca(
    key: ec.EllipticCurvePrivateKey, name: x509.Name, not_before: datetime, not_after: datetime
) -> x509.Certificate:
    """A self-signed CA that issues end certificates only (path length 0): the test identity
    CA's and the local Kafka listener's."""
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lienthong test"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


@dataclass
class IdentityCa:
    folder: Path
    trust_domain: str
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    revoked: dict[int, datetime] = field(default_factory=dict)

    @property
    def ca_path(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def crl_path(self) -> Path:
        return self.folder / "clients.crl.pem"

    @classmethod
    def create(cls, folder: Path, *, trust_domain: str = "lienthong.test") -> IdentityCa:
        folder.mkdir(parents=True, exist_ok=True)
        key = _key()
        now = datetime.now(UTC)
        cert = issuing_ca(
            key,
            _name(f"{trust_domain} test CA"),
            now - timedelta(minutes=5),
            now + timedelta(days=30),
        )
        ca = cls(folder, trust_domain, key, cert)
        _write_key(ca.key_path, key)
        ca.ca_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        ca.write_crl()
        return ca

    @property
    def key_path(self) -> Path:
        return self.folder / "ca.key"

    @classmethod
    def open(cls, folder: Path, *, trust_domain: str = "lienthong.test") -> IdentityCa:
        """The CA already in ``folder`` (made by :meth:`create` for ``trust_domain`` and valid
        for a day more at least), or a new one."""
        ca = cls.load(folder, trust_domain)
        if ca is None:
            return cls.create(folder, trust_domain=trust_domain)
        return ca

    @classmethod
    def load(cls, folder: Path, trust_domain: str) -> IdentityCa | None:
        ca_path, key_path = folder / "ca.pem", folder / "ca.key"
        if not (ca_path.is_file() and key_path.is_file()):
            return None
        cert = x509.load_pem_x509_certificate(ca_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        fresh = cert.not_valid_after_utc > datetime.now(UTC) + timedelta(days=1)
        named = cert.subject == _name(f"{trust_domain} test CA")
        if not (fresh and named and isinstance(key, ec.EllipticCurvePrivateKey)):
            return None
        return cls(folder, trust_domain, key, cert)

    def _issue(
        self,
        stem: str,
        common_name: str,
        sans: list[x509.GeneralName],
        usage: x509.ObjectIdentifier,
        days: float,
    ) -> Issued:
        key = _key()
        now = datetime.now(UTC)
        not_after = now + timedelta(days=days)
        serial = x509.random_serial_number()
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_path = self.folder / f"{stem}.pem"
        key_path = self.folder / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_path, key)
        return Issued(cert_path, key_path, serial, not_after)

    def server(self, name: str, *, days: float = 30) -> Issued:
        """A server certificate for loopback (127.0.0.1, localhost) named ``name``."""
        sans: list[x509.GeneralName] = [
            x509.DNSName("localhost"),
            x509.IPAddress(IPv4Address("127.0.0.1")),
            x509.UniformResourceIdentifier(f"spiffe://{self.trust_domain}/service/{name}"),
        ]
        return self._issue(f"server-{name}", name, sans, ExtendedKeyUsageOID.SERVER_AUTH, days)

    def client(self, identity: str, *, days: float = 30, common_name: str = "") -> Issued:
        """A client certificate for ``identity`` (``unit/<code>``, ``service/<name>``,
        ``operator/<role>/<name>``), or with no URI SAN at all when ``identity`` is ""."""
        sans: list[x509.GeneralName] = []
        if identity:
            uri = f"spiffe://{self.trust_domain}/{identity}"
            sans.append(x509.UniformResourceIdentifier(uri))
        else:
            sans.append(x509.DNSName("no-identity.invalid"))
        stem = "client-" + (identity or common_name or "anonymous").replace("/", "_")
        return self._issue(
            stem, common_name or identity or "anonymous", sans, ExtendedKeyUsageOID.CLIENT_AUTH,
            days,
        )  # fmt: skip

    def revoke(self, issued: Issued) -> None:
        self.revoked[issued.serial] = datetime.now(UTC)

    def write_crl(self) -> Path:
        now = datetime.now(UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now - timedelta(minutes=1))
            .next_update(now + timedelta(days=1))
        )
        for serial, when in self.revoked.items():
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
            )
        crl = builder.sign(self.key, hashes.SHA256())
        self.crl_path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        return self.crl_path
