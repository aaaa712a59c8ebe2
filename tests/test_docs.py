"""The user docs and the code agree: every metric and every setting is documented."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import REGISTRY

import gateway_service.metrics  # noqa: F401 - these imports register every metric
import lienthong_kit.metrics  # noqa: F401
import notification_service.metrics  # noqa: F401
import reporting_service.metrics  # noqa: F401
import signature_service.metrics  # noqa: F401
from gateway_service.settings import Settings as GatewaySettings
from lienthong_kit.settings import KitSettings, describe_settings

DOCS = Path(__file__).resolve().parents[1] / "docs"


def documented(page: str, pattern: str) -> set[str]:
    return set(re.findall(pattern, (DOCS / page).read_text(), flags=re.MULTILINE))


def test_every_metric_is_on_the_metrics_page_and_nothing_else() -> None:
    in_code = {
        collector_name
        for collector_name in REGISTRY._names_to_collectors
        if collector_name.startswith("lienthong_")
    }
    base_names = {re.sub(r"_(total|bucket|count|sum|created)$", "", name) for name in in_code}
    in_docs = documented("metrics.md", r"^\| `(lienthong_[a-z_]+)` \|")
    documented_bases = {re.sub(r"_total$", "", name) for name in in_docs}
    assert documented_bases == base_names


def test_every_setting_is_on_the_configuration_page() -> None:
    in_docs = documented("configuration.md", r"^\| `(LIENTHONG_[A-Z0-9_]+)` \|")
    in_code = {env for env, _, _ in describe_settings(KitSettings)}
    in_code |= {env for env, _, _ in describe_settings(GatewaySettings)}
    assert in_code <= in_docs, sorted(in_code - in_docs)
