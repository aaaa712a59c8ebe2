"""How every Kafka client of the kit (and faust's) connects: plaintext, or TLS with the
service's client certificate (its principal ``User:CN=<service>``, whose ACLs are declared in
lienthong_kit.kafka_access).

    AIOKafkaProducer(bootstrap_servers=..., **kafka_security(settings))
"""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka.helpers import create_ssl_context

from lienthong_kit.settings import KitSettings, SettingsError

__all__ = ["PROTOCOLS", "kafka_security", "kafka_security_problems", "kafka_ssl_context"]

PROTOCOLS = ("PLAINTEXT", "SSL")


def kafka_security_problems(settings: KitSettings) -> list[str]:
    """What is wrong with the Kafka TLS settings, one line each (empty when nothing)."""
    problems = []
    protocol = settings.kafka_security_protocol
    if protocol not in PROTOCOLS:
        problems.append(f"LIENTHONG_KAFKA_SECURITY_PROTOCOL: {protocol!r} is not PLAINTEXT or SSL")
    if (settings.kafka_tls_cert is None) != (settings.kafka_tls_key is None):
        problems.append("LIENTHONG_KAFKA_TLS_CERT and LIENTHONG_KAFKA_TLS_KEY must be set together")
    tls_files = ("kafka_tls_ca", "kafka_tls_cert", "kafka_tls_key")
    if protocol == "PLAINTEXT" and any(getattr(settings, name) for name in tls_files):
        # a certificate that is silently not used would leave the operator believing in TLS
        problems.append(
            "LIENTHONG_KAFKA_TLS_* are set but LIENTHONG_KAFKA_SECURITY_PROTOCOL is PLAINTEXT"
        )
    for name in tls_files:
        path = getattr(settings, name)
        if path is not None and not path.is_file():
            problems.append(f"LIENTHONG_{name.upper()}: no such file: {path}")
    return problems


def kafka_ssl_context(settings: KitSettings) -> ssl.SSLContext | None:
    """The TLS context for the brokers (None for PLAINTEXT); raises SettingsError."""
    problems = kafka_security_problems(settings)
    if problems:
        raise SettingsError(problems)
    if settings.kafka_security_protocol != "SSL":
        return None
    context: ssl.SSLContext = create_ssl_context(
        cafile=str(settings.kafka_tls_ca) if settings.kafka_tls_ca else None,
        certfile=str(settings.kafka_tls_cert) if settings.kafka_tls_cert else None,
        keyfile=str(settings.kafka_tls_key) if settings.kafka_tls_key else None,
    )
    return context


def kafka_security(settings: KitSettings) -> dict[str, Any]:
    """aiokafka's keyword arguments for the settings' protocol: ``security_protocol`` and,
    with TLS, ``ssl_context`` (nothing for PLAINTEXT, aiokafka's default)."""
    context = kafka_ssl_context(settings)
    if context is None:
        return {}
    return {"security_protocol": "SSL", "ssl_context": context}
