"""describe_url: where a connection string points, never who or with what password."""

from __future__ import annotations

import pytest

from courier.store.database import describe_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:sekrit@db.example:5432/courier", "postgresql://db.example:5432/courier"),
        (
            "postgresql://u:sekrit@db.example/courier?sslmode=require",
            "postgresql://db.example/courier",
        ),
        ("user=postgres password=sekrit dbname=x host=/tmp/s", "postgresql:///tmp/s/x"),
        ("postgresql:///courier", "postgresql://local socket/courier"),
    ],
)
def test_describe_url_hides_credentials(url: str, expected: str) -> None:
    described = describe_url(url)
    assert described == expected
    assert "sekrit" not in described and "postgres " not in described


def test_unparseable_url_is_not_echoed() -> None:
    assert describe_url("password=sekrit '") == "<unparseable database URL>"
