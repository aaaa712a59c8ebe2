"""``lienthong report``: the province's adoption table, and the same as an XLSX/PDF document."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from lienthong.reporting.v1 import reporting_service_pb2 as pb
from lienthong.reporting.v1.reporting_service_pb2_grpc import ReportingServiceStub
from lienthong_cli.app import state
from lienthong_cli.options import TIMEOUT, OutputOption
from lienthong_cli.output import Output, err, print_json, table, to_dict
from lienthong_cli.report_model import LEVEL_LABELS, Report, period_label, vn_number, vn_share

_PERIOD = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


def report(
    ctx: typer.Context,
    period: Annotated[str, typer.Option(help="YYYY-MM (a month), YYYY or YYYY-MM-DD.")],
    under: Annotated[
        str, typer.Option("--under", help="Only this unit and the units under it.")
    ] = "",
    per_unit: Annotated[bool, typer.Option("--per-unit", help="Also a row per unit.")] = False,
    xlsx: Annotated[Path | None, typer.Option(help="Write the report as an XLSX file.")] = None,
    pdf: Annotated[Path | None, typer.Option(help="Write the report as a PDF file.")] = None,
    output: OutputOption = Output.table,
) -> None:
    """The province's table for a period: the whole scope, each level, optionally each unit;
    --xlsx/--pdf write it as the province publishes it (the documents always list units)."""
    if not _PERIOD.match(period):
        raise typer.BadParameter(f"{period!r}: YYYY, YYYY-MM or YYYY-MM-DD", param_hint="--period")
    target = state(ctx).target()
    documents = bool(xlsx or pdf)
    with target.channel("reporting") as channel:
        reply = ReportingServiceStub(channel).GetAdoptionReport(
            pb.GetAdoptionReportRequest(
                period=period,
                scope=pb.AdoptionScope(ancestor_code=under, per_unit=per_unit or documents),
            ),
            metadata=target.metadata(),
            timeout=TIMEOUT,
        )
    rows = [row for row in reply.rows if per_unit or row.kind != pb.RowKind.ROW_KIND_UNIT]
    if documents:
        # matplotlib and reportlab take seconds to import: only when a document is asked for
        from lienthong_cli.report_document import write_pdf, write_xlsx

        document = Report.from_rows(period, reply.rows)
        if xlsx:
            write_xlsx(document, xlsx)
            err.print(f"written {xlsx}")
        if pdf:
            write_pdf(document, pdf)
            err.print(f"written {pdf}")
    if output == Output.json:
        print_json({"period": period, "rows": [to_dict(row) for row in rows]})
        return

    def label(row: pb.AdoptionRow) -> str:
        if row.kind == pb.RowKind.ROW_KIND_UNIT:
            return f"{row.unit_code} {row.name}".strip()
        if row.kind == pb.RowKind.ROW_KIND_LEVEL:
            return LEVEL_LABELS[row.level]
        return (
            f"{under} (toàn bộ)" if under else LEVEL_LABELS[pb.ReportLevel.REPORT_LEVEL_UNSPECIFIED]
        )

    table(
        period_label(period),
        ["phạm vi", "đến", "đến qua mạng", "tỷ lệ", "đi", "đi qua mạng", "tỷ lệ", "ký số cá nhân"],
        [
            [
                label(row),
                vn_number(row.incoming_total),
                vn_number(row.incoming_over_network),
                vn_share(row.incoming_network_share),
                vn_number(row.outgoing_total),
                vn_number(row.outgoing_over_network),
                vn_share(row.outgoing_network_share),
                vn_share(row.personal_signature_share),
            ]
            for row in rows
        ],
    )
