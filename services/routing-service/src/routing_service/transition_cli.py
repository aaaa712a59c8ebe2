"""Plan the move to two tiers against the running registry: dry run, CSV for approval.

    routing-service-transition --mapping phu_tho_2025.csv --province 000.00.00.H43 \
        --merged 000.00.00.H23 --merged 000.00.00.H60 --effective 2025-07-01 \
        [--pending pending.csv | --document 127.0.0.1:50051] [--out plan.csv] \
        [--endpoint 127.0.0.1:50052]

Reads the whole registry (ListUnits), builds the plan (routing_service.transition), prints
the dry run and every problem (by the plan file's line and field); writes the plan file only
when there is none. Apply the approved file with ``lienthong units import plan.csv``.
``--pending`` is a ``code,count`` CSV of deliveries still waiting at each unit; ``--document``
asks document-service instead (CountPendingDeliveries, for the units the plan closes).
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sys
from pathlib import Path

import grpc

from lienthong.document.v1 import document_service_pb2 as doc_pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.routing.v1 import routing_service_pb2 as pb
from lienthong.routing.v1.routing_service_pb2_grpc import RoutingServiceStub
from lienthong_kit.authz import IDENTITY_HEADER
from routing_service.registry import date_problem
from routing_service.transition import (
    plan_csv,
    plan_problems,
    plan_transition,
    read_mapping,
    summary,
)

__all__ = ["main"]

_ROW = re.compile(r"^rows\[(\d+)\]\.(.*)$")


# the registry is read as an observer (dev auth, no TLS)
READER = ((IDENTITY_HEADER, "operator/observer/routing-service-transition"),)


def _registry(endpoint: str) -> list[pb.Unit]:
    units: list[pb.Unit] = []
    with grpc.insecure_channel(endpoint) as channel:
        stub = RoutingServiceStub(channel)
        token = ""
        while True:
            reply = stub.ListUnits(
                pb.ListUnitsRequest(page_size=500, page_token=token), metadata=READER
            )
            units.extend(reply.units)
            token = reply.next_page_token
            if not token:
                return units


def _pending(path: Path | None) -> dict[str, int]:
    if path is None:
        return {}
    return {
        row["code"].strip(): int(row["count"])
        for row in csv.DictReader(io.StringIO(path.read_text("utf-8")))
    }


def _pending_at(endpoint: str, codes: list[str]) -> dict[str, int]:
    """Deliveries not yet final to each of ``codes``, as document-service counts them."""
    counts: dict[str, int] = {}
    with grpc.insecure_channel(endpoint) as channel:
        stub = DocumentServiceStub(channel)
        for start in range(0, len(codes), 100):  # a few queries a unit: well within a call
            reply = stub.CountPendingDeliveries(
                doc_pb.CountPendingDeliveriesRequest(unit_codes=codes[start : start + 100]),
                metadata=READER,
                timeout=60,
            )
            counts.update((unit.unit_code, unit.pending) for unit in reply.units if unit.pending)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mapping", type=Path, required=True)
    parser.add_argument("--province", required=True)
    parser.add_argument("--merged", action="append", default=[])
    parser.add_argument("--effective", required=True)
    pending_from = parser.add_mutually_exclusive_group()
    pending_from.add_argument("--pending", type=Path)
    pending_from.add_argument("--document", help="document-service's endpoint")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--endpoint", default="127.0.0.1:50052")
    args = parser.parse_args(argv)
    problem = date_problem(args.effective)
    if problem:
        print(f"--effective: {problem}", file=sys.stderr)
        return 2
    communes, mapping_problems = read_mapping(args.mapping.read_text("utf-8"))
    if mapping_problems:
        print("\n".join(f"{args.mapping}: {p}" for p in mapping_problems), file=sys.stderr)
        return 1
    units = _registry(args.endpoint)
    try:
        plan = plan_transition(
            units, communes, province=args.province, merged=args.merged, effective=args.effective
        )
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    if args.document:
        closing = [row.unit.code for row in plan if row.action == "close"]
        pending = _pending_at(args.document, closing)
    else:
        pending = _pending(args.pending)
    print("\n".join(summary(plan, pending=pending)))
    problems = plan_problems(plan, units, pending=pending)
    for field, text in problems:
        match = _ROW.match(field)
        where = f"line {int(match.group(1)) + 2}: {match.group(2)}" if match else field
        print(f"{where}: {text}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problems: no plan written", file=sys.stderr)
        return 1
    if args.out is not None:
        args.out.write_text(plan_csv(plan), "utf-8")
        print(f"plan written to {args.out} ({len(plan)} rows)")
    return 0
