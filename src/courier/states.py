"""Delivery states, attempt outcomes and the transitions between states: the one vocabulary.

Every other module takes its names from here (the API's schemas, the retry policy, the
adapter seam, the console).

    pending ──claim──▶ delivering ──2xx──────────────────────────▶ delivered
    retry_scheduled ─claim (due)─▶ delivering ──retryable, budget left──▶ retry_scheduled
                                   delivering ──non-retryable──────────▶ failed
                                   delivering ──retryable, budget spent─▶ dead_lettered
    pending / retry_scheduled ──destination missing or disabled──▶ failed (no request sent)
    delivering (lease expired) ──reclaim──▶ delivering (lost attempt closed as `abandoned`)

The database enforces the same table (the WHEN clause of trigger
`deliveries_state_machine`, db/postgres/013_transition_check_when.sql); every UPDATE
that moves a delivery is also guarded by `WHERE state = <expected>`, so an illegal move
changes nothing.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args

from courier.errors import CourierError


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    RETRY_SCHEDULED = "retry_scheduled"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"


class AttemptOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    RETRYABLE_FAILURE = "retryable_failure"
    PERMANENT_FAILURE = "permanent_failure"
    ABANDONED = "abandoned"


# The same names as types, for pydantic models and for mypy.
StateName = Literal[
    "pending", "delivering", "delivered", "retry_scheduled", "failed", "dead_lettered"
]
OutcomeName = Literal["succeeded", "retryable_failure", "permanent_failure", "abandoned"]
# What an adapter can report for an attempt (abandoned is recorded only by a reclaim).
ResultOutcome = Literal["succeeded", "retryable_failure", "permanent_failure"]
# Where a finished attempt leaves its delivery.
DecisionState = Literal["delivered", "retry_scheduled", "failed", "dead_lettered"]
# States an operator may replay a delivery from; and those a bulk replay selects.
ReplayableState = Literal["delivered", "failed", "dead_lettered"]
BulkReplayState = Literal["dead_lettered", "failed"]

STATE_NAMES: tuple[StateName, ...] = get_args(StateName)
OUTCOME_NAMES: tuple[OutcomeName, ...] = get_args(OutcomeName)
REPLAYABLE_STATES: tuple[ReplayableState, ...] = get_args(ReplayableState)
BULK_REPLAY_STATES: tuple[BulkReplayState, ...] = get_args(BulkReplayState)

S = DeliveryState

TERMINAL: frozenset[DeliveryState] = frozenset({S.DELIVERED, S.FAILED, S.DEAD_LETTERED})
CLAIMABLE: frozenset[DeliveryState] = frozenset({S.PENDING, S.RETRY_SCHEDULED})

# (from, to) -> the name of the transition
TRANSITIONS: dict[tuple[DeliveryState, DeliveryState], str] = {
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


class IllegalTransition(CourierError, ValueError):
    def __init__(self, source: DeliveryState | str, target: DeliveryState | str) -> None:
        super().__init__(f"illegal delivery transition {source} -> {target}")
        self.source = source
        self.target = target


def is_terminal(state: DeliveryState | str) -> bool:
    return DeliveryState(state) in TERMINAL


def can_transition(source: DeliveryState | str, target: DeliveryState | str) -> bool:
    return (DeliveryState(source), DeliveryState(target)) in TRANSITIONS


def transition(source: DeliveryState | str, target: DeliveryState | str) -> str:
    """The transition's name; raises IllegalTransition when the state machine forbids it."""
    try:
        return TRANSITIONS[(DeliveryState(source), DeliveryState(target))]
    except (KeyError, ValueError):
        raise IllegalTransition(source, target) from None
