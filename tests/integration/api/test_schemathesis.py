"""A Schemathesis run from the committed docs/openapi.json against the live app (uvicorn on
loopback, a real database, a real API key): no 5xx, and every response conforms to the
document (status codes, content types, headers and bodies)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn

from courier.api.app import create_app
from courier.enqueue import enqueue_event
from tests.conftest import DestinationFactory
from tests.integration.api.conftest import Tenant, api_settings

DOCUMENT = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "ignored_auth",
    ]
)
# per operation and phase; enough to find 5xx without a long run (raise it to hunt)
MAX_EXAMPLES = int(os.environ.get("COURIER_SCHEMATHESIS_MAX_EXAMPLES", "40"))
SEED = os.environ.get("COURIER_SCHEMATHESIS_SEED", "20240601")  # fixed: a failure reproduces


@pytest.fixture
def live_url(db_url: str, secret_key: str) -> Iterator[str]:
    """The app served by uvicorn in a thread, on a loopback port of its own."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(api_settings(secret_key, allow_private_destinations=False), db_url)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.mark.slow
def test_schemathesis_finds_no_server_errors_and_no_schema_violations(
    live_url: str,
    tenant_a: Tenant,
    conn: psycopg.Connection[Any],
    make_destination: DestinationFactory,
    tmp_path: Path,
) -> None:
    # Real rows for the generated requests to meet (most generated ids will be unknown).
    make_destination("https://example.com/hook", tenant_id=tenant_a.id)
    enqueue_event(conn, tenant_a.id, "order.created", {"n": 1})
    assert httpx.get(f"{live_url}/readyz").status_code == 200

    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        str(DOCUMENT),
        "--url",
        live_url,
        "--header",
        f"Authorization: Bearer {tenant_a.key}",
        "--checks",
        CHECKS,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--workers",
        "1",
        "--seed",
        SEED,
        "--suppress-health-check",
        "all",
        "--no-color",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-20_000:]
    assert "No issues found" in output or "passed" in output, output[-5000:]
