"""/console: the operator console's pages, server-rendered and readable without JavaScript.

    GET  /console/sign-in, POST /console/sign-in, POST /console/sign-out
    GET  /console/integrations                   destinations and their health
    GET  /console/integrations/{destination id}  one destination's deliveries, by state
    GET  /console/deliveries/{delivery id}       the attempt timeline; POST …/replay
    GET  /console/dead-letters                   by destination and time; replay one or a batch
    GET  /console/dead-letters/replay            the batch's dry-run count, to confirm; POST runs it
    GET  /console/events                         the tenant's lifecycle events (SSE, cookie auth)
    GET  /console/event-types                    the event-type catalog, with examples
    GET  /console/portal/{token}                 a one-time portal link: sign in, once

Sign-in takes an API key and sets a signed session cookie naming the key (courier.console.
session); every request re-checks that the key is live, and so does the live-update stream
while it runs. Failed sign-ins are limited per client address and per tenant (courier.
console.throttle). Every form carries a CSRF token, and every form field and query
parameter is checked (courier.console.inputs) before it reaches the database.
A portal link (POST /v1/portal-sessions) starts a session with a role and, optionally, a
set of destinations: a `viewer` reaches no write form or action (403), and a scoped
session sees nothing of other destinations, in pages, counts, charts and the stream.
Every read is scoped by the session's tenant, so another tenant's id answers 404 exactly
as a missing one. Templates autoescape everything; a Content-Security-Policy allows only
the console's own script and stylesheet.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from courier import kinds, portal, replay
from courier.api import catalog_examples
from courier.console.chart import attempt_chart
from courier.console.explain import (
    attempt_medium,
    explain,
    human_duration,
    human_ms,
    reason_sentence,
)
from courier.console.health import STATES, build_health, totals
from courier.console.inputs import (
    BadField,
    choice_field,
    form_fields,
    text_field,
    time_field,
    token_field,
    uuid_field,
)
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
from courier.destination_options import shown_options
from courier.store import console as store
from courier.store import portal as portal_store
from courier.store import resources
from courier.store.feed import LifecycleEvent
from courier.tenancy import hash_key, parse_key
from courier.web.deps import POOL_TIMEOUT, ConnDep
from courier.web.event_stream import (
    SLOTS_RETRY_AFTER_S,
    EventStreamResponse,
    StreamConfig,
    StreamSlots,
    event_stream,
)
from courier.web.metrics import app_metrics
from courier.web.pagination import split_page

router = APIRouter(prefix="/console", include_in_schema=False)

PAGE_SIZE = 50  # rows per list page
CATALOG_EXAMPLES_SHOWN = 200  # catalog types a destination's page looks through
HEALTH_WINDOW = timedelta(hours=24)  # the success ratio's window
ATTEMPTS_SHOWN = 1000  # every attempt of a delivery (max_attempts is at most 100)
BATCH_REPLAY_LIMIT = 10_000  # deliveries replayed per batch call
REPLAYABLE = ("dead_lettered", "failed")
NEXT_MAX_CHARS = 2000  # the longest path kept to return to after sign-in
HOME = "/console/integrations"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True, slots=True)
class Branding:
    """What the tenant set for the console header (each may be None)."""

    display_name: str | None = None
    accent_color: str | None = None  # #rrggbb, checked by the API and the table
    logo_url: str | None = None  # https only


@dataclass(frozen=True, slots=True)
class Operator:
    """A signed-in console user: the tenant, and the API key or portal link that signed in,
    with its role and, for a scoped portal link, the destinations it may see."""

    tenant_id: uuid.UUID
    key_id: uuid.UUID  # the API key, or the portal session when `portal`
    tenant_name: str
    csrf: str  # the token this session's forms carry
    role: str = "operator"
    scope: frozenset[uuid.UUID] | None = None  # None: every destination of the tenant
    portal: bool = False
    branding: Branding = Branding()

    @property
    def actor(self) -> str:
        """How audit records name console actions (the key or link id, never a secret)."""
        return f"portal:{self.key_id}" if self.portal else f"console:{self.key_id}"

    @property
    def can_write(self) -> bool:
        return self.role == "operator"

    def sees(self, destination_id: uuid.UUID | None) -> bool:
        """Whether this session may see anything of the destination (None: no filter)."""
        return self.scope is None or destination_id is None or destination_id in self.scope


# -- rendering ---------------------------------------------------------------------------


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _relative(value: datetime | None) -> str:
    if value is None:
        return ""
    delta = value - datetime.now(UTC)
    if abs(delta.total_seconds()) < 1:
        return "now"
    words = human_duration(abs(delta))
    return f"in {words}" if delta.total_seconds() > 0 else f"{words} ago"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


@cache
def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("courier.console", "templates"),
        autoescape=True,  # every value is escaped: receivers and payloads write some of them
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=_when, relative=_relative, ratio=_ratio, ms=human_ms, label=_label, short=_short
    )
    env.globals.update(STATES=STATES, urlencode=urlencode, attempt_medium=attempt_medium)
    return env


def _label(state: str | None) -> str:
    return (state or "").replace("_", " ")


def _short(value: uuid.UUID | str) -> str:
    return str(value)[-12:]


def render(
    template: str, *, status: int = 200, operator: Operator | None = None, **context: Any
) -> HTMLResponse:
    context.setdefault("nav", None)
    html = _templates().get_template(template).render(operator=operator, **context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def message(
    title: str, text: str, *, status: int, operator: Operator | None = None
) -> HTMLResponse:
    return render("message.html", status=status, operator=operator, title=title, text=text)


def not_found(operator: Operator | None) -> HTMLResponse:
    return message("Not found", "There is nothing here.", status=404, operator=operator)


async def bad_field(request: Request, exc: Exception) -> Response:
    """A form field or query parameter the console cannot use: a 422 page naming it."""
    assert isinstance(exc, BadField)
    return message(
        f"Invalid {exc.field}",
        f"The field {exc.field} {exc.problem}. Go back, correct it and try again.",
        status=422,
    )


# -- sessions ----------------------------------------------------------------------------


def _signer(request: Request) -> Signer | None:
    signer: Signer | None = getattr(request.app.state, "console_signer", None)
    if signer is None:
        secret = request.app.state.settings.secret_key
        if secret is None:
            return None
        signer = Signer(secret.get_secret_value())
        request.app.state.console_signer = signer
    return signer


async def current_operator(request: Request, conn: store.AsyncConn) -> Operator | None:
    signer = _signer(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if signer is None or cookie is None:
        return None
    found = await _live_session(signer, cookie, conn)
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


async def _live_session(
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
    throttle: SignInThrottle | None = getattr(request.app.state, "console_throttle", None)
    if throttle is None:
        per_minute = request.app.state.settings.console_sign_in_failures_per_minute
        throttle = SignInThrottle(per_minute)
        request.app.state.console_throttle = throttle
    return throttle


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
    return bool(request.app.state.settings.console_embedded)


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


async def _form(request: Request) -> dict[str, str]:
    """A url-encoded form body (the body cap middleware bounds its size)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    return form_fields(await request.body())


def csrf_ok(request: Request, form: dict[str, str]) -> bool:
    signer = _signer(request)
    return signer is not None and signer.check_csrf(
        request.cookies.get(SESSION_COOKIE), form.get("csrf_token")
    )


def read_only(operator: Operator) -> HTMLResponse:
    return message(
        "Read-only access",
        "This session may look but not change anything: replays and other actions need "
        "operator access.",
        status=403,
        operator=operator,
    )


def refused_form(operator: Operator | None) -> HTMLResponse:
    return message(
        "Form expired",
        "This form is no longer valid (its security token did not match). "
        "Go back, reload the page and try again.",
        status=403,
        operator=operator,
    )


def _unconfigured() -> HTMLResponse:
    return message(
        "Console unavailable",
        "COURIER_SECRET_KEY is not configured on this server; the console needs it to sign "
        "sessions.",
        status=503,
    )


@router.get("")
async def console_root() -> RedirectResponse:
    return RedirectResponse(HOME, status_code=303)


@router.get("/sign-in")
async def sign_in_page(request: Request, conn: ConnDep, next: str | None = None) -> Response:
    signer = _signer(request)
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
    signer = _signer(request)
    if signer is None:
        return _unconfigured()
    form = await _form(request)
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
    signer = _signer(request)
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
    form = await _form(request)
    if operator is not None and not csrf_ok(request, form):
        return refused_form(operator)
    response = RedirectResponse("/console/sign-in", status_code=303)
    _delete_cookie(request, response, SESSION_COOKIE)
    return response


# -- pages -------------------------------------------------------------------------------


def path_id(value: str) -> uuid.UUID | None:
    """An id in the path; a malformed one names nothing (404), like an unknown one."""
    try:
        return uuid_field("id", value)
    except BadField:
        return None


def _page(rows: list[store.Row]) -> tuple[list[store.Row], uuid.UUID | None]:
    """The rows to show and the id to continue after (None on the last page)."""
    shown, last = split_page(rows, PAGE_SIZE)
    return shown, (last["id"] if last is not None else None)


@router.get("/integrations")
async def integrations(request: Request, conn: ConnDep) -> Response:
    operator = await current_operator(request, conn)
    if operator is None:
        return to_sign_in(request)
    now = datetime.now(UTC)
    scope = operator.scope
    destinations = await store.destinations(conn, operator.tenant_id, scope)
    healths = build_health(
        destinations,
        *await store.health_rows(conn, operator.tenant_id, None, now - HEALTH_WINDOW, scope),
    )
    chart = attempt_chart(
        await store.attempts_by_hour(conn, operator.tenant_id, None, now, scope), now
    )
    return render(
        "integrations.html",
        operator=operator,
        nav="integrations",
        healths=healths,
        totals=totals(healths),
        chart=chart,
    )


@router.get("/integrations/{destination_id}")
async def integration(
    request: Request,
    conn: ConnDep,
    destination_id: str,
    state: str | None = None,
    after: str | None = None,
) -> Response:
    operator = await current_operator(request, conn)
    if operator is None:
        return to_sign_in(request)
    dest_id = path_id(destination_id)
    if dest_id is not None and not operator.sees(dest_id):
        dest_id = None  # outside this session's scope: as if it did not exist
    destination = await store.destination(conn, operator.tenant_id, dest_id) if dest_id else None
    if dest_id is None or destination is None:
        return not_found(operator)
    state = choice_field("state", state, STATES)
    after_id = uuid_field("after", after)
    now = datetime.now(UTC)
    (health,) = build_health(
        [destination],
        *await store.health_rows(conn, operator.tenant_id, dest_id, now - HEALTH_WINDOW),
    )
    rows, next_after = _page(
        await store.list_deliveries(
            conn,
            operator.tenant_id,
            dest_id,
            state=state,
            after=after_id,
            limit=PAGE_SIZE,
        )
    )
    chart = attempt_chart(await store.attempts_by_hour(conn, operator.tenant_id, dest_id, now), now)
    catalog = await portal_store.list_event_types(
        conn, operator.tenant_id, after=None, limit=CATALOG_EXAMPLES_SHOWN
    )
    examples = [
        (row, catalog_examples.examples_of(row))
        for row in catalog[:CATALOG_EXAMPLES_SHOWN]
        if catalog_examples.subscribed(destination["event_types"], row["name"])
    ]
    return render(
        "destination.html",
        examples=[(row, found) for row, found in examples if found or row["schema"] is not None],
        pretty=_pretty,
        operator=operator,
        nav="integrations",
        health=health,
        destination=destination,
        config=kinds.shown_config(destination["config"] or {}, destination["secret_fields"]),
        settings=shown_options(destination["options"], destination["secret_paths"]),
        chart=chart,
        state=state,
        deliveries=rows,
        next_after=next_after,
        paged=after is not None,
    )


@router.get("/deliveries/{delivery_id}")
async def delivery_page(request: Request, conn: ConnDep, delivery_id: str) -> Response:
    operator = await current_operator(request, conn)
    if operator is None:
        return to_sign_in(request)
    the_id = path_id(delivery_id)
    row = await store.delivery(conn, operator.tenant_id, the_id) if the_id else None
    if the_id is None or row is None or not operator.sees(row["destination_id"]):
        return not_found(operator)
    attempts = await resources.list_attempts(
        conn, operator.tenant_id, the_id, after=0, limit=ATTEMPTS_SHOWN
    )
    return render(
        "delivery.html",
        operator=operator,
        nav="integrations",
        delivery=row,
        attempts=attempts,
        explanation=explain(row, attempts),
        reason=reason_sentence(row),
        replays=await store.replays_of(conn, operator.tenant_id, the_id),
        ticket=await resources.get_delivery_ticket(conn, operator.tenant_id, the_id),
        audit=await store.delivery_audit(conn, operator.tenant_id, the_id),
        replayable=row["state"] in REPLAYABLE and operator.can_write,
        replay_token=secrets.token_urlsafe(16),
        waiting=row["state"] in ("pending", "retry_scheduled"),
    )


@router.post("/deliveries/{delivery_id}/replay")
async def replay_one(request: Request, conn: ConnDep, delivery_id: str) -> Response:
    operator = await current_operator(request, conn)
    if operator is None:
        return to_sign_in(request)
    if not operator.can_write:
        return read_only(operator)
    form = await _form(request)
    if not csrf_ok(request, form):
        return refused_form(operator)
    the_id = path_id(delivery_id)
    if the_id is not None and operator.scope is not None:
        row = await store.delivery(conn, operator.tenant_id, the_id)
        if row is None or not operator.sees(row["destination_id"]):
            the_id = None
    if the_id is None:
        return not_found(operator)
    token = token_field("replay_token", form.get("replay_token"))
    try:
        async with conn.transaction():
            result = await replay.replay_delivery(
                conn,
                operator.tenant_id,
                the_id,
                actor=operator.actor,
                idempotency_key=f"console:{token}" if token else None,
            )
    except replay.NotFound:
        return not_found(operator)
    except (replay.NotReplayable, replay.KeyReused) as exc:
        return message("Cannot replay", str(exc), status=409, operator=operator)
    return RedirectResponse(f"/console/deliveries/{result.delivery['id']}", status_code=303)


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    destination_id: uuid.UUID | None
    since: datetime | None
    until: datetime | None

    @classmethod
    def read(cls, values: dict[str, str]) -> DeadLetterFilter:
        return cls(
            uuid_field("destination_id", values.get("destination_id")),
            time_field("since", values.get("since")),
            time_field("until", values.get("until")),
        )

    def query(self) -> dict[str, str]:
        """As query parameters (datetime-local form: UTC, to the minute or second)."""
        out: dict[str, str] = {}
        if self.destination_id:
            out["destination_id"] = str(self.destination_id)
        if self.since:
            out["since"] = self.since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        if self.until:
            out["until"] = self.until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return out


@router.get("/dead-letters")
async def dead_letters(request: Request, conn: ConnDep) -> Response:
    operator = await current_operator(request, conn)
    if operator is None:
        return to_sign_in(request)
    params = dict(request.query_params)
    filters = DeadLetterFilter.read(params)
    if not operator.sees(filters.destination_id):
        return not_found(operator)
    rows, next_after = _page(
        await store.dead_letters(
            conn,
            operator.tenant_id,
            destination_id=filters.destination_id,
            since=filters.since,
            until=filters.until,
            after=uuid_field("after", params.get("after")),
            limit=PAGE_SIZE,
            scope=operator.scope,
        )
    )
    return render(
        "dead_letters.html",
        operator=operator,
        nav="dead-letters",
        filters=filters,
        destinations=await store.destinations(conn, operator.tenant_id, operator.scope),
        rows=rows,
        next_after=next_after,
        paged="after" in params,
        replay_token=secrets.token_urlsafe(16),
        explain_reason=reason_sentence,
    )


async def _batch(
    conn: store.AsyncConn, operator: Operator, filters: DeadLetterFilter, *, dry_run: bool
) -> tuple[int, list[uuid.UUID]]:
    """Replay (or count, on a dry run) every dead letter the filter matches, of the
    destinations this session sees."""
    count = 0
    ids: list[uuid.UUID] = []
    targets: list[uuid.UUID | None]
    if filters.destination_id is not None:
        targets = [filters.destination_id] if operator.sees(filters.destination_id) else []
    elif operator.scope is not None:
        targets = list(sorted(operator.scope))
    else:
        targets = [None]
    for destination_id in targets:
        cursor = None
        while True:
            result = await replay.replay_dead_letters(
                conn,
                operator.tenant_id,
                actor=operator.actor,
                destination_id=destination_id,
                since=filters.since,
                until=filters.until,
                dry_run=dry_run,
                limit=BATCH_REPLAY_LIMIT,
                cursor=cursor,
            )
            count += int(result.count)
            ids.extend(result.delivery_ids or ())
            cursor = result.next_cursor
            if not cursor:
                break
    return count, ids


@router.get("/dead-letters/replay")
async def confirm_batch_replay(request: Request, conn: ConnDep) -> Response:
    operator = await current_operator(request, conn)
    if operator is None:
        return to_sign_in(request)
    if not operator.can_write:
        return read_only(operator)
    filters = DeadLetterFilter.read(dict(request.query_params))
    if not operator.sees(filters.destination_id):
        return not_found(operator)
    if filters.until is None:
        # Freeze the set being confirmed: what is dead-lettered after this page was shown
        # is not replayed by confirming it.
        until = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        filters = dataclasses.replace(filters, until=until)
    count, _ = await _batch(conn, operator, filters, dry_run=True)
    destination = (
        await store.destination(conn, operator.tenant_id, filters.destination_id)
        if filters.destination_id
        else None
    )
    return render(
        "replay_confirm.html",
        operator=operator,
        nav="dead-letters",
        filters=filters,
        destination=destination,
        count=count,
    )


@router.post("/dead-letters/replay")
async def batch_replay(request: Request, conn: ConnDep) -> Response:
    operator = await current_operator(request, conn)
    if operator is None:
        return to_sign_in(request)
    if not operator.can_write:
        return read_only(operator)
    form = await _form(request)
    if not csrf_ok(request, form):
        return refused_form(operator)
    filters = DeadLetterFilter.read(form)
    if not operator.sees(filters.destination_id):
        return not_found(operator)
    async with conn.transaction():
        count, ids = await _batch(conn, operator, filters, dry_run=False)
    return render(
        "replay_done.html",
        operator=operator,
        nav="dead-letters",
        count=count,
        delivery_ids=ids[:PAGE_SIZE],
        filters=filters,
    )


EVENT_TYPE_MAX_CHARS = 255  # the longest event type name


@router.get("/event-types")
async def event_types_page(request: Request, conn: ConnDep, after: str | None = None) -> Response:
    """The tenant's event-type catalog: names, descriptions, example payloads, schemas."""
    operator = await current_operator(request, conn)
    if operator is None:
        return to_sign_in(request)
    after = text_field("after", after, EVENT_TYPE_MAX_CHARS)
    rows = await portal_store.list_event_types(
        conn, operator.tenant_id, after=after, limit=PAGE_SIZE
    )
    shown = rows[:PAGE_SIZE]
    return render(
        "event_types.html",
        operator=operator,
        nav="event-types",
        types=shown,
        next_after=shown[-1]["name"] if len(rows) > PAGE_SIZE else None,
        pretty=_pretty,
        examples_of=catalog_examples.examples_of,
    )


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


@router.get("/brand.css")
async def brand_css(request: Request, conn: ConnDep) -> Response:
    """The tenant's accent colour as a stylesheet (the CSP allows no inline style)."""
    operator = await current_operator(request, conn)
    colour = operator.branding.accent_color if operator is not None else None
    body = ""
    if colour is not None and re.fullmatch(r"#[0-9a-f]{6}", colour):
        body = (
            f":root {{ --accent: {colour}; }}\n"
            f"header.top {{ border-bottom: 4px solid {colour}; }}\n"
            f"button[type=submit], a.button {{ border-color: {colour}; }}\n"
        )
    return Response(body, media_type="text/css", headers={"Cache-Control": "no-store"})


# -- live updates ------------------------------------------------------------------------


@router.get("/events")
async def console_events(request: Request) -> Response:
    """The tenant's lifecycle events from now on, as SSE; the pages re-render on each."""
    hub = getattr(request.app.state, "feed_hub", None)
    signer = _signer(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if hub is None or signer is None:
        return Response(status_code=503)
    async with request.app.state.pool.connection(timeout=POOL_TIMEOUT) as conn:
        operator = await current_operator(request, conn)
        if operator is None or cookie is None:
            return Response(status_code=401)
        head = await store.feed_head(conn, operator.tenant_id)
    slots: StreamSlots = request.app.state.stream_slots
    if not slots.acquire(operator.tenant_id):
        return Response(status_code=429, headers={"Retry-After": str(SLOTS_RETRY_AFTER_S)})
    config: StreamConfig = request.app.state.event_stream_config

    async def still_signed_in(conn: store.AsyncConn) -> bool:
        # The session may expire or its key be revoked while the stream runs.
        return await _live_session(signer, cookie, conn) is not None

    def visible(event: LifecycleEvent) -> bool:
        return operator.sees(event.destination_id)

    body = event_stream(
        pool=request.app.state.pool,
        hub=hub,
        tenant_id=operator.tenant_id,
        after=head,
        config=config,
        authorized=still_signed_in,
        visible=visible if operator.scope is not None else None,
    )
    return EventStreamResponse(
        body,
        send_timeout_s=config.send_timeout_s,
        metrics=app_metrics(request.app),
        on_close=lambda: slots.release(operator.tenant_id),
    )
