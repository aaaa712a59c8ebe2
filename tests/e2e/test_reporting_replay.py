"""Acceptance of the adoption report: a generated month replayed through the running platform
(the five services as processes) gives exactly the generator's counts for every unit, every
level and the whole province, although the reporting worker is killed (SIGKILL) half-way; a
real Prometheus scraping reporting-service then answers the district network share.

The replay is the seed's April scaled to 1/50 (same generator, smaller totals);
``python -m lienthong_local.replay --scale 1`` replays the whole month (docs/reporting.md).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from lienthong.reporting.v1 import reporting_service_pb2 as rep_pb
from lienthong_local.platform import Platform, free_port
from lienthong_local.replay import APRIL, Replay, Traffic, run_replay
from lienthong_local.run import load_sample_registry
from lienthong_testing.cleanup import remove_namespace
from lienthong_testing.waiting import eventually_sync

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "k8s" / "components" / "monitoring"
PLAN = APRIL.scaled(0.02)


@dataclass
class Replayed:
    platform: Platform
    traffic: Traffic
    rows: list[rep_pb.AdoptionRow]
    killed_after: int


@pytest.fixture(scope="module")
def platform(infra: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    prefix = f"rep{uuid.uuid4().hex[:8]}_"
    log_dir = tmp_path_factory.mktemp("replay-logs")
    try:
        with Platform.start(log_dir=log_dir, prefix=prefix) as running:
            load_sample_registry(running.endpoint("routing-service"))
            yield running
    finally:
        remove_namespace(prefix, kafka="127.0.0.1:9092", mongo="mongodb://127.0.0.1:27017")


@pytest.fixture(scope="module")
def replayed(platform: Platform) -> Replayed:
    killed_after: list[int] = []
    calls = PLAN.total().outgoing_network + (
        PLAN.total().incoming_total
        - PLAN.total().incoming_network
        + PLAN.total().outgoing_total
        - PLAN.total().outgoing_network
    )

    async def kill_reporting_half_way(replay: Replay) -> None:
        while replay.sent < calls // 2:  # noqa: ASYNC110 - polls another task's progress
            await asyncio.sleep(0.05)
        killed_after.append(replay.sent)
        await asyncio.to_thread(restart_reporting, platform)

    traffic, rows, _ = asyncio.run(
        run_replay(
            PLAN,
            document=platform.endpoint("document-service"),
            reporting=platform.endpoint("reporting-service"),
            concurrency=16,
            timeout=240,
            during=kill_reporting_half_way,
        )
    )
    return Replayed(platform, traffic, rows, killed_after[0])


def restart_reporting(platform: Platform) -> None:
    reporting = platform.processes["reporting-service"]
    assert platform.stop("reporting-service", signal.SIGKILL) == -signal.SIGKILL
    platform.launch("reporting-service", reporting.grpc_port, reporting.metrics_port)
    platform.wait_serving(120, names=("reporting-service",))


def level_row(rows: list[rep_pb.AdoptionRow], level: int) -> rep_pb.AdoptionRow:
    [row] = [r for r in rows if r.kind == rep_pb.RowKind.ROW_KIND_LEVEL and r.level == level]
    return row


@pytest.mark.timeout(900)
def test_a_replayed_month_is_counted_exactly_despite_a_killed_worker(replayed: Replayed) -> None:
    # run_replay has compared every unit, level and the province with the generated counts
    # (it raises on any difference); here: the shape and the shares of what it compared.
    traffic, rows = replayed.traffic, replayed.rows
    assert 0 < replayed.killed_after < len(traffic.documents) + len(traffic.paper)
    total = PLAN.total()
    whole = rows[0]
    assert whole.kind == rep_pb.RowKind.ROW_KIND_SCOPE
    assert (
        whole.incoming_total,
        whole.incoming_over_network,
        whole.outgoing_total,
        whole.outgoing_over_network,
    ) == (
        total.incoming_total,
        total.incoming_network,
        total.outgoing_total,
        total.outgoing_network,
    )
    share = whole.incoming_network_share
    assert (share.numerator, share.denominator) == (total.incoming_network, total.incoming_total)
    percent = Fraction(total.incoming_network * 100, total.incoming_total)
    assert share.display == f"{float(percent):.1f}%"
    district = PLAN.levels["district"]
    row = level_row(rows, rep_pb.ReportLevel.REPORT_LEVEL_DISTRICT)
    assert (row.incoming_over_network, row.incoming_total) == (
        district.incoming_network,
        district.incoming_total,
    )
    assert len([r for r in rows if r.kind == rep_pb.RowKind.ROW_KIND_UNIT]) == len(traffic.expected)
    commune = level_row(rows, rep_pb.ReportLevel.REPORT_LEVEL_COMMUNE)
    assert commune.outgoing_over_network == 0  # the seed's communes send nothing over it
    assert commune.units_only_receiving == commune.units_connected > 0


def prometheus_query(port: int, query: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=10) as response:
        answer: dict[str, Any] = json.load(response)
    return answer


def rule_file(resource: Path) -> str:
    """A PrometheusRule's spec as a Prometheus rule file: its ``spec:`` block, dedented."""
    lines = resource.read_text().splitlines()
    spec = lines[lines.index("spec:") + 1 :]
    assert all(not line or line.startswith("  ") for line in spec), "spec must come last"
    return "\n".join(line[2:] for line in spec) + "\n"


@pytest.fixture
def prometheus(replayed: Replayed, tmp_path: Path) -> Iterator[int]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: `make promtool` installs the Debian package")
    (tmp_path / "rules.yaml").write_text(rule_file(MONITORING / "adoption-rules.yaml"))
    reporting = replayed.platform.processes["reporting-service"]
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "rules.yaml")],
        "scrape_configs": [
            {
                "job_name": "reporting-service",
                "static_configs": [{"targets": [f"127.0.0.1:{reporting.metrics_port}"]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    with (tmp_path / "prometheus.log").open("wb") as log:
        server = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def scalar(answer: dict[str, Any]) -> float | None:
    result = answer["data"]["result"]
    return float(result[0]["value"][1]) if len(result) == 1 else None


def test_prometheus_answers_the_district_network_share(replayed: Replayed, prometheus: int) -> None:
    district = PLAN.levels["district"]
    expected = district.incoming_network / district.incoming_total
    query = (
        'sum(lienthong_adoption_month_documents{level="district", direction="incoming",'
        ' channel="network"}) / sum(lienthong_adoption_month_documents{level="district",'
        ' direction="incoming"})'
    )

    def ask(text: str) -> float | None:
        try:
            return scalar(prometheus_query(prometheus, text))
        except OSError:  # not listening yet
            return None

    assert eventually_sync(lambda: ask(query), until=lambda v: v == expected, timeout=90)
    recorded = (
        'level_direction:lienthong_adoption_network_share:ratio{level="district",'
        ' direction="incoming"}'
    )
    assert eventually_sync(lambda: ask(recorded), until=lambda v: v == expected, timeout=90)
    whole = PLAN.total()
    province = whole.outgoing_network / whole.outgoing_total
    outgoing = 'direction:lienthong_adoption_network_share:ratio{direction="outgoing"}'
    # (exact equality holds: both sides are one IEEE division of the same two integers)
    assert eventually_sync(lambda: ask(outgoing), until=lambda v: v == province, timeout=90)
    # Every query of the Grafana dashboard is valid PromQL for this Prometheus.
    dashboard = json.loads((MONITORING / "dashboards" / "lienthong-adoption.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(queries) > 10
    for text in queries:
        assert prometheus_query(prometheus, text)["status"] == "success", text
