"""Named profiles (like kubectl contexts) in a TOML file.

    # ~/.config/lienthong/config.toml
    current = "local"

    [profiles.local]
    host = "127.0.0.1"
    identity = "operator/observer/hoa"      # dev mode; or unit = "000.00.00.H23"

    [profiles.prod]
    host = "lienthong.hoabinh.gov.vn"
    cacert = "/etc/lienthong/ca.pem"
    cert = "/etc/lienthong/vpubnd.pem"
    key = "/etc/lienthong/vpubnd.key"
    document = "lienthong.hoabinh.gov.vn:443"

The file is read and written with tomlkit, so comments a user adds are kept.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomlkit

__all__ = ["PROFILE_KEYS", "Config", "Profile", "config_path"]

# Per-service endpoint keys (host:port) that override `host` with the known local port.
SERVICE_KEYS = ("document", "routing", "signature", "notification", "reporting")
PROFILE_KEYS = (
    "host", *SERVICE_KEYS, "identity", "unit", "cacert", "cert", "key", "server_name",
)  # fmt: skip


def config_path() -> Path:
    """LIENTHONG_CONFIG, else $XDG_CONFIG_HOME/lienthong/config.toml."""
    explicit = os.environ.get("LIENTHONG_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "lienthong" / "config.toml"


@dataclass
class Profile:
    host: str = ""
    document: str = ""
    routing: str = ""
    signature: str = ""
    notification: str = ""
    reporting: str = ""
    identity: str = ""
    unit: str = ""
    cacert: str = ""
    cert: str = ""
    key: str = ""
    server_name: str = ""

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> Profile:
        unknown = sorted(set(data) - set(PROFILE_KEYS))
        if unknown:
            raise ValueError(f"unknown profile keys {unknown}; known: {', '.join(PROFILE_KEYS)}")
        return cls(**{key: str(value) for key, value in data.items()})

    def as_dict(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}


@dataclass
class Config:
    path: Path
    current: str = ""
    profiles: dict[str, Profile] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> Config:
        path = path or config_path()
        if not path.exists():
            return cls(path)
        try:
            document = tomlkit.parse(path.read_text("utf-8")).unwrap()
        except tomlkit.exceptions.ParseError as exc:
            raise ValueError(f"{path}: {exc}") from exc
        profiles: dict[str, Profile] = {}
        for name, data in dict(document.get("profiles", {})).items():
            try:
                profiles[name] = Profile.from_mapping(dict(data))
            except ValueError as exc:
                raise ValueError(f"{path}: profile {name!r}: {exc}") from exc
        return cls(path, str(document.get("current", "")), profiles)

    def save(self) -> None:
        document = (
            tomlkit.parse(self.path.read_text("utf-8"))
            if self.path.exists()
            else tomlkit.document()
        )
        document["current"] = self.current
        table = tomlkit.table(is_super_table=True)
        for name, profile in sorted(self.profiles.items()):
            table[name] = profile.as_dict()
        document["profiles"] = table
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(tomlkit.dumps(document), "utf-8")
