"""notification-service across a registry transition: what a closing unit holds (DescribeUnits)
and its contacts, groups and subscriptions carried to its successors (CarryOverUnit), on the
real broker and store."""

from __future__ import annotations

from functools import partial
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from lienthong.common.v1.common_pb2 import DocumentCode, DocumentSummary
from lienthong.events.v1.events_pb2 import DeliveryCreated
from lienthong.notification.v1 import notification_service_pb2 as pb
from lienthong.notification.v1.notification_service_pb2_grpc import NotificationServiceStub
from lienthong_kit.envelope import new_event
from lienthong_kit.server import ServiceApp
from lienthong_testing.callers import OBSERVER, REGISTRY_ADMIN, as_unit
from lienthong_testing.waiting import eventually, wait_until
from notification_service.__main__ import NAME, build
from notification_service.settings import Settings

CLOSED = "000.01.31.H23"  # Phường Thái Bình, merged
SUCCESSOR = "000.00.101.H43"
OTHER_SUCCESSOR = "000.00.102.H43"
FAST = {"LIENTHONG_NOTIFY_POLL_SECONDS": "0.05", "LIENTHONG_QUIET_HOURS": ""}


def violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    return [(v.field, v.description) for v in bad_request.field_violations]


async def set_up_closing_unit(stub: NotificationServiceStub) -> str:
    """A group, a clerk in it on e-mail, subscribed as a contact and through the group."""
    me = as_unit(CLOSED)
    await stub.PutGroup(
        pb.PutGroupRequest(group=pb.Group(code="VP", name="Văn phòng")), metadata=me
    )
    clerk = await stub.PutContact(
        pb.PutContactRequest(
            contact=pb.Contact(
                name="Nguyễn Thị Hoa", role="clerk", email="hoa@thaibinh.example",
                group_codes=["VP"],
            )
        ),
        metadata=me,
    )  # fmt: skip
    contact_id = clerk.contact.contact_id
    for target in ({"contact_id": contact_id}, {"group_code": "VP"}):
        await stub.Subscribe(
            pb.SubscribeRequest(
                subscription=pb.Subscription(
                    event_kinds=["delivery.created"], channels=["email"], **target
                )
            ),
            metadata=me,
        )
    return contact_id


def delivery(recipient: str, delivery_id: str) -> DeliveryCreated:
    return DeliveryCreated(
        delivery_id=delivery_id,
        recipient_code=recipient,
        document=DocumentSummary(
            document_id=f"doc-{delivery_id}",
            sender_code="000.00.00.H43",
            code=DocumentCode(number="7", notation="TB-UBND"),
            subject="Thông báo về việc sắp xếp đơn vị hành chính",
        ),
    )


async def test_a_closing_units_contacts_reach_its_successors_after_the_carry_over(
    start_service: Any, smtp_server: Any
) -> None:
    app: ServiceApp = await start_service(
        NAME,
        partial(build),
        Settings,
        {**FAST, "LIENTHONG_SMTP_HOST": "127.0.0.1", "LIENTHONG_SMTP_PORT": str(smtp_server.port)},
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = NotificationServiceStub(channel)
        contact_id = await set_up_closing_unit(stub)

        described = await stub.DescribeUnits(
            pb.DescribeUnitsRequest(unit_codes=[CLOSED, SUCCESSOR]), metadata=OBSERVER
        )
        closed, successor = described.units
        assert closed.unit_code == CLOSED
        assert [c.email for c in closed.contacts] == ["hoa@thaibinh.example"]
        assert [g.code for g in closed.groups] == ["VP"]
        assert sorted(s.subscription_id for s in closed.subscriptions) == [
            f"contact:{contact_id}",
            "group:VP",
        ]
        assert (successor.contacts, successor.groups, successor.subscriptions) == ([], [], [])

        # only a registry administrator carries over; the unit itself and an observer may not
        request = pb.CarryOverUnitRequest(
            closed_code=CLOSED, successor_codes=[SUCCESSOR, OTHER_SUCCESSOR]
        )
        for caller in (as_unit(CLOSED), OBSERVER):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.CarryOverUnit(request, metadata=caller)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED

        carried = await stub.CarryOverUnit(request, metadata=REGISTRY_ADMIN)
        assert (carried.groups, carried.contacts, carried.subscriptions) == (2, 2, 4)
        again = await stub.CarryOverUnit(request, metadata=REGISTRY_ADMIN)
        assert (again.groups, again.contacts, again.subscriptions) == (0, 0, 0)

        for code in (SUCCESSOR, OTHER_SUCCESSOR):
            contacts = await stub.ListContacts(pb.ListContactsRequest(), metadata=as_unit(code))
            [copy] = contacts.contacts
            assert (copy.name, copy.email, list(copy.group_codes)) == (
                "Nguyễn Thị Hoa",
                "hoa@thaibinh.example",
                ["VP"],
            )
            assert copy.contact_id != contact_id  # the successor's own record
            subscriptions = await stub.ListSubscriptions(
                pb.ListSubscriptionsRequest(), metadata=as_unit(code)
            )
            assert sorted(s.subscription_id for s in subscriptions.subscriptions) == [
                f"contact:{copy.contact_id}",
                "group:VP",
            ]
        # the closing unit keeps its own until the operator removes them
        still = await stub.ListContacts(pb.ListContactsRequest(), metadata=as_unit(CLOSED))
        assert [c.contact_id for c in still.contacts] == [contact_id]

    # a delivery to the successor now reaches the carried-over clerk by e-mail
    envelope = new_event(delivery(SUCCESSOR, "dl-after"), producer="routing-service")
    await app.producer.publish(app.topics.deliveries, key=SUCCESSOR, envelope=envelope)
    await wait_until(lambda: len(smtp_server.messages) >= 1)
    [mail] = smtp_server.messages
    assert mail["To"] == "hoa@thaibinh.example"
    assert "7/TB-UBND" in str(mail["Subject"])

    async def notices() -> list[str]:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
            reply = await NotificationServiceStub(channel).ListNotifications(
                pb.ListNotificationsRequest(), metadata=as_unit(SUCCESSOR)
            )
        return [n.document_id for n in reply.notifications]

    assert "doc-dl-after" in await eventually(notices, until=bool)


async def test_bad_carry_over_and_describe_requests_name_the_field(start_service: Any) -> None:
    app: ServiceApp = await start_service(NAME, partial(build), Settings, FAST)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = NotificationServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as empty:
            await stub.CarryOverUnit(pb.CarryOverUnitRequest(), metadata=REGISTRY_ADMIN)
        assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [field for field, _ in violations(empty.value)] == [
            "closed_code",
            "successor_codes",
        ]
        with pytest.raises(grpc.aio.AioRpcError) as itself:
            await stub.CarryOverUnit(
                pb.CarryOverUnitRequest(
                    closed_code=CLOSED, successor_codes=[SUCCESSOR, CLOSED, "x" * 65]
                ),
                metadata=REGISTRY_ADMIN,
            )
        assert itself.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violations(itself.value) == [
            ("successor_codes[2]", "longer than 64 characters"),
            ("successor_codes[1]", "is the closing unit itself"),
        ]
        with pytest.raises(grpc.aio.AioRpcError) as none:
            await stub.DescribeUnits(pb.DescribeUnitsRequest(), metadata=OBSERVER)
        assert none.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violations(none.value) == [("unit_codes", "between 1 and 500 unit codes (got 0)")]
