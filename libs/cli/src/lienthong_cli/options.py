"""Options shared by many commands."""

from __future__ import annotations

from typing import Annotated

import typer

from lienthong_cli.output import Output

__all__ = ["TIMEOUT", "OutputOption"]

OutputOption = Annotated[
    Output, typer.Option("--output", "-o", help="table for people, json for scripts.")
]
# Seconds for a unary call; streams (uploads, imports, watch) set their own.
TIMEOUT = 30.0
