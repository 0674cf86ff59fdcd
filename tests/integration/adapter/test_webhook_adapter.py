"""WebhookAdapter against real aiohttp receivers on 127.0.0.1.

Loopback is exactly what the SSRF guard forbids, so most tests use an adapter built with
allow_private=True; the SSRF tests build their own. Every test runs on both event loops
(see conftest.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import json
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from courier import __version__
from courier.adapters.base import AttemptResult, DeliveryRequest
from courier.adapters.webhook import MAX_RESPONSE_BYTES, WebhookAdapter
from courier.signing import generate_secret
from tests.support.ports import free_port as _free_port

SECRET_A = generate_secret()
SECRET_B = generate_secret()
BODY = json.dumps({"type": "invoice.paid", "data": {"id": "inv_1", "amount": 4200}}).encode()
TEN_MB = 10 * 1024 * 1024
LEAKY_TOKEN = "tok3n-SUPERSECRET-42"
LEAKY_PASSWORD = "hunter2-pass"


def make_request(url: str, *, timeout_s: float = 5.0, event_id: str = "msg_1") -> DeliveryRequest:
    return DeliveryRequest(
        url=url,
        event_id=event_id,
        body=BODY,
        secrets=(SECRET_A, SECRET_B),
        timeout_s=timeout_s,
        event_type="invoice.paid",
    )


@dataclass
class Captured:
    path: str
    headers: dict[str, str]
    body: bytes
    peer_port: int


@dataclass
class Receiver:
    base: str
    port: int
    hits: Counter[str] = field(default_factory=Counter)
    captured: list[Captured] = field(default_factory=list)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _receiver_app(receiver: Receiver) -> web.Application:
    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        receiver.hits[request.path] += 1
        receiver.captured.append(
            Captured(request.path, dict(request.headers), body, peer[1] if peer else 0)
        )
        return await handler(request)

    async def ok(request: web.Request) -> web.StreamResponse:
        return web.Response(text="thanks")

    async def status(request: web.Request) -> web.StreamResponse:
        code = int(request.match_info["code"])
        return web.Response(status=code, text=f"receiver says {code}")

    async def redirect(request: web.Request) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": f"{receiver.base}/target"})

    async def target(request: web.Request) -> web.StreamResponse:
        return web.Response(text="followed")

    async def ratelimited(request: web.Request) -> web.StreamResponse:
        return web.Response(status=429, headers={"Retry-After": "7"}, text="slow down")

    async def unavailable(request: web.Request) -> web.StreamResponse:
        later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)
        retry_after = email.utils.format_datetime(later, usegmt=True)
        return web.Response(status=503, headers={"Retry-After": retry_after}, text="maintenance")

    async def sleepy(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(30)
        return web.Response(text="too late")

    async def drip(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=200)
        await resp.prepare(request)
        for _ in range(600):
            await resp.write(b"x")
            await asyncio.sleep(0.1)
        return resp

    async def huge(request: web.Request) -> web.StreamResponse:
        code = int(request.query.get("status", "200"))
        return web.Response(status=code, body=b"\xe2\x82\xac" * (TEN_MB // 3))

    async def stall_after_cap(request: web.Request) -> web.StreamResponse:
        # Declares 10 MB, sends four times the cap, then stalls: only an adapter that
        # stops reading at the cap can finish before its timeout.
        resp = web.StreamResponse(status=200)
        resp.content_length = TEN_MB
        await resp.prepare(request)
        await resp.write(b"y" * (4 * MAX_RESPONSE_BYTES))
        await asyncio.sleep(60)
        return resp

    async def big_header(request: web.Request) -> web.StreamResponse:
        return web.Response(status=200, headers={"X-Huge": "h" * 100_000}, text="ok")

    async def leaky(request: web.Request) -> web.StreamResponse:
        # A receiver that echoes its URL, the signing secret and a password in its error,
        # partly in free text where no "name=value" pattern gives them away.
        text = (
            f"bad request to {request.path_qs}; we saw {request.query.get('token')} "
            f"and {LEAKY_PASSWORD} and {SECRET_A}"
        )
        return web.Response(status=500, text=text)

    app = web.Application(middlewares=[record])
    app.router.add_post("/ok", ok)
    app.router.add_post("/status/{code}", status)
    app.router.add_post("/redirect", redirect)
    app.router.add_route("*", "/target", target)
    app.router.add_post("/ratelimited", ratelimited)
    app.router.add_post("/unavailable", unavailable)
    app.router.add_post("/sleep", sleepy)
    app.router.add_post("/drip", drip)
    app.router.add_post("/huge", huge)
    app.router.add_post("/stall-after-cap", stall_after_cap)
    app.router.add_post("/big-header", big_header)
    app.router.add_post("/leaky", leaky)
    return app


async def _start(ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, Receiver]:
    # Handlers read receiver.base at request time, so it can be filled in after binding.
    receiver = Receiver(base="", port=0)
    # handler_cancellation: stop sleeping/dripping handlers once the adapter hangs up,
    # so cleanup does not wait on them.
    runner = web.AppRunner(_receiver_app(receiver), handler_cancellation=True, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024, ssl_context=ssl_context)
    await site.start()
    receiver.port = runner.addresses[0][1]
    scheme = "https" if ssl_context else "http"
    receiver.base = f"{scheme}://127.0.0.1:{receiver.port}"
    return runner, receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    runner, rec = await _start()
    try:
        yield rec
    finally:
        await runner.cleanup()


@dataclass
class ConnectionCounter:
    port: int
    connections: int = 0


@pytest.fixture
async def tcp_counter() -> AsyncIterator[ConnectionCounter]:
    """A bare TCP listener that only counts connections: proof of "no network"."""
    counter = ConnectionCounter(port=0)

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counter.connections += 1
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    counter.port = server.sockets[0].getsockname()[1]
    try:
        yield counter
    finally:
        server.close()
        await server.wait_closed()


def _assert_not_leaky(result: AttemptResult) -> None:
    summary = result.error_summary or ""
    assert len(summary) <= 512
    for secret in (SECRET_A, SECRET_B, SECRET_A.removeprefix("whsec_"), LEAKY_TOKEN):
        assert secret not in summary


# --- happy path and signing -------------------------------------------------------


async def test_200_succeeds_and_receiver_gets_exact_signed_request(
    receiver: Receiver, adapter: WebhookAdapter
) -> None:
    before = int(time.time())
    result = await adapter.deliver(make_request(f"{receiver.base}/ok", event_id="msg_2abc"))

    assert result.outcome == "succeeded"
    assert result.http_status == 200
    assert result.error_summary is None
    assert result.retry_after_s is None
    assert result.duration_ms >= 0
    [got] = receiver.captured
    assert got.body == BODY
    headers = {k.lower(): v for k, v in got.headers.items()}
    assert headers["webhook-id"] == "msg_2abc"
    assert before <= int(headers["webhook-timestamp"]) <= int(time.time())
    assert headers["content-type"] == "application/json"
    assert headers["courier-event-type"] == "invoice.paid"
    assert headers["user-agent"] == f"courier-webhooks/{__version__}"
    assert len(headers["webhook-signature"].split()) == 2
    for secret in (SECRET_A, SECRET_B):
        assert Webhook(secret).verify(got.body, headers) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(got.body, headers)


async def test_sequential_deliveries_reuse_one_keepalive_connection(
    receiver: Receiver, adapter: WebhookAdapter
) -> None:
    for i in range(10):
        result = await adapter.deliver(make_request(f"{receiver.base}/ok", event_id=f"m{i}"))
        assert result.outcome == "succeeded"
    assert len({c.peer_port for c in receiver.captured}) == 1


async def test_many_concurrent_deliveries_all_succeed(
    receiver: Receiver, adapter: WebhookAdapter
) -> None:
    requests = [make_request(f"{receiver.base}/ok", event_id=f"msg_{i}") for i in range(200)]
    results = await asyncio.gather(*(adapter.deliver(r) for r in requests))
    assert [r.outcome for r in results] == ["succeeded"] * 200
    assert receiver.hits["/ok"] == 200
    assert {c.headers["webhook-id"] for c in receiver.captured} == {r.event_id for r in requests}


# --- status mapping ---------------------------------------------------------------


async def test_500_is_retryable_with_status_and_excerpt(
    receiver: Receiver, adapter: WebhookAdapter
) -> None:
    result = await adapter.deliver(make_request(f"{receiver.base}/status/500"))
    assert result.outcome == "retryable_failure"
    assert result.retryable
    assert result.http_status == 500
    assert result.error_summary is not None
    assert result.error_summary.startswith("HTTP 500")
    assert "receiver says 500" in result.error_summary
    assert result.retry_after_s is None


async def test_400_is_permanent(receiver: Receiver, adapter: WebhookAdapter) -> None:
    result = await adapter.deliver(make_request(f"{receiver.base}/status/400"))
    assert result.outcome == "permanent_failure"
    assert result.http_status == 400
    assert result.error_summary is not None
    assert result.error_summary.startswith("HTTP 400")


async def test_302_is_permanent_and_location_is_not_followed(
    receiver: Receiver, adapter: WebhookAdapter
) -> None:
    result = await adapter.deliver(make_request(f"{receiver.base}/redirect"))
    assert result.outcome == "permanent_failure"
    assert result.http_status == 302
    assert receiver.hits["/redirect"] == 1
    assert receiver.hits["/target"] == 0


async def test_429_retry_after_seconds(receiver: Receiver, adapter: WebhookAdapter) -> None:
    result = await adapter.deliver(make_request(f"{receiver.base}/ratelimited"))
    assert result.outcome == "retryable_failure"
    assert result.http_status == 429
    assert result.retry_after_s == 7


async def test_503_retry_after_http_date(receiver: Receiver, adapter: WebhookAdapter) -> None:
    result = await adapter.deliver(make_request(f"{receiver.base}/unavailable"))
    assert result.outcome == "retryable_failure"
    assert result.http_status == 503
    assert result.retry_after_s is not None
    # The header says 120 s from when the receiver wrote it, to whole-second precision.
    assert 100 <= result.retry_after_s <= 121


async def test_retry_after_is_ignored_on_other_statuses(adapter: WebhookAdapter) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=500, headers={"Retry-After": "7"})

    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        result = await adapter.deliver(make_request(f"http://127.0.0.1:{port}/"))
    finally:
        await runner.cleanup()
    assert result.outcome == "retryable_failure"
    assert result.retry_after_s is None


# --- time and size bounds ----------------------------------------------------------


async def test_handler_sleeping_past_timeout_is_retryable_timeout(
    receiver: Receiver, adapter: WebhookAdapter
) -> None:
    result = await adapter.deliver(make_request(f"{receiver.base}/sleep", timeout_s=0.5))
    assert result.outcome == "retryable_failure"
    assert result.http_status is None
    assert result.error_summary is not None
    assert "timeout" in result.error_summary


async def test_slow_drip_body_cannot_outlast_the_timeout(
    receiver: Receiver, adapter: WebhookAdapter
) -> None:
    result = await adapter.deliver(make_request(f"{receiver.base}/drip", timeout_s=1))
    assert result.outcome == "retryable_failure"
    assert result.error_summary is not None
    assert "timeout after 1s" in result.error_summary
    # Generous: the point is "bounded by the timeout", not "fast". The drip lasts 60 s.
    assert result.duration_ms < 5000


async def test_10mb_body_on_success_is_handled(receiver: Receiver, adapter: WebhookAdapter) -> None:
    result = await adapter.deliver(make_request(f"{receiver.base}/huge"))
    assert result.outcome == "succeeded"
    assert result.http_status == 200


async def test_10mb_body_on_failure_gives_a_bounded_excerpt(
    receiver: Receiver, adapter: WebhookAdapter
) -> None:
    result = await adapter.deliver(make_request(f"{receiver.base}/huge?status=500"))
    assert result.outcome == "retryable_failure"
    assert result.http_status == 500
    assert result.error_summary is not None
    assert result.error_summary.startswith("HTTP 500: €€€")
    assert len(result.error_summary) <= len("HTTP 500: ") + 200


async def test_reading_stops_at_the_cap(receiver: Receiver, adapter: WebhookAdapter) -> None:
    # The receiver never finishes its declared 10 MB body; reading it all would time out.
    result = await adapter.deliver(make_request(f"{receiver.base}/stall-after-cap", timeout_s=3))
    assert result.outcome == "succeeded"
    assert result.http_status == 200


async def test_the_adapter_keeps_working_after_abandoned_bodies(
    receiver: Receiver, adapter: WebhookAdapter
) -> None:
    # An abandoned body must not leave a half-read connection in the keep-alive pool.
    for _ in range(3):
        result = await adapter.deliver(make_request(f"{receiver.base}/huge?status=500"))
        assert result.http_status == 500
        ok = await adapter.deliver(make_request(f"{receiver.base}/ok"))
        assert ok.outcome == "succeeded"


async def test_enormous_response_header_fails_cleanly(
    receiver: Receiver, adapter: WebhookAdapter
) -> None:
    result = await adapter.deliver(make_request(f"{receiver.base}/big-header"))
    assert result.outcome == "retryable_failure"
    assert result.error_summary is not None
    assert result.error_summary.startswith("invalid response")
    assert len(result.error_summary) <= 512
    assert "h" * 1000 not in result.error_summary


# --- connection-level failures -------------------------------------------------------


async def test_connection_refused_is_retryable(adapter: WebhookAdapter) -> None:
    port = _free_port()
    result = await adapter.deliver(make_request(f"http://127.0.0.1:{port}/hook"))
    assert result.outcome == "retryable_failure"
    assert result.http_status is None
    assert result.error_summary is not None
    assert "Connect" in result.error_summary


async def test_unresolvable_name_is_retryable(adapter: WebhookAdapter) -> None:
    result = await adapter.deliver(make_request("http://courier-test.invalid/hook"))
    assert result.outcome == "retryable_failure"
    assert result.http_status is None


async def test_tls_to_a_plain_http_port_is_retryable(
    receiver: Receiver, adapter: WebhookAdapter
) -> None:
    url = receiver.base.replace("http://", "https://") + "/ok"
    result = await adapter.deliver(make_request(url))
    assert result.outcome == "retryable_failure"
    assert result.error_summary is not None
    assert "SSL" in result.error_summary or "TLS" in result.error_summary
    assert receiver.hits["/ok"] == 0


def _self_signed_context(tmp_path: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


async def test_untrusted_certificate_is_retryable_tls_error(
    tmp_path: Path, adapter: WebhookAdapter
) -> None:
    runner, rec = await _start(_self_signed_context(tmp_path))
    try:
        result = await adapter.deliver(make_request(f"{rec.base}/ok"))
    finally:
        await runner.cleanup()
    assert result.outcome == "retryable_failure"
    assert result.error_summary is not None
    assert result.error_summary.startswith("TLS error")
    assert "certificate" in result.error_summary.lower()
    assert rec.hits["/ok"] == 0


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1:{port}/hook",
        "file:///etc/passwd",
        "gopher://127.0.0.1:{port}/",
        "127.0.0.1:{port}/hook",
        "http:///nohost",
        "http://127.1:{port}/",
        "http://2130706433:{port}/",
    ],
)
async def test_unusable_urls_are_permanent_without_network(
    url: str, tcp_counter: ConnectionCounter, adapter: WebhookAdapter
) -> None:
    result = await adapter.deliver(make_request(url.format(port=tcp_counter.port)))
    assert result.outcome == "permanent_failure"
    assert result.http_status is None
    assert result.error_summary is not None
    assert "invalid URL" in result.error_summary
    assert tcp_counter.connections == 0


async def test_missing_secrets_is_permanent(receiver: Receiver, adapter: WebhookAdapter) -> None:
    request = DeliveryRequest(
        url=f"{receiver.base}/ok", event_id="m", body=BODY, secrets=(), timeout_s=5
    )
    result = await adapter.deliver(request)
    assert result.outcome == "permanent_failure"
    assert receiver.hits["/ok"] == 0


# --- secrets stay out of summaries ---------------------------------------------------


async def test_secrets_in_url_and_response_never_reach_the_summary(
    receiver: Receiver, adapter: WebhookAdapter
) -> None:
    url = receiver.base.replace("http://", f"http://courier:{LEAKY_PASSWORD}@")
    url = f"{url}/leaky?token={LEAKY_TOKEN}"
    result = await adapter.deliver(make_request(url))
    assert result.outcome == "retryable_failure"
    assert result.http_status == 500
    assert result.error_summary is not None
    assert result.error_summary.startswith("HTTP 500")
    _assert_not_leaky(result)
    assert LEAKY_PASSWORD not in result.error_summary


async def test_failures_without_a_response_do_not_name_the_query(
    adapter: WebhookAdapter,
) -> None:
    port = _free_port()
    result = await adapter.deliver(make_request(f"http://127.0.0.1:{port}/h?token={LEAKY_TOKEN}"))
    assert result.outcome == "retryable_failure"
    _assert_not_leaky(result)


# --- SSRF guard ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "[::1]", "[::ffff:127.0.0.1]", "127.0.0.1.", "0.0.0.0"],
)
async def test_ssrf_guard_refuses_loopback_before_connecting(
    host: str, tcp_counter: ConnectionCounter
) -> None:
    guarded = WebhookAdapter(allow_private=False)
    try:
        result = await guarded.deliver(make_request(f"http://{host}:{tcp_counter.port}/"))
    finally:
        await guarded.close()
    assert result.outcome == "permanent_failure"
    assert result.http_status is None
    assert result.error_summary is not None
    assert "not allowed" in result.error_summary or "invalid URL" in result.error_summary
    assert tcp_counter.connections == 0


async def test_ssrf_refusal_names_the_class_of_address_never_the_address(
    tcp_counter: ConnectionCounter,
) -> None:
    guarded = WebhookAdapter()
    try:
        literal = await guarded.deliver(make_request(f"http://127.0.0.1:{tcp_counter.port}/"))
        named = await guarded.deliver(make_request(f"http://localhost:{tcp_counter.port}/"))
        mapped = await guarded.deliver(
            make_request(f"http://[::ffff:127.0.0.1]:{tcp_counter.port}/")
        )
        metadata = await guarded.deliver(make_request("http://169.254.169.254/latest/meta-data"))
    finally:
        await guarded.close()
    assert literal.error_summary == "destination address not allowed: loopback"
    # What an internal name resolves to is not the tenant's to learn.
    assert named.error_summary == "destination address not allowed: loopback"
    assert mapped.error_summary == "destination address not allowed: loopback"
    assert metadata.outcome == "permanent_failure"
    assert metadata.error_summary == "destination address not allowed: link-local"
    assert tcp_counter.connections == 0


async def test_ssrf_guard_refuses_and_receiver_sees_nothing(receiver: Receiver) -> None:
    guarded = WebhookAdapter(allow_private=False)
    try:
        result = await guarded.deliver(make_request(f"{receiver.base}/ok"))
    finally:
        await guarded.close()
    assert result.outcome == "permanent_failure"
    assert result.error_summary is not None
    assert "not allowed" in result.error_summary
    assert sum(receiver.hits.values()) == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_allowed_networks_let_a_private_destination_through(
    host: str, receiver: Receiver
) -> None:
    guarded = WebhookAdapter(allowed_networks=["127.0.0.0/8"])
    try:
        result = await guarded.deliver(make_request(f"http://{host}:{receiver.port}/ok"))
    finally:
        await guarded.close()
    assert result.outcome == "succeeded"
    assert receiver.hits["/ok"] == 1


async def test_adapter_can_be_closed_and_reused(receiver: Receiver) -> None:
    a = WebhookAdapter(allow_private=True)
    try:
        assert (await a.deliver(make_request(f"{receiver.base}/ok"))).outcome == "succeeded"
        await a.close()
        assert (await a.deliver(make_request(f"{receiver.base}/ok"))).outcome == "succeeded"
    finally:
        await a.close()
    await a.close()  # idempotent
