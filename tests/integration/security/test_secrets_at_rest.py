"""Encryption at rest: `courier secrets rekey` (real CLI processes), a database dump that
holds no plaintext secret, and `serve`/`worker` refusing to start without a usable key."""

from __future__ import annotations

import contextlib
import os
import pty
import subprocess
import sys
import uuid
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb
from standardwebhooks.webhooks import Webhook

from courier.crypto import SecretBox, SecretKeyError, generate_key
from courier.destinations import create_destination, secret_entry
from courier.enqueue import enqueue_event
from courier.signing import generate_secret
from courier.tenancy import create_tenant
from tests.integration.api.conftest import Tenant, send_event
from tests.integration.api.conftest import create_destination as api_create_destination
from tests.support.engine import make_worker, run_workers, soft_delete_destination, wait_terminal
from tests.support.keys import key_secret
from tests.support.receiver import Receiver

UNREACHABLE_DB = "postgresql://courier@127.0.0.1:1/none?connect_timeout=1"


def _courier(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}
    return subprocess.run(
        [sys.executable, "-m", "courier", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _tokens(conn: psycopg.Connection[Any]) -> list[str]:
    rows = conn.execute("SELECT signing_secrets FROM destinations ORDER BY id").fetchall()
    return [entry["token"] for (entries,) in rows for entry in entries]


def _seed(conn: psycopg.Connection[Any], box: SecretBox, url: str) -> list[str]:
    """Destinations in two tenants, one with two secrets, one deleted: 6 secrets."""
    plaintexts: list[str] = []
    for name in ("rekey-a", "rekey-b"):
        tenant_id, _ = create_tenant(conn, f"{name}-{uuid.uuid4().hex[:6]}")
        for _ in range(2):
            _row, secret = create_destination(conn, box, tenant_id, name="d", url=url)
            plaintexts.append(secret)
    row, secret = create_destination(conn, box, tenant_id, name="deleted", url=url)
    plaintexts.append(secret)
    soft_delete_destination(conn, tenant_id, row["id"])
    # A second (rotated-in) secret on the first destination.
    extra = generate_secret()
    first = conn.execute("SELECT id FROM destinations ORDER BY id LIMIT 1").fetchone()
    assert first is not None
    conn.execute(
        "UPDATE destinations SET signing_secrets = signing_secrets || %s::jsonb WHERE id = %s",
        (Jsonb([secret_entry(box, extra)]), first[0]),
    )
    plaintexts.append(extra)
    return plaintexts


async def test_rekey_moves_every_secret_to_the_first_key_and_is_idempotent(
    conn: psycopg.Connection[Any], db_url: str, receiver: Receiver
) -> None:
    key_a, key_b = generate_key(), generate_key()
    box_a, box_b = SecretBox(key_a), SecretBox(key_b)
    plaintexts = _seed(conn, box_a, receiver.url("/rekeyed"))
    before = _tokens(conn)
    assert len(before) == 6
    assert sorted(box_a.decrypt(t) for t in before) == sorted(plaintexts)

    first = _courier(
        "secrets", "rekey", "--batch-size", "2",
        COURIER_DATABASE_URL=db_url, COURIER_SECRET_KEY=f"{key_b},{key_a}",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "5 scanned, 5 rewritten (3 batch(es))" in first.stdout
    assert "6 re-encrypted, 0 already under the first key, 0 undecryptable" in first.stdout
    assert first.stdout.splitlines()[:3] == [  # progress, one line per committed batch
        "rekey: 2 destination(s) scanned, 2 rewritten",
        "rekey: 4 destination(s) scanned, 4 rewritten",
        "rekey: 5 destination(s) scanned, 5 rewritten",
    ]
    after = _tokens(conn)
    assert sorted(SecretBox(key_b).decrypt(t) for t in after) == sorted(plaintexts)
    for token in after:  # the old key alone opens nothing any more
        with pytest.raises(SecretKeyError):
            box_a.decrypt(token)
    assert not any(p in first.stdout + first.stderr for p in plaintexts)

    again = _courier(
        "secrets", "rekey", COURIER_DATABASE_URL=db_url, COURIER_SECRET_KEY=f"{key_b},{key_a}"
    )
    assert again.returncode == 0, again.stderr
    assert "0 re-encrypted, 6 already under the first key" in again.stdout
    assert _tokens(conn) == after  # nothing rewritten

    # A worker holding only the new key signs with the same secrets as before.
    (tenant_id,) = conn.execute(
        "SELECT tenant_id FROM destinations WHERE deleted_at IS NULL ORDER BY id LIMIT 1"
    ).fetchone() or (None,)
    assert tenant_id is not None
    enqueue_event(conn, tenant_id, "order.created", {"n": 1})
    async with run_workers([make_worker(db_url, key_b)]):
        await wait_terminal(db_url, 2)
    hits = receiver.hits("/rekeyed")
    assert len(hits) == 2
    for hit in hits:
        assert any(_verifies(p, hit.body, hit.headers) for p in plaintexts)
    assert box_b.decrypt(after[0]) in plaintexts


def test_rekey_on_a_terminal_draws_a_bar_instead_of_lines(
    conn: psycopg.Connection[Any], db_url: str, receiver: Receiver
) -> None:
    key_a, key_b = generate_key(), generate_key()
    _seed(conn, SecretBox(key_a), receiver.url("/bar"))
    base = {k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}
    env = {**base, "COURIER_DATABASE_URL": db_url, "COURIER_SECRET_KEY": f"{key_b},{key_a}"}
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "courier", "secrets", "rekey", "--batch-size", "2"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=follower,
            stderr=follower,
        )
        os.close(follower)
        chunks = []
        with contextlib.suppress(OSError):  # EIO once the child has closed the terminal
            while chunk := os.read(leader, 4096):
                chunks.append(chunk)
        assert proc.wait(timeout=120) == 0
    finally:
        os.close(leader)
    shown = b"".join(chunks).decode(errors="replace")
    assert "rekey  [####" in shown and "100%" in shown, shown
    assert "destination(s) scanned" not in shown  # the bar, not the per-batch lines
    assert "6 re-encrypted, 0 already under the first key, 0 undecryptable" in shown


def _verifies(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        Webhook(secret).verify(body, headers)
    except Exception:
        return False
    return True


def test_rekey_without_the_old_key_changes_nothing_and_says_so(
    conn: psycopg.Connection[Any], db_url: str
) -> None:
    key_a = generate_key()
    _seed(conn, SecretBox(key_a), "https://example.com/hook")
    before = _tokens(conn)
    result = _courier(
        "secrets", "rekey", COURIER_DATABASE_URL=db_url, COURIER_SECRET_KEY=generate_key()
    )
    assert result.returncode == 2
    assert "6 undecryptable" in result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("courier: 6 secret(s) could not be decrypted")
    assert _tokens(conn) == before


@pytest.mark.parametrize(
    ("command", "env"),
    [
        (["serve"], {}),
        (["worker"], {"COURIER_WORKER_TENANTS": "*"}),
        (["secrets", "rekey"], {}),
        (["serve"], {"COURIER_SECRET_KEY": "short"}),
        (["worker"], {"COURIER_WORKER_TENANTS": "*", "COURIER_SECRET_KEY": " , "}),
    ],
    ids=["serve-unset", "worker-unset", "rekey-unset", "serve-too-short", "worker-empty"],
)
def test_commands_refuse_to_start_without_a_usable_key(
    command: list[str], env: dict[str, str]
) -> None:
    result = _courier(*command, COURIER_DATABASE_URL=UNREACHABLE_DB, **env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("courier: ") and "COURIER_SECRET_KEY" in line
    assert "Traceback" not in result.stderr and "database" not in line


async def test_a_database_dump_holds_no_plaintext_secret(
    client: httpx.AsyncClient,
    conn: psycopg.Connection[Any],
    db_url: str,
    secret_key: str,
    tenant_a: Tenant,
    receiver: Receiver,
) -> None:
    """Every secret that ever crossed the API, looked for in every table's text."""
    receiver.script("/dump", [500], then=200)
    option_secrets = {f"hdr-{uuid.uuid4().hex[:10]}", f"pw-{uuid.uuid4().hex[:10]}"}
    header_value, password = sorted(option_secrets)
    created = await api_create_destination(
        client,
        tenant_a,
        url=receiver.url("/dump"),
        backoff_initial_ms=100,
        backoff_max_ms=200,
        headers={"X-Api-Key": header_value},
        auth={"type": "basic", "username": "courier", "password": password},
        capture_response_body=True,
    )
    rotated = await client.post(
        f"/v1/destinations/{created['id']}/rotate-secret", headers=tenant_a.headers
    )
    read = await client.get(f"/v1/destinations/{created['id']}/secret", headers=tenant_a.headers)
    # A broker destination whose URL holds a password; nothing listens there, so its one
    # attempt fails with a summary written from the connection error.
    broker_password = f"broker-pw-{uuid.uuid4().hex[:8]}"
    broker = await client.post(
        "/v1/destinations",
        json={
            "name": "broker",
            "kind": "redis_stream",
            "config": {"url": f"redis://default:{broker_password}@127.0.0.1:1/0", "stream": "s"},
            "max_attempts": 1,
        },
        headers=tenant_a.headers,
    )
    assert broker.status_code == 201, broker.text
    await send_event(client, tenant_a, payload={"dump": True})
    async with run_workers([make_worker(db_url, secret_key)]):
        await wait_terminal(db_url, 2)
    assert len(receiver.hits("/dump")) == 2
    (summary,) = conn.execute(
        "SELECT error_summary FROM delivery_attempts WHERE destination_id = %s",
        (broker.json()["id"],),
    ).fetchone() or (None,)
    assert summary and "127.0.0.1" in summary
    secrets = {created["signing_secret"], rotated.json()["signing_secret"]}
    assert {s["secret"] for s in read.json()["secrets"]} == secrets
    needles = {tenant_a.key, key_secret(tenant_a.key), broker_password, *option_secrets}
    assert {h.headers["X-Api-Key"] for h in receiver.hits("/dump")} == {header_value}
    for secret in secrets:
        needles |= {secret, secret.removeprefix("whsec_"), secret.removeprefix("whsec_")[:24]}
    tables = [
        name
        for (name,) in conn.execute(
            "SELECT quote_ident(table_name) FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        ).fetchall()
    ]
    assert {"destinations", "delivery_attempts", "audit_records", "api_keys"} <= set(tables)
    dumped = 0
    for table in tables:
        for (text,) in conn.execute(f"SELECT t::text FROM {table} t").fetchall():
            dumped += 1
            for needle in needles:
                assert needle not in text, f"{table} holds a secret"
    assert dumped > 0
    (stored,) = conn.execute("SELECT signing_secrets::text FROM destinations").fetchone() or ("",)
    assert "token" in stored and not any(n in stored for n in needles)
