"""`courier secrets rekey`: re-encrypt every stored signing secret under the first key.

Rotating COURIER_SECRET_KEY takes three steps: put the new key first and keep the old
one after it (`COURIER_SECRET_KEY=new,old`; both decrypt, the new one encrypts), run
`courier secrets rekey`, then drop the old key. Rekeying walks `destinations` in key
order, one batch per transaction with the batch's rows locked, so it can run while the
API and workers are live, be interrupted, and be run again: a secret already under the
first key is left as it is (idempotent), so a second run changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

from courier.crypto import SecretBox, SecretKeyError
from courier.store.queries import query

DEFAULT_BATCH_SIZE = 500  # destinations per transaction
_START = uuid.UUID(int=0)


@dataclass(slots=True)
class RekeyResult:
    destinations: int = 0  # rows scanned (deleted ones included)
    rekeyed_destinations: int = 0  # rows written
    rekeyed_secrets: int = 0  # secret entries re-encrypted
    current_secrets: int = 0  # entries already under the first key
    undecryptable: int = 0  # entries no configured key opens (left unchanged)
    batches: int = 0


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


def rekey_secrets(
    conn: psycopg.Connection[Any], box: SecretBox, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> RekeyResult:
    """Re-encrypt what is not yet under the first key; `conn` must be in autocommit mode."""
    if batch_size < 1:
        raise ValueError("batch size must be at least 1")
    result = RekeyResult()
    after: tuple[uuid.UUID, uuid.UUID] = (_START, _START)
    while True:
        with conn.transaction():
            rows = conn.execute(
                query("secrets_rekey_batch"),
                {"after_tenant": after[0], "after_id": after[1], "limit": batch_size},
            ).fetchall()
            for tenant_id, destination_id, entries in rows:
                result.destinations += 1
                changed = False
                for entry in entries:
                    token = entry.get("token")
                    if not isinstance(token, str):
                        continue
                    if box.is_current(token):
                        result.current_secrets += 1
                        continue
                    try:
                        entry["token"] = box.rotate(token)
                    except SecretKeyError:
                        result.undecryptable += 1
                        continue
                    result.rekeyed_secrets += 1
                    changed = True
                if changed:
                    conn.execute(
                        query("secrets_rekey_update"),
                        {
                            "tenant_id": tenant_id,
                            "id": destination_id,
                            "signing_secrets": Jsonb(entries, dumps=_dumps),
                        },
                    )
                    result.rekeyed_destinations += 1
        if not rows:
            return result
        result.batches += 1
        after = (rows[-1][0], rows[-1][1])
