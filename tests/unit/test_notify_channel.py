"""The wake-up channel is named once in Python; every SQL block that uses it agrees."""

from __future__ import annotations

import re
from importlib import resources

from courier.store.migrate import migrations_dir
from courier.store.notify import CHANNEL, KEYS_CHANNEL
from courier.store.queries import query


def test_every_notify_and_listen_in_the_sql_uses_the_channel() -> None:
    folder = resources.files("courier.store") / "sql"
    texts = [f.read_text("utf-8") for f in folder.iterdir() if f.name.endswith(".sql")]
    sent = {m for text in texts for m in re.findall(r"pg_notify\('([^']+)'", text)}
    assert sent == {CHANNEL}
    assert query("listen_deliveries").strip().rstrip(";") == f"LISTEN {CHANNEL}"


def test_the_key_triggers_and_their_listen_agree() -> None:
    text = (migrations_dir() / "022_api_key_notify.sql").read_text("utf-8")
    assert set(re.findall(r"pg_notify\('([^']+)'", text)) == {KEYS_CHANNEL}
    listen = query("listen_api_keys").strip().splitlines()[-1].rstrip(";")
    assert listen == f"LISTEN {KEYS_CHANNEL}"


def test_no_python_module_outside_the_store_spells_the_channel() -> None:
    src = resources.files("courier")
    spelled = [
        str(path)
        for path in _python_files(src)
        if re.search(r"[\"']courier_deliveries[\"']", path.read_text("utf-8"))
        and "/store/" not in str(path)
    ]
    assert spelled == []


def _python_files(folder):  # type: ignore[no-untyped-def]
    for entry in folder.iterdir():
        if entry.is_dir():
            yield from _python_files(entry)
        elif entry.name.endswith(".py"):
            yield entry
