"""courier.rotation: the secret list a rotation writes (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from courier.rotation import MAX_GRACE_SECONDS, is_live, rotate_entries

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def entry(name: str, expires_in_s: float | None) -> dict[str, Any]:
    expires = None if expires_in_s is None else (NOW + timedelta(seconds=expires_in_s)).isoformat()
    return {"token": name, "created_at": NOW.isoformat(), "expires_at": expires}


def test_new_first_previous_capped_expired_dropped_never_extended() -> None:
    current, soon, gone = entry("cur", None), entry("soon", 60), entry("gone", -1)
    rotated = rotate_entries([current, soon, gone], entry("new", None), now=NOW, grace_seconds=3600)
    assert [e["token"] for e in rotated.entries] == ["new", "cur", "soon"]
    assert rotated.entries[1]["expires_at"] == (NOW + timedelta(hours=1)).isoformat()
    assert rotated.entries[2]["expires_at"] == soon["expires_at"]  # not extended
    assert rotated.previous_expires_at == NOW + timedelta(hours=1)
    assert all(is_live(e, NOW) for e in rotated.entries)


def test_zero_grace_keeps_only_the_new_secret() -> None:
    rotated = rotate_entries([entry("cur", None)], entry("new", None), now=NOW, grace_seconds=0)
    assert [e["token"] for e in rotated.entries] == ["new"]
    assert rotated.previous_expires_at == NOW


def test_nothing_live_before_means_no_previous_expiry() -> None:
    rotated = rotate_entries([entry("gone", -5)], entry("new", None), now=NOW, grace_seconds=60)
    assert [e["token"] for e in rotated.entries] == ["new"]
    assert rotated.previous_expires_at is None


@pytest.mark.parametrize("grace", [-1, MAX_GRACE_SECONDS + 1])
def test_grace_out_of_range_is_refused(grace: int) -> None:
    with pytest.raises(ValueError):
        rotate_entries([], entry("new", None), now=NOW, grace_seconds=grace)
