"""A trust anchor added by an operator is announced, with who added it, for the audit chains."""

from __future__ import annotations

from typing import Any

import grpc

from lienthong.events.v1.events_pb2 import OperatorAction
from lienthong.signature.v1 import signature_service_pb2 as pb
from lienthong.signature.v1.signature_service_pb2_grpc import SignatureServiceStub
from lienthong_kit.envelope import decode_envelope, unpack
from lienthong_kit.server import ServiceApp
from lienthong_testing.callers import TRUST_ADMIN
from lienthong_testing.pki import LocalPki
from signature_service.pki import fingerprint, parse_certificates


async def test_an_added_trust_anchor_is_announced_once_with_its_actor(
    start_signature: Any, pki: LocalPki, topic_reader: Any
) -> None:
    app: ServiceApp = await start_signature()
    root = pki.unknown_root_file.read_bytes()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = SignatureServiceStub(channel)
        meta = TRUST_ADMIN
        assert (
            await stub.AddTrustAnchor(pb.AddTrustAnchorRequest(certificate=root), metadata=meta)
        ).added
        again = await stub.AddTrustAnchor(pb.AddTrustAnchorRequest(certificate=root), metadata=meta)
        assert not again.added  # nothing changed: nothing announced
    records = await topic_reader(app.topics.operator_actions, 1)
    assert len(records) == 1
    action = unpack(decode_envelope(records[0].value), OperatorAction)
    assert (action.actor, action.action) == (
        "operator/trust-admin/test-admin",
        "trust_anchor.added",
    )
    assert action.target == fingerprint(parse_certificates(root)[0])
    assert action.details["subject"].startswith("CN=Unknown Root CA")
