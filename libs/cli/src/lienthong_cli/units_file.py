"""Registry files: read units from CSV, JSON or XLSX (every problem kept with its row) and
write them back in the same forms.

    rows = read_units(Path("units.xlsx"))        # [Row(where="row 3", unit=..., problems=[])]
    write_units(Path("export.csv"), units)

CSV and XLSX: a header row, then one unit per row, columns ``code, code_2020, name, level,
parent_code, active, valid_from, valid_until, successor_code, successor_codes (several,
separated by spaces), administrative_code, contact_name, contact_email, contact_phone`` (only
``code``, ``name``, ``level`` required; ``level`` is ``province``, ``department``, ``district``
or ``commune``; ``active`` is ``true``/``false``, default true; other columns, such as a
transition plan's ``action``, are ignored). JSON: a list of Unit objects in the protobuf JSON
form.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from lienthong.common.v1.common_pb2 import UnitLevel
from lienthong.routing.v1 import routing_service_pb2 as pb

__all__ = ["COLUMNS", "FORMATS", "LEVELS", "Row", "read_units", "write_units"]

COLUMNS = (
    "code",
    "code_2020",
    "name",
    "level",
    "parent_code",
    "active",
    "valid_from",
    "valid_until",
    "successor_code",
    "successor_codes",
    "administrative_code",
    "contact_name",
    "contact_email",
    "contact_phone",
)
LEVELS = {
    "province": UnitLevel.UNIT_LEVEL_PROVINCE,
    "department": UnitLevel.UNIT_LEVEL_DEPARTMENT,
    "district": UnitLevel.UNIT_LEVEL_DISTRICT,
    "commune": UnitLevel.UNIT_LEVEL_COMMUNE,
}
LEVEL_NAMES = {value: name for name, value in LEVELS.items()}
FORMATS = (".csv", ".json", ".xlsx")


@dataclass
class Row:
    """One unit of a file: where it is ("line 3", "item 0", "row 3"), and what was wrong."""

    where: str
    unit: pb.Unit
    problems: list[str] = field(default_factory=list)


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path.name}: unknown format {suffix!r}; use {', '.join(FORMATS)}")
    return suffix


def read_units(path: Path) -> list[Row]:
    suffix = _format(path)
    if suffix == ".json":
        return _from_json(path.read_text("utf-8-sig"))
    if suffix == ".xlsx":
        return _from_records(_xlsx_records(path), "row")
    reader = csv.DictReader(io.StringIO(path.read_text("utf-8-sig")))
    return _from_records(((reader.line_num, record) for record in reader), "line")


def _xlsx_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import openpyxl  # only for .xlsx files: it takes a while to import

    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = workbook.active
        if sheet is None:
            return
        lines = sheet.iter_rows(values_only=True)
        header = [str(cell or "").strip().lower() for cell in next(lines, ())]
        for number, values in enumerate(lines, start=2):
            if all(value in (None, "") for value in values):
                continue
            yield number, dict(zip(header, values, strict=False))
    finally:
        workbook.close()


def _from_records(records: Iterable[tuple[int, dict[str, Any]]], noun: str) -> list[Row]:
    rows: list[Row] = []
    for number, record in records:

        def get(name: str, record: dict[str, Any] = record) -> str:
            value = record.get(name)
            if isinstance(value, bool):
                return "true" if value else "false"
            return "" if value is None else str(value).strip()

        problems: list[str] = []
        level = LEVELS.get(get("level").lower(), UnitLevel.UNIT_LEVEL_UNSPECIFIED)
        if get("level") and level == UnitLevel.UNIT_LEVEL_UNSPECIFIED:
            problems.append(f"level: {get('level')!r} is not one of {', '.join(LEVELS)}")
        active = get("active").lower() or "true"
        if active not in ("true", "false"):
            problems.append(f"active: {get('active')!r} is not true or false")
        unit = pb.Unit(
            code=get("code"),
            code_2020=get("code_2020"),
            name=get("name"),
            level=level,
            parent_code=get("parent_code"),
            active=active == "true",
            valid_from=get("valid_from")[:10],
            valid_until=get("valid_until")[:10],
            successor_code=get("successor_code"),
            successor_codes=get("successor_codes").split(),
            administrative_code=get("administrative_code"),
        )
        if get("contact_name") or get("contact_email") or get("contact_phone"):
            unit.contacts.add(
                name=get("contact_name"), email=get("contact_email"), phone=get("contact_phone")
            )
        rows.append(Row(f"{noun} {number}", unit, problems))
    return rows


def _from_json(text: str) -> list[Row]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(items, list):
        raise ValueError("a JSON registry is a list of units")
    rows: list[Row] = []
    for index, item in enumerate(items):
        unit = pb.Unit()
        try:
            json_format.ParseDict(item, unit)
        except json_format.ParseError as exc:
            rows.append(Row(f"item {index}", unit, [str(exc)]))
            continue
        rows.append(Row(f"item {index}", unit))
    return rows


def _flat(unit: pb.Unit) -> list[str]:
    contact = unit.contacts[0] if unit.contacts else pb.Contact()
    return [
        unit.code,
        unit.code_2020,
        unit.name,
        LEVEL_NAMES.get(unit.level, ""),
        unit.parent_code,
        "true" if unit.active else "false",
        unit.valid_from,
        unit.valid_until,
        unit.successor_code,
        " ".join(unit.successor_codes),
        unit.administrative_code,
        contact.name,
        contact.email,
        contact.phone,
    ]


def write_units(path: Path, units: list[pb.Unit]) -> None:
    suffix = _format(path)
    if suffix == ".json":
        items = [
            json_format.MessageToDict(unit, preserving_proto_field_name=False) for unit in units
        ]
        path.write_text(json.dumps(items, ensure_ascii=False, indent=2) + "\n", "utf-8")
    elif suffix == ".xlsx":
        import openpyxl

        workbook = openpyxl.Workbook()
        sheet = workbook.active
        if sheet is None:
            raise RuntimeError("openpyxl created a workbook without a sheet")
        sheet.title = "Đơn vị"
        sheet.append(list(COLUMNS))
        for unit in units:
            sheet.append(_flat(unit))
        workbook.save(path)
    else:
        # utf-8-sig: Excel opens a CSV with a BOM as UTF-8 and shows the Vietnamese names right
        with path.open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            writer.writerows(_flat(unit) for unit in units)
