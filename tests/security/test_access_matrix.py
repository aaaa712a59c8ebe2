"""The access matrix, enforced: every RPC of every service, found through server reflection,
called over mutual TLS as every kind of caller, answers exactly as the services' access tables
say (docs/security.md carries the same tables, and a test below keeps the page equal to them).

The services run in-process on the real broker and store, with TLS and client certificates from
a CA made at test time; the registry holds an open unit, a second open unit and a closed one.
"Allowed" means the gate let the call through: the handler may still refuse it for what the
gate cannot see (not a party of that document, a bad request), never with the gate's reasons.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.rpc import error_details_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from document_service.__main__ import build as build_documents
from document_service.access import ACCESS as DOCUMENT_ACCESS
from document_service.settings import Settings as DocumentSettings
from lienthong.document.v1 import document_service_pb2 as doc_pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.routing.v1 import routing_service_pb2 as routing_pb
from lienthong.routing.v1.routing_service_pb2_grpc import RoutingServiceStub
from lienthong_kit.authz import AccessTable, Identity, Kind, Role, matrix_markdown
from lienthong_kit.server import ServiceApp
from lienthong_testing.identities import IdentityCa, Issued
from lienthong_testing.settings import isolated_settings
from notification_service.__main__ import build as build_notifications
from notification_service.access import ACCESS as NOTIFICATION_ACCESS
from notification_service.settings import Settings as NotificationSettings
from reporting_service.__main__ import create as create_reporting
from reporting_service.access import ACCESS as REPORTING_ACCESS
from reporting_service.settings import Settings as ReportingSettings
from routing_service.__main__ import build as build_routing
from routing_service.access import ACCESS as ROUTING_ACCESS
from routing_service.settings import Settings as RoutingSettings
from signature_service.__main__ import build as build_signatures
from signature_service.access import ACCESS as SIGNATURE_ACCESS
from signature_service.settings import Settings as SignatureSettings

# five services started and stopped in one process: a client library's socket collected late
# must not fail the test that happens to run then
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

DOMAIN = "lienthong.test"
OPEN, OTHER, CLOSED = "000.00.00.H23", "000.01.00.H23", "000.03.12.H23"
TABLES = [DOCUMENT_ACCESS, ROUTING_ACCESS, SIGNATURE_ACCESS, NOTIFICATION_ACCESS, REPORTING_ACCESS]
GATE_REASONS = {
    "NO_IDENTITY",
    "BAD_IDENTITY",
    "NOT_ALLOWED",
    "NO_RULE",
    "NO_DELEGATION",
    "UNIT_NOT_ACTIVE",
    "CERTIFICATE_REVOKED",
}
SECURITY_PAGE = Path(__file__).resolve().parents[2] / "docs" / "security.md"

# every kind of caller the matrix speaks of (None: a certificate that names no identity)
CALLERS: dict[str, Identity | None] = {
    "no identity": None,
    "unit": Identity(Kind.UNIT, OPEN),
    "another unit": Identity(Kind.UNIT, OTHER),
    "closed unit": Identity(Kind.UNIT, CLOSED),
    **{f"operator {role}": Identity(Kind.OPERATOR, "tester", role) for role in Role},
    "signature-service": Identity(Kind.SERVICE, "signature-service"),
    "gateway-service": Identity(Kind.SERVICE, "gateway-service"),
}


def _uri(identity: Identity) -> str:
    if identity.kind is Kind.OPERATOR:
        return f"operator/{identity.role}/{identity.name}"
    return f"{identity.kind}/{identity.name}"


@dataclass
class Matrix:
    ca: IdentityCa
    endpoints: dict[str, str]  # gRPC service full name -> address
    clients: dict[str, Issued]

    def credentials(self, caller: str) -> grpc.ChannelCredentials:
        client = self.clients[caller]
        return grpc.ssl_channel_credentials(self.ca.ca_path.read_bytes(), client.key, client.cert)


@pytest.fixture
async def matrix(infra: None, prefix: str, tmp_path: Path) -> AsyncIterator[Matrix]:
    ca = IdentityCa.create(tmp_path / "ca", trust_domain=DOMAIN)
    server = ca.server("lienthong")
    env = {
        "LIENTHONG_DEV_AUTH": "false",
        "LIENTHONG_REQUIRE_REGISTERED_UNITS": "true",
        "LIENTHONG_TRUST_DOMAIN": DOMAIN,
        "LIENTHONG_TLS_CERT": str(server.cert_path),
        "LIENTHONG_TLS_KEY": str(server.key_path),
        "LIENTHONG_TLS_CLIENT_CA": str(ca.ca_path),
        "LIENTHONG_SIGNATURE_WORKERS": "0",
        "LIENTHONG_REPORTING_DATA_DIR": str(tmp_path / "reporting"),
    }
    clients = {
        name: ca.client(_uri(identity) if identity else "", common_name=name)
        for name, identity in CALLERS.items()
    }
    fetch = clients["signature-service"]  # its attachment fetch from document-service
    env |= {
        "LIENTHONG_SIGNATURE_DOCUMENT_SERVICE_CA": str(ca.ca_path),
        "LIENTHONG_SIGNATURE_CLIENT_CERT": str(fetch.cert_path),
        "LIENTHONG_SIGNATURE_CLIENT_KEY": str(fetch.key_path),
    }
    admin = ca.client("operator/registry-admin/setup")
    started: list[ServiceApp[Any]] = []
    try:
        routing = ServiceApp(
            "routing-service", isolated_settings(RoutingSettings, prefix, env), build_routing
        )
        await routing.start()
        started.append(routing)
        await asyncio.wait_for(routing.serving.wait(), timeout=120)
        credentials = grpc.ssl_channel_credentials(ca.ca_path.read_bytes(), admin.key, admin.cert)
        async with grpc.aio.secure_channel(f"127.0.0.1:{routing.grpc_port}", credentials) as ch:
            units = [
                routing_pb.Unit(code=OPEN, name="UBND tỉnh", level=1, active=True),
                routing_pb.Unit(
                    code=OTHER, name="Sở Tài chính", level=2, parent_code=OPEN, active=True
                ),
                routing_pb.Unit(
                    code=CLOSED, name="UBND huyện cũ", level=3, parent_code=OPEN, active=True
                ),
            ]
            await RoutingServiceStub(ch).ImportRegistry(
                routing_pb.ImportRegistryRequest(unit=unit) for unit in units
            )
            await RoutingServiceStub(ch).CloseUnit(
                routing_pb.CloseUnitRequest(
                    code=CLOSED, successor_code=OPEN, closed_on="2025-07-01"
                )
            )
        for name, settings_type, build in (
            ("document-service", DocumentSettings, build_documents),
            ("signature-service", SignatureSettings, build_signatures),
            ("notification-service", NotificationSettings, build_notifications),
        ):
            app: ServiceApp[Any] = ServiceApp(
                name, isolated_settings(settings_type, prefix, env), build
            )
            await app.start()
            started.append(app)
        # the reporting API without its faust worker: the gate is the same, answers UNAVAILABLE
        _, reporting = create_reporting(isolated_settings(ReportingSettings, prefix, env))
        await reporting.start()
        started.append(reporting)
        for app in started[1:-1]:
            await asyncio.wait_for(app.serving.wait(), timeout=120)
        endpoints = {
            table.service: f"127.0.0.1:{app.grpc_port}"
            for app, table in zip(
                [started[1], routing, *started[2:]],
                [
                    DOCUMENT_ACCESS,
                    ROUTING_ACCESS,
                    SIGNATURE_ACCESS,
                    NOTIFICATION_ACCESS,
                    REPORTING_ACCESS,
                ],
                strict=True,
            )
        }
        # a closed unit's refusal must come from the registry, read by every service
        yield Matrix(ca, endpoints, clients)
    finally:
        for app in reversed(started):
            await app.stop()


async def _methods(endpoint: str, credentials: grpc.ChannelCredentials, service: str) -> Any:
    """The service's descriptor, as its server reflection describes it."""
    async with grpc.aio.secure_channel(endpoint, credentials) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=service)
        replies = [reply async for reply in stub.ServerReflectionInfo(iter([request]))]
    pool = descriptor_pool.DescriptorPool()
    protos = {}
    for raw in replies[0].file_descriptor_response.file_descriptor_proto:
        proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
        protos[proto.name] = proto
    # add files in dependency order (google.* first)
    added: set[str] = set()

    def add(name: str) -> None:
        if name in added or name not in protos:
            return
        for dependency in protos[name].dependency:
            add(dependency)
        pool.Add(protos[name])
        added.add(name)

    for name in protos:
        add(name)
    return pool.FindServiceByName(service)


async def _call(
    endpoint: str, credentials: grpc.ChannelCredentials, method: Any
) -> tuple[grpc.StatusCode, str]:
    """Call ``method`` with an empty request: (status code, the gate's reason or "")."""
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    path = f"/{method.containing_service.full_name}/{method.name}"
    serialize, deserialize = request_class.SerializeToString, response_class.FromString
    kinds = {
        (False, False): "unary_unary",
        (False, True): "unary_stream",
        (True, False): "stream_unary",
        (True, True): "stream_stream",
    }
    kind = kinds[(method.client_streaming, method.server_streaming)]
    request: Any = iter([request_class()]) if method.client_streaming else request_class()
    async with grpc.aio.secure_channel(endpoint, credentials) as channel:
        multi_callable = getattr(channel, kind)(
            path, request_serializer=serialize, response_deserializer=deserialize
        )
        try:
            call = multi_callable(request, timeout=3)
            if method.server_streaming:
                async for _ in call:
                    break
            else:
                await call
        except grpc.aio.AioRpcError as error:
            return error.code(), _gate_reason(error)
    return grpc.StatusCode.OK, ""


def _gate_reason(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info) and info.reason in GATE_REASONS:
            return info.reason
    return ""


def _expected(table: AccessTable, method: str, caller: str) -> str:
    """ "allowed", or the gate's refusal: UNAUTHENTICATED or PERMISSION_DENIED."""
    identity = CALLERS[caller]
    rule = table.rules[method]
    if identity is None:
        return "UNAUTHENTICATED"
    if not rule.allows(identity):
        return "PERMISSION_DENIED"
    if identity.kind is Kind.UNIT and identity.name == CLOSED:
        return "PERMISSION_DENIED"
    return "allowed"


async def test_every_rpc_answers_every_caller_as_the_matrix_says(matrix: Matrix) -> None:
    mismatches = []
    seen = 0
    for table in TABLES:
        endpoint = matrix.endpoints[table.service]
        service = await _methods(endpoint, matrix.credentials("unit"), table.service)
        names = {method.name for method in service.methods}
        # a new RPC cannot ship without appearing in its table (and so in this matrix)
        assert names == set(table.rules), (table.service, names ^ set(table.rules))
        for method in service.methods:
            for caller in CALLERS:
                seen += 1
                code, reason = await _call(endpoint, matrix.credentials(caller), method)
                refused = code.name if reason else "allowed"
                expected = _expected(table, method.name, caller)
                if refused != expected:
                    mismatches.append(
                        f"{method.full_name} as {caller}: {refused} ({code.name})"
                        f", expected {expected}"
                    )
    assert not mismatches, "\n".join(mismatches)
    assert seen == sum(len(t.rules) for t in TABLES) * len(CALLERS)


async def test_a_closed_unit_is_told_when_and_who_took_over(matrix: Matrix) -> None:
    endpoint = matrix.endpoints[DOCUMENT_ACCESS.service]
    async with grpc.aio.secure_channel(endpoint, matrix.credentials("closed unit")) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refusal:
            await DocumentServiceStub(channel).ListInbox(doc_pb.ListInboxRequest(), timeout=5)
    assert refusal.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refusal.value.details() == (
        f"unit {CLOSED} was closed on 2025-07-01; its successor is {OPEN}"
    )


def test_the_security_page_shows_the_matrix_the_services_enforce() -> None:
    page = SECURITY_PAGE.read_text(encoding="utf-8")
    block = re.compile(r"(<!-- matrix:begin -->\n)(.*?)(<!-- matrix:end -->)", re.S)
    found = block.search(page)
    assert found, "docs/security.md has no <!-- matrix:begin --> ... <!-- matrix:end --> block"
    generated = matrix_markdown(TABLES)
    if os.environ.get("LIENTHONG_WRITE_MATRIX") == "1":
        SECURITY_PAGE.write_text(
            block.sub(lambda m: m.group(1) + generated + m.group(3), page), encoding="utf-8"
        )
        return
    assert found.group(2) == generated, (
        "docs/security.md's matrix differs from the access tables: regenerate it with"
        " LIENTHONG_WRITE_MATRIX=1 pytest tests/security -k security_page"
    )
