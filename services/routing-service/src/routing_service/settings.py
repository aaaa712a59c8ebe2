"""routing-service's settings: the kit's plus the province's policy for closed units
(docs/configuration.md)."""

from __future__ import annotations

from dataclasses import dataclass

from lienthong_kit.settings import KitSettings, setting

__all__ = ["Settings"]


@dataclass(frozen=True, kw_only=True)
class Settings(KitSettings):
    forward_closed: bool = setting(
        "LIENTHONG_ROUTING_FORWARD_CLOSED",
        False,
        doc="deliver a document addressed to a closed unit to its one successor instead of"
        " bouncing it (a unit divided among several still bounces, naming them)",
    )
