"""A test PKI made on the spot (tests, benchmarks, demos; the service never imports it).

    with running_pki(tmp_path) as pki:          # keys, certificates, a CRL server and an
        pdf = make_pdf("Quyết định 15")          # OCSP responder, both on 127.0.0.1 only
        signed = sign_pdf(sign_pdf(pdf, pki.signers["person"]), pki.signers["organisation"])
        pki.anchors_file                         # the trust anchor bundle to configure

Root and intermediate CA; signers: person (UID CCCD:...), organisation (UID MST:...), revoked
(in the CRL and revoked by the OCSP responder), expired, wrong key usage (keyEncipherment
only), a person whose OCSP responder is unreachable and who has no CRL, and an organisation
under an unknown root. Private keys live only in the temporary folder.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers

from lienthong_testing.ports import free_port

__all__ = [
    "DemoPki",
    "LocalPki",
    "Signer",
    "corrupt",
    "demo_pki",
    "make_pdf",
    "modify_in_new_revision",
    "modify_signed_bytes",
    "openssl_cms_sign",
    "running_pki",
    "sign_pdf",
]

NOW = datetime.now(UTC)
REVOKED_AT = NOW - timedelta(days=1)
PROVINCE = "UBND tỉnh Hòa Bình"


@dataclass
class Signer:
    name: str
    cert_file: Path
    key_file: Path
    chain_files: tuple[Path, ...]
    cert: x509.Certificate

    @functools.cached_property
    def pyhanko(self) -> signers.SimpleSigner:
        signer: signers.SimpleSigner | None = signers.SimpleSigner.load(  # type: ignore[no-untyped-call]
            str(self.key_file),
            str(self.cert_file),
            ca_chain_files=[str(p) for p in self.chain_files],
        )
        if signer is None:
            raise RuntimeError(f"cannot load signer {self.name}")
        return signer


@dataclass
class LocalPki:
    folder: Path
    anchors_file: Path
    intermediates_file: Path
    unknown_root_file: Path
    crl_base: str
    ocsp_url: str
    signers: dict[str, Signer] = field(default_factory=dict)
    # a CA under the root naming no revocation location (its signer: signers["silent-ca"])
    silent_ca_file: Path | None = None


def _name(cn: str, uid: str | None = None, org: str = PROVINCE) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "VN")]
    attrs.append(x509.NameAttribute(NameOID.LOCALITY_NAME, "Hòa Bình"))
    attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    if uid:
        attrs.append(x509.NameAttribute(NameOID.USER_ID, uid))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _write(
    folder: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    cert_file = folder / f"{stem}.pem"
    key_file = folder / f"{stem}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def _crl_point(url: str) -> x509.CRLDistributionPoints:
    point = x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)
    return x509.CRLDistributionPoints([point])


def _ca(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    crl_url: str | None = None,
) -> x509.Certificate:
    issuer_name = issuer[0].subject if issuer else subject
    signing_key = issuer[1] if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=365))
        .not_valid_after(NOW + timedelta(days=3650))
        .add_extension(
            x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0), critical=True
        )
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()),
            critical=False,
        )
    if crl_url:
        builder = builder.add_extension(_crl_point(crl_url), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _leaf(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    *,
    ocsp_url: str | None,
    crl_url: str | None,
    signing_usage: bool = True,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - timedelta(days=30))
        .not_valid_after(not_after or NOW + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=signing_usage,
                content_commitment=signing_usage,
                key_encipherment=not signing_usage,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()),
            critical=False,
        )
    )
    if ocsp_url:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url)
                    )
                ]
            ),
            critical=False,
        )
    if crl_url:
        builder = builder.add_extension(_crl_point(crl_url), critical=False)
    return builder.sign(issuer[1], hashes.SHA256())


def _crl(
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], revoked: list[x509.Certificate]
) -> bytes:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer[0].subject)
        .last_update(NOW - timedelta(hours=1))
        .next_update(NOW + timedelta(days=1))
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()),
            critical=False,
        )
    )
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(REVOKED_AT)
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
            .build()
        )
    return builder.sign(issuer[1], hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def build_pki(folder: Path, *, crl_port: int, ocsp_port: int, dead_port: int) -> LocalPki:
    folder.mkdir(parents=True, exist_ok=True)
    crl_base = f"http://127.0.0.1:{crl_port}"
    ocsp_url = f"http://127.0.0.1:{ocsp_port}"

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    root_key = key()
    root = _ca(_name("Test Root CA (NEAC test)", org="Test National Root"), root_key, None)
    int_key = key()
    intermediate = _ca(
        _name("Test Government Specialised CA", org="Test Ban Cơ yếu Chính phủ"),
        int_key,
        (root, root_key),
        crl_url=f"{crl_base}/root.crl",
    )
    ca = (intermediate, int_key)
    root_file, _ = _write(folder, "root", root, root_key)
    int_file, _ = _write(folder, "intermediate", intermediate, int_key)
    leaf_urls = {"ocsp_url": ocsp_url, "crl_url": f"{crl_base}/intermediate.crl"}
    specs = {
        "person": (_name("Nguyễn Văn An", "CCCD:001085012345"), leaf_urls, {}),
        "organisation": (_name(PROVINCE, "MST:5400123456"), leaf_urls, {}),
        "revoked": (_name("Trần Thị Bình", "CCCD:001190054321"), leaf_urls, {}),
        "expired": (
            _name("Lê Văn Cường", "CCCD:001080011111"),
            leaf_urls,
            {"not_before": NOW - timedelta(days=400), "not_after": NOW - timedelta(days=1)},
        ),
        "wrong-key-usage": (
            _name("Phạm Thị Dung", "CCCD:001095022222"),
            leaf_urls,
            {"signing_usage": False},
        ),
        "unreachable-ocsp": (
            _name("Hoàng Văn Em", "CCCD:001088033333"),
            {"ocsp_url": f"http://127.0.0.1:{dead_port}", "crl_url": None},
            {},
        ),
        "organisation-2": (_name("Sở Nội vụ tỉnh Hòa Bình", "MST:5400654321"), leaf_urls, {}),
    }
    pki = LocalPki(
        folder,
        anchors_file=root_file,
        intermediates_file=int_file,
        unknown_root_file=folder / "unknown-root.pem",
        crl_base=crl_base,
        ocsp_url=ocsp_url,
    )
    for stem, (subject, urls, extra) in specs.items():
        leaf_key = key()
        cert = _leaf(subject, leaf_key, ca, **urls, **extra)  # type: ignore[arg-type]
        cert_file, key_file = _write(folder, stem, cert, leaf_key)
        pki.signers[stem] = Signer(stem, cert_file, key_file, (int_file,), cert)
    # a public CA under the root that names no revocation location for itself (its status is
    # only in the root's CRL, which an operator supplies); its signer has a CRL of its own
    silent_key = key()
    silent = _ca(
        _name("Test Public CA (no CRL location)", org="Test Public CA"),
        silent_key,
        (root, root_key),
    )
    silent_file, _ = _write(folder, "silent-ca", silent, silent_key)
    pki.silent_ca_file = silent_file
    quiet_key = key()
    quiet = _leaf(
        _name("Công ty Lặng Lẽ", "MST:5400777777"),
        quiet_key,
        (silent, silent_key),
        ocsp_url=None,
        crl_url=f"{crl_base}/silent-ca.crl",
    )
    cert_file, key_file = _write(folder, "silent-ca-signer", quiet, quiet_key)
    pki.signers["silent-ca"] = Signer("silent-ca", cert_file, key_file, (silent_file,), quiet)
    crls = folder / "crl"
    crls.mkdir(exist_ok=True)
    (crls / "silent-ca.crl").write_bytes(_crl((silent, silent_key), []))
    supplied = folder / "supplied"
    supplied.mkdir(exist_ok=True)
    # what an operator puts in LIENTHONG_SIGNATURE_REVOCATION_DIR: the root's CRL
    (supplied / "root.crl").write_bytes(_crl((root, root_key), []))
    (crls / "root.crl").write_bytes(_crl((root, root_key), []))
    (crls / "intermediate.crl").write_bytes(_crl(ca, [pki.signers["revoked"].cert]))
    # an unknown root and an organisation under it
    other_key = key()
    other = _ca(_name("Unknown Root CA", org="Nobody"), other_key, None)
    _write(folder, "unknown-root", other, other_key)
    stranger_key = key()
    stranger = _leaf(
        _name("Công ty Không Rõ", "MST:0000000000", org="Không Rõ"),
        stranger_key,
        (other, other_key),
        ocsp_url=None,
        crl_url=None,
    )
    cert_file, key_file = _write(folder, "unknown-root-signer", stranger, stranger_key)
    pki.signers["unknown-root"] = Signer(
        "unknown-root", cert_file, key_file, (folder / "unknown-root.pem",), stranger
    )
    return pki


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


@dataclass
class _Responder:
    """What the OCSP responder answers for: the intermediate CA's certificates."""

    issuer: x509.Certificate
    issuer_key: ec.EllipticCurvePrivateKey
    known: frozenset[int]
    revoked: frozenset[int]

    @classmethod
    def of(cls, pki: LocalPki) -> _Responder:
        key = serialization.load_pem_private_key(
            (pki.folder / "intermediate.key").read_bytes(), None
        )
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError("the intermediate CA's key is not an EC key")
        return cls(
            issuer=x509.load_pem_x509_certificate(pki.intermediates_file.read_bytes()),
            issuer_key=key,
            known=frozenset(s.cert.serial_number for s in pki.signers.values()),
            revoked=frozenset({pki.signers["revoked"].cert.serial_number}),
        )

    def answer(self, body: bytes) -> ocsp.OCSPResponse:
        """As `openssl ocsp -ndays 1` answers: good, revoked (key compromise) or unknown."""
        try:
            request = ocsp.load_der_ocsp_request(body)
        except ValueError:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.MALFORMED_REQUEST
            )
        serial = request.serial_number
        status = ocsp.OCSPCertStatus.GOOD
        if serial in self.revoked:
            status = ocsp.OCSPCertStatus.REVOKED
        elif serial not in self.known:
            status = ocsp.OCSPCertStatus.UNKNOWN
        revoked = status == ocsp.OCSPCertStatus.REVOKED
        now = datetime.now(UTC)
        return (
            ocsp.OCSPResponseBuilder()
            .add_response_by_hash(
                request.issuer_name_hash,
                request.issuer_key_hash,
                serial,
                request.hash_algorithm,
                status,
                now,
                now + timedelta(days=1),
                REVOKED_AT if revoked else None,
                x509.ReasonFlags.key_compromise if revoked else None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.NAME, self.issuer)
            .certificates([self.issuer])
            .sign(self.issuer_key, hashes.SHA256())
        )


class _Ocsp(http.server.BaseHTTPRequestHandler):
    """RFC 6960 over HTTP POST; answers 503 until the PKI it answers for is made."""

    def __init__(self, *args: Any, responders: list[_Responder], **kwargs: Any) -> None:
        self.responders = responders
        super().__init__(*args, **kwargs)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self.responders:
            self.send_error(503)
            return
        der = self.responders[0].answer(body).public_bytes(serialization.Encoding.DER)
        self.send_response(200)
        self.send_header("Content-Type", "application/ocsp-response")
        self.send_header("Content-Length", str(len(der)))
        self.end_headers()
        self.wfile.write(der)

    def log_message(self, format: str, *args: object) -> None:
        return


def _serve(
    handler: Callable[..., http.server.BaseHTTPRequestHandler],
) -> http.server.ThreadingHTTPServer:
    """An HTTP server on loopback only (its port chosen by the system), serving in a thread."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@contextmanager
def running_pki(folder: Path) -> Iterator[LocalPki]:
    """The PKI with its CRL server and OCSP responder running (threads, on 127.0.0.1 only)."""
    (folder / "crl").mkdir(parents=True, exist_ok=True)
    responders: list[_Responder] = []
    crls = _serve(functools.partial(_Quiet, directory=str(folder / "crl")))
    ocsps = _serve(functools.partial(_Ocsp, responders=responders))
    try:
        pki = build_pki(
            folder,
            crl_port=int(crls.server_address[1]),
            ocsp_port=int(ocsps.server_address[1]),
            dead_port=free_port(),
        )
        responders.append(_Responder.of(pki))
        yield pki
    finally:
        for server in (ocsps, crls):
            server.shutdown()
            server.server_close()


# --- documents ------------------------------------------------------------------------------


def make_pdf(text: str = "QUYET DINH so 15/QD-UBND ORIGINAL") -> bytes:
    """A one-page PDF written by hand (no PDF library needed to make it)."""
    content = f"BT /F1 14 Tf 72 760 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(content)).encode() + b" >>\nstream\n" + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n".encode() + b"0000000000 65535 f \n"
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


def sign_pdf(pdf: bytes, signer: Signer) -> bytes:
    """Sign in a new incremental revision (PAdES, a new invisible signature field)."""
    reader_count = len(PdfFileReader(BytesIO(pdf), strict=False).embedded_signatures)
    writer = IncrementalPdfFileWriter(BytesIO(pdf), strict=False)
    meta = signers.PdfSignatureMetadata(
        field_name=f"Signature{reader_count + 1}", subfilter=None, md_algorithm="sha256"
    )
    out = signers.sign_pdf(writer, meta, signer=signer.pyhanko)
    return bytes(out.getvalue())


def modify_signed_bytes(pdf: bytes) -> bytes:
    """Change text inside the signed byte range (same length): the digest no longer matches."""
    if b"ORIGINAL" not in pdf:
        raise ValueError("the PDF has no ORIGINAL marker")
    return pdf.replace(b"ORIGINAL", b"FORGED!!", 1)


def modify_in_new_revision(pdf: bytes) -> bytes:
    """Append a revision that replaces the page's text (an unsigned change after signing)."""
    writer = IncrementalPdfFileWriter(BytesIO(pdf), strict=False)
    page = writer.root["/Pages"]["/Kids"][0]
    stream = generic.StreamObject(stream_data=b"BT /F1 14 Tf 72 760 Td (FORGED TEXT) Tj ET")
    page["/Contents"] = writer.add_object(stream)
    writer.update_container(page)
    out = BytesIO()
    writer.write(out)  # type: ignore[no-untyped-call]
    return out.getvalue()


def corrupt(pdf: bytes) -> bytes:
    """Keep the header, cut the file in the middle and drop its cross-reference section."""
    return pdf[: len(pdf) // 2]


def openssl_cms_sign(data: bytes, signer: Signer, folder: Path, name: str = "file") -> bytes:
    """A detached CMS signature (DER, what a .p7s holds) made with `openssl cms`."""
    source = folder / f"{name}.bin"
    target = folder / f"{name}.p7s"
    source.write_bytes(data)
    subprocess.run(  # noqa: S603
        [  # noqa: S607
            "openssl",
            "cms",
            "-sign",
            "-binary",
            "-md",
            "sha256",
            "-in",
            str(source),
            "-signer",
            str(signer.cert_file),
            "-inkey",
            str(signer.key_file),
            "-certfile",
            str(signer.chain_files[0]),
            "-outform",
            "DER",
            "-out",
            str(target),
        ],
        check=True,
        capture_output=True,
    )
    return target.read_bytes()


def documents(pki: LocalPki) -> dict[str, list[tuple[str, bytes]]]:
    """Every fixture document, by name: the files as an agency system would send them."""
    pdf = make_pdf()
    s = pki.signers
    person = sign_pdf(pdf, s["person"])
    both = sign_pdf(person, s["organisation"])
    appendix = b"PK\x03\x04 appendix spreadsheet bytes"

    def pair(first: str, second: str) -> bytes:
        return sign_pdf(sign_pdf(pdf, s[first]), s[second])

    return {
        "person-then-organisation": [("qd-15.pdf", both)],
        "only-person": [("qd-15.pdf", person)],
        "only-organisation": [("qd-15.pdf", sign_pdf(pdf, s["organisation"]))],
        "wrong-order": [("qd-15.pdf", pair("organisation", "person"))],
        "modified-after-signing": [("qd-15.pdf", modify_signed_bytes(both))],
        "changed-in-later-revision": [("qd-15.pdf", modify_in_new_revision(both))],
        "corrupted": [("qd-15.pdf", corrupt(both))],
        "not-a-pdf": [("qd-15.pdf", b"PK\x03\x04 this is a zip archive, not a PDF")],
        "unsigned": [("qd-15.pdf", pdf)],
        "revoked-signer": [("qd-15.pdf", pair("revoked", "organisation"))],
        "expired-signer": [("qd-15.pdf", pair("expired", "organisation"))],
        "wrong-key-usage": [("qd-15.pdf", pair("wrong-key-usage", "organisation"))],
        "unknown-root": [("qd-15.pdf", pair("person", "unknown-root"))],
        "unreachable-ocsp": [("qd-15.pdf", pair("unreachable-ocsp", "organisation"))],
        "cms-signed-appendix": [
            ("qd-15.pdf", both),
            ("phu-luc.xlsx", appendix),
            ("phu-luc.xlsx.p7s", openssl_cms_sign(appendix, s["organisation"], pki.folder)),
        ],
        "cms-signature-over-other-bytes": [
            ("qd-15.pdf", both),
            ("phu-luc.xlsx", appendix),
            (
                "phu-luc.xlsx.p7s",
                openssl_cms_sign(b"other bytes", s["organisation"], pki.folder, "other"),
            ),
        ],
        "appendix-without-signature": [("qd-15.pdf", both), ("phu-luc.xlsx", appendix)],
        "p7s-without-its-file": [
            ("qd-15.pdf", both),
            ("phu-luc.xlsx.p7s", openssl_cms_sign(appendix, s["organisation"], pki.folder)),
        ],
    }


# --- a demo PKI for `make run` --------------------------------------------------------------

DEMO_SAMPLES = ("valid", "organisation-only", "revoked", "modified-after-signing")
_DEMO_MARKER = "DEMO-ONLY-NOT-FOR-PRODUCTION"
# a stale CRL makes every signature INDETERMINATE: the demo's are re-issued before they go stale
_CRL_MARGIN = timedelta(days=1)
_CRL_LIFETIME = timedelta(days=7)
# the signers' certificates live a year: a demo whose certificates are about to end is made anew
_CERT_MARGIN = timedelta(days=7)


@dataclass(frozen=True)
class DemoPki:
    """What `make run` needs: signature-service's settings and the sample files."""

    folder: Path
    env: dict[str, str]  # LIENTHONG_SIGNATURE_* for signature-service
    samples: dict[str, Path]  # DEMO_SAMPLES -> a signed PDF
    certificate: Path  # a signer certificate for the ValidateCertificate example
    public_ca: Path  # a CA under the demo root, for an operator's AddTrustAnchor example


def demo_pki(folder: Path) -> DemoPki:
    """Write, once, a demo PKI under ``folder``: root and intermediate (trusted), the CRLs
    (supplied, checked offline: no server needs to run), signed sample PDFs and a signer
    certificate. Later calls reuse what is there, re-issuing CRLs about to go stale and making
    the whole demo anew when its certificates are about to end. Demo keys only: never trust
    this root outside a development machine."""
    if not _demo_usable(folder):
        _make_demo(folder)
    _refresh_crls(folder / "pki")
    pki_folder = folder / "pki"
    return DemoPki(
        folder=folder,
        env={
            "LIENTHONG_SIGNATURE_TRUST_ANCHORS": str(pki_folder / "root.pem"),
            "LIENTHONG_SIGNATURE_INTERMEDIATES": str(pki_folder / "intermediate.pem"),
            "LIENTHONG_SIGNATURE_REVOCATION_OFFLINE": "true",
            "LIENTHONG_SIGNATURE_REVOCATION_DIR": str(pki_folder / "crl"),
        },
        samples={name: folder / "samples" / f"{name}.pdf" for name in DEMO_SAMPLES},
        certificate=pki_folder / "person.pem",
        public_ca=pki_folder / "silent-ca.pem",
    )


def _demo_usable(folder: Path) -> bool:
    if not (folder / _DEMO_MARKER).exists():
        return False
    signer = x509.load_pem_x509_certificate((folder / "pki" / "person.pem").read_bytes())
    return signer.not_valid_after_utc - datetime.now(UTC) > _CERT_MARGIN


def _make_demo(folder: Path) -> None:
    """Build the demo beside ``folder`` and move it in whole (two launchers may race)."""
    building = folder.parent / f".{folder.name}-{uuid.uuid4().hex[:8]}"
    building.mkdir(parents=True)
    pki = build_pki(building / "pki", crl_port=9, ocsp_port=9, dead_port=9)
    pdf = make_pdf("QUYET DINH so 15/QD-UBND ORIGINAL (demo)")
    s = pki.signers
    both = sign_pdf(sign_pdf(pdf, s["person"]), s["organisation"])
    contents = {
        "valid": both,
        "organisation-only": sign_pdf(pdf, s["organisation"]),
        "revoked": sign_pdf(sign_pdf(pdf, s["revoked"]), s["organisation"]),
        "modified-after-signing": modify_in_new_revision(both),
    }
    (building / "samples").mkdir()
    for name, data in contents.items():
        (building / "samples" / f"{name}.pdf").write_bytes(data)
    (building / _DEMO_MARKER).write_text("a demo PKI written by lienthong_testing.pki.demo_pki\n")
    if folder.exists():  # an outdated demo
        outdated = folder.parent / f".{folder.name}-outdated-{uuid.uuid4().hex[:8]}"
        folder.rename(outdated)
        shutil.rmtree(outdated, ignore_errors=True)
    try:
        building.rename(folder)
    except OSError:  # another launcher's demo got there first: use that one
        shutil.rmtree(building, ignore_errors=True)


def _refresh_crls(pki_folder: Path) -> None:
    """Re-issue, with the same entries, each CRL that has less than a day left."""
    issuers: dict[x509.Name, tuple[x509.Certificate, ec.EllipticCurvePrivateKey]] = {}
    for stem in ("root", "intermediate", "silent-ca"):
        cert = x509.load_pem_x509_certificate((pki_folder / f"{stem}.pem").read_bytes())
        key = serialization.load_pem_private_key((pki_folder / f"{stem}.key").read_bytes(), None)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            issuers[cert.subject] = (cert, key)
    now = datetime.now(UTC)
    for crl_file in sorted((pki_folder / "crl").glob("*.crl")):
        crl = x509.load_der_x509_crl(crl_file.read_bytes())
        next_update = crl.next_update_utc
        if (next_update is not None and next_update - now > _CRL_MARGIN) or (
            crl.issuer not in issuers
        ):
            continue
        cert, key = issuers[crl.issuer]
        try:
            number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        except x509.ExtensionNotFound:
            number = 0
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(cert.subject)
            .last_update(now - timedelta(hours=1))
            .next_update(now + _CRL_LIFETIME)
            .add_extension(x509.CRLNumber(number + 1), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),
                critical=False,
            )
        )
        for entry in crl:
            builder = builder.add_revoked_certificate(entry)
        # written outside the folder signature-service lists, then moved in at once
        fresh = pki_folder / f".{crl_file.name}.{uuid.uuid4().hex[:8]}"
        fresh.write_bytes(
            builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
        )
        fresh.replace(crl_file)
