"""The audit log's offline checks, shared by document-service (VerifyAudit) and the `lienthong`
command (audit verify, evidence bundles): pure protobuf and cryptography, no platform access."""
