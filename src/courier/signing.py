"""Standard Webhooks signing: `webhook-id`, `webhook-timestamp` and `webhook-signature`.

The signed content is `f"{msg_id}.{timestamp}."` followed by the exact body bytes, and
each signature is `v1,` + base64(HMAC-SHA256(key, content)), where the key is the
base64-decoded part of a `whsec_…` secret. See https://www.standardwebhooks.com/.

Everything here is pure (no I/O, no clock): the caller supplies the timestamp.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _secrets
from collections.abc import Sequence
from functools import lru_cache

__all__ = [
    "SECRET_KEY_BYTES",
    "SECRET_PREFIX",
    "generate_secret",
    "secret_key_bytes",
    "sign",
    "signature_header",
    "verify",
    "webhook_headers",
]

SECRET_PREFIX = "whsec_"
SECRET_KEY_BYTES = 32  # bytes of randomness in a generated secret
SIGNATURE_VERSION = "v1"

# Every live secret of every destination signs every delivery; a keyed HMAC cached per
# secret (and its decoded key) makes that a dict lookup and a copy. An entry is ~1.7 KiB
# (measured), so 16,384 entries are ~28 MiB at most; fewer entries than the destinations
# a worker serves in turn would miss on every delivery (docs/benchmarks.md, "Scale").
_KEY_CACHE_ENTRIES = 16_384


def generate_secret() -> str:
    """A new `whsec_` secret holding 32 random bytes, in standard (padded) base64."""
    key = _secrets.token_bytes(SECRET_KEY_BYTES)
    return SECRET_PREFIX + base64.b64encode(key).decode("ascii")


@lru_cache(maxsize=_KEY_CACHE_ENTRIES)
def secret_key_bytes(secret: str) -> bytes:
    """The HMAC key inside a secret: the base64 after `whsec_` (the prefix is optional).

    Missing `=` padding is tolerated (some providers strip it); anything else that is not
    standard base64, or decodes to nothing, raises ValueError. The message never includes
    the secret, because it may end up in logs.
    """
    encoded = secret.removeprefix(SECRET_PREFIX)
    if not encoded:
        raise ValueError("webhook secret is empty (expected 'whsec_' followed by base64)")
    try:
        padded = encoded + "=" * (-len(encoded) % 4)
        key = base64.b64decode(padded.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        # `from None`: the original exception text could quote part of the secret.
        raise ValueError(
            "webhook secret is not valid base64 (expected 'whsec_' followed by base64)"
        ) from None
    if not key:
        raise ValueError("webhook secret decodes to an empty key")
    return key


@lru_cache(maxsize=_KEY_CACHE_ENTRIES)
def _keyed_mac(secret: str) -> hmac.HMAC:
    """HMAC-SHA256 under the secret's key, before any message. Never updated itself:
    each signature starts from a copy, which skips deriving the key's pads again."""
    return hmac.new(secret_key_bytes(secret), digestmod=hashlib.sha256)


def _digest(secret: str, msg_id: str, timestamp: int, body: bytes) -> bytes:
    mac = _keyed_mac(secret).copy()
    # Two update() calls instead of concatenating: no copy of a possibly large body.
    mac.update(f"{msg_id}.{timestamp}.".encode())
    mac.update(body)
    return mac.digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 signature>` of one message under one secret."""
    digest = _digest(secret, msg_id, timestamp, body)
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per secret, space-separated, in order.

    Several secrets are how rotation works: receivers accept any one that matches. At
    least one secret is required, since an empty header would send an unsigned webhook.
    """
    if not secrets:
        raise ValueError("at least one signing secret is required")
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets)


def webhook_headers(
    secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The headers of one delivery (names lower-case, as HTTP/2 sends them anyway)."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
    }


def verify(secret: str, msg_id: str, timestamp: int, body: bytes, header: str) -> bool:
    """True when any `v1,` entry of a `webhook-signature` header matches `secret`.

    Entries of other versions and malformed entries are skipped. The timestamp is only
    part of the signed content: checking it against the clock (replay tolerance) is the
    caller's business. An invalid `secret` raises ValueError, like `sign`.
    """
    expected = _digest(secret, msg_id, timestamp, body)
    for entry in header.split():
        version, comma, encoded = entry.partition(",")
        if version != SIGNATURE_VERSION or not comma:
            continue
        try:
            candidate = base64.b64decode(encoded.encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error):
            continue
        if hmac.compare_digest(expected, candidate):
            return True
    return False
