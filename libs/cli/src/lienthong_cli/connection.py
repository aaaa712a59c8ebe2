"""Where each service is and how to reach it: endpoints, TLS or mutual TLS, who calls.

    target = Target.resolve(options, profile)
    with target.channel("document") as channel:
        DocumentServiceStub(channel).ListInbox(request, metadata=target.metadata())

With a client certificate (mTLS) the server takes the identity from its URI SAN
(``spiffe://<domain>/unit/<code>``, ``.../operator/<role>/<name>``); without one (``make run``,
dev auth on) the identity travels in the header below (docs/security.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from lienthong_cli.config import SERVICE_KEYS, Profile

__all__ = ["IDENTITY_HEADER", "LOCAL_PORTS", "ROLES", "Target", "parse_identity"]

# The dev-mode identity header (the kit's authz.IDENTITY_HEADER; a test keeps the two equal).
IDENTITY_HEADER = "x-lienthong-identity"
# Operator roles (lienthong_kit.authz.Role; a test keeps the two equal).
ROLES = ("registry-admin", "trust-admin", "observer")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def parse_identity(value: str) -> str:
    """``unit/<code>``, ``operator/<role>/<name>`` or ``service/<name>``, checked; raises
    ValueError saying what is wrong."""
    parts = value.strip().split("/")
    if len(parts) == 2 and parts[0] in ("unit", "service") and _NAME.match(parts[1]):
        return "/".join(parts)
    if len(parts) == 3 and parts[0] == "operator":
        if parts[1] not in ROLES:
            raise ValueError(
                f"identity {value!r}: unknown operator role {parts[1]!r}"
                f" (roles: {', '.join(ROLES)})"
            )
        if _NAME.match(parts[2]):
            return "/".join(parts)
    raise ValueError(
        f"identity {value!r}: use unit/<code>, operator/<role>/<name> or service/<name>"
    )


# The ports `make run` uses (lienthong_local.platform.DEFAULT_PORTS).
LOCAL_PORTS = {
    "document": 50051,
    "routing": 50052,
    "signature": 50053,
    "notification": 50054,
    "reporting": 50055,
}

# Large enough for VerifyDocument's whole-file request (the servers accept 32 MiB).
_MAX_MESSAGE = 64 * 1024 * 1024


@dataclass(frozen=True)
class Target:
    endpoints: dict[str, str]
    identity: str = ""
    cacert: str = ""
    cert: str = ""
    key: str = ""
    server_name: str = ""

    @classmethod
    def resolve(cls, profile: Profile) -> Target:
        """Per-service endpoints from the profile, else ``host`` with the known local port."""
        host = profile.host or "127.0.0.1"
        endpoints = {
            name: getattr(profile, name) or f"{host}:{LOCAL_PORTS[name]}" for name in SERVICE_KEYS
        }
        if bool(profile.cert) != bool(profile.key):
            raise ValueError("--cert and --key go together (a client certificate needs its key)")
        identity = ""
        if profile.identity:
            identity = parse_identity(profile.identity)
            if profile.unit and identity != f"unit/{profile.unit}":
                raise ValueError(f"--unit {profile.unit} and --identity {identity} disagree")
        elif profile.unit:
            identity = parse_identity(f"unit/{profile.unit}")
        return cls(
            endpoints, identity, profile.cacert, profile.cert, profile.key, profile.server_name
        )

    @property
    def secure(self) -> bool:
        return bool(self.cacert or self.cert)

    def metadata(self) -> tuple[tuple[str, str], ...]:
        # with a client certificate the certificate is the identity; the header would be ignored
        if self.identity and not self.cert:
            return ((IDENTITY_HEADER, self.identity),)
        return ()

    def _credentials(self) -> grpc.ChannelCredentials:
        def read(path: str) -> bytes | None:
            return Path(path).expanduser().read_bytes() if path else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.cacert),
            private_key=read(self.key),
            certificate_chain=read(self.cert),
        )

    @contextmanager
    def channel(self, service: str) -> Iterator[grpc.Channel]:
        options: list[tuple[str, int | str]] = [
            ("grpc.max_send_message_length", _MAX_MESSAGE),
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
        ]
        endpoint = self.endpoints[service]
        if self.secure:
            if self.server_name:
                options.append(("grpc.ssl_target_name_override", self.server_name))
            channel = grpc.secure_channel(endpoint, self._credentials(), options=options)
        else:
            channel = grpc.insecure_channel(endpoint, options=options)
        with channel:
            yield channel
