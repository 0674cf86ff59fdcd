"""Hostile form fields and query parameters on every console route: a field the console
cannot use answers a 422 page naming it, and nothing reaches PostgreSQL unchecked (no 5xx)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from courier.asgi import create_app
from tests.integration.api.conftest import Tenant, api_settings, serving
from tests.integration.console.test_console_http import (
    TOKEN,
    _dead_letter,
    _destination,
    _sign_in,
    _tenant,
)

HOSTILE_VALUES = [
    "\x00",
    "a\x00b",
    "%00",
    "<huge>",  # stands for HUGE, expanded in the test: Hypothesis need not print 100 kB
    "not-a-uuid",
    "00000000-0000-0000-0000-00000000000g",
    "{12345678-1234-5678-1234-567812345678}",
    "urn:uuid:12345678-1234-5678-1234-567812345678\x00",
    "2026-13-01",
    "2026-02-30T00:00",
    "2026-01-01T25:00",
    "0001-01-01T00:00:00+05:00",  # before year 1 once moved to UTC
    "9999-12-31T23:59:59-05:00",  # after year 9999 once moved to UTC
    "99999-01-01T00:00",
    "2026-01-01T00:00:00\x00",
    "-1",
    " ",
    "'; DROP TABLE deliveries; --",
    "../../etc/passwd",
    "☃" * 300,
]
HUGE = "x" * 15_000  # four of them still fit the longest URL httpx sends (64 KiB)
hostile = st.one_of(
    st.sampled_from(HOSTILE_VALUES),
    st.text(max_size=300),
    st.uuids().map(str),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
)


class Console:
    """A signed-in client, a signed-out one, and ids that exist, for one tenant."""

    def __init__(
        self, signed_in: httpx.AsyncClient, signed_out: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        self.signed_in = signed_in
        self.signed_out = signed_out
        self.tenant = tenant
        self.destination = uuid.uuid4()
        self.delivery = uuid.uuid4()
        self.csrf = ""


@pytest.fixture
async def hostile_console(
    db_url: str, secret_key: str, conn: psycopg.Connection[Any]
) -> AsyncIterator[Console]:
    app = create_app(api_settings(secret_key), db_url)
    async with serving(app) as signed_in:
        transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 4000))
        async with httpx.AsyncClient(transport=transport, base_url=str(signed_in.base_url)) as out:
            acme = _tenant(conn)
            console = Console(signed_in, out, acme)
            console.destination = _destination(conn, acme, "ledger")
            _dead_letter(conn, acme, console.destination)
            row = conn.execute(
                "SELECT id FROM deliveries WHERE tenant_id = %s", (acme.id,)
            ).fetchone()
            assert row is not None
            console.delivery = row[0]
            assert (await _sign_in(signed_in, acme.key)).status_code == 303
            page = await signed_in.get("/console/integrations")
            token = TOKEN.search(page.text)
            assert token is not None
            console.csrf = token.group(1)
            yield console


def _names_a_field(answer: httpx.Response, fields: list[str]) -> None:
    if answer.status_code == 422:
        title = re.search(r"<h1>Invalid ([a-z_]+)</h1>", answer.text)
        assert title is not None, answer.text[:500]
        assert title.group(1) in fields


async def test_a_nul_replay_token_is_a_422_naming_it_not_a_database_error(
    hostile_console: Console,
) -> None:
    c = hostile_console
    answer = await c.signed_in.post(
        f"/console/deliveries/{c.delivery}/replay",
        content=f"csrf_token={quote(c.csrf)}&replay_token=%00",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 422
    assert "Invalid replay_token" in answer.text


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/console/dead-letters?since=2026-13-01", "since"),
        ("/console/dead-letters?until=9999-12-31T23:59:59-05:00", "until"),
        ("/console/dead-letters?destination_id=%00", "destination_id"),
        ("/console/dead-letters?after=not-a-uuid", "after"),
        ("/console/dead-letters/replay?since=0001-01-01T00:00:00%2B05:00", "since"),
        ("/console/dead-letters/replay?destination_id=" + "x" * 5000, "destination_id"),
        ("/console/integrations/{dest}?state=bogus", "state"),
        ("/console/integrations/{dest}?after=%00", "after"),
    ],
)
async def test_bad_query_parameters_are_a_422_naming_the_field(
    hostile_console: Console, path: str, field: str
) -> None:
    answer = await hostile_console.signed_in.get(path.format(dest=hostile_console.destination))
    assert answer.status_code == 422
    assert f"<h1>Invalid {field}</h1>" in answer.text
    assert answer.headers["content-security-policy"]  # the console's own page


async def test_a_form_with_too_many_fields_is_a_422_naming_the_form(
    hostile_console: Console,
) -> None:
    body = "&".join(f"f{n}=x" for n in range(60))
    answer = await hostile_console.signed_out.post(
        "/console/sign-in",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 422
    assert "<h1>Invalid form</h1>" in answer.text


async def test_well_formed_filters_still_work(hostile_console: Console) -> None:
    c = hostile_console
    answer = await c.signed_in.get(
        "/console/dead-letters",
        params={"destination_id": str(c.destination), "since": "2000-01-01T00:00", "until": ""},
    )
    assert answer.status_code == 200
    assert str(c.destination) in answer.text


ROUTES = [
    "sign-in page",
    "sign in",
    "sign out",
    "destination",
    "delivery",
    "replay one",
    "dead letters",
    "confirm batch",
    "batch replay",
]


@settings(
    max_examples=150,
    # The console and its database are shared by every example on purpose: what earlier
    # examples did (replays, failed sign-ins) must not make a later one answer 5xx either.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(route=st.sampled_from(ROUTES), a=hostile, b=hostile, c=hostile, d=hostile)
async def test_no_console_route_answers_5xx_to_hostile_input(
    hostile_console: Console, route: str, a: str, b: str, c: str, d: str
) -> None:
    a, b, c, d = (HUGE if v == "<huge>" else v for v in (a, b, c, d))
    con = hostile_console
    signed_in, signed_out = con.signed_in, con.signed_out
    fields: list[str]
    if route == "sign-in page":
        fields = ["next"]
        answer = await signed_out.get("/console/sign-in", params={"next": a})
    elif route == "sign in":
        fields = ["form"]
        form = await signed_out.get("/console/sign-in")
        token = TOKEN.search(form.text)
        data = {"csrf_token": token.group(1) if token else b, "api_key": a, "next": c}
        answer = await signed_out.post("/console/sign-in", data=data)
    elif route == "sign out":
        fields = ["form"]
        answer = await signed_in.post("/console/sign-out", data={"csrf_token": a})
        assert answer.status_code == 403  # never the session's token: it stays signed in
    elif route == "destination":
        fields = ["state", "after"]
        by_path = await signed_in.get(f"/console/integrations/{quote(a, safe='')}")
        assert by_path.status_code < 500, (route, by_path.status_code)
        answer = await signed_in.get(
            f"/console/integrations/{con.destination}", params={"state": b, "after": c}
        )
    elif route == "delivery":
        fields = []
        answer = await signed_in.get(f"/console/deliveries/{quote(a, safe='')}")
    elif route == "replay one":
        fields = ["replay_token", "form"]
        answer = await signed_in.post(
            f"/console/deliveries/{con.delivery}/replay",
            data={"csrf_token": con.csrf, "replay_token": a},
        )
    elif route == "dead letters":
        fields = ["destination_id", "since", "until", "after"]
        params = {"destination_id": a, "since": b, "until": c, "after": d}
        answer = await signed_in.get("/console/dead-letters", params=params)
    elif route == "confirm batch":
        fields = ["destination_id", "since", "until"]
        params = {"destination_id": a, "since": b, "until": c}
        answer = await signed_in.get("/console/dead-letters/replay", params=params)
    else:
        fields = ["destination_id", "since", "until", "form"]
        data = {"csrf_token": con.csrf, "destination_id": a, "since": b, "until": c}
        answer = await signed_in.post("/console/dead-letters/replay", data=data)
    assert answer.status_code < 500, (route, answer.status_code, answer.text[:300])
    _names_a_field(answer, fields)
