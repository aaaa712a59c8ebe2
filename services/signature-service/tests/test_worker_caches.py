"""What a validation worker remembers between documents (decision 0402, "Speed") never
outlives the trust it was computed under: a trusted chain remembered for a signer is not
reused once its anchor is gone, and the remembered words are those computed afresh."""

from __future__ import annotations

from asn1crypto import x509

from lienthong_testing.pki import LocalPki
from signature_service import engine
from signature_service import pki as pki_words
from signature_service.engine import Material
from signature_service.pki import load_certificates


def _signer(local: LocalPki, name: str) -> x509.Certificate:
    return load_certificates(local.signers[name].cert_file)[0][0]


def test_a_remembered_chain_is_not_reused_once_its_anchor_is_removed(pki: LocalPki) -> None:
    anchors = tuple(c.dump() for c, _ in load_certificates(pki.anchors_file))
    intermediates = tuple(c.dump() for c, _ in load_certificates(pki.intermediates_file))
    signer = _signer(pki, "person")
    trusted = Material(anchors=anchors, intermediates=intermediates)
    chain = engine._trusted_chain(signer, [], trusted)
    assert chain is not None
    assert len(chain) >= 2
    assert engine._trusted_chain(signer, [], trusted) is chain  # remembered
    untrusted = Material(anchors=(), intermediates=intermediates)
    assert engine._trusted_chain(signer, [], untrusted) is None
    assert engine._trusted_chain(signer, [], trusted) is chain


def test_remembered_words_are_those_computed_afresh(pki: LocalPki) -> None:
    for name in ("person", "organisation"):
        cert = _signer(pki, name)
        for _ in range(2):
            assert pki_words.rfc4514(cert.subject) == pki_words._rfc4514(cert.subject)
            assert pki_words.rfc4514(cert.issuer) == pki_words._rfc4514(cert.issuer)
            assert pki_words.uid_of(cert) == pki_words._uid_of(cert)
            assert pki_words.describe_key_usage(cert) == pki_words._describe_key_usage(cert)
    person, organisation = _signer(pki, "person"), _signer(pki, "organisation")
    assert pki_words.uid_of(person) != pki_words.uid_of(organisation)
