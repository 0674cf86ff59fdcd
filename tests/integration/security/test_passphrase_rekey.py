"""A passphrase key: secrets written when it was stretched with one SHA-256 still work,
and `courier secrets rekey` (the real CLI) moves them to the scrypt-stretched format."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import uuid
from typing import Any

import psycopg
from cryptography.fernet import Fernet
from psycopg.types.json import Jsonb

from courier.crypto import V2_PREFIX, SecretBox
from courier.destinations import create_destination
from courier.tenancy import create_tenant

PASSPHRASE = "an operator's long passphrase"


def _old_format(plaintext: str) -> str:
    digest = hashlib.sha256(b"courier-secret-key:" + PASSPHRASE.encode("utf-8")).digest()
    return Fernet(base64.urlsafe_b64encode(digest)).encrypt(plaintext.encode()).decode()


def _rekey(db_url: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}
    return subprocess.run(
        [sys.executable, "-m", "courier", "secrets", "rekey"],
        env={**base, "COURIER_DATABASE_URL": db_url, "COURIER_SECRET_KEY": PASSPHRASE},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _tokens(conn: psycopg.Connection[Any]) -> list[str]:
    rows = conn.execute("SELECT signing_secrets FROM destinations ORDER BY id").fetchall()
    return [entry["token"] for (entries,) in rows for entry in entries]


def test_rekey_moves_old_passphrase_tokens_to_scrypt(
    conn: psycopg.Connection[Any], db_url: str
) -> None:
    box = SecretBox(PASSPHRASE)
    tenant_id, _ = create_tenant(conn, f"pp-{uuid.uuid4().hex[:6]}")
    plaintexts = []
    for n in range(3):
        row, secret = create_destination(
            conn, box, tenant_id, name=f"d{n}", url="https://example.com/hook"
        )
        plaintexts.append(secret)
        if n < 2:  # two as an older courier wrote them
            conn.execute(
                "UPDATE destinations SET signing_secrets = %s WHERE id = %s",
                (Jsonb([{"token": _old_format(secret), "created_at": "2026-01-01T00:00:00Z",
                         "expires_at": None}]), row["id"]),
            )  # fmt: skip
    before = _tokens(conn)
    assert [t.startswith(V2_PREFIX) for t in before] == [False, False, True]
    assert [box.decrypt(t) for t in before] == plaintexts

    first = _rekey(db_url)
    assert first.returncode == 0, first.stderr
    assert "secrets: 2 re-encrypted, 1 already under the first key, 0 undecryptable" in (
        first.stdout
    )
    after = _tokens(conn)
    assert all(t.startswith(V2_PREFIX) for t in after)
    assert [box.decrypt(t) for t in after] == plaintexts
    assert after[2] == before[2]

    second = _rekey(db_url)
    assert second.returncode == 0 and "0 re-encrypted, 3 already" in second.stdout
    assert _tokens(conn) == after
