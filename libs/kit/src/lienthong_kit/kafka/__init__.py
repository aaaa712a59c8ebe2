"""Kafka for every service: topic names, the idempotent producer and the consumer loop.

    topics = Topics(settings.topic_prefix)
    producer = EventProducer(settings, client_id="document-service")
    await producer.publish(topics.documents, key=document_id, envelope=envelope)

    loop = ConsumerLoop(
        ConsumerSpec(group="routing-service", topics=[topics.verifications], handler=on_event),
        settings=settings, producer=producer, db=db,
    )

The loop's contract: an offset is committed only after the handler's effect is stored (or the
record is dead-lettered); an event id already applied by the group is skipped; a handler
failure is retried with exponential backoff and jitter up to ``consumer_max_attempts``, then
the record goes to the topic's dead-letter twin with the reason in its headers. A
``PoisonEvent`` goes there at once. An outage of Kafka or the store is not the event's fault:
it is retried until the dependency answers again, and never dead-letters an event.

Every record carries the producer's trace (W3C ``traceparent`` header); the loop and the
tails run each handler in a span that continues it (see lienthong_kit.tracing).

Modules: ``topics`` (names, dead-letter headers), ``admin`` (``ensure_topics``),
``producer``, ``ranges`` (``read_range``), ``consumer`` (the loop; ``FetchPacing``, how long an
idle client's fetches are held), ``tail`` (``TopicTail``), ``security`` (``kafka_security``:
the TLS arguments every one of them connects with).
"""

from lienthong_kit.infra import INFRA_ERRORS
from lienthong_kit.kafka.admin import ensure_topics
from lienthong_kit.kafka.consumer import (
    METADATA_MAX_AGE_MS,
    ConsumerLoop,
    ConsumerSpec,
    FetchPacing,
    Handler,
    Staging,
)
from lienthong_kit.kafka.lag import GroupLagProbe
from lienthong_kit.kafka.producer import EventProducer
from lienthong_kit.kafka.ranges import read_range
from lienthong_kit.kafka.security import kafka_security
from lienthong_kit.kafka.tail import TopicTail
from lienthong_kit.kafka.topics import Topics, dead_letter_headers

__all__ = [
    "INFRA_ERRORS",
    "METADATA_MAX_AGE_MS",
    "ConsumerLoop",
    "ConsumerSpec",
    "EventProducer",
    "FetchPacing",
    "GroupLagProbe",
    "Handler",
    "Staging",
    "TopicTail",
    "Topics",
    "dead_letter_headers",
    "ensure_topics",
    "kafka_security",
    "read_range",
]
