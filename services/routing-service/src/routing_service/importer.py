"""Import a registry file (CSV or JSON) through ImportRegistry, naming bad rows by line.

    routing-service-import units.csv [--endpoint 127.0.0.1:50052]

CSV: a header line, then one unit per line, columns ``code, code_2020, name, level,
parent_code, active, valid_from, valid_until, successor_code, successor_codes (several,
separated by spaces), administrative_code, contact_name, contact_email, contact_phone``
(only ``code``, ``name``, ``level`` are required; ``level`` is ``province``, ``department``,
``district`` or ``commune``; ``active`` is ``true``/``false``, default true).
JSON: a list of Unit objects in the protobuf JSON form (``{"code": ..., "level":
"UNIT_LEVEL_COMMUNE", "parentCode": ...}``). The server validates every row before applying
any; its ``rows[i].field`` violations are printed against the file's line (CSV) or item (JSON).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from pathlib import Path

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from lienthong.common.v1.common_pb2 import UnitLevel
from lienthong.routing.v1 import routing_service_pb2 as pb
from lienthong.routing.v1.routing_service_pb2_grpc import RoutingServiceStub
from lienthong_kit.authz import IDENTITY_HEADER

__all__ = ["Row", "main", "parse_csv", "parse_json"]

# A parsed row: where it was in the file ("line 3", "item 0") and the unit, or the problems.
Row = tuple[str, pb.Unit, list[str]]

_LEVELS = {
    "province": UnitLevel.UNIT_LEVEL_PROVINCE,
    "department": UnitLevel.UNIT_LEVEL_DEPARTMENT,
    "district": UnitLevel.UNIT_LEVEL_DISTRICT,
    "commune": UnitLevel.UNIT_LEVEL_COMMUNE,
}
_ROW_FIELD = re.compile(r"^rows\[(\d+)\]\.?(.*)$")


def parse_csv(text: str) -> list[Row]:
    rows: list[Row] = []
    reader = csv.DictReader(io.StringIO(text))
    for record in reader:
        where = f"line {reader.line_num}"
        problems: list[str] = []

        def get(name: str, record: dict[str, str | None] = record) -> str:
            return (record.get(name) or "").strip()

        level = _LEVELS.get(get("level").lower(), UnitLevel.UNIT_LEVEL_UNSPECIFIED)
        if get("level") and level == UnitLevel.UNIT_LEVEL_UNSPECIFIED:
            problems.append(f"level: {get('level')!r} is not one of {', '.join(_LEVELS)}")
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
            valid_from=get("valid_from"),
            valid_until=get("valid_until"),
            successor_code=get("successor_code"),
            successor_codes=get("successor_codes").split(),
            administrative_code=get("administrative_code"),
        )
        if get("contact_name") or get("contact_email") or get("contact_phone"):
            unit.contacts.add(
                name=get("contact_name"), email=get("contact_email"), phone=get("contact_phone")
            )
        rows.append((where, unit, problems))
    return rows


def parse_json(text: str) -> list[Row]:
    items = json.loads(text)
    if not isinstance(items, list):
        raise ValueError("a JSON registry is a list of units")
    rows: list[Row] = []
    for i, item in enumerate(items):
        unit = pb.Unit()
        try:
            json_format.ParseDict(item, unit)
        except json_format.ParseError as exc:
            rows.append((f"item {i}", unit, [str(exc)]))
            continue
        rows.append((f"item {i}", unit, []))
    return rows


def explain(error: grpc.RpcError, rows: list[Row]) -> list[str]:
    """The server's ``rows[i].field`` violations against the file's lines."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return [str(error)]
    out: list[str] = []
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            for violation in bad_request.field_violations:
                match = _ROW_FIELD.match(violation.field)
                if match and int(match.group(1)) < len(rows):
                    where = rows[int(match.group(1))][0]
                    out.append(f"{where}: {match.group(2)}: {violation.description}")
                else:
                    out.append(f"{violation.field}: {violation.description}")
    return out or [status.message]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Import a unit registry file (CSV or JSON).")
    parser.add_argument("file", type=Path)
    parser.add_argument("--endpoint", default="127.0.0.1:50052")
    parser.add_argument(
        "--identity",
        default="operator/registry-admin/routing-service-import",
        help="who imports (dev auth, no TLS); with mTLS use the `lienthong units import` CLI",
    )
    args = parser.parse_args(argv)
    text = args.file.read_text("utf-8")
    rows = parse_json(text) if args.file.suffix.lower() == ".json" else parse_csv(text)
    local = [f"{where}: {problem}" for where, _, problems in rows for problem in problems]
    if local:
        print("\n".join(local), file=sys.stderr)
        return 1
    with grpc.insecure_channel(args.endpoint) as channel:
        try:
            reply = RoutingServiceStub(channel).ImportRegistry(
                (pb.ImportRegistryRequest(unit=unit) for _, unit, _ in rows),
                metadata=((IDENTITY_HEADER, args.identity),),
                timeout=120,
            )
        except grpc.RpcError as error:
            print("\n".join(explain(error, rows)), file=sys.stderr)
            return 1
    print(f"imported {reply.applied} units ({reply.created} new)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
