"""Encryption at rest for destination signing secrets (Fernet, from `cryptography`).

COURIER_SECRET_KEY holds one or more comma-separated keys; the first encrypts, all
decrypt, so the key itself can rotate. A key may be a Fernet key or any passphrase of
at least 16 characters (stretched with SHA-256).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

MIN_PASSPHRASE_CHARS = 16


class SecretKeyError(ValueError):
    pass


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


def _fernet(key: str) -> Fernet:
    try:
        return Fernet(key.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        pass
    if len(key) < MIN_PASSPHRASE_CHARS:
        raise SecretKeyError(
            f"COURIER_SECRET_KEY: each key must be a Fernet key or at least "
            f"{MIN_PASSPHRASE_CHARS} characters"
        )
    digest = hashlib.sha256(b"courier-secret-key:" + key.encode("utf-8")).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


class SecretBox:
    def __init__(self, keys: str) -> None:
        parts = [k.strip() for k in keys.split(",") if k.strip()]
        if not parts:
            raise SecretKeyError("COURIER_SECRET_KEY is empty")
        fernets = [_fernet(k) for k in parts]
        self._primary = fernets[0]
        self._box = MultiFernet(fernets)
        self._decrypt = lru_cache(maxsize=4096)(self._decrypt_uncached)

    def encrypt(self, plaintext: str) -> str:
        return self._box.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def _decrypt_uncached(self, token: str) -> str:
        try:
            return self._box.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise SecretKeyError(
                "a stored signing secret cannot be decrypted with COURIER_SECRET_KEY "
                "(wrong key, or the key that encrypted it was removed)"
            ) from None

    def decrypt(self, token: str) -> str:
        return self._decrypt(token)

    def rotate(self, token: str) -> str:
        """Re-encrypt under the first key (for `courier secrets rekey`)."""
        try:
            return self._box.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise SecretKeyError(
                "a stored signing secret cannot be decrypted with COURIER_SECRET_KEY "
                "(wrong key, or the key that encrypted it was removed)"
            ) from None

    def is_current(self, token: str) -> bool:
        """True when `token` is already encrypted under the first key."""
        try:
            self._primary.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            return False
        return True


def random_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)
