"""The province's monthly report as a document (XLSX and PDF, in Vietnamese), from
GetAdoptionReport's rows, laid out as seed 004 publishes it.

    report = Report.from_rows("2026-11", reply.rows)
    write_xlsx(report, Path("bao-cao-2026-11.xlsx"))
    write_pdf(report, Path("bao-cao-2026-11.pdf"))

What it holds: incoming and outgoing totals and over the network with their shares (one
decimal), per scope and level; the signed shares per unit; the units that only receive; and a
chart per level of the network shares against the 2025 targets (DOMAIN.md, seed 001: 90% at
province level, 80% at district level, 60% at commune level). The PDF uses DejaVu Sans, the
font matplotlib ships, which has every Vietnamese glyph
(docs/decisions/0800-cli-and-report-document.md).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: render to files only

import matplotlib.pyplot as plt
import openpyxl
from matplotlib import font_manager
from openpyxl.chart import BarChart, LineChart, Reference
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    Flowable,
    Image,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from lienthong.reporting.v1 import reporting_service_pb2 as pb
from lienthong_cli.report_model import (
    LEVEL_LABELS,
    LEVELS,
    ONLY_RECEIVING_HEADER,
    SIGNATURE_HEADER,
    SUMMARY_HEADER,
    TARGETS_2025,
    TITLE,
    Report,
    level_label,
    period_label,
    ratio,
    unit_label,
    vn_number,
    vn_share,
)

__all__ = ["chart_png", "write_pdf", "write_xlsx"]

_FONT = "DejaVuSans"
_FONT_BOLD = "DejaVuSans-Bold"


CellValue = str | int | float | None


def _summary_values(row: pb.AdoptionRow) -> list[CellValue]:
    return [
        row.incoming_total,
        row.incoming_over_network,
        ratio(row.incoming_network_share),
        row.outgoing_total,
        row.outgoing_over_network,
        ratio(row.outgoing_network_share),
        row.units,
        row.units_connected,
        row.units_only_receiving,
    ]


# --- XLSX ---------------------------------------------------------------------------------

_PERCENT = "0.0%"
_COUNT = "#,##0"


def _header(sheet: Worksheet, row: int, names: Iterable[str]) -> None:
    for column, name in enumerate(names, start=1):
        cell = sheet.cell(row=row, column=column, value=name)
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="center", horizontal="center")


def write_xlsx(report: Report, path: Path) -> None:
    """Sheets: "Tổng hợp" (the table and the charts), "Ký số" (signed shares per unit),
    "Chỉ nhận" (units that only receive). Shares are numbers shown as percentages."""
    workbook = openpyxl.Workbook()
    summary = workbook.active
    if summary is None:
        raise RuntimeError("openpyxl created a workbook without a sheet")
    summary.title = "Tổng hợp"
    summary["A1"] = TITLE
    summary["A1"].font = Font(bold=True, size=14)
    summary["A2"] = period_label(report.period)
    _header(summary, 4, SUMMARY_HEADER)
    for offset, (label, row) in enumerate(report.summary_rows()):
        line = 5 + offset
        summary.cell(row=line, column=1, value=label).font = Font(bold=offset == 0)
        for column, value in enumerate(_summary_values(row), start=2):
            cell = summary.cell(row=line, column=column, value=value)
            cell.number_format = _PERCENT if column in (4, 7) else _COUNT
    summary.column_dimensions["A"].width = 18
    for column in range(2, len(SUMMARY_HEADER) + 1):
        summary.column_dimensions[get_column_letter(column)].width = 13
    summary.row_dimensions[4].height = 32
    _xlsx_charts(report, summary)

    signed = workbook.create_sheet("Ký số")
    signed["A1"] = "Tỷ lệ văn bản đi qua mạng được ký số, theo đơn vị"
    signed["A1"].font = Font(bold=True)
    _header(signed, 3, SIGNATURE_HEADER)
    for line, row in enumerate(report.signing_units(), start=4):
        signed_values: list[CellValue] = [
            row.unit_code,
            unit_label(row),
            row.outgoing_over_network,
            row.outgoing_personal_signed,
            ratio(row.personal_signature_share),
            row.outgoing_organisation_signed,
            ratio(row.organisation_signature_share),
        ]
        for column, value in enumerate(signed_values, start=1):
            cell = signed.cell(row=line, column=column, value=value)
            if column in (5, 7):
                cell.number_format = _PERCENT
    signed.column_dimensions["A"].width = 16
    signed.column_dimensions["B"].width = 40

    receiving = workbook.create_sheet("Chỉ nhận")
    receiving["A1"] = "Đơn vị chỉ nhận văn bản qua mạng, chưa gửi văn bản đi qua mạng"
    receiving["A1"].font = Font(bold=True)
    _header(receiving, 3, ONLY_RECEIVING_HEADER)
    for line, row in enumerate(report.only_receiving(), start=4):
        receiving_values: list[CellValue] = [
            row.unit_code,
            unit_label(row),
            level_label(row),
            row.incoming_over_network,
        ]
        for column, value in enumerate(receiving_values, start=1):
            receiving.cell(row=line, column=column, value=value)
    receiving.column_dimensions["A"].width = 16
    receiving.column_dimensions["B"].width = 40
    workbook.save(path)


def _xlsx_charts(report: Report, sheet: Worksheet) -> None:
    """One chart per level: the two network shares as bars, the 2025 target as a line."""
    data_row = 12
    sheet.cell(row=data_row, column=1, value="Dữ liệu biểu đồ")
    for index, level in enumerate(LEVELS):
        row = report.levels[level]
        top = data_row + 1 + index * 4
        chart_values: list[tuple[CellValue, ...]] = [
            ("", "Tỷ lệ qua mạng", "Mục tiêu 2025"),
            ("Văn bản đến", ratio(row.incoming_network_share) or 0.0, TARGETS_2025[level] / 100),
            ("Văn bản đi", ratio(row.outgoing_network_share) or 0.0, TARGETS_2025[level] / 100),
        ]
        for offset, line in enumerate(chart_values):
            for column, value in enumerate(line, start=1):
                cell = sheet.cell(row=top + offset, column=column, value=value)
                if offset and column > 1:
                    cell.number_format = _PERCENT
        bars = BarChart()
        bars.title = f"{LEVEL_LABELS[level]}: tỷ lệ qua mạng và mục tiêu 2025"
        bars.y_axis.title = "%"
        bars.y_axis.scaling.min = 0
        bars.y_axis.scaling.max = 1
        bars.y_axis.number_format = "0%"
        categories = Reference(sheet, min_col=1, min_row=top + 1, max_row=top + 2)
        bars.add_data(
            Reference(sheet, min_col=2, min_row=top, max_row=top + 2),
            titles_from_data=True,
        )
        bars.set_categories(categories)
        target = LineChart()
        target.add_data(
            Reference(sheet, min_col=3, min_row=top, max_row=top + 2),
            titles_from_data=True,
        )
        target.set_categories(categories)
        bars += target
        bars.height, bars.width = 7, 9
        anchor = f"{get_column_letter(1 + index * 6)}{data_row + 14}"
        sheet.add_chart(bars, anchor)


# --- PDF ----------------------------------------------------------------------------------


def _register_fonts() -> None:
    if _FONT in pdfmetrics.getRegisteredFontNames():
        return
    for name, weight in ((_FONT, "normal"), (_FONT_BOLD, "bold")):
        path = font_manager.findfont(
            font_manager.FontProperties(family="DejaVu Sans", weight=weight),
            fallback_to_default=False,
        )
        pdfmetrics.registerFont(TTFont(name, path))


def chart_png(report: Report) -> bytes:
    """A chart per level: incoming and outgoing network shares against the 2025 target."""
    figure, axes = plt.subplots(1, len(LEVELS), figsize=(10, 3.4), sharey=True)
    try:
        for ax, level in zip(axes, LEVELS, strict=True):
            row = report.levels[level]
            shares = [
                100 * (ratio(row.incoming_network_share) or 0.0),
                100 * (ratio(row.outgoing_network_share) or 0.0),
            ]
            bars = ax.bar(["Văn bản đến", "Văn bản đi"], shares, color=["#1f77b4", "#ff7f0e"])
            ax.bar_label(
                bars,
                labels=[vn_share(row.incoming_network_share), vn_share(row.outgoing_network_share)],
                padding=2,
                fontsize=9,
            )
            target = TARGETS_2025[level]
            ax.axhline(
                target,
                color="#c00000",
                linestyle="--",
                linewidth=1.5,
                label=f"Mục tiêu 2025: {target}%",
            )
            ax.legend(loc="upper right", fontsize=8, frameon=False)
            ax.set_title(LEVEL_LABELS[level])
            ax.set_ylim(0, 122)
        axes[0].set_ylabel("Tỷ lệ qua mạng (%)")
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=160)
        return buffer.getvalue()
    finally:
        plt.close(figure)


def _table(data: list[list[object]], widths: list[float], numeric_from: int) -> Table:
    header = ParagraphStyle("header", fontName=_FONT_BOLD, fontSize=8.5, leading=10)
    data = [[Paragraph(str(name), header) for name in data[0]], *data[1:]]
    grid = Table(data, colWidths=widths, repeatRows=1, hAlign="LEFT")
    grid.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), _FONT, 8.5),
                ("FONT", (0, 0), (-1, 0), _FONT_BOLD, 8.5),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde6f2")),
                ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("ALIGN", (numeric_from, 1), (-1, -1), "RIGHT"),
            ]
        )
    )
    return grid


def write_pdf(report: Report, path: Path) -> None:
    """A4 landscape: title, the province's table, the charts; then the signed shares per unit
    and the units that only receive."""
    _register_fonts()
    title = ParagraphStyle("title", fontName=_FONT_BOLD, fontSize=14, leading=18, alignment=1)
    subtitle = ParagraphStyle("subtitle", fontName=_FONT, fontSize=11, leading=14, alignment=1)
    heading = ParagraphStyle("heading", fontName=_FONT_BOLD, fontSize=11, leading=14)
    body = ParagraphStyle("body", fontName=_FONT, fontSize=9, leading=12)

    summary: list[list[object]] = [list(SUMMARY_HEADER)]
    summary += [
        [
            label,
            vn_number(row.incoming_total),
            vn_number(row.incoming_over_network),
            vn_share(row.incoming_network_share),
            vn_number(row.outgoing_total),
            vn_number(row.outgoing_over_network),
            vn_share(row.outgoing_network_share),
            vn_number(row.units),
            vn_number(row.units_connected),
            vn_number(row.units_only_receiving),
        ]
        for label, row in report.summary_rows()
    ]
    scope = report.scope
    story: list[Flowable] = [
        Paragraph(TITLE, title),
        Paragraph(period_label(report.period), subtitle),
        Spacer(1, 6 * mm),
        Paragraph("1. Văn bản đến, văn bản đi trao đổi qua mạng", heading),
        Spacer(1, 2 * mm),
        _table(summary, [32 * mm] + [24.5 * mm] * 9, 1),
        Spacer(1, 3 * mm),
        Paragraph(
            f"Toàn hệ thống có {vn_number(scope.incoming_total)} văn bản đến, có "
            f"{vn_number(scope.incoming_over_network)} văn bản đến được tiếp nhận qua mạng, đạt "
            f"{vn_share(scope.incoming_network_share)}; {vn_number(scope.outgoing_total)} văn "
            f"bản đi, có {vn_number(scope.outgoing_over_network)} văn bản đi được trao đổi qua "
            f"mạng, đạt {vn_share(scope.outgoing_network_share)}.",
            body,
        ),
        Spacer(1, 3 * mm),
        Paragraph("2. Tỷ lệ qua mạng theo cấp so với mục tiêu năm 2025", heading),
        Image(io.BytesIO(chart_png(report)), width=250 * mm, height=85 * mm),
        PageBreak(),
        Paragraph("3. Văn bản đi qua mạng được ký số, theo đơn vị", heading),
        Spacer(1, 2 * mm),
    ]
    signing = report.signing_units()
    if signing:
        rows: list[list[object]] = [list(SIGNATURE_HEADER)]
        rows += [
            [
                row.unit_code,
                Paragraph(unit_label(row), body),
                vn_number(row.outgoing_over_network),
                vn_number(row.outgoing_personal_signed),
                vn_share(row.personal_signature_share),
                vn_number(row.outgoing_organisation_signed),
                vn_share(row.organisation_signature_share),
            ]
            for row in signing
        ]
        story.append(_table(rows, [30 * mm, 90 * mm] + [28 * mm] * 5, 2))
    else:
        story.append(Paragraph("Không có đơn vị nào gửi văn bản đi qua mạng trong kỳ.", body))
    story += [Spacer(1, 5 * mm), Paragraph("4. Đơn vị chỉ nhận văn bản qua mạng", heading)]
    receiving = report.only_receiving()
    if receiving:
        rows = [list(ONLY_RECEIVING_HEADER)]
        rows += [
            [
                row.unit_code,
                Paragraph(unit_label(row), body),
                level_label(row),
                vn_number(row.incoming_over_network),
            ]
            for row in receiving
        ]
        story.append(_table(rows, [30 * mm, 120 * mm, 30 * mm, 30 * mm], 3))
    else:
        story.append(Paragraph("Không có đơn vị chỉ nhận văn bản trong kỳ.", body))
    document = SimpleDocTemplate(
        str(path),
        pagesize=landscape(A4),
        leftMargin=12 * mm,
        rightMargin=12 * mm,
        topMargin=12 * mm,
        bottomMargin=12 * mm,
        title=f"{TITLE} - {period_label(report.period)}",
        author="lienthong",
    )
    document.build(story)
