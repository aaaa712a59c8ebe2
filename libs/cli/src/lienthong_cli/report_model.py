"""The monthly report's figures as the province prints them: labels in Vietnamese, numbers
with a dot for thousands, shares with one decimal and a decimal comma (seed 004), and the rows
grouped for the document (report_document.py writes them as XLSX and PDF).

    report = Report.from_rows("2026-11", reply.rows)
    vn_share(report.scope.incoming_network_share)     # "75,1%"
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from lienthong.reporting.v1 import reporting_service_pb2 as pb

__all__ = [
    "LEVELS",
    "LEVEL_LABELS",
    "ONLY_RECEIVING_HEADER",
    "SIGNATURE_HEADER",
    "SUMMARY_HEADER",
    "TARGETS_2025",
    "TITLE",
    "Report",
    "level_label",
    "period_label",
    "ratio",
    "unit_label",
    "vn_number",
    "vn_share",
]

LEVELS = (
    pb.ReportLevel.REPORT_LEVEL_PROVINCE,
    pb.ReportLevel.REPORT_LEVEL_DISTRICT,
    pb.ReportLevel.REPORT_LEVEL_COMMUNE,
)
LEVEL_LABELS = {
    pb.ReportLevel.REPORT_LEVEL_UNSPECIFIED: "Toàn hệ thống",
    pb.ReportLevel.REPORT_LEVEL_PROVINCE: "Cấp tỉnh",
    pb.ReportLevel.REPORT_LEVEL_DISTRICT: "Cấp huyện",
    pb.ReportLevel.REPORT_LEVEL_COMMUNE: "Cấp xã",
}
# Seed 001: the share of work handled online the province aims at for 2025, per level (%).
TARGETS_2025 = {
    pb.ReportLevel.REPORT_LEVEL_PROVINCE: 90,
    pb.ReportLevel.REPORT_LEVEL_DISTRICT: 80,
    pb.ReportLevel.REPORT_LEVEL_COMMUNE: 60,
}
TITLE = "BÁO CÁO TÌNH HÌNH TRAO ĐỔI VĂN BẢN ĐIỆN TỬ QUA MẠNG"
SUMMARY_HEADER = (
    "Phạm vi",
    "Văn bản đến",
    "Đến qua mạng",
    "Tỷ lệ đến qua mạng",
    "Văn bản đi",
    "Đi qua mạng",
    "Tỷ lệ đi qua mạng",
    "Số đơn vị",
    "Đơn vị kết nối",
    "Đơn vị chỉ nhận",
)
SIGNATURE_HEADER = (
    "Mã định danh",
    "Đơn vị",
    "Đi qua mạng",
    "Ký số cá nhân",
    "Tỷ lệ ký số cá nhân",
    "Ký số tổ chức",
    "Tỷ lệ ký số tổ chức",
)
ONLY_RECEIVING_HEADER = ("Mã định danh", "Đơn vị", "Cấp", "Đến qua mạng")


def period_label(period: str) -> str:
    """ "2026-11" -> "Tháng 11/2026"; "2026" -> "Năm 2026"; "2026-11-20" -> "Ngày 20/11/2026"."""
    parts = period.split("-")
    if len(parts) == 1:
        return f"Năm {parts[0]}"
    if len(parts) == 2:
        return f"Tháng {parts[1]}/{parts[0]}"
    return f"Ngày {parts[2]}/{parts[1]}/{parts[0]}"


def vn_number(value: int) -> str:
    """45922 -> "45.922" (Vietnamese groups thousands with dots)."""
    return f"{value:,}".replace(",", ".")


def vn_share(share: pb.Share) -> str:
    """One decimal, rounded half up as the province prints it, with a decimal comma: "75,1%";
    "—" when nothing was counted."""
    if share.denominator == 0:
        return "—"
    percent = (Decimal(share.numerator) * 100 / Decimal(share.denominator)).quantize(
        Decimal("0.1"), rounding=ROUND_HALF_UP
    )
    return f"{percent}%".replace(".", ",")


def ratio(share: pb.Share) -> float | None:
    return share.numerator / share.denominator if share.denominator else None


@dataclass
class Report:
    period: str
    scope: pb.AdoptionRow
    levels: dict[int, pb.AdoptionRow]
    units: list[pb.AdoptionRow] = field(default_factory=list)

    @classmethod
    def from_rows(cls, period: str, rows: Iterable[pb.AdoptionRow]) -> Report:
        scope: pb.AdoptionRow | None = None
        levels: dict[int, pb.AdoptionRow] = {}
        units: list[pb.AdoptionRow] = []
        for row in rows:
            if row.kind == pb.RowKind.ROW_KIND_SCOPE:
                scope = row
            elif row.kind == pb.RowKind.ROW_KIND_LEVEL:
                levels[row.level] = row
            elif row.kind == pb.RowKind.ROW_KIND_UNIT:
                units.append(row)
        if scope is None:
            raise ValueError("the report has no scope row (was it asked for unit codes only?)")
        for level in LEVELS:
            levels.setdefault(level, pb.AdoptionRow(kind=pb.RowKind.ROW_KIND_LEVEL, level=level))
        return cls(period, scope, levels, units)

    def summary_rows(self) -> list[tuple[str, pb.AdoptionRow]]:
        """The province's table: the whole system, then each level."""
        whole = LEVEL_LABELS[pb.ReportLevel.REPORT_LEVEL_UNSPECIFIED]
        return [(whole, self.scope)] + [
            (LEVEL_LABELS[level], self.levels[level]) for level in LEVELS
        ]

    def signing_units(self) -> list[pb.AdoptionRow]:
        """Units that sent over the network, the best personal-signature share first."""
        sent = [row for row in self.units if row.outgoing_over_network > 0]
        return sorted(
            sent,
            key=lambda row: (-(ratio(row.personal_signature_share) or 0.0), row.unit_code),
        )

    def only_receiving(self) -> list[pb.AdoptionRow]:
        return [row for row in self.units if row.units_only_receiving > 0]


def unit_label(row: pb.AdoptionRow) -> str:
    return row.name or row.unit_code


def level_label(row: pb.AdoptionRow) -> str:
    return LEVEL_LABELS[row.level] if row.level in LEVELS else ""
