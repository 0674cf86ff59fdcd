"""The console shows a destination's options with their secrets redacted, and the
captured response body in the attempt timeline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
from aiohttp import web

from courier.asgi import create_app
from tests.integration.api.conftest import api_settings, send_event, serving
from tests.integration.api.conftest import create_destination as api_create_destination
from tests.integration.console.test_console_http import _sign_in, _tenant
from tests.support.engine import make_worker, run_workers, wait_terminal
from tests.support.receiver import Receiver

HEADER_VALUE = "hv-31c9-secret-header"
PASSWORD = "pw-31c9-basic-secret"


@pytest.fixture
async def console(db_url: str, secret_key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(api_settings(secret_key), db_url)) as client:
        yield client


async def test_settings_are_shown_redacted_and_the_response_body_in_the_timeline(
    console: httpx.AsyncClient,
    conn: psycopg.Connection[Any],
    db_url: str,
    secret_key: str,
    receiver: Receiver,
) -> None:
    acme = _tenant(conn)

    def answer(request: web.Request) -> web.Response:
        return web.Response(
            status=422, text=f'{{"error": "bad <b>order</b>", "echo": "{PASSWORD}"}}'
        )

    created = await api_create_destination(
        console,
        acme,
        url=receiver.always("/hook", answer),
        headers={"X-Api-Key": HEADER_VALUE},
        auth={"type": "basic", "username": "courier-user", "password": PASSWORD},
        payload_format="envelope",
        capture_response_body=True,
        filter={"n": {"$gte": 1}},  # the events sent below match it
    )
    accepted = await send_event(console, acme)
    async with run_workers([make_worker(db_url, secret_key)]):
        await wait_terminal(db_url, 1)
    await _sign_in(console, acme.key)

    page = await console.get(f"/console/integrations/{created['id']}")
    assert page.status_code == 200
    assert "<code>X-Api-Key: &lt;redacted&gt;</code>" in page.text
    assert "courier-user" in page.text and "envelope" in page.text
    assert "kept on each attempt" in page.text
    assert '<dd id="filter"><code>{"n": {"$gte": 1}}</code>' in page.text
    [delivery] = accepted["deliveries"]
    timeline = await console.get(f"/console/deliveries/{delivery['id']}")
    assert 'class="response-body"' in timeline.text
    assert "bad &lt;b&gt;order&lt;/b&gt;" in timeline.text  # escaped, not markup
    for text in (page.text, timeline.text):
        assert HEADER_VALUE not in text and PASSWORD not in text
