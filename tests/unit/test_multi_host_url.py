"""check_multi_host: a URL naming several servers must ask for the writable one."""

from __future__ import annotations

import pytest

from courier.store.database import check_multi_host


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@db.example/courier",
        "postgresql://u@a:5432,b:5432/courier?target_session_attrs=read-write",
        "postgresql://u@a,b/courier?target_session_attrs=primary",
        "host=a,b port=1,2 dbname=x target_session_attrs=read-write",
        "host=/tmp/s dbname=x",
        "password=sekrit '",  # unparseable: left to the connection to report
    ],
)
def test_accepted(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGTARGETSESSIONATTRS", raising=False)
    check_multi_host(url)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:sekrit@a:5432,b:5432/courier",
        "postgresql://u:sekrit@a,b/courier?target_session_attrs=any",
        "postgresql://u:sekrit@a,b/courier?target_session_attrs=prefer-standby",
        "host=a,b port=1,2 dbname=x password=sekrit",
        "hostaddr=127.0.0.1,127.0.0.2 dbname=x password=sekrit",
    ],
)
def test_refused_with_one_clear_line(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGTARGETSESSIONATTRS", raising=False)
    with pytest.raises(ValueError) as caught:
        check_multi_host(url)
    message = str(caught.value)
    assert "COURIER_DATABASE_URL names 2 servers" in message
    assert "target_session_attrs=read-write" in message
    assert "\n" not in message and "sekrit" not in message


def test_the_environment_may_ask_for_the_primary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGTARGETSESSIONATTRS", "read-write")
    check_multi_host("postgresql://u@a,b/courier")
