"""The ``lienthong`` command: global options, the sub-command groups, and the one place that
turns failures into messages and exit codes (errors.py has the table).

    lienthong [--profile P] [--host H] [--endpoint SERVICE=HOST:PORT]
              [--identity unit/CODE | operator/ROLE/NAME | --unit CODE]
              [--cacert F] [--cert F --key F] COMMAND ...
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from typing import Annotated

import grpc
import typer

from lienthong_cli.config import SERVICE_KEYS, Config, Profile
from lienthong_cli.connection import Target
from lienthong_cli.errors import CliError, ExitCode, describe_rpc_error, exit_code_for
from lienthong_cli.output import err

__all__ = ["State", "app", "main"]

app = typer.Typer(
    name="lienthong",
    help="lienthong: the province's document exchange, from the command line.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@dataclass
class State:
    """The global options; the target is resolved on first use (profile commands need none)."""

    profile_name: str = ""
    overrides: dict[str, str] = field(default_factory=dict)
    _target: Target | None = None

    def config(self) -> Config:
        try:
            return Config.load()
        except ValueError as exc:
            raise CliError(str(exc), ExitCode.USAGE) from exc

    def profile(self) -> Profile:
        config = self.config()
        name = self.profile_name or config.current
        if name and name not in config.profiles:
            known = ", ".join(sorted(config.profiles)) or "none"
            raise CliError(
                f"no profile {name!r} in {config.path} (profiles: {known})", ExitCode.USAGE
            )
        profile = config.profiles.get(name, Profile()) if name else Profile()
        return replace(profile, **self.overrides)

    def target(self) -> Target:
        if self._target is None:
            try:
                self._target = Target.resolve(self.profile())
            except ValueError as exc:
                raise CliError(str(exc), ExitCode.USAGE) from exc
        return self._target


def state(ctx: typer.Context) -> State:
    found = ctx.find_object(State)
    if found is None:
        raise RuntimeError("the global options were not parsed")
    return found


def parse_endpoints(values: list[str]) -> dict[str, str]:
    endpoints: dict[str, str] = {}
    for value in values:
        service, sep, address = value.partition("=")
        if not sep or service not in SERVICE_KEYS or not address:
            raise typer.BadParameter(
                f"{value!r}: use SERVICE=HOST:PORT with SERVICE one of {', '.join(SERVICE_KEYS)}",
                param_hint="--endpoint",
            )
        endpoints[service] = address
    return endpoints


@app.callback()
def _global(
    ctx: typer.Context,
    profile: Annotated[
        str,
        typer.Option(envvar="LIENTHONG_PROFILE", help="Named profile from the config file."),
    ] = "",
    host: Annotated[
        str, typer.Option(help="One host for every service, on the known ports 50051-50055.")
    ] = "",
    endpoint: Annotated[
        list[str] | None,
        typer.Option(
            metavar="SERVICE=HOST:PORT", help="One service's endpoint (document, routing, ...)."
        ),
    ] = None,
    identity: Annotated[
        str,
        typer.Option(
            envvar="LIENTHONG_IDENTITY",
            help="Act as unit/CODE, operator/ROLE/NAME or service/NAME (dev mode, no certificate).",
        ),
    ] = "",
    unit: Annotated[
        str,
        typer.Option(envvar="LIENTHONG_UNIT", help="Short for --identity unit/CODE."),
    ] = "",
    cacert: Annotated[str, typer.Option(help="CA certificate (PEM) to verify the server.")] = "",
    cert: Annotated[str, typer.Option(help="Client certificate (PEM) for mutual TLS.")] = "",
    key: Annotated[str, typer.Option(help="The client certificate's private key (PEM).")] = "",
    server_name: Annotated[
        str, typer.Option(help="Expected server name in its certificate, if not the host.")
    ] = "",
) -> None:
    given = {
        "host": host,
        "identity": identity,
        "unit": unit,
        "cacert": cacert,
        "cert": cert,
        "key": key,
        "server_name": server_name,
        **parse_endpoints(endpoint or []),
    }
    ctx.obj = State(profile, {name: value for name, value in given.items() if value})


def _register() -> None:
    from lienthong_cli import (
        commands_audit,
        commands_deadletters,
        commands_documents,
        commands_profile,
        commands_replay,
        commands_report,
        commands_units,
    )

    app.add_typer(commands_profile.app, name="profile")
    app.add_typer(commands_units.app, name="units")
    app.add_typer(commands_documents.app, name="documents")
    app.add_typer(commands_documents.inbox, name="inbox")
    app.add_typer(commands_documents.trust, name="trust")
    app.add_typer(commands_audit.audit, name="audit")
    app.add_typer(commands_audit.evidence, name="evidence")
    app.add_typer(commands_deadletters.app, name="deadletters")
    app.command("report")(commands_report.report)
    app.command("replay")(commands_replay.replay)


_register()


def main() -> None:
    # typer handles usage errors (exit 2) and Ctrl-C (130); the platform's answers are ours
    try:
        app()
    except CliError as exc:
        for line in exc.lines:
            err.print(line, markup=False, highlight=False)
        sys.exit(exc.code)
    except grpc.RpcError as exc:
        for line in describe_rpc_error(exc):
            err.print(line, markup=False, highlight=False)
        sys.exit(exit_code_for(exc.code()))
    except OSError as exc:
        err.print(f"{exc.filename or ''}: {exc.strerror or exc}", markup=False, highlight=False)
        sys.exit(ExitCode.REFUSED)
