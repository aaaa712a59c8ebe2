"""Who may call what: identities, each service's access table, and the decision.

Three kinds of caller, told apart by the certificate (docs/security.md gives the profiles):

    spiffe://<trust domain>/unit/<identifier code>        an agency unit
    spiffe://<trust domain>/service/<service name>        a platform service
    spiffe://<trust domain>/operator/<role>/<name>        a province operator in one role

A client certificate without such a URI SAN is refused (UNAUTHENTICATED): the CN is never
read as an identity. In development (no TLS at all) the ``x-lienthong-identity`` header names
the caller the same way without the prefix (``unit/000.00.00.H23``, ``service/routing-service``,
``operator/registry-admin/alice``); the older ``x-lienthong-unit: <code>`` means a unit.

Each service declares one :class:`AccessTable`: every RPC of its gRPC services maps to a
:class:`Rule` naming who may call it. The kit refuses to start a service with an RPC that has
no rule (deny by default), and refuses every call its rule does not allow with
PERMISSION_DENIED saying what is required. What a rule cannot see (the caller is a party of
this document, these are its own rows) the handler checks with :func:`current_identity`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from types import ModuleType

from lienthong_kit.errors import PermissionDenied, Unauthenticated

__all__ = [
    "IDENTITY_HEADER",
    "ON_BEHALF_HEADER",
    "AccessTable",
    "Identity",
    "Kind",
    "Role",
    "Rule",
    "current_identity",
    "identity_from_header",
    "identity_from_uri",
    "matrix_markdown",
    "set_identity",
]

IDENTITY_HEADER = "x-lienthong-identity"
ON_BEHALF_HEADER = "x-lienthong-on-behalf-of"
SPIFFE = "spiffe://"


class Kind(StrEnum):
    UNIT = "unit"
    SERVICE = "service"
    OPERATOR = "operator"


class Role(StrEnum):
    """Operator roles (an operator certificate carries exactly one)."""

    REGISTRY_ADMIN = "registry-admin"  # writes the unit registry
    TRUST_ADMIN = "trust-admin"  # manages trust anchors and intermediates
    OBSERVER = "observer"  # reads province-wide reports, audits, dead letters


@dataclass(frozen=True)
class Identity:
    kind: Kind
    name: str  # the unit's identifier code, the service's name or the operator's name
    role: Role | None = None
    via: str = ""  # the service acting for this unit (the edXML gateway), if any

    def __str__(self) -> str:
        if self.kind is Kind.OPERATOR:
            return f"operator/{self.role}/{self.name}"
        text = f"{self.kind}/{self.name}"
        return f"{text} (via service/{self.via})" if self.via else text

    @property
    def unit_code(self) -> str | None:
        return self.name if self.kind is Kind.UNIT else None


def _parse(path: str) -> Identity | None:
    parts = path.split("/")
    if len(parts) == 2 and parts[0] in (Kind.UNIT, Kind.SERVICE) and parts[1]:
        return Identity(Kind(parts[0]), parts[1])
    if len(parts) == 3 and parts[0] == Kind.OPERATOR and parts[2]:
        try:
            return Identity(Kind.OPERATOR, parts[2], Role(parts[1]))
        except ValueError:
            return None
    return None


def identity_from_uri(uri: str, trust_domain: str) -> Identity | None:
    """The identity a URI SAN names in ``trust_domain``, or None."""
    prefix = f"{SPIFFE}{trust_domain}/"
    if not uri.startswith(prefix):
        return None
    return _parse(uri[len(prefix) :])


def identity_from_header(value: str) -> Identity | None:
    """The identity the development header names (``unit/<code>``, ...), or None."""
    return _parse(value.strip())


@dataclass(frozen=True)
class Rule:
    """Who may call one RPC. ``scope`` says, for the matrix, what the handler further limits
    (e.g. "own inbox", "document's sender and recipients")."""

    units: bool = False  # any active unit of the registry
    services: frozenset[str] = frozenset()
    roles: frozenset[Role] = frozenset()
    public: bool = False  # anyone, even without an identity (health-like reads only)
    scope: str = ""
    # services that may call for a unit (x-lienthong-on-behalf-of): the unit's checks apply
    delegates: frozenset[str] = frozenset()

    def allows(self, identity: Identity) -> bool:
        if self.public:
            return True
        if identity.kind is Kind.UNIT:
            return self.units
        if identity.kind is Kind.SERVICE:
            return identity.name in self.services
        return identity.role in self.roles

    def requirement(self) -> str:
        """What the rule requires, in words (the PERMISSION_DENIED message)."""
        options = []
        if self.units:
            options.append("an agency unit")
        options += [f"the service {name}" for name in sorted(self.services)]
        options += [f"operator role {role}" for role in sorted(self.roles)]
        return " or ".join(options) or "nobody (this method is closed)"


def units(scope: str = "") -> Rule:
    return Rule(units=True, scope=scope)


def operators(*roles: Role, scope: str = "") -> Rule:
    return Rule(roles=frozenset(roles), scope=scope)


def services(*names: str, scope: str = "") -> Rule:
    return Rule(services=frozenset(names), scope=scope)


def either(*rules: Rule, scope: str = "") -> Rule:
    return Rule(
        units=any(rule.units for rule in rules),
        services=frozenset().union(*(rule.services for rule in rules)),
        roles=frozenset().union(*(rule.roles for rule in rules)),
        public=any(rule.public for rule in rules),
        scope=scope or "; ".join(rule.scope for rule in rules if rule.scope),
        delegates=frozenset().union(*(rule.delegates for rule in rules)),
    )


def units_or_gateway(scope: str = "", *, gateway: str = "gateway-service") -> Rule:
    """Any active unit, directly or through the edXML gateway acting for it."""
    return Rule(units=True, scope=scope, delegates=frozenset({gateway}))


@dataclass(frozen=True)
class AccessTable:
    """A service's rules, by RPC name, for one gRPC service (``package.Service``)."""

    service: str
    rules: Mapping[str, Rule] = field(default_factory=dict)

    @classmethod
    def of(cls, module: ModuleType, service: str, rules: Mapping[str, Rule]) -> AccessTable:
        """``module`` is the generated ``*_pb2`` module declaring ``service``."""
        return cls(module.DESCRIPTOR.services_by_name[service].full_name, dict(rules))

    def missing(self, methods: Iterable[str]) -> list[str]:
        """The RPCs that have no rule (the service must not start with any)."""
        return sorted(set(methods) - set(self.rules))

    def unknown(self, methods: Iterable[str]) -> list[str]:
        """Rules naming no RPC of the service (a typo that would leave a method closed)."""
        return sorted(set(self.rules) - set(methods))

    def rule(self, method: str) -> Rule | None:
        return self.rules.get(method)


def act_for(rule: Rule | None, caller: Identity, unit_code: str, method: str) -> Identity:
    """The unit ``caller`` (a service) acts for, if the rule lets that service delegate."""
    if caller.kind is not Kind.SERVICE or rule is None or caller.name not in rule.delegates:
        raise PermissionDenied(
            f"{caller} may not call {method} on behalf of a unit",
            reason="NO_DELEGATION",
            metadata={"caller": str(caller)},
        )
    return Identity(Kind.UNIT, unit_code, via=caller.name)


def decide(rule: Rule | None, identity: Identity | None, method: str) -> None:
    """Raise Unauthenticated / PermissionDenied unless ``identity`` may call ``method``."""
    if rule is not None and rule.public:
        return
    if identity is None:
        raise Unauthenticated(
            "the call carries no identity: present a client certificate with a lienthong"
            " URI SAN (docs/security.md)",
            reason="NO_IDENTITY",
        )
    if rule is None:
        raise PermissionDenied(f"{method} is not open to anyone", reason="NO_RULE")
    if not rule.allows(identity):
        raise PermissionDenied(
            f"{method} requires {rule.requirement()}; the caller is {identity}",
            reason="NOT_ALLOWED",
            metadata={"caller": str(identity)},
        )


_identity: ContextVar[Identity | None] = ContextVar("lienthong_identity", default=None)


def set_identity(identity: Identity | None) -> None:
    _identity.set(identity)


def current_identity() -> Identity:
    """The caller of this RPC (the server guard has already authenticated it)."""
    identity = _identity.get()
    if identity is None:
        raise Unauthenticated("the call carries no identity", reason="NO_IDENTITY")
    return identity


def matrix_markdown(tables: Iterable[AccessTable]) -> str:
    """The access matrix of ``tables`` as the Markdown table docs/security.md carries."""
    roles = list(Role)
    head = ["RPC", "agency unit", "services", *roles, "limited to"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for table in tables:
        for method in sorted(table.rules):
            rule = table.rules[method]
            unit = "yes" if rule.units or rule.public else ""
            if rule.delegates:
                unit += " (or via " + ", ".join(sorted(rule.delegates)) + ")"
            cells = [
                f"`{table.service.rsplit('.', 1)[-1]}/{method}`",
                unit,
                ", ".join(sorted(rule.services)),
                *("yes" if role in rule.roles or rule.public else "" for role in roles),
                rule.scope,
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
