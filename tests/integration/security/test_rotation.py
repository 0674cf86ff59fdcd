"""Secret rotation over HTTP and through a real worker: during the grace period every
request carries a signature per live secret, and each verifies with `standardwebhooks`;
after it only the new secret signs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from courier.crypto import SecretBox
from tests.integration.api.conftest import Tenant, create_destination, send_event
from tests.support.engine import make_worker, run_workers, wait_terminal
from tests.support.receiver import Receiver

DAY = 86_400  # seconds


def _stored_entries(conn: psycopg.Connection[Any], destination_id: str) -> list[dict[str, Any]]:
    row = conn.execute(
        "SELECT signing_secrets FROM destinations WHERE id = %s", (destination_id,)
    ).fetchone()
    assert row is not None
    entries: list[dict[str, Any]] = row[0]
    return entries


async def _rotate(
    client: httpx.AsyncClient, tenant: Tenant, destination_id: str, **body: Any
) -> httpx.Response:
    return await client.post(
        f"/v1/destinations/{destination_id}/rotate-secret",
        json=body if body else None,
        headers=tenant.headers,
    )


async def _deliver_one(
    client: httpx.AsyncClient, tenant: Tenant, db_url: str, secret_key: str, done: int
) -> None:
    await send_event(client, tenant)
    async with run_workers([make_worker(db_url, secret_key)]):
        await wait_terminal(db_url, done)


async def test_both_secrets_sign_during_the_grace_and_only_the_new_one_after(
    client: httpx.AsyncClient,
    conn: psycopg.Connection[Any],
    db_url: str,
    secret_key: str,
    tenant_a: Tenant,
    receiver: Receiver,
) -> None:
    created = await create_destination(client, tenant_a, url=receiver.url("/rot"))
    old = created["signing_secret"]
    await _deliver_one(client, tenant_a, db_url, secret_key, 1)
    before = receiver.hits("/rot")[-1]
    assert len(before.headers["webhook-signature"].split()) == 1
    Webhook(old).verify(before.body, before.headers)

    started = datetime.now(UTC)
    rotated = await _rotate(client, tenant_a, created["id"])
    assert rotated.status_code == 200, rotated.text
    answer = rotated.json()
    assert set(answer) == {"signing_secret", "previous_expires_at"}
    new = answer["signing_secret"]
    assert new.startswith("whsec_") and new != old
    expires = datetime.fromisoformat(answer["previous_expires_at"])
    assert started + timedelta(seconds=DAY - 60) < expires < started + timedelta(seconds=DAY + 60)

    # During the grace: one signature per live secret, the new one first; each verifies.
    await _deliver_one(client, tenant_a, db_url, secret_key, 2)
    during = receiver.hits("/rot")[-1]
    signatures = during.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    Webhook(new).verify(during.body, during.headers)
    Webhook(old).verify(during.body, during.headers)
    new_only = {**during.headers, "webhook-signature": signatures[0]}
    old_only = {**during.headers, "webhook-signature": signatures[1]}
    Webhook(new).verify(during.body, new_only)
    Webhook(old).verify(during.body, old_only)

    # The grace ends (moved into the past in the database): only the new secret signs.
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    conn.execute(
        "UPDATE destinations SET signing_secrets = jsonb_set(signing_secrets, "
        "'{1,expires_at}', to_jsonb(%s::text)) WHERE id = %s",
        (past, created["id"]),
    )
    await _deliver_one(client, tenant_a, db_url, secret_key, 3)
    after = receiver.hits("/rot")[-1]
    assert len(after.headers["webhook-signature"].split()) == 1
    Webhook(new).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)
    # The explicit read shows only what still signs.
    read = await client.get(f"/v1/destinations/{created['id']}/secret", headers=tenant_a.headers)
    assert [s["secret"] for s in read.json()["secrets"]] == [new]


async def test_zero_grace_stops_the_old_secret_at_once(
    client: httpx.AsyncClient,
    conn: psycopg.Connection[Any],
    db_url: str,
    secret_key: str,
    tenant_a: Tenant,
    receiver: Receiver,
) -> None:
    created = await create_destination(client, tenant_a, url=receiver.url("/zero"))
    rotated = await _rotate(client, tenant_a, created["id"], grace_period_seconds=0)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["signing_secret"]
    assert datetime.fromisoformat(rotated.json()["previous_expires_at"]) <= datetime.now(UTC)
    assert len(_stored_entries(conn, created["id"])) == 1
    await _deliver_one(client, tenant_a, db_url, secret_key, 1)
    (hit,) = receiver.hits("/zero")
    assert len(hit.headers["webhook-signature"].split()) == 1
    Webhook(new).verify(hit.body, hit.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(created["signing_secret"]).verify(hit.body, hit.headers)


async def test_rotation_never_extends_an_earlier_expiry_and_drops_expired_secrets(
    client: httpx.AsyncClient,
    conn: psycopg.Connection[Any],
    secret_box: SecretBox,
    tenant_a: Tenant,
) -> None:
    created = await create_destination(client, tenant_a)
    first = await _rotate(client, tenant_a, created["id"], grace_period_seconds=3600)
    second = await _rotate(client, tenant_a, created["id"], grace_period_seconds=7 * DAY)
    assert first.status_code == second.status_code == 200
    entries = _stored_entries(conn, created["id"])
    secrets = [secret_box.decrypt(e["token"]) for e in entries]
    assert secrets == [
        second.json()["signing_secret"],
        first.json()["signing_secret"],
        created["signing_secret"],
    ]
    one_hour = datetime.fromisoformat(first.json()["previous_expires_at"])
    assert entries[0]["expires_at"] is None
    assert datetime.fromisoformat(entries[2]["expires_at"]) == one_hour  # not extended
    assert datetime.fromisoformat(entries[1]["expires_at"]) > one_hour + timedelta(days=6)
    assert datetime.fromisoformat(second.json()["previous_expires_at"]) == datetime.fromisoformat(
        entries[1]["expires_at"]
    )

    # Expire the oldest; the next rotation drops it.
    entries[2]["expires_at"] = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    conn.execute(
        "UPDATE destinations SET signing_secrets = %s WHERE id = %s",
        (Jsonb(entries), created["id"]),
    )
    third = await _rotate(client, tenant_a, created["id"])
    assert third.status_code == 200
    kept = [secret_box.decrypt(e["token"]) for e in _stored_entries(conn, created["id"])]
    assert kept == [
        third.json()["signing_secret"],
        second.json()["signing_secret"],
        first.json()["signing_secret"],
    ]


async def test_rotation_is_audited_without_the_secret(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    created = await create_destination(client, tenant_a)
    rotated = await _rotate(client, tenant_a, created["id"], grace_period_seconds=600)
    audit = (await client.get("/v1/audit", headers=tenant_a.headers)).json()["items"]
    assert audit[0]["action"] == "destination.secret_rotated"
    assert audit[0]["destination_id"] == created["id"]
    assert audit[0]["actor"] == f"api_key:{tenant_a.key_id}"
    assert audit[0]["data"]["grace_period_seconds"] == 600
    assert datetime.fromisoformat(audit[0]["data"]["previous_expires_at"]) == (
        datetime.fromisoformat(rotated.json()["previous_expires_at"])
    )
    text = str(audit)
    assert rotated.json()["signing_secret"] not in text and created["signing_secret"] not in text


@pytest.mark.parametrize(
    "body",
    [
        {"grace_period_seconds": -1},
        {"grace_period_seconds": 604_801},
        {"grace_period_seconds": "60"},
        {"grace_period_seconds": 1.5},
        {"grace": 60},
    ],
)
async def test_bad_grace_periods_are_422_naming_the_field(
    client: httpx.AsyncClient, tenant_a: Tenant, body: dict[str, Any]
) -> None:
    created = await create_destination(client, tenant_a)
    response = await _rotate(client, tenant_a, created["id"], **body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    (field,) = {e["field"] for e in response.json()["errors"]}
    assert field.endswith(next(iter(body)))


async def test_the_longest_grace_and_an_empty_object_are_accepted(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    created = await create_destination(client, tenant_a)
    longest = await _rotate(client, tenant_a, created["id"], grace_period_seconds=604_800)
    assert longest.status_code == 200, longest.text
    empty = await client.post(
        f"/v1/destinations/{created['id']}/rotate-secret", json={}, headers=tenant_a.headers
    )
    assert empty.status_code == 200, empty.text


async def test_another_tenants_destination_is_404_and_unchanged(
    client: httpx.AsyncClient,
    conn: psycopg.Connection[Any],
    tenant_a: Tenant,
    tenant_b: Tenant,
) -> None:
    created = await create_destination(client, tenant_a)
    before = _stored_entries(conn, created["id"])
    theirs = await _rotate(client, tenant_b, created["id"])
    missing = await _rotate(client, tenant_b, str(uuid.uuid4()))
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json()
    assert _stored_entries(conn, created["id"]) == before
    audit_b = (await client.get("/v1/audit", headers=tenant_b.headers)).json()["items"]
    assert audit_b == []
    deleted = await client.delete(f"/v1/destinations/{created['id']}", headers=tenant_a.headers)
    assert deleted.status_code == 204
    assert (await _rotate(client, tenant_a, created["id"])).status_code == 404
