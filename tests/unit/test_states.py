"""The pure state machine: every pair of states is either a named legal move or refused."""

from __future__ import annotations

import itertools

import pytest

from courier.states import (
    TERMINAL,
    TRANSITIONS,
    DeliveryState,
    IllegalTransition,
    can_transition,
    is_terminal,
    transition,
)

S = DeliveryState

LEGAL = {
    (S.PENDING, S.DELIVERING): "claim",
    (S.RETRY_SCHEDULED, S.DELIVERING): "claim",
    (S.DELIVERING, S.DELIVERING): "reclaim",
    (S.DELIVERING, S.DELIVERED): "succeed",
    (S.DELIVERING, S.RETRY_SCHEDULED): "schedule_retry",
    (S.DELIVERING, S.FAILED): "fail",
    (S.DELIVERING, S.DEAD_LETTERED): "dead_letter",
    (S.PENDING, S.FAILED): "refuse",
    (S.RETRY_SCHEDULED, S.FAILED): "refuse",
}


@pytest.mark.parametrize(("source", "target"), list(itertools.product(S, S)))
def test_every_pair_is_legal_or_refused(source: S, target: S) -> None:
    if (source, target) in LEGAL:
        assert can_transition(source, target)
        assert transition(source, target) == LEGAL[(source, target)]
    else:
        assert not can_transition(source, target)
        with pytest.raises(IllegalTransition):
            transition(source, target)


def test_table_is_exactly_the_contract() -> None:
    assert TRANSITIONS == LEGAL


def test_terminal_states_have_no_way_out() -> None:
    assert {S.DELIVERED, S.FAILED, S.DEAD_LETTERED} == TERMINAL
    for state in TERMINAL:
        assert is_terminal(state)
        assert not any(can_transition(state, t) for t in S)
    assert not is_terminal(S.PENDING)


def test_unknown_state_is_refused() -> None:
    with pytest.raises(IllegalTransition):
        transition("pending", "exploded")


def test_the_type_names_are_the_enums_names() -> None:
    # One vocabulary: the Literal types used by the API, retry policy and adapters name
    # exactly the enums' members.
    from typing import get_args

    from courier.states import (
        OUTCOME_NAMES,
        STATE_NAMES,
        AttemptOutcome,
        DecisionState,
        ResultOutcome,
    )

    assert set(STATE_NAMES) == {s.value for s in DeliveryState}
    assert set(OUTCOME_NAMES) == {o.value for o in AttemptOutcome}
    assert set(get_args(ResultOutcome)) == set(OUTCOME_NAMES) - {"abandoned"}
    assert set(get_args(DecisionState)) == {s.value for s in TERMINAL} | {"retry_scheduled"}
