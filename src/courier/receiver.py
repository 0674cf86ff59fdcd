"""Verify a courier webhook on the receiving side: signature, replay window, repeats.

    from courier.receiver import ReplayCache, verify_request

    seen = ReplayCache()                                  # one per process
    verdict = verify_request([secret], request.headers, raw_body, seen=seen)
    if verdict.ok:
        handle(raw_body)                                  # authentic, fresh, first time
    elif verdict.reason == "replayed":
        pass                                              # authentic, already handled: ack
    else:
        return 401

The checks, in order: the three `webhook-*` headers are present; the timestamp is
within `tolerance_s` of now (either way); some `v1,` signature matches one of
`secrets` (several during a rotation, newest first); and, with a cache, the webhook-id
was not accepted before within the window. Only an authentic request is recorded, so a
forger cannot poison the cache. courier retries with the same webhook-id and a new
timestamp, so a `replayed` verdict on an authentic request means "already received":
answer 2xx without handling it again. If handling fails after `ok`, call
`seen.forget(verdict.msg_id)` before answering 5xx, so courier's retry is accepted.

Pure standard library plus `courier.signing`; comparisons are constant-time
(`hmac.compare_digest`). docs/receivers.md shows it with the published test vectors.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from courier import signing

__all__ = ["DEFAULT_TOLERANCE_S", "ReplayCache", "Verdict", "verify_request"]

DEFAULT_TOLERANCE_S = 300  # seconds either side of now, as Standard Webhooks libraries use
DEFAULT_CACHE_ENTRIES = 100_000  # webhook-ids remembered at most (~10 MB)

Reason = Literal[
    "ok",
    "missing_headers",
    "invalid_timestamp",
    "stale",
    "future",
    "bad_signature",
    "invalid_secret",
    "replayed",
]


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool  # handle it: authentic, within the window, not seen before
    reason: Reason
    msg_id: str | None = None
    timestamp: int | None = None
    secret_index: int | None = None  # which of the secrets matched (0: the first given)

    @property
    def authentic(self) -> bool:
        """Signed by a secret we hold and within the window (true for `replayed` too)."""
        return self.reason in ("ok", "replayed")

    def __bool__(self) -> bool:
        return self.ok


class ReplayCache:
    """Webhook-ids accepted recently, each kept until its window closes; bounded.

    Entries are dropped once `timestamp + tolerance` has passed (the timestamp check
    rejects such a request anyway) and, past `max_entries`, oldest first: size it for
    the deliveries of one window (2 × tolerance). Thread-safe; one per process. Several
    processes each need their own check (or a shared store keyed the same way).
    """

    def __init__(self, max_entries: int = DEFAULT_CACHE_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._until: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._until)

    def __contains__(self, msg_id: object) -> bool:
        return msg_id in self._until

    def check_and_add(self, msg_id: str, *, keep_until: float, now: float) -> bool:
        """True when `msg_id` is already held (a repeat); else remember it until then."""
        with self._lock:
            self._expire(now)
            until = self._until.get(msg_id)
            if until is not None and until > now:
                return True
            self._until[msg_id] = keep_until
            self._until.move_to_end(msg_id)
            while len(self._until) > self.max_entries:
                self._until.popitem(last=False)
            return False

    def forget(self, msg_id: str) -> None:
        """Accept `msg_id` again (call it when handling an accepted request failed)."""
        with self._lock:
            self._until.pop(msg_id, None)

    def _expire(self, now: float) -> None:
        # Insertion order is nearly expiry order (timestamps lie within ±tolerance),
        # so sweeping from the front until a live entry is cheap and close enough.
        while self._until:
            msg_id, until = next(iter(self._until.items()))
            if until > now:
                return
            del self._until[msg_id]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = {k.lower(): v for k, v in headers.items()}
        value = lowered.get(name)
    return value or None


def verify_request(
    secrets: Iterable[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
    seen: ReplayCache | None = None,
) -> Verdict:
    """The verdict on one request: `body` must be the raw bytes, exactly as received.

    `secrets` are `whsec_…` strings (any that courier gave for this destination);
    `now` is unix seconds (default: the clock). Header names are matched
    case-insensitively.
    """
    msg_id = _header(headers, "webhook-id")
    raw_timestamp = _header(headers, "webhook-timestamp")
    signature = _header(headers, "webhook-signature")
    if not (msg_id and raw_timestamp and signature):
        return Verdict(False, "missing_headers", msg_id)
    raw_timestamp = raw_timestamp.strip()
    if not raw_timestamp.isascii() or not raw_timestamp.isdigit() or len(raw_timestamp) > 12:
        return Verdict(False, "invalid_timestamp", msg_id)
    timestamp = int(raw_timestamp)
    current = time.time() if now is None else now
    if timestamp < current - tolerance_s:
        return Verdict(False, "stale", msg_id, timestamp)
    if timestamp > current + tolerance_s:
        return Verdict(False, "future", msg_id, timestamp)
    matched: int | None = None
    usable = False
    for index, secret in enumerate(secrets):
        try:
            good = signing.verify(secret, msg_id, timestamp, body, signature)
        except ValueError:
            continue  # a malformed secret verifies nothing; the others still may
        usable = True
        if good:
            matched = index
            break
    if matched is None:
        return Verdict(False, "bad_signature" if usable else "invalid_secret", msg_id, timestamp)
    # The window is inclusive (a timestamp exactly tolerance_s old passes), so the id is
    # kept one second past it: a replay at the very edge is still caught.
    if seen is not None and seen.check_and_add(
        msg_id, keep_until=timestamp + tolerance_s + 1, now=current
    ):
        return Verdict(False, "replayed", msg_id, timestamp, matched)
    return Verdict(True, "ok", msg_id, timestamp, matched)
