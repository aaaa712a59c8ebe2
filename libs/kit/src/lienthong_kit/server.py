"""The service bootstrap: one way to run a lienthong service.

A service's ``__main__`` builds its domain objects from :class:`Deps` and hands them over::

    async def build(deps: Deps[Settings]) -> Wiring:
        store = RegistryStore(deps.db)
        await store.create_indexes()
        return Wiring(
            services=[GrpcService.of(routing_service_pb2, "RoutingService",
                                     add_RoutingServiceServicer_to_server, RoutingServicer(store))],
            consumers=[ConsumerSpec("routing-service", [deps.topics.verifications], on_verified)],
        )

    def main() -> None:
        run_service("routing-service", Settings, build)   # Settings: the service's own

What the bootstrap does, in order: binds the gRPC server (health NOT_SERVING, reflection on,
every handler wrapped by the guard of interceptors.py, mTLS when configured) and the /metrics
endpoint; connects
to the store and Kafka, retrying until both answer; creates missing topics; calls ``build``;
starts the consumers and background tasks; then reports SERVING (or, when the wiring names a
``ready`` awaitable, once that returns: a replica still rebuilding its state takes no
traffic). On SIGTERM or SIGINT it reports NOT_SERVING, stops accepting calls, lets in-flight
calls finish within the grace period, stops the consumers after the record in hand, and
flushes the producer.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, TypeVar

import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection

from lienthong_kit.authz import AccessTable
from lienthong_kit.certs import PeerCertificates, days_to_expiry, load_pem_certificates
from lienthong_kit.directory import UnitDirectory
from lienthong_kit.failpoints import arm
from lienthong_kit.gatekeeper import Gatekeeper
from lienthong_kit.infra import INFRA_ERRORS, is_infra_error, retry_while_down
from lienthong_kit.interceptors import GuardedServer, ServerGuard
from lienthong_kit.kafka import (
    ConsumerLoop,
    ConsumerSpec,
    EventProducer,
    GroupLagProbe,
    Topics,
    TopicTail,
    ensure_topics,
)
from lienthong_kit.logs import configure_logging, get_logger
from lienthong_kit.metrics import (
    BUILD_INFO,
    CERTIFICATE_EXPIRY,
    DEPENDENCY_UP,
    MetricsServer,
    start_metrics_server,
)
from lienthong_kit.mongo import AsyncDatabase, Doc, connect, ping
from lienthong_kit.settings import KitSettings, SettingsError, load_settings
from lienthong_kit.tracing import configure_tracing, flush_tracing

__all__ = ["Build", "Deps", "GrpcService", "ServiceApp", "Wiring", "read_settings", "run_service"]

log = get_logger(__name__)

S = TypeVar("S", bound=KitSettings)

# a probe that times out or meets a connection failure: the dependency does not answer
PROBE_FAILURES: tuple[type[BaseException], ...] = (TimeoutError, *INFRA_ERRORS)

VERSION = "0.1.0"


@dataclass(frozen=True)
class GrpcService:
    """A servicer and how to add it to a server, with its full name for health/reflection."""

    name: str
    add: Callable[[Any, aio.Server], None]
    servicer: Any
    methods: tuple[str, ...] = ()
    #: who may call each RPC; a service whose table misses an RPC refuses to start
    access: AccessTable | None = None

    @classmethod
    def of(
        cls,
        module: ModuleType,
        service: str,
        add: Callable[[Any, Any], None],
        servicer: Any,
        access: AccessTable | None = None,
    ) -> GrpcService:
        """``module`` is the generated ``*_pb2`` module that declares ``service``."""
        descriptor = module.DESCRIPTOR.services_by_name[service]
        methods = tuple(method.name for method in descriptor.methods)
        return cls(descriptor.full_name, add, servicer, methods, access)


@dataclass
class Wiring:
    """What a service runs: gRPC services, Kafka consumers, long-running background tasks."""

    services: Sequence[GrpcService]
    consumers: Sequence[ConsumerSpec] = ()
    tasks: Sequence[Callable[[], Awaitable[None]]] = ()
    on_stop: Sequence[Callable[[], Awaitable[None]]] = ()
    #: Awaited in the background after the server starts; health reports SERVING only once it
    #: returns (a service whose answers need state rebuilt first, e.g. reporting's counts).
    ready: Callable[[], Awaitable[object]] | None = None


@dataclass
class Deps(Generic[S]):
    """Infrastructure handed to a service's ``build``, with the service's own settings."""

    name: str
    settings: S
    topics: Topics
    producer: EventProducer
    db: AsyncDatabase[Doc]
    extra: dict[str, Any] = field(default_factory=dict)


Build = Callable[[Deps[S]], Awaitable[Wiring]]


class ServiceApp(Generic[S]):
    """A running service; usable in-process by tests (``await app.start()`` / ``stop()``)."""

    def __init__(self, name: str, settings: S, build: Build[S], *, store: bool = True) -> None:
        self.name = name
        self.uses_store = store
        self.settings = settings
        self._build = build
        area = name.removesuffix("-service")
        self.database = f"{settings.mongo_database_prefix}{area}"
        self.topics = Topics(settings.topic_prefix)
        self.health = health_aio.HealthServicer()
        self.server: aio.Server | None = None
        self._health_server: aio.Server | None = None
        self.grpc_port = 0
        self.health_port = 0
        self.metrics: MetricsServer | None = None
        self.producer = EventProducer(settings, client_id=name)
        self._mongo = connect(
            settings.mongo_url, app_name=name, max_pool_size=settings.mongo_max_pool_size
        )
        self.db: AsyncDatabase[Doc] = self._mongo[self.database]
        self._consumers: list[ConsumerLoop] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._wiring: Wiring | None = None
        self.deps: Deps[S] | None = None
        self.serving = asyncio.Event()
        self._names: list[str] = []
        self._degraded = False
        self.directory = UnitDirectory() if settings.require_registered_units else None
        tls = settings.tls_cert is not None
        peers = (
            PeerCertificates(trust_domain=settings.trust_domain, crl_path=settings.tls_client_crl)
            if settings.tls_client_ca is not None
            else None
        )
        self.gate = Gatekeeper(
            tls=tls, dev_auth=settings.dev_auth, peers=peers, directory=self.directory
        )

    @property
    def metrics_port(self) -> int:
        return self.metrics.port if self.metrics else 0

    async def start(self) -> None:
        settings = self.settings
        arm(settings.failpoints)
        configure_tracing(self.name, settings.otlp_endpoint)
        await self.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        self.metrics = start_metrics_server(settings.grpc_host, settings.metrics_port)
        BUILD_INFO.labels(self.name, VERSION).set(1)
        self.server = aio.server(
            options=[
                ("grpc.max_receive_message_length", settings.max_message_bytes),
                ("grpc.max_send_message_length", settings.max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        # every handler added through it is wrapped once in the guard (interceptors.py)
        guarded = GuardedServer(self.server, ServerGuard(self.gate))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, guarded)
        address = f"{settings.grpc_host}:{settings.grpc_port}"
        credentials = self._credentials()
        if credentials is None:
            self.grpc_port = self.server.add_insecure_port(address)
        else:
            self.grpc_port = self.server.add_secure_port(address, credentials)
            if settings.health_port:
                self._health_server = aio.server()
                health_pb2_grpc.add_HealthServicer_to_server(self.health, self._health_server)
                self.health_port = self._health_server.add_insecure_port(
                    f"{settings.grpc_host}:{settings.health_port}"
                )
                await self._health_server.start()
        await self._connect()
        deps = Deps(self.name, settings, self.topics, self.producer, self.db)
        # kept: what build put in deps.extra (e.g. a port bound as 0) is readable afterwards
        self.deps = deps
        self._wiring = await self._build_when_ready(deps)
        names = [service.name for service in self._wiring.services]
        self.gate.admit_tables(
            (service.name, service.methods, service.access) for service in self._wiring.services
        )
        for service in self._wiring.services:
            service.add(service.servicer, guarded)
            await self.health.set(service.name, health_pb2.HealthCheckResponse.NOT_SERVING)
        reflection.enable_server_reflection(
            [*names, health.SERVICE_NAME, reflection.SERVICE_NAME], guarded
        )
        await self.server.start()
        for spec in self._wiring.consumers:
            loop = ConsumerLoop(
                spec,
                settings=settings,
                producer=self.producer,
                db=self.db if self.uses_store else None,
                group_prefix=settings.topic_prefix,
            )
            await loop.start()
            self._consumers.append(loop)
        tasks = list(self._wiring.tasks)
        if self._consumers:
            probe = GroupLagProbe(settings, {c.group: c.spec.topics for c in self._consumers})
            tasks.append(probe.run)
        waits = [self._wiring.ready] if self._wiring.ready is not None else []
        if self.directory is not None:
            # who may call is decided on the registry as of now: no unit call before it is read
            registry = TopicTail(
                settings,
                [self.topics.units],
                self.directory.on_event,
                from_beginning=True,
                caught_up=self.directory.read,
            )
            tasks.append(registry.run)
            waits.append(registry.caught_up.wait)
        tasks.append(self._watch_certificates)
        tasks.append(self._watch_dependencies)
        for task in tasks:
            self._tasks.append(asyncio.create_task(self._supervise(task)))
        if not waits:
            await self._report_serving(names)
        else:
            self._tasks.append(asyncio.create_task(self._serve_when(waits, names)))
        log.info(
            "service_started",
            grpc=f"{settings.grpc_host}:{self.grpc_port}",
            metrics=f"http://{settings.grpc_host}:{self.metrics_port}/metrics",
            database=self.database if self.uses_store else None,
            tls=credentials is not None,
        )

    async def _serve_when(
        self, waits: Sequence[Callable[[], Awaitable[object]]], names: list[str]
    ) -> None:
        try:
            for ready in waits:
                await ready()
        except Exception:
            # never SERVING (the probe keeps traffic away), but say why instead of a task
            # exception nobody reads
            log.exception("service_never_ready")
            raise
        await self._report_serving(names)

    async def _report_serving(self, names: list[str]) -> None:
        self._names = names
        if not self._degraded:
            await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        self.serving.set()
        log.info("service_serving")

    async def _set_health(self, status: int) -> None:
        for service_name in ["", *self._names]:
            await self.health.set(service_name, status)

    async def _probe(self, timeout: float) -> dict[str, bool]:
        """Whether the store and Kafka answer now (each within ``timeout``)."""
        checks = {"kafka": self.producer.ping}
        if self.uses_store:
            checks["store"] = lambda: ping(self.db)
        answers = {}
        for dependency, check in checks.items():
            try:
                await asyncio.wait_for(check(), timeout)
                answers[dependency] = True
            except Exception as exc:
                if not isinstance(exc, PROBE_FAILURES) and not is_infra_error(exc):
                    raise
                log.warning("dependency_probe_failed", dependency=dependency, error=repr(exc))
                answers[dependency] = False
            DEPENDENCY_UP.labels(self.name, dependency).set(1 if answers[dependency] else 0)
        return answers

    async def _watch_dependencies(self) -> None:
        """Health follows the dependencies: NOT_SERVING once the store or Kafka has been
        unreachable for ``dependency_grace_seconds``, SERVING again when both answer."""
        grace = self.settings.dependency_grace_seconds
        interval = max(0.2, min(5.0, grace / 3))
        clock = asyncio.get_running_loop().time
        down_since: float | None = None
        while True:
            answers = await self._probe(timeout=interval)
            if all(answers.values()):
                down_since = None
                if self._degraded:
                    self._degraded = False
                    log.info("dependencies_back", dependencies=sorted(answers))
                    if self.serving.is_set():
                        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
            else:
                down_since = clock() if down_since is None else down_since
                if not self._degraded and clock() - down_since >= grace:
                    self._degraded = True
                    down = sorted(name for name, up in answers.items() if not up)
                    log.error("dependencies_unreachable", dependencies=down, seconds=grace)
                    await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
            await asyncio.sleep(interval)

    def _credentials(self) -> grpc.ServerCredentials | None:
        """The server's TLS credentials, re-read at the next handshake after a certificate,
        key or client CA file changes (a rotated certificate needs no restart)."""
        settings = self.settings
        if settings.tls_cert is None or settings.tls_key is None:
            return None
        files = [settings.tls_cert, settings.tls_key, settings.tls_client_ca]
        stamp = _stamp(files)

        def configuration() -> grpc.ServerCertificateConfiguration:
            client_ca = settings.tls_client_ca.read_bytes() if settings.tls_client_ca else None
            return grpc.ssl_server_certificate_configuration(
                [(settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())],  # type: ignore[union-attr]
                root_certificates=client_ca,
            )

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            nonlocal stamp
            now = _stamp(files)
            if now == stamp:
                return None
            stamp = now
            log.info("tls_certificates_reloaded")
            return configuration()

        return grpc.dynamic_ssl_server_credentials(
            configuration(),
            fetch,  # type: ignore[arg-type]  # None means "unchanged" (grpc's documented contract)
            require_client_authentication=settings.tls_client_ca is not None,
        )

    async def _watch_certificates(self) -> None:
        """Days to expiry of every certificate this service holds, kept current."""
        settings = self.settings
        held = {
            "server": settings.tls_cert,
            "client_ca": settings.tls_client_ca,
            **self.held_certificates(),
        }
        while True:
            for label, path in held.items():
                if path is None:
                    continue
                try:
                    certificates = load_pem_certificates(path.read_bytes())
                except (OSError, ValueError) as exc:
                    log.warning("certificate_unreadable", certificate=label, error=str(exc))
                    continue
                if certificates:
                    soonest = min(days_to_expiry(c) for c in certificates)
                    CERTIFICATE_EXPIRY.labels(self.name, label).set(soonest)
            await asyncio.sleep(60)

    def held_certificates(self) -> dict[str, Path | None]:
        """Further certificates of the service (e.g. a client certificate for its calls)."""
        return {}

    async def _connect(self) -> None:
        """Wait until the store and Kafka answer; health stays NOT_SERVING meanwhile."""

        async def connect() -> None:
            if self.uses_store:
                await ping(self.db)
            await self.producer.start()
            if self.settings.kafka_create_topics:
                await ensure_topics(
                    self.settings, self.topics.all(), compacted=self.topics.compacted()
                )

        # any failure here means "not yet" (an unknown topic, a broker still electing, ...)
        await retry_while_down(connect, event="dependencies_not_ready", errors=(Exception,))

    async def _build_when_ready(self, deps: Deps[S]) -> Wiring:
        """Build the service (``build`` must be idempotent: it creates indexes); a dropped
        store or broker connection meanwhile is retried, like the first connection."""
        return await retry_while_down(lambda: self._build(deps), event="build_retry")

    async def _supervise(self, task: Callable[[], Awaitable[None]]) -> None:
        """Run a background task; restart it if it fails (it is meant to run until stopped)."""
        while True:
            try:
                await task()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background_task_failed", task=getattr(task, "__qualname__", "?"))
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        grace = self.settings.shutdown_grace_seconds
        log.info("service_stopping", grace_seconds=grace)
        await self.health.enter_graceful_shutdown()
        if self.server is not None:
            await self.server.stop(grace)
        for loop in self._consumers:
            await loop.stop()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # a task stuck inside a client library must not hold the shutdown forever
            _, stuck = await asyncio.wait(self._tasks, timeout=grace)
            for task in stuck:
                log.warning("background_task_did_not_stop", task=task.get_name())
        if self._wiring is not None:
            for hook in self._wiring.on_stop:
                await hook()
        try:
            await asyncio.wait_for(self.producer.stop(), timeout=grace)
        except TimeoutError:
            log.warning("producer_did_not_stop", seconds=grace)
        await self._mongo.close()
        if self._health_server is not None:
            await self._health_server.stop(0)
        if self.metrics is not None:
            self.metrics.close()
        log.info("service_stopped")


def _stamp(paths: Sequence[Path | None]) -> tuple[tuple[int, int], ...]:
    stamps = []
    for path in paths:
        if path is None:
            continue
        stat = path.stat()
        stamps.append((stat.st_mtime_ns, stat.st_size))
    return tuple(stamps)


def read_settings(settings_type: type[S]) -> S:
    """The service's settings from the environment; every problem printed, then exit 2."""
    try:
        return load_settings(settings_type)
    except SettingsError as exc:
        raise SystemExit(f"{exc}") from None


def run_service(name: str, settings_type: type[S], build: Build[S]) -> None:
    """Read ``settings_type`` from the environment, run until SIGTERM or SIGINT, then shut
    down gracefully."""
    settings = read_settings(settings_type)
    configure_logging(name, settings.log_level)
    asyncio.run(_serve(name, settings, build))


async def _serve(name: str, settings: S, build: Build[S]) -> None:
    app = ServiceApp(name, settings, build)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await app.start()
    await stop.wait()
    await app.stop()
    flush_tracing()
