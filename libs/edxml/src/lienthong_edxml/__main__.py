"""The package doctor on the command line (the ``lienthong`` CLI wraps it).

python -m lienthong_edxml doctor package.edxml            # exit 0 fine, 1 problems
python -m lienthong_edxml doctor --json - < package.edxml
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import date
from typing import BinaryIO, TextIO

from lienthong_edxml._stream import Limits
from lienthong_edxml.problems import Problem
from lienthong_edxml.reader import diagnose


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lienthong_edxml")
    commands = parser.add_subparsers(dest="command", required=True)
    doctor = commands.add_parser("doctor", help="list every problem of an edXML package")
    doctor.add_argument("file", help="the package, or - for standard input")
    doctor.add_argument("--json", action="store_true", help="print the problems as JSON")
    doctor.add_argument(
        "--today", type=date.fromisoformat, help="judge dates as on this day (yyyy-MM-dd)"
    )
    doctor.add_argument(
        "--max-bytes",
        type=int,
        default=Limits().max_package_bytes,
        help="refuse a package larger than this",
    )
    return parser.parse_args(argv)


def _report(name: str, problems: list[Problem], as_json: bool, out: TextIO) -> None:
    if as_json:
        document = {"file": name, "ok": not problems, "problems": [p.as_dict() for p in problems]}
        json.dump(document, out, ensure_ascii=False, indent=2)
        out.write("\n")
        return
    if not problems:
        out.write(f"{name}: OK\n")
        return
    out.write(f"{name}: {len(problems)} problem(s)\n")
    for p in problems:
        out.write(f"{p.xpath} [{p.code}]\n  vi: {p.message_vi}\n  en: {p.message_en}\n")


def main(
    argv: Sequence[str] | None = None, stdin: BinaryIO | None = None, out: TextIO | None = None
) -> int:
    args = _arguments(argv)
    out = out or sys.stdout
    limits = Limits(max_package_bytes=args.max_bytes)
    if args.file == "-":
        problems = diagnose(stdin or sys.stdin.buffer, limits=limits, today=args.today)
    else:
        try:
            with open(args.file, "rb") as stream:
                problems = diagnose(stream, limits=limits, today=args.today)
        except OSError as exc:
            sys.stderr.write(f"{args.file}: {exc.strerror}\n")
            return 2
    _report(args.file, problems, args.json, out)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
