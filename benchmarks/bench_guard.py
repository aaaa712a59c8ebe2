"""What the kit's way of wrapping every RPC costs, against a grpc.aio interceptor doing the same.

    make bench      (or: .venv/bin/python benchmarks/bench_guard.py [--requests N] [--rounds N])

Three echo servers, each in its own process, answer SubmitDocument's bytes unchanged: a bare
one; one whose handler is wrapped once, when it is added to the server, by the kit's
``GuardedServer`` (a pass-through guard: the wrapping mechanism alone, not the gatekeeper's
checks); and one with a pass-through ``grpc.aio.ServerInterceptor``, the way the kit wrapped
every call before session 10. The same client drives each in turn at the same concurrency;
printed per server are its CPU per call (from /proc) and calls/s, and each as a ratio to the
bare echo of the same round (medians over the rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys

from bench_submit import SERVE, drive, request

from lienthong_testing.ports import free_port

SERVER = (
    """
import asyncio, sys, grpc
from grpc import aio
from lienthong_kit.interceptors import GuardedServer

class PassThrough:  # the wrapping alone: a guard that adds nothing around the call
    def wrap(self, method, handler):
        inner = handler.unary_unary
        async def unary(request, context):
            return await inner(request, context)
        return grpc.unary_unary_rpc_method_handler(unary)

class Intercepting(aio.ServerInterceptor):
    async def intercept_service(self, continuation, details):
        return await continuation(details)

async def echo(request, context):
    return request

"""
    + SERVE
    + """
mode = sys.argv[2]
asyncio.run(serve(
    int(sys.argv[1]),
    echo,
    interceptors=[Intercepting()] if mode == "interceptor" else None,
    wrap=(lambda server: GuardedServer(server, PassThrough())) if mode == "guarded" else None,
))
"""
)

MODES = ("bare", "guarded", "interceptor")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(mode: str, payloads: list[bytes], concurrency: int) -> tuple[float, float]:
    """(microseconds of server CPU per call, calls per second) for one server."""
    port = free_port()
    server = subprocess.Popen(  # noqa: S603 - our interpreter, our script
        [sys.executable, "-c", SERVER, str(port), mode], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the {mode} server did not start")
        endpoint = f"127.0.0.1:{port}"
        asyncio.run(drive(endpoint, payloads[:1000], concurrency))  # warm-up
        before = cpu_seconds(server.pid)
        rate = asyncio.run(drive(endpoint, payloads, concurrency))
        return 1e6 * (cpu_seconds(server.pid) - before) / len(payloads), rate
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    payloads = [request(1, "guard").SerializeToString()] * args.requests
    cpu: dict[str, list[float]] = {mode: [] for mode in MODES}
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    for number in range(args.rounds):
        for mode in MODES:
            used, rate = measure(mode, payloads, args.concurrency)
            cpu[mode].append(used)
            rates[mode].append(rate)
        print(
            f"round {number + 1}: "
            + ", ".join(
                f"{mode} {cpu[mode][-1]:.0f} us/call {rates[mode][-1]:.0f}/s" for mode in MODES
            ),
            flush=True,
        )
    bare_cpu, bare_rate = statistics.median(cpu["bare"]), statistics.median(rates["bare"])
    print(f"bare echo: {bare_cpu:.0f} us of server CPU per call, {bare_rate:.0f} calls/s")
    for mode in MODES[1:]:
        used, rate = statistics.median(cpu[mode]), statistics.median(rates[mode])
        print(
            f"{mode}: {used:.0f} us per call ({used / bare_cpu:.2f} of the bare echo's CPU),"
            f" {rate:.0f} calls/s ({rate / bare_rate:.2f} of its rate)"
        )
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
