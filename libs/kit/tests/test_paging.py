from __future__ import annotations

import pytest

from lienthong_kit.errors import InvalidArgument
from lienthong_kit.paging import decode_token, encode_token, page_size


def test_token_round_trip() -> None:
    assert decode_token(encode_token("2026-11-23T10:00:00+00:00", "abc")) == [
        "2026-11-23T10:00:00+00:00",
        "abc",
    ]
    assert decode_token("") == []


@pytest.mark.parametrize(
    "token",
    [pytest.param("%%%", id="not-base64"), pytest.param("e30=", id="not-a-list")],
)
def test_foreign_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidArgument, match="page_token: is not a token this API issued"):
        decode_token(token)


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        pytest.param(0, 50, id="default"),
        pytest.param(7, 7, id="asked"),
        pytest.param(200, 200, id="max"),
    ],
)
def test_page_size(requested: int, expected: int) -> None:
    assert page_size(requested, default=50, maximum=200) == expected


def test_page_size_out_of_range() -> None:
    with pytest.raises(InvalidArgument, match="page_size: must be between 0 and 200"):
        page_size(201, default=50, maximum=200)
