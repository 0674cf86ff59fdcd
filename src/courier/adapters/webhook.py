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
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from urllib.parse import parse_qsl

from yarl import URL

from courier import __version__, redact, retry, signing
from courier.adapters.addresses import IPNetwork, is_forbidden_address, parse_networks
from courier.adapters.base import AttemptOutcome, AttemptResult, DeliveryRequest
from courier.adapters.http1 import (
    CannotConnect,
    ConnectionClosed,
    Http1Client,
    InvalidResponse,
    Target,
)

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
# Host names whose addresses an adapter caches; past this the cache starts over (a cheap
# bound on memory).
_DNS_CACHE_SIZE: Final = 4096


class DestinationAddressRefused(OSError):
    """The destination resolved to an address the SSRF policy forbids."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"destination address refused: {address} is {reason}")
        self.address = address
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

    def __init__(
        self,
        allow_private: bool = False,
        allowed_networks: Sequence[str] = (),
        *,
        keepalive_timeout: float = 30.0,
        ttl_dns_cache: int = 60,
    ) -> None:
        self._allow_private = allow_private
        self._allowed_networks: tuple[IPNetwork, ...] = parse_networks(allowed_networks)
        self._keepalive_timeout = keepalive_timeout
        self._ttl_dns_cache = ttl_dns_cache
        self._dns: dict[str, tuple[float, list[str]]] = {}
        self._client: Http1Client | None = None
        # Per instance because the verdicts depend on this adapter's policy.
        self._check_address: AddressCheck = functools.lru_cache(maxsize=4096)(
            self._check_address_uncached
        )
        self._prepare: Callable[[str], Target | _Rejected] = functools.lru_cache(maxsize=4096)(
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

    def _prepare_uncached(self, raw_url: str) -> Target | _Rejected:
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
                # e.g. 127.1 or 2130706433: legacy numeric forms that read differently
                # to different resolvers.
                return _Rejected("invalid URL: malformed IP address host")
            reason = self._check_address(host)
            if reason is not None:
                return _Rejected(str(DestinationAddressRefused(host, reason)))
        try:
            return Target.for_post(url, USER_AGENT)
        except (ValueError, UnicodeError) as exc:
            return _Rejected(f"invalid URL ({type(exc).__name__})")

    async def _addresses(self, host: str, port: int) -> list[str]:
        """The addresses a connection to `host` may use: resolved (cached), then vetted.

        Vetting what DNS returned (rather than the name) is what defeats rebinding and
        names like 127.0.0.1.nip.io: the client connects only to addresses returned here.
        """
        if _looks_like_ip_literal(host):
            return [host]  # vetted once, in _prepare
        now = time.monotonic()
        cached = self._dns.get(host)
        if cached is not None and cached[0] > now:
            resolved = cached[1]
        else:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
            resolved = list(dict.fromkeys(str(info[4][0]) for info in infos))
            if len(self._dns) >= _DNS_CACHE_SIZE:
                self._dns.clear()
            self._dns[host] = (now + self._ttl_dns_cache, resolved)
        allowed: list[str] = []
        refused: DestinationAddressRefused | None = None
        for address in resolved:
            reason = self._check_address(address)
            if reason is None:
                allowed.append(address)
            elif refused is None:
                refused = DestinationAddressRefused(address, reason)
        if not allowed and refused is not None:
            raise refused
        return allowed

    def _get_client(self) -> Http1Client:
        client = self._client
        if client is None:
            client = self._client = Http1Client(
                self._addresses,
                max_body_bytes=MAX_RESPONSE_BYTES,
                excerpt_bytes=_EXCERPT_BYTES,
                keepalive_s=self._keepalive_timeout,
            )
        return client

    async def close(self) -> None:
        client, self._client = self._client, None
        self._dns.clear()
        if client is not None:
            await client.close()

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
        try:
            message = target.request(headers, request.body)
        except ValueError as exc:
            # An id that would split the request head (header injection); never sent.
            summary = f"cannot build the request: {exc}"
            return self._failed(request, started, "permanent_failure", summary)
        try:
            response = await self._get_client().post(target, message, request.timeout_s)
        except TimeoutError:
            summary = f"timeout after {request.timeout_s:g}s"
            return self._failed(request, started, "retryable_failure", summary)
        except DestinationAddressRefused as exc:
            return self._failed(request, started, "permanent_failure", str(exc))
        except (ssl.SSLError, ssl.CertificateError) as exc:
            summary = f"TLS error: {type(exc).__name__}: {exc}"
            return self._failed(request, started, "retryable_failure", summary)
        except socket.gaierror as exc:
            summary = f"DNS lookup failed: {exc.strerror or type(exc).__name__}"
            return self._failed(request, started, "retryable_failure", summary)
        except CannotConnect as exc:
            summary = f"cannot connect: {exc}"
            return self._failed(request, started, "retryable_failure", summary)
        except InvalidResponse as exc:
            # The parser's reasons are fixed texts; nothing of the response is quoted.
            summary = f"invalid response: {exc}"
            return self._failed(request, started, "retryable_failure", summary)
        except (ConnectionClosed, OSError) as exc:
            summary = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return self._failed(request, started, "retryable_failure", summary)
        except Exception as exc:
            # A delivery failure must never crash the worker; the class name is enough
            # to investigate without risking a message that quotes secrets.
            summary = f"unexpected error: {type(exc).__name__}"
            return self._failed(request, started, "retryable_failure", summary)
        status = response.status
        verdict = retry.classify_status(status)
        if verdict == "success":
            return self._result(started, "succeeded", status, None)
        retry_after: float | None = None
        if status in _RETRY_AFTER_STATUSES:
            retry_after = retry.parse_retry_after(response.retry_after, datetime.now(UTC))
        summary = _http_summary(status, response.excerpt, _redaction_secrets(request))
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
