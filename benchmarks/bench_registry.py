"""Registry propagation: how long until a change made on one routing-service replica is
visible on another (target: under a second).

    make bench      (or: .venv/bin/python benchmarks/bench_registry.py [--changes N])

Two routing-service replicas run in this process against the real broker and store, with the
sample province imported. Each change is an UpsertUnit (an active flag flipped) on replica A;
the time is measured until GetUnit on replica B answers with the new state. Printed as
p50/p99 against the one-second target; the baseline is a GetUnit round trip on B alone (the
floor of the method).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import grpc

from lienthong.routing.v1 import routing_service_pb2 as pb
from lienthong.routing.v1.routing_service_pb2_grpc import RoutingServiceStub
from lienthong_kit.server import ServiceApp
from lienthong_kit.settings import load_settings
from lienthong_local.sample import sample_units
from lienthong_testing.callers import REGISTRY_ADMIN, default_identity
from lienthong_testing.cleanup import remove_namespace
from routing_service.__main__ import build
from routing_service.settings import Settings

TARGET_MS = 1000.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(changes: int, prefix: str) -> tuple[list[float], list[float]]:
    settings = load_settings(
        Settings,
        {
            "LIENTHONG_GRPC_PORT": "0",
            "LIENTHONG_METRICS_PORT": "0",
            "LIENTHONG_TOPIC_PREFIX": prefix,
            "LIENTHONG_MONGO_DATABASE_PREFIX": f"{prefix}lienthong_",
            "LIENTHONG_LOG_LEVEL": "WARNING",
            "LIENTHONG_DEV_AUTH": "true",
        },
    )
    first = ServiceApp("routing-service", settings, build)
    second = ServiceApp("routing-service", settings, build)
    await first.start()
    await second.start()
    try:
        async with (
            grpc.aio.insecure_channel(
                f"127.0.0.1:{first.grpc_port}", interceptors=default_identity(REGISTRY_ADMIN)
            ) as a_channel,
            grpc.aio.insecure_channel(
                f"127.0.0.1:{second.grpc_port}", interceptors=default_identity(REGISTRY_ADMIN)
            ) as b_channel,
        ):
            a, b = RoutingServiceStub(a_channel), RoutingServiceStub(b_channel)
            units = sample_units()
            await a.ImportRegistry(pb.ImportRegistryRequest(unit=u) for u in units)
            communes = [u for u in units if u.parent_code]  # anything but the province
            floor: list[float] = []
            lags: list[float] = []
            for n in range(changes):
                unit = pb.Unit()
                unit.CopyFrom(communes[n % len(communes)])
                current = (await b.GetUnit(pb.GetUnitRequest(code=unit.code))).unit
                unit.active = not current.active
                started = time.perf_counter()
                await b.GetUnit(pb.GetUnitRequest(code=unit.code))
                floor.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                await a.UpsertUnit(pb.UpsertUnitRequest(unit=unit))
                while (
                    await b.GetUnit(pb.GetUnitRequest(code=unit.code))
                ).unit.active != unit.active:
                    if time.perf_counter() - started > 30:
                        raise TimeoutError(f"change {n} not visible on the second replica in 30 s")
                lags.append((time.perf_counter() - started) * 1000)
    finally:
        await second.stop()
        await first.stop()
    return lags, floor


def main(changes: int) -> None:
    prefix = f"benchreg{uuid.uuid4().hex[:8]}_"
    try:
        lags, floor = asyncio.run(measure(changes, prefix))
    finally:
        remove_namespace(prefix, kafka="127.0.0.1:9092", mongo="mongodb://127.0.0.1:27017")
    p50, p99 = statistics.median(lags), percentile(lags, 0.99)
    print(f"registry change visible on another replica: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    floor_p50 = statistics.median(floor)
    print(f"  ({changes} changes; floor = one GetUnit round trip: p50 {floor_p50:.1f} ms)")
    print(f"  target p99 < {TARGET_MS:.0f} ms: ratio p99/target {p99 / TARGET_MS:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=100)
    main(parser.parse_args().changes)
