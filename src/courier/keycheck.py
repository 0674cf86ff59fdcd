"""Does COURIER_SECRET_KEY open the signing secrets of the tenants a worker serves?

Checked once at start, so a worker given the wrong key refuses to run instead of
claiming deliveries it cannot sign. One secret per tenant is tried: the newest one of
the tenant's newest destination, which the API wrote with its first key. With no
destinations yet there is nothing to check, and the key is taken as it is.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import psycopg

from courier.crypto import SecretBox, SecretKeyError
from courier.store.deliveries import secret_samples


def check_secret_key(
    conn: psycopg.Connection[Any], box: SecretBox, tenant_ids: Sequence[uuid.UUID] | None
) -> int:
    """Raise SecretKeyError (one line) unless every sample opens; returns how many did."""
    samples = secret_samples(conn, tenant_ids=tenant_ids)
    failed: list[uuid.UUID] = []
    for tenant_id, token in samples:
        try:
            box.decrypt(token)
        except SecretKeyError:
            failed.append(tenant_id)
    if failed:
        raise SecretKeyError(
            f"COURIER_SECRET_KEY cannot decrypt the signing secrets of {len(failed)} of "
            f"{len(samples)} tenant(s) this worker serves (first: tenant {failed[0]}): "
            "wrong key, or the key that encrypted them was removed; start it with the "
            "key the API uses"
        )
    return len(samples)
