"""The delivery state machine, property-tested: no sequence of reports reaches an illegal state."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from document_service.lifecycle import (
    FINAL,
    DeliveryState,
    acknowledge,
    request_recall,
)
from lienthong_kit.errors import FailedPrecondition, InvalidArgument

CODES = ["01", "02", "03", "04", "05", "06", "13", "15", "16", "07", ""]
ORDER = {"01": 0, "03": 1, "04": 2, "05": 3, "06": 4}


@pytest.mark.parametrize(
    ("path", "final"),
    [
        pytest.param(["03", "04", "05", "06"], "06", id="full-path"),
        pytest.param(["03", "05", "06"], "06", id="without-assignment"),
        pytest.param(["03", "04", "04", "05"], "05", id="reassigned"),
        pytest.param(["02"], "02", id="refused-on-arrival"),
        pytest.param(["03", "02"], "02", id="refused-after-registration"),
    ],
)
def test_legal_paths(path: list[str], final: str) -> None:
    state = DeliveryState()
    for code in path:
        state = acknowledge(state, code, "lý do")
    assert state.status == final


@pytest.mark.parametrize(
    ("path", "code"),
    [
        pytest.param([], "06", id="arrived-to-done"),
        pytest.param([], "05", id="arrived-to-in-progress"),
        pytest.param(["03", "04", "05", "06"], "05", id="done-is-final"),
        pytest.param(["02"], "03", id="refused-is-final"),
        pytest.param(["03", "04", "05"], "02", id="refuse-while-in-progress"),
        pytest.param([], "15", id="accept-recall-nobody-asked"),
    ],
)
def test_illegal_moves_are_failed_preconditions(path: list[str], code: str) -> None:
    state = DeliveryState()
    for step in path:
        state = acknowledge(state, step, "lý do")
    with pytest.raises(FailedPrecondition):
        acknowledge(state, code, "lý do")


@pytest.mark.parametrize("code", ["02", "16"])
def test_refusals_need_a_reason(code: str) -> None:
    state = DeliveryState(recall="13")
    with pytest.raises(InvalidArgument, match="description"):
        acknowledge(state, code, "  ")


def test_accepted_recall_withdraws_and_freezes_the_delivery() -> None:
    state = request_recall(DeliveryState(status="04"))
    assert state == DeliveryState(status="04", recall="13")
    state = acknowledge(state, "15", "")
    assert state.withdrawn
    with pytest.raises(FailedPrecondition, match="withdrawn"):
        acknowledge(state, "05", "")
    assert request_recall(state) is None


def test_refused_recall_lets_the_delivery_carry_on_and_may_be_asked_again() -> None:
    state = acknowledge(request_recall(DeliveryState()) or DeliveryState(), "16", "đã xử lý")
    assert state == DeliveryState(recall="16")
    assert acknowledge(state, "03", "").status == "03"
    assert request_recall(state) == DeliveryState(recall="13")


@given(st.lists(st.tuples(st.sampled_from([*CODES, "ask-recall"]), st.booleans()), max_size=30))
def test_no_sequence_reaches_an_illegal_state(steps: list[tuple[str, bool]]) -> None:
    state = DeliveryState()
    for code, with_reason in steps:
        before = state
        try:
            if code == "ask-recall":
                state = request_recall(state) or state
            else:
                state = acknowledge(state, code, "lý do" if with_reason else "")
        except (FailedPrecondition, InvalidArgument):
            assert state == before  # a refused move changes nothing
            continue
        # invariants of every reachable state
        assert state.status in {"01", "02", "03", "04", "05", "06"}
        assert state.recall in {"", "13", "15", "16"}
        assert state.withdrawn == (state.recall == "15")
        if before.withdrawn:
            assert state == before
        if before.status in FINAL:
            assert state.status == before.status
        if before.status != "02" and state.status != "02":
            assert ORDER[state.status] >= ORDER[before.status]  # never backwards
