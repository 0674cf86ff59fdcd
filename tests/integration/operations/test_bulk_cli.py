"""`courier replay` and `courier recover`, run as processes: batches, progress lines
(stdout is not a terminal here), and the domain functions' once-only guarantees."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from typing import Any

import httpx
import psycopg

from tests.integration.api.conftest import Tenant
from tests.integration.operations.test_bulk_replay import _dead, _replays
from tests.integration.operations.test_recovery import _outage


async def _courier(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}
    env["COURIER_DATABASE_URL"] = db_url
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "courier", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_replay_runs_in_batches_with_progress_and_never_twice(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], db_url: str, tenant_a: Tenant
) -> None:
    _, ids = await _dead(client, conn, tenant_a, 5)
    tenant = str(tenant_a.id)

    dry = await _courier(db_url, "replay", "--tenant", tenant, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout == "would replay 5 deliveries (dry run: nothing written)\n"
    assert _replays(conn) == {}

    real = await _courier(db_url, "replay", "--tenant", tenant, "--batch-size", "2")
    assert real.returncode == 0, real.stderr
    assert real.stdout.splitlines() == [
        "replaying: 2/5",
        "replaying: 4/5",
        "replaying: 5/5",
        "replayed 5 deliveries",
    ]
    assert set(_replays(conn)) == set(ids)
    actors = conn.execute(
        "SELECT DISTINCT actor FROM audit_records WHERE action = 'deliveries.bulk_replayed'"
    ).fetchall()
    assert [a[0].split(":")[0] for a in actors] == ["cli"]

    again = await _courier(db_url, "replay", "--tenant", tenant)
    assert again.stdout.splitlines()[-1] == "replayed 0 deliveries"
    assert len(_replays(conn)) == 5


async def test_recover_delivers_what_a_destination_missed_with_progress(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], db_url: str, tenant_a: Tenant
) -> None:
    o = await _outage(client, conn, tenant_a)
    on = await client.patch(
        f"/v1/destinations/{o['dest']['id']}", json={"enabled": True}, headers=tenant_a.headers
    )
    since = on.json()["recovery"]["since"]
    args = ["recover", "--tenant", str(tenant_a.id), "--destination", o["dest"]["id"]]

    dry = await _courier(db_url, *args, "--since", since, "--dry-run")
    assert dry.stdout == "would deliver 2 (dry run: nothing written)\n", dry.stderr

    real = await _courier(db_url, *args, "--since", since, "--batch-size", "1")
    assert real.returncode == 0, real.stderr
    assert real.stdout.splitlines() == [
        "recovering: 1/2",
        "recovering: 2/2",
        "recovered 2 deliveries",
    ]
    made = conn.execute(
        "SELECT count(*) FROM deliveries WHERE destination_id = %s AND state = 'pending'",
        (o["dest"]["id"],),
    ).fetchone()
    assert made == (2,)
    again = await _courier(db_url, *args, "--since", since)
    assert again.stdout.splitlines()[-1] == "recovered 0 deliveries"


async def test_bulk_mistakes_are_one_line(db_url: str, tenant_a: Tenant) -> None:
    tenant = str(tenant_a.id)
    backwards = await _courier(
        db_url, "replay", "--tenant", tenant, "--since", "2026-02-01", "--until", "2026-01-01"
    )
    assert (backwards.returncode, backwards.stderr) == (
        2,
        "courier: --until must be after --since\n",
    )
    unknown = await _courier(
        db_url,
        "recover",
        "--tenant",
        tenant,
        "--destination",
        str(uuid.uuid4()),
        "--since",
        "2026-01-01T00:00:00Z",
    )
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("courier: no destination ") and unknown.stderr.count("\n") == 1
