"""One-time console links ("portal sessions"): the token and its stored hash.

A link carries a random token (256 bits, URL-safe); only its SHA-256 is stored, so the
table cannot be turned back into working links. A link signs in once, before it expires.
"""

from __future__ import annotations

import hashlib
import re
import secrets

ROLES = ("viewer", "operator")
MAX_EXPIRES_IN = 3600  # seconds a link may stay unredeemed, at most
DEFAULT_EXPIRES_IN = 900  # seconds, when the request names none
LINK_PATH = "/console/portal/"
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{20,100}")  # what new_token writes, with room


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def well_formed(token: str) -> bool:
    """Whether `token` could be one this module wrote (anything else is not looked up)."""
    return TOKEN_SHAPE.fullmatch(token) is not None
