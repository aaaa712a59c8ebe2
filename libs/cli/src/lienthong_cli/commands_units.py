"""``lienthong units``: the registry (RoutingService): list, get, import, export."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import grpc
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from lienthong.common.v1.common_pb2 import UnitLevel
from lienthong.routing.v1 import routing_service_pb2 as pb
from lienthong.routing.v1.routing_service_pb2_grpc import RoutingServiceStub
from lienthong_cli.app import state
from lienthong_cli.connection import Target
from lienthong_cli.errors import CliError, ExitCode, exit_code_for, field_violations
from lienthong_cli.options import TIMEOUT, OutputOption
from lienthong_cli.output import Output, err, print_json, table, to_dict
from lienthong_cli.units_closing import (
    Carried,
    Pointing,
    carry_over,
    closing_units,
    what_points_at,
)
from lienthong_cli.units_file import LEVEL_NAMES, LEVELS, Row, read_units, write_units

app = typer.Typer(help="The unit registry: list, get, import (CSV/JSON/XLSX), export.")

_ROW_FIELD = re.compile(r"^rows\[(\d+)\]\.?(.*)$")


def _level(value: str) -> UnitLevel.ValueType:
    if not value:
        return UnitLevel.UNIT_LEVEL_UNSPECIFIED
    if value not in LEVELS:
        raise typer.BadParameter(f"{value!r}: one of {', '.join(LEVELS)}", param_hint="--level")
    return LEVELS[value]


def all_units(target: Target, parent: str = "", level: str = "", active: str = "") -> list[pb.Unit]:
    filters = {
        "": pb.ActiveFilter.ACTIVE_FILTER_UNSPECIFIED,
        "active": pb.ActiveFilter.ACTIVE_FILTER_ACTIVE,
        "inactive": pb.ActiveFilter.ACTIVE_FILTER_INACTIVE,
    }
    units: list[pb.Unit] = []
    token = ""
    with target.channel("routing") as channel:
        stub = RoutingServiceStub(channel)
        while True:
            reply = stub.ListUnits(
                pb.ListUnitsRequest(
                    parent_code=parent,
                    level=_level(level),
                    page_size=500,
                    page_token=token,
                    active=filters[active],
                ),
                metadata=target.metadata(),
                timeout=TIMEOUT,
            )
            units.extend(reply.units)
            token = reply.next_page_token
            if not token:
                return units


ParentOption = Annotated[str, typer.Option("--parent", help="Direct children of this unit.")]
LevelOption = Annotated[str, typer.Option(help="province, department, district or commune.")]
ActiveOption = Annotated[str, typer.Option("--state", help="active or inactive (default both).")]


@app.command("list")
def list_(
    ctx: typer.Context,
    parent: ParentOption = "",
    level: LevelOption = "",
    active: ActiveOption = "",
    output: OutputOption = Output.table,
) -> None:
    """Units ordered by code (every page)."""
    if active not in ("", "active", "inactive"):
        raise typer.BadParameter("active or inactive", param_hint="--state")
    units = all_units(state(ctx).target(), parent, level, active)
    if output == Output.json:
        print_json([to_dict(unit) for unit in units])
        return
    table(
        f"{len(units)} units",
        ["code", "name", "level", "parent", "active"],
        [
            [
                u.code,
                u.name,
                LEVEL_NAMES.get(u.level, ""),
                u.parent_code,
                "yes" if u.active else "no",
            ]
            for u in units
        ],
    )


@app.command("get")
def get(ctx: typer.Context, code: str, output: OutputOption = Output.table) -> None:
    """One unit, by either code form."""
    target = state(ctx).target()
    with target.channel("routing") as channel:
        unit = (
            RoutingServiceStub(channel)
            .GetUnit(pb.GetUnitRequest(code=code), metadata=target.metadata(), timeout=TIMEOUT)
            .unit
        )
    if output == Output.json:
        print_json(to_dict(unit))
        return
    table(unit.code, ["field", "value"], [[k, str(v)] for k, v in to_dict(unit).items()])


def _explain(error: grpc.RpcError, rows: list[Row]) -> list[str]:
    """The server's ``rows[i].field`` violations against the file's rows."""
    lines = []
    for name, description in field_violations(error):
        match = _ROW_FIELD.match(name)
        if match and int(match.group(1)) < len(rows):
            lines.append(f"{rows[int(match.group(1))].where}: {match.group(2)}: {description}")
        else:
            lines.append(f"{name}: {description}")
    return lines


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=".csv, .json, .xlsx")],
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Read and check the file, and say which units are new, without importing.",
        ),
    ] = False,
    carry: Annotated[
        bool,
        typer.Option(
            "--carry-over/--no-carry-over",
            help="After importing, copy each closing unit's notification contacts, groups and"
            " subscriptions to its successors (default on).",
        ),
    ] = True,
    output: OutputOption = Output.table,
) -> None:
    """Create or replace the file's units in one import: all of them, or none if any row is
    bad (every bad row is listed). Units it closes: the dry run lists what still points at
    them; the import carries their notification contacts over to their successors."""
    try:
        rows = read_units(file)
    except ValueError as exc:
        raise CliError(f"{file}: {exc}") from exc
    local = [f"{row.where}: {problem}" for row in rows for problem in row.problems]
    if local:
        raise CliError([f"{file}: {len(local)} problems, nothing imported", *local])
    target = state(ctx).target()
    units = [row.unit for row in rows]
    # only a file that closes units needs the registry as it is (which of them close now)
    registry = all_units(target) if dry_run or closing_units(units) else []
    closing = closing_units(units, registry)
    if dry_run:
        known = {unit.code for unit in registry}
        new = [row.unit.code for row in rows if row.unit.code not in known]
        pointing = [item for item in what_points_at(target, closing) if not item.empty]
        result: dict[str, Any] = {
            "dry_run": True,
            "rows": len(rows),
            "new": len(new),
            "new_codes": new,
            "closing": len(closing),
            "pointing_at_closing": [item.as_dict() for item in pointing],
        }
        if output == Output.json:
            print_json(result)
        else:
            err.print(
                f"{file}: {len(rows)} rows read, {len(new)} new units, {len(closing)} closing;"
                " nothing imported (the server checks every row when importing)"
            )
            _show_pointing(pointing)
        return
    with (
        Progress(
            TextColumn("importing {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=err,
            transient=True,
        ) as progress,
        target.channel("routing") as channel,
    ):
        task = progress.add_task(file.name, total=len(rows))

        def requests() -> Iterator[pb.ImportRegistryRequest]:
            for row in rows:
                yield pb.ImportRegistryRequest(unit=row.unit)
                progress.advance(task)

        try:
            reply = RoutingServiceStub(channel).ImportRegistry(
                requests(), metadata=target.metadata(), timeout=max(120.0, len(rows) / 50)
            )
        except grpc.RpcError as error:
            bad = _explain(error, rows)
            if not bad:
                raise
            raise CliError(
                [f"{file}: {len(bad)} problems, nothing imported", *bad],
                exit_code_for(error.code()),
            ) from error
    carried = Carried()
    if carry and closing:
        try:
            carried = carry_over(target, closing)
        except grpc.RpcError as error:
            raise CliError(
                [
                    f"imported {reply.applied} units ({reply.created} new), but carrying the"
                    f" closing units' contacts over failed: {error.code().name}"
                    f" {error.details()}",
                    f"once notification-service answers: lienthong units carry-over {file}"
                    " (idempotent)",
                ],
                exit_code_for(error.code()),
            ) from error
    if output == Output.json:
        print_json(
            {
                "dry_run": False,
                "applied": reply.applied,
                "created": reply.created,
                "carried_over": asdict(carried),
            }
        )
    else:
        err.print(f"imported {reply.applied} units ({reply.created} new)")
        if carried.units:
            err.print(
                f"carried over to the successors of {carried.units} closing units:"
                f" {carried.contacts} contacts, {carried.groups} groups,"
                f" {carried.subscriptions} subscriptions"
            )


def _show_pointing(pointing: list[Pointing]) -> None:
    if not pointing:
        err.print("nothing points at the closing units (no pending delivery, reminder, contact)")
        return
    table(
        f"{len(pointing)} closing units something points at",
        ["code", "successors", "pending deliveries", "reminders", "contacts", "groups", "subs"],
        [
            [
                item.code,
                " ".join(item.successors) or "-",
                str(item.pending_deliveries),
                str(item.pending_reminders),
                ", ".join(item.contacts),
                ", ".join(item.groups),
                ", ".join(item.subscriptions),
            ]
            for item in pointing
        ],
    )


@app.command("carry-over")
def carry_over_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=".csv, .json, .xlsx")],
    output: OutputOption = Output.table,
) -> None:
    """Copy the notification contacts, groups and subscriptions of every unit the file closes
    to its successors (what `units import` does after importing; a repeat copies nothing)."""
    try:
        rows = read_units(file)
    except ValueError as exc:
        raise CliError(f"{file}: {exc}") from exc
    carried = carry_over(state(ctx).target(), closing_units([row.unit for row in rows]))
    if output == Output.json:
        print_json(asdict(carried))
    else:
        err.print(
            f"carried over to the successors of {carried.units} closing units:"
            f" {carried.contacts} contacts, {carried.groups} groups,"
            f" {carried.subscriptions} subscriptions"
        )


@app.command("export")
def export(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(dir_okay=False, help=".csv, .json or .xlsx")],
    parent: ParentOption = "",
    level: LevelOption = "",
    active: ActiveOption = "",
) -> None:
    """Write the registry (or part of it) to a file that `units import` reads back."""
    units = all_units(state(ctx).target(), parent, level, active)
    try:
        write_units(file, units)
    except ValueError as exc:
        raise CliError(str(exc), ExitCode.USAGE) from exc
    err.print(f"{len(units)} units written to {file}")
