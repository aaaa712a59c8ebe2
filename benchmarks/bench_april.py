"""The seed's April through the five services, until the adoption report is exact, against
the same calls answered by a bare grpc.aio echo server.

    make bench      (or: .venv/bin/python benchmarks/bench_april.py [--scale S])
    .venv/bin/python benchmarks/bench_april.py --scale 1      (the whole month: 22,690 calls)

The platform runs as processes (lienthong_local.platform, a namespace of its own) with the
three-tier sample registry. ``lienthong_local.replay`` generates the month (default 1/10 of
April: ``make bench`` stays minutes long on a loaded machine), sends every SubmitDocument and
RegisterPaperDocument with ``--concurrency`` calls in flight on one channel, then reads
GetAdoptionReport until every unit, level and the whole province match the generated counts.
The figure is the seconds from the first call to the exact report, and the part of it spent
sending.

The ceiling, in the same run: the replay's own sender sending the same calls to an echo
server (the request's bytes returned untouched, parsed as the reply). That is the cost of the
client and gRPC in Python alone; the ratio ceiling / replay says how much of the time the five
services add (submits, verification, routing, inboxes, reporting's folding).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lienthong_local.platform import Platform, free_port
from lienthong_local.replay import APRIL, Replay, generate, run_replay
from lienthong_local.run import load_sample_registry
from lienthong_testing.cleanup import remove_namespace

MONGO_URL = "mongodb://127.0.0.1:27017"

# answers both of the replay's methods with the request's bytes (an empty reply would do too,
# but the echo is the same cost as bench_submit's)
ECHO_SERVER = """
import asyncio, sys, grpc
async def echo(request, context):
    return request
async def serve(port):
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "lienthong.document.v1.DocumentService",
        {name: grpc.unary_unary_rpc_method_handler(echo)
         for name in ("SubmitDocument", "RegisterPaperDocument")})])
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()
asyncio.run(serve(int(sys.argv[1])))
"""


@contextmanager
def echo_server() -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(  # noqa: S603 - our interpreter, our script
        [sys.executable, "-c", ECHO_SERVER, str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise RuntimeError("the echo server did not start")
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait()


def echo_seconds(scale: float, concurrency: int) -> tuple[int, float]:
    """The same calls as the replay's (same generator and seed) sent to the echo server."""
    traffic = generate(APRIL.scaled(scale))
    with echo_server() as endpoint:
        replay = Replay(traffic, endpoint, concurrency)
        started = time.perf_counter()
        asyncio.run(replay.send())
        return replay.sent, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1, help="1 = the seed's whole April")
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight")
    args = parser.parse_args()
    plan = APRIL if args.scale == 1 else APRIL.scaled(args.scale)
    calls, ceiling = echo_seconds(args.scale, args.concurrency)
    prefix = f"bench{uuid.uuid4().hex[:8]}_"
    with tempfile.TemporaryDirectory() as logs:
        try:
            with Platform.start(log_dir=Path(logs), prefix=prefix, timeout=300) as platform:
                load_sample_registry(platform.endpoint("routing-service"))
                started = time.perf_counter()
                traffic, _, sending = asyncio.run(
                    run_replay(
                        plan,
                        document=platform.endpoint("document-service"),
                        reporting=platform.endpoint("reporting-service"),
                        concurrency=args.concurrency,
                        timeout=1800,
                    )
                )
                exact = time.perf_counter() - started
        finally:
            remove_namespace(prefix, kafka="127.0.0.1:9092", mongo=MONGO_URL)
    deliveries = sum(len(recipients) for _, recipients in traffic.documents)
    print(
        f"April x {args.scale:g}          {exact:8.1f} s to the exact report  ({calls} calls:"
        f" {len(traffic.documents)} documents to {deliveries} inboxes, {len(traffic.paper)}"
        f" paper; concurrency {args.concurrency}; every unit, level and the province exact)"
    )
    print(f"  of which sending    {sending:8.1f} s  ({calls / sending:.0f} calls/s)")
    print(f"echo ceiling          {ceiling:8.1f} s  (the same calls, client and concurrency)")
    print(f"ratio ceiling/replay  {ceiling / exact:8.2f}")
    print(f"whole April at this   {exact / args.scale:8.0f} s  (extrapolated; target <= 60 s)")
    one, five, fifteen = os.getloadavg()
    print(f"load average          {one:.1f} {five:.1f} {fifteen:.1f}  ({os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
