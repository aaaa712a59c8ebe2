"""How results are shown: a Rich table for people, JSON for scripts (``--output json``).

Results go to stdout; progress bars, warnings and errors to stderr, so that
``lienthong inbox list --output json | jq`` always reads clean JSON.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from rich.console import Console
from rich.table import Table

__all__ = ["Output", "err", "out", "print_json", "table", "to_dict"]

out = Console(soft_wrap=False)
# soft_wrap: a message is one line, whatever the terminal width (scripts grep it)
err = Console(stderr=True, soft_wrap=True)


class Output(StrEnum):
    table = "table"
    json = "json"


def to_dict(message: Message) -> dict[str, Any]:
    """The protobuf JSON form with the proto's own field names (as in the .proto files)."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def print_json(data: Any) -> None:
    # ensure_ascii=False: Vietnamese stays readable ("Sở Tài chính", not "S\u1edf ...")
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def print_json_line(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    grid = Table(title=title, title_justify="left")
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*row)
    out.print(grid)
