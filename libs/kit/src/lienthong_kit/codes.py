"""Electronic identifier codes of units (mã định danh), shared by every service.

Both forms are accepted: QCVN 102:2016 (``000.00.00.H49``, 13 characters, level 1 at the
right) and Decision 20/2020 (``H55.242``, up to 35 characters of A-Z, 0-9 and dots).

    problem = unit_code_problem("000.00.00.H49")   # None when the code is well-formed
"""

from __future__ import annotations

import re

__all__ = ["MAX_UNIT_CODE", "UNIT_CODE", "unit_code_problem"]

UNIT_CODE = re.compile(r"^[A-Z0-9]+(\.[A-Z0-9]+)*$")
MAX_UNIT_CODE = 35


def unit_code_problem(code: str) -> str | None:
    """Why ``code`` is not an identifier code, or None if it is one."""
    if not code:
        return "is required"
    if len(code) > MAX_UNIT_CODE or not UNIT_CODE.match(code):
        return f"{code!r} is not an identifier code (A-Z, 0-9 and dots, at most 35)"
    return None
