"""Where webhooks may go: never to this platform's own network (SSRF), unless allowed.

    guard = EgressGuard.of(settings.webhook_allow)     # "10.20.0.0/16,127.0.0.1/32"
    guard.refusal("169.254.169.254")                   # "... link-local ..." or None
    await guard.check_host("hooks.agency.example")     # at PutContact: resolved now

A webhook URL is a unit's choice, so without the guard any unit could make the service call
the cloud's metadata endpoint, the store or an admin port inside the cluster. Targets whose
addresses are loopback, private, link-local (the metadata endpoints), shared (CGNAT),
multicast, reserved or unspecified are refused unless an operator's allowlist network holds
them. The check runs when a contact is stored and again at every send *on the addresses the
connection then uses* (:class:`GuardedResolver` is the session's resolver), so a name that
resolves to a public address at PutContact and to 10.0.0.5 later (DNS rebinding) is refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

__all__ = ["EgressGuard", "ForbiddenTarget", "GuardedResolver", "parse_networks"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
#: how long PutContact waits for a webhook host's name to resolve
RESOLVE_SECONDS = 5.0


class ForbiddenTarget(OSError):
    """The target's address is in a refused range (aiohttp wraps it in ClientConnectorError)."""


def parse_networks(raw: Iterable[str]) -> list[Network]:
    """``["10.20.0.0/16", "127.0.0.1"]`` -> networks; ValueError names a bad entry."""
    networks: list[Network] = []
    for entry in raw:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"{entry!r} is not an IP network (e.g. 10.20.0.0/16): {exc}") from exc
    return networks


def _kind(address: Address) -> str | None:
    """Why ``address`` is not a public unicast address, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    checks = (
        ("loopback", address.is_loopback),
        ("link-local (cloud metadata endpoints live there)", address.is_link_local),
        ("unspecified", address.is_unspecified),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("not globally routable", not address.is_global),
    )
    return next((kind for kind, hit in checks if hit), None)


@dataclass(frozen=True)
class EgressGuard:
    allow: Sequence[Network] = ()

    @classmethod
    def of(cls, raw: Iterable[str]) -> EgressGuard:
        return cls(tuple(parse_networks(raw)))

    def refusal(self, host: str) -> str | None:
        """Why an address may not be called, or None; a name (not an address) is not judged."""
        try:
            address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
        except ValueError:
            return None
        if any(address in network for network in self.allow):
            return None
        kind = _kind(address)
        if kind is None:
            return None
        return (
            f"{host} is a {kind} address: webhooks may not call it"
            " (an operator may allow it with LIENTHONG_NOTIFY_WEBHOOK_ALLOW)"
        )

    async def check_host(self, host: str) -> str | None:
        """Why ``host`` (a name or an address) may not be called now, or None. A name that
        does not resolve yet is not refused: the check at send time decides."""
        literal = self.refusal(host)
        if literal is not None or _is_address(host):
            return literal
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(RESOLVE_SECONDS):
                infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError):
            return None
        for *_, sockaddr in infos:
            reason = self.refusal(str(sockaddr[0]))
            if reason is not None:
                return f"{host} resolves to {reason}"
        return None


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


class GuardedResolver(AbstractResolver):
    """The session's resolver: a name with any refused address is refused as a whole, and
    the connection is made only to the addresses checked here."""

    def __init__(self, guard: EgressGuard, inner: AbstractResolver | None = None) -> None:
        self._guard = guard
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            reason = self._guard.refusal(result["host"])
            if reason is not None:
                raise ForbiddenTarget(f"{host} resolves to {reason}")
        return results

    async def close(self) -> None:
        await self._inner.close()
