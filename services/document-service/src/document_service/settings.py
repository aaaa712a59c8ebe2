"""document-service's settings: the kit's, attachments, audit signing (docs/configuration.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lienthong_kit.settings import KitSettings, setting

__all__ = ["Settings"]


@dataclass(frozen=True, kw_only=True)
class Settings(KitSettings):
    attachment_max_bytes: int = setting(
        "LIENTHONG_ATTACHMENT_MAX_BYTES", 20 * 1024 * 1024, doc="largest attachment accepted"
    )
    audit_signing_key: Path | None = setting(
        "LIENTHONG_AUDIT_SIGNING_KEY",
        None,
        doc="Ed25519 private key (PEM) signing audit checkpoints; unset: unsigned (dev only)",
    )
    audit_public_keys: tuple[Path, ...] = setting(
        "LIENTHONG_AUDIT_PUBLIC_KEYS",
        (),
        doc="older audit public keys (PEM) still accepted by VerifyAudit after a rotation",
    )
    audit_checkpoint_seconds: float = setting(
        "LIENTHONG_AUDIT_CHECKPOINT_SECONDS", 10.0, doc="seconds between audit checkpoints"
    )
    audit_checkpoint_entries: int = setting(
        "LIENTHONG_AUDIT_CHECKPOINT_ENTRIES", 1000, doc="entries that bring a checkpoint sooner"
    )
    audit_unsigned_grace_seconds: float = setting(
        "LIENTHONG_AUDIT_UNSIGNED_GRACE_SECONDS",
        300.0,
        doc="VerifyAudit: how long an entry may stay after its chain's last checkpoint",
    )
    event_max_bytes: int = setting(
        "LIENTHONG_EVENT_MAX_BYTES",
        1_000_000,
        doc="largest event a request may make (below the topics' max.message.bytes)",
    )
    outbox_unconfirmed_seconds: float = setting(
        "LIENTHONG_OUTBOX_UNCONFIRMED_SECONDS",
        10.0,
        doc="after an insert of unknown outcome (cancelled, reply lost), when its slot is looked"
        " up and what is there published",
    )
    document_attachments_max_bytes: int = setting(
        "LIENTHONG_DOCUMENT_ATTACHMENTS_MAX_BYTES",
        50 * 1024 * 1024,
        doc="most bytes one document's attachments may hold together",
    )
    attachment_unreferenced_seconds: float = setting(
        "LIENTHONG_ATTACHMENT_UNREFERENCED_SECONDS",
        86_400.0,
        doc="an uploaded attachment no document names is removed after this long",
    )
