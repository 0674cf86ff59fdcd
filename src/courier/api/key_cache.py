"""The API keys this process found live lately, so most requests authenticate without a
round trip to the database.

An entry maps the SHA-256 of a whole key (the key names its tenant, so two tenants never
share an entry) to the caller it authenticated, and is used for at most `ttl_s` seconds.
A change that could end a key's life (a revocation, a deleted key, a changed or deleted
tenant) reaches every API process at once: triggers NOTIFY the tenant id on commit
(db/postgres/022), this process's LISTEN (`KeyCache.run`) drops that tenant's entries.
The TTL bounds what a missed notice costs: while the LISTEN connection is down, a
revoked key is still refused within `ttl_s`; each time it is back in place, every entry
is dropped (whatever was sent meanwhile is lost).

A lookup that raced a revocation must not put the key back: `generation` is read before
the database is asked, and `put` stores nothing if the tenant was invalidated since.
Only live keys are kept; unknown and revoked keys are asked for every time.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.applications import Starlette

from courier.store.notify import connector, listen, pause
from courier.web.state import state_of

logger = logging.getLogger(__name__)

MAX_ENTRIES = 10_000  # keys kept per process (least recently used go first)
LISTEN_RETRY_S = 1.0  # seconds between LISTEN reconnects


@dataclass(frozen=True, slots=True)
class CachedKey:
    tenant_id: uuid.UUID
    key_id: uuid.UUID


class KeyCache:
    def __init__(
        self,
        ttl_s: float,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[bytes, tuple[CachedKey, float]] = OrderedDict()
        self._by_tenant: dict[uuid.UUID, set[bytes]] = {}
        self._generation: dict[uuid.UUID, int] = {}
        self._epoch = 0  # grows when every entry is dropped at once
        self.listening = asyncio.Event()

    def get(self, tenant_id: uuid.UUID, digest: bytes) -> CachedKey | None:
        found = self._entries.get(digest)
        if found is None:
            return None
        key, expires = found
        if expires <= self._clock() or key.tenant_id != tenant_id:
            self._drop(digest)
            return None
        self._entries.move_to_end(digest)
        return key

    def generation(self, tenant_id: uuid.UUID) -> tuple[int, int]:
        """Read before asking the database; hand it back to `put`."""
        return self._epoch, self._generation.get(tenant_id, 0)

    def put(self, digest: bytes, key: CachedKey, generation: tuple[int, int]) -> None:
        """Keep a key found live, unless its tenant was invalidated since `generation`."""
        if self.ttl_s <= 0 or generation != self.generation(key.tenant_id):
            return
        self._drop(digest)
        self._entries[digest] = (key, self._clock() + self.ttl_s)
        self._by_tenant.setdefault(key.tenant_id, set()).add(digest)
        while len(self._entries) > self.max_entries:
            self._drop(next(iter(self._entries)))

    def invalidate(self, tenant_id: uuid.UUID) -> None:
        self._generation[tenant_id] = self._generation.get(tenant_id, 0) + 1
        for digest in self._by_tenant.pop(tenant_id, set()):
            self._entries.pop(digest, None)

    def clear(self) -> None:
        self._epoch += 1
        self._generation.clear()
        self._entries.clear()
        self._by_tenant.clear()

    def notified(self, payload: str) -> None:
        """A NOTIFY: its payload names the tenant whose keys changed (empty: all)."""
        try:
            tenant_id = uuid.UUID(payload)
        except ValueError:
            self.clear()
            return
        self.invalidate(tenant_id)

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, digest: bytes) -> None:
        found = self._entries.pop(digest, None)
        if found is not None:
            held = self._by_tenant.get(found[0].tenant_id)
            if held is not None:
                held.discard(digest)
                if not held:
                    del self._by_tenant[found[0].tenant_id]

    async def run(self, conninfo: str, stop: asyncio.Event) -> None:
        """LISTEN for key changes on `conninfo` (PostgreSQL itself, past any pooler)
        until `stop` is set."""

        def listening() -> None:
            self.clear()  # whatever changed while nobody listened
            self.listening.set()

        async def failed(exc: BaseException) -> None:
            logger.warning(
                "API key LISTEN failed (%s); cached keys expire after %.0f s meanwhile",
                type(exc).__name__,
                self.ttl_s,
            )
            await pause(stop, LISTEN_RETRY_S)

        await listen(
            connector(conninfo, "courier-api-keys"),
            stop,
            on_notify=self.notified,
            on_listening=listening,
            on_lost=self.listening.clear,
            on_error=failed,
            statement="listen_api_keys",
        )


def app_key_cache(app: Starlette) -> KeyCache:
    """The app's cache, with the TTL of COURIER_API_KEY_CACHE_SECONDS."""
    state = state_of(app)
    return state.own(KeyCache, lambda: KeyCache(state.settings.api_key_cache_seconds))
