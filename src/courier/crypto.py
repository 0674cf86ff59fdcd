"""Encryption at rest for destination signing secrets (Fernet, from `cryptography`).

COURIER_SECRET_KEY holds one or more comma-separated keys; the first encrypts, all
decrypt, so the key itself can rotate. A key may be a Fernet key (32 random bytes, from
`courier secrets generate-key`), used as it is, or any passphrase of at least 16
characters, stretched into a Fernet key.

Tokens are versioned by how a passphrase was stretched:

- no prefix: a plain Fernet token. Under a passphrase, the key was one SHA-256 of it
  (the first format, still read, never written).
- `v2:` + a Fernet token: the key was stretched with scrypt (memory-hard: every guess
  at the passphrase costs an attacker `SCRYPT_N * SCRYPT_R * 128` bytes and about as
  long as one derivation here). Written under a passphrase.

A Fernet key is used as is in both formats, so its tokens stay plain Fernet.
`courier secrets rekey` moves first-format tokens to `v2:`. The scrypt salt is fixed per
format: a per-deployment salt would need storing beside the ciphertexts, and a random
salt per token would mean one derivation per decrypt. Each passphrase is stretched once
per process (cached), so decrypting stays a Fernet operation on the hot path.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from courier.errors import CourierError

MIN_PASSPHRASE_CHARS = 16
V2_PREFIX = "v2:"
SCRYPT_SALT = b"courier-secret-key/v2"
SCRYPT_N = 2**15  # CPU/memory cost: 32 MiB and tens of milliseconds per derivation
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_MAXMEM = 64 * 1024 * 1024  # bytes; OpenSSL's default (32 MiB) is just too small

_UNDECRYPTABLE = (
    "a stored signing secret cannot be decrypted with COURIER_SECRET_KEY "
    "(wrong key, or the key that encrypted it was removed)"
)


class SecretKeyError(CourierError, ValueError):
    pass


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


def legacy_passphrase_key(passphrase: str) -> bytes:
    """The first format's key for a passphrase: one unsalted SHA-256 (read only)."""
    digest = hashlib.sha256(b"courier-secret-key:" + passphrase.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest)


# A worker decrypts each destination's secrets on every claim that includes it: the cache
# must hold more destinations than a worker serves round-robin, or every lookup misses
# (measured with 10,000 destinations: docs/benchmarks.md, "Scale").
DECRYPT_CACHE_ENTRIES = 16_384


@lru_cache(maxsize=16)
def scrypt_passphrase_key(passphrase: str) -> bytes:
    """The `v2:` format's key for a passphrase; derived once per process per passphrase."""
    digest = hashlib.scrypt(
        passphrase.encode("utf-8"),
        salt=SCRYPT_SALT,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=SCRYPT_MAXMEM,
        dklen=32,
    )
    return base64.urlsafe_b64encode(digest)


@dataclass(frozen=True, slots=True)
class _Key:
    current: Fernet  # what new tokens are written with
    legacy: Fernet  # what first-format tokens were written with (the same for a Fernet key)
    prefix: str  # written before new tokens: "" for a Fernet key, V2_PREFIX for a passphrase


def _key(key: str) -> _Key:
    try:
        fernet = Fernet(key.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        pass
    else:
        return _Key(current=fernet, legacy=fernet, prefix="")
    if len(key) < MIN_PASSPHRASE_CHARS:
        raise SecretKeyError(
            f"COURIER_SECRET_KEY: each key must be a Fernet key or at least "
            f"{MIN_PASSPHRASE_CHARS} characters"
        )
    return _Key(
        current=Fernet(scrypt_passphrase_key(key)),
        legacy=Fernet(legacy_passphrase_key(key)),
        prefix=V2_PREFIX,
    )


class SecretBox:
    def __init__(self, keys: str) -> None:
        parts = [k.strip() for k in keys.split(",") if k.strip()]
        if not parts:
            raise SecretKeyError("COURIER_SECRET_KEY is empty")
        self._keys = [_key(k) for k in parts]
        self._primary = self._keys[0]
        self._current = MultiFernet([k.current for k in self._keys])
        self._legacy = MultiFernet([k.legacy for k in self._keys])
        self._decrypt = lru_cache(maxsize=DECRYPT_CACHE_ENTRIES)(self._decrypt_uncached)

    def encrypt(self, plaintext: str) -> str:
        token = self._primary.current.encrypt(plaintext.encode("utf-8")).decode("ascii")
        return self._primary.prefix + token

    def _open(self, token: str) -> bytes:
        try:
            if token.startswith(V2_PREFIX):
                return self._current.decrypt(token[len(V2_PREFIX) :].encode("ascii"))
            return self._legacy.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            raise SecretKeyError(_UNDECRYPTABLE) from None

    def _decrypt_uncached(self, token: str) -> str:
        return self._open(token).decode("utf-8")

    def decrypt(self, token: str) -> str:
        return self._decrypt(token)

    def rotate(self, token: str) -> str:
        """Re-encrypt under the first key, in the current format (`courier secrets rekey`)."""
        return self.encrypt(self._open(token).decode("utf-8"))

    def is_current(self, token: str) -> bool:
        """True when `token` is already what `encrypt` writes: the first key, its format."""
        prefix = self._primary.prefix
        if prefix and not token.startswith(prefix):
            return False
        if not prefix and token.startswith(V2_PREFIX):
            return False
        try:
            self._primary.current.decrypt(token[len(prefix) :].encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            return False
        return True


def random_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)
