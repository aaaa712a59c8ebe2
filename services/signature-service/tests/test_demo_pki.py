"""The demo PKI `make run` writes (issue #17): once, and its samples get the verdicts the
README promises with the settings it gives."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lienthong_testing.pki import demo_pki
from signature_service.pki import load_certificates
from signature_service.policy import DEFAULT_RULES, Policy, parse_rules
from signature_service.revocation import RevocationConfig
from signature_service.verifier import Verifier


class _FileTrust:
    version = 1

    def __init__(self, anchors: str, intermediates: str) -> None:
        self.anchors = load_certificates(Path(anchors))
        self.intermediates = load_certificates(Path(intermediates))


async def test_the_demo_pki_is_written_once_and_its_samples_get_their_verdicts(
    tmp_path: Path,
) -> None:
    demo = await asyncio.to_thread(demo_pki, tmp_path / "demo")
    stamp = demo.samples["valid"].stat().st_mtime_ns
    again = await asyncio.to_thread(demo_pki, tmp_path / "demo")
    assert again.samples["valid"].stat().st_mtime_ns == stamp  # written once
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
        verdicts = {}
        for name, path in demo.samples.items():
            decision = await verifier.verify(
                [("qd-15.pdf", path.read_bytes())], document_type="QĐ", direction="outgoing"
            )
            verdicts[name] = (decision.accepted, decision.failed_rule)
    finally:
        await verifier.aclose()
    assert verdicts == {
        "valid": (True, ""),
        "organisation-only": (False, "personal-signature-required"),
        "revoked": (False, "signatures-valid"),
        "modified-after-signing": (False, "signatures-valid"),
    }
    assert demo.certificate.exists()
