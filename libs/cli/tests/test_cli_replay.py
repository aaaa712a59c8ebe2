"""`lienthong replay` as a subprocess against the five services started as processes, on a
platform of its own: the replay's baseline is the report before it, so no other test's
documents may still be on their way to the report, and its traffic stays out of theirs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import grpc
import pytest

from lienthong.reporting.v1 import reporting_service_pb2 as rep_pb
from lienthong.reporting.v1.reporting_service_pb2_grpc import ReportingServiceStub
from lienthong.routing.v1 import routing_service_pb2 as routing_pb
from lienthong.routing.v1.routing_service_pb2_grpc import RoutingServiceStub
from lienthong_local.platform import Platform
from lienthong_local.replay import APRIL, COUNTS, generate
from lienthong_local.sample import sample_units
from lienthong_testing.callers import OBSERVER, REGISTRY_ADMIN
from lienthong_testing.cleanup import remove_namespace

pytestmark = pytest.mark.e2e

LIENTHONG = Path(sys.executable).parent / "lienthong"
VIETNAM = timezone(timedelta(hours=7))
LEVEL_NUMBER = {
    "province": rep_pb.ReportLevel.REPORT_LEVEL_PROVINCE,
    "district": rep_pb.ReportLevel.REPORT_LEVEL_DISTRICT,
    "commune": rep_pb.ReportLevel.REPORT_LEVEL_COMMUNE,
}


@pytest.fixture(scope="module")
def platform(infra: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    prefix = f"clirp{uuid.uuid4().hex[:8]}_"
    with Platform.start(
        log_dir=tmp_path_factory.mktemp("cli-replay-logs"), prefix=prefix, timeout=300
    ) as running:
        with grpc.insecure_channel(running.endpoint("routing-service")) as channel:
            for unit in sample_units():
                RoutingServiceStub(channel).UpsertUnit(
                    routing_pb.UpsertUnitRequest(unit=unit), metadata=REGISTRY_ADMIN, timeout=10
                )
        yield running
    remove_namespace(prefix, kafka="127.0.0.1:9092", mongo="mongodb://127.0.0.1:27017")


def cli(platform: Platform, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIENTHONG_CONFIG": "/nonexistent/lienthong.toml"}
    env.pop("LIENTHONG_PROFILE", None)
    endpoints = [
        argument
        for name in ("document", "routing", "signature", "notification", "reporting")
        for argument in ("--endpoint", f"{name}={platform.endpoint(f'{name}-service')}")
    ]
    return subprocess.run(
        [str(LIENTHONG), *endpoints, *args],
        capture_output=True, text=True, env=env, check=False, timeout=600,
    )  # fmt: skip


def reference_report(platform: Platform, period: str) -> list[rep_pb.AdoptionRow]:
    with grpc.insecure_channel(platform.endpoint("reporting-service")) as channel:
        reply = ReportingServiceStub(channel).GetAdoptionReport(
            rep_pb.GetAdoptionReportRequest(period=period), metadata=OBSERVER, timeout=30
        )
    return list(reply.rows)


def level_counts(rows: list[rep_pb.AdoptionRow]) -> dict[int, list[int]]:
    """The four counts of the whole province (level 0) and of each level's row."""
    return {
        int(row.level): [row.incoming_total, row.incoming_over_network, row.outgoing_total,
                         row.outgoing_over_network]
        for row in rows
        if row.kind != rep_pb.RowKind.ROW_KIND_UNIT
    }  # fmt: skip


# it carries the platform's start, on a machine shared with other test runs
@pytest.mark.timeout(900)
def test_replay_shows_progress_and_ends_with_the_report_equal_to_what_was_sent(
    platform: Platform,
) -> None:
    month = datetime.now(VIETNAM).strftime("%Y-%m")
    before = level_counts(reference_report(platform, month))
    traffic = generate(APRIL.scaled(0.002), seed=7)
    calls = len(traffic.documents) + len(traffic.paper)

    result = cli(platform, "replay", "--scale", "0.002", "--seed", "7", "--concurrency", "8",
                 "--timeout", "300", "--output", "json")  # fmt: skip

    assert result.returncode == 0, result.stderr
    replayed: dict[str, Any] = json.loads(result.stdout)
    assert replayed["calls"] == calls
    assert "calls sent" in result.stderr
    assert f"{calls}/{calls}" in result.stderr
    assert "report rows exact" in result.stderr
    sent: dict[int, list[int]] = {}
    for unit, counts in traffic.expected.items():
        for level in (0, LEVEL_NUMBER[traffic.level_of[unit]]):
            figures = [counts[name] for name in COUNTS]
            sent[level] = [a + b for a, b in zip(sent.get(level, [0] * 4), figures, strict=True)]
    after = level_counts(reference_report(platform, month))
    for level, figures in sent.items():
        grown = [a - b for a, b in zip(after[level], before.get(level, [0] * 4), strict=True)]
        assert grown == figures, f"level {level}"
    printed = {
        int(rep_pb.ReportLevel.Value(row["level"])): [
            int(row[name]) for name in ("incoming_total", "incoming_over_network",
                                        "outgoing_total", "outgoing_over_network")
        ]
        for row in replayed["rows"]
    }  # fmt: skip
    assert printed == after
