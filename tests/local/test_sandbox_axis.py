"""The sandbox national axis: stores packages, lists pending ones per agency, returns them,
takes statuses, and fails or delays when told to."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx

from lienthong_edxml import Organ, ResponseFor, StatusCode, StatusPackage, parse_document
from lienthong_edxml.writer import status_bytes
from lienthong_local.axis import create_axis

GOLDEN = (
    Path(__file__).resolve().parents[2]
    / "libs" / "edxml" / "tests" / "data" / "golden" / "document_qcvn_bussiness.edxml"
)  # fmt: skip
HOSTILE = GOLDEN.parents[1] / "hostile" / "xxe.edxml"


def client() -> httpx.AsyncClient:
    app = create_axis([{"code": "000.00.00.G01", "name": "Văn phòng Chính phủ", "parent": ""}])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://axis")


async def test_a_package_waits_for_its_recipients_until_they_answer() -> None:
    package = parse_document(GOLDEN.read_bytes())
    recipient = package.to[0].organ_id
    async with client() as axis:
        sent = await axis.post("/packages", content=GOLDEN.read_bytes())
        assert sent.status_code == 201
        key = sent.json()["key"]
        again = await axis.post("/packages", content=GOLDEN.read_bytes())
        assert again.json() == {"key": key, "document_id": package.document_id, "duplicate": True}

        pending = (await axis.get(f"/agencies/{recipient}/pending")).json()
        assert pending == {"keys": [key], "document_ids": [package.document_id]}
        body = (await axis.get(f"/packages/{key}")).content
        assert body == GOLDEN.read_bytes()

        status = StatusPackage(
            response_for=ResponseFor(package.from_.organ_id, package.document_id),
            from_=Organ(recipient),
            status_code=StatusCode("03"),
            timestamp=datetime.now(UTC),
        )
        answered = await axis.post("/statuses", content=status_bytes(status))
        assert answered.status_code == 201
        assert (await axis.get(f"/agencies/{recipient}/pending")).json()["keys"] == []
        waiting = (await axis.get(f"/agencies/{package.from_.organ_id}/statuses")).json()
        assert waiting == {"keys": [answered.json()["key"]]}
        returned = (await axis.get(f"/statuses/{waiting['keys'][0]}")).content
        assert returned == status_bytes(status)
        await axis.post(f"/statuses/{waiting['keys'][0]}/ack")
        assert (await axis.get(f"/agencies/{package.from_.organ_id}/statuses")).json() == {
            "keys": []
        }
        agencies = (await axis.get("/agencies")).json()["agencies"]
        assert agencies[0]["code"] == "000.00.00.G01"


async def test_a_hostile_package_is_refused_and_not_stored() -> None:
    async with client() as axis:
        reply = await axis.post("/packages", content=HOSTILE.read_bytes())
        assert reply.status_code == 400
        assert [p["code"] for p in reply.json()["problems"]] == ["doctype-refused"]
        assert (await axis.get("/admin/state")).json()["packages"] == 0


async def test_it_fails_when_told_to_then_recovers() -> None:
    async with client() as axis:
        await axis.put("/admin/faults", json={"fail_next": 2, "status": 503})
        first = await axis.post("/packages", content=GOLDEN.read_bytes())
        second = await axis.get("/agencies")
        third = await axis.post("/packages", content=GOLDEN.read_bytes())
        assert [first.status_code, second.status_code, third.status_code] == [503, 503, 201]
        bad = await axis.put("/admin/faults", json={"fail_next": -1})
        assert bad.status_code == 422
        state = (await axis.get("/admin/state")).json()
        assert state["packages"] == 1
        assert state["faults"]["fail_next"] == 0


async def test_a_hub_lists_what_waits_for_every_agency_of_its_province() -> None:
    package = parse_document(GOLDEN.read_bytes())
    recipient = package.to[0].organ_id
    hub = recipient.rpartition(".")[2]
    async with client() as axis:
        key = (await axis.post("/packages", content=GOLDEN.read_bytes())).json()["key"]
        listed = (await axis.get(f"/hubs/{hub}/pending")).json()["pending"]
        assert {"agency": recipient, "key": key, "document_id": package.document_id} in listed
        assert (await axis.get("/hubs/ZZZ/pending")).json() == {"pending": []}
        status = StatusPackage(
            response_for=ResponseFor(package.from_.organ_id, package.document_id),
            from_=Organ(recipient),
            status_code=StatusCode("01"),
            timestamp=datetime.now(UTC),
        )
        status_key = (await axis.post("/statuses", content=status_bytes(status))).json()["key"]
        sender_hub = package.from_.organ_id.rpartition(".")[2]
        waiting = (await axis.get(f"/hubs/{sender_hub}/statuses")).json()["statuses"]
        assert {"agency": package.from_.organ_id, "key": status_key} in waiting
