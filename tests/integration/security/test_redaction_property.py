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

and, for the broker kinds, random passwords and tokens in `config.url` delivered through
real RabbitMQ, Redis and NATS servers (see the second test), also kept out of API reads;
and four with destination options, each capturing response bodies (kept on attempts):

  options  the answer receiver, with an extra header (HEADER_VALUE) and Basic auth
           (OPTION_PASSWORD)
  bearer   the answer receiver, with a Bearer token (BEARER_TOKEN)
  oauth    the answer receiver, with OAuth2 client credentials (CLIENT_SECRET) against a
           token endpoint on the same server that either issues ACCESS_TOKEN or fails
           with an answer echoing the client secret and the token
  mtls     https to the answer receiver, which speaks plain HTTP (a TLS failure), with a
           client certificate and its private key
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import string
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import nats
import psycopg
import pytest
import redis.asyncio as aioredis
import trustme
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from courier.asgi import create_app
from courier.crypto import SecretBox
from courier.destinations import create_destination
from courier.enqueue import enqueue_event
from courier.logs import JsonFormatter
from courier.tenancy import create_tenant
from tests.integration.api.conftest import api_settings, serving
from tests.support.broker_servers import RabbitMQNode, RedisServer
from tests.support.database import direct
from tests.support.engine import TERMINAL, make_worker, run_workers
from tests.support.keys import key_secret
from tests.support.ports import closed_port as _closed_port

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
    "{header_value}",
    "X-Api-Key: {header_value}",
    "your password {option_password} expired",
    "{bearer_token}",
    "bad token {bearer_token}",
    '{{"client_secret": "{client_secret}"}}',
    "client {client_secret} is unknown",
    "{access_token}",
    "token {access_token} was revoked",
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
# The option secrets each receiving path's destination holds: it can only be sent (and so
# echoed) those, and courier redacts a bare value only when the destination knows it.
KNOWN_BY_PATH = {
    "/options": {"header_value", "option_password"},
    "/bearer": {"bearer_token"},
    "/oauth": {"client_secret", "access_token"},
}
OPTION_SECRETS = (
    "header_value",
    "option_password",
    "bearer_token",
    "client_secret",
    "access_token",
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
    header_value: str
    option_password: str
    bearer_token: str
    client_secret: str
    access_token: str
    token_endpoint_fails: bool


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
    header_value=secret_text("hv"),
    option_password=secret_text("op"),
    bearer_token=secret_text("bb"),
    client_secret=secret_text("cs"),
    access_token=secret_text("at"),
    token_endpoint_fails=st.booleans(),
)
# One client identity for every example: minting a key per example is slow, and the key
# is a needle like any other secret.
_CA = trustme.CA()
_IDENTITY = _CA.issue_cert("courier@example.com")
CLIENT_CERTIFICATE = b"".join(b.bytes() for b in _IDENTITY.cert_chain_pems).decode()
CLIENT_KEY = _IDENTITY.private_key_pem.bytes().decode()


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
        self.secret_by_path: dict[str, str] = {}
        self.seen: set[str] = set()  # signatures and Authorization values the servers got

    def values(self, request_headers: dict[str, str], url: str, path: str = "") -> dict[str, str]:
        signature = request_headers.get("webhook-signature", "")
        authorization = request_headers.get("authorization", "")
        self.seen |= {v for v in (signature, authorization) if v}
        # The secret of the destination called (a receiver knows only its own).
        secret = self.secret_by_path.get(path, self.signing_secrets[0])
        values = {
            "signing_secret": secret,
            "signing_key": secret.removeprefix("whsec_"),
            "signature": signature,
            "authorization": authorization,
            "api_key": self.api_key,
            "bearer": self.plan.bearer,
            "url": url,
            "password": self.plan.password,
            "query_token": self.plan.query_token,
            "header_value": self.plan.header_value,
            "option_password": self.plan.option_password,
            "bearer_token": self.plan.bearer_token,
            "client_secret": self.plan.client_secret,
            "access_token": self.plan.access_token,
        }
        known = KNOWN_BY_PATH.get(path, set())
        unknown = {k for k in OPTION_SECRETS if k not in known}
        if path in KNOWN_BY_PATH:
            unknown.add("password")  # their URLs carry no user-info
        return {k: "(none)" if k in unknown else v for k, v in values.items()}

    def answer_url(self, port: int) -> str:
        return (
            f"http://user:{self.plan.password}@127.0.0.1:{port}/hook?token={self.plan.query_token}"
        )

    async def answer(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        values = self.values(headers, self.answer_url(request.url.port or 0), request.path)
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

    async def token(self, request: web.Request) -> web.Response:
        await request.read()
        plan = self.plan
        if plan.token_endpoint_fails:
            text = (
                # No token was issued, so courier cannot know one: only its named form.
                f"invalid_client {plan.client_secret}; access_token={plan.access_token}; "
                f"client_secret={plan.client_secret}"
            )
            return web.Response(status=401, text=text)
        return web.json_response(
            {"access_token": plan.access_token, "token_type": "Bearer", "expires_in": 600}
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

    def destination(self, url: str, **options: Any) -> None:
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
            **options,
        )
        self.signing_secrets.append(secret)
        self.secret_by_path[URL(url).path] = secret

    def needles(self) -> set[str]:
        plan = self.plan
        basic = base64.b64encode(f"user:{plan.password}".encode()).decode()
        found = {plan.password, plan.query_token, plan.bearer, self.api_key, basic}
        option_basic = base64.b64encode(f"courier:{plan.option_password}".encode()).decode()
        found |= {plan.header_value, plan.option_password, plan.bearer_token, option_basic}
        found |= {plan.client_secret, plan.access_token}
        found |= {line for line in CLIENT_KEY.splitlines() if "PRIVATE KEY" not in line}
        found |= {key_secret(self.api_key)}
        for secret in self.signing_secrets:
            found |= {secret, secret.removeprefix("whsec_")}
        for value in self.seen:
            found.add(value)
            found |= {part.partition(",")[2] for part in value.split() if "," in part}
        return {n for n in found if len(n) >= 12}


async def _run(db_url: str, secret_key: str, scenario: Scenario) -> list[uuid.UUID]:
    app = web.Application()
    app.router.add_post("/token", scenario.token)
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

        def plain(path: str) -> str:
            return f"http://127.0.0.1:{answer_port}/{path}?token={plan.query_token}"

        capture: dict[str, Any] = {"capture_response_body": True}
        scenario.destination(
            plain("options"),
            options={
                "headers": {"X-Api-Key": plan.header_value},
                "auth": {"type": "basic", "username": "courier", "password": plan.option_password},
            },
            **capture,
        )
        scenario.destination(
            plain("bearer"),
            options={"auth": {"type": "bearer", "token": plan.bearer_token}},
            **capture,
        )
        oauth = {
            "type": "oauth2_client_credentials",
            "token_url": f"http://127.0.0.1:{answer_port}/token",
            "client_id": "courier",
            "client_secret": plan.client_secret,
        }
        scenario.destination(plain("oauth"), options={"auth": oauth}, **capture)
        identity = {"certificate": CLIENT_CERTIFICATE, "private_key": CLIENT_KEY}
        scenario.destination(
            f"https://127.0.0.1:{answer_port}/tls",  # plain HTTP there: a TLS failure
            options={
                "tls_client_certificate": identity,
                "tls_ca_certificate": _CA.cert_pem.bytes().decode(),
                "headers": {"X-Api-Key": plan.header_value},
            },
            **capture,
        )
        result = enqueue_event(scenario.conn, scenario.tenant_id, scenario.event_type, {"n": 1})
        ids = [d.id for d in result.deliveries]
        assert len(ids) == DESTINATIONS
        async with run_workers([make_worker(db_url, secret_key)]):
            await _wait_terminal(db_url, ids)
        return ids
    finally:
        garbage.close()
        await garbage.wait_closed()
        await runner.cleanup()


async def _wait_terminal(db_url: str, ids: list[uuid.UUID], timeout: float = 30.0) -> None:
    async with await psycopg.AsyncConnection.connect(direct(db_url), autocommit=True) as conn:
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


DESTINATIONS = 7
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
    assert len(stored["deliveries"]) == DESTINATIONS
    assert len(stored["delivery_attempts"]) >= DESTINATIONS
    assert stored["lifecycle_events"] and stored["audit_records"]
    summaries = conn.execute(
        "SELECT error_summary FROM delivery_attempts WHERE delivery_id = ANY(%s) "
        "AND outcome <> 'succeeded'",
        (ids,),
    ).fetchall()
    assert summaries and all(s and len(s) <= 512 for (s,) in summaries)
    excerpts = conn.execute(
        "SELECT response_body_excerpt FROM delivery_attempts WHERE delivery_id = ANY(%s) "
        "AND response_body_excerpt IS NOT NULL",
        (ids,),
    ).fetchall()
    assert excerpts and all(len(e.encode()) <= 4096 for (e,) in excerpts)
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


# -- broker kinds ------------------------------------------------------------------------
#
# The same property for the broker kinds' secret config (`config.url`): per example a
# tenant creates, through the API, destinations whose broker URLs carry random secrets,
# and a real worker delivers to real brokers with them:
#
#   rabbitmq ok      amqp://courier:PASSWORD@127.0.0.1:P/   a private node whose user
#                    `courier` has PASSWORD for this example: confirmed publishes
#   rabbitmq wrong   amqp://courier:WRONG@127.0.0.1:P/      access refused (permanent)
#   redis ok         redis://courier:PASSWORD@127.0.0.1:P/0  a private redis-server whose
#                    ACL user `courier` has PASSWORD for this example
#   redis wrong      redis://courier:WRONG@127.0.0.1:P/0    WRONGPASS (permanent)
#   nats ok          nats://TOKEN@127.0.0.1:4222            a token (the shared server
#                    takes any): JetStream publishes
#   nats down        nats://TOKEN@127.0.0.1:closed          refused, retried, dead-lettered
#
# The secrets must not reach stored rows, log lines or any API read.


@dataclass(frozen=True)
class BrokerPlan:
    password: str
    wrong: str
    token: str


broker_plans = st.builds(
    BrokerPlan, password=secret_text("pw"), wrong=secret_text("wr"), token=secret_text("tk")
)


@dataclass
class Brokers:
    rabbitmq: RabbitMQNode
    redis: RedisServer
    admin: aioredis.Redis
    queue: str
    subject: str


@pytest.fixture
async def private_brokers(tmp_path: Path) -> AsyncIterator[Brokers]:
    unique = uuid.uuid4().hex[:8]
    (tmp_path / "rabbitmq").mkdir()
    (tmp_path / "redis").mkdir()
    node = RabbitMQNode(tmp_path / "rabbitmq", f"redact-{unique}")
    redis_server = RedisServer(tmp_path / "redis")
    await node.start()
    await redis_server.start()
    nats_client = await nats.connect("nats://127.0.0.1:4222")
    js = nats_client.jetstream()
    stream, subject = f"REDACT_{unique}", f"courier.redact.{unique}"
    admin = aioredis.Redis.from_url(redis_server.url)
    try:
        await node.ctl("add_user", "courier", "initial-password")
        await node.ctl("set_permissions", "courier", ".*", ".*", ".*")
        connection = await aio_pika.connect(node.url)
        channel = await connection.channel()
        await channel.declare_queue(f"q-{unique}", durable=True)
        await connection.close()
        await js.add_stream(name=stream, subjects=[subject])
        yield Brokers(node, redis_server, admin, f"q-{unique}", subject)
    finally:
        with contextlib.suppress(Exception):
            await js.delete_stream(stream)
        await nats_client.close()
        await admin.aclose()
        await redis_server.kill()
        await node.kill()


async def _broker_example(
    db_url: str, secret_key: str, conn: psycopg.Connection[Any], brokers: Brokers, plan: BrokerPlan
) -> tuple[uuid.UUID, list[uuid.UUID], list[str]]:
    """Run one example; answer its tenant, deliveries and the text of every API read."""
    await brokers.rabbitmq.ctl("change_password", "courier", plan.password)
    await brokers.admin.execute_command(
        "ACL", "SETUSER", "courier", "reset", "on", f">{plan.password}", "~*", "+@all"
    )
    tenant_id, issued = create_tenant(conn, f"leak-{uuid.uuid4().hex[:8]}")
    headers = {"Authorization": f"Bearer {issued.key}"}
    amqp = f"127.0.0.1:{brokers.rabbitmq.port}/"
    redis_at = f"127.0.0.1:{brokers.redis.port}/0"
    queue = {"exchange": "", "routing_key": brokers.queue}
    stream = {"stream": f"courier:redact:{tenant_id}"}
    subject = {"subject": brokers.subject}
    configs = [
        ("rabbitmq", {"url": f"amqp://courier:{plan.password}@{amqp}", **queue}),
        ("rabbitmq", {"url": f"amqp://courier:{plan.wrong}@{amqp}", **queue}),
        ("redis_stream", {"url": f"redis://courier:{plan.password}@{redis_at}", **stream}),
        ("redis_stream", {"url": f"redis://courier:{plan.wrong}@{redis_at}", **stream}),
        ("nats", {"url": f"nats://{plan.token}@127.0.0.1:4222", **subject}),
        ("nats", {"url": f"nats://{plan.token}@127.0.0.1:{_closed_port()}", **subject}),
    ]
    reads: list[str] = []
    async with serving(create_app(api_settings(secret_key), db_url)) as client:
        for kind, config in configs:
            created = await client.post(
                "/v1/destinations",
                headers=headers,
                json={
                    "name": f"leak-{uuid.uuid4().hex[:6]}",
                    "kind": kind,
                    "config": config,
                    "max_attempts": 2,
                    "backoff_initial_ms": 100,
                    "backoff_max_ms": 200,
                    "timeout_ms": 3000,
                },
            )
            assert created.status_code == 201, created.text
            reads.append(created.text)
        sent = await client.post(
            "/v1/events", headers=headers, json={"type": "leak.broker", "payload": {"n": 1}}
        )
        assert sent.status_code in (200, 201, 202), sent.text
        reads.append(sent.text)
        ids = [uuid.UUID(str(d["id"])) for d in sent.json()["deliveries"]]
        assert len(ids) == len(configs)
        async with run_workers([make_worker(db_url, secret_key)]):
            await _wait_terminal(db_url, ids)
        paths = ["/v1/destinations", "/v1/deliveries", "/v1/audit", "/v1/delivery-events"]
        paths += [f"/v1/deliveries/{d}" for d in ids]
        paths += [f"/v1/deliveries/{d}/attempts" for d in ids]
        for path in paths:
            read = await client.get(path, headers=headers)
            assert read.status_code == 200, (path, read.text)
            reads.append(read.text)
        for row in (await client.get("/v1/destinations", headers=headers)).json()["items"]:
            one = await client.get(f"/v1/destinations/{row['id']}", headers=headers)
            reads.append(one.text)
    return tenant_id, ids, reads


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=broker_plans)
async def test_broker_config_secrets_never_reach_storage_logs_or_reads(
    conn: psycopg.Connection[Any],
    db_url: str,
    secret_key: str,
    private_brokers: Brokers,
    plan: BrokerPlan,
) -> None:
    with captured_logs() as logs:
        tenant_id, ids, reads = await _broker_example(
            db_url, secret_key, conn, private_brokers, plan
        )
    rows = conn.execute(
        "SELECT a.outcome, a.error_summary FROM delivery_attempts a WHERE a.delivery_id = ANY(%s)",
        (ids,),
    ).fetchall()
    outcome_counts = Counter(outcome for outcome, _ in rows)
    # The example really ran: three delivered with the secrets, two refused for good,
    # one retried once and dead-lettered.
    assert outcome_counts["succeeded"] == 3, rows
    assert outcome_counts["permanent_failure"] == 2, rows
    assert outcome_counts["retryable_failure"] == 2, rows
    assert any(str(d) in line for line in logs.lines for d in ids)
    needles = {plan.password, plan.wrong, plan.token}
    stored = _stored_text(conn, tenant_id)
    stored["destinations"] = [
        text
        for (text,) in conn.execute(
            "SELECT d::text FROM destinations d WHERE tenant_id = %s", (tenant_id,)
        ).fetchall()
    ]
    for table, texts in stored.items():
        for text in texts:
            for needle in needles:
                assert needle not in text, f"{table} holds a planted secret: {text}"
    for line in logs.lines:
        for needle in needles:
            assert needle not in line, f"a log line holds a planted secret: {line}"
    for text in reads:
        for needle in needles:
            assert needle not in text, f"an API read holds a planted secret: {text}"
