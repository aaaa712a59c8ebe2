"""Who may call signature-service's RPCs (docs/security.md shows this table as the matrix)."""

from __future__ import annotations

from lienthong.signature.v1 import signature_service_pb2
from lienthong_kit.authz import AccessTable, Role, either, operators, units, units_or_gateway

ACCESS = AccessTable.of(
    signature_service_pb2,
    "SignatureService",
    {
        "GetVerification": either(
            units("the document's sender and the recipients it names"),
            operators(Role.OBSERVER, scope="any document"),
        ),
        "VerifyDocument": units_or_gateway("a pre-check: nothing is stored"),
        "VerifyAttachments": units_or_gateway(
            "a pre-check of the caller's own uploads: nothing is stored"
        ),
        "ValidateCertificate": either(
            units_or_gateway(), operators(Role.TRUST_ADMIN), scope="nothing is stored"
        ),
        "ListTrustAnchors": either(units(), operators(*Role), scope="the province's trust store"),
        "AddTrustAnchor": operators(Role.TRUST_ADMIN, scope="the province's trust store; audited"),
        "RemoveTrustAnchor": operators(
            Role.TRUST_ADMIN, scope="the province's trust store; audited"
        ),
    },
)
