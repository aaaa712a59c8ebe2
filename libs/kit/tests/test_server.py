"""The bootstrap against the real broker and store: a tiny servicer on port 0."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import subprocess
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

from lienthong.signature.v1 import signature_service_pb2 as pb
from lienthong.signature.v1.signature_service_pb2_grpc import (
    SignatureServiceServicer,
    SignatureServiceStub,
    add_SignatureServiceServicer_to_server,
)
from lienthong_kit.context import caller_unit
from lienthong_kit.errors import FieldViolation, InvalidArgument
from lienthong_kit.server import Deps, GrpcService, ServiceApp, Wiring
from lienthong_kit.settings import KitSettings

SERVICE = "lienthong.signature.v1.SignatureService"


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
        return pb.GetVerificationResponse(document_id=request.document_id, reason=caller_unit())


@pytest.fixture
async def app(settings: KitSettings) -> AsyncIterator[tuple[ServiceApp, ProbeServicer]]:
    servicer = ProbeServicer()

    async def build(deps: Deps) -> Wiring:
        return Wiring(
            services=[
                GrpcService.of(
                    pb, "SignatureService", add_SignatureServiceServicer_to_server, servicer
                )
            ]
        )

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
        service = GrpcService.of(
            pb, "SignatureService", add_SignatureServiceServicer_to_server, ProbeServicer()
        )
        return Wiring(services=[service], ready=rebuilt.wait)

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


# --- mutual TLS, with a PKI made at test time (no key is committed) ---------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate for a unit."""
    where = tmp_path_factory.mktemp("pki")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=lienthong test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        cwd=where,
    )
    for name, subject, extension in (
        ("server", "/CN=localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ("client", "/CN=000.01.00.H23", "extendedKeyUsage=clientAuth"),
    ):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            cwd=where,
        )
        (where / f"{name}.ext").write_text(extension + "\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
                 "-out", f"{name}.pem", cwd=where)  # fmt: skip
    return where


@pytest.fixture
async def tls_app(settings: KitSettings, pki: Path) -> AsyncIterator[ServiceApp]:
    tls_settings = dataclasses.replace(
        settings,
        tls_cert=pki / "server.pem",
        tls_key=pki / "server.key",
        tls_client_ca=pki / "ca.pem",
        health_port=_free_port(),  # 0 would mean "no health port"
    )

    async def build(deps: Deps) -> Wiring:
        return Wiring(
            services=[
                GrpcService.of(
                    pb, "SignatureService", add_SignatureServiceServicer_to_server, ProbeServicer()
                )
            ]
        )

    service = ServiceApp("probe-service", tls_settings, build)
    await service.start()
    yield service
    await service.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _credentials(pki: Path, *, with_client_cert: bool) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=(pki / "ca.pem").read_bytes(),
        private_key=(pki / "client.key").read_bytes() if with_client_cert else None,
        certificate_chain=(pki / "client.pem").read_bytes() if with_client_cert else None,
    )


async def test_mtls_client_certificate_names_the_unit_and_beats_the_header(
    tls_app: ServiceApp, pki: Path
) -> None:
    credentials = _credentials(pki, with_client_cert=True)
    async with grpc.aio.secure_channel(f"127.0.0.1:{tls_app.grpc_port}", credentials) as channel:
        reply = await SignatureServiceStub(channel).GetVerification(
            pb.GetVerificationRequest(document_id="ok"),
            metadata=(("x-lienthong-unit", "000.00.00.H23"),),  # a claim the certificate overrides
        )
    assert reply.reason == "000.01.00.H23"


async def test_mtls_refuses_a_client_without_certificate(tls_app: ServiceApp, pki: Path) -> None:
    credentials = _credentials(pki, with_client_cert=False)
    async with grpc.aio.secure_channel(f"127.0.0.1:{tls_app.grpc_port}", credentials) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await SignatureServiceStub(channel).GetVerification(
                pb.GetVerificationRequest(document_id="ok"), timeout=5
            )
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
