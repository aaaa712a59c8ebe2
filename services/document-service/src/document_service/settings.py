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
