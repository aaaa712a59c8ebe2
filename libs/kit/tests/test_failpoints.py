"""Failpoints: the detour a test arms is taken once, and nothing happens unarmed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lienthong_kit import failpoints
from lienthong_kit.failpoints import arm, skip_once


@pytest.fixture(autouse=True)
def disarmed() -> Iterator[None]:
    yield
    arm(())
    failpoints._taken.clear()


def test_an_armed_detour_is_taken_the_first_time_only() -> None:
    arm(("worker.skip",))
    assert [skip_once("worker.skip") for _ in range(3)] == [True, False, False]


def test_an_unarmed_detour_is_never_taken() -> None:
    arm(("something.else",))
    assert not skip_once("worker.skip")
    assert not skip_once("worker.skip")
