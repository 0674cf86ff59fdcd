"""Redaction, as a property of the whole system: random secrets planted in destination
URLs, receiver answers (body and headers) and exception texts never reach an attempt, an
audit record, a lifecycle event, a delivery row or a log line.

Each example creates its own tenant (with an API key), three destinations and a real
worker run on the test's database:

  answer   http://user:PASSWORD@127.0.0.1:P/hook?token=QUERY_TOKEN  a receiver whose
           error answer echoes the secrets back in random forms and order
  garbage  http://user:PASSWORD@127.0.0.1:P/raw?token=QUERY_TOKEN  a TCP server
           answering malformed HTTP that quotes a secret, which aiohttp's exception text
           then repeats
  down     http://user:PASSWORD@127.0.0.1:P/down?token=QUERY_TOKEN  nothing listens
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import string
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from courier.crypto import SecretBox
from courier.destinations import create_destination
from courier.enqueue import enqueue_event
from courier.logs import JsonFormatter
from courier.tenancy import create_tenant
from tests.support.engine import TERMINAL, make_worker, run_workers

# URL-safe characters (unreserved), so a secret can sit in user-info and a query string.
SECRET_ALPHABET = string.ascii_letters + string.digits + "-._~"


def secret_text(tag: str) -> st.SearchStrategy[str]:
    """A random secret; the tag keeps it from being a word that occurs anyway."""
    return st.text(SECRET_ALPHABET, min_size=10, max_size=32).map(lambda s: f"{tag}7{s}")


# How a hostile receiver echoes what it got or knows; {name}s are filled per request.
ANSWER_FRAGMENTS = (
    "your secret is {signing_secret}",
    "the key part {signing_key}",
    "signature {signature}",
    "we got Authorization: {authorization}",
    "Authorization: Bearer {api_key}",
    "x-api-key: {api_key}",
    '{{"api_key": "{api_key}"}}',
    "Bearer {bearer}",
    '{{"access_token": "{bearer}", "token_type": "Bearer"}}',
    "access_token={bearer}&expires_in=3600",
    "you called {url}",
    "password {password} is wrong",
    "unknown token {query_token}",
    "token={query_token}",
)
# What a malformed answer quotes (aiohttp repeats it in its exception message). A bare
# secret is only redactable when the worker knows it (its URL's or its signing secret);
# the others appear in the forms the redaction contract names.
GARBAGE_FRAGMENTS = (
    "{signing_secret}",
    "{signature}",
    "Bearer {bearer}",
    "token={query_token}",
    "{password}",
    "api_key={api_key}",
)
GARBAGE_FORMS = (
    "HTTP/1.1 abc {fragment}\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: {fragment}\r\n\r\n",
    "HTTP/1.1 500 OK\r\nX-Echo {fragment}\r\n\r\n",
    "{fragment} garbage\r\n\r\n",
)
SEPARATORS = (" ", "\n", "; ", " | ", "\t", ", ")


@dataclass(frozen=True)
class Plan:
    password: str
    query_token: str
    bearer: str
    status: int
    fragments: list[str]
    separator: str
    padding: int  # characters before the secrets, to move them across the 512 cut
    garbage_form: str
    garbage_fragment: str


plans = st.builds(
    Plan,
    password=secret_text("pw"),
    query_token=secret_text("qt"),
    bearer=secret_text("bt"),
    status=st.sampled_from([400, 401, 403, 422, 429, 500, 502, 503]),
    fragments=st.lists(st.sampled_from(ANSWER_FRAGMENTS), min_size=1, max_size=6, unique=True),
    separator=st.sampled_from(SEPARATORS),
    padding=st.integers(0, 700),
    garbage_form=st.sampled_from(GARBAGE_FORMS),
    garbage_fragment=st.sampled_from(GARBAGE_FRAGMENTS),
)


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def captured_logs() -> Iterator[Captured]:
    handler = Captured()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class Scenario:
    """One example: its tenant, servers and destinations, and every secret it planted."""

    def __init__(self, conn: psycopg.Connection[Any], box: SecretBox, plan: Plan) -> None:
        self.conn = conn
        self.box = box
        self.plan = plan
        self.tenant_id, issued = create_tenant(conn, f"leak-{uuid.uuid4().hex[:8]}")
        self.api_key = issued.key
        self.event_type = f"leak.e{uuid.uuid4().hex[:8]}"
        self.signing_secrets: list[str] = []
        self.seen: set[str] = set()  # signatures and Authorization values the servers got

    def values(self, request_headers: dict[str, str], url: str) -> dict[str, str]:
        signature = request_headers.get("webhook-signature", "")
        authorization = request_headers.get("authorization", "")
        self.seen |= {v for v in (signature, authorization) if v}
        secret = self.signing_secrets[0]
        return {
            "signing_secret": secret,
            "signing_key": secret.removeprefix("whsec_"),
            "signature": signature,
            "authorization": authorization,
            "api_key": self.api_key,
            "bearer": self.plan.bearer,
            "url": url,
            "password": self.plan.password,
            "query_token": self.plan.query_token,
        }

    def answer_url(self, port: int) -> str:
        return (
            f"http://user:{self.plan.password}@127.0.0.1:{port}/hook?token={self.plan.query_token}"
        )

    async def answer(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        values = self.values(headers, self.answer_url(request.url.port or 0))
        parts = [fragment.format(**values) for fragment in self.plan.fragments]
        body = "." * self.plan.padding + self.plan.separator.join(parts)
        return web.Response(
            status=self.plan.status,
            text=body,
            headers={
                "WWW-Authenticate": f'Bearer error="invalid_token", token="{self.plan.bearer}"',
                "X-Echo-Signature": values["signature"],
                "Set-Cookie": f"session={self.api_key}",
            },
        )

    async def garbage(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            headers = {}
            for line in head.decode("latin-1").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            fragment = self.plan.garbage_fragment.format(**self.values(headers, ""))
            writer.write(self.plan.garbage_form.format(fragment=fragment).encode())
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def destination(self, url: str) -> None:
        _row, secret = create_destination(
            self.conn,
            self.box,
            self.tenant_id,
            name=f"leak-{uuid.uuid4().hex[:6]}",
            url=url,
            event_types=[self.event_type],
            max_attempts=2,
            backoff_initial_ms=100,
            backoff_max_ms=200,
            timeout_ms=3000,
        )
        self.signing_secrets.append(secret)

    def needles(self) -> set[str]:
        plan = self.plan
        basic = base64.b64encode(f"user:{plan.password}".encode()).decode()
        found = {plan.password, plan.query_token, plan.bearer, self.api_key, basic}
        found |= {self.api_key.rsplit("_", 1)[-1]}
        for secret in self.signing_secrets:
            found |= {secret, secret.removeprefix("whsec_")}
        for value in self.seen:
            found.add(value)
            found |= {part.partition(",")[2] for part in value.split() if "," in part}
        return {n for n in found if len(n) >= 12}


async def _run(db_url: str, secret_key: str, scenario: Scenario) -> list[uuid.UUID]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", scenario.answer)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    answer_port = runner.addresses[0][1]
    garbage = await asyncio.start_server(scenario.garbage, "127.0.0.1", 0)
    garbage_port = garbage.sockets[0].getsockname()[1]
    try:
        plan = scenario.plan
        scenario.destination(scenario.answer_url(answer_port))
        scenario.destination(
            f"http://user:{plan.password}@127.0.0.1:{garbage_port}/raw?token={plan.query_token}"
        )
        scenario.destination(
            f"http://user:{plan.password}@127.0.0.1:{_closed_port()}/down?token={plan.query_token}"
        )
        result = enqueue_event(scenario.conn, scenario.tenant_id, scenario.event_type, {"n": 1})
        ids = [d.id for d in result.deliveries]
        assert len(ids) == 3
        async with run_workers([make_worker(db_url, secret_key)]):
            await _wait_terminal(db_url, ids)
        return ids
    finally:
        garbage.close()
        await garbage.wait_closed()
        await runner.cleanup()


async def _wait_terminal(db_url: str, ids: list[uuid.UUID], timeout: float = 30.0) -> None:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        for _ in range(int(timeout / 0.05)):
            cur = await conn.execute(
                "SELECT count(*) FROM deliveries WHERE id = ANY(%s) AND state = ANY(%s)",
                (ids, list(TERMINAL)),
            )
            row = await cur.fetchone()
            if row and int(row[0]) == len(ids):
                return
            await asyncio.sleep(0.05)
    raise AssertionError("the example's deliveries did not finish")


STORED = ("deliveries", "delivery_attempts", "audit_records", "lifecycle_events", "events")


def _stored_text(conn: psycopg.Connection[Any], tenant_id: uuid.UUID) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for table in STORED:
        rows = conn.execute(
            f"SELECT t::text FROM {table} t WHERE tenant_id = %s",
            (tenant_id,),
        ).fetchall()
        out[table] = [text for (text,) in rows]
    return out


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=plans)
def test_planted_secrets_never_reach_storage_or_logs(
    conn: psycopg.Connection[Any], db_url: str, secret_key: str, plan: Plan
) -> None:
    scenario = Scenario(conn, SecretBox(secret_key), plan)
    with captured_logs() as logs:
        ids = asyncio.run(_run(db_url, secret_key, scenario))
    stored = _stored_text(conn, scenario.tenant_id)
    # The example really ran: three finished deliveries with their evidence.
    assert len(stored["deliveries"]) == 3 and len(stored["delivery_attempts"]) >= 3
    assert stored["lifecycle_events"] and stored["audit_records"]
    summaries = conn.execute(
        "SELECT error_summary FROM delivery_attempts WHERE delivery_id = ANY(%s) "
        "AND outcome <> 'succeeded'",
        (ids,),
    ).fetchall()
    assert summaries and all(s and len(s) <= 512 for (s,) in summaries)
    assert any(str(d) in line for line in logs.lines for d in ids)  # the worker logged them
    needles = scenario.needles()
    assert scenario.seen, "the receivers were reached"
    for table, texts in stored.items():
        for text in texts:
            for needle in needles:
                assert needle not in text, f"{table} holds a planted secret: {text}"
    for line in logs.lines:
        for needle in needles:
            assert needle not in line, f"a log line holds a planted secret: {line}"
