"""The documentation's examples moved from three-tier Hòa Bình (H23) to two-tier Phú Thọ (H43),
the province ``make run`` starts: a pure substitution of codes and names, re-runnable.

    python -m lienthong_testing.two_tier_examples README.md docs/cli.md docs/examples/*.edxml

The units: the provincial People's Committee ``000.00.00.H43``, Sở Tài chính ``000.01.00.H43``
and a commune, Phường Tân Hòa ``000.00.101.H43``; a district (``000.00.31.H23``) used as a
scope's ancestor becomes the province, the only ancestor left in two tiers. Applying it twice
changes nothing. The gateway test builds the README's edXML example with ``two_tier``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["RULES", "main", "two_tier"]

PROVINCE = "000.00.00.H43"
COMMUNE = "000.00.101.H43"

# Applied in order: the context-bound district uses first, then every remaining code and name.
RULES: tuple[tuple[str, str], ...] = (
    (r'(ancestor_code\\?"\s*:\s*\\?")000\.00\.31\.H23', rf"\g<1>{PROVINCE}"),
    (
        r"--parent 000\.00\.31\.H23            # a district's communes",
        f"--parent {PROVINCE}            # the province's departments and communes",
    ),
    (
        r"--under 000\.00\.31\.H23 --per-unit   # one district",
        f"--under {PROVINCE} --per-unit   # every unit under one (here the province)",
    ),
    (r"--to-under 000\.00\.31\.H23", f"--to-under {PROVINCE}"),
    (r"000\.00\.31\.H23", COMMUNE),
    (r"\b000\.(\d\d)\.(\d\d)\.H23\b", r"000.\1.\2.H43"),
    (r"UBND xã Bắc Hà", "UBND phường Tân Hòa"),
    (r"Đại lộ Trần Hưng Đạo, Lào Cai", "Việt Trì, Phú Thọ"),
    (r"Lào Cai", "Phú Thọ"),
    (r"\bsnv\.laocai\.gov\.vn", "stc.phutho.gov.vn"),
    (r"\b(laocai|hoabinh)\.gov\.vn", "phutho.gov.vn"),
    (r"\b0214 3840", "0210 3846"),
    (r"Sở Nội vụ", "Sở Tài chính"),
)
_COMPILED = tuple((re.compile(pattern), replacement) for pattern, replacement in RULES)


def two_tier(text: str) -> str:
    for pattern, replacement in _COMPILED:
        text = pattern.sub(replacement, text)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    paths = [Path(name) for name in (sys.argv[1:] if argv is None else argv)]
    if not paths:
        print("usage: python -m lienthong_testing.two_tier_examples FILE...", file=sys.stderr)
        return 2
    for path in paths:
        before = path.read_text(encoding="utf-8")
        after = two_tier(before)
        if after != before:
            path.write_text(after, encoding="utf-8")
            print(f"{path}: rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
