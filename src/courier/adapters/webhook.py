"""The HTTP adapter: one signed POST per attempt over a shared keep-alive aiohttp session.

Every failure becomes an `AttemptResult`; nothing but cancellation escapes `deliver()`.
Destinations are untrusted tenant input, so the adapter refuses internal addresses
(SSRF) at connect time, never follows redirects, bounds time and bytes read, and
keeps secrets and URL credentials out of every summary it writes.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from urllib.parse import parse_qsl

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from courier import __version__, redact, retry, signing
from courier.adapters.addresses import IPNetwork, is_forbidden_address, parse_networks
from courier.adapters.base import AttemptOutcome, AttemptResult, DeliveryRequest

USER_AGENT: Final = f"courier-webhooks/{__version__}"
MAX_RESPONSE_BYTES: Final = 64 * 1024
_EXCERPT_CHARS: Final = 200
# Redaction must see each secret whole before the excerpt is cut, so far more is kept
# than shown: 200 characters even if all are 4-byte UTF-8, plus room for secrets.
_EXCERPT_BYTES: Final = 4096
_ALLOWED_SCHEMES: Final = frozenset({"http", "https"})
_RETRY_AFTER_STATUSES: Final = frozenset({429, 503})
# Short query values ("1", "json") would shred summaries if redacted, and values that
# short are not credentials worth hiding.
_MIN_URL_SECRET_LEN: Final = 6


class DestinationAddressRefused(OSError):
    """The destination resolved to an address the SSRF policy forbids."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"destination address refused: {address} is {reason}")
        self.address = address
        self.reason = reason


AddressCheck = Callable[[str], str | None]


class GuardedResolver(AbstractResolver):
    """Resolves through `inner`, then drops every address the policy forbids.

    Checking what DNS returned (rather than the name) is what defeats rebinding and
    names like 127.0.0.1.nip.io: aiohttp connects only to the addresses returned here.
    """

    def __init__(self, inner: AbstractResolver, check: AddressCheck) -> None:
        self._inner = inner
        self._check = check

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed: list[ResolveResult] = []
        refused: DestinationAddressRefused | None = None
        for result in results:
            reason = self._check(result["host"])
            if reason is None:
                allowed.append(result)
            elif refused is None:
                refused = DestinationAddressRefused(result["host"], reason)
        if not allowed and refused is not None:
            raise refused
        return allowed

    async def close(self) -> None:
        await self._inner.close()


@dataclass(frozen=True, slots=True)
class _Rejected:
    """A destination refused before any network I/O: always a permanent failure."""

    summary: str


# deliver() bounds each whole exchange (connect, send, headers, body) with one
# asyncio.timeout; aiohttp's own timers would only add a second clock per request.
_NO_AIOHTTP_TIMEOUT: Final = aiohttp.ClientTimeout(total=None, connect=None, sock_read=None)


def _looks_like_ip_literal(host: str) -> bool:
    # Mirrors aiohttp.helpers.is_ip_address: hosts matching it skip the resolver, so
    # deliver() must vet exactly these itself.
    return ":" in host or host.replace(".", "").isdigit()


@functools.lru_cache(maxsize=1024)
def _url_secrets(raw_url: str) -> tuple[str, ...]:
    """Credentials a URL may carry, so a receiver echoing its URL cannot leak them."""
    if "?" not in raw_url and "@" not in raw_url:
        return ()
    try:
        url = URL(raw_url)
    except (ValueError, TypeError):
        return ()
    # A password is a secret at any length; other parts only when long enough to matter.
    passwords = [p for p in (url.raw_password, url.password) if p]
    found: list[str] = [u for u in (url.raw_user, url.user) if u]
    if url.raw_query_string:
        for _, value in parse_qsl(url.raw_query_string):
            found.append(value)
        for raw in url.raw_query_string.split("&"):
            found.append(raw.partition("=")[2])
    long_enough = (v for v in found if len(v) >= _MIN_URL_SECRET_LEN)
    return tuple(dict.fromkeys([*passwords, *long_enough]))


class WebhookAdapter:
    """`DeliveryAdapter` over HTTP(S), following Standard Webhooks.

    `allow_private=True` turns the SSRF guard off entirely (local development, tests);
    `allowed_networks` opens specific CIDRs (e.g. a VPC range) while keeping the guard.
    """

    # aiohttp's own defaults, pinned so a huge status line or header fails as a parse
    # error instead of buffering whatever the receiver sends.
    MAX_LINE_SIZE: Final = 8190
    MAX_FIELD_SIZE: Final = 8190
    MAX_HEADERS: Final = 128

    def __init__(
        self,
        allow_private: bool = False,
        allowed_networks: Sequence[str] = (),
        *,
        limit: int = 0,
        limit_per_host: int = 0,
        keepalive_timeout: float = 30.0,
        ttl_dns_cache: int = 60,
    ) -> None:
        self._allow_private = allow_private
        self._allowed_networks: tuple[IPNetwork, ...] = parse_networks(allowed_networks)
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._keepalive_timeout = keepalive_timeout
        self._ttl_dns_cache = ttl_dns_cache
        self._session: aiohttp.ClientSession | None = None
        self._resolver: AbstractResolver | None = None
        # Per instance because the verdicts depend on this adapter's policy.
        self._check_address: AddressCheck = functools.lru_cache(maxsize=4096)(
            self._check_address_uncached
        )
        self._prepare: Callable[[str], URL | _Rejected] = functools.lru_cache(maxsize=4096)(
            self._prepare_uncached
        )

    def _check_address_uncached(self, address: str) -> str | None:
        if self._allow_private:
            return None
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return "not a valid IP address"
        return is_forbidden_address(ip, self._allowed_networks)

    def _prepare_uncached(self, raw_url: str) -> URL | _Rejected:
        """Parse and vet a destination URL; cached because destinations repeat constantly."""
        try:
            url = URL(raw_url)
        except (ValueError, TypeError) as exc:
            # The parser's message may quote the URL, credentials and all.
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
                # e.g. 127.1 or 2130706433: legacy numeric forms aiohttp also refuses.
                return _Rejected("invalid URL: malformed IP address host")
            reason = self._check_address(host)
            if reason is not None:
                return _Rejected(str(DestinationAddressRefused(host, reason)))
        return url

    def _get_session(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            inner = aiohttp.DefaultResolver()
            self._resolver = (
                inner if self._allow_private else GuardedResolver(inner, self._check_address)
            )
            connector = aiohttp.TCPConnector(
                limit=self._limit,
                limit_per_host=self._limit_per_host,
                keepalive_timeout=self._keepalive_timeout,
                ttl_dns_cache=self._ttl_dns_cache,
                resolver=self._resolver,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                # Env proxies would let a tenant's request skip the address checks.
                trust_env=False,
                # The body is only ever an error excerpt; inflating it wastes CPU and
                # invites decompression bombs, so ask for identity and keep bytes raw.
                auto_decompress=False,
                skip_auto_headers=("Accept-Encoding",),
                max_line_size=self.MAX_LINE_SIZE,
                max_field_size=self.MAX_FIELD_SIZE,
                max_headers=self.MAX_HEADERS,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=_NO_AIOHTTP_TIMEOUT,
            )
            self._session = session
        return session

    async def close(self) -> None:
        session, self._session = self._session, None
        resolver, self._resolver = self._resolver, None
        if session is not None:
            await session.close()
        if resolver is not None:
            # The connector only closes resolvers it created itself.
            await resolver.close()

    async def deliver(self, request: DeliveryRequest) -> AttemptResult:
        started = time.perf_counter()
        target = self._prepare(request.url)
        if isinstance(target, _Rejected):
            return self._failed(request, started, "permanent_failure", target.summary)
        try:
            headers = signing.webhook_headers(
                request.secrets, request.event_id, int(time.time()), request.body
            )
        except ValueError as exc:
            # No or malformed secrets: resending the same request cannot fix that. The
            # signing module guarantees its messages never quote a secret.
            summary = f"cannot sign: {exc}"
            return self._failed(request, started, "permanent_failure", summary)
        headers["user-agent"] = USER_AGENT
        try:
            async with asyncio.timeout(request.timeout_s):
                return await self._post(request, target, headers, started)
        except TimeoutError:
            # Listed first: aiohttp's ServerTimeoutError is also a ClientConnectionError
            # and TimeoutError is an OSError.
            summary = f"timeout after {request.timeout_s:g}s"
            return self._failed(request, started, "retryable_failure", summary)
        except aiohttp.ClientSSLError as exc:
            summary = f"TLS error: {type(exc).__name__}: {exc.os_error}"
            return self._failed(request, started, "retryable_failure", summary)
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, DestinationAddressRefused):
                summary = str(exc.os_error)
                return self._failed(request, started, "permanent_failure", summary)
            summary = f"{type(exc).__name__}: {exc.os_error}"
            return self._failed(request, started, "retryable_failure", summary)
        except aiohttp.InvalidURL as exc:
            summary = f"invalid URL ({type(exc).__name__})"
            return self._failed(request, started, "permanent_failure", summary)
        except aiohttp.ClientResponseError as exc:
            # Raised for unparseable responses (oversized headers, bad status line);
            # str(exc) would include the URL, so only the parser's message is kept.
            summary = f"invalid response: {exc.message}"
            return self._failed(request, started, "retryable_failure", summary)
        except (aiohttp.ClientError, OSError) as exc:
            summary = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return self._failed(request, started, "retryable_failure", summary)
        except Exception as exc:
            # A delivery failure must never crash the worker; the class name is enough
            # to investigate without risking a message that quotes secrets.
            summary = f"unexpected error: {type(exc).__name__}"
            return self._failed(request, started, "retryable_failure", summary)

    async def _post(
        self, request: DeliveryRequest, url: URL, headers: dict[str, str], started: float
    ) -> AttemptResult:
        async with self._get_session().post(
            url,
            data=request.body,
            headers=headers,
            allow_redirects=False,
        ) as resp:
            status = resp.status
            verdict = retry.classify_status(status)
            want_excerpt = verdict != "success"
            head = await _read_capped(resp.content, want_excerpt)
            if verdict == "success":
                return self._result(started, "succeeded", status, None)
            retry_after: float | None = None
            if status in _RETRY_AFTER_STATUSES:
                retry_after = retry.parse_retry_after(
                    resp.headers.get("Retry-After"), datetime.now(UTC)
                )
        summary = _http_summary(status, head, _redaction_secrets(request))
        outcome: AttemptOutcome = (
            "retryable_failure" if verdict == "retryable" else "permanent_failure"
        )
        return self._result(started, outcome, status, summary, retry_after)

    @classmethod
    def _failed(
        cls, request: DeliveryRequest, started: float, outcome: AttemptOutcome, text: str
    ) -> AttemptResult:
        if request.url in text:
            # Belt and braces: no handled exception should quote the URL, but if one does,
            # its query string and user-info must not reach the summary.
            text = text.replace(request.url, "<destination URL>")
        summary = redact.summarize(text, secrets=_redaction_secrets(request))
        return cls._result(started, outcome, None, summary)

    @staticmethod
    def _result(
        started: float,
        outcome: AttemptOutcome,
        status: int | None,
        summary: str | None,
        retry_after_s: float | None = None,
    ) -> AttemptResult:
        return AttemptResult(
            outcome=outcome,
            http_status=status,
            duration_ms=int((time.perf_counter() - started) * 1000),
            error_summary=summary,
            retry_after_s=retry_after_s,
        )


def _redaction_secrets(request: DeliveryRequest) -> tuple[str, ...]:
    url_secrets = _url_secrets(request.url)
    return (*request.secrets, *url_secrets) if url_secrets else request.secrets


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


async def _read_capped(content: aiohttp.StreamReader, keep: bool) -> bytes:
    """Read at most MAX_RESPONSE_BYTES, keeping only an excerpt's worth.

    Draining small bodies lets the connection return to the keep-alive pool; a body
    past the cap is abandoned and aiohttp closes that connection on release instead.
    """
    remaining = MAX_RESPONSE_BYTES
    head = bytearray()
    while remaining > 0:
        chunk = await content.read(remaining)
        if not chunk:
            break
        remaining -= len(chunk)
        if keep and len(head) < _EXCERPT_BYTES:
            head += chunk[: _EXCERPT_BYTES - len(head)]
        if content.at_eof():  # the usual small body came whole: no read just to see EOF
            break
    return bytes(head)
