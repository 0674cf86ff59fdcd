"""Console session cookies and CSRF tokens: signed, bound, expiring, rotation-tolerant."""

from __future__ import annotations

import time
import uuid

import pytest

from courier.console.session import SESSION_MAX_AGE, Session, Signer


def _session(issued_at: float | None = None) -> Session:
    return Session(uuid.uuid4(), uuid.uuid4(), int(time.time() if issued_at is None else issued_at))


def test_a_signed_session_reads_back_and_names_no_secret() -> None:
    signer = Signer("key-one")
    session = _session()
    cookie = signer.session_cookie(session)
    assert signer.read_session(cookie) == session
    assert cookie.startswith(f"{session.tenant_id.hex}.{session.key_id.hex}.")


def test_a_portal_session_reads_back_as_one_and_cannot_pose_as_a_key_session() -> None:
    signer = Signer("key-one")
    session = Session(uuid.uuid4(), uuid.uuid4(), int(time.time()), portal=True)
    cookie = signer.session_cookie(session)
    assert signer.read_session(cookie) == session
    body, _, mac = cookie.rpartition(".")
    assert body.endswith(".p")
    # Dropping the marker (to be read as an API-key session of that id) breaks the MAC.
    assert signer.read_session(f"{body[:-2]}.{mac}") is None
    assert signer.read_session(f"{body[:-2]}.k.{mac}") is None


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"),  # the MAC
        lambda c: uuid.uuid4().hex + c[32:],  # another tenant
        lambda c: c.replace(".", ".1", 1),  # the key id
        lambda c: "",
        lambda c: "not.a.cookie",
        lambda c: c + "." + c,
    ],
)
def test_a_tampered_cookie_is_refused(tamper: object) -> None:
    signer = Signer("key-one")
    cookie = signer.session_cookie(_session())
    assert callable(tamper)
    assert signer.read_session(tamper(cookie)) is None


def test_another_secret_key_does_not_verify() -> None:
    cookie = Signer("key-one").session_cookie(_session())
    assert Signer("key-two").read_session(cookie) is None


def test_sessions_survive_a_key_rotation_when_the_old_key_is_still_listed() -> None:
    cookie = Signer("old").session_cookie(_session())
    assert Signer("new,old").read_session(cookie) is not None
    assert Signer("new").read_session(cookie) is None


def test_a_session_expires() -> None:
    signer = Signer("key-one")
    now = time.time()
    old = signer.session_cookie(_session(now - SESSION_MAX_AGE - 1))
    assert signer.read_session(old, now=now) is None
    fresh = signer.session_cookie(_session(now - SESSION_MAX_AGE + 60))
    assert signer.read_session(fresh, now=now) is not None


def test_csrf_tokens_are_bound_to_their_session() -> None:
    signer = Signer("key-one")
    mine, theirs = signer.session_cookie(_session()), signer.session_cookie(_session())
    token = signer.csrf_token(mine)
    assert signer.check_csrf(mine, token)
    assert not signer.check_csrf(theirs, token)
    assert not signer.check_csrf(mine, None)
    assert not signer.check_csrf(None, token)
    assert not signer.check_csrf(mine, token[:-1] + "x")


def test_sign_in_tokens_are_bound_to_their_nonce() -> None:
    signer = Signer("key-one")
    nonce, other = signer.new_signin_nonce(), signer.new_signin_nonce()
    assert nonce != other
    token = signer.signin_token(nonce)
    assert signer.check_signin(nonce, token)
    assert not signer.check_signin(other, token)
    # a sign-in token is not a CSRF token of a session named like the nonce
    assert not signer.check_csrf(nonce, token)


def test_no_secret_key_is_refused() -> None:
    with pytest.raises(ValueError):
        Signer(" , ")
