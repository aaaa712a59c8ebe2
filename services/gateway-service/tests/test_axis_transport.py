"""The HTTP transport to the axis, against the sandbox axis app (no network, no services)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from gateway_service.axis import AxisRefused, AxisUnavailable, HttpAxis, Waiting
from gateway_service.bridge import with_hop
from gateway_service.settings import Settings
from lienthong_edxml import (
    Organ,
    ResponseFor,
    StatusCode,
    StatusPackage,
    TraceHeader,
    document_bytes,
    parse_document,
    status_bytes,
)
from lienthong_kit.settings import load_settings
from lienthong_local.axis import create_axis

GOLDEN = (
    Path(__file__).resolve().parents[3]
    / "libs" / "edxml" / "tests" / "data" / "golden" / "document_qcvn_bussiness.edxml"
)  # fmt: skip


def sandbox_transport() -> tuple[HttpAxis, httpx.AsyncClient]:
    app = create_axis()
    transport = httpx.ASGITransport(app)
    admin = httpx.AsyncClient(transport=transport, base_url="http://axis")
    return HttpAxis("http://axis", timeout=5, transport=transport), admin


async def test_a_package_sent_twice_is_one_and_waits_for_the_hub() -> None:
    axis, admin = sandbox_transport()
    golden = parse_document(GOLDEN.read_bytes())
    recipient = golden.to[0].organ_id
    hub = recipient.rpartition(".")[2]
    async with admin:
        assert await axis.send_package(GOLDEN.read_bytes()) is True
        assert await axis.send_package(GOLDEN.read_bytes()) is False
        waiting = await axis.pending(hub)
        addressed = sorted(o.organ_id for o in golden.to)
        assert sorted(w.agency for w in waiting) == addressed
        assert {w.document_id for w in waiting} == {golden.document_id}
        assert await axis.get_package(waiting[0].key) == GOLDEN.read_bytes()

        status = StatusPackage(
            response_for=ResponseFor(golden.from_.organ_id, golden.document_id),
            from_=Organ(recipient),
            status_code=StatusCode("03"),
            timestamp=datetime.now(UTC),
        )
        await axis.send_status(status_bytes(status))
        assert [w.agency for w in await axis.pending(hub)] == [
            code for code in addressed if code != recipient
        ]
        sender_hub = golden.from_.organ_id.rpartition(".")[2]
        statuses = await axis.statuses(sender_hub)
        assert [w.agency for w in statuses] == [golden.from_.organ_id]
        assert await axis.get_status(statuses[0].key) == status_bytes(status)
        await axis.ack_status(statuses[0].key)
        assert await axis.statuses(sender_hub) == []
    await axis.close()


async def test_a_failing_axis_is_unavailable_and_a_bad_package_refused() -> None:
    axis, admin = sandbox_transport()
    async with admin:
        await admin.put("/admin/faults", json={"fail_next": 1, "status": 503})
        with pytest.raises(AxisUnavailable, match="HTTP 503"):
            await axis.send_package(GOLDEN.read_bytes())
        with pytest.raises(AxisRefused, match="HTTP 400"):
            await axis.send_package(b"<not-edxml/>")
        with pytest.raises(AxisRefused, match="HTTP 404"):
            await axis.get_package("no-such-key")
    await axis.close()
    unreachable = HttpAxis("http://127.0.0.1:9", timeout=1)
    with pytest.raises(AxisUnavailable):
        await unreachable.pending("H23")
    await unreachable.close()


def test_a_package_leaving_gets_the_hub_as_its_last_hop() -> None:
    golden = parse_document(GOLDEN.read_bytes())
    at = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    earlier = (TraceHeader("000.00.00.G01", at),)
    hops = with_hop(earlier, "000.00.00.H23", at)
    assert hops == (*earlier, TraceHeader("000.00.00.H23", at))
    written = parse_document(document_bytes(replace(golden, traces=hops)))
    assert [hop.organ_id for hop in written.traces] == ["000.00.00.G01", "000.00.00.H23"]


def test_the_bridge_needs_the_hub_code_with_the_axis() -> None:
    base = {"LIENTHONG_DEV_AUTH": "true", "LIENTHONG_AXIS_URL": "http://127.0.0.1:8490"}
    with pytest.raises(Exception, match="LIENTHONG_AXIS_HUB_CODE"):
        load_settings(Settings, base)
    settings = load_settings(Settings, {**base, "LIENTHONG_AXIS_HUB_CODE": "000.00.00.H23"})
    assert settings.axis_hub == "H23"
    with pytest.raises(Exception, match="LIENTHONG_AXIS_URL"):
        load_settings(Settings, {**base, "LIENTHONG_AXIS_URL": "ftp://x",
                                 "LIENTHONG_AXIS_HUB_CODE": "000.00.00.H23"})  # fmt: skip
    assert Waiting("a", "k").document_id == ""
