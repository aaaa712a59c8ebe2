"""Page sizes and opaque page tokens for List RPCs (keyset pagination).

    size = page_size(request.page_size, default=50, maximum=200)
    after = decode_time_key(request.page_token)   # None on the first page
    query.update(after_time_key(after, "delivered_at"))  # rows after the key, newest first
    ...
    next_token = encode_time_key(last["delivered_at"], last["_id"]) if more else ""

Every token that does not decode to what this API issued is INVALID_ARGUMENT naming
``page_token``, never INTERNAL.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lienthong_kit.errors import FieldViolation, InvalidArgument

__all__ = [
    "TimeKey",
    "after_time_key",
    "decode_key",
    "decode_time_key",
    "decode_token",
    "encode_key",
    "encode_time_key",
    "encode_token",
    "page_size",
]

NOT_ISSUED = "is not a token this API issued"


def page_size(requested: int, *, default: int, maximum: int, field: str = "page_size") -> int:
    if requested < 0 or requested > maximum:
        raise InvalidArgument([FieldViolation(field, f"must be between 0 and {maximum}")])
    return requested or default


def encode_token(*parts: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode()


def decode_token(token: str, *, field: str = "page_token", parts: int | None = None) -> list[str]:
    """The token's string parts ([] for no token); ``parts`` demands exactly that many."""
    if not token:
        return []
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgument([FieldViolation(field, NOT_ISSUED)]) from exc
    if not isinstance(decoded, list) or not all(isinstance(part, str) for part in decoded):
        raise InvalidArgument([FieldViolation(field, NOT_ISSUED)])
    if parts is not None and len(decoded) != parts:
        raise InvalidArgument([FieldViolation(field, NOT_ISSUED)])
    return decoded


@dataclass(frozen=True)
class TimeKey:
    """The last row of a page ordered by (time, id)."""

    at: datetime
    id: str


def encode_time_key(at: datetime, row_id: str) -> str:
    return encode_token(at.isoformat(), row_id)


def decode_time_key(token: str, *, field: str = "page_token") -> TimeKey | None:
    if not token:
        return None
    at, row_id = decode_token(token, field=field, parts=2)
    try:
        return TimeKey(datetime.fromisoformat(at), row_id)
    except ValueError as exc:
        raise InvalidArgument([FieldViolation(field, NOT_ISSUED)]) from exc


def after_time_key(
    key: TimeKey | None, time_field: str, *, id_field: str = "_id", descending: bool = True
) -> dict[str, Any]:
    """The store filter for rows after ``key`` in (time, id) order; {} on the first page."""
    if key is None:
        return {}
    op = "$lt" if descending else "$gt"
    return {"$or": [{time_field: {op: key.at}}, {time_field: key.at, id_field: {op: key.id}}]}


def encode_key(value: str) -> str:
    return encode_token(value)


def decode_key(token: str, *, field: str = "page_token") -> str | None:
    """The one string key of a page ordered by a unique string; None on the first page."""
    if not token:
        return None
    return decode_token(token, field=field, parts=1)[0]
