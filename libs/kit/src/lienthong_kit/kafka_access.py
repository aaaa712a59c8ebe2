"""What each service reads and writes on Kafka, declared once: the source of its ACLs.

    python -m lienthong_kit.kafka_access      # the declaration as JSON

    from lienthong_kit.kafka_access import declared
    for access in declared().values():       # Topics() of production; a prefix for tests
        for acl in access.acls():             # (resource, name, pattern, operation)
            ...

The Strimzi KafkaUsers (deploy/k8s/components/kafka-strimzi/users.yaml) are generated from
this module and `make k8s-check` fails when they drift; local brokers with an authorizer take
their ACLs from it too. Each entry mirrors the service's wiring (``__main__.py``, its consumers
and producers): a group consumer reads its topics in its group and dead-letters to their
``.dlq`` twins; a tail reads outside any group (nothing committed, no group ACL); every
producer is idempotent (``enable_idempotence``), which since Kafka 3.0 (KIP-679) needs Write
on a topic and no cluster ACL (the gateway, which writes no topic, has the cluster's
IdempotentWrite instead); none is transactional.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from lienthong_kit.kafka import Topics

ResourceType = Literal["topic", "group", "cluster", "transactionalId"]
PatternType = Literal["literal", "prefix"]
Operation = Literal[
    "Read", "Write", "Create", "Describe", "DescribeConfigs", "IdempotentWrite", "All"
]

# faust creates its own topics, reads their configuration, and produces and consumes them.
OWNER_OPERATIONS: tuple[Operation, ...] = ("Read", "Write", "Create", "DescribeConfigs")
TRANSACTION_OPERATIONS: tuple[Operation, ...] = ("Write", "Describe")

# faust's table name in reporting-service (reporting_service.app.FACTS_TABLE).
REPORTING_FACTS_TABLE = "facts"


class Acl(NamedTuple):
    """One allowed operation on one resource (Kafka's ``simple`` authorizer; allow only)."""

    resource: ResourceType
    name: str  # "" for the cluster
    pattern: PatternType
    operation: Operation


@dataclass(frozen=True)
class GroupConsumer:
    """A consumer group; the kit's ConsumerLoop (and faust) dead-letter to the ``.dlq`` twins."""

    group: str
    topics: tuple[str, ...]
    dead_letters: bool = True


@dataclass(frozen=True)
class KafkaAccess:
    """One service's principal (its KafkaUser, CN=<service>) and everything it may do."""

    service: str
    summary: str  # one line for the KafkaUser's comment
    writes: tuple[str, ...] = ()
    groups: tuple[GroupConsumer, ...] = ()
    tails: tuple[str, ...] = ()  # read outside any group (TopicTail, read_range)
    # Topics the service creates and owns by name prefix (faust's changelog and leader topic).
    owned_prefix: str | None = None
    idempotent: bool = True
    transactional_ids: tuple[str, ...] = ()
    cluster: tuple[Operation, ...] = field(default=())

    def reads(self) -> set[str]:
        return {t for g in self.groups for t in g.topics} | set(self.tails)

    def dead_letter_topics(self) -> set[str]:
        return {Topics.dlq(t) for g in self.groups if g.dead_letters for t in g.topics}

    def acls(self) -> set[Acl]:
        """Read and Write imply Describe in Kafka: no separate Describe entries."""
        return set(self._acls())

    def _acls(self) -> Iterator[Acl]:
        for topic in self.reads():
            yield Acl("topic", topic, "literal", "Read")
        for topic in {*self.writes, *self.dead_letter_topics()}:
            yield Acl("topic", topic, "literal", "Write")
        for consumer in self.groups:
            yield Acl("group", consumer.group, "literal", "Read")
        if self.owned_prefix is not None:
            for op in OWNER_OPERATIONS:
                yield Acl("topic", self.owned_prefix, "prefix", op)
        for transactional_id in self.transactional_ids:
            for op in TRANSACTION_OPERATIONS:
                yield Acl("transactionalId", transactional_id, "literal", op)
        for op in self.cluster:
            yield Acl("cluster", "", "literal", op)


def declared(topics: Topics | None = None) -> dict[str, KafkaAccess]:
    """Every service's Kafka access, by service name, for ``topics`` (production's by default)."""
    t = topics or Topics()
    deliveries = tuple(t.all_deliveries)
    reporting = t.group("reporting-service")
    services = [
        KafkaAccess(
            "document-service",
            "submissions and transitions out (outboxes); inboxes, verdicts and the audit log in;"
            " WatchInbox tails the deliveries",
            writes=(t.documents, t.deliveries, t.audit_checkpoints),
            groups=(
                GroupConsumer(t.group("document-service"), deliveries),
                GroupConsumer(t.group("document-service-verifications"), (t.verifications,)),
                GroupConsumer(
                    t.group("document-service-audit"),
                    (t.documents, *deliveries, t.units, t.operator_actions),
                ),
            ),
            tails=(*deliveries, t.units, t.audit_checkpoints),
        ),
        KafkaAccess(
            "signature-service",
            "documents in, verdicts out",
            writes=(t.verifications, t.operator_actions),
            groups=(GroupConsumer(t.group("signature-service"), (t.documents,)),),
            tails=(t.units,),
        ),
        KafkaAccess(
            "routing-service",
            "verdicts in, deliveries out; keeps the unit registry on the compacted units topic",
            writes=(*deliveries, t.units),
            groups=(GroupConsumer(t.group("routing-service"), (t.verifications,)),),
            tails=(t.units,),
        ),
        KafkaAccess(
            "notification-service",
            "deliveries and verdicts in, notification outcomes out; WatchNotifications tails them",
            writes=(t.notifications,),
            groups=(
                GroupConsumer(t.group("notification-service"), (*deliveries, t.verifications)),
            ),
            tails=(t.notifications, t.units),
        ),
        KafkaAccess(
            "reporting-service",
            "the faust app: lifecycle events in (group reporting-service), its table's changelog"
            f" ({reporting}-{REPORTING_FACTS_TABLE}-changelog) and assignor topic; the registry"
            " tailed from the units topic",
            groups=(GroupConsumer(reporting, (t.documents, *deliveries, t.verifications)),),
            tails=(t.units,),
            owned_prefix=f"{reporting}-",
            # faust reads the cluster's metadata (controller, brokers) when it declares topics
            cluster=("Describe",),
        ),
        KafkaAccess(
            "gateway-service",
            "the edXML gateway and its axis bridge: deliveries in (to external agencies out"
            " through the national axis, answers to external senders back as status packages);"
            " tails the unit registry to admit its callers",
            groups=(GroupConsumer(t.group("gateway-service-axis"), deliveries),),
            tails=(t.units,),
            # the kit's idempotent producer must get a producer id to start, which without
            # Write on any topic takes this (it writes nothing: no topic Write is granted)
            cluster=("IdempotentWrite",),
        ),
    ]
    return {access.service: access for access in services}


def reporting_changelog(topics: Topics | None = None) -> str:
    """The faust table's changelog topic (``<app id>-<table>-changelog``)."""
    return f"{(topics or Topics()).group('reporting-service')}-{REPORTING_FACTS_TABLE}-changelog"


def as_json(topics: Topics | None = None) -> str:
    """The declaration as JSON (deploy/k8s/kafka_users.py reads it without the kit)."""
    return json.dumps(
        {
            name: {"summary": access.summary, "acls": [list(acl) for acl in sorted(access.acls())]}
            for name, access in declared(topics).items()
        },
        indent=1,
    )


if __name__ == "__main__":
    print(as_json())
