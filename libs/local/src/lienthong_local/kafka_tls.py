"""The local broker's TLS listener: its certificates and the services' ACLs.

    python -m lienthong_local.kafka_tls certs DIR          # CA, broker, admin, one per service
    python -m lienthong_local.kafka_tls acls BOOTSTRAP DIR [TOPIC_PREFIX]

``make infra-up`` runs both (deploy/local/infra.sh). Every client certificate's subject is just
``CN=<name>``, so its Kafka principal is ``User:CN=<name>``, as with Strimzi's KafkaUsers. The
ACLs come from lienthong_kit.kafka_access, the same declaration the KafkaUsers are generated
from. Keys are generated here, at infra-up time, and never committed.
"""

from __future__ import annotations

import fcntl
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lienthong_kit.kafka import Topics
from lienthong_kit.kafka_access import Acl, KafkaAccess, declared
from lienthong_testing.identities import issuing_ca

__all__ = ["ADMIN", "KafkaTls", "apply_acls", "issue_certificates", "principal"]

#: the broker's only super user besides the loopback plaintext listeners' ANONYMOUS
ADMIN = "lienthong-admin"
_DAYS = 825


def principal(name: str) -> str:
    return f"User:CN={name}"


@dataclass(frozen=True)
class KafkaTls:
    """Where the files of one folder are (see :func:`issue_certificates`)."""

    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    def cert(self, name: str) -> Path:
        return self.folder / f"{name}.pem"

    def key(self, name: str) -> Path:
        return self.folder / f"{name}.key"

    @property
    def broker_keystore(self) -> Path:
        """The broker's key and certificate in one PEM file (Kafka's PEM keystore)."""
        return self.folder / "broker-keystore.pem"

    def client_env(self, name: str) -> dict[str, str]:
        """The kit's settings for a client with ``name``'s certificate."""
        return {
            "LIENTHONG_KAFKA_SECURITY_PROTOCOL": "SSL",
            "LIENTHONG_KAFKA_TLS_CA": str(self.ca),
            "LIENTHONG_KAFKA_TLS_CERT": str(self.cert(name)),
            "LIENTHONG_KAFKA_TLS_KEY": str(self.key(name)),
        }


def _subject(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    # PKCS#8: the only private-key form Kafka's PEM keystore reads
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def _issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    common_name: str,
    now: datetime,
    *,
    server: bool,
) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_subject(common_name))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                if server
                else [ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def issue_certificates(folder: Path, clients: Iterable[str] | None = None) -> KafkaTls:
    """A CA, the broker's certificate (127.0.0.1 and localhost), the admin's and one client
    certificate per service of kafka_access (or per name of ``clients``). Nothing is
    re-issued when the CA is already there (a running broker keeps trusting the clients): a
    service declared since gets its certificate from the same CA."""
    tls = KafkaTls(folder)
    names = [ADMIN, *(clients if clients is not None else declared())]
    missing = [name for name in names if not tls.cert(name).is_file()]
    if tls.ca.is_file() and not missing:
        return tls
    now = datetime.now(UTC) - timedelta(minutes=5)
    ca_name = _subject("lienthong local Kafka CA")
    if tls.ca.is_file() and (folder / "ca.key").is_file():
        ca_key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), None)
        if isinstance(ca_key, ec.EllipticCurvePrivateKey):
            # test runs share the folder: one writer, or a key could pair with another's cert
            with (folder / ".issuing").open("w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                for name in missing:
                    if tls.cert(name).is_file():
                        continue
                    cert, key = _issue(ca_key, ca_name, name, now, server=False)
                    _write_private(tls.key(name), key)
                    tls.cert(name).write_bytes(cert)  # last: marks completion
            return tls
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = issuing_ca(ca_key, ca_name, now, now + timedelta(days=_DAYS))

    def issue(common_name: str, *, server: bool) -> tuple[bytes, bytes]:
        return _issue(ca_key, ca_name, common_name, now, server=server)

    broker_cert, broker_key = issue("kafka-broker", server=True)
    _write_private(tls.broker_keystore, broker_key + broker_cert)
    for name in names:
        cert, key = issue(name, server=False)
        tls.cert(name).write_bytes(cert)
        _write_private(tls.key(name), key)
    _write_private(folder / "ca.key", _pem_key(ca_key))
    tls.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))  # last: marks completion
    return tls


_RESOURCES = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "cluster": ResourceType.BROKER,
    "transactionalId": ResourceType.TRANSACTIONAL_ID,
}
_PATTERNS = {"literal": ResourcePatternType.LITERAL, "prefix": ResourcePatternType.PREFIXED}
_OPERATIONS = {
    "Read": AclOperation.READ,
    "Write": AclOperation.WRITE,
    "Create": AclOperation.CREATE,
    "Describe": AclOperation.DESCRIBE,
    "DescribeConfigs": AclOperation.DESCRIBE_CONFIGS,
    "IdempotentWrite": AclOperation.IDEMPOTENT_WRITE,
    "All": AclOperation.ALL,
}


def _binding(service: str, acl: Acl) -> AclBinding:
    return AclBinding(
        _RESOURCES[acl.resource],
        acl.name or "kafka-cluster",
        _PATTERNS[acl.pattern],
        principal(service),
        "*",
        _OPERATIONS[acl.operation],
        AclPermissionType.ALLOW,
    )


def apply_acls(
    bootstrap: str, tls: KafkaTls, accesses: Iterable[KafkaAccess], *, timeout: float = 30.0
) -> int:
    """Create every ACL of ``accesses`` as the admin over TLS (creating one that exists
    changes nothing); returns how many were asked for. Raises KafkaException on a refusal."""
    bindings = [_binding(access.service, acl) for access in accesses for acl in access.acls()]
    admin = AdminClient(
        {
            "bootstrap.servers": bootstrap,
            "security.protocol": "SSL",
            "ssl.ca.location": str(tls.ca),
            "ssl.certificate.location": str(tls.cert(ADMIN)),
            "ssl.key.location": str(tls.key(ADMIN)),
            "log_level": 4,  # warnings and worse: not its info line about closing
        }
    )
    for future in admin.create_acls(bindings, request_timeout=timeout).values():
        future.result()
    # the controller has them; wait until the broker's authorizer does too, or a client
    # connecting right away is refused (and aiokafka does not ask twice)
    wanted = {_key(binding) for binding in bindings}
    anything: Any = None  # the filter's "any value", which its type hints leave out
    everything = AclBindingFilter(
        ResourceType.ANY,
        anything,
        ResourcePatternType.ANY,
        anything,
        anything,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    deadline = time.monotonic() + timeout
    while True:
        visible = admin.describe_acls(everything, request_timeout=timeout).result()
        missing = wanted - {_key(binding) for binding in visible}
        if not missing:
            return len(bindings)
        if time.monotonic() > deadline:
            raise KafkaException(f"{len(missing)} ACLs not applied after {timeout} s")
        time.sleep(0.1)


def _key(binding: AclBinding) -> tuple[object, ...]:
    return (
        binding.restype,
        binding.name,
        binding.resource_pattern_type,
        binding.principal,
        binding.host,
        binding.operation,
        binding.permission_type,
    )


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "certs":
        issue_certificates(Path(argv[1]))
        return 0
    if len(argv) in (3, 4) and argv[0] == "acls":
        prefix = argv[3] if len(argv) == 4 else ""
        try:
            count = apply_acls(argv[1], KafkaTls(Path(argv[2])), declared(Topics(prefix)).values())
        except KafkaException as exc:
            print(f"kafka_tls: the ACLs were refused: {exc}", file=sys.stderr)
            return 1
        print(f"kafka_tls: {count} ACLs for {len(declared())} service principals")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
