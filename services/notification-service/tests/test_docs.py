"""The user docs name every setting of notification-service."""

from __future__ import annotations

import re
from pathlib import Path

from lienthong_kit.settings import describe_settings
from notification_service.settings import Settings

DOCS = Path(__file__).resolve().parents[3] / "docs"


def test_every_setting_is_on_the_configuration_page() -> None:
    page = (DOCS / "configuration.md").read_text()
    in_docs = set(re.findall(r"^\| `(LIENTHONG_[A-Z0-9_]+)` \|", page, flags=re.MULTILINE))
    in_code = {env for env, _, _ in describe_settings(Settings)}
    assert in_code <= in_docs, sorted(in_code - in_docs)
