"""reporting-service: a faust-streaming worker folding lifecycle events into adoption counts,
with the kit's gRPC server (health, reflection, metrics) running inside the same worker.

    python -m reporting_service
"""

from __future__ import annotations

import asyncio

import faust
import mode

from lienthong.reporting.v1 import reporting_service_pb2
from lienthong.reporting.v1.reporting_service_pb2_grpc import add_ReportingServiceServicer_to_server
from lienthong_kit.failpoints import arm
from lienthong_kit.kafka import GroupLagProbe, TopicTail, ensure_topics
from lienthong_kit.kafka.security import kafka_ssl_context
from lienthong_kit.logs import configure_logging, get_logger
from lienthong_kit.server import Deps, GrpcService, ServiceApp, Wiring
from lienthong_kit.settings import load_settings
from reporting_service.access import ACCESS
from reporting_service.api import ReportingServicer
from reporting_service.consumers import ReportingApp
from reporting_service.faust_guards import log_state_on_signal, skip_hook
from reporting_service.settings import Settings

NAME = "reporting-service"
log = get_logger(__name__)


class RpcBridge(mode.Service):
    """Runs the kit's ServiceApp (gRPC, health, metrics) as a service of the faust worker."""

    def __init__(self, service: ServiceApp[Settings], app: faust.App) -> None:
        super().__init__()
        self.service = service
        self.app = app

    async def on_start(self) -> None:
        log.info("event_loop", loop=type(asyncio.get_running_loop()).__module__)
        log_state_on_signal(self.app)
        await self.service.start()

    async def on_stop(self) -> None:
        await self.service.stop()


def create(settings: Settings) -> tuple[ReportingApp, ServiceApp[Settings]]:
    holder: dict[str, ReportingApp] = {}

    async def build(deps: Deps[Settings]) -> Wiring:
        reporting = holder["app"]
        servicer = ReportingServicer(reporting)
        registry = TopicTail(
            settings, [deps.topics.units], reporting.on_unit_event, from_beginning=True
        )
        reporting.registry_read = registry.caught_up
        # faust's group is not a kit consumer loop: its lag is read from the broker here
        lag = GroupLagProbe(settings, {reporting.group: reporting.source_topics})

        async def ready() -> None:
            # SERVING once the counts are rebuilt from the table and the registry is read
            await reporting.ready.wait()
            await reporting.registry_read.wait()

        return Wiring(
            tasks=[registry.run, reporting.gauges_loop, lag.run],
            ready=ready,
            services=[
                GrpcService.of(
                    reporting_service_pb2,
                    "ReportingService",
                    add_ReportingServiceServicer_to_server,
                    servicer,
                    access=ACCESS,
                )
            ],
        )

    service = ServiceApp(NAME, settings, build, store=False)
    reporting = ReportingApp(
        topics=service.topics,
        bootstrap=settings.kafka_bootstrap,
        partitions=settings.kafka_partitions,
        replication_factor=settings.kafka_replication_factor,
        data_dir=settings.data_dir,
        producer=service.producer,
        skip=skip_hook(settings.failpoints),
        kafka_ssl=kafka_ssl_context(settings),
    )
    holder["app"] = reporting
    return reporting, service


def main() -> None:
    settings = load_settings(Settings)
    # faust's INFO lines are its rebalances, recoveries and stops: what an operator needs to
    # see when the counts lag (none is per event).
    configure_logging(
        NAME,
        settings.log_level,
        libraries_at_level=("faust", "mode", "aiokafka.consumer.group_coordinator"),
    )
    reporting, service = create(settings)
    arm(settings.failpoints)
    # The changelog exists with the sources' partition count before faust starts, or the
    # agent's first write fails faust's co-partitioning check (docs/reporting.md).
    asyncio.run(
        ensure_topics(
            settings,
            [*reporting.source_topics, reporting.changelog],
            compacted=[reporting.changelog],
        )
    )
    worker = faust.Worker(
        reporting.app,
        RpcBridge(service, reporting.app),
        loglevel=settings.log_level.upper(),
        override_logging=False,
        redirect_stdouts=False,
        quiet=True,
    )
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
