"""Trust managed at run time (issue #17): an operator adds an intermediate CA with its
hierarchy, every replica uses it at once and after a restart, and removes it again."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization

from lienthong.signature.v1 import signature_service_pb2 as pb
from lienthong.signature.v1.signature_service_pb2_grpc import SignatureServiceStub
from lienthong_testing.callers import TRUST_ADMIN
from lienthong_testing.pki import LocalPki
from lienthong_testing.waiting import eventually
from signature_service.pki import fingerprint, parse_certificates


async def test_an_operator_adds_and_removes_an_intermediate_on_every_replica(
    start_signature: Any, pki: LocalPki
) -> None:
    supplied = {
        "LIENTHONG_SIGNATURE_REVOCATION_DIR": str(pki.folder / "supplied"),
        "LIENTHONG_SIGNATURE_TRUST_RELOAD_SECONDS": "0.2",
    }
    first = await start_signature(**supplied)
    second = await start_signature(**supplied)  # another replica on the same store
    assert pki.silent_ca_file is not None
    ca_pem = pki.silent_ca_file.read_bytes()
    sha256 = fingerprint(parse_certificates(ca_pem)[0])
    signer = pki.signers["silent-ca"].cert.public_bytes(serialization.Encoding.DER)
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{first.grpc_port}") as one,
        grpc.aio.insecure_channel(f"127.0.0.1:{second.grpc_port}") as two,
    ):
        a, b = SignatureServiceStub(one), SignatureServiceStub(two)
        check = pb.ValidateCertificateRequest(certificate=signer)
        before = await b.ValidateCertificate(check, metadata=TRUST_ADMIN)
        assert not before.valid
        assert "no chain" in before.reason
        reply = await a.AddTrustAnchor(
            pb.AddTrustAnchorRequest(certificate=ca_pem, hierarchy=pb.HIERARCHY_PUBLIC),
            metadata=TRUST_ADMIN,
        )
        assert reply.added
        assert reply.anchor.intermediate
        # the other replica picks it up from the store on its next reload
        listed = await eventually(
            lambda: b.ListTrustAnchors(pb.ListTrustAnchorsRequest(), metadata=TRUST_ADMIN),
            until=lambda r: any(i.sha256 == sha256 for i in r.intermediates),
        )
        mine = [i for i in listed.intermediates if i.sha256 == sha256]
        assert [(i.hierarchy, i.intermediate) for i in mine] == [(pb.HIERARCHY_PUBLIC, True)]
        after = await b.ValidateCertificate(check, metadata=TRUST_ADMIN)
        assert after.valid, after.reason
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await a.RemoveTrustAnchor(
                pb.RemoveTrustAnchorRequest(sha256="abc"), metadata=TRUST_ADMIN
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        removed = await a.RemoveTrustAnchor(
            pb.RemoveTrustAnchorRequest(sha256=sha256), metadata=TRUST_ADMIN
        )
        assert removed.removed
        again = await a.ValidateCertificate(check, metadata=TRUST_ADMIN)
        assert not again.valid
