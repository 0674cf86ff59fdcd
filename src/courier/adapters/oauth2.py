"""OAuth2 client credentials (RFC 6749 section 4.4): the access tokens a destination's
requests carry, fetched from its token endpoint and cached per destination in this worker.

- One fetch at a time per destination: deliveries that need a token while one is being
  fetched wait for that fetch (no stampede on the token endpoint).
- A token is used until shortly before it expires (a tenth of its lifetime, at most a
  minute), then fetched again; if that fetch fails while the old token is still valid,
  the old one is used.
- `invalidate` drops a token the receiver refused (a 401), so the next request fetches.

The client authenticates with HTTP Basic (`client_secret_basic`, the method every
authorization server must support); `scope` and `audience` go in the form when set.
Cache entries are keyed by tenant, destination and the options' key: a changed client
secret or token URL never meets a token fetched with the old ones.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, urlencode, urlsplit

import orjson

from courier.errors import CourierError

DEFAULT_LIFETIME_S: Final = 3600.0  # when the endpoint does not say (expires_in)
MIN_LIFETIME_S: Final = 1.0
MAX_REFRESH_MARGIN_S: Final = 60.0
MAX_TOKEN_CHARS: Final = 8192
MAX_ENTRIES: Final = 10_000

# (url, headers, form body, timeout seconds, tenant) -> (status, the body's first bytes)
Post = Callable[[str, Mapping[str, str], bytes, float, str], Awaitable[tuple[int, bytes]]]
_Key = tuple[str, str, str]


class TokenError(CourierError):
    """No token: the message names the token endpoint and says why (never a secret).

    Worded "<endpoint> answered …" or "<endpoint> failed: …", never "<endpoint>: …": a
    URL ending in /token before a colon reads to the redactor as a `token:` field.
    """


def endpoint_name(token_url: str) -> str:
    """The token URL without user-info, query or fragment: what failure summaries show."""
    try:
        parts = urlsplit(token_url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(invalid URL)"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{parts.path}"


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    refresh_at: float  # monotonic seconds: fetch again from here on
    expires_at: float


def _form(auth: Mapping[str, str]) -> bytes:
    fields = {"grant_type": "client_credentials"}
    for name in ("scope", "audience"):
        if auth.get(name):
            fields[name] = auth[name]
    return urlencode(fields).encode("ascii")


def _headers(auth: Mapping[str, str]) -> dict[str, str]:
    # RFC 6749 section 2.3.1: both parts form-encoded before they are joined.
    pair = f"{quote(auth['client_id'], safe='')}:{quote(auth['client_secret'], safe='')}"
    return {
        "content-type": "application/x-www-form-urlencoded",
        "accept": "application/json",
        "authorization": "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii"),
    }


def parse_token(status: int, body: bytes, now: float) -> _Token:
    """The token of a token endpoint's answer; TokenError ("answered …") if none."""
    if not 200 <= status < 300:
        raise TokenError(f"answered HTTP {status}: {body[:512].decode('utf-8', errors='replace')}")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise TokenError("answered with something other than JSON") from None
    if not isinstance(document, dict):
        raise TokenError("answered with JSON that is not an object")
    value = document.get("access_token")
    if not isinstance(value, str) or not value or len(value) > MAX_TOKEN_CHARS:
        raise TokenError("answered without an access_token")
    if not all("\x21" <= ch <= "\x7e" for ch in value):
        raise TokenError("answered with an access_token that is not a Bearer token")
    token_type = document.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise TokenError("answered with a token_type other than Bearer")
    lifetime = document.get("expires_in", DEFAULT_LIFETIME_S)
    if isinstance(lifetime, str) and lifetime.isdigit():
        lifetime = int(lifetime)
    if not isinstance(lifetime, int | float) or isinstance(lifetime, bool):
        raise TokenError("answered with an expires_in that is not a number")
    lifetime = max(float(lifetime), MIN_LIFETIME_S)
    margin = min(lifetime / 10, MAX_REFRESH_MARGIN_S)
    return _Token(value, now + lifetime - margin, now + lifetime)


class TokenCache:
    def __init__(
        self,
        post: Post,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self._post = post
        self._clock = clock
        self._max = max_entries
        self._tokens: OrderedDict[_Key, _Token] = OrderedDict()
        self._fetching: dict[_Key, asyncio.Task[_Token]] = {}
        self.fetches = 0  # token requests sent (for tests and metrics)

    async def token(self, key: _Key, auth: Mapping[str, str], timeout_s: float, tenant: str) -> str:
        """A valid access token for `key`; raises TokenError naming the endpoint."""
        cached = self._tokens.get(key)
        now = self._clock()
        if cached is not None and now < cached.refresh_at:
            return cached.value
        try:
            return (await self._shared_fetch(key, auth, timeout_s, tenant)).value
        except TokenError:
            if cached is not None and self._clock() < cached.expires_at:
                return cached.value  # refreshing early failed; the old one still holds
            raise

    def close(self) -> None:
        """Forget every token and stop the fetches in flight (the worker is stopping)."""
        self._tokens.clear()
        for task in list(self._fetching.values()):
            task.cancel()

    def invalidate(self, key: _Key, value: str) -> None:
        """Forget `value` (the receiver refused it), unless a newer token replaced it."""
        cached = self._tokens.get(key)
        if cached is not None and cached.value == value:
            del self._tokens[key]

    def _shared_fetch(
        self, key: _Key, auth: Mapping[str, str], timeout_s: float, tenant: str
    ) -> asyncio.Future[_Token]:
        task = self._fetching.get(key)
        if task is None:
            task = asyncio.ensure_future(self._fetch(key, auth, timeout_s, tenant))
            self._fetching[key] = task
            task.add_done_callback(lambda done: self._fetched(key, done))
        # Shielded: a delivery that is cancelled must not cancel the others' fetch.
        return asyncio.shield(task)

    def _fetched(self, key: _Key, task: asyncio.Task[_Token]) -> None:
        if self._fetching.get(key) is task:
            del self._fetching[key]
        if not task.cancelled():
            task.exception()  # retrieved: waiters may all have gone

    async def _fetch(
        self, key: _Key, auth: Mapping[str, str], timeout_s: float, tenant: str
    ) -> _Token:
        endpoint = endpoint_name(auth["token_url"])
        self.fetches += 1
        try:
            async with asyncio.timeout(timeout_s):
                status, body = await self._post(
                    auth["token_url"], _headers(auth), _form(auth), timeout_s, tenant
                )
            token = parse_token(status, body, self._clock())
        except TokenError as exc:
            raise TokenError(f"OAuth2 token endpoint {endpoint} {exc}") from None
        except TimeoutError:
            raise TokenError(
                f"OAuth2 token endpoint {endpoint} failed: timeout after {timeout_s:g}s"
            ) from None
        except Exception as exc:
            # The class and message of a connection or TLS failure; the adapter redacts.
            text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise TokenError(f"OAuth2 token endpoint {endpoint} failed: {text}") from None
        self._tokens[key] = token
        self._tokens.move_to_end(key)
        if len(self._tokens) > self._max:
            self._tokens.popitem(last=False)
        return token
