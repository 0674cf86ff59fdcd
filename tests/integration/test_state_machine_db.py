"""The database enforces the state machine: every illegal UPDATE is an error, every legal
one goes through."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import psycopg
import pytest

from courier.enqueue import enqueue_event
from courier.states import DeliveryState, can_transition
from tests.conftest import DestinationFactory

S = DeliveryState


def _set_state(conn: psycopg.Connection[Any], delivery_id: uuid.UUID, state: S) -> None:
    """Force a row into `state` by a legal path, bypassing the worker."""
    locked = state == S.DELIVERING
    conn.execute("ALTER TABLE deliveries DISABLE TRIGGER deliveries_state_machine")
    conn.execute(
        "UPDATE deliveries SET state = %s, locked_by = %s, locked_until = %s, "
        "next_attempt_at = coalesce(next_attempt_at, now()) WHERE id = %s",
        (state, "w" if locked else None, "infinity" if locked else None, delivery_id),
    )
    conn.execute("ALTER TABLE deliveries ENABLE TRIGGER deliveries_state_machine")


@pytest.mark.parametrize(("source", "target"), list(itertools.product(S, S)))
def test_database_allows_exactly_the_legal_transitions(
    conn: psycopg.Connection[Any],
    tenant: uuid.UUID,
    make_destination: DestinationFactory,
    source: S,
    target: S,
) -> None:
    make_destination("http://127.0.0.1:9/")
    (d,) = enqueue_event(conn, tenant, "t", {}).deliveries
    _set_state(conn, d.id, source)
    locked = target == S.DELIVERING
    update = "UPDATE deliveries SET state = %s, locked_by = %s, locked_until = %s WHERE id = %s"
    params = (target, "w2" if locked else None, "infinity" if locked else None, d.id)
    if source == target and source != S.DELIVERING:
        conn.execute(update, params)  # not a transition: allowed, changes nothing
    elif can_transition(source, target):
        conn.execute(update, params)
        row = conn.execute("SELECT state FROM deliveries WHERE id = %s", (d.id,)).fetchone()
        assert row == (target,)
    else:
        with pytest.raises(psycopg.errors.CheckViolation, match="illegal delivery transition"):
            conn.execute(update, params)
        row = conn.execute("SELECT state FROM deliveries WHERE id = %s", (d.id,)).fetchone()
        assert row == (source,)
