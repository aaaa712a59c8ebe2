"""The trust store: anchors and intermediates from configuration (a PEM bundle or a folder,
re-read when the files change) plus anchors added by operators (kept in the store, so every
replica and every restart sees them).

    trust = TrustStore(store, anchors_path=Path("/etc/lienthong/trust/anchors"),
                       intermediates_path=None)
    await trust.reload()                 # at start, then every few seconds
    trust.anchors, trust.intermediates   # [(certificate, source)]
"""

from __future__ import annotations

from pathlib import Path

from asn1crypto import x509

from lienthong_kit.logs import get_logger
from signature_service.pki import (
    CERT_SUFFIXES,
    fingerprint,
    is_self_signed_ca,
    load_certificates,
    parse_certificates,
    to_pem,
)
from signature_service.store import SignatureStore

__all__ = ["TrustStore"]

log = get_logger(__name__)


def _stamp(path: Path | None) -> tuple[tuple[str, float, int], ...]:
    if path is None or not path.exists():
        return ()
    files = (
        sorted(p for p in path.iterdir() if p.suffix.lower() in CERT_SUFFIXES)
        if path.is_dir()
        else [path]
    )
    return tuple((str(p), p.stat().st_mtime, p.stat().st_size) for p in files)


class TrustStore:
    def __init__(
        self,
        store: SignatureStore,
        *,
        anchors_path: Path | None,
        intermediates_path: Path | None,
    ) -> None:
        self._store = store
        self.anchors_path = anchors_path
        self.intermediates_path = intermediates_path
        self.anchors: list[tuple[x509.Certificate, str]] = []
        self.intermediates: list[tuple[x509.Certificate, str]] = []
        self._config_anchors: list[tuple[x509.Certificate, str]] = []
        self._config_intermediates: list[tuple[x509.Certificate, str]] = []
        # SHA-256 -> hierarchy (lienthong.signature.v1.Hierarchy) of operator-added certificates
        self.hierarchies: dict[str, int] = {}
        self._stamps: tuple[object, ...] = ()
        self._identity: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
        self.version = 0  # bumped on every change (the verifier caches DER lists per version)

    def _read_config(self) -> None:
        stamps = (_stamp(self.anchors_path), _stamp(self.intermediates_path))
        if stamps == self._stamps:
            return
        anchors = load_certificates(self.anchors_path) if self.anchors_path else []
        intermediates = (
            load_certificates(self.intermediates_path) if self.intermediates_path else []
        )
        # a bundle may mix roots and intermediates: only self-signed CAs are anchors
        self._config_anchors = [(c, s) for c, s in anchors if is_self_signed_ca(c)]
        self._config_intermediates = intermediates + [
            (c, s) for c, s in anchors if not is_self_signed_ca(c)
        ]
        self._stamps = stamps
        log.info(
            "trust_config_loaded",
            anchors=len(self._config_anchors),
            intermediates=len(self._config_intermediates),
        )

    async def reload(self) -> None:
        """Re-read the configured files (when changed) and the operators' anchors."""
        try:
            self._read_config()
        except (OSError, ValueError) as exc:
            # keep serving with the anchors in force; the operator sees this in the log
            log.error("trust_config_unreadable", error=str(exc))
        added: list[tuple[x509.Certificate, str]] = []
        added_intermediates: list[tuple[x509.Certificate, str]] = []
        hierarchies: dict[str, int] = {}
        for row in await self._store.operator_anchors():
            for cert in parse_certificates(row.pem.encode()):
                hierarchies[fingerprint(cert)] = row.hierarchy
                target = added_intermediates if row.intermediate else added
                target.append((cert, f"operator:{row.added_by}"))
        anchors = list(self._config_anchors)
        known = {fingerprint(c) for c, _ in anchors}
        anchors += [(c, s) for c, s in added if fingerprint(c) not in known]
        intermediates = list(self._config_intermediates)
        known = {fingerprint(c) for c, _ in intermediates}
        intermediates += [(c, s) for c, s in added_intermediates if fingerprint(c) not in known]
        self.hierarchies = hierarchies
        identity = (
            tuple(fingerprint(c) for c, _ in anchors),
            tuple(fingerprint(c) for c, _ in intermediates),
        )
        if identity != self._identity or self.version == 0:
            self.anchors = anchors
            self.intermediates = intermediates
            self._identity = identity
            self.version += 1
            if not anchors:
                log.warning("no_trust_anchors", note="every signature will fail its chain check")

    async def add(self, cert: x509.Certificate, added_by: str, hierarchy: int = 0) -> bool:
        """Store an operator's anchor (a self-signed CA) or intermediate (any other CA); False
        when it was there already."""
        key = fingerprint(cert)
        if key in {fingerprint(c) for c, _ in self.anchors + self.intermediates}:
            return False
        added = await self._store.add_operator_anchor(
            key,
            to_pem(cert),
            added_by,
            hierarchy=hierarchy,
            intermediate=not is_self_signed_ca(cert),
        )
        await self.reload()
        return added

    async def remove(self, sha256: str) -> bool:
        """Remove an operator-added certificate; False when none had that fingerprint."""
        removed = await self._store.remove_operator_anchor(sha256)
        await self.reload()
        return removed
