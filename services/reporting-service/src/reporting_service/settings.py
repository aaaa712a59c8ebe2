"""reporting-service's settings: the kit's plus faust's data folder (docs/configuration.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lienthong_kit.settings import KitSettings, setting

__all__ = ["Settings"]


@dataclass(frozen=True, kw_only=True)
class Settings(KitSettings):
    data_dir: Path = setting(
        "LIENTHONG_REPORTING_DATA_DIR",
        Path("/tmp/lienthong-reporting"),  # noqa: S108 - faust's scratch folder, rebuilt on start
        doc="faust's data folder (table state is rebuilt from the changelog topics)",
    )
