"""The demo PKI `make run` writes (issue #17): once, and its samples get the verdicts the
README promises with the settings it gives, on the day it is made and on any later day."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lienthong_testing.pki import DemoPki, demo_pki
from signature_service.pki import load_certificates
from signature_service.policy import DEFAULT_RULES, Policy, parse_rules
from signature_service.revocation import RevocationConfig
from signature_service.verifier import Verifier

PROMISED = {
    "valid": (True, ""),
    "organisation-only": (False, "personal-signature-required"),
    "revoked": (False, "signatures-valid"),
    "modified-after-signing": (False, "signatures-valid"),
}


class _FileTrust:
    version = 1

    def __init__(self, anchors: str, intermediates: str) -> None:
        self.anchors = load_certificates(Path(anchors))
        self.intermediates = load_certificates(Path(intermediates))


async def verdicts(demo: DemoPki) -> dict[str, tuple[bool, str]]:
    env = demo.env
    rules, _ = parse_rules(DEFAULT_RULES)
    verifier = Verifier(
        _FileTrust(
            env["LIENTHONG_SIGNATURE_TRUST_ANCHORS"], env["LIENTHONG_SIGNATURE_INTERMEDIATES"]
        ),
        RevocationConfig(
            mode="require", offline=True, supplied=Path(env["LIENTHONG_SIGNATURE_REVOCATION_DIR"])
        ),
        Policy(rules),
        workers=0,
    )
    try:
        found = {}
        for name, path in demo.samples.items():
            decision = await verifier.verify(
                [("qd-15.pdf", path.read_bytes())], document_type="QĐ", direction="outgoing"
            )
            found[name] = (decision.accepted, decision.failed_rule)
        return found
    finally:
        await verifier.aclose()


def age_crls(folder: Path, days: int) -> None:
    """Re-sign each CRL as it was ``days`` ago (a demo made then, its CRLs now stale)."""
    pki = folder / "pki"
    then = datetime.now(UTC) - timedelta(days=days)
    for stem in ("root", "intermediate", "silent-ca"):
        cert = x509.load_pem_x509_certificate((pki / f"{stem}.pem").read_bytes())
        key = serialization.load_pem_private_key((pki / f"{stem}.key").read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        old = x509.load_der_x509_crl((pki / "crl" / f"{stem}.crl").read_bytes())
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(cert.subject)
            .last_update(then)
            .next_update(then + timedelta(days=1))
            .add_extension(x509.CRLNumber(1), critical=False)
        )
        for entry in old:
            builder = builder.add_revoked_certificate(entry)
        crl = builder.sign(key, hashes.SHA256())
        (pki / "crl" / f"{stem}.crl").write_bytes(crl.public_bytes(serialization.Encoding.DER))


async def test_the_demo_pki_is_written_once_and_its_samples_get_their_verdicts(
    tmp_path: Path,
) -> None:
    demo = await asyncio.to_thread(demo_pki, tmp_path / "demo")
    stamp = demo.samples["valid"].stat().st_mtime_ns
    again = await asyncio.to_thread(demo_pki, tmp_path / "demo")
    assert again.samples["valid"].stat().st_mtime_ns == stamp  # written once
    assert await verdicts(demo) == PROMISED
    assert demo.certificate.exists()
    assert demo.public_ca.exists()
    assert os.listdir(tmp_path) == ["demo"]  # no building folder left


async def test_a_demo_made_days_ago_gets_fresh_crls_and_the_same_verdicts(tmp_path: Path) -> None:
    demo = await asyncio.to_thread(demo_pki, tmp_path / "demo")
    await asyncio.to_thread(age_crls, tmp_path / "demo", 3)
    # stale CRLs settle nothing: even the valid sample would be refused
    assert (await verdicts(demo))["valid"] == (False, "signatures-valid")
    demo = await asyncio.to_thread(demo_pki, tmp_path / "demo")
    assert await verdicts(demo) == PROMISED
    crl = x509.load_der_x509_crl(
        (tmp_path / "demo" / "pki" / "crl" / "intermediate.crl").read_bytes()
    )
    assert len(list(crl)) == 1  # the revoked signer is still revoked


async def test_a_demo_whose_certificates_are_ending_is_made_anew(tmp_path: Path) -> None:
    demo = await asyncio.to_thread(demo_pki, tmp_path / "demo")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ending")])
    now = datetime.now(UTC)
    ending = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=360))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    demo.certificate.write_bytes(ending.public_bytes(serialization.Encoding.PEM))
    demo = await asyncio.to_thread(demo_pki, tmp_path / "demo")
    signer = x509.load_pem_x509_certificate(demo.certificate.read_bytes())
    assert signer.not_valid_after_utc > now + timedelta(days=300)
    assert await verdicts(demo) == PROMISED
    assert os.listdir(tmp_path) == ["demo"]
