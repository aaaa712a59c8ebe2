"""Test support shared by every test tier: waiting for conditions, isolated namespaces and
settings, and a local PKI (CA, signers, CRL, OCSP, signed PDFs). Production packages never
import it."""
