"""The ReportingService gRPC API, reading the faust tables of this worker."""

from __future__ import annotations

from typing import Any

from grpc import aio

from lienthong.reporting.v1 import reporting_service_pb2 as pb
from lienthong.reporting.v1.reporting_service_pb2_grpc import ReportingServiceServicer
from lienthong_kit.errors import FieldViolation, InvalidArgument
from reporting_service.app import ReportingApp
from reporting_service.folding import INCOMING_NET, OUTGOING_NET, days_of_period

__all__ = ["ReportingServicer"]

MAX_UNITS = 500


class ReportingServicer(ReportingServiceServicer):
    def __init__(self, reporting: ReportingApp) -> None:
        self._reporting = reporting

    async def GetAdoptionReport(
        self, request: pb.GetAdoptionReportRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.GetAdoptionReportResponse:
        days = days_of_period(request.period)
        units = list(dict.fromkeys(request.unit_codes))
        if not units or len(units) > MAX_UNITS:
            raise InvalidArgument(
                [FieldViolation("unit_codes", f"give between 1 and {MAX_UNITS} unit codes")]
            )
        response = pb.GetAdoptionReportResponse()
        for unit in units:
            incoming = sum(self._reporting.count(unit, day, INCOMING_NET) for day in days)
            outgoing = sum(self._reporting.count(unit, day, OUTGOING_NET) for day in days)
            # Paper documents are not counted yet, so the totals are the network counts.
            response.rows.add(
                unit_code=unit,
                period=request.period,
                incoming_total=incoming,
                incoming_over_network=incoming,
                outgoing_total=outgoing,
                outgoing_over_network=outgoing,
            )
        return response
