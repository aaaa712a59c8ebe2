"""Page sizes and opaque page tokens for List RPCs (keyset pagination).

size = page_size(request.page_size, default=50, maximum=200)
after = decode_token(request.page_token)          # [] on the first page
...
next_token = encode_token(last.delivered_at.isoformat(), last.id) if more else ""
"""

from __future__ import annotations

import base64
import binascii
import json

from lienthong_kit.errors import FieldViolation, InvalidArgument

__all__ = ["decode_token", "encode_token", "page_size"]


def page_size(requested: int, *, default: int, maximum: int, field: str = "page_size") -> int:
    if requested < 0 or requested > maximum:
        raise InvalidArgument([FieldViolation(field, f"must be between 0 and {maximum}")])
    return requested or default


def encode_token(*parts: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode()


def decode_token(token: str, *, field: str = "page_token") -> list[str]:
    if not token:
        return []
    try:
        parts = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgument([FieldViolation(field, "is not a token this API issued")]) from exc
    if not isinstance(parts, list) or not all(isinstance(part, str) for part in parts):
        raise InvalidArgument([FieldViolation(field, "is not a token this API issued")])
    return parts
