"""Validation worker processes log JSON with the service's name and the caller's trace id
(issue #17), like the rest of the service."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind

from lienthong_kit.tracing import current_trace_id, span


async def test_worker_processes_log_json_with_service_and_trace_id(
    make_verifier: Any, docs: dict[str, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    checker = make_verifier(workers=1, mode="soft-fail")
    await checker.warm_up()
    with span("test", context=Context(), kind=SpanKind.INTERNAL):
        trace_id = current_trace_id()
        # the unreachable OCSP responder makes the worker log revocation_unknown
        await checker.verify(docs["unreachable-ocsp"], document_type="QĐ", direction="outgoing")
    lines = [line for line in capfd.readouterr().out.splitlines() if "revocation_unknown" in line]
    assert lines, "the worker logged nothing"
    record = json.loads(lines[-1])
    assert record["event"] == "revocation_unknown"
    assert record["service"] == "signature-service"
    assert record["trace_id"] == trace_id != ""
