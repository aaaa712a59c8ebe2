"""Idle CPU: what every service burns with no traffic, against a bare aiokafka consumer.

    make bench      (or: .venv/bin/python benchmarks/bench_idle.py [--seconds 20] [--profile NAME])

The six services run as processes (lienthong_local.platform, as ``make run`` starts them) in
a fresh namespace; once all are SERVING and settled, each process's CPU (utime + stime of it
and its children, /proc/PID/stat) is read over the window, with no call and no record sent.
Baseline, in the same run and window: a bare ``AIOKafkaConsumer`` in a group, idle on one of
the namespace's topics with aiokafka's defaults (the least a Kafka consumer process costs).
Every figure is ms of CPU per second of wall clock; the ratio is to the baseline. On a
2-core machine every benchmark shares the cores, so idle CPU is taken from every figure.

``--profile NAME`` then records NAME with py-spy for the same window (py-spy on PATH) and
prints the top functions, to see what wakes it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from lienthong_kit.kafka import Topics
from lienthong_local.platform import SERVICES, Platform
from lienthong_testing.cleanup import remove_namespace

KAFKA = "127.0.0.1:9092"
MONGO = "mongodb://127.0.0.1:27017"
TICK = os.sysconf("SC_CLK_TCK")
RAW = ("--gil", "--format", "raw", "-o")  # samples only while holding the GIL: about its CPU
WATCHED = ("lienthong_kit/", "aiokafka/", "pymongo/", "grpc/", "faust/", "mode/")


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its live descendants (worker pools), in seconds."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        fields = _stat(current)
        if fields is not None:
            total += (int(fields[11]) + int(fields[12])) / TICK
        pending.extend(children.get(current, ()))
    return total


def _stat(pid: int) -> list[str] | None:
    """Fields after the command name (state, ppid, ...): index 1 is ppid, 11/12 utime/stime."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


async def bare_consumer(topic: str, group: str) -> None:
    """The baseline: a group consumer with aiokafka's defaults, waiting for records forever."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=KAFKA, group_id=f"{topic}.{group}")
    await consumer.start()
    try:
        while True:
            await consumer.getmany(timeout_ms=1000)
    finally:
        await consumer.stop()


def py_spy() -> str | None:
    """py-spy from PATH or where ``uv tool install py-spy`` puts it."""
    found = shutil.which("py-spy") or Path.home() / ".local" / "bin" / "py-spy"
    return str(found) if Path(found).is_file() else None


def profile(spy: str, pid: int, seconds: float, out: Path) -> Counter[str]:
    """py-spy's samples of ``pid`` over ``seconds`` while it holds the GIL (so about its CPU):
    per function of the libraries and the kit, the samples it was on the stack of."""
    subprocess.run(  # noqa: S603 - py-spy, our own child's pid
        [spy, "record", "-r", "100", "-d", str(int(seconds)), "-p", str(pid), *RAW, str(out)],
        check=True,
        capture_output=True,
    )
    inclusive: Counter[str] = Counter()
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        for frame in set(stack.split(";")):
            if any(package in frame for package in WATCHED):
                inclusive[frame] += int(count)
    return inclusive


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0, help="the measured idle window")
    parser.add_argument("--settle", type=float, default=5.0, help="idle time before it")
    parser.add_argument("--profile", choices=SERVICES, help="py-spy this service afterwards")
    parser.add_argument("--baseline-child", nargs=2, metavar=("TOPIC", "GROUP"))
    args = parser.parse_args()
    if args.baseline_child:
        asyncio.run(bare_consumer(*args.baseline_child))
        return
    spy = py_spy()
    if args.profile and spy is None:
        parser.error("--profile needs py-spy (uv tool install py-spy)")
    prefix = f"idle{uuid.uuid4().hex[:8]}_"
    log_dir = Path(tempfile.mkdtemp(prefix="bench-idle-"))
    baseline: subprocess.Popen[bytes] | None = None
    try:
        with Platform.start(log_dir=log_dir, prefix=prefix, timeout=180) as platform:
            baseline = subprocess.Popen(  # noqa: S603 - this script, as the baseline
                [sys.executable, __file__, "--baseline-child", Topics(prefix).documents, "bare"],
            )
            time.sleep(args.settle)
            pids = {name: service.process.pid for name, service in platform.processes.items()}
            pids["bare aiokafka consumer"] = baseline.pid
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            started = time.monotonic()
            time.sleep(args.seconds)
            elapsed = time.monotonic() - started
            after = {name: cpu_seconds(pid) for name, pid in pids.items()}
            load = os.getloadavg()[0]
            rate = {name: 1000 * (after[name] - before[name]) / elapsed for name in pids}
            floor = rate.pop("bare aiokafka consumer")
            print(f"idle CPU over {elapsed:.0f} s (load average {load:.1f}), ms per second:")
            for name, ms in rate.items():
                ratio = f"{ms / floor:.1f}x the baseline" if floor else "baseline 0"
                print(f"  {name:22} {ms:6.1f}   {ratio}")
            total = sum(rate.values())
            print(f"  {'all six':22} {total:6.1f}   ({total / 10:.1f} % of one core)")
            print(f"  baseline, a bare aiokafka consumer idle on one topic: {floor:.1f} ms/s")
            if args.profile and spy is not None:
                frames = profile(spy, pids[args.profile], args.seconds, log_dir / "profile.txt")
                print(f"py-spy, {args.profile}, {args.seconds:.0f} s at 100 Hz, samples:")
                for frame, count in frames.most_common(30):
                    print(f"  {count:6}  {frame}")
    finally:
        if baseline is not None:
            baseline.terminate()
            baseline.wait()
        remove_namespace(prefix, kafka=KAFKA, mongo=MONGO)
        shutil.rmtree(log_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
