"""The ReportingService gRPC API, answering from this worker's counts (consumers.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from grpc import aio

from lienthong.reporting.v1 import reporting_service_pb2 as pb
from lienthong.reporting.v1.reporting_service_pb2_grpc import ReportingServiceServicer
from lienthong_kit.authz import Kind, current_identity
from lienthong_kit.errors import PermissionDenied, Unavailable
from reporting_service.consumers import ReportingApp
from reporting_service.report import check_request, report_rows

__all__ = ["ReportingServicer"]

Request = pb.GetAdoptionReportRequest | pb.WatchAdoptionRequest


class ReportingServicer(ReportingServiceServicer):
    def __init__(self, reporting: ReportingApp, watch_interval: float = 0.5) -> None:
        self._reporting = reporting
        self._watch_interval = watch_interval

    def _rows(self, request: Request) -> list[pb.AdoptionRow]:
        _own_rows_only(request)
        check_request(request.period, request.unit_codes)  # a bad request is told so at once
        if not self._reporting.ready.is_set():
            raise Unavailable("the counts are being rebuilt from the changelog; retry shortly")
        if not self._reporting.registry_read.is_set():
            # a scope or unit not read yet would be refused as unknown, or its rows misplaced
            raise Unavailable(
                "the province's registry is still being read; retry shortly",
                reason="REGISTRY_LOADING",
            )
        return report_rows(
            self._reporting.registry,
            self._reporting.counts,
            request.period,
            request.unit_codes,
            request.scope,
        )

    async def GetAdoptionReport(
        self, request: pb.GetAdoptionReportRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.GetAdoptionReportResponse:
        return pb.GetAdoptionReportResponse(rows=self._rows(request))

    async def WatchAdoption(
        self, request: pb.WatchAdoptionRequest, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.WatchAdoptionResponse]:
        _own_rows_only(request)
        check_request(request.period, request.unit_codes)
        await self._reporting.ready.wait()
        await self._reporting.registry_read.wait()
        sent: dict[tuple[int, int, str], bytes] = {}
        seen: tuple[int, int] | None = None
        while True:
            current = (self._reporting.counts.version, len(self._reporting.registry))
            if current != seen:
                seen = current
                changed = []
                for row in self._rows(request):
                    identity = (row.kind, row.level, row.unit_code)
                    encoded = row.SerializeToString(deterministic=True)
                    if sent.get(identity) != encoded:
                        sent[identity] = encoded
                        changed.append(row)
                if changed:
                    yield pb.WatchAdoptionResponse(rows=changed)
            await asyncio.sleep(self._watch_interval)


def _own_rows_only(request: Request) -> None:
    """A unit reads its own row; the province's table and other units' rows are for
    observers (the access table admits both kinds)."""
    caller = current_identity()
    if caller.kind is Kind.UNIT and list(request.unit_codes) != [caller.name]:
        raise PermissionDenied(
            f"a unit reads only its own row: ask with unit_codes [{caller.name}]; the province's"
            " table and other units' rows need operator role observer",
            reason="OWN_ROWS_ONLY",
        )
