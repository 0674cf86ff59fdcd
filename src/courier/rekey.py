"""`courier secrets rekey`: re-encrypt every stored signing secret, every secret field of a
broker destination's config and every secret option value (header values, credentials,
private keys), under the first key.

Rotating COURIER_SECRET_KEY takes three steps: put the new key first and keep the old
one after it (`COURIER_SECRET_KEY=new,old`; both decrypt, the new one encrypts), run
`courier secrets rekey`, then drop the old key. Rekeying walks `destinations` in key
order, one batch per transaction with the batch's rows locked, so it can run while the
API and workers are live, be interrupted, and be run again: a secret already under the
first key is left as it is (idempotent), so a second run changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

from courier.crypto import SecretBox, SecretKeyError
from courier.store.destinations import secrets_batch, store_secrets

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


def _rekey_field(box: SecretBox, holder: dict[str, Any], name: str, result: RekeyResult) -> bool:
    """Re-encrypt `holder[name]` unless it is current; True when it changed."""
    token = holder.get(name)
    if not isinstance(token, str):
        return False
    if box.is_current(token):
        result.current_secrets += 1
        return False
    try:
        holder[name] = box.rotate(token)
    except SecretKeyError:
        result.undecryptable += 1
        return False
    result.rekeyed_secrets += 1
    return True


def rekey_secrets(
    conn: psycopg.Connection[Any],
    box: SecretBox,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_batch: Callable[[RekeyResult], None] | None = None,
) -> RekeyResult:
    """Re-encrypt what is not yet under the first key; `conn` must be in autocommit mode.

    `on_batch(result so far)` is called after each committed batch (progress lines).
    """
    if batch_size < 1:
        raise ValueError("batch size must be at least 1")
    result = RekeyResult()
    after: tuple[uuid.UUID, uuid.UUID] = (_START, _START)
    while True:
        with conn.transaction():
            rows = secrets_batch(conn, after, batch_size)
            for tenant_id, destination_id, entries, config_secrets, option_secrets in rows:
                result.destinations += 1
                changed = False
                for entry in entries:
                    changed |= _rekey_field(box, entry, "token", result)
                for secrets in (config_secrets, option_secrets):
                    for name in list(secrets):
                        changed |= _rekey_field(box, secrets, name, result)
                if changed:
                    store_secrets(
                        conn,
                        tenant_id,
                        destination_id,
                        signing_secrets=Jsonb(entries, dumps=_dumps),
                        config_secrets=Jsonb(config_secrets, dumps=_dumps),
                        option_secrets=Jsonb(option_secrets, dumps=_dumps),
                    )
                    result.rekeyed_destinations += 1
        if not rows:
            return result
        result.batches += 1
        if on_batch is not None:
            on_batch(result)
        after = (rows[-1][0], rows[-1][1])
