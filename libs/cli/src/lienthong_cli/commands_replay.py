"""``lienthong replay``: the month generator (lienthong_local.replay) with a live progress bar:
calls sent, their rate, and how many of the report's rows already equal what was sent."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Annotated, Any

import grpc
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lienthong.reporting.v1 import reporting_service_pb2 as rep_pb
from lienthong_cli.app import state
from lienthong_cli.errors import CliError, ExitCode
from lienthong_cli.options import OutputOption
from lienthong_cli.output import Output, err, out, print_json, table, to_dict
from lienthong_cli.report_model import LEVEL_LABELS, vn_number, vn_share
from lienthong_local.replay import (
    APRIL,
    Key,
    Replay,
    expected_rows,
    generate,
    mismatches,
    read_report,
    vn_month,
)
from lienthong_local.sample import SHAPES

_TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
# seconds between two reads of the report while it converges (a per-unit report is a big read)
_POLL = 1.0


async def _report(endpoint: str, period: str) -> list[rep_pb.AdoptionRow] | None:
    """The report's rows, or None while reporting-service cannot answer yet."""
    try:
        return await read_report(endpoint, period)
    except grpc.aio.AioRpcError as error:
        if error.code() in _TRANSIENT:
            return None
        raise


def _matching(expected: dict[Key, Counter[str]], rows: list[rep_pb.AdoptionRow]) -> int:
    """How many expected rows the report already shows exactly."""
    return max(0, len(expected) - len(mismatches(expected, rows)))


async def _run(
    document: str,
    reporting: str,
    *,
    scale: float,
    seed: int,
    concurrency: int,
    shape: str,
    timeout: float,
) -> dict[str, Any]:
    plan = APRIL if scale == 1 else APRIL.scaled(scale)
    if shape == "two-tier":
        plan = plan.two_tier()
    month = vn_month()
    deadline = time.monotonic() + timeout
    before = await _report(reporting, month)
    while before is None:  # reporting-service still starting: the baseline must be read first
        if time.monotonic() > deadline:
            raise CliError(f"reporting-service at {reporting} did not answer", ExitCode.UNAVAILABLE)
        await asyncio.sleep(_POLL)
        before = await _report(reporting, month)
    traffic = generate(plan, seed=seed, shape=shape)  # type: ignore[arg-type]
    expected = expected_rows(traffic, before)
    calls = len(traffic.documents) + len(traffic.paper)
    replay = Replay(traffic, document, concurrency)
    rows: list[rep_pb.AdoptionRow] = list(before)
    started = time.monotonic()
    sending_seconds = 0.0
    with Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        console=err,
    ) as progress:
        sent_bar = progress.add_task("calls sent", total=calls, note="")
        report_bar = progress.add_task("report rows exact", total=len(expected), note="")
        sending = asyncio.create_task(replay.send())
        while True:
            elapsed = max(time.monotonic() - started, 1e-6)
            if sending.done() and not sending_seconds:
                sending.result()  # a call that failed for good ends the replay here
                sending_seconds = elapsed
            rate = replay.sent / (sending_seconds or elapsed)
            progress.update(sent_bar, completed=replay.sent, note=f"{rate:,.0f} calls/s")
            rows = await _report(reporting, month) or rows
            matching = _matching(expected, rows)
            progress.update(report_bar, completed=matching, note=f"of {len(expected)} rows")
            if sending_seconds and matching == len(expected):
                break
            if time.monotonic() > deadline:
                sending.cancel()
                problems = mismatches(expected, rows)
                raise CliError(
                    [
                        f"the report for {month} is not exact after {timeout:g} s:"
                        f" {len(problems)} rows differ",
                        *problems[:20],
                    ],
                    ExitCode.PLATFORM_FAILED,
                )
            await asyncio.sleep(_POLL)
    if vn_month() != month:
        raise CliError(f"the month changed during the replay ({month} -> {vn_month()})")
    return {
        "period": month,
        "calls": calls,
        "documents": len(traffic.documents),
        "paper": len(traffic.paper),
        "sending_seconds": round(sending_seconds, 3),
        "calls_per_second": round(calls / sending_seconds, 1),
        "exact_after_seconds": round(time.monotonic() - started, 3),
        "units": len(traffic.expected),
        "rows": rows,
    }


def replay(
    ctx: typer.Context,
    scale: Annotated[
        float, typer.Option(min=0.0001, max=1.0, help="1 = the seed's whole April.")
    ] = 0.05,
    seed: Annotated[int, typer.Option(help="The generator's seed (same seed, same month).")] = 2024,
    concurrency: Annotated[int, typer.Option(min=1, max=512, help="Calls in flight.")] = 32,
    shape: Annotated[
        str, typer.Option(help="The registry loaded: three-tier or two-tier.")
    ] = "three-tier",
    timeout: Annotated[
        float, typer.Option(min=1.0, help="Seconds until the report must be exact.")
    ] = 600.0,
    output: OutputOption = Output.table,
) -> None:
    """Replay a month of the sample province's traffic into the current month (dev mode: the
    calls speak as every unit), with live progress, until the report equals what was sent."""
    if shape not in SHAPES:
        raise typer.BadParameter(f"{shape!r}: one of {', '.join(SHAPES)}", param_hint="--shape")
    target = state(ctx).target()
    if target.secure:
        raise CliError(
            "the replay speaks as every unit of the sample province with the dev identity"
            " header: run it against a dev-mode platform (make run), without --cacert/--cert",
            ExitCode.USAGE,
        )
    result = asyncio.run(
        _run(
            target.endpoints["document"],
            target.endpoints["reporting"],
            scale=scale,
            seed=seed,
            concurrency=concurrency,
            shape=shape,
            timeout=timeout,
        )
    )
    rows = [row for row in result.pop("rows") if row.kind != rep_pb.RowKind.ROW_KIND_UNIT]
    if output == Output.json:
        print_json({**result, "rows": [to_dict(row) for row in rows]})
        return
    out.print(
        f"{result['period']}: {result['calls']} calls ({result['documents']} documents,"
        f" {result['paper']} on paper) in {result['sending_seconds']:.1f} s"
        f" ({result['calls_per_second']:,.0f}/s); the report equals what was sent for every"
        f" unit ({result['units']}), level and the province after"
        f" {result['exact_after_seconds']:.1f} s"
    )
    table(
        result["period"],
        ["phạm vi", "đến", "đến qua mạng", "tỷ lệ", "đi", "đi qua mạng", "tỷ lệ"],
        [
            [
                LEVEL_LABELS[row.level],
                vn_number(row.incoming_total),
                vn_number(row.incoming_over_network),
                vn_share(row.incoming_network_share),
                vn_number(row.outgoing_total),
                vn_number(row.outgoing_over_network),
                vn_share(row.outgoing_network_share),
            ]
            for row in rows
        ],
    )


__all__ = ["replay"]
