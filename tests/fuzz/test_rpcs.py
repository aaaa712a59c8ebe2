"""Every RPC of every service called with requests generated from its descriptor.

The requests are built from the generated descriptors (libs/proto), so a new RPC or field is
fuzzed without a change here: huge, empty and unicode-hostile strings, deeply repeated values,
out-of-range numbers and enum values, nested messages. Each call is made as an identity the
service's access table admits, so the handler (not the gatekeeper) answers. Every answer must
be OK or a client error; never INTERNAL or UNKNOWN, and every service stays SERVING.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from document_service.access import ACCESS as DOCUMENT_ACCESS
from lienthong.document.v1 import document_service_pb2
from lienthong.notification.v1 import notification_service_pb2
from lienthong.reporting.v1 import reporting_service_pb2
from lienthong.routing.v1 import routing_service_pb2
from lienthong.signature.v1 import signature_service_pb2
from lienthong_kit.authz import AccessTable, Role
from lienthong_local.platform import Platform
from lienthong_testing.callers import as_identity, as_service, as_unit
from notification_service.access import ACCESS as NOTIFICATION_ACCESS
from reporting_service.access import ACCESS as REPORTING_ACCESS
from routing_service.access import ACCESS as ROUTING_ACCESS
from signature_service.access import ACCESS as SIGNATURE_ACCESS

pytestmark = pytest.mark.e2e

SENDER = "000.00.00.H23"  # a unit of the sample registry
SERVICES: list[tuple[str, Any, AccessTable]] = [
    ("document-service", document_service_pb2, DOCUMENT_ACCESS),
    ("signature-service", signature_service_pb2, SIGNATURE_ACCESS),
    ("notification-service", notification_service_pb2, NOTIFICATION_ACCESS),
    ("reporting-service", reporting_service_pb2, REPORTING_ACCESS),
    # last: its writers may close or rename the units the other RPCs call as
    ("routing-service", routing_service_pb2, ROUTING_ACCESS),
]
CLIENT_ERRORS = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
}
# a server stream is cut by the client's deadline: that ends a watch, it is no failure
STREAM_ENDS = {grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
FULL = os.environ.get("LIENTHONG_FUZZ") == "full"  # make faults: the long round
EXAMPLES = 300 if FULL else 25
#: requests sent, per service (docs/benchmarks.md, "Faults and fuzzing")
SENT: collections.Counter[str] = collections.Counter()


def methods() -> Iterator[Any]:
    for service_name, module, table in SERVICES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                yield pytest.param(service_name, method, table, id=f"{service.name}.{method.name}")


def caller(table: AccessTable, method: str) -> tuple[tuple[str, str], ...]:
    """An identity the method's rule admits (so the handler, not the gatekeeper, answers)."""
    rule = table.rule(method)
    assert rule is not None, f"{method} has no rule"
    if rule.units or rule.public:
        return as_unit(SENDER)
    if rule.roles:
        role = min(rule.roles, key=list(Role).index)
        return as_identity(f"operator/{role}/fuzzer")
    return as_service(min(rule.services))


HOSTILE_TEXT = [
    "",
    " ",
    "\x00",
    "\u202e\u200f\u200b",  # bidi override, RTL mark, zero-width space
    "\ufeff",
    "Ủy ban nhân dân tỉnh Phú Thọ",
    "𝕏" * 64,
    "../../etc/passwd",
    "${jndi:ldap://x}",
    "' OR 1=1 --",
    '{"$where": "sleep(1000)"}',
    "$gt",
    "a.b.c",
    "000.00.00.H23",
    "2026-02-30",
    "9" * 40,
    "-1",
    "NaN",
]


def huge_text() -> st.SearchStrategy[str]:
    # past every field's bound; the largest (4.8 MB) also past a small receive limit
    return st.builds(
        lambda char, size: char * size,
        st.sampled_from(["a", "é", "\u202e", "\x00", "𝕏", "000.00.00.H23,"]),
        st.sampled_from([129, 513, 2_001, 100_000, 1_200_000]),
    )


def text(small: bool) -> st.SearchStrategy[str]:
    hostile = st.sampled_from(HOSTILE_TEXT)
    short = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
    return st.one_of(hostile, short) if small else st.one_of(hostile, short, huge_text())


INT_BOUNDS = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def scalar(field: FieldDescriptor, small: bool) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return text(small)
    if kind == FieldDescriptor.TYPE_BYTES:
        if small:
            return st.binary(max_size=64)
        return st.one_of(
            st.binary(max_size=64),
            st.builds(lambda size: b"\x00" * size, st.sampled_from([100_000, 2_000_000])),
        )
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32)
    if kind == FieldDescriptor.TYPE_ENUM:
        known = [value.number for value in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-3, 1000))
    low, high = INT_BOUNDS[kind]
    return st.one_of(st.sampled_from([0, 1, -1 if low else 2, low, high]), st.integers(low, high))


def message(
    descriptor: Descriptor, depth: int = 0, small: bool = False
) -> st.SearchStrategy[dict[str, Any]]:
    """A plan for one message: a value for some of its fields (nested up to a depth).

    ``small``: inside a repeated field, values stay small and lists short, so a request stays
    within tens of MB (one huge value repeated 5,000 times would not)."""
    if depth > 3:
        return st.just({})
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        is_list = field.is_repeated
        inner = small or is_list or depth > 0  # huge values at the top level only
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                key = scalar(field.message_type.fields_by_name["key"], True)
                value_field = field.message_type.fields_by_name["value"]
                value = (
                    message(value_field.message_type, depth + 1, True)
                    if value_field.type == FieldDescriptor.TYPE_MESSAGE
                    else scalar(value_field, True)
                )
                fields[field.name] = st.dictionaries(key, value, max_size=3)
                continue
            element: st.SearchStrategy[Any] = st.deferred(
                lambda f=field, inner=inner: message(f.message_type, depth + 1, inner)
            )
        else:
            element = scalar(field, inner)
        if not is_list:
            fields[field.name] = element
        elif small:
            fields[field.name] = st.lists(element, max_size=3)
        else:
            # deeply repeated: one value many times (bounds and duplicate checks)
            fields[field.name] = st.one_of(
                st.lists(element, max_size=4),
                st.builds(lambda v, n: [v] * n, element, st.sampled_from([201, 5_000])),
            )
    if not fields:
        return st.just({})
    return st.fixed_dictionaries({}, optional=fields)


def build(descriptor: Descriptor, plan: dict[str, Any]) -> Message:
    target = GetMessageClass(descriptor)()
    fill(target, plan)
    return target


def fill(target: Message, plan: dict[str, Any]) -> None:
    for name, value in plan.items():
        field = target.DESCRIPTOR.fields_by_name[name]
        slot = getattr(target, name)
        if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            for key, item in value.items():
                if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                    fill(slot[key], item)
                else:
                    slot[key] = item
        elif field.is_repeated:
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                for item in value:
                    fill(slot.add(), item)
            else:
                slot.extend(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            slot.SetInParent()
            fill(slot, value)
        else:
            setattr(target, name, value)


def call(
    platform: Platform, service: str, method: MethodDescriptor, requests: list[Message], who: Any
) -> tuple[grpc.StatusCode, str]:
    path = f"/{method.containing_service.full_name}/{method.name}"
    reply_type = GetMessageClass(method.output_type)
    options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
    with grpc.insecure_channel(platform.endpoint(service), options=options) as channel:
        try:
            if method.client_streaming:
                stub = channel.stream_unary(
                    path, lambda m: m.SerializeToString(), reply_type.FromString
                )
                stub(iter(requests), metadata=who, timeout=60)
            elif method.server_streaming:
                stream = channel.unary_stream(
                    path, lambda m: m.SerializeToString(), reply_type.FromString
                )
                for _ in stream(requests[0], metadata=who, timeout=1.5):
                    pass
            else:
                unary = channel.unary_unary(
                    path, lambda m: m.SerializeToString(), reply_type.FromString
                )
                unary(requests[0], metadata=who, timeout=60)
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def assert_serving(platform: Platform, service: str) -> None:
    process = platform.processes[service]
    assert process.process.poll() is None, f"{service} exited: see {process.log_path}"
    assert process.health(timeout=10) == health_pb2.HealthCheckResponse.SERVING, service


@pytest.mark.timeout(1800 if FULL else 600)
@pytest.mark.parametrize(("service", "method", "table"), list(methods()))
def test_every_answer_is_ok_or_a_client_error(
    fuzz_platform: Platform, service: str, method: MethodDescriptor, table: AccessTable
) -> None:
    who = caller(table, method.name)
    plans = st.lists(message(method.input_type), min_size=1, max_size=3)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        # the same examples on every CI run (a failure is reproducible); random under make faults
        derandomize=not FULL,
        suppress_health_check=list(HealthCheck),
    )
    @given(plans)
    def fuzz(requests: list[dict[str, Any]]) -> None:
        built = [build(method.input_type, plan) for plan in requests]
        status, details = call(fuzz_platform, service, method, built, who)
        SENT[service] += 1
        allowed = CLIENT_ERRORS | (STREAM_ENDS if method.server_streaming else set())
        assert status in allowed, (
            f"{method.full_name} answered {status.name} ({details}) to {built[0]!s:.2000}"
        )

    fuzz()
    assert_serving(fuzz_platform, service)


def test_every_service_is_still_serving(fuzz_platform: Platform) -> None:
    for name in fuzz_platform.processes:
        assert_serving(fuzz_platform, name)
    print(f"\nfuzz requests per service: {dict(SENT)}")
