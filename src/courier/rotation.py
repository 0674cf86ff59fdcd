"""Signing-secret rotation: the new list of secret entries for a destination (pure).

A destination keeps its secrets in `destinations.signing_secrets`, newest first, each
`{"token", "created_at", "expires_at"}` (see `courier.destinations.secret_entry`). The
worker signs with every entry whose `expires_at` is null or still ahead, so during a
rotation's grace period receivers see one signature per live secret.

Rotating puts the new secret first and gives every previous live secret an expiry of
`now + grace`, keeping an earlier expiry where one was already set (a rotation never
extends the life of an old secret). Entries that have already expired are dropped, and
with a grace of 0 the previous secrets stop at once (they are dropped too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

DEFAULT_GRACE_SECONDS = 86_400  # one day
MAX_GRACE_SECONDS = 604_800  # seven days


@dataclass(frozen=True, slots=True)
class Rotated:
    entries: list[dict[str, Any]]  # newest (the new secret) first
    previous_expires_at: datetime | None  # when the last previous secret stops; None: none left


def parse_expiry(entry: dict[str, Any]) -> datetime | None:
    value = entry.get("expires_at")
    return datetime.fromisoformat(value) if value else None


def is_live(entry: dict[str, Any], now: datetime) -> bool:
    expires_at = parse_expiry(entry)
    return expires_at is None or expires_at > now


def rotate_entries(
    entries: Sequence[dict[str, Any]],
    new_entry: dict[str, Any],
    *,
    now: datetime,
    grace_seconds: int,
) -> Rotated:
    """`new_entry` first, then the previous live entries with their expiries capped.

    `now` must be timezone-aware; expiries are written as UTC ISO 8601, the form the
    worker compares against.
    """
    if not 0 <= grace_seconds <= MAX_GRACE_SECONDS:
        raise ValueError(f"grace_seconds must be between 0 and {MAX_GRACE_SECONDS}")
    now = now.astimezone(UTC)
    cap = now + timedelta(seconds=grace_seconds)
    kept: list[dict[str, Any]] = []
    latest: datetime | None = None
    for entry in entries:
        if not is_live(entry, now):
            continue  # already expired: nothing signs with it any more
        current = parse_expiry(entry)
        expires_at = cap if current is None else min(current.astimezone(UTC), cap)
        latest = expires_at if latest is None else max(latest, expires_at)
        if expires_at > now:  # with a grace of 0 the entry stops now: drop it
            kept.append({**entry, "expires_at": expires_at.isoformat()})
    return Rotated(entries=[new_entry, *kept], previous_expires_at=latest)
