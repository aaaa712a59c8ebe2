"""The gate every RPC passes: who is calling (certificate, or the dev header), on whose
behalf, whether that identity may call this method (the service's access table), and whether
a calling unit is open in the registry today. The server guard (interceptors.py) asks it once
per call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from grpc import aio

from lienthong_kit.authz import (
    IDENTITY_HEADER,
    ON_BEHALF_HEADER,
    AccessTable,
    Identity,
    Kind,
    Rule,
    act_for,
    decide,
    identity_from_header,
)
from lienthong_kit.certs import PeerCertificates
from lienthong_kit.codes import unit_code_problem
from lienthong_kit.directory import UnitDirectory
from lienthong_kit.errors import PermissionDenied, Unauthenticated, Unavailable
from lienthong_kit.vocabulary import today_in_vietnam

__all__ = ["PUBLIC_METHODS", "UNIT_HEADER", "AccessError", "Gatekeeper"]

UNIT_HEADER = "x-lienthong-unit"

# probes and API discovery answer anyone (they carry no data of any unit)
PUBLIC_METHODS = (
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
)


class AccessError(RuntimeError):
    """A service's access tables do not cover its RPCs exactly: it must not start."""


class Gatekeeper:
    def __init__(
        self,
        *,
        tls: bool,
        dev_auth: bool,
        peers: PeerCertificates | None,
        directory: UnitDirectory | None,
    ) -> None:
        self._tls = tls
        self._dev_auth = dev_auth and not tls  # the header never counts once TLS is on
        self._peers = peers
        self.directory = directory
        self._rules: dict[str, Rule] = {name: Rule(public=True) for name in PUBLIC_METHODS}

    def admit_tables(self, tables: Iterable[tuple[str, Iterable[str], AccessTable | None]]) -> None:
        """Take each gRPC service's table; refuse (AccessError) an RPC without a rule or a
        rule without an RPC, listing every one."""
        problems: list[str] = []
        for service, methods, table in tables:
            names = list(methods)
            if table is None:
                problems.append(f"{service} has no access table (every RPC needs a rule)")
                continue
            problems += [f"{service}/{name} has no access rule" for name in table.missing(names)]
            problems += [
                f"{service} has a rule for no RPC: {name}" for name in table.unknown(names)
            ]
            for name in names:
                rule = table.rule(name)
                if rule is not None:
                    self._rules[f"/{service}/{name}"] = rule
        if problems:
            raise AccessError("refusing to start: " + "; ".join(problems))

    def rule(self, method: str) -> Rule | None:
        return self._rules.get(method)

    def admit(
        self, method: str, context: aio.ServicerContext[Any, Any], metadata: Mapping[str, Any]
    ) -> Identity | None:
        """The caller's identity once admitted; raises Unauthenticated or PermissionDenied."""
        rule = self._rules.get(method)
        if rule is not None and rule.public:
            return None
        identity = self._identify(context, metadata)
        behalf = metadata.get(ON_BEHALF_HEADER)
        if behalf and identity is not None:
            code = str(behalf).removeprefix("unit/")
            problem = unit_code_problem(code)
            if problem:
                raise Unauthenticated(f"{ON_BEHALF_HEADER}: {problem}", reason="BAD_IDENTITY")
            identity = act_for(rule, identity, code, method)
        decide(rule, identity, method.rsplit("/", 1)[-1])
        if identity is None:  # decide() refused it: only public methods pass without one
            return None
        if identity.kind is Kind.UNIT and self.directory is not None:
            if not self.directory.loaded:
                raise Unavailable(
                    "the province's registry is still being read; retry shortly",
                    reason="REGISTRY_LOADING",
                )
            refusal = self.directory.refusal(identity.name, today_in_vietnam())
            if refusal is not None:
                raise PermissionDenied(
                    refusal, reason="UNIT_NOT_ACTIVE", metadata={"unit": identity.name}
                )
        return identity

    def _identify(
        self, context: aio.ServicerContext[Any, Any], metadata: Mapping[str, Any]
    ) -> Identity | None:
        if self._tls:
            auth = context.auth_context() or {}
            pems = auth.get("x509_pem_cert")
            if not pems or self._peers is None:
                return None
            return self._peers.identify(bytes(next(iter(pems))))
        if not self._dev_auth:
            return None
        named = metadata.get(IDENTITY_HEADER)
        if named:
            identity = identity_from_header(str(named))
            if identity is None:
                raise Unauthenticated(
                    f"{IDENTITY_HEADER}: {named!r} is not unit/<code>, service/<name> or"
                    " operator/<role>/<name>",
                    reason="BAD_IDENTITY",
                )
            if identity.kind is Kind.UNIT:
                self._check_code(identity.name, IDENTITY_HEADER)
            return identity
        unit = metadata.get(UNIT_HEADER)
        if unit:
            self._check_code(str(unit), UNIT_HEADER)
            return Identity(Kind.UNIT, str(unit))
        return None

    @staticmethod
    def _check_code(code: str, header: str) -> None:
        problem = unit_code_problem(code)
        if problem:
            raise Unauthenticated(f"{header}: {problem}", reason="BAD_IDENTITY")
