"""KeyCache: live keys kept for at most the TTL, dropped by tenant, never put back by a
lookup that raced a revocation, and one tenant's notice never touches another's keys."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from courier.api.key_cache import CachedKey, KeyCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _key(tenant: uuid.UUID) -> tuple[bytes, CachedKey]:
    return uuid.uuid4().bytes * 2, CachedKey(tenant, uuid.uuid4())


def test_a_key_is_answered_until_the_ttl_then_asked_for_again() -> None:
    clock = Clock()
    cache = KeyCache(ttl_s=5, clock=clock)
    tenant = uuid.uuid4()
    digest, key = _key(tenant)
    cache.put(digest, key, cache.generation(tenant))
    clock.now += 4.9
    assert cache.get(tenant, digest) == key
    clock.now += 0.2
    assert cache.get(tenant, digest) is None
    assert len(cache) == 0


def test_a_notice_drops_that_tenants_keys_only() -> None:
    cache = KeyCache(ttl_s=60)
    a, b = uuid.uuid4(), uuid.uuid4()
    (da, ka), (db, kb) = _key(a), _key(b)
    cache.put(da, ka, cache.generation(a))
    cache.put(db, kb, cache.generation(b))
    cache.notified(str(a))
    assert cache.get(a, da) is None
    assert cache.get(b, db) == kb


def test_an_empty_or_unreadable_notice_drops_everything() -> None:
    for payload in ("", "not-a-uuid"):
        cache = KeyCache(ttl_s=60)
        tenant = uuid.uuid4()
        digest, key = _key(tenant)
        cache.put(digest, key, cache.generation(tenant))
        cache.notified(payload)
        assert cache.get(tenant, digest) is None


def test_a_lookup_that_raced_a_revocation_is_not_kept() -> None:
    cache = KeyCache(ttl_s=60)
    tenant = uuid.uuid4()
    digest, key = _key(tenant)
    before = cache.generation(tenant)  # the request starts asking the database
    cache.notified(str(tenant))  # the revocation's notice arrives meanwhile
    cache.put(digest, key, before)  # the (stale) answer comes back
    assert cache.get(tenant, digest) is None
    before = cache.generation(tenant)
    cache.clear()  # the LISTEN came back: everything missed is dropped
    cache.put(digest, key, before)
    assert cache.get(tenant, digest) is None


def test_a_key_is_answered_only_for_the_tenant_it_names() -> None:
    cache = KeyCache(ttl_s=60)
    tenant = uuid.uuid4()
    digest, key = _key(tenant)
    cache.put(digest, key, cache.generation(tenant))
    assert cache.get(uuid.uuid4(), digest) is None


def test_ttl_zero_keeps_nothing_and_the_size_is_bounded() -> None:
    tenant = uuid.uuid4()
    off = KeyCache(ttl_s=0)
    digest, key = _key(tenant)
    off.put(digest, key, off.generation(tenant))
    assert off.get(tenant, digest) is None
    small = KeyCache(ttl_s=60, max_entries=3)
    digests = []
    for _ in range(5):
        digest, key = _key(tenant)
        small.put(digest, key, small.generation(tenant))
        digests.append(digest)
    assert len(small) == 3
    assert [small.get(tenant, d) is not None for d in digests] == [False, False, True, True, True]


operations = st.lists(
    st.tuples(
        st.sampled_from(["put", "notify", "clear", "tick"]),
        st.integers(0, 2),  # which tenant
        st.integers(0, 3),  # which key of it
    ),
    max_size=60,
)


@given(operations)
def test_no_key_outlives_its_ttl_or_a_notice_for_its_tenant(
    ops: list[tuple[str, int, int]],
) -> None:
    clock = Clock()
    cache = KeyCache(ttl_s=3, max_entries=5, clock=clock)
    tenants = [uuid.UUID(int=n + 1) for n in range(3)]
    keys = {
        (t, k): (bytes([t, k]) * 16, CachedKey(tenants[t], uuid.UUID(int=100 + 4 * t + k)))
        for t in range(3)
        for k in range(4)
    }
    valid_since: dict[tuple[int, int], float] = {}  # put at, and not dropped since
    for op, t, k in ops:
        if op == "put":
            digest, key = keys[(t, k)]
            cache.put(digest, key, cache.generation(tenants[t]))
            valid_since[(t, k)] = clock.now
        elif op == "notify":
            cache.notified(str(tenants[t]))
            valid_since = {tk: at for tk, at in valid_since.items() if tk[0] != t}
        elif op == "clear":
            cache.clear()
            valid_since.clear()
        else:
            clock.now += 1.0
        for (tt, kk), (digest, key) in keys.items():
            found = cache.get(tenants[tt], digest)
            if found is not None:
                assert found == key
                assert (tt, kk) in valid_since
                assert clock.now < valid_since[(tt, kk)] + 3
