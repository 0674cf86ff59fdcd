"""Console sessions and CSRF tokens: HMAC-signed values (a portal session names its row).

A session cookie reads `<tenant id hex>.<key id hex>.<issued at, unix s>.<mac>`: it
names the API key that signed in, never the key itself, and each request checks that
the key is still live (a revoked key ends its sessions at once). A session started by a
one-time portal link reads `<tenant id hex>.<portal session id hex>.<issued at>.p.<mac>`:
it names the portal_sessions row, whose role and destination scope each request reads.
The MAC key is derived from COURIER_SECRET_KEY, so no new secret is needed; every
configured key verifies (the first one signs), so rotating COURIER_SECRET_KEY keeps
sessions signed before it.

CSRF tokens are MACs of the session cookie (synchronizer tokens without storage): a
page rendered for a session carries the token, a form posted without it is refused.
The sign-in form, which has no session yet, is bound to a random pre-session cookie
the same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass

SESSION_COOKIE = "courier_console"
SIGNIN_COOKIE = "courier_console_signin"
SESSION_MAX_AGE = 12 * 3600  # seconds a session lasts after sign-in
SIGNIN_MAX_AGE = 3600  # seconds a sign-in form stays valid
COOKIE_PATH = "/console"
_DERIVATION_LABEL = b"courier console session v1"


@dataclass(frozen=True, slots=True)
class Session:
    tenant_id: uuid.UUID
    key_id: uuid.UUID  # the API key, or the portal session when `portal`
    issued_at: int  # unix seconds
    portal: bool = False  # started by a one-time portal link rather than an API key


class Signer:
    """Signs and checks session cookies and CSRF tokens with keys derived from secrets."""

    def __init__(self, secret_keys: str) -> None:
        keys = [k.strip() for k in secret_keys.split(",") if k.strip()]
        if not keys:
            raise ValueError("no secret key to derive the console signing key from")
        self._keys = [
            hmac.new(k.encode("utf-8"), _DERIVATION_LABEL, hashlib.sha256).digest() for k in keys
        ]

    def _mac(self, key: bytes, purpose: str, message: str) -> str:
        digest = hmac.new(key, f"{purpose}|{message}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

    def _sign(self, purpose: str, message: str) -> str:
        return self._mac(self._keys[0], purpose, message)

    def _verify(self, purpose: str, message: str, mac: str) -> bool:
        given = mac.encode("ascii", errors="replace")
        return any(
            hmac.compare_digest(self._mac(key, purpose, message).encode("ascii"), given)
            for key in self._keys
        )

    def session_cookie(self, session: Session) -> str:
        body = f"{session.tenant_id.hex}.{session.key_id.hex}.{session.issued_at}"
        if session.portal:
            body += ".p"
        return f"{body}.{self._sign('session', body)}"

    def read_session(self, value: str | None, now: float | None = None) -> Session | None:
        """The session a cookie names, or None when it is malformed, forged or expired."""
        if not value or len(value) > 200:
            return None
        body, _, mac = value.rpartition(".")
        parts = body.split(".")
        portal = len(parts) == 4 and parts[3] == "p"
        if len(parts) != 3 and not portal:
            return None
        if not self._verify("session", body, mac):
            return None
        try:
            session = Session(
                uuid.UUID(hex=parts[0]), uuid.UUID(hex=parts[1]), int(parts[2]), portal
            )
        except ValueError:
            return None
        age = (time.time() if now is None else now) - session.issued_at
        if age < -60 or age > SESSION_MAX_AGE:
            return None
        return session

    def csrf_token(self, cookie_value: str) -> str:
        """The token the forms of this session carry."""
        return self._sign("csrf", cookie_value)

    def check_csrf(self, cookie_value: str | None, token: str | None) -> bool:
        if not cookie_value or not token:
            return False
        return self._verify("csrf", cookie_value, token)

    @staticmethod
    def new_signin_nonce() -> str:
        return secrets.token_urlsafe(24)

    def signin_token(self, nonce: str) -> str:
        return self._sign("signin", nonce)

    def check_signin(self, nonce: str | None, token: str | None) -> bool:
        if not nonce or not token:
            return False
        return self._verify("signin", nonce, token)
