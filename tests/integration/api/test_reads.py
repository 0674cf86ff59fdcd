"""Reads: deliveries with filters, one delivery with its attempts, attempts, dead letters
with their reason, the audit trail; all after a real worker has delivered."""

from __future__ import annotations

from typing import Any

import httpx

from tests.integration.api.conftest import Tenant, create_destination, send_event
from tests.support.engine import make_worker, run_workers, wait_terminal
from tests.support.receiver import Receiver

DELIVERY_FIELDS = {
    "id", "tenant_id", "event_id", "destination_id", "state", "attempt_count",
    "next_attempt_at", "last_error", "created_at", "updated_at", "delivered_at",
    "dead_lettered_at", "dead_letter_reason", "replay_of", "failure_reason", "last_http_status",
}  # fmt: skip
ATTEMPT_FIELDS = {
    "id", "delivery_id", "event_id", "attempt_number", "worker_id", "started_at",
    "finished_at", "duration_ms", "http_status", "retryable", "outcome", "error_summary",
    "response_body_excerpt",
}  # fmt: skip


async def get_json(
    client: httpx.AsyncClient, path: str, params: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    response = await client.get(path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_reads_after_real_deliveries(
    client: httpx.AsyncClient, db_url: str, secret_key: str, tenant_a: Tenant, receiver: Receiver
) -> None:
    receiver.script("/flaky", [503], then=200)
    receiver.always("/broken", 500)
    policy = {"backoff_initial_ms": 100, "backoff_max_ms": 200}
    flaky = await create_destination(client, tenant_a, url=receiver.url("/flaky"), **policy)
    broken = await create_destination(
        client, tenant_a, url=receiver.url("/broken"), max_attempts=2, **policy
    )
    event = await send_event(client, tenant_a, "order.created", {"order": 1})
    by_destination = {d["destination_id"]: d["id"] for d in event["deliveries"]}
    async with run_workers([make_worker(db_url, secret_key)]):
        await wait_terminal(db_url, 2)
    h = tenant_a.headers

    delivered = (
        await client.get(f"/v1/deliveries/{by_destination[flaky['id']]}", headers=h)
    ).json()
    assert set(delivered) == DELIVERY_FIELDS | {"attempts", "ticket"}
    assert delivered["ticket"] is None  # a webhook delivery has no ticket
    assert delivered["state"] == "delivered" and delivered["attempt_count"] == 2
    assert delivered["delivered_at"] is not None and delivered["tenant_id"] == str(tenant_a.id)
    outcomes = [
        (a["attempt_number"], a["outcome"], a["http_status"]) for a in delivered["attempts"]
    ]
    assert outcomes == [(1, "retryable_failure", 503), (2, "succeeded", 200)]
    assert all(set(a) == ATTEMPT_FIELDS for a in delivered["attempts"])

    attempts = await client.get(
        f"/v1/deliveries/{by_destination[flaky['id']]}/attempts?limit=1", headers=h
    )
    page1 = attempts.json()
    assert [a["attempt_number"] for a in page1["items"]] == [1] and page1["next_cursor"]
    page2 = await get_json(
        client,
        f"/v1/deliveries/{by_destination[flaky['id']]}/attempts",
        {"limit": 1, "cursor": page1["next_cursor"]},
        h,
    )
    assert [a["attempt_number"] for a in page2["items"]] == [2] and page2["next_cursor"] is None

    dead = (await client.get("/v1/dead-letters", headers=h)).json()
    assert [d["id"] for d in dead["items"]] == [by_destination[broken["id"]]]
    assert dead["items"][0]["state"] == "dead_lettered"
    assert dead["items"][0]["dead_letter_reason"]
    assert dead["items"][0]["dead_lettered_at"] is not None
    scoped = await client.get(f"/v1/dead-letters?destination_id={flaky['id']}", headers=h)
    assert scoped.json()["items"] == []

    states = {}
    for state in ("delivered", "dead_lettered", "pending"):
        listed = await get_json(client, "/v1/deliveries", {"state": state}, h)
        states[state] = [d["id"] for d in listed["items"]]
    assert states == {
        "delivered": [by_destination[flaky["id"]]],
        "dead_lettered": [by_destination[broken["id"]]],
        "pending": [],
    }
    by_dest = await client.get(f"/v1/deliveries?destination_id={broken['id']}", headers=h)
    assert [d["id"] for d in by_dest.json()["items"]] == [by_destination[broken["id"]]]

    audit = (await client.get("/v1/audit", headers=h)).json()["items"]
    dead_audit = [a for a in audit if a["action"] == "delivery.dead_lettered"]
    assert len(dead_audit) == 1 and dead_audit[0]["delivery_id"] == by_destination[broken["id"]]
    assert dead_audit[0]["reason"]


async def test_filters_are_validated(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    for query, field in [
        ("state=nope", "state"),
        ("destination_id=xyz", "destination_id"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("cursor=%%%", "cursor"),
        ("cursor=bjox", "cursor"),
    ]:
        response = await client.get(f"/v1/deliveries?{query}", headers=tenant_a.headers)
        assert response.status_code == 422, query
        assert [e["field"] for e in response.json()["errors"]] == [field], query
    ok = await client.get("/v1/deliveries?limit=500", headers=tenant_a.headers)
    assert ok.status_code == 200
