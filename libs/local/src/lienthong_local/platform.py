"""Start the five services as separate processes and wait until each reports SERVING.

    with Platform.start(prefix="t1234_") as platform:       # fresh topics and databases
        platform.endpoint("document-service")                # "127.0.0.1:50051"
        platform.stop("signature-service", signal.SIGTERM)

Each service is ``python -m <package>`` with its LIENTHONG_* environment; its log goes to a
file under the log folder. Used by ``make run`` and by the end-to-end tests.

With ``kafka_tls`` (the local broker's TLS listener, lienthong_local.kafka_tls) each service
connects to Kafka as its own principal, ``User:CN=<service>``, with only the ACLs declared in
lienthong_kit.kafka_access: the admin creates the topics and applies the ACLs first, and the
services create none. A service with no declared Kafka access stays on the plaintext listener.

With ``grpc_tls`` (lienthong_local.grpc_tls) every gRPC port takes only client certificates of
its CA, dev auth is off, the services call one another with their own certificates, and the
health checks go to a plaintext health-only port (LIENTHONG_HEALTH_PORT, as the probes in
production); ``platform.channel(name, identity)`` calls as ``identity``'s certificate.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lienthong_kit.kafka import Topics, ensure_topics
from lienthong_kit.kafka_access import declared
from lienthong_kit.settings import KitSettings, load_settings
from lienthong_local.grpc_tls import GrpcTls
from lienthong_local.kafka_tls import ADMIN, KafkaTls, apply_acls, issue_certificates
from lienthong_testing.ports import free_port

__all__ = ["SERVICES", "KafkaTlsListener", "Platform", "ServiceProcess", "free_port"]

SERVICES = (
    "document-service",
    "routing-service",
    "signature-service",
    "notification-service",
    "reporting-service",
    "gateway-service",
)
ROOT = Path(__file__).resolve().parents[4]  # the repository (the workspace installs it editable)
DEFAULT_PORTS = {name: (50051 + index, 9101 + index) for index, name in enumerate(SERVICES)}


@dataclass
class ServiceProcess:
    name: str
    grpc_port: int
    metrics_port: int
    log_path: Path
    process: subprocess.Popen[bytes]
    health_port: int = 0  # the plaintext health-only port, when the gRPC port is mTLS

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def health(self, timeout: float = 1.0) -> int:
        with grpc.insecure_channel(f"127.0.0.1:{self.health_port or self.grpc_port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
            return int(reply.status)


@dataclass(frozen=True)
class KafkaTlsListener:
    """The local broker's TLS listener and the folder of its certificates."""

    bootstrap: str
    tls: KafkaTls

    def prepare(self, prefix: str) -> None:
        """As the admin: create ``prefix``'s topics and apply every service's ACLs on them
        (and give a service declared since infra-up its certificate, from the same CA)."""
        issue_certificates(self.tls.folder)
        topics = Topics(prefix)
        admin = load_settings(
            KitSettings,
            {
                "LIENTHONG_KAFKA_BOOTSTRAP": self.bootstrap,
                "LIENTHONG_TOPIC_PREFIX": prefix,
                **self.tls.client_env(ADMIN),
            },
        )
        asyncio.run(ensure_topics(admin, topics.all(), compacted=topics.compacted()))
        apply_acls(self.bootstrap, self.tls, declared(topics).values())

    @classmethod
    def local(cls, environ: Mapping[str, str] | None = None) -> KafkaTlsListener | None:
        """The listener ``make infra-up`` set up (deploy/local/infra.sh's LIENTHONG_DATA_DIR and
        LIENTHONG_KAFKA_TLS_PORT), or None when the local Kafka has none or it does not
        answer."""
        environ = os.environ if environ is None else environ
        data = Path(environ.get("LIENTHONG_DATA_DIR", ROOT / "deploy" / "local" / ".data"))
        port = environ.get("LIENTHONG_KAFKA_TLS_PORT", "9094")
        tls = KafkaTls(data / "kafka" / "tls")
        if port == "off" or not tls.ca.is_file():
            return None
        try:
            socket.create_connection(("127.0.0.1", int(port)), timeout=2).close()
        except OSError:
            return None
        return cls(f"127.0.0.1:{port}", tls)

    def env(self, service: str) -> dict[str, str]:
        if service not in declared():
            return {}
        return {
            "LIENTHONG_KAFKA_BOOTSTRAP": self.bootstrap,
            "LIENTHONG_KAFKA_CREATE_TOPICS": "false",
            **self.tls.client_env(service),
        }


@dataclass
class Platform:
    env: dict[str, str]
    log_dir: Path
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    kafka_tls: KafkaTlsListener | None = None
    grpc_tls: GrpcTls | None = None

    @classmethod
    @contextmanager
    def start(
        cls,
        *,
        log_dir: Path,
        prefix: str = "",
        fixed_ports: bool = False,
        extra_env: Mapping[str, str] | None = None,
        timeout: float = 90.0,
        kafka_tls: KafkaTlsListener | None = None,
        grpc_tls: GrpcTls | None = None,
    ) -> Iterator[Platform]:
        platform = cls.empty(
            log_dir=log_dir,
            prefix=prefix,
            extra_env=extra_env,
            kafka_tls=kafka_tls,
            grpc_tls=grpc_tls,
        )
        try:
            for name in SERVICES:
                ports = DEFAULT_PORTS[name] if fixed_ports else (free_port(), free_port())
                platform.launch(name, *ports)
            platform.wait_serving(timeout)
            yield platform
        finally:
            platform.stop_all()

    @classmethod
    def empty(
        cls,
        *,
        log_dir: Path,
        prefix: str = "",
        extra_env: Mapping[str, str] | None = None,
        kafka_tls: KafkaTlsListener | None = None,
        grpc_tls: GrpcTls | None = None,
    ) -> Platform:
        """A platform with no service launched yet (tests launch the ones they need)."""
        if kafka_tls is not None:
            kafka_tls.prepare(prefix)
        if grpc_tls is not None:
            grpc_tls.prepare(SERVICES)
        env = {
            **os.environ,
            "LIENTHONG_TOPIC_PREFIX": prefix,
            "LIENTHONG_MONGO_DATABASE_PREFIX": f"{prefix}lienthong_",
            "LIENTHONG_DEV_AUTH": "true",
            # development only: documents without any signature flow through unverified (signed
            # ones are fully verified); signature-service logs it loudly at start
            "LIENTHONG_SIGNATURE_ACCEPT_UNSIGNED": "true",
            "LIENTHONG_SHUTDOWN_GRACE_SECONDS": "5",
            "LIENTHONG_REPORTING_DATA_DIR": str(log_dir / "reporting-data"),
            **(extra_env or {}),
        }
        log_dir.mkdir(parents=True, exist_ok=True)
        return cls(env, log_dir, kafka_tls=kafka_tls, grpc_tls=grpc_tls)

    def launch(
        self,
        name: str,
        grpc_port: int = 0,
        metrics_port: int = 0,
        extra_env: Mapping[str, str] | None = None,
        wrapper: Sequence[str] = (),
    ) -> ServiceProcess:
        """Start ``name`` (free ports unless given); a relaunch reuses the same log file.

        ``wrapper``: interpreter arguments before ``-m <package>`` (a test runs a service
        under a set clock with ``lienthong_testing.clock.clocked``)."""
        package = name.replace("-", "_")
        log_path = self.log_dir / f"{name}.log"
        grpc_port = grpc_port or free_port()
        metrics_port = metrics_port or free_port()
        health_port = free_port() if self.grpc_tls else 0
        env = {
            **self.env,
            **self._addresses(),
            **(self.kafka_tls.env(name) if self.kafka_tls else {}),
            **(self.grpc_tls.service_env(name) if self.grpc_tls else {}),
            "LIENTHONG_GRPC_PORT": str(grpc_port),
            "LIENTHONG_METRICS_PORT": str(metrics_port),
            "LIENTHONG_HEALTH_PORT": str(health_port),
            **(extra_env or {}),
        }
        with log_path.open("ab") as log:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, *wrapper, "-m", package],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        service = ServiceProcess(name, grpc_port, metrics_port, log_path, process, health_port)
        self.processes[name] = service
        return service

    def _addresses(self) -> dict[str, str]:
        """Where a service finds the ones launched before it (signature-service fetches
        attachments from document-service; the gateway calls document- and routing-service)."""
        wanted = {
            "LIENTHONG_SIGNATURE_DOCUMENT_SERVICE": "document-service",
            "LIENTHONG_GATEWAY_DOCUMENT_SERVICE": "document-service",
            "LIENTHONG_GATEWAY_ROUTING_SERVICE": "routing-service",
        }
        return {
            env: self.processes[name].endpoint
            for env, name in wanted.items()
            if name in self.processes
        }

    def endpoint(self, name: str) -> str:
        return self.processes[name].endpoint

    def channel(self, name: str, identity: str | None = None) -> grpc.Channel:
        """A channel to ``name``: with mTLS, calling with ``identity``'s client certificate
        (a unit, an operator, a service); plaintext otherwise (the caller sends the dev
        header)."""
        if self.grpc_tls is None:
            return grpc.insecure_channel(self.endpoint(name))
        if identity is None:
            raise ValueError(f"{name} takes only client certificates: name the identity")
        return grpc.secure_channel(self.endpoint(name), self.grpc_tls.credentials(identity))

    def wait_serving(self, timeout: float, names: tuple[str, ...] = SERVICES) -> None:
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending:
            for name in sorted(pending):
                service = self.processes[name]
                if service.process.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {service.process.returncode}; see {service.log_path}"
                    )
                try:
                    if service.health() == health_pb2.HealthCheckResponse.SERVING:
                        pending.discard(name)
                except grpc.RpcError:
                    pass
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"not SERVING after {timeout}s: {sorted(pending)}")
            if pending:
                time.sleep(0.2)

    def stop(self, name: str, signum: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        service = self.processes[name]
        if service.process.poll() is None:
            service.process.send_signal(signum)
            try:
                service.process.wait(timeout)
            except subprocess.TimeoutExpired:
                service.process.kill()
                service.process.wait()
        return int(service.process.returncode)

    def stop_all(self) -> None:
        for name in reversed(list(self.processes)):
            self.stop(name)
