"""Replay a month of traffic for the sample province through the public gRPC APIs, knowing
exactly what the adoption report must then say.

    python -m lienthong_local.replay                      # the seed's April, scaled 1/20
    python -m lienthong_local.replay --scale 1            # the whole April (45,922 incoming)
    python -m lienthong_local.replay --document 127.0.0.1:50051 --reporting 127.0.0.1:50055
    python -m lienthong_local.replay --shape three-tier   # a three-tier month (Hòa Bình's registry)

Network documents go through document-service's SubmitDocument (each is outgoing over the
network for its sender, and each of its deliveries is incoming over the network for a
recipient); paper documents through RegisterPaperDocument. Afterwards the generator reads
GetAdoptionReport for the month and compares every unit, every level and the whole province
with the counts it generated (on top of what the report held before it started).

Business dates (docs/reporting.md, "Replaying a month"): the platform stamps a submission
and a delivery with the time they happen, so a replay through the live APIs is a replay
*into the current month* (Vietnam time). Paper registrations carry their own registration
time, spread over the days of the current month up to now. The generator refuses to report
success if the month changed while it ran.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from lienthong.common.v1.common_pb2 import DocumentCode, Recipients, UnitLevel
from lienthong.document.v1 import document_service_pb2 as doc_pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.reporting.v1 import reporting_service_pb2 as rep_pb
from lienthong.reporting.v1.reporting_service_pb2_grpc import ReportingServiceStub
from lienthong.routing.v1.routing_service_pb2 import Unit
from lienthong_local.sample import SHAPES, Shape, sample_units

__all__ = [
    "APRIL",
    "LEVELS",
    "LevelPlan",
    "Plan",
    "Replay",
    "Traffic",
    "expected_rows",
    "generate",
    "mismatches",
    "read_report",
    "run_replay",
]

VN_TIME = timezone(timedelta(hours=7), "ICT")
LEVELS = ("province", "district", "commune")
_LEVEL_OF = {
    UnitLevel.UNIT_LEVEL_PROVINCE: "province",
    UnitLevel.UNIT_LEVEL_DEPARTMENT: "province",
    UnitLevel.UNIT_LEVEL_DISTRICT: "district",
    UnitLevel.UNIT_LEVEL_COMMUNE: "commune",
}
_REPORT_LEVEL = {
    "province": rep_pb.ReportLevel.REPORT_LEVEL_PROVINCE,
    "district": rep_pb.ReportLevel.REPORT_LEVEL_DISTRICT,
    "commune": rep_pb.ReportLevel.REPORT_LEVEL_COMMUNE,
}
COUNTS = ("incoming_total", "incoming_over_network", "outgoing_total", "outgoing_over_network")


@dataclass(frozen=True)
class LevelPlan:
    incoming_total: int
    incoming_network: int
    outgoing_total: int
    outgoing_network: int

    def scaled(self, factor: float) -> LevelPlan:
        def part(value: int) -> int:
            return round(value * factor)

        return LevelPlan(
            part(self.incoming_total),
            part(self.incoming_network),
            part(self.outgoing_total),
            part(self.outgoing_network),
        )


@dataclass(frozen=True)
class Plan:
    """Chosen totals per level of the province's table."""

    levels: dict[str, LevelPlan]

    def scaled(self, factor: float) -> Plan:
        return Plan({name: level.scaled(factor) for name, level in self.levels.items()})

    def two_tier(self) -> Plan:
        """The same totals with no district level: the communes took the districts' share
        (a two-tier province has no district units to send or receive)."""
        levels = dict(self.levels)
        district = levels.pop("district", None)
        if district is not None:
            commune = levels.get("commune", LevelPlan(0, 0, 0, 0))
            levels["commune"] = LevelPlan(
                *(getattr(commune, f) + getattr(district, f) for f in _PLAN_FIELDS)
            )
        return Plan(levels)

    def total(self) -> LevelPlan:
        return LevelPlan(
            *(sum(getattr(level, f) for level in self.levels.values()) for f in _PLAN_FIELDS)
        )


_PLAN_FIELDS = ("incoming_total", "incoming_network", "outgoing_total", "outgoing_network")

# The seed's April (DOMAIN.md, seed 004): 45,922 incoming of which 34,503 over the network;
# 11,271 outgoing of which 6,241 over the network. Per level as printed (province 8,955 in /
# 51%, 4,769 out / 67.3%; district 11,634 in / 81.2%, 1,429 out / 38%; commune 13,462 in, no
# outgoing over the network); the seed's levels do not add up to its whole-system line, so the
# remainders (452 incoming and 43 outgoing over the network, the paper totals) go to the
# commune and province levels. docs/reporting.md shows the resulting table.
APRIL = Plan(
    {
        "province": LevelPlan(17_559, 8_955, 7_086, 4_812),
        "district": LevelPlan(14_328, 11_634, 3_761, 1_429),
        "commune": LevelPlan(14_035, 13_914, 424, 0),
    }
)


@dataclass
class Traffic:
    """What to send, and the counts the report must then show per unit."""

    documents: list[tuple[str, list[str]]] = field(default_factory=list)  # sender, recipients
    paper: list[tuple[str, str, datetime]] = field(default_factory=list)  # unit, direction, when
    expected: dict[str, Counter[str]] = field(default_factory=dict)
    level_of: dict[str, str] = field(default_factory=dict)

    def level_totals(self) -> dict[str, Counter[str]]:
        totals: dict[str, Counter[str]] = {level: Counter() for level in LEVELS}
        for unit, counts in self.expected.items():
            totals[self.level_of[unit]].update(counts)
        return totals


def _split(total: int, units: Sequence[str], rng: random.Random) -> dict[str, int]:
    """``total`` over ``units`` with uneven random weights (largest remainder: exact sum)."""
    if not units:
        if total:
            raise ValueError(f"{total} documents for a level without units")
        return {}
    weights = [rng.uniform(0.3, 3.0) for _ in units]
    scale = total / sum(weights)
    shares = [w * scale for w in weights]
    counts = [int(s) for s in shares]
    by_remainder = sorted(range(len(units)), key=lambda i: shares[i] - counts[i], reverse=True)
    for index in by_remainder[: total - sum(counts)]:
        counts[index] += 1
    return dict(zip(units, counts, strict=True))


def _month_moments(count: int, now: datetime, rng: random.Random) -> list[datetime]:
    """``count`` instants between the start of now's Vietnam month and now."""
    local = now.astimezone(VN_TIME)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    span = max(1.0, (local - start).total_seconds() - 1)
    return [start + timedelta(seconds=rng.uniform(0, span)) for _ in range(count)]


def generate(
    plan: Plan,
    *,
    seed: int = 2024,
    now: datetime | None = None,
    shape: Shape = "three-tier",
    registry: Sequence[Unit] | None = None,
) -> Traffic:
    """Traffic for the sample province (or ``registry``'s units) with exactly the plan's
    totals per level, between the units open on ``now``'s day (in two tiers: no district; use
    ``Plan.two_tier``)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible traffic, not secrets
    now = now or datetime.now(UTC)
    today = now.astimezone(VN_TIME).date().isoformat()
    traffic = Traffic()
    units_by_level: dict[str, list[str]] = {level: [] for level in LEVELS}
    for sample in sample_units(shape) if registry is None else registry:
        closed = bool(sample.valid_until) and sample.valid_until <= today
        if closed or (not sample.active and not sample.valid_until):
            continue
        if sample.valid_from and sample.valid_from > today:
            continue
        level = _LEVEL_OF[sample.level]
        units_by_level[level].append(sample.code)
        traffic.level_of[sample.code] = level
        traffic.expected[sample.code] = Counter(dict.fromkeys(COUNTS, 0))
    incoming_net: dict[str, int] = {}
    outgoing_net: dict[str, int] = {}
    for level, figures in plan.levels.items():
        if figures.incoming_network > figures.incoming_total:
            raise ValueError(f"{level}: more incoming over the network than incoming in all")
        if figures.outgoing_network > figures.outgoing_total:
            raise ValueError(f"{level}: more outgoing over the network than outgoing in all")
        units = units_by_level[level]
        incoming_net |= _split(figures.incoming_network, units, rng)
        outgoing_net |= _split(figures.outgoing_network, units, rng)
        for unit, count in _split(
            figures.incoming_total - figures.incoming_network, units, rng
        ).items():
            traffic.paper += [
                (unit, "incoming", moment) for moment in _month_moments(count, now, rng)
            ]
        for unit, count in _split(
            figures.outgoing_total - figures.outgoing_network, units, rng
        ).items():
            traffic.paper += [
                (unit, "outgoing", moment) for moment in _month_moments(count, now, rng)
            ]
    traffic.documents = _documents(incoming_net, outgoing_net, rng)
    for sender, recipients in traffic.documents:
        traffic.expected[sender]["outgoing_over_network"] += 1
        traffic.expected[sender]["outgoing_total"] += 1
        for recipient in recipients:
            traffic.expected[recipient]["incoming_over_network"] += 1
            traffic.expected[recipient]["incoming_total"] += 1
    for unit, direction, _ in traffic.paper:
        traffic.expected[unit][f"{direction}_total"] += 1
    rng.shuffle(traffic.paper)
    return traffic


def _documents(
    incoming: dict[str, int], outgoing: dict[str, int], rng: random.Random
) -> list[tuple[str, list[str]]]:
    """One document per outgoing count, addressed so every unit receives its incoming count
    (each document to at least one unit, never to its sender, no unit twice)."""
    senders = [unit for unit, count in outgoing.items() for _ in range(count)]
    slots = sum(incoming.values())
    if slots < len(senders):
        raise ValueError(f"{len(senders)} documents cannot make only {slots} deliveries")
    if senders and slots and len(incoming) < 2:
        raise ValueError("documents need a recipient other than their sender")
    sizes = [1] * len(senders)
    for _ in range(slots - len(senders)):
        sizes[rng.randrange(len(senders))] += 1
    remaining = dict(incoming)
    order = sorted(range(len(senders)), key=lambda i: sizes[i], reverse=True)
    documents: list[tuple[str, list[str]]] = [("", [])] * len(senders)
    for index in order:
        sender = senders[index]
        candidates = sorted(
            (unit for unit, left in remaining.items() if left > 0 and unit != sender),
            key=lambda unit: (remaining[unit], rng.random()),
            reverse=True,
        )
        if len(candidates) < sizes[index]:
            raise ValueError("the plan's incoming counts cannot be addressed; try another seed")
        chosen = candidates[: sizes[index]]
        for unit in chosen:
            remaining[unit] -= 1
        documents[index] = (sender, chosen)
    rng.shuffle(documents)
    return documents


# --- sending ---------------------------------------------------------------------------------


def _as(unit: str) -> tuple[tuple[str, str], ...]:
    return (("x-lienthong-identity", f"unit/{unit}"),)


# the province's table is read by an observer (dev auth names one by header)
OBSERVER = (("x-lienthong-identity", "operator/observer/replay"),)


_RETRY = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


async def _call(attempt: Callable[[], Any], tries: int = 20) -> Any:
    """Retry what may not have happened; the idempotency key makes a retry safe."""
    for number in range(tries):
        try:
            return await attempt()
        except grpc.aio.AioRpcError as error:
            if error.code() not in _RETRY or number == tries - 1:
                raise
            await asyncio.sleep(min(2.0, 0.1 * 2**number))
    raise AssertionError("unreachable")


@dataclass
class Replay:
    """Send ``traffic`` to document-service; ``sent`` counts calls done (progress)."""

    traffic: Traffic
    document_endpoint: str
    concurrency: int = 32
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    sent: int = 0
    # the platform's day for promulgation dates, when it runs under a set clock (tests)
    today: str = ""

    async def send(self) -> None:
        work: asyncio.Queue[Callable[[DocumentServiceStub], Awaitable[object]]] = asyncio.Queue()
        for index, (sender, recipients) in enumerate(self.traffic.documents):
            work.put_nowait(self._submit(index, sender, recipients))
        for index, (unit, direction, moment) in enumerate(self.traffic.paper):
            work.put_nowait(self._register(index, unit, direction, moment))
        async with grpc.aio.insecure_channel(self.document_endpoint) as channel:
            stub = DocumentServiceStub(channel)

            async def worker() -> None:
                while not work.empty():
                    job = work.get_nowait()
                    await job(stub)
                    self.sent += 1

            await asyncio.gather(*(worker() for _ in range(self.concurrency)))

    def _submit(
        self, index: int, sender: str, recipients: list[str]
    ) -> Callable[[DocumentServiceStub], Awaitable[object]]:
        today = self.today or datetime.now(VN_TIME).date().isoformat()
        request = doc_pb.SubmitDocumentRequest(
            idempotency_key=f"replay-{self.run}-doc-{index}",
            recipients=Recipients(unit_codes=recipients),
            code=DocumentCode(number=str(index + 1), notation=f"BC-RP{self.run}"),
            document_type="BC",
            subject=f"Báo cáo phát lại {index + 1}",
            promulgation_date=today,
        )

        async def job(stub: DocumentServiceStub) -> object:
            return await _call(
                lambda: stub.SubmitDocument(request, metadata=_as(sender), timeout=30)
            )

        return job

    def _register(
        self, index: int, unit: str, direction: str, moment: datetime
    ) -> Callable[[DocumentServiceStub], Awaitable[object]]:
        when = Timestamp()
        when.FromDatetime(moment.astimezone(UTC))
        request = doc_pb.RegisterPaperDocumentRequest(
            idempotency_key=f"replay-{self.run}-paper-{index}",
            direction=(
                doc_pb.Direction.DIRECTION_INCOMING
                if direction == "incoming"
                else doc_pb.Direction.DIRECTION_OUTGOING
            ),
            counterpart="Công dân" if direction == "incoming" else "Doanh nghiệp",
            code=DocumentCode(number=str(index + 1), notation=f"GB-RP{self.run}"),
            document_type="",
            subject=f"Văn bản giấy phát lại {index + 1}",
            registered_at=when,
        )

        async def job(stub: DocumentServiceStub) -> object:
            return await _call(
                lambda: stub.RegisterPaperDocument(request, metadata=_as(unit), timeout=30)
            )

        return job


# --- checking --------------------------------------------------------------------------------


def vn_month(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).astimezone(VN_TIME).strftime("%Y-%m")


async def read_report(endpoint: str, period: str) -> list[rep_pb.AdoptionRow]:
    async with grpc.aio.insecure_channel(endpoint) as channel:
        reply = await ReportingServiceStub(channel).GetAdoptionReport(
            rep_pb.GetAdoptionReportRequest(
                period=period, scope=rep_pb.AdoptionScope(per_unit=True)
            ),
            metadata=OBSERVER,
            timeout=30,
        )
    return list(reply.rows)


Key = tuple[int, int, str]


def _key(row: rep_pb.AdoptionRow) -> Key:
    return int(row.kind), int(row.level), row.unit_code


def _figures(row: rep_pb.AdoptionRow) -> Counter[str]:
    return Counter({name: getattr(row, name) for name in COUNTS})


def expected_rows(
    traffic: Traffic, before: Sequence[rep_pb.AdoptionRow]
) -> dict[Key, Counter[str]]:
    """(kind, level, unit) -> the four counts the report must show: before + generated."""
    expected: dict[Key, Counter[str]] = {}
    for row in before:
        expected[_key(row)] = _figures(row)

    def add(key: Key, counts: Counter[str]) -> None:
        expected.setdefault(key, Counter(dict.fromkeys(COUNTS, 0))).update(counts)

    scope: Key = (rep_pb.RowKind.ROW_KIND_SCOPE, rep_pb.ReportLevel.REPORT_LEVEL_UNSPECIFIED, "")
    for unit, counts in traffic.expected.items():
        level = traffic.level_of[unit]
        add((rep_pb.RowKind.ROW_KIND_UNIT, _REPORT_LEVEL[level], unit), counts)
        add((rep_pb.RowKind.ROW_KIND_LEVEL, _REPORT_LEVEL[level], ""), counts)
        add(scope, counts)
    return expected


def mismatches(expected: dict[Key, Counter[str]], rows: Sequence[rep_pb.AdoptionRow]) -> list[str]:
    """Every row whose counts differ from the expected ones (empty: the report is exact)."""
    got = {_key(row): _figures(row) for row in rows}
    problems = []
    for key in sorted(set(expected) | set(got)):
        want = expected.get(key, Counter(dict.fromkeys(COUNTS, 0)))
        have = got.get(key, Counter(dict.fromkeys(COUNTS, 0)))
        if any(want[name] != have[name] for name in COUNTS):
            kind = rep_pb.RowKind.Name(key[0]).removeprefix("ROW_KIND_").lower()  # type: ignore[arg-type]
            level = rep_pb.ReportLevel.Name(key[1]).removeprefix("REPORT_LEVEL_").lower()  # type: ignore[arg-type]
            problems.append(
                f"{kind} {level} {key[2] or '(province)'}: expected "
                f"{[want[n] for n in COUNTS]}, report says {[have[n] for n in COUNTS]}"
            )
    return problems


async def run_replay(
    plan: Plan,
    *,
    document: str,
    reporting: str,
    seed: int = 2024,
    concurrency: int = 32,
    timeout: float = 600.0,
    shape: Shape = "three-tier",
    during: Callable[[Replay], Awaitable[None]] | None = None,
) -> tuple[Traffic, list[rep_pb.AdoptionRow], float]:
    """Replay ``plan`` into the current month and wait until the report is exact.

    ``during`` runs beside the sending (a test kills the reporting worker there). Returns the
    traffic, the final rows and the seconds the sending took; raises AssertionError with the
    mismatching rows if the report is not exact within ``timeout`` after the sending.
    """
    month = vn_month()
    before = await _report_when_ready(reporting, month, timeout)
    traffic = generate(plan, seed=seed, shape=shape)
    replay = Replay(traffic, document, concurrency)
    started = time.monotonic()
    if during is None:
        await replay.send()
    else:
        await asyncio.gather(replay.send(), during(replay))
    sending = time.monotonic() - started
    expected = expected_rows(traffic, before)
    deadline = time.monotonic() + timeout
    while True:
        rows = await _report_when_ready(reporting, month, timeout)
        problems = mismatches(expected, rows)
        if not problems:
            break
        if time.monotonic() > deadline:
            raise AssertionError(
                f"the report for {month} differs in {len(problems)} rows:\n"
                + "\n".join(problems[:20])
            )
        await asyncio.sleep(0.5)
    if vn_month() != month:
        raise AssertionError(f"the month changed during the replay ({month} -> {vn_month()})")
    return traffic, rows, sending


async def _report_when_ready(
    endpoint: str, period: str, timeout: float
) -> list[rep_pb.AdoptionRow]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await read_report(endpoint, period)
        except grpc.aio.AioRpcError as error:
            if error.code() not in _RETRY or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--document", default="127.0.0.1:50051", help="document-service")
    parser.add_argument("--reporting", default="127.0.0.1:50055", help="reporting-service")
    parser.add_argument("--scale", type=float, default=0.05, help="1 = the seed's whole April")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--shape",
        choices=SHAPES,
        default="two-tier",
        help="the registry loaded: two-tier Phú Thọ (make run's) or three-tier Hòa Bình",
    )
    args = parser.parse_args(argv)
    plan = APRIL if args.scale == 1 else APRIL.scaled(args.scale)
    if args.shape == "two-tier":
        plan = plan.two_tier()
    total = plan.total()
    print(
        f"replaying into {vn_month()}: {total.incoming_total} incoming "
        f"({total.incoming_network} over the network), {total.outgoing_total} outgoing "
        f"({total.outgoing_network} over the network)",
        flush=True,
    )
    started = time.monotonic()
    traffic, rows, sending = asyncio.run(
        run_replay(
            plan,
            document=args.document,
            reporting=args.reporting,
            seed=args.seed,
            concurrency=args.concurrency,
            shape=args.shape,
        )
    )
    exact = time.monotonic() - started
    calls = len(traffic.documents) + len(traffic.paper)
    rate = calls / sending
    print(f"sent {calls} calls in {sending:.1f} s ({rate:.0f}/s); report exact after {exact:.1f} s")
    print(
        f"{'scope':<16}{'incoming':>10}{'network':>10}{'share':>8}{'outgoing':>10}{'network':>10}{'share':>8}"
    )
    for row in rows:
        if row.kind == rep_pb.RowKind.ROW_KIND_UNIT:
            continue
        name = (
            "whole province"
            if row.kind == rep_pb.RowKind.ROW_KIND_SCOPE
            else (
                rep_pb.ReportLevel.Name(row.level).removeprefix("REPORT_LEVEL_").lower() + " level"
            )
        )
        print(
            f"{name:<16}{row.incoming_total:>10}{row.incoming_over_network:>10}"
            f"{row.incoming_network_share.display:>8}{row.outgoing_total:>10}"
            f"{row.outgoing_over_network:>10}{row.outgoing_network_share.display:>8}"
        )
    print(
        f"every unit ({len(traffic.expected)}), level and the province match the generated counts"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
