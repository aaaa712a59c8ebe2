"""Who may call routing-service's RPCs (docs/security.md shows this table as the matrix).

The registry is read by everyone the platform knows; only a registry administrator writes it."""

from __future__ import annotations

from lienthong.routing.v1 import routing_service_pb2
from lienthong_kit.authz import (
    AccessTable,
    Role,
    either,
    operators,
    services,
    units_or_gateway,
)

# the gateway reads as itself too: its axis bridge asks whether a sender is an external agency
READERS = either(
    units_or_gateway(), services("gateway-service"), operators(*Role), scope="the whole registry"
)
WRITERS = operators(Role.REGISTRY_ADMIN, scope="any unit; audited")

ACCESS = AccessTable.of(
    routing_service_pb2,
    "RoutingService",
    {
        "UpsertUnit": WRITERS,
        "GetUnit": READERS,
        "ListUnits": READERS,
        "ImportRegistry": WRITERS,
        "CloseUnit": WRITERS,
        "ResolveRecipients": READERS,
    },
)
