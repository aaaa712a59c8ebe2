"""Notification throughput: delivery events to signed webhooks received, against the in-app
notice alone and against bare signed POSTs.

    make bench      (or: .venv/bin/python benchmarks/bench_notification.py --events N --rounds R)

notification-service runs in this process against the real broker and store; an aiohttp
server on loopback is the agency's webhook receiver (it checks every signature). The figure:
``delivery.created`` events published for a unit whose clerk subscribed to webhooks, per
second, from the first publish to the last webhook accepted — each one recorded as a job by
the consumer, claimed by insert, signed, POSTed and marked sent. Baseline 1, in the same run:
the same events for a unit with no subscription (the consumer records the in-app notice
only, which is all the service did before). Baseline 2: the same number of signed POSTs made
directly with aiohttp (the channel's own cost). Rounds alternate; medians are printed. The
ratio to baseline 1 says what the durable job path costs (target >= 0.3: a job is three more
store writes and an HTTP round trip on top of the in-app insert).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import secrets
import statistics
import time
import uuid
from typing import Any

import aiohttp
import grpc
from aiohttp import web

from lienthong.common.v1.common_pb2 import DocumentCode, DocumentSummary
from lienthong.events.v1.events_pb2 import DeliveryCreated
from lienthong.notification.v1 import notification_service_pb2 as pb
from lienthong.notification.v1.notification_service_pb2_grpc import NotificationServiceStub
from lienthong_kit.envelope import new_event
from lienthong_kit.server import ServiceApp
from lienthong_kit.settings import load_settings
from lienthong_testing.cleanup import remove_namespace
from lienthong_testing.waiting import eventually
from notification_service.__main__ import NAME, build
from notification_service.settings import Settings

TARGET = 0.3
SECRET = secrets.token_hex(16)  # made per run
UNIT_HEADER = "x-lienthong-unit"


class Receiver:
    def __init__(self) -> None:
        self.accepted = 0
        self.refused = 0
        self.done = asyncio.Event()
        self.expected = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        timestamp = request.headers.get("X-Lienthong-Timestamp", "")
        expected = hmac.new(
            SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Lienthong-Signature", "")):
            self.refused += 1
            return web.Response(status=401)
        self.accepted += 1
        if self.accepted >= self.expected:
            self.done.set()
        return web.Response(status=204)


def event(unit: str, index: int) -> Any:
    return new_event(
        DeliveryCreated(
            delivery_id=f"{unit}-{index}-{uuid.uuid4().hex[:6]}",
            recipient_code=unit,
            document=DocumentSummary(
                document_id=str(uuid.uuid4()),
                sender_code="000.00.00.H23",
                code=DocumentCode(number=str(index), notation="CV-UBND"),
                subject="Về việc báo cáo tình hình thực hiện nhiệm vụ",
                priority=1,
            ),
        ),
        producer="bench",
    )


async def subscribe(app: ServiceApp, unit: str, url: str) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = NotificationServiceStub(channel)
        metadata = ((UNIT_HEADER, unit),)
        contact = await stub.PutContact(
            pb.PutContactRequest(
                contact=pb.Contact(
                    name="Văn thư", role="clerk", webhook_url=url, webhook_secret=SECRET
                )
            ),
            metadata=metadata,
        )
        await stub.Subscribe(
            pb.SubscribeRequest(
                subscription=pb.Subscription(
                    contact_id=contact.contact.contact_id,
                    event_kinds=["delivery.created"],
                    channels=["webhook"],
                )
            ),
            metadata=metadata,
        )


async def publish(app: ServiceApp, unit: str, count: int) -> None:
    envelopes = [event(unit, index) for index in range(count)]
    await app.producer.publish_batch(
        app.topics.deliveries,
        [(unit.encode(), envelope.SerializeToString()) for envelope in envelopes],
    )


async def in_app_round(app: ServiceApp, unit: str, count: int) -> float:
    started = time.perf_counter()
    await publish(app, unit, count)
    await eventually(
        lambda: app.db["notifications"].count_documents({"unit_code": unit}),
        until=lambda stored: stored >= count,
        timeout=300,
        interval=0.02,
    )
    return count / (time.perf_counter() - started)


async def webhook_round(app: ServiceApp, unit: str, count: int, receiver: Receiver) -> float:
    receiver.accepted, receiver.expected = 0, count
    receiver.done.clear()
    started = time.perf_counter()
    await publish(app, unit, count)
    await asyncio.wait_for(receiver.done.wait(), timeout=300)
    return count / (time.perf_counter() - started)


async def direct_round(url: str, count: int, receiver: Receiver, concurrency: int) -> float:
    receiver.accepted, receiver.expected = 0, count
    receiver.done.clear()
    slots = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:

        async def post(index: int) -> None:
            body = json.dumps({"index": index, "title": "Văn bản đến mới"}).encode()
            timestamp = str(int(time.time()))
            signature = hmac.new(
                SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256
            ).hexdigest()
            headers = {"X-Lienthong-Timestamp": timestamp, "X-Lienthong-Signature": signature}
            async with slots, session.post(url, data=body, headers=headers) as reply:
                await reply.read()

        started = time.perf_counter()
        await asyncio.gather(*(post(index) for index in range(count)))
    return count / (time.perf_counter() - started)


async def measure(events: int, rounds: int, prefix: str) -> dict[str, list[float]]:
    concurrency = 8
    settings = load_settings(
        Settings,
        {
            "LIENTHONG_GRPC_PORT": "0",
            "LIENTHONG_METRICS_PORT": "0",
            "LIENTHONG_TOPIC_PREFIX": prefix,
            "LIENTHONG_MONGO_DATABASE_PREFIX": f"{prefix}lienthong_",
            "LIENTHONG_DEV_AUTH": "true",
            # the notices' units are made up per round: this measures delivery, not the registry
            "LIENTHONG_REQUIRE_REGISTERED_UNITS": "false",
            "LIENTHONG_KAFKA_PARTITIONS": "3",
            "LIENTHONG_LOG_LEVEL": "warning",
            "LIENTHONG_NOTIFY_POLL_SECONDS": "0.2",
            "LIENTHONG_QUIET_HOURS": "",
            "LIENTHONG_NOTIFY_CONCURRENCY": str(concurrency),
            "LIENTHONG_NOTIFY_RATE_WEBHOOK": "10000",
            "LIENTHONG_NOTIFY_WEBHOOK_ALLOW": "127.0.0.1/32",  # the receiver is on loopback
        },
    )
    receiver = Receiver()
    web_app = web.Application()
    web_app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(web_app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    app = ServiceApp(NAME, settings, build)
    await app.start()
    results: dict[str, list[float]] = {"webhook": [], "in_app": [], "direct": []}
    try:
        for round_index in range(rounds):
            plain, subscribed = f"000.{round_index:02d}.01.H23", f"000.{round_index:02d}.02.H23"
            await subscribe(app, subscribed, url)
            results["in_app"].append(await in_app_round(app, plain, events))
            results["webhook"].append(await webhook_round(app, subscribed, events, receiver))
            results["direct"].append(await direct_round(url, events, receiver, concurrency))
        if receiver.refused:
            raise SystemExit(f"{receiver.refused} webhooks failed their signature check")
    finally:
        await app.stop()
        await runner.cleanup()
    return results


def main(events: int, rounds: int) -> None:
    prefix = f"benchnote{uuid.uuid4().hex[:8]}_"
    try:
        results = asyncio.run(measure(events, rounds, prefix))
    finally:
        remove_namespace(prefix, kafka="127.0.0.1:9092", mongo="mongodb://127.0.0.1:27017")
    webhook = statistics.median(results["webhook"])
    in_app = statistics.median(results["in_app"])
    direct = statistics.median(results["direct"])
    print(f"notifications: {webhook:.0f} signed webhooks/s from events ({events} per round)")
    print(f"  baseline in-app notice only: {in_app:.0f} events/s; ratio {webhook / in_app:.2f}")
    print(f"  baseline bare signed POSTs: {direct:.0f}/s; ratio {webhook / direct:.2f}")
    print(
        "  rounds: "
        + ", ".join(
            f"{w:.0f}/{i:.0f}/{d:.0f}"
            for w, i, d in zip(
                results["webhook"], results["in_app"], results["direct"], strict=True
            )
        )
        + " (webhook/in-app/direct)"
    )
    print(
        f"  target ratio to in-app >= {TARGET}: {'met' if webhook / in_app >= TARGET else 'MISSED'}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    main(arguments.events, arguments.rounds)
