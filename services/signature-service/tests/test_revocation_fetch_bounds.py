"""No SSRF through revocation (issue #22, item 6): a CRL or OCSP URL is requested only for a
certificate whose chain reaches a configured anchor with every link's signature verified; a
self-made chain, or a certificate that only claims a trusted issuer, makes no request. Replies
are read up to a size cap and redirects are not followed. A local HTTP server records every
request it gets."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from lienthong_testing.pki import LocalPki, Signer, make_pdf, sign_pdf
from signature_service.engine import CHECK_FAILED

NOW = datetime.now(UTC)
BIG = 2 * 1024 * 1024


@dataclass
class Recorder:
    url: str
    requests: list[str] = field(default_factory=list)


class _Handler(http.server.BaseHTTPRequestHandler):
    recorder: Recorder

    def _answer(self) -> None:
        self.recorder.requests.append(f"{self.command} {self.path}")
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", f"{self.recorder.url}/redirected")
            self.end_headers()
            return
        body = b"\x30" * BIG if self.path.startswith("/big") else b""
        self.send_response(200 if body else 404)
        if self.path.startswith("/big-unsized"):
            self.send_header("Connection", "close")  # no Content-Length: read until closed
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)  # the client may stop reading at its cap

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    found = Recorder(f"http://127.0.0.1:{server.server_address[1]}")
    _Handler.recorder = found
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield found
    server.shutdown()
    server.server_close()


def _name(cn: str, uid: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.USER_ID, uid),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _cert(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    url: str | None = None,
    authority: x509.SubjectKeyIdentifier | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if authority is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(authority),
            critical=False,
        )
    if url:
        ocsp = x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(f"{url}/ocsp")
        )
        point = x509.DistributionPoint(
            [x509.UniformResourceIdentifier(f"{url}/crl")], None, None, None
        )
        builder = builder.add_extension(
            x509.AuthorityInformationAccess([ocsp]), critical=False
        ).add_extension(x509.CRLDistributionPoints([point]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _signer(folder: Path, stem: str, cert: x509.Certificate, key: Any, chain: list[Path]) -> Signer:
    cert_file, key_file = folder / f"{stem}.pem", folder / f"{stem}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Signer(stem, cert_file, key_file, tuple(chain), cert)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _intermediate(pki: LocalPki) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(pki.intermediates_file.read_bytes())
    key = serialization.load_pem_private_key(
        (pki.folder / "intermediate.key").read_bytes(), password=None
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


async def test_a_self_made_chain_makes_no_request(
    make_verifier: Any, recorder: Recorder, tmp_path: Path
) -> None:
    root_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    root_name = _name("Attacker Root", "MST:0000000001")
    root = _cert(root_name, root_key, root_name, root_key, ca=True)
    leaf = _cert(
        _name("Attacker", "MST:0000000002"),
        leaf_key,
        root_name,
        root_key,
        ca=False,
        url=recorder.url,
    )
    root_file = tmp_path / "attacker-root.pem"
    root_file.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    signer = _signer(tmp_path, "attacker", leaf, leaf_key, [root_file])
    pdf = await asyncio.to_thread(sign_pdf, make_pdf(), signer)
    checker = make_verifier(mode="require")

    decision = await checker.verify([("qd.pdf", pdf)], document_type="SY", direction="outgoing")
    certificate = await checker.validate_certificate(_der(leaf), [_der(root)], NOW)

    assert recorder.requests == []
    assert not decision.accepted
    assert decision.signatures[0].sub_indication == "NO_CERTIFICATE_CHAIN_FOUND"
    assert certificate.sub_indication == "NO_CERTIFICATE_CHAIN_FOUND"


async def test_a_certificate_only_claiming_a_trusted_issuer_makes_no_request(
    make_verifier: Any, recorder: Recorder, pki: LocalPki
) -> None:
    # same issuer name and key identifier as the configured intermediate, another key
    intermediate, _ = _intermediate(pki)
    forger_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    claimed = intermediate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    forged = _cert(
        _name("Forged", "CCCD:000000000001"),
        leaf_key,
        intermediate.subject,
        forger_key,
        ca=False,
        url=recorder.url,
        authority=claimed,
    )
    certificate = await make_verifier().validate_certificate(_der(forged), [], NOW)
    assert recorder.requests == []
    assert not certificate.valid


async def test_a_trusted_chain_is_looked_up_with_replies_capped_and_no_redirect(
    make_verifier: Any, recorder: Recorder, pki: LocalPki
) -> None:
    intermediate, int_key = _intermediate(pki)
    authority = intermediate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value

    def leaf(path: str) -> bytes:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(
            _name(f"Leaf {path}", "CCCD:000000000002"),
            key,
            intermediate.subject,
            int_key,
            ca=False,
            url=f"{recorder.url}/{path}",
            authority=authority,
        )
        return _der(cert)

    checker = make_verifier(mode="require", max_bytes=BIG // 2)
    big = await checker.validate_certificate(leaf("big"), [], NOW)
    unsized = await checker.validate_certificate(leaf("big-unsized"), [], NOW)
    moved = await checker.validate_certificate(leaf("redirect"), [], NOW)

    # the trusted chain's URLs were requested (the other tests' silence is not for want of it)
    assert recorder.requests[:2] == ["POST /big/ocsp", "GET /big/crl"]
    assert "GET /redirected" not in recorder.requests
    assert "POST /redirect/ocsp" in recorder.requests
    for result, why in (
        (big, f"bytes, more than the {BIG // 2} read"),
        (unsized, f"more than the {BIG // 2} bytes read"),
        (moved, "HTTP 302"),
    ):
        revocation = next(c for c in result.checks if c.name == "revocation")
        assert revocation.outcome == CHECK_FAILED, revocation
        assert why in revocation.detail, revocation.detail
        assert result.sub_indication == "TRY_LATER"
