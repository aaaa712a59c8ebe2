"""configure_logging: JSON lines with the fixed keys; library loggers held at WARNING unless
named in ``libraries_at_level``."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from lienthong_kit.logs import configure_logging, get_logger
from lienthong_kit.tracing import configure_tracing, current_trace_id, tracer


@pytest.fixture
def restored() -> Iterator[None]:
    """configure_logging changes process-wide state: put it back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in ("faust", "aiokafka")}
    config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)
    structlog.configure(**config)


def lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_service_lines_and_library_levels(
    restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("probe-service", "info", libraries_at_level=("faust",))
    get_logger("probe").info("probe_started", port=1)
    logging.getLogger("faust").info("rebalance done")  # named: kept at the service's level
    logging.getLogger("aiokafka").info("metadata refreshed")  # not named: below WARNING
    logging.getLogger("aiokafka").warning("broker unreachable")
    out = lines(capsys.readouterr().out)
    assert [line["event"] for line in out] == [
        "probe_started",
        "rebalance done",
        "broker unreachable",
    ]
    assert out[0]["service"] == "probe-service"
    assert out[0]["port"] == 1
    assert {"ts", "level", "event", "service", "trace_id"} <= set(out[1])


def test_lines_carry_the_current_spans_trace_id(
    restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_tracing("probe-service")  # as the service bootstrap does
    configure_logging("probe-service", "info")
    with tracer.start_as_current_span("probe"):
        trace_id = current_trace_id()
        get_logger("probe").info("inside")
    get_logger("probe").info("outside")
    inside, outside = lines(capsys.readouterr().out)
    assert len(trace_id) == 32
    assert inside["trace_id"] == trace_id
    assert outside["trace_id"] == ""
