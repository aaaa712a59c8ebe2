"""The RoutingService API: validate, ask the registry, answer in protobuf."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from grpc import aio

from lienthong.routing.v1 import routing_service_pb2 as pb
from lienthong.routing.v1.routing_service_pb2_grpc import RoutingServiceServicer
from lienthong_kit.errors import FieldViolation, InvalidArgument, NotFound, Violations
from lienthong_kit.paging import decode_key, encode_key, page_size
from routing_service.registry import MAX_IMPORT_ROWS, Registry, date_problem, today
from routing_service.resolve import resolve

__all__ = ["RoutingServicer"]


class RoutingServicer(RoutingServiceServicer):
    def __init__(self, registry: Registry, *, forward_closed: bool = False) -> None:
        self._registry = registry
        self._forward_closed = forward_closed

    async def UpsertUnit(
        self, request: pb.UpsertUnitRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.UpsertUnitResponse:
        return pb.UpsertUnitResponse(unit=await self._registry.upsert(request.unit))

    async def GetUnit(
        self, request: pb.GetUnitRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.GetUnitResponse:
        unit = self._registry.index.get(request.code)
        if unit is None:
            raise NotFound(f"code: no unit {request.code!r} in the registry")
        return pb.GetUnitResponse(unit=unit)

    async def ListUnits(
        self, request: pb.ListUnitsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ListUnitsResponse:
        size = page_size(request.page_size, default=100, maximum=500)
        after = decode_key(request.page_token) or ""
        index = self._registry.index
        if request.parent_code:
            parent = index.get(request.parent_code)
            codes = index.children(parent.code) if parent is not None else []
        else:
            codes = index.codes()
        page: list[pb.Unit] = []
        more = False
        for unit in index.units(code for code in codes if code > after):
            if request.level and unit.level != request.level:
                continue
            if request.active == pb.ACTIVE_FILTER_ACTIVE and not unit.active:
                continue
            if request.active == pb.ACTIVE_FILTER_INACTIVE and unit.active:
                continue
            if len(page) == size:
                more = True
                break
            page.append(unit)
        response = pb.ListUnitsResponse(units=page)
        if more:
            response.next_page_token = encode_key(page[-1].code)
        return response

    async def ImportRegistry(
        self,
        request_iterator: AsyncIterator[pb.ImportRegistryRequest],
        context: aio.ServicerContext[Any, Any],
    ) -> pb.ImportRegistryResponse:
        rows: list[pb.Unit] = []
        async for request in request_iterator:
            if len(rows) == MAX_IMPORT_ROWS:
                raise InvalidArgument(
                    [FieldViolation("rows", f"at most {MAX_IMPORT_ROWS} rows per import")]
                )
            rows.append(request.unit)
        if not rows:
            raise InvalidArgument([FieldViolation("rows", "no rows to import")])
        applied, created = await self._registry.import_rows(rows)
        return pb.ImportRegistryResponse(applied=applied, created=created)

    async def CloseUnit(
        self, request: pb.CloseUnitRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.CloseUnitResponse:
        unit = await self._registry.close(
            request.code,
            successor_code=request.successor_code,
            closed_on=request.closed_on,
            successor_codes=request.successor_codes,
        )
        return pb.CloseUnitResponse(unit=unit)

    async def ResolveRecipients(
        self, request: pb.ResolveRecipientsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ResolveRecipientsResponse:
        v = Violations()
        if request.as_of:
            problem = date_problem(request.as_of)
            if problem:
                v.add("as_of", problem)
        v.require(
            bool(request.recipients.unit_codes or request.recipients.scopes),
            "recipients",
            "name at least one unit code or scope",
        )
        v.raise_if_any()
        resolution = resolve(
            self._registry.index,
            sender_code=request.sender_code,
            recipients=request.recipients,
            as_of=request.as_of or today(),
            forward_closed=self._forward_closed,
        )
        return pb.ResolveRecipientsResponse(
            unit_codes=resolution.unit_codes,
            bounces=[pb.Bounce(recipient_code=c, reason=r) for c, r in resolution.bounces],
            forwards=[
                pb.Forward(recipient_code=c, successor_code=s, reason=r)
                for c, s, r in resolution.forwards
            ],
        )
