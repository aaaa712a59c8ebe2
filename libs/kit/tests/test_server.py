"""The bootstrap against the real broker and store: a tiny servicer on port 0."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from prometheus_client.parser import text_string_to_metric_families

from lienthong.events.v1.events_pb2 import UnitChanged
from lienthong.routing.v1.routing_service_pb2 import Unit
from lienthong.signature.v1 import signature_service_pb2 as pb
from lienthong.signature.v1.signature_service_pb2_grpc import (
    SignatureServiceServicer,
    SignatureServiceStub,
    add_SignatureServiceServicer_to_server,
)
from lienthong_kit.authz import AccessTable, Role, current_identity, either, operators, units
from lienthong_kit.context import caller_unit
from lienthong_kit.envelope import new_event
from lienthong_kit.errors import FieldViolation, InvalidArgument
from lienthong_kit.gatekeeper import AccessError
from lienthong_kit.kafka import Topics, ensure_topics
from lienthong_kit.server import Deps, GrpcService, ServiceApp, Wiring
from lienthong_kit.settings import KitSettings, SettingsError, load_settings
from lienthong_testing.identities import IdentityCa, Issued
from lienthong_testing.ports import free_port

SERVICE = "lienthong.signature.v1.SignatureService"
_METHODS = [m.name for m in pb.DESCRIPTOR.services_by_name["SignatureService"].methods]
ACCESS = AccessTable.of(
    pb,
    "SignatureService",
    {
        **{name: units() for name in _METHODS},
        "GetVerification": either(units(), operators(Role.OBSERVER)),
        "ListTrustAnchors": operators(Role.TRUST_ADMIN),
    },
)


def probe(servicer: SignatureServiceServicer, access: AccessTable | None = ACCESS) -> GrpcService:
    return GrpcService.of(
        pb, "SignatureService", add_SignatureServiceServicer_to_server, servicer, access
    )


class ProbeServicer(SignatureServiceServicer):
    """Behaves according to the document id it is asked about."""

    def __init__(self) -> None:
        self.slow_started = asyncio.Event()

    async def GetVerification(
        self, request: pb.GetVerificationRequest, context: Any
    ) -> pb.GetVerificationResponse:
        if request.document_id == "invalid":
            raise InvalidArgument([FieldViolation("document_id", "is not a UUID")])
        if request.document_id == "boom":
            raise RuntimeError("a bug")
        if request.document_id == "slow":
            self.slow_started.set()
            await asyncio.sleep(1.0)
        identity = current_identity()
        assert caller_unit() == identity.unit_code if identity.unit_code else True
        return pb.GetVerificationResponse(
            document_id=request.document_id, reason=identity.unit_code or str(identity)
        )


@pytest.fixture
async def app(settings: KitSettings) -> AsyncIterator[tuple[ServiceApp, ProbeServicer]]:
    servicer = ProbeServicer()

    async def build(deps: Deps) -> Wiring:
        return Wiring(services=[probe(servicer)])

    service = ServiceApp("probe-service", settings, build)
    await service.start()
    yield service, servicer
    if service.server is not None:
        await service.stop()


@pytest.fixture
async def channel(app: tuple[ServiceApp, ProbeServicer]) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app[0].grpc_port}") as channel:
        yield channel


UNIT = (("x-lienthong-unit", "000.00.00.H23"),)


async def test_health_is_serving_for_the_server_and_each_service(channel: grpc.aio.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for name in ("", SERVICE):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=name))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_service_with_state_to_rebuild_is_serving_only_once_ready(
    settings: KitSettings,
) -> None:
    rebuilt = asyncio.Event()

    async def build(deps: Deps) -> Wiring:
        return Wiring(services=[probe(ProbeServicer())], ready=rebuilt.wait)

    service = ServiceApp("rebuilding-service", settings, build)
    await service.start()
    try:
        request = health_pb2.HealthCheckRequest(service=SERVICE)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            before = await stub.Check(request)
            rebuilt.set()
            await asyncio.wait_for(service.serving.wait(), timeout=5)
            after = await stub.Check(request)
        assert before.status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert after.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await service.stop()


async def test_reflection_lists_the_services(channel: grpc.aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    responses = [r async for r in stub.ServerReflectionInfo(iter([request]))]
    names = {s.name for s in responses[0].list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health"} <= names


async def test_dev_auth_header_names_the_caller(channel: grpc.aio.Channel) -> None:
    reply = await SignatureServiceStub(channel).GetVerification(
        pb.GetVerificationRequest(document_id="ok"), metadata=UNIT
    )
    assert reply.reason == "000.00.00.H23"


async def test_a_call_without_identity_is_unauthenticated(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await SignatureServiceStub(channel).GetVerification(
            pb.GetVerificationRequest(document_id="ok")
        )
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_domain_errors_become_statuses_with_field_details(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await SignatureServiceStub(channel).GetVerification(
            pb.GetVerificationRequest(document_id="invalid"), metadata=UNIT
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "document_id: is not a UUID" in (info.value.details() or "")
    status = rpc_status.from_call(info.value)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert bad_request.field_violations[0].field == "document_id"


async def test_unexpected_errors_are_internal_with_a_trace_id(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await SignatureServiceStub(channel).GetVerification(
            pb.GetVerificationRequest(document_id="boom"),
            metadata=(*UNIT, ("traceparent", f"00-{'ab' * 16}-{'cd' * 8}-01")),
        )
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert "ab" * 16 in (info.value.details() or "")
    assert "a bug" not in (info.value.details() or "")


async def test_metrics_endpoint_counts_rpcs(
    app: tuple[ServiceApp, ProbeServicer], channel: grpc.aio.Channel
) -> None:
    await SignatureServiceStub(channel).GetVerification(
        pb.GetVerificationRequest(document_id="ok"), metadata=UNIT
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", app[0].metrics_port)
    writer.write(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
    body = (await reader.read()).split(b"\r\n\r\n", 1)[1].decode()
    writer.close()
    samples = {
        (sample.name, sample.labels.get("method"), sample.labels.get("code")): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }
    method = f"/{SERVICE}/GetVerification"
    assert samples[("lienthong_rpc_handled_total", method, "OK")] >= 1


async def test_sigterm_path_reports_not_serving_and_finishes_in_flight_calls(
    app: tuple[ServiceApp, ProbeServicer], channel: grpc.aio.Channel
) -> None:
    service, servicer = app
    stub = SignatureServiceStub(channel)
    in_flight = asyncio.ensure_future(
        stub.GetVerification(pb.GetVerificationRequest(document_id="slow"), metadata=UNIT)
    )
    await servicer.slow_started.wait()
    stopping = asyncio.create_task(service.stop())
    status = await _health_once_shutdown_began(service)
    assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    reply = await in_flight
    assert reply.document_id == "slow"
    await stopping
    service.server = None  # stopped: the fixture has nothing left to do
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetVerification(pb.GetVerificationRequest(document_id="ok"), metadata=UNIT)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


async def _health_once_shutdown_began(service: ServiceApp) -> int:
    """The health servicer's own answer once shutdown began (the port may already refuse)."""
    request = health_pb2.HealthCheckRequest(service="")
    for _ in range(200):
        reply = await service.health.Check(request, None)
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            return int(reply.status)
        await asyncio.sleep(0.005)
    return int(reply.status)


# --- who may call what ------------------------------------------------------------------


async def test_a_service_with_an_rpc_without_a_rule_refuses_to_start(
    settings: KitSettings,
) -> None:
    partial = AccessTable.of(pb, "SignatureService", {"GetVerification": units()})

    async def build(deps: Deps) -> Wiring:
        return Wiring(services=[probe(ProbeServicer(), partial)])

    service = ServiceApp("probe-service", settings, build)
    with pytest.raises(AccessError) as refusal:
        await service.start()
    await service.stop()
    assert f"{SERVICE}/ListTrustAnchors has no access rule" in str(refusal.value)
    assert f"{SERVICE}/VerifyDocument has no access rule" in str(refusal.value)


async def test_the_header_names_operators_and_a_rule_refuses_the_wrong_role(
    channel: grpc.aio.Channel,
) -> None:
    stub = SignatureServiceStub(channel)
    observer = (("x-lienthong-identity", "operator/observer/lan"),)
    reply = await stub.GetVerification(
        pb.GetVerificationRequest(document_id="ok"), metadata=observer
    )
    assert reply.reason == "operator/observer/lan"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ListTrustAnchors(pb.ListTrustAnchorsRequest(), metadata=observer)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "requires operator role trust-admin" in (info.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetVerification(
            pb.GetVerificationRequest(document_id="ok"), metadata=(("x-lienthong-unit", "x y"),)
        )
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "is not an identifier code" in (info.value.details() or "")


def test_dev_auth_and_tls_together_refuse_to_start(tmp_path: Path) -> None:
    ca = IdentityCa.create(tmp_path)
    server = ca.server("probe-service")
    with pytest.raises(SettingsError, match="LIENTHONG_DEV_AUTH must be off when TLS"):
        load_settings(
            KitSettings,
            {
                "LIENTHONG_DEV_AUTH": "true",
                "LIENTHONG_TLS_CERT": str(server.cert_path),
                "LIENTHONG_TLS_KEY": str(server.key_path),
            },
        )


async def test_units_closed_or_unknown_in_the_registry_are_refused(
    settings: KitSettings, raw_producer: Any
) -> None:
    checked = dataclasses.replace(settings, require_registered_units=True)
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings, topics.all(), compacted=topics.compacted())
    for number, unit in enumerate(
        [
            Unit(code="000.00.00.H23", active=True),
            Unit(
                code="000.03.12.H23",
                active=False,
                valid_until="2025-07-01",
                successor_code="000.00.00.H23",
            ),
        ]
    ):
        event = new_event(UnitChanged(unit=unit, revision=number + 1), producer="test")
        await raw_producer.send_and_wait(
            topics.units, event.SerializeToString(), key=unit.code.encode()
        )

    async def build(deps: Deps) -> Wiring:
        return Wiring(services=[probe(ProbeServicer())])

    service = ServiceApp("probe-service", checked, build)
    await service.start()
    try:
        # SERVING only once the registry was read to its end
        await asyncio.wait_for(service.serving.wait(), timeout=60)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
            stub = SignatureServiceStub(channel)
            request = pb.GetVerificationRequest(document_id="ok")
            reply = await stub.GetVerification(request, metadata=UNIT)
            assert reply.reason == "000.00.00.H23"
            for code, expected in (
                (
                    "000.03.12.H23",
                    "unit 000.03.12.H23 was closed on 2025-07-01; its successor is 000.00.00.H23",
                ),
                ("999.99.99.H99", "unit 999.99.99.H99 is not in the province's registry"),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await stub.GetVerification(request, metadata=(("x-lienthong-unit", code),))
                assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
                assert info.value.details() == expected
    finally:
        await service.stop()


# --- mutual TLS, with a PKI made at test time (no key is committed) ---------------------

DOMAIN = "lienthong.test"


@pytest.fixture
def ca(tmp_path: Path) -> IdentityCa:
    return IdentityCa.create(tmp_path / "ca", trust_domain=DOMAIN)


@pytest.fixture
async def tls_app(settings: KitSettings, ca: IdentityCa) -> AsyncIterator[ServiceApp]:
    server = ca.server("probe-service")
    tls_settings = dataclasses.replace(
        settings,
        dev_auth=False,
        trust_domain=DOMAIN,
        tls_cert=server.cert_path,
        tls_key=server.key_path,
        tls_client_ca=ca.ca_path,
        tls_client_crl=ca.crl_path,
        health_port=free_port(),  # 0 would mean "no health port"
    )

    async def build(deps: Deps) -> Wiring:
        return Wiring(services=[probe(ProbeServicer())])

    service = ServiceApp("probe-service", tls_settings, build)
    await service.start()
    yield service
    await service.stop()


def _credentials(ca_pem: bytes, client: Issued | None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca_pem,
        private_key=client.key if client else None,
        certificate_chain=client.cert if client else None,
    )


async def _call(port: int, credentials: grpc.ChannelCredentials, **kwargs: Any) -> Any:
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        return await SignatureServiceStub(channel).GetVerification(
            pb.GetVerificationRequest(document_id="ok"), timeout=10, **kwargs
        )


async def test_mtls_the_certificate_names_the_unit_and_headers_count_for_nothing(
    tls_app: ServiceApp, ca: IdentityCa
) -> None:
    credentials = _credentials(ca.ca_path.read_bytes(), ca.client("unit/000.01.00.H23"))
    reply = await _call(
        tls_app.grpc_port,
        credentials,
        metadata=(
            ("x-lienthong-unit", "000.00.00.H23"),  # claims the certificate overrides
            ("x-lienthong-identity", "operator/trust-admin/mallory"),
        ),
    )
    assert reply.reason == "000.01.00.H23"


@pytest.mark.parametrize(
    ("identity", "common_name", "message"),
    [
        ("", "000.01.00.H23", "names no lienthong identity"),  # the old CN convention
        ("service/routing-service", "", "requires an agency unit or operator role observer"),
    ],
)
async def test_mtls_refuses_certificates_without_an_allowed_identity(
    tls_app: ServiceApp, ca: IdentityCa, identity: str, common_name: str, message: str
) -> None:
    client = ca.client(identity, common_name=common_name)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _call(tls_app.grpc_port, _credentials(ca.ca_path.read_bytes(), client))
    assert info.value.code() in (
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert message in (info.value.details() or "")


async def test_mtls_a_revoked_certificate_is_refused_once_the_crl_file_lists_it(
    tls_app: ServiceApp, ca: IdentityCa
) -> None:
    clerk = ca.client("unit/000.01.00.H23")
    credentials = _credentials(ca.ca_path.read_bytes(), clerk)
    assert (await _call(tls_app.grpc_port, credentials)).reason == "000.01.00.H23"
    ca.revoke(clerk)
    ca.write_crl()  # the operator replaces the file; the service is not restarted
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _call(tls_app.grpc_port, credentials)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "revoked" in (info.value.details() or "")


async def test_mtls_a_rotated_server_certificate_is_served_without_a_restart(
    tls_app: ServiceApp, ca: IdentityCa, tmp_path: Path
) -> None:
    # the new certificate comes from a new CA: a client trusting only that CA tells them apart
    successor = IdentityCa.create(tmp_path / "next", trust_domain=DOMAIN)
    client = ca.client("unit/000.01.00.H23")
    with pytest.raises(grpc.aio.AioRpcError):
        await _call(tls_app.grpc_port, _credentials(successor.ca_path.read_bytes(), client))
    rotated = successor.server("probe-service")
    settings = tls_app.settings
    assert settings.tls_cert is not None
    assert settings.tls_key is not None
    settings.tls_key.write_bytes(rotated.key)
    settings.tls_cert.write_bytes(rotated.cert)
    reply = await _call(tls_app.grpc_port, _credentials(successor.ca_path.read_bytes(), client))
    assert reply.reason == "000.01.00.H23"


async def test_mtls_refuses_a_client_without_certificate(
    tls_app: ServiceApp, ca: IdentityCa
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _call(tls_app.grpc_port, _credentials(ca.ca_path.read_bytes(), None))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_mtls_keeps_a_plaintext_health_port_for_probes(tls_app: ServiceApp) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{tls_app.health_port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await SignatureServiceStub(channel).GetVerification(
                pb.GetVerificationRequest(document_id="ok")
            )
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_the_days_to_expiry_of_held_certificates_are_exported(tls_app: ServiceApp) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", tls_app.metrics_port)
    writer.write(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
    body = (await reader.read()).split(b"\r\n\r\n", 1)[1].decode()
    writer.close()
    days = {
        sample.labels["certificate"]: sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == "lienthong_certificate_expiry_days"
        and sample.labels["service"] == "probe-service"
    }
    assert 29 < days["server"] <= 30
    assert 29 < days["client_ca"] <= 30


# --- health follows the dependencies ------------------------------------------------------


class Proxy:
    """A TCP relay to the store that the test can cut and restore (the store stays up for
    everyone else on this machine)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port
        )
        self._writers += [writer, upstream_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


async def _health(service: ServiceApp) -> int:
    reply = await service.health.Check(health_pb2.HealthCheckRequest(service=SERVICE), None)
    return int(reply.status)


async def test_health_follows_the_store_not_serving_while_it_is_gone_and_back_after(
    settings: KitSettings,
) -> None:
    proxy = Proxy(target_port=27017)
    await proxy.open()
    through_proxy = dataclasses.replace(
        settings,
        mongo_url=f"mongodb://127.0.0.1:{proxy.port}/?serverSelectionTimeoutMS=500",
        dependency_grace_seconds=1.0,
    )

    async def build(deps: Deps) -> Wiring:
        return Wiring(services=[probe(ProbeServicer())])

    service = ServiceApp("probe-service", through_proxy, build)
    await service.start()
    try:
        await asyncio.wait_for(service.serving.wait(), timeout=30)
        assert await _health(service) == health_pb2.HealthCheckResponse.SERVING
        await proxy.cut()
        for _ in range(200):  # within seconds; the test fails if it never changes
            if await _health(service) == health_pb2.HealthCheckResponse.NOT_SERVING:
                break
            await asyncio.sleep(0.1)
        assert await _health(service) == health_pb2.HealthCheckResponse.NOT_SERVING
        await proxy.open()
        for _ in range(300):
            if await _health(service) == health_pb2.HealthCheckResponse.SERVING:
                break
            await asyncio.sleep(0.1)
        assert await _health(service) == health_pb2.HealthCheckResponse.SERVING
    finally:
        await service.stop()
        await proxy.cut()
