"""The declared Kafka access: every service's flows, and the ACLs they need."""

from __future__ import annotations

import json

from lienthong_kit.kafka import Topics
from lienthong_kit.kafka_access import Acl, as_json, declared, reporting_changelog


def read(topic: str) -> Acl:
    return Acl("topic", topic, "literal", "Read")


def write(topic: str) -> Acl:
    return Acl("topic", topic, "literal", "Write")


def group(name: str) -> Acl:
    return Acl("group", name, "literal", "Read")


def test_document_service_reads_verdicts_in_its_group_and_dead_letters_them() -> None:
    acls = declared()["document-service"].acls()
    assert read("lienthong.verifications") in acls
    assert group("document-service-verifications") in acls
    assert write("lienthong.verifications.dlq") in acls


def test_notification_service_reads_verdicts_and_tails_its_notifications() -> None:
    acls = declared()["notification-service"].acls()
    assert read("lienthong.verifications") in acls
    assert read("lienthong.notifications") in acls
    assert write("lienthong.notifications") in acls


def test_no_service_writes_a_topic_it_does_not_produce() -> None:
    # signature-service's verdicts are the only ones: nobody else may forge ACCEPTED
    writers = {
        name
        for name, access in declared().items()
        if write("lienthong.verifications") in access.acls()
    }
    assert writers == {"signature-service"}
    units = {
        name for name, access in declared().items() if write("lienthong.units") in access.acls()
    }
    assert units == {"routing-service"}


def test_every_consumed_topic_has_its_dead_letter_twin_writable() -> None:
    for access in declared().values():
        for consumer in access.groups:
            for topic in consumer.topics:
                assert write(Topics.dlq(topic)) in access.acls(), (access.service, topic)


def test_reporting_service_owns_its_faust_topics_by_prefix() -> None:
    access = declared()["reporting-service"]
    assert reporting_changelog() == "reporting-service-facts-changelog"
    assert reporting_changelog().startswith(access.owned_prefix or "\0")
    assert group("reporting-service") in access.acls()
    assert Acl("topic", "reporting-service-", "prefix", "Create") in access.acls()


def test_a_prefix_renames_topics_and_groups() -> None:
    access = declared(Topics("t1."))["signature-service"]
    assert access.acls() == {
        read("t1.lienthong.documents"),
        write("t1.lienthong.documents.dlq"),
        write("t1.lienthong.verifications"),
        write("t1.lienthong.operator-actions"),  # trust-store changes, for the audit chain
        read("t1.lienthong.units"),  # the registry every gatekeeper reads
        group("t1.signature-service"),
    }


def test_json_lists_every_service() -> None:
    data = json.loads(as_json())
    assert set(data) == set(declared())
    assert ["group", "routing-service", "literal", "Read"] in data["routing-service"]["acls"]


def test_the_gateway_reads_the_registry_and_deliveries_and_writes_only_dead_letters() -> None:
    # the registry admits its callers, the axis bridge takes deliveries to external agencies;
    # it produces no event: a gateway pod cannot forge one on any topic
    assert declared()["gateway-service"].acls() == {
        read("lienthong.units"),
        read("lienthong.deliveries"),
        read("lienthong.deliveries.urgent"),
        Acl("group", "gateway-service-axis", "literal", "Read"),
        write("lienthong.deliveries.dlq"),
        write("lienthong.deliveries.urgent.dlq"),
        Acl("cluster", "", "literal", "IdempotentWrite"),  # a producer id, to start the producer
    }
