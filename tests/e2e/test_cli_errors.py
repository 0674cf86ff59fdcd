"""The real `courier` command, run as a process: each mistake is one line naming the
setting and the reason, exit status 2, no traceback; secrets are never echoed."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from courier.crypto import SecretBox, generate_key
from tests.support.ports import free_port as _free_port

TIMEOUT = 120  # seconds per command


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}
    # Were a command to get past its mistake, its embedded database lands in a temp dir.
    env["COURIER_DATA_DIR"] = tempfile.mkdtemp(prefix="courier-cli-")
    env.update(extra)
    return env


def courier(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "courier", *args],
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def _one_line_exit_2(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def _with(url: str, *, user: str | None = None, password: str | None = None, db: str = "") -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{host}:{parts.port}" if parts.port else host
    if user:
        netloc = f"{user}{':' + password if password else ''}@{netloc}"
    return urlunsplit((parts.scheme, netloc, db or parts.path, parts.query, ""))


@pytest.mark.parametrize(
    ("variable", "value", "line"),
    [
        (
            "COURIER_WORKER_CONCURRENCY",
            "lots",
            "courier: invalid setting COURIER_WORKER_CONCURRENCY='lots': not an integer",
        ),
        ("COURIER_PORT", "abc", "courier: invalid setting COURIER_PORT='abc': not an integer"),
        (
            "COURIER_LOG_FORMAT",
            "text",
            "courier: invalid setting COURIER_LOG_FORMAT='text': must be one of 'json', 'human'",
        ),
        (
            "COURIER_LOG_LEVEL",
            "loud",
            "courier: invalid setting COURIER_LOG_LEVEL='loud': must be one of 'debug', "
            "'info', 'warning', 'error', 'critical'",
        ),
    ],
)
def test_an_invalid_setting_is_one_line_naming_it(variable: str, value: str, line: str) -> None:
    assert _one_line_exit_2(courier("migrate", **{variable: value})) == line


def test_several_invalid_settings_are_one_line_each() -> None:
    result = courier("migrate", COURIER_WORKER_CONCURRENCY="lots", COURIER_PORT="99999")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "courier: invalid setting COURIER_PORT='99999': must be at most 65535",
        "courier: invalid setting COURIER_WORKER_CONCURRENCY='lots': not an integer",
    ]


def test_a_flag_is_named_as_the_flag() -> None:
    line = _one_line_exit_2(courier("serve", "--port", "70000"))
    assert line == "courier: invalid setting --port='70000': must be at most 65535"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://localhost/x", "not a PostgreSQL URL (scheme 'http'; expected "),
        ("postgresql://u:hunter2pass@[bad/x", "not a PostgreSQL connection string (expected "),
        ("host=h password=hunter2pass port", "not a PostgreSQL connection string (expected "),
    ],
)
def test_a_malformed_database_url_is_one_line_without_its_value(url: str, reason: str) -> None:
    line = _one_line_exit_2(courier("migrate", COURIER_DATABASE_URL=url))
    assert line.startswith(f"courier: invalid setting COURIER_DATABASE_URL: {reason}")
    assert "hunter2pass" not in line


def test_a_missing_database_is_named_with_the_servers_reason(pg_server: tuple[str, Any]) -> None:
    url = _with(pg_server[0], user="postgres", db="/courier_no_such_db")
    line = _one_line_exit_2(courier("migrate", COURIER_DATABASE_URL=url))
    assert line.startswith("courier: cannot reach the database at postgresql://")
    assert line.endswith('/courier_no_such_db: database "courier_no_such_db" does not exist')


def test_a_wrong_role_is_named_and_its_password_is_not(pg_server: tuple[str, Any]) -> None:
    url = _with(pg_server[0], user="courier_nobody", password="hunter2pass", db="/postgres")
    for command in (["migrate"], ["tenants", "create", "acme"], ["keys", "list", "--tenant", "a"]):
        line = _one_line_exit_2(courier(*command, COURIER_DATABASE_URL=url))
        assert line.endswith('/postgres: role "courier_nobody" does not exist'), line
        assert "hunter2pass" not in line


def _busy_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize("command", ["up", "serve"])
def test_a_busy_port_is_one_line_before_anything_says_courier_is_up(
    command: str, db_url: str
) -> None:
    with _busy_port() as busy:
        port = busy.getsockname()[1]
        result = courier(
            command,
            "--port",
            str(port),
            COURIER_DATABASE_URL=db_url,
            COURIER_SECRET_KEY=generate_key(),
        )
    line = _one_line_exit_2(result)
    assert line == (
        f"courier: cannot listen on 127.0.0.1:{port}: address already in use "
        "(choose another with COURIER_PORT or --port)"
    )
    assert "courier is up" not in result.stdout
    assert "API key" not in result.stdout


def test_serve_says_where_it_listens_once_it_does(db_url: str) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "courier", "serve", "--port", str(port)],
        env=_env(COURIER_DATABASE_URL=db_url, COURIER_SECRET_KEY=generate_key()),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], TIMEOUT)
        assert ready, "no line from courier serve"
        line = proc.stdout.readline().strip()
        assert line == f"courier serve: listening on http://127.0.0.1:{port}"
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # it was listening when it said so
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _field(output: str, name: str) -> str:
    match = re.search(rf"^{name}:\s+(\S+)$", output, re.MULTILINE)
    assert match, output
    return match.group(1)


def test_the_first_key_can_be_listed_and_revoked(db_url: str) -> None:
    env = {"COURIER_DATABASE_URL": db_url}
    created = courier("tenants", "create", "acme", **env)
    assert created.returncode == 0, created.stderr
    first_id, first_key = _field(created.stdout, "key_id"), _field(created.stdout, "api_key")
    second = courier("keys", "create", "--tenant", "acme", "--name", "ci", **env)
    second_id = _field(second.stdout, "key_id")

    assert courier("keys", "revoke", first_id, **env).returncode == 0
    listed = courier("keys", "list", "--tenant", "acme", **env)

    assert listed.returncode == 0, listed.stderr
    rows = listed.stdout.strip().splitlines()
    assert rows[0].split() == ["KEY", "ID", "CREATED", "REVOKED", "PREFIX", "NAME"]
    first, other = rows[1].split(), rows[2].split()
    assert first[0] == first_id and first[2] != "no" and first[3] == first_key[:12]
    assert first[4] == "initial"
    assert other[0] == second_id and other[2] == "no" and other[4] == "ci"
    assert first_key not in listed.stdout
    assert _field(second.stdout, "api_key") not in listed.stdout


def test_generate_key_prints_a_usable_secret_key() -> None:
    result = courier("secrets", "generate-key")
    assert result.returncode == 0
    key = result.stdout.strip()
    assert SecretBox(key).decrypt(SecretBox(key).encrypt("x")) == "x"
    assert courier("secrets", "generate-key").stdout.strip() != key


def test_unknown_tenant_for_keys_list_is_one_line(db_url: str) -> None:
    line = _one_line_exit_2(
        courier("keys", "list", "--tenant", "nobody", COURIER_DATABASE_URL=db_url)
    )
    assert line == "courier: unknown tenant(s): nobody"
