"""routing-service's real gRPC server against the real broker and store: the registry API,
the import, closing units, replicas, and the fan-out onto the deliveries topics."""

from __future__ import annotations

import asyncio
import base64
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from lienthong.common.v1.common_pb2 import (
    DocumentSummary,
    Recipients,
    RecipientScope,
    UnitLevel,
    Verdict,
)
from lienthong.events.v1.events_pb2 import DeliveryBounced, DeliveryCreated, DocumentVerified
from lienthong.routing.v1 import routing_service_pb2 as pb
from lienthong.routing.v1.routing_service_pb2_grpc import RoutingServiceStub
from lienthong_kit.envelope import carries, decode_envelope, new_event, unpack
from lienthong_kit.server import ServiceApp
from lienthong_local.sample import PROVINCE, sample_units
from lienthong_testing.callers import REGISTRY_ADMIN, default_identity
from lienthong_testing.waiting import eventually
from routing_service.__main__ import build
from routing_service.consumers import delivery_id
from routing_service.settings import Settings

# the registry administrator, unless a call names another caller
ADMIN = default_identity(REGISTRY_ADMIN)

FINANCE = "000.01.00.H23"
FOREIGN_AFFAIRS = "000.02.00.H23"
OFFICE = "000.04.00.H23"
CITY = "000.00.31.H23"
DISTRICT_32 = "000.00.32.H23"
SAMPLE = sample_units()
DEPARTMENTS = sorted(u.code for u in SAMPLE if u.level == UnitLevel.UNIT_LEVEL_DEPARTMENT)


def rows(units: list[pb.Unit]) -> Iterator[pb.ImportRegistryRequest]:
    return (pb.ImportRegistryRequest(unit=unit) for unit in units)


def bad_fields(error: grpc.aio.AioRpcError) -> list[str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    return [v.field for v in bad_request.field_violations]


@pytest.fixture
async def service(start_service: Any) -> ServiceApp:
    app: ServiceApp = await start_service("routing-service", build, Settings)
    return app


@pytest.fixture
async def stub(service: ServiceApp) -> AsyncIterator[RoutingServiceStub]:
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{service.grpc_port}", interceptors=ADMIN
    ) as channel:
        stub = RoutingServiceStub(channel)
        reply = await stub.ImportRegistry(rows(SAMPLE))
        assert reply.applied == reply.created == len(SAMPLE)
        yield stub


async def verify(
    service: ServiceApp,
    document_id: str,
    recipients: Recipients,
    *,
    priority: int = 0,
    verdict: int = Verdict.VERDICT_ACCEPTED,
    reason: str = "",
) -> None:
    verified = DocumentVerified(
        document=DocumentSummary(document_id=document_id, sender_code=PROVINCE, priority=priority),
        recipients=recipients,
        verdict=verdict,
        reason=reason,
    )
    await service.producer.publish(
        service.topics.verifications,
        key=document_id,
        envelope=new_event(verified, producer="signature-service"),
    )


def outcomes(records: list[Any]) -> dict[tuple[str, str], str]:
    """(document id, recipient) -> "delivered" or the bounce reason, checking keys and ids."""
    out: dict[tuple[str, str], str] = {}
    for record in records:
        envelope = decode_envelope(record.value)
        payload: DeliveryCreated | DeliveryBounced
        if carries(envelope, DeliveryCreated):
            payload = unpack(envelope, DeliveryCreated)
            outcome = "delivered"
        else:
            payload = unpack(envelope, DeliveryBounced)
            outcome = payload.reason
        code = payload.recipient_code
        assert record.key == code.encode()
        assert payload.delivery_id == delivery_id(payload.document.document_id, code)
        key = (payload.document.document_id, code)
        assert key not in out, f"two records for {key}"
        out[key] = outcome
    return out


async def test_list_units_by_parent_pages_in_code_order(stub: RoutingServiceStub) -> None:
    codes: list[str] = []
    token = ""
    while True:
        page = await stub.ListUnits(
            pb.ListUnitsRequest(parent_code=PROVINCE, page_size=7, page_token=token)
        )
        codes.extend(u.code for u in page.units)
        token = page.next_page_token
        if not token:
            break
    assert codes == sorted(u.code for u in SAMPLE if u.parent_code == PROVINCE)


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


@pytest.mark.parametrize(
    "token",
    [
        "not base64!",
        _token(b"not json"),
        _token(json.dumps(["000.00.31.H23", "extra"]).encode()),  # two parts for a one-part key
        _token(json.dumps([31]).encode()),  # a part that is not a code
        _token(json.dumps({"after": "000.00.31.H23"}).encode()),
    ],
)
async def test_list_units_refuses_a_page_token_it_did_not_issue(
    stub: RoutingServiceStub, token: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListUnits(pb.ListUnitsRequest(page_token=token))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_fields(caught.value) == ["page_token"]


async def test_list_units_filters_by_level_and_active(stub: RoutingServiceStub) -> None:
    await stub.CloseUnit(pb.CloseUnitRequest(code=FOREIGN_AFFAIRS, successor_code=OFFICE))
    department = UnitLevel.UNIT_LEVEL_DEPARTMENT
    active = await stub.ListUnits(
        pb.ListUnitsRequest(level=department, active=pb.ACTIVE_FILTER_ACTIVE, page_size=500)
    )
    inactive = await stub.ListUnits(
        pb.ListUnitsRequest(level=department, active=pb.ACTIVE_FILTER_INACTIVE)
    )
    assert [u.code for u in active.units] == [c for c in DEPARTMENTS if c != FOREIGN_AFFAIRS]
    assert [u.code for u in inactive.units] == [FOREIGN_AFFAIRS]


async def test_get_unit_by_either_code_form(stub: RoutingServiceStub) -> None:
    by_2020 = await stub.GetUnit(pb.GetUnitRequest(code="H23.148"))
    assert by_2020.unit.code == CITY
    assert by_2020.unit.name == "Thành phố Hòa Bình"


async def test_unknown_unit_is_not_found(stub: RoutingServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetUnit(pb.GetUnitRequest(code="999.99.99.H99"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_units_survive_a_restart_with_their_contacts_and_span(
    stub: RoutingServiceStub, start_service: Any
) -> None:
    unit = pb.Unit(
        code="000.21.00.H23",
        code_2020="H23.21",
        name="Sở Du lịch",
        level=UnitLevel.UNIT_LEVEL_DEPARTMENT,
        parent_code=PROVINCE,
        active=True,
        contacts=[pb.Contact(name="Văn thư", email="vanthu@example.vn", phone="0218")],
        valid_from="2025-07-01",
    )
    # an external agency: no level, its parent in the national directory only
    outside = pb.Unit(code="000.00.00.G01", name="Văn phòng Chính phủ", parent_code="000.00.00.G00",
                      active=True, external=True)  # fmt: skip
    await stub.UpsertUnit(pb.UpsertUnitRequest(unit=unit))
    await stub.UpsertUnit(pb.UpsertUnitRequest(unit=outside))
    other: ServiceApp = await start_service("routing-service", build, Settings)
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{other.grpc_port}", interceptors=ADMIN
    ) as channel:
        reply = await RoutingServiceStub(channel).GetUnit(pb.GetUnitRequest(code=unit.code))
        external = await RoutingServiceStub(channel).GetUnit(pb.GetUnitRequest(code=outside.code))
    assert reply.unit == unit
    assert external.unit == outside


async def test_import_with_bad_rows_reports_every_one_and_applies_nothing(
    stub: RoutingServiceStub,
) -> None:
    good = pb.Unit(
        code="000.22.00.H23",
        name="Ban Quản lý dự án",
        level=UnitLevel.UNIT_LEVEL_DEPARTMENT,
        parent_code=PROVINCE,
        active=True,
    )
    child = pb.Unit(
        code="000.01.41.H23",
        name="Xã Mới",
        level=UnitLevel.UNIT_LEVEL_COMMUNE,
        parent_code="000.00.41.H23",  # a district that comes later in the same import
        active=True,
    )
    district = pb.Unit(
        code="000.00.41.H23",
        name="Huyện Mới",
        level=UnitLevel.UNIT_LEVEL_DISTRICT,
        parent_code=PROVINCE,
        active=True,
    )
    orphan = pb.Unit(code="000.02.41.H23", name="Xã Lạc", level=4, parent_code="000.00.99.H23")
    nameless = pb.Unit(code="000.03.41.H23", level=4, parent_code="000.00.41.H23")
    taken = pb.Unit(code="000.04.41.H23", name="Xã", level=4, parent_code=CITY, code_2020="H23.01")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ImportRegistry(rows([good, child, orphan, district, nameless, good, taken]))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_fields(info.value) == [
        "rows[5].code",
        "rows[2].parent_code",
        "rows[4].name",
        "rows[6].code_2020",
    ]
    listed = await stub.ListUnits(pb.ListUnitsRequest(page_size=500))
    assert len(listed.units) == len(SAMPLE)


async def test_import_accepts_children_before_their_parents(stub: RoutingServiceStub) -> None:
    child = pb.Unit(code="000.01.41.H23", name="Xã Mới", level=4, parent_code="000.00.41.H23")
    district = pb.Unit(code="000.00.41.H23", name="Huyện Mới", level=3, parent_code=PROVINCE)
    reply = await stub.ImportRegistry(rows([child, district]))
    assert (reply.applied, reply.created) == (2, 2)
    listed = await stub.ListUnits(pb.ListUnitsRequest(parent_code="000.00.41.H23"))
    assert [u.code for u in listed.units] == [child.code]


async def test_close_unit_refuses_an_unknown_successor(stub: RoutingServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CloseUnit(
            pb.CloseUnitRequest(code=FINANCE, successor_code="000.99.00.H23", closed_on="2025-7-1")
        )
    assert bad_fields(info.value) == ["closed_on", "successor_code"]


async def test_resolve_recipients_is_a_dry_run_of_the_scopes(stub: RoutingServiceStub) -> None:
    reply = await stub.ResolveRecipients(
        pb.ResolveRecipientsRequest(
            sender_code=PROVINCE,
            recipients=Recipients(
                unit_codes=[FINANCE, "999.99.99.H99", FINANCE, PROVINCE],
                scopes=[
                    RecipientScope(ancestor_code=CITY, level=UnitLevel.UNIT_LEVEL_COMMUNE),
                    RecipientScope(
                        level=UnitLevel.UNIT_LEVEL_DEPARTMENT, exclude_codes=[OFFICE, FINANCE]
                    ),
                ],
            ),
        )
    )
    city_communes = sorted(u.code for u in SAMPLE if u.parent_code == CITY)
    departments = [c for c in DEPARTMENTS if c not in (OFFICE, FINANCE)]
    assert list(reply.unit_codes) == [FINANCE, *sorted(city_communes + departments)]
    assert [b.recipient_code for b in reply.bounces] == ["999.99.99.H99"]


async def test_fan_out_delivers_scopes_once_and_bounces_the_rest(
    stub: RoutingServiceStub, service: ServiceApp, topic_reader: Any
) -> None:
    await stub.CloseUnit(
        pb.CloseUnitRequest(code=FOREIGN_AFFAIRS, successor_code=OFFICE, closed_on="2025-07-01")
    )
    await stub.CloseUnit(pb.CloseUnitRequest(code=DISTRICT_32, closed_on="2025-07-01"))
    recipients = Recipients(
        unit_codes=[FINANCE, FINANCE, "999.99.99.H99", FOREIGN_AFFAIRS, PROVINCE, "H23.148"],
        scopes=[
            RecipientScope(level=UnitLevel.UNIT_LEVEL_DEPARTMENT, exclude_codes=[OFFICE]),
            RecipientScope(ancestor_code=DISTRICT_32, level=UnitLevel.UNIT_LEVEL_COMMUNE),
        ],
    )
    await verify(service, "doc-1", recipients)
    departments = [c for c in DEPARTMENTS if c not in (OFFICE, FOREIGN_AFFAIRS)]
    expected: dict[tuple[str, str], str] = {("doc-1", c): "delivered" for c in departments}
    expected[("doc-1", CITY)] = "delivered"
    expected[("doc-1", "999.99.99.H99")] = (
        "unknown recipient 999.99.99.H99: no such unit in the registry; it is outside the"
        " province: register it as an external agency to reach it through the national axis"
    )
    expected[("doc-1", FOREIGN_AFFAIRS)] = (
        f"recipient {FOREIGN_AFFAIRS} was closed on 2025-07-01; its successor is {OFFICE}"
        " (Văn phòng Ủy ban nhân dân tỉnh)"
    )
    expected[("doc-1", DISTRICT_32)] = (
        f"scope under {DISTRICT_32} refused: it was closed on 2025-07-01; it has no successor"
    )
    records = await topic_reader(service.topics.deliveries, len(expected))
    assert outcomes(records) == expected


async def test_urgent_documents_go_on_the_urgent_topic(
    stub: RoutingServiceStub, service: ServiceApp, topic_reader: Any
) -> None:
    await verify(service, "doc-urgent", Recipients(unit_codes=[FINANCE, CITY]), priority=3)
    records = await topic_reader(service.topics.deliveries_urgent, 2)
    assert outcomes(records) == {
        ("doc-urgent", FINANCE): "delivered",
        ("doc-urgent", CITY): "delivered",
    }


async def test_a_refused_verification_bounces_every_recipient_with_its_reason(
    stub: RoutingServiceStub, service: ServiceApp, topic_reader: Any
) -> None:
    await verify(
        service,
        "doc-forged",
        Recipients(unit_codes=[FINANCE, CITY]),
        verdict=Verdict.VERDICT_REJECTED,
        reason="the organisation signature does not cover the last revision",
    )
    records = await topic_reader(service.topics.deliveries, 2)
    reason = (
        "signature verification refused the document: "
        "the organisation signature does not cover the last revision"
    )
    assert outcomes(records) == {("doc-forged", FINANCE): reason, ("doc-forged", CITY): reason}


async def test_each_recipient_sees_concurrent_documents_in_order(
    stub: RoutingServiceStub, service: ServiceApp, topic_reader: Any
) -> None:
    departments = Recipients(scopes=[RecipientScope(level=UnitLevel.UNIT_LEVEL_DEPARTMENT)])
    # Documents 0..9 on one verifications partition (one key): a defined order to keep;
    # documents 10..19 on their own keys, sent at once.
    ordered = [
        (
            service.topics.verifications,
            b"batch",
            new_event(
                DocumentVerified(
                    document=DocumentSummary(document_id=f"doc-{n:02d}", sender_code=PROVINCE),
                    recipients=departments,
                    verdict=Verdict.VERDICT_ACCEPTED,
                ),
                producer="signature-service",
            ).SerializeToString(),
        )
        for n in range(10)
    ]
    await asyncio.gather(
        service.producer.publish_many(ordered),
        *(verify(service, f"doc-{n:02d}", departments) for n in range(10, 20)),
    )
    records = await topic_reader(service.topics.deliveries, 20 * len(DEPARTMENTS))
    per_recipient: dict[str, list[str]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for record in records:
        created = unpack(decode_envelope(record.value), DeliveryCreated)
        per_recipient[created.recipient_code].append(created.document.document_id)
        partitions[created.recipient_code].add(record.partition)
    assert sorted(per_recipient) == DEPARTMENTS
    for code, documents in per_recipient.items():
        assert len(partitions[code]) == 1
        assert sorted(documents) == [f"doc-{n:02d}" for n in range(20)]
        in_batch = [d for d in documents if d < "doc-10"]
        assert in_batch == sorted(in_batch), f"{code} saw {in_batch}"


async def test_a_registry_change_reaches_another_replica(
    stub: RoutingServiceStub, start_service: Any
) -> None:
    other: ServiceApp = await start_service("routing-service", build, Settings)
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{other.grpc_port}", interceptors=ADMIN
    ) as channel:
        replica = RoutingServiceStub(channel)
        await stub.CloseUnit(pb.CloseUnitRequest(code=FINANCE, successor_code=OFFICE))

        async def finance() -> pb.Unit:
            return (await replica.GetUnit(pb.GetUnitRequest(code=FINANCE))).unit

        # Correctness here; how fast (target: within a second) is benchmarks/bench_registry.py.
        closed = await eventually(finance, until=lambda u: not u.active, timeout=30.0)
        assert closed.successor_code == OFFICE
        resolution = await replica.ResolveRecipients(
            pb.ResolveRecipientsRequest(recipients=Recipients(unit_codes=[FINANCE]))
        )
        assert [b.recipient_code for b in resolution.bounces] == [FINANCE]
