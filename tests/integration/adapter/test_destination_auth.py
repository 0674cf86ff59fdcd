"""Destination options through the webhook adapter, against real servers on loopback:
receivers that demand a header, Basic or Bearer credentials, an OAuth2 token from a real
token endpoint (which issues expiring tokens and counts its requests), or a client
certificate (a TLS server that requires one, certificates minted by trustme); and the
captured response body."""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import trustme
from aiohttp import web

from courier.adapters.base import DeliveryRequest, RequestOptions
from courier.adapters.webhook import CAPTURED_BYTES, WebhookAdapter
from courier.destination_options import request_options
from courier.signing import generate_secret

SECRET = generate_secret()
CLIENT_ID = "courier-app"
CLIENT_SECRET = "cs-9d2f-client-secret"


def make_request(
    url: str,
    options: RequestOptions | None,
    *,
    tenant: str = "tenant-a",
    destination: str = "dest-1",
) -> DeliveryRequest:
    return DeliveryRequest(
        url=url,
        event_id="msg_1",
        body=b'{"n": 1}',
        secrets=(SECRET,),
        timeout_s=5.0,
        tenant_id=tenant,
        event_type="order.created",
        destination_id=destination,
        options=options,
    )


async def _serve(app: web.Application, context: ssl.SSLContext | None = None) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    return runner


def _port(runner: web.AppRunner) -> int:
    port: int = runner.addresses[0][1]
    return port


@dataclass
class Demanding:
    """A receiver that answers 200 only to the Authorization value it expects."""

    expected: str = ""
    seen: list[dict[str, str]] = field(default_factory=list)
    url: str = ""
    valid: set[str] = field(default_factory=set)  # for OAuth2: tokens still honoured
    echo: str = ""  # a body to answer with

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.seen.append(headers)
        got = headers.get("authorization", "")
        ok = got == self.expected if self.expected else got.removeprefix("Bearer ") in self.valid
        return web.Response(status=200 if ok else 401, text=self.echo or ("ok" if ok else "no"))


@pytest.fixture
async def demanding() -> AsyncIterator[Demanding]:
    receiver = Demanding()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = await _serve(app)
    receiver.url = f"http://127.0.0.1:{_port(runner)}/hook"
    try:
        yield receiver
    finally:
        await runner.cleanup()


async def test_headers_reach_the_receiver_and_the_event_type_with_them(
    demanding: Demanding, adapter: WebhookAdapter
) -> None:
    options = request_options(
        {"headers": {"X-Api-Key": "k-123456", "User-Agent": "acme-hooks/2"}}, False
    )
    result = await adapter.deliver(make_request(demanding.url, options))
    assert result.http_status == 401  # no Authorization: the receiver refuses
    [seen] = demanding.seen
    assert seen["x-api-key"] == "k-123456"
    assert seen["user-agent"] == "acme-hooks/2"
    assert seen["courier-event-type"] == "order.created"
    assert seen["webhook-id"] == "msg_1"


async def test_basic_auth_is_what_the_receiver_demands(
    demanding: Demanding, adapter: WebhookAdapter
) -> None:
    demanding.expected = "Basic " + base64.b64encode(b"courier:p4ss-w0rd-x").decode()
    options = request_options(
        {"auth": {"type": "basic", "username": "courier", "password": "p4ss-w0rd-x"}}, False
    )
    assert (await adapter.deliver(make_request(demanding.url, options))).outcome == "succeeded"
    assert (await adapter.deliver(make_request(demanding.url, None))).http_status == 401


async def test_bearer_auth_is_what_the_receiver_demands_and_an_echo_is_redacted(
    demanding: Demanding, adapter: WebhookAdapter
) -> None:
    demanding.expected = "Bearer tok-ABCDEF-123"
    options = request_options({"auth": {"type": "bearer", "token": "tok-ABCDEF-123"}}, True)
    result = await adapter.deliver(make_request(demanding.url, options))
    assert result.outcome == "succeeded"
    wrong = request_options({"auth": {"type": "bearer", "token": "wrong-token-99"}}, False)
    demanding.echo = "refused wrong-token-99 here"
    refused = await adapter.deliver(make_request(demanding.url, wrong))
    assert refused.outcome == "permanent_failure" and refused.http_status == 401
    assert refused.error_summary is not None and "wrong-token-99" not in refused.error_summary


async def test_a_captured_body_is_redacted_and_bounded(
    demanding: Demanding, adapter: WebhookAdapter
) -> None:
    header_secret = "hdr-secret-4242"
    demanding.expected = "Bearer tok-ABCDEF-123"
    # The secret sits across the 4 KiB cut: it must go whole before the body is cut.
    demanding.echo = "é" * 2040 + f" {header_secret} " + "z" * 9000
    options = request_options(
        {
            "headers": {"X-Key": header_secret},
            "auth": {"type": "bearer", "token": "tok-ABCDEF-123"},
        },
        True,
    )
    result = await adapter.deliver(make_request(demanding.url, options))
    assert result.outcome == "succeeded"
    excerpt = result.response_body_excerpt
    assert excerpt is not None and excerpt.startswith("é" * 2040)
    assert len(excerpt.encode()) <= CAPTURED_BYTES
    assert header_secret not in excerpt and "[REDACTED]" in excerpt and excerpt.endswith("…")
    # Without capture, nothing is kept.
    plain = request_options({"auth": {"type": "bearer", "token": "tok-ABCDEF-123"}}, False)
    assert (await adapter.deliver(make_request(demanding.url, plain))).response_body_excerpt is None


# --- OAuth2 client credentials --------------------------------------------------------


@dataclass
class TokenServer:
    """A real token endpoint: checks the client's credentials, issues numbered tokens that
    expire after `lifetime` seconds, and counts the requests it gets."""

    lifetime: float = 60.0
    delay: float = 0.0
    fail_with: int | None = None
    requests: int = 0
    forms: list[dict[str, str]] = field(default_factory=list)
    issued: dict[str, float] = field(default_factory=dict)  # token -> expires (monotonic)
    url: str = ""

    def valid(self) -> set[str]:
        now = time.monotonic()
        return {t for t, expires in self.issued.items() if expires > now}

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        form = dict(await request.post())
        self.forms.append({k: str(v) for k, v in form.items()})
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_with is not None:
            return web.Response(status=self.fail_with, text=f"down; secret={CLIENT_SECRET}")
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return web.json_response({"error": "invalid_client"}, status=401)
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        token = f"at-{self.requests}-{id(self)}"
        self.issued[token] = time.monotonic() + self.lifetime
        return web.json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime}
        )


class OAuthReceiver(Demanding):
    """Demands a token the token server issued and that has not expired."""

    server: TokenServer

    async def handle(self, request: web.Request) -> web.Response:
        self.valid = self.server.valid()
        return await super().handle(request)


@pytest.fixture
async def oauth() -> AsyncIterator[tuple[TokenServer, OAuthReceiver]]:
    server = TokenServer()
    receiver = OAuthReceiver()
    receiver.server = server
    app = web.Application()
    app.router.add_post("/token", server.handle)
    app.router.add_post("/hook", receiver.handle)
    runner = await _serve(app)
    base = f"http://127.0.0.1:{_port(runner)}"
    server.url, receiver.url = f"{base}/token", f"{base}/hook"
    try:
        yield server, receiver
    finally:
        await runner.cleanup()


def oauth_options(token_url: str, **extra: Any) -> RequestOptions:
    auth = {
        "type": "oauth2_client_credentials",
        "token_url": token_url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        **extra,
    }
    return request_options({"auth": auth}, False)


async def test_a_token_is_fetched_once_and_reused(
    oauth: tuple[TokenServer, OAuthReceiver], adapter: WebhookAdapter
) -> None:
    server, receiver = oauth
    options = oauth_options(server.url, scope="hooks:write", audience="https://api.example")
    for _ in range(5):
        result = await adapter.deliver(make_request(receiver.url, options))
        assert result.outcome == "succeeded", result.error_summary
    assert server.requests == 1
    assert server.forms == [
        {
            "grant_type": "client_credentials",
            "scope": "hooks:write",
            "audience": "https://api.example",
        }
    ]


async def test_concurrent_deliveries_share_one_token_fetch(
    oauth: tuple[TokenServer, OAuthReceiver], adapter: WebhookAdapter
) -> None:
    server, receiver = oauth
    server.delay = 0.3  # every delivery arrives while the first fetch is in flight
    options = oauth_options(server.url)
    results = await asyncio.gather(
        *(adapter.deliver(make_request(receiver.url, options)) for _ in range(30))
    )
    assert {r.outcome for r in results} == {"succeeded"}
    assert server.requests == 1


async def test_a_token_is_refreshed_before_it_expires(
    oauth: tuple[TokenServer, OAuthReceiver], adapter: WebhookAdapter
) -> None:
    server, receiver = oauth
    server.lifetime = 2.0  # refreshed from 1.8 s on
    options = oauth_options(server.url)
    assert (await adapter.deliver(make_request(receiver.url, options))).outcome == "succeeded"
    await asyncio.sleep(1.85)
    assert (await adapter.deliver(make_request(receiver.url, options))).outcome == "succeeded"
    assert server.requests == 2
    assert all(seen.get("authorization") for seen in receiver.seen)
    assert len({seen["authorization"] for seen in receiver.seen}) == 2


async def test_a_401_fetches_a_new_token_and_retries_once(
    oauth: tuple[TokenServer, OAuthReceiver], adapter: WebhookAdapter
) -> None:
    server, receiver = oauth
    options = oauth_options(server.url)
    assert (await adapter.deliver(make_request(receiver.url, options))).outcome == "succeeded"
    server.issued.clear()  # the authorization server revokes every token early
    result = await adapter.deliver(make_request(receiver.url, options))
    assert result.outcome == "succeeded"
    assert server.requests == 2 and len(receiver.seen) == 3
    # A receiver that refuses every token: one retry, then its 401 is the answer.
    receiver.server = TokenServer()  # knows none of the tokens
    refused = await adapter.deliver(make_request(receiver.url, options))
    assert refused.http_status == 401 and refused.outcome == "permanent_failure"
    assert server.requests == 3 and len(receiver.seen) == 5


async def test_tokens_are_kept_apart_per_tenant_and_destination(
    oauth: tuple[TokenServer, OAuthReceiver], adapter: WebhookAdapter
) -> None:
    server, receiver = oauth
    options = oauth_options(server.url)
    for tenant, destination in [("a", "1"), ("b", "1"), ("a", "2"), ("a", "1")]:
        request = make_request(receiver.url, options, tenant=tenant, destination=destination)
        assert (await adapter.deliver(request)).outcome == "succeeded"
    assert server.requests == 3
    tokens = [seen["authorization"] for seen in receiver.seen]
    assert len(set(tokens)) == 3 and tokens[0] == tokens[3]


async def test_a_failing_token_endpoint_is_retryable_and_named(
    oauth: tuple[TokenServer, OAuthReceiver], adapter: WebhookAdapter
) -> None:
    server, receiver = oauth
    server.fail_with = 503
    result = await adapter.deliver(make_request(receiver.url, oauth_options(server.url)))
    assert result.outcome == "retryable_failure" and result.http_status is None
    summary = result.error_summary or ""
    assert summary.startswith(f"OAuth2 token endpoint {server.url} answered HTTP 503"), summary
    assert CLIENT_SECRET not in summary
    assert receiver.seen == []  # nothing was sent without a token
    server.fail_with = None
    assert (
        await adapter.deliver(make_request(receiver.url, oauth_options(server.url)))
    ).outcome == "succeeded"


async def test_wrong_client_credentials_are_named_with_the_endpoint(
    oauth: tuple[TokenServer, OAuthReceiver], adapter: WebhookAdapter
) -> None:
    server, receiver = oauth
    auth = {
        "type": "oauth2_client_credentials",
        "token_url": server.url,
        "client_id": CLIENT_ID,
        "client_secret": "not-the-secret-77",
    }
    result = await adapter.deliver(
        make_request(receiver.url, request_options({"auth": auth}, False))
    )
    assert result.outcome == "retryable_failure"
    assert (result.error_summary or "").startswith(
        f"OAuth2 token endpoint {server.url} answered HTTP 401"
    )


async def test_the_token_endpoint_is_ssrf_guarded() -> None:
    guarded = WebhookAdapter(allow_private=False)
    try:
        options = oauth_options("http://127.0.0.1:9/token")
        result = await guarded.deliver(make_request("https://93.184.216.34/hook", options))
    finally:
        await guarded.close()
    assert result.outcome == "retryable_failure"
    summary = result.error_summary or ""
    assert summary.startswith("OAuth2 token endpoint http://127.0.0.1:9/token failed:"), summary
    assert "not allowed" in summary


# --- mutual TLS and a private CA ------------------------------------------------------


@dataclass
class MutualTls:
    url: str
    ca: trustme.CA
    client_ca: trustme.CA
    peers: list[Any]


@pytest.fixture
async def mutual_tls() -> AsyncIterator[MutualTls]:
    """An https receiver whose certificate comes from a private CA and that requires a
    client certificate from another CA."""
    ca, client_ca = trustme.CA(), trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    context.verify_mode = ssl.CERT_REQUIRED
    client_ca.configure_trust(context)
    peers: list[Any] = []

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peercert"))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = await _serve(app, context)
    try:
        yield MutualTls(f"https://127.0.0.1:{_port(runner)}/hook", ca, client_ca, peers)
    finally:
        await runner.cleanup()


def _client_identity(ca: trustme.CA, name: str) -> dict[str, str]:
    issued = ca.issue_cert(name)
    return {
        "certificate": b"".join(b.bytes() for b in issued.cert_chain_pems).decode(),
        "private_key": issued.private_key_pem.bytes().decode(),
    }


async def test_mutual_tls_with_a_private_ca(mutual_tls: MutualTls, adapter: WebhookAdapter) -> None:
    identity = _client_identity(mutual_tls.client_ca, "courier@example.com")
    options = request_options(
        {
            "tls_client_certificate": identity,
            "tls_ca_certificate": mutual_tls.ca.cert_pem.bytes().decode(),
        },
        False,
    )
    result = await adapter.deliver(make_request(mutual_tls.url, options))
    assert result.outcome == "succeeded", result.error_summary
    [peer] = mutual_tls.peers
    assert ("email", "courier@example.com") in peer["subjectAltName"]


async def test_without_a_client_certificate_the_server_refuses(
    mutual_tls: MutualTls, adapter: WebhookAdapter
) -> None:
    ca_only = request_options(
        {"tls_ca_certificate": mutual_tls.ca.cert_pem.bytes().decode()}, False
    )
    result = await adapter.deliver(make_request(mutual_tls.url, ca_only))
    assert result.outcome == "retryable_failure"
    assert mutual_tls.peers == []


async def test_without_the_private_ca_the_server_is_not_trusted(
    mutual_tls: MutualTls, adapter: WebhookAdapter
) -> None:
    identity = _client_identity(mutual_tls.client_ca, "courier@example.com")
    options = request_options({"tls_client_certificate": identity}, False)
    result = await adapter.deliver(make_request(mutual_tls.url, options))
    assert result.outcome == "retryable_failure"
    assert "TLS error" in (result.error_summary or "")
    assert identity["private_key"].splitlines()[1] not in (result.error_summary or "")


async def test_hostname_verification_still_applies_with_a_private_ca(
    adapter: WebhookAdapter,
) -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("other.example.com").configure_cert(context)
    reached: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        reached.append(request.path)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = await _serve(app, context)
    try:
        options = request_options({"tls_ca_certificate": ca.cert_pem.bytes().decode()}, False)
        url = f"https://127.0.0.1:{_port(runner)}/hook"
        result = await adapter.deliver(make_request(url, options))
    finally:
        await runner.cleanup()
    assert result.outcome == "retryable_failure"
    assert "TLS error" in (result.error_summary or "") and reached == []


async def test_connections_are_not_shared_between_tls_identities(
    mutual_tls: MutualTls, adapter: WebhookAdapter
) -> None:
    ca_pem = mutual_tls.ca.cert_pem.bytes().decode()
    with_cert = request_options(
        {
            "tls_client_certificate": _client_identity(mutual_tls.client_ca, "a@example.com"),
            "tls_ca_certificate": ca_pem,
        },
        False,
    )
    assert (await adapter.deliver(make_request(mutual_tls.url, with_cert))).outcome == "succeeded"
    # Same tenant, same origin, kept-alive connection available: without a certificate
    # of its own, this destination must not ride the authenticated connection.
    without = request_options({"tls_ca_certificate": ca_pem}, False)
    result = await adapter.deliver(make_request(mutual_tls.url, without))
    assert result.outcome == "retryable_failure"
    assert len(mutual_tls.peers) == 1


async def test_a_header_value_with_a_line_break_is_never_sent(
    demanding: Demanding, adapter: WebhookAdapter
) -> None:
    """The API refuses it; a row written behind its back must not split the request."""
    options = request_options({"headers": {"X-A": "1\r\nX-Injected: yes"}}, False)
    assert options.head is None
    result = await adapter.deliver(make_request(demanding.url, options))
    assert result.outcome == "permanent_failure"
    assert (result.error_summary or "").startswith("cannot build the request")
    assert demanding.seen == []
