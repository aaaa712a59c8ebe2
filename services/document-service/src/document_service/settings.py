"""document-service's settings: the kit's, plus the attachment limit (docs/configuration.md)."""

from __future__ import annotations

from dataclasses import dataclass

from lienthong_kit.settings import KitSettings, setting

__all__ = ["Settings"]


@dataclass(frozen=True, kw_only=True)
class Settings(KitSettings):
    attachment_max_bytes: int = setting(
        "LIENTHONG_ATTACHMENT_MAX_BYTES", 20 * 1024 * 1024, doc="largest attachment accepted"
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
