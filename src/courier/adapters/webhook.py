"""The HTTP adapter: one signed POST per attempt over pooled keep-alive connections.

Every failure becomes an `AttemptResult`; nothing but cancellation escapes `deliver()`.
Destinations are untrusted tenant input, so the adapter refuses internal addresses
(SSRF) at connect time, never follows redirects, bounds time and bytes read, and
keeps secrets and URL credentials out of every summary it writes. The HTTP itself is
`courier.adapters.http1` (why not aiohttp: see there).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from urllib.parse import parse_qsl

from yarl import URL

from courier import __version__, redact, retry, signing
from courier.adapters.addresses import IPNetwork, forbidden_class, parse_networks
from courier.adapters.base import (
    EVENT_TYPE_HEADER,
    AttemptOutcome,
    AttemptResult,
    DeliveryRequest,
    finished,
)
from courier.adapters.http1 import (
    CannotConnect,
    ConnectionClosed,
    Http1Client,
    InvalidResponse,
    Proxy,
    ProxyFailed,
    Target,
    TlsIdentity,
)
from courier.adapters.oauth2 import TokenCache, TokenError
from courier.adapters.resolver import LookupFailed, Resolver
from courier.adapters.tls_identity import TlsContexts
from courier.errors import CourierError

USER_AGENT: Final = f"courier-webhooks/{__version__}"
MAX_RESPONSE_BYTES: Final = 64 * 1024
_EXCERPT_CHARS: Final = 200
# Redaction must see each secret whole before the excerpt is cut, so far more is kept
# than shown: 200 characters even if all are 4-byte UTF-8, plus room for secrets.
_EXCERPT_BYTES: Final = 4096
CAPTURED_BYTES: Final = 4096  # the most of a response body an attempt keeps (capture)
# Parsed URLs and address verdicts, one per destination: more than the destinations a
# worker serves in turn, or a round-robin over them misses every time.
TARGET_CACHE_ENTRIES: Final = 16_384
# What the client reads of a body: twice the excerpt, so that a secret starting inside
# it is redacted whole before the cut.
_READ_BYTES: Final = 2 * CAPTURED_BYTES
_ELLIPSIS: Final = "…"
_ALLOWED_SCHEMES: Final = frozenset({"http", "https"})
_RETRY_AFTER_STATUSES: Final = frozenset({429, 503})
# Short query values ("1", "json") would shred summaries if redacted, and values that
# short are not credentials worth hiding.
_MIN_URL_SECRET_LEN: Final = 6


# Set while this task waits for a name's addresses, so that an attempt whose own timeout
# ends during the lookup is reported as a DNS failure. A context variable because the
# timeout surfaces in deliver(), several awaits above the lookup, in the same task.
_RESOLVING: ContextVar[bool] = ContextVar("courier_webhook_resolving", default=False)


class DestinationAddressRefused(CourierError, OSError):
    """The destination resolved to an address the SSRF policy forbids.

    The message names the class of address, never the address: what an internal name
    resolves to is not for the tenant who typed the name to learn.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"destination address not allowed: {reason}")
        self.reason = reason


AddressCheck = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class _Rejected:
    """A destination refused before any network I/O: always a permanent failure."""

    summary: str


def _looks_like_ip_literal(host: str) -> bool:
    # Hosts matching this are connected to as written (no DNS), so deliver() must vet
    # exactly these itself; the same rule aiohttp.helpers.is_ip_address applies.
    return ":" in host or host.replace(".", "").isdigit()


@functools.lru_cache(maxsize=1024)
def _url_secrets(raw_url: str) -> tuple[str, ...]:
    """Credentials a URL may carry, so a receiver echoing its URL cannot leak them."""
    if "?" not in raw_url and "@" not in raw_url:
        return ()
    try:
        url = URL(raw_url)
        # A password is a secret at any length; other parts only when long enough to matter.
        passwords = [p for p in (url.raw_password, url.password) if p]
        found: list[str] = [u for u in (url.raw_user, url.user) if u]
        if url.raw_query_string:
            for _, value in parse_qsl(url.raw_query_string):
                found.append(value)
            for raw in url.raw_query_string.split("&"):
                found.append(raw.partition("=")[2])
    except Exception:
        # yarl raises more than ValueError for some malformed URLs (IndexError for
        # "https://[]@"); a URL it cannot parse has no parts to find.
        return ()
    long_enough = (v for v in found if len(v) >= _MIN_URL_SECRET_LEN)
    return tuple(dict.fromkeys([*passwords, *long_enough]))


class WebhookAdapter:
    """`DeliveryAdapter` over HTTP(S), following Standard Webhooks.

    `allow_private=True` turns the SSRF guard off entirely (local development, tests);
    `allowed_networks` opens specific CIDRs (e.g. a VPC range) while keeping the guard.
    `dns_servers` ("IP" or "IP:port") replaces the system's DNS servers; each lookup
    gives up after `dns_timeout` seconds (sooner if the attempt's own timeout ends first).
    `egress_proxy` (`http://host:port`) tunnels every connection through that proxy with
    CONNECT to an address resolved and vetted here, so the guard holds behind it.
    """

    def __init__(
        self,
        allow_private: bool = False,
        allowed_networks: Sequence[str] = (),
        *,
        keepalive_timeout: float = 30.0,
        ttl_dns_cache: int = 60,
        dns_servers: Sequence[str] = (),
        dns_timeout: float = 5.0,
        egress_proxy: str | None = None,
    ) -> None:
        self._proxy = Proxy.parse(egress_proxy) if egress_proxy else None
        self._allow_private = allow_private
        self._allowed_networks: tuple[IPNetwork, ...] = parse_networks(allowed_networks)
        self._keepalive_timeout = keepalive_timeout
        self._resolver = Resolver(dns_servers, timeout_s=dns_timeout, ttl_s=ttl_dns_cache)
        self._client: Http1Client | None = None
        # Per instance because the verdicts depend on this adapter's policy.
        self._check_address: AddressCheck = functools.lru_cache(maxsize=TARGET_CACHE_ENTRIES)(
            self._check_address_uncached
        )
        self._prepare: Callable[[str, str], Target | _Rejected] = functools.lru_cache(
            maxsize=TARGET_CACHE_ENTRIES
        )(self._prepare_uncached)
        self._tokens = TokenCache(self._post_form)
        self._tls = TlsContexts()

    def _check_address_uncached(self, address: str) -> str | None:
        if self._allow_private:
            return None
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return "not a valid IP address"
        return forbidden_class(ip, self._allowed_networks)

    def _prepare_uncached(self, raw_url: str, user_agent: str) -> Target | _Rejected:
        """Parse and vet a destination URL; cached because destinations repeat constantly."""
        try:
            url = URL(raw_url)
        except Exception as exc:
            # Not only ValueError: yarl raises IndexError for "https://[]@", and a row
            # written behind the API's back may hold anything. Only the class is named:
            # the parser's message may quote the URL, credentials and all.
            return _Rejected(f"invalid URL ({type(exc).__name__})")
        if url.scheme not in _ALLOWED_SCHEMES:
            # The scheme is not echoed: in a malformed URL it can be any leading text.
            return _Rejected("invalid URL: scheme must be http or https")
        host = url.raw_host
        if not host:
            return _Rejected("invalid URL: missing host")
        if _looks_like_ip_literal(host):
            try:
                ipaddress.ip_address(host)
            except ValueError:
                # e.g. 127.1 or 2130706433: legacy numeric forms that read differently
                # to different resolvers.
                return _Rejected("invalid URL: malformed IP address host")
            reason = self._check_address(host)
            if reason is not None:
                return _Rejected(str(DestinationAddressRefused(reason)))
        try:
            return Target.for_post(url, user_agent)
        except Exception as exc:
            return _Rejected(f"invalid URL ({type(exc).__name__})")

    async def _addresses(self, host: str, port: int) -> list[str]:
        """The addresses a connection to `host` may use: resolved (cached), then vetted.

        Vetting what DNS returned (rather than the name) is what defeats rebinding and
        names like 127.0.0.1.nip.io: the client connects only to addresses returned here.
        """
        if _looks_like_ip_literal(host):
            return [host]  # vetted once, in _prepare
        mark = _RESOLVING.set(True)
        try:
            resolved = await self._resolver.resolve(host)
        except asyncio.CancelledError:
            raise  # the mark stays: the attempt's time ran out during the lookup
        except BaseException:
            _RESOLVING.reset(mark)
            raise
        _RESOLVING.reset(mark)
        allowed: list[str] = []
        refused: DestinationAddressRefused | None = None
        for address in resolved:
            reason = self._check_address(address)
            if reason is None:
                allowed.append(address)
            elif refused is None:
                refused = DestinationAddressRefused(reason)
        if not allowed and refused is not None:
            raise refused
        return allowed

    def _get_client(self) -> Http1Client:
        client = self._client
        if client is None:
            client = self._client = Http1Client(
                self._addresses,
                max_body_bytes=MAX_RESPONSE_BYTES,
                excerpt_bytes=_READ_BYTES,
                keepalive_s=self._keepalive_timeout,
                proxy=self._proxy,
            )
        return client

    async def close(self) -> None:
        self._tokens.close()
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        await self._resolver.close()

    async def deliver(self, request: DeliveryRequest) -> AttemptResult:
        started = time.perf_counter()
        options = request.options
        if options is None:
            return await self._send(request, started)
        try:
            tls = self._tls.get(options)
        except (ssl.SSLError, ValueError, OSError) as exc:
            # The API checked the PEMs; OpenSSL may still refuse what cryptography read.
            summary = f"cannot use the destination's TLS certificates: {type(exc).__name__}"
            return self._failed(request, started, "permanent_failure", summary)
        auth = options.auth
        if auth is None or auth.get("type") != "oauth2_client_credentials":
            return await self._send(request, started, tls)
        key = (request.tenant_id, str(request.destination_id), options.key)
        refused: str | None = None
        while True:
            try:
                token = await self._tokens.token(key, auth, request.timeout_s, request.tenant_id)
            except TokenError as exc:
                return self._failed(request, started, "retryable_failure", str(exc))
            result = await self._send(request, started, tls, token)
            if result.http_status != 401 or refused is not None:
                return result
            # Refused once: the token may have been revoked early. Fetch another and try
            # once more; a second 401 is the receiver's answer.
            refused = token
            self._tokens.invalidate(key, token)

    async def _post_form(
        self, url: str, headers: Mapping[str, str], body: bytes, timeout_s: float, tenant: str
    ) -> tuple[int, bytes]:
        """A token request: SSRF-guarded like a delivery, its answer's first bytes back."""
        target = self._prepare(url, USER_AGENT)
        if isinstance(target, _Rejected):
            raise TokenError(f"failed: {target.summary}")
        response = await self._get_client().post(
            target, target.request(headers, body), timeout_s, tenant
        )
        return response.status, response.excerpt

    async def _send(
        self,
        request: DeliveryRequest,
        started: float,
        tls: TlsIdentity | None = None,
        token: str | None = None,
    ) -> AttemptResult:
        try:
            prepared = self._build(request, token)
        except Exception as exc:
            # Whatever a stored row holds, preparing it must not raise out of deliver();
            # the same request would fail the same way again, so it is permanent. Only the
            # class is named: a message could quote the URL or a secret.
            summary = f"cannot build the request: {type(exc).__name__}"
            return self._failed(request, started, "permanent_failure", summary, token)
        if isinstance(prepared, _Rejected):
            return self._failed(request, started, "permanent_failure", prepared.summary, token)
        target, message = prepared
        try:
            response = await self._get_client().post(
                target, message, request.timeout_s, request.tenant_id, tls
            )
        except TimeoutError:
            summary = f"timeout after {request.timeout_s:g}s"
            if _RESOLVING.get():
                _RESOLVING.set(False)
                summary = f"DNS lookup failed: {summary}"
            return self._failed(request, started, "retryable_failure", summary, token)
        except DestinationAddressRefused as exc:
            return self._failed(request, started, "permanent_failure", str(exc), token)
        except ProxyFailed as exc:
            # the proxy's fault, not the destination's: named, and worth retrying
            return self._failed(request, started, "retryable_failure", str(exc), token)
        except (ssl.SSLError, ssl.CertificateError) as exc:
            summary = f"TLS error: {type(exc).__name__}: {exc}"
            return self._failed(request, started, "retryable_failure", summary, token)
        except LookupFailed as exc:
            summary = f"DNS lookup failed: {exc.reason}"
            return self._failed(request, started, "retryable_failure", summary, token)
        except CannotConnect as exc:
            summary = f"cannot connect: {exc}"
            return self._failed(request, started, "retryable_failure", summary, token)
        except InvalidResponse as exc:
            # The parser's reasons are fixed texts; nothing of the response is quoted.
            summary = f"invalid response: {exc}"
            return self._failed(request, started, "retryable_failure", summary, token)
        except (ConnectionClosed, OSError) as exc:
            summary = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return self._failed(request, started, "retryable_failure", summary, token)
        except Exception as exc:
            # A delivery failure must never crash the worker; the class name is enough
            # to investigate without risking a message that quotes secrets.
            summary = f"unexpected error: {type(exc).__name__}"
            return self._failed(request, started, "retryable_failure", summary, token)
        status = response.status
        verdict = retry.classify_status(status)
        options = request.options
        captured = None
        if options is not None and options.capture_response_body:
            captured = captured_excerpt(response.excerpt, _redaction_secrets(request, token))
        if verdict == "success":
            return self._result(started, "succeeded", status, None, captured=captured)
        retry_after: float | None = None
        if status in _RETRY_AFTER_STATUSES:
            retry_after = retry.parse_retry_after(response.retry_after, datetime.now(UTC))
        summary = _http_summary(
            status, response.excerpt[:_EXCERPT_BYTES], _redaction_secrets(request, token)
        )
        outcome: AttemptOutcome = (
            "retryable_failure" if verdict == "retryable" else "permanent_failure"
        )
        return self._result(started, outcome, status, summary, retry_after, captured)

    def _build(
        self, request: DeliveryRequest, token: str | None = None
    ) -> tuple[Target, bytes] | _Rejected:
        """The vetted target and the whole signed request, or why there is none."""
        options = request.options
        user_agent = USER_AGENT
        if options is not None and options.user_agent is not None:
            user_agent = options.user_agent
        target = self._prepare(request.url, user_agent)
        if isinstance(target, _Rejected):
            return target
        try:
            headers = signing.webhook_headers(
                request.secrets, request.event_id, int(time.time()), request.body
            )
        except ValueError as exc:
            # No or malformed secrets: resending the same request cannot fix that. The
            # signing module guarantees its messages never quote a secret.
            return _Rejected(f"cannot sign: {exc}")
        headers[EVENT_TYPE_HEADER] = request.event_type
        extra = b""
        if options is not None:
            if options.head is not None:
                extra = options.head  # the destination's own lines, encoded once
            else:
                headers.update(options.headers)  # a line break: refused just below
            if token is not None:
                headers["authorization"] = f"Bearer {token}"
        try:
            return target, target.request(headers, request.body, extra)
        except ValueError as exc:
            # An id that would split the request head (header injection); never sent.
            return _Rejected(f"cannot build the request: {exc}")

    @classmethod
    def _failed(
        cls,
        request: DeliveryRequest,
        started: float,
        outcome: AttemptOutcome,
        text: str,
        token: str | None = None,
    ) -> AttemptResult:
        if request.url in text:
            # Belt and braces: no handled exception should quote the URL, but if one does,
            # its query string and user-info must not reach the summary.
            text = text.replace(request.url, "<destination URL>")
        summary = redact.summarize(text, secrets=_redaction_secrets(request, token))
        return cls._result(started, outcome, None, summary)

    _result = staticmethod(finished)


def _redaction_secrets(request: DeliveryRequest, token: str | None = None) -> tuple[str, ...]:
    url_secrets = _url_secrets(request.url)
    found = (*request.secrets, *url_secrets) if url_secrets else request.secrets
    if request.options is not None:
        found = (*found, *request.options.secrets)
    return (*found, token) if token else found


def captured_excerpt(body: bytes, secrets: tuple[str, ...]) -> str:
    """At most CAPTURED_BYTES of UTF-8: the body's start, redacted first and only then cut
    (twice as much is read, so a secret that starts inside the excerpt is seen whole)."""
    text = redact.redact(body.decode("utf-8", errors="replace"), secrets).replace("\x00", "\ufffd")
    encoded = text.encode("utf-8")
    if len(encoded) <= CAPTURED_BYTES:
        return text
    limit = CAPTURED_BYTES - len(_ELLIPSIS.encode("utf-8"))
    cut = encoded[:limit].decode("utf-8", errors="ignore")
    marker = text.rfind(redact.REDACTED, 0, len(cut) + len(redact.REDACTED) - 1)
    if marker != -1 and marker < len(cut) < marker + len(redact.REDACTED):
        cut = cut[:marker]
    return cut + _ELLIPSIS


def _http_summary(status: int, head: bytes, secrets: tuple[str, ...]) -> str:
    """`HTTP <status>: <excerpt>`, the excerpt redacted first and only then cut.

    Cutting first could leave half a secret behind that no longer matches; and the
    result is not summarized again, because redaction is not idempotent.
    """
    text = redact.summarize(head.decode("utf-8", errors="replace"), secrets=secrets)
    if not text:
        return f"HTTP {status}"
    if len(text) > _EXCERPT_CHARS:
        cut = _EXCERPT_CHARS - 1
        marker = text.rfind(redact.REDACTED, 0, cut + len(redact.REDACTED) - 1)
        if marker != -1 and marker < cut < marker + len(redact.REDACTED):
            cut = marker
        text = text[:cut].rstrip() + "…"
    return f"HTTP {status}: {text}"
