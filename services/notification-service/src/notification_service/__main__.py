"""notification-service: tells clerks and leaders what arrived, on the channels they use.

python -m notification_service        (configuration: LIENTHONG_* variables, docs/configuration.md)
"""

from __future__ import annotations

from lienthong.notification.v1 import notification_service_pb2
from lienthong.notification.v1.notification_service_pb2_grpc import (
    add_NotificationServiceServicer_to_server,
)
from lienthong_kit.kafka import TopicTail
from lienthong_kit.server import Deps, GrpcService, Wiring, run_service
from notification_service.access import ACCESS
from notification_service.api import NotificationServicer
from notification_service.channels import (
    Channel,
    EmailChannel,
    HttpClient,
    SmsChannel,
    WebhookChannel,
)
from notification_service.consumers import EventHandler, consumer_specs
from notification_service.dispatch import ChannelWorker, Dispatcher
from notification_service.egress import EgressGuard
from notification_service.notifier import Notifier
from notification_service.reminders import Reminders
from notification_service.settings import Settings, parse_quiet_hours
from notification_service.store import JobStore, NotificationStore, ReminderStore
from notification_service.timing import Clock, SystemClock
from notification_service.watch import NotificationHub

NAME = "notification-service"


async def build(deps: Deps[Settings], *, clock: Clock | None = None) -> Wiring:
    """The service; tests inject a clock with ``functools.partial(build, clock=...)``."""
    settings = deps.settings
    time_source = clock or SystemClock()
    store, jobs, reminder_store = (
        NotificationStore(deps.db),
        JobStore(deps.db),
        ReminderStore(deps.db),
    )
    for indexed in (store, jobs, reminder_store):
        await indexed.create_indexes()
    reminders = Reminders(
        reminder_store,
        clock=time_source,
        lead_days=settings.reminder_lead_days,
        overdue=settings.reminder_overdue,
        poll_seconds=settings.reminder_poll_seconds,
    )
    notifier = Notifier(
        store,
        producer=deps.producer,
        topics=deps.topics,
        clock=time_source,
        quiet_hours=parse_quiet_hours(settings.quiet_hours),
        producer_name=NAME,
    )
    reminders.on_fire(notifier.record)
    http = HttpClient(settings.send_timeout_seconds)
    # webhook URLs are the units' choice: guarded (egress.py); the SMS gateway is the operator's
    guard = EgressGuard.of(settings.webhook_allow)
    webhook_http = HttpClient(settings.send_timeout_seconds, guard)
    rates = {
        "email": settings.rate_email,
        "sms": settings.rate_sms,
        "webhook": settings.rate_webhook,
    }
    channels: list[Channel] = [
        EmailChannel(settings),
        SmsChannel(settings, http),
        WebhookChannel(store, webhook_http),
    ]
    dispatcher = Dispatcher(
        [
            ChannelWorker(
                channel,
                jobs,
                clock=time_source,
                rate=rates[channel.name],
                concurrency=settings.concurrency,
                max_attempts=settings.max_attempts,
                backoff_seconds=settings.backoff_seconds,
                backoff_max_seconds=settings.backoff_max_seconds,
                send_timeout_seconds=settings.send_timeout_seconds,
                poll_seconds=settings.poll_seconds,
                sweep_seconds=settings.sweep_seconds,
            )
            for channel in channels
        ]
    )
    notifier.on_jobs(dispatcher.wake)
    hub = NotificationHub(store.notification)
    tail = TopicTail(settings, [deps.topics.notifications], hub.on_event, wanted=hub.watched)
    hub.follows(tail.positioned)
    return Wiring(
        services=[
            GrpcService.of(
                notification_service_pb2,
                "NotificationService",
                add_NotificationServiceServicer_to_server,
                NotificationServicer(store, hub, guard, reminder_store),
                access=ACCESS,
            )
        ],
        consumers=consumer_specs(NAME, deps.topics, EventHandler(notifier, reminders)),
        tasks=[reminders.run, tail.run, *(w.run for w in dispatcher.workers.values())],
        on_stop=[http.close, webhook_http.close],
        # a watcher connected before the tail has its offsets would miss live notifications
        ready=tail.positioned.wait,
    )


def main() -> None:
    run_service(NAME, Settings, build)


if __name__ == "__main__":
    main()
