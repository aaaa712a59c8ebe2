"""``lienthong profile``: named connection profiles, like kubectl contexts."""

from __future__ import annotations

from typing import Annotated

import typer

from lienthong_cli.app import parse_endpoints, state
from lienthong_cli.config import PROFILE_KEYS, Config, Profile
from lienthong_cli.connection import parse_identity
from lienthong_cli.errors import CliError, ExitCode
from lienthong_cli.options import OutputOption
from lienthong_cli.output import Output, err, print_json, table

app = typer.Typer(help="Named profiles (endpoint, certificates, unit) in the config file.")


@app.command("add")
def add(
    ctx: typer.Context,
    name: str,
    host: Annotated[str, typer.Option(help="One host for every service.")] = "",
    endpoint: Annotated[list[str] | None, typer.Option(help="SERVICE=HOST:PORT.")] = None,
    identity: Annotated[
        str, typer.Option(help="unit/CODE or operator/ROLE/NAME to act as (dev mode).")
    ] = "",
    unit: Annotated[str, typer.Option(help="Short for --identity unit/CODE.")] = "",
    cacert: Annotated[str, typer.Option()] = "",
    cert: Annotated[str, typer.Option()] = "",
    key: Annotated[str, typer.Option()] = "",
    server_name: Annotated[str, typer.Option()] = "",
    use: Annotated[bool, typer.Option("--use", help="Make it the current profile.")] = False,
) -> None:
    """Add or replace a profile."""
    config = state(ctx).config()
    if bool(cert) != bool(key):
        raise CliError("--cert and --key go together", ExitCode.USAGE)
    if identity:
        try:
            identity = parse_identity(identity)
        except ValueError as exc:
            raise CliError(str(exc), ExitCode.USAGE) from exc
    config.profiles[name] = Profile(
        host=host,
        identity=identity,
        unit=unit,
        cacert=cacert,
        cert=cert,
        key=key,
        server_name=server_name,
        **parse_endpoints(endpoint or []),
    )
    if use or not config.current:
        config.current = name
    config.save()
    err.print(
        f"profile {name} saved in {config.path}" + (" (current)" if config.current == name else "")
    )


@app.command("use")
def use(ctx: typer.Context, name: str) -> None:
    """Make a profile the current one."""
    config = state(ctx).config()
    if name not in config.profiles:
        raise CliError(f"no profile {name!r} in {config.path}", ExitCode.NOT_FOUND)
    config.current = name
    config.save()
    err.print(f"current profile: {name}")


@app.command("remove")
def remove(ctx: typer.Context, name: str) -> None:
    """Remove a profile."""
    config = state(ctx).config()
    if config.profiles.pop(name, None) is None:
        raise CliError(f"no profile {name!r} in {config.path}", ExitCode.NOT_FOUND)
    if config.current == name:
        config.current = ""
    config.save()


@app.command("list")
def list_(ctx: typer.Context, output: OutputOption = Output.table) -> None:
    """The profiles; the current one is marked."""
    config = state(ctx).config()
    if output == Output.json:
        print_json(
            {
                "current": config.current,
                "profiles": {name: p.as_dict() for name, p in sorted(config.profiles.items())},
            }
        )
        return
    table(
        str(config.path),
        ["", "profile", "host", "identity", "TLS"],
        [
            [
                "*" if name == config.current else "",
                name,
                p.host,
                p.identity or (f"unit/{p.unit}" if p.unit else ""),
                "mTLS" if p.cert else ("TLS" if p.cacert else ""),
            ]
            for name, p in sorted(config.profiles.items())
        ],
    )


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Default: the profile in use.")] = "",
    output: OutputOption = Output.table,
) -> None:
    """What a profile resolves to: every service's endpoint, TLS, who calls."""
    current = state(ctx)
    if name:
        current.profile_name = name
    target = current.target()
    settings = current.profile().as_dict()
    data = {
        "profile": current.profile_name or Config.load().current,
        "endpoints": target.endpoints,
        "tls": "mutual" if target.cert else ("server" if target.secure else "none"),
        "caller": "the client certificate" if target.cert else target.identity,
        **{key: settings[key] for key in PROFILE_KEYS if key in settings},
    }
    if output == Output.json:
        print_json(data)
        return
    table(
        f"profile {data['profile'] or '(none)'}",
        ["setting", "value"],
        [[key, str(value)] for key, value in data.items() if key != "endpoints"]
        + [[f"endpoint {service}", address] for service, address in target.endpoints.items()],
    )
