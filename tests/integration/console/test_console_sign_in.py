"""Console sign-in under attack and behind proxies: failed attempts are limited per client
address and per tenant, and the session cookie is Secure when a trusted proxy says https."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
from fastapi import FastAPI

from courier.asgi import create_app
from courier.console.session import SESSION_COOKIE, SIGNIN_COOKIE
from tests.integration.api.conftest import BASE_URL, api_settings, serving
from tests.integration.console.test_console_http import TOKEN, _sign_in, _tenant

LIMIT = 10  # the default failed sign-ins per minute


@contextlib.asynccontextmanager
async def _from(app: FastAPI, address: str, **headers: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests arrive from `address` (the app's lifespan already runs)."""
    transport = httpx.ASGITransport(app=app, client=(address, 50_000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=headers) as c:
        yield c


def _wrong(key: str) -> str:
    """A well-formed key of the same tenant with the wrong secret."""
    return key[:-4] + ("aaaa" if not key.endswith("aaaa") else "bbbb")


async def test_failed_sign_ins_are_limited_per_address_and_per_tenant(
    db_url: str, secret_key: str, conn: psycopg.Connection[Any]
) -> None:
    acme, globex, initech = _tenant(conn), _tenant(conn, "globex"), _tenant(conn, "initech")
    app = create_app(api_settings(secret_key), db_url)
    async with (
        serving(app),
        _from(app, "198.51.100.1") as attacker,
        _from(app, "198.51.100.2") as colleague,
        _from(app, "198.51.100.3") as stranger,
    ):
        for _ in range(LIMIT):
            assert (await _sign_in(attacker, _wrong(acme.key))).status_code == 401
        # the eleventh attempt is refused before the key is looked at, even the right key
        refused = await _sign_in(attacker, acme.key)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert "Too many failed sign-ins" in refused.text
        assert "courier_console=" not in refused.headers.get("set-cookie", "")
        # that address is refused for every tenant ...
        assert (await _sign_in(attacker, globex.key)).status_code == 429
        # ... and that tenant from every address
        assert (await _sign_in(colleague, acme.key)).status_code == 429
        # another address, another tenant: not affected
        assert (await _sign_in(colleague, globex.key)).status_code == 303

        # malformed keys name no tenant: they count against the address alone
        for _ in range(LIMIT):
            assert (await _sign_in(stranger, "ck_nope\x00")).status_code == 401
        assert (await _sign_in(stranger, initech.key)).status_code == 429
        async with _from(app, "198.51.100.4") as elsewhere:
            assert (await _sign_in(elsewhere, initech.key)).status_code == 303


async def test_successful_sign_ins_do_not_count(
    db_url: str, secret_key: str, conn: psycopg.Connection[Any]
) -> None:
    acme = _tenant(conn)
    app = create_app(api_settings(secret_key), db_url)
    async with serving(app), _from(app, "198.51.100.9") as office:
        for _ in range(LIMIT + 2):
            office.cookies.clear()
            assert (await _sign_in(office, acme.key)).status_code == 303


async def test_the_limit_is_a_setting(
    db_url: str, secret_key: str, conn: psycopg.Connection[Any]
) -> None:
    acme = _tenant(conn)
    app = create_app(api_settings(secret_key, console_sign_in_failures_per_minute=2), db_url)
    async with serving(app), _from(app, "198.51.100.5") as client:
        for _ in range(2):
            assert (await _sign_in(client, _wrong(acme.key))).status_code == 401
        assert (await _sign_in(client, acme.key)).status_code == 429


def _set_cookie(answer: httpx.Response, name: str) -> str:
    (cookie,) = [c for c in answer.headers.get_list("set-cookie") if c.startswith(f"{name}=")]
    return cookie


async def _session_cookie(client: httpx.AsyncClient, key: str) -> str:
    """Sign in and answer the session's Set-Cookie line.

    The sign-in cookie is sent back by hand: a client (rightly) keeps a Secure cookie to
    itself on the plain http between the proxy and courier.
    """
    form = await client.get("/console/sign-in")
    token = TOKEN.search(form.text)
    assert token is not None
    signin = _set_cookie(form, SIGNIN_COOKIE).split(";")[0]
    client.cookies.clear()
    answer = await client.post(
        "/console/sign-in",
        data={"csrf_token": token.group(1), "api_key": key, "next": ""},
        headers={"Cookie": signin},
    )
    assert answer.status_code == 303, answer.text[:300]
    return _set_cookie(answer, SESSION_COOKIE)


async def test_the_cookie_is_secure_when_a_trusted_proxy_says_https(
    db_url: str, secret_key: str, conn: psycopg.Connection[Any]
) -> None:
    acme = _tenant(conn)
    settings = api_settings(secret_key, forwarded_allow_ips="10.0.0.1,192.0.2.0/24")
    app = create_app(settings, db_url)
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.50"}
    async with serving(app):
        for proxy in ("10.0.0.1", "192.0.2.77"):
            async with _from(app, proxy, **https) as behind_proxy:
                form = await behind_proxy.get("/console/sign-in")
                assert "Secure" in _set_cookie(form, SIGNIN_COOKIE)
                cookie = await _session_cookie(behind_proxy, acme.key)
                assert "Secure" in cookie and "HttpOnly" in cookie
        # anyone else claiming https is not believed
        async with _from(app, "198.51.100.20", **https) as direct:
            cookie = await _session_cookie(direct, acme.key)
            assert "Secure" not in cookie
        # a request that really is https is Secure whoever sends it
        transport = httpx.ASGITransport(app=app, client=("198.51.100.21", 1))
        async with httpx.AsyncClient(transport=transport, base_url="https://courier.test") as tls:
            cookie = await _session_cookie(tls, acme.key)
            assert "Secure" in cookie


async def test_a_trusted_proxys_forwarded_for_is_the_address_the_limit_counts(
    db_url: str, secret_key: str, conn: psycopg.Connection[Any]
) -> None:
    acme, globex = _tenant(conn), _tenant(conn, "globex")
    app = create_app(api_settings(secret_key, forwarded_allow_ips="10.0.0.1"), db_url)
    async with (
        serving(app),
        _from(app, "10.0.0.1", **{"X-Forwarded-For": "203.0.113.1"}) as attacker,
        _from(app, "10.0.0.1", **{"X-Forwarded-For": "203.0.113.2"}) as user,
        _from(app, "198.51.100.30", **{"X-Forwarded-For": "203.0.113.2"}) as spoofer,
    ):
        for _ in range(LIMIT):
            assert (await _sign_in(attacker, "ck_nope")).status_code == 401
        assert (await _sign_in(attacker, globex.key)).status_code == 429
        # the proxy's other clients are not locked out with the attacker
        assert (await _sign_in(user, globex.key)).status_code == 303
        # an untrusted sender's X-Forwarded-For is ignored: it counts as itself
        for _ in range(LIMIT):
            assert (await _sign_in(spoofer, "ck_nope")).status_code == 401
        assert (await _sign_in(spoofer, acme.key)).status_code == 429
        user.cookies.clear()
        assert (await _sign_in(user, acme.key)).status_code == 303
