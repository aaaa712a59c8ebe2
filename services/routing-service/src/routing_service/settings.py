"""routing-service's settings: the kit's (docs/configuration.md); none of its own yet."""

from __future__ import annotations

from dataclasses import dataclass

from lienthong_kit.settings import KitSettings

__all__ = ["Settings"]


@dataclass(frozen=True, kw_only=True)
class Settings(KitSettings):
    pass
