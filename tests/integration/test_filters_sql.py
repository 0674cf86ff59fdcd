"""Payload filters in PostgreSQL: the SQL evaluation (migration 020) agrees with the
reference evaluator (courier.filters) on random filters and payloads, both called alone
and inside the fan-out statement that writes the deliveries."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from courier.crypto import SecretBox
from courier.enqueue import EnqueueResult, NewEvent, enqueue_events
from courier.filters import matches
from courier.tenancy import create_tenant
from tests.support.filters import filters, payloads

SHARED_DB = settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _sql(conn: psycopg.Connection[Any], document: dict[str, Any], payload: Any) -> bool:
    row = conn.execute(
        "SELECT courier_filter_matches(courier_filter_plan(%s), %s)",
        (Jsonb(document), orjson.dumps(payload).decode("utf-8")),
    ).fetchone()
    assert row is not None
    return bool(row[0])


@SHARED_DB
@given(document=filters, payload=payloads)
def test_sql_agrees_with_the_reference(
    conn: psycopg.Connection[Any], document: dict[str, Any], payload: Any
) -> None:
    assert _sql(conn, document, payload) is matches(document, payload)


# Where a careless SQL translation would part from the rules: each (filter, payload,
# expected), checked on both sides.
EDGES: list[tuple[dict[str, Any], Any, bool]] = [
    ({"a": 1}, {"a": 1.0}, True),
    ({"a": 0}, {"a": -0.0}, True),
    ({"a": 10**16}, {"a": 1e16}, True),
    ({"a": {"$lt": 9.223372036854776e18}}, {"a": 2**63 - 1}, True),
    ({"a": [1, {"b": 2}]}, {"a": [1.0, {"b": 2.0}]}, True),
    ({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}}, False),
    ({"a": 1}, {"a": True}, False),
    ({"a": {"$gte": 0}}, {"a": False}, False),
    ({"a": None}, {}, False),
    ({"a": {"$ne": None}}, {}, True),
    ({"a": {"$exists": True}}, {"a": None}, True),
    ({"a.b": 1}, {"a": [{"b": 1}]}, False),
    ({"a.0": 1}, {"a": [1]}, False),
    ({"a": {"$in": [[1]]}}, {"a": [1]}, True),
    ({"a": {"$in": [[1, 2]]}}, {"a": [1]}, False),
    ({"a": {"$in": [{"b": 1, "c": 2}]}}, {"a": {"b": 1}}, False),
    ({"a": {"$in": [[1]]}}, {"a": 1}, False),
    ({"a": {"$nin": [1.0]}}, {"a": 1}, False),
    ({"a": {"$gt": "Z"}}, {"a": "a"}, True),
    ({"a": {"$lt": "é"}}, {"a": "z"}, True),
    ({"a": {"$gt": "€"}}, {"a": "😀"}, True),
    ({"a": {"$gt": "10"}}, {"a": "9"}, True),
    ({"a": {"$gt": 10}}, {"a": "9"}, False),
    ({"a": {"$not": {"$gt": 1}}}, {}, True),
    ({"$not": {"a": 1}}, {"a": 1}, False),
    ({"$or": [{"a": 1}, {"b": 1}], "a": {"$exists": False}}, {"b": 1}, True),
    ({"a": {"$exists": False}}, [1, 2], True),
]


def test_sql_agrees_on_the_edges(conn: psycopg.Connection[Any]) -> None:
    wrong = [
        (document, payload, expected)
        for document, payload, expected in EDGES
        if matches(document, payload) is not expected
        or _sql(conn, document, payload) is not expected
    ]
    assert wrong == []


def test_a_payload_jsonb_cannot_hold_matches_nothing_and_breaks_nothing(
    conn: psycopg.Connection[Any],
) -> None:
    assert _sql(conn, {}, {"a": "x\x00"}) is False
    # the six characters \u0000 as text (an escaped backslash) are an ordinary string
    assert _sql(conn, {"a": "\\u0000"}, {"a": "\\u0000"}) is True


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    documents=st.lists(st.one_of(st.none(), filters), min_size=1, max_size=3),
    batch=st.lists(payloads, min_size=1, max_size=6),
)
def test_fan_out_writes_a_delivery_exactly_where_the_filter_matches(
    conn: psycopg.Connection[Any],
    secret_box: SecretBox,
    documents: list[dict[str, Any] | None],
    batch: list[Any],
) -> None:
    from courier.destinations import create_destination

    tenant, _ = create_tenant(conn, f"f-{uuid.uuid4().hex[:8]}")
    ids = [
        create_destination(
            conn, secret_box, tenant, name=f"d{n}", url="http://127.0.0.1:9/", filter=document
        )[0]["id"]
        for n, document in enumerate(documents)
    ]
    with conn.transaction():
        outcomes = enqueue_events(conn, tenant, [NewEvent("t", p) for p in batch])
    for payload, outcome in zip(batch, outcomes, strict=True):
        assert isinstance(outcome, EnqueueResult)
        expected = {
            dest
            for dest, document in zip(ids, documents, strict=True)
            if document is None or matches(document, payload)
        }
        assert {d.destination_id for d in outcome.deliveries} == expected
