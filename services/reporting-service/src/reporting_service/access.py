"""Who may call reporting-service's RPCs (docs/security.md shows this table as the matrix).

A unit reads its own rows; an observer reads any scope of the province."""

from __future__ import annotations

from lienthong.reporting.v1 import reporting_service_pb2
from lienthong_kit.authz import AccessTable, Role, either, operators, units

REPORT = either(
    units("the calling unit's own rows"),
    operators(Role.OBSERVER, scope="any scope of the province"),
)

ACCESS = AccessTable.of(
    reporting_service_pb2,
    "ReportingService",
    {"GetAdoptionReport": REPORT, "WatchAdoption": REPORT},
)
