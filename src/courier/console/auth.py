"""The console's sign-in, sessions and CSRF: who is signed in, and the routes that
change it.

    GET  /console/sign-in, POST /console/sign-in, POST /console/sign-out
    GET  /console/portal/{token}                 a one-time portal link: sign in, once

Sign-in takes an API key and sets a signed session cookie naming the key (courier.console.
session); every request re-checks that the key is live, and so does the live-update stream
while it runs. Failed sign-ins are limited per client address and per tenant (courier.
console.throttle). Every form carries a CSRF token, and every form field and query
parameter is checked (courier.console.inputs) before it reaches the database.
A portal link (POST /v1/portal-sessions) starts a session with a role and, optionally, a
set of destinations: a `viewer` reaches no write form or action (403), and a scoped
session sees nothing of other destinations, in pages, counts, charts and the stream.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from courier import portal
from courier.console.inputs import form_fields
from courier.console.operator import Branding, Operator
from courier.console.rendering import message, read_only, refused_form, render
from courier.console.session import (
    COOKIE_PATH,
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    SIGNIN_COOKIE,
    SIGNIN_MAX_AGE,
    Session,
    Signer,
)
from courier.console.throttle import SignInThrottle
from courier.store import console as store
from courier.store import portal as portal_store
from courier.tenancy import hash_key, parse_key
from courier.web.deps import ConnDep
from courier.web.state import request_state

router = APIRouter(prefix="/console", include_in_schema=False)

NEXT_MAX_CHARS = 2000  # the longest path kept to return to after sign-in
HOME = "/console/integrations"


def signer_of(request: Request) -> Signer | None:
    """The app's session signer, made on first use; None without COURIER_SECRET_KEY."""
    state = request_state(request)
    secret = state.settings.secret_key
    if secret is None:
        return None
    return state.own(Signer, lambda: Signer(secret.get_secret_value()))


async def current_operator(request: Request, conn: store.AsyncConn) -> Operator | None:
    signer = signer_of(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if signer is None or cookie is None:
        return None
    found = await live_session(signer, cookie, conn)
    if found is None:
        return None
    session, row = found
    scope = row.get("destination_ids")
    return Operator(
        session.tenant_id,
        session.key_id,
        row["tenant_name"],
        signer.csrf_token(cookie),
        role=row.get("role", "operator"),
        scope=None if scope is None else frozenset(scope),
        portal=session.portal,
        branding=Branding(row["display_name"], row["accent_color"], row["logo_url"]),
    )


async def live_session(
    signer: Signer, cookie: str, conn: store.AsyncConn
) -> tuple[Session, store.Row] | None:
    """The session a cookie names and its key (or portal link), while it is unexpired and
    the key is live."""
    session = signer.read_session(cookie)
    if session is None:
        return None
    if session.portal:
        row = await portal_store.live_session(conn, session.tenant_id, session.key_id)
    else:
        row = await store.session_key(conn, session.tenant_id, session.key_id)
    if row is None:  # revoked (or deleted) since sign-in
        return None
    return session, row


def _throttle(request: Request) -> SignInThrottle:
    state = request_state(request)
    per_minute = state.settings.console_sign_in_failures_per_minute
    return state.own(SignInThrottle, lambda: SignInThrottle(per_minute))


def _client_address(request: Request) -> str:
    """The client's address (a trusted proxy's X-Forwarded-For already applied)."""
    return request.client.host if request.client else "unknown"


def _safe_next(value: str | None) -> str:
    """Only a path inside the console is a place to go back to after sign-in."""
    if (
        value
        and len(value) <= NEXT_MAX_CHARS
        and value.isprintable()
        and value.startswith("/console/")
        and "\\" not in value
        and "//" not in value
    ):
        return value
    return HOME


def to_sign_in(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/console/sign-in?{urlencode({'next': here})}", status_code=303)


def _embedded(request: Request) -> bool:
    """Whether another site may frame the console (COURIER_CONSOLE_FRAME_ANCESTORS)."""
    return bool(request_state(request).settings.console_embedded)


def _cookie_args(request: Request, max_age: int) -> dict[str, Any]:
    if _embedded(request):
        # A cookie set inside a third-party frame is sent back only with SameSite=None,
        # which browsers accept only with Secure; every form still carries its CSRF token.
        # `_set_cookie` also marks it Partitioned.
        return {
            "max_age": max_age,
            "path": COOKIE_PATH,
            "httponly": True,
            "samesite": "none",
            "secure": True,
        }
    return {
        "max_age": max_age,
        "path": COOKIE_PATH,
        "httponly": True,
        "samesite": "strict",
        "secure": request.url.scheme == "https",
    }


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, **_cookie_args(request, max_age))
    if _embedded(request):
        # Partitioned (CHIPS) keys the cookie to the embedding site: browsers that block
        # third-party cookies keep it, and a session begun in one platform's frame is not
        # sent when another site frames the console. (Starlette writes the attribute only
        # on Python 3.14 and later, hence by hand.)
        header, cookie = response.raw_headers[-1]
        assert header == b"set-cookie"
        response.raw_headers[-1] = (header, cookie + b"; Partitioned")


def _delete_cookie(request: Request, response: Response, name: str) -> None:
    _set_cookie(request, response, name, "", 0)


async def read_form(request: Request) -> dict[str, str]:
    """A url-encoded form body (the body cap middleware bounds its size)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    return form_fields(await request.body())


def csrf_ok(request: Request, form: dict[str, str]) -> bool:
    signer = signer_of(request)
    return signer is not None and signer.check_csrf(
        request.cookies.get(SESSION_COOKIE), form.get("csrf_token")
    )


async def writer(request: Request, conn: store.AsyncConn) -> Operator | Response:
    """The signed-in operator who may change things, or the page that says why not."""
    operator = await current_operator(request, conn)
    if operator is None:
        return to_sign_in(request)
    if not operator.can_write:
        return read_only(operator)
    return operator


async def writer_form(
    request: Request, conn: store.AsyncConn
) -> tuple[Operator, dict[str, str]] | Response:
    """A writer and the form they posted, once its CSRF token holds; or the page that
    says why not."""
    found = await writer(request, conn)
    if isinstance(found, Response):
        return found
    form = await read_form(request)
    if not csrf_ok(request, form):
        return refused_form(found)
    return found, form


def _unconfigured() -> HTMLResponse:
    return message(
        "Console unavailable",
        "COURIER_SECRET_KEY is not configured on this server; the console needs it to sign "
        "sessions.",
        status=503,
    )


@router.get("/sign-in")
async def sign_in_page(request: Request, conn: ConnDep, next: str | None = None) -> Response:
    signer = signer_of(request)
    if signer is None:
        return _unconfigured()
    if await current_operator(request, conn) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _sign_in_form(request, signer, _safe_next(next), error=None, status=200)


def _sign_in_form(
    request: Request, signer: Signer, next_path: str, *, error: str | None, status: int
) -> HTMLResponse:
    nonce = signer.new_signin_nonce()
    response = render(
        "sign_in.html",
        status=status,
        csrf_token=signer.signin_token(nonce),
        next_path=next_path,
        error=error,
    )
    _set_cookie(request, response, SIGNIN_COOKIE, nonce, SIGNIN_MAX_AGE)
    return response


@router.post("/sign-in")
async def sign_in(request: Request, conn: ConnDep) -> Response:
    signer = signer_of(request)
    if signer is None:
        return _unconfigured()
    form = await read_form(request)
    next_path = _safe_next(form.get("next"))
    if not signer.check_signin(request.cookies.get(SIGNIN_COOKIE), form.get("csrf_token")):
        return _sign_in_form(
            request, signer, next_path, error="The form expired; please try again.", status=403
        )
    key = form.get("api_key", "").strip()
    tenant_id = parse_key(key)
    throttle, address = _throttle(request), _client_address(request)
    wait = throttle.retry_after(address, tenant_id)
    if wait is not None:
        refused = message(
            "Too many attempts",
            f"Too many failed sign-ins; try again in {wait} seconds.",
            status=429,
        )
        refused.headers["Retry-After"] = str(wait)
        return refused
    row = None
    if tenant_id is not None:
        digest = hash_key(key)
        row = await store.key_for_sign_in(conn, tenant_id, digest)
        if row is not None and not hmac.compare_digest(bytes(row["key_hash"]), digest):
            row = None
    if row is None:
        throttle.failed(address, tenant_id)
        return _sign_in_form(
            request, signer, next_path, error="That API key is not valid.", status=401
        )
    session = Session(row["tenant_id"], row["key_id"], int(datetime.now(UTC).timestamp()))
    response = RedirectResponse(next_path, status_code=303)
    _set_cookie(request, response, SESSION_COOKIE, signer.session_cookie(session), SESSION_MAX_AGE)
    _delete_cookie(request, response, SIGNIN_COOKIE)
    return response


@router.get("/portal/{token}")
async def open_portal_link(request: Request, conn: ConnDep, token: str) -> Response:
    """A one-time link: sign its holder in as the link's tenant, role and scope, once."""
    signer = signer_of(request)
    if signer is None:
        return _unconfigured()
    digest = portal.token_hash(token) if portal.well_formed(token) else None
    row = await portal_store.redeem(conn, digest) if digest is not None else None
    if row is None:
        state = await portal_store.token_state(conn, digest) if digest is not None else None
        if state is None:
            return message(
                "Link not valid",
                "This sign-in link is not valid. Ask for a new link.",
                status=404,
            )
        if state.get("revoked_at") is not None:
            return message(
                "Link revoked", "This sign-in link was revoked. Ask for a new link.", status=410
            )
        used = state["redeemed_at"] is not None
        return message(
            "Link already used" if used else "Link expired",
            (
                "This sign-in link has already been used; each link signs in once. "
                if used
                else "This sign-in link has expired. "
            )
            + "Ask for a new link.",
            status=410,
        )
    now = int(datetime.now(UTC).timestamp())
    session = Session(row["tenant_id"], row["id"], now, portal=True)
    response = RedirectResponse(HOME, status_code=303)
    _set_cookie(request, response, SESSION_COOKIE, signer.session_cookie(session), SESSION_MAX_AGE)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, conn: ConnDep) -> Response:
    operator = await current_operator(request, conn)
    form = await read_form(request)
    if operator is not None and not csrf_ok(request, form):
        return refused_form(operator)
    response = RedirectResponse("/console/sign-in", status_code=303)
    _delete_cookie(request, response, SESSION_COOKIE)
    return response
