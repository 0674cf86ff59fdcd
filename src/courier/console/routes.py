"""/console: the operator console's pages, server-rendered and readable without JavaScript.

    GET  /console/sign-in, POST /console/sign-in, POST /console/sign-out
    GET  /console/integrations                   destinations and their health
    GET  /console/integrations/{destination id}  one destination's deliveries, by state
    GET  /console/deliveries/{delivery id}       the attempt timeline; POST …/replay
    GET  /console/dead-letters                   by destination and time; replay one or a batch
    GET  /console/dead-letters/replay            the batch's dry-run count, to confirm; POST runs it
    GET  /console/events                         the tenant's lifecycle events (SSE, cookie auth)

Sign-in takes an API key and sets a signed session cookie naming the key (courier.console.
session); every request re-checks that the key is live. Every form carries a CSRF token.
Every read is scoped by the session's tenant, so another tenant's id answers 404 exactly
as a missing one. Templates autoescape everything; a Content-Security-Policy allows only
the console's own script and stylesheet.
"""

from __future__ import annotations

import dataclasses
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any
from urllib.parse import parse_qs, urlencode

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from courier import replay
from courier.api.deps import POOL_TIMEOUT, ConnDep
from courier.api.event_stream import EventStreamResponse, StreamConfig, event_stream
from courier.api.pagination import split_page
from courier.api.routes.metrics import app_metrics
from courier.console.chart import attempt_chart
from courier.console.explain import explain, human_duration, human_ms, reason_sentence
from courier.console.health import STATES, build_health, totals
from courier.console.session import (
    COOKIE_PATH,
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    SIGNIN_COOKIE,
    SIGNIN_MAX_AGE,
    Session,
    Signer,
)
from courier.store import console as store
from courier.store import resources
from courier.tenancy import hash_key, parse_key

router = APIRouter(prefix="/console", include_in_schema=False)

PAGE_SIZE = 50  # rows per list page
HEALTH_WINDOW = timedelta(hours=24)  # the success ratio's window
ATTEMPTS_SHOWN = 1000  # every attempt of a delivery (max_attempts is at most 100)
BATCH_REPLAY_LIMIT = 10_000  # deliveries replayed per batch call
REPLAYABLE = ("dead_lettered", "failed")
HOME = "/console/integrations"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True, slots=True)
class Operator:
    """A signed-in console user: the tenant and the API key that signed in."""

    tenant_id: uuid.UUID
    key_id: uuid.UUID
    tenant_name: str
    csrf: str  # the token this session's forms carry

    @property
    def actor(self) -> str:
        """How audit records name console actions (the key id, never the key)."""
        return f"console:{self.key_id}"


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
    env.globals.update(STATES=STATES, urlencode=urlencode)
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


async def _operator(request: Request, conn: store.AsyncConn) -> Operator | None:
    signer = _signer(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    session = signer.read_session(cookie) if signer else None
    if signer is None or session is None or cookie is None:
        return None
    row = await store.session_key(conn, session.tenant_id, session.key_id)
    if row is None:  # revoked (or deleted) since sign-in
        return None
    return Operator(
        session.tenant_id, session.key_id, row["tenant_name"], signer.csrf_token(cookie)
    )


def _safe_next(value: str | None) -> str:
    """Only a path inside the console is a place to go back to after sign-in."""
    if value and value.startswith("/console/") and "\\" not in value and "//" not in value:
        return value
    return HOME


def _to_sign_in(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/console/sign-in?{urlencode({'next': here})}", status_code=303)


def _cookie_args(request: Request, max_age: int) -> dict[str, Any]:
    return {
        "max_age": max_age,
        "path": COOKIE_PATH,
        "httponly": True,
        "samesite": "strict",
        "secure": request.url.scheme == "https",
    }


async def _form(request: Request) -> dict[str, str]:
    """A url-encoded form body (the body cap middleware bounds its size)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    body = (await request.body()).decode("utf-8", errors="replace")
    fields = parse_qs(body, keep_blank_values=True, max_num_fields=50)
    return {name: values[0] for name, values in fields.items()}


def _csrf_ok(request: Request, form: dict[str, str]) -> bool:
    signer = _signer(request)
    return signer is not None and signer.check_csrf(
        request.cookies.get(SESSION_COOKIE), form.get("csrf_token")
    )


def _forbidden(operator: Operator | None) -> HTMLResponse:
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
    if await _operator(request, conn) is not None:
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
    response.set_cookie(SIGNIN_COOKIE, nonce, **_cookie_args(request, SIGNIN_MAX_AGE))
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
    row = None
    if tenant_id is not None:
        digest = hash_key(key)
        row = await store.key_for_sign_in(conn, tenant_id, digest)
        if row is not None and not hmac.compare_digest(bytes(row["key_hash"]), digest):
            row = None
    if row is None:
        return _sign_in_form(
            request, signer, next_path, error="That API key is not valid.", status=401
        )
    session = Session(row["tenant_id"], row["key_id"], int(datetime.now(UTC).timestamp()))
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, signer.session_cookie(session), **_cookie_args(request, SESSION_MAX_AGE)
    )
    response.delete_cookie(SIGNIN_COOKIE, path=COOKIE_PATH)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, conn: ConnDep) -> Response:
    operator = await _operator(request, conn)
    form = await _form(request)
    if operator is not None and not _csrf_ok(request, form):
        return _forbidden(operator)
    response = RedirectResponse("/console/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response


# -- pages -------------------------------------------------------------------------------


def _uuid(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _time(value: str | None) -> datetime | None:
    """A filter time: ISO 8601; one without a zone (an HTML datetime-local) is UTC."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _page(rows: list[store.Row]) -> tuple[list[store.Row], uuid.UUID | None]:
    """The rows to show and the id to continue after (None on the last page)."""
    shown, last = split_page(rows, PAGE_SIZE)
    return shown, (last["id"] if last is not None else None)


@router.get("/integrations")
async def integrations(request: Request, conn: ConnDep) -> Response:
    operator = await _operator(request, conn)
    if operator is None:
        return _to_sign_in(request)
    now = datetime.now(UTC)
    destinations = await store.destinations(conn, operator.tenant_id)
    healths = build_health(
        destinations, *await store.health_rows(conn, operator.tenant_id, None, now - HEALTH_WINDOW)
    )
    chart = attempt_chart(await store.attempts_by_hour(conn, operator.tenant_id, None, now), now)
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
    operator = await _operator(request, conn)
    if operator is None:
        return _to_sign_in(request)
    dest_id = _uuid(destination_id)
    destination = await store.destination(conn, operator.tenant_id, dest_id) if dest_id else None
    if dest_id is None or destination is None:
        return not_found(operator)
    state = state if state in STATES else None
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
            after=_uuid(after),
            limit=PAGE_SIZE,
        )
    )
    chart = attempt_chart(await store.attempts_by_hour(conn, operator.tenant_id, dest_id, now), now)
    return render(
        "destination.html",
        operator=operator,
        nav="integrations",
        health=health,
        destination=destination,
        chart=chart,
        state=state,
        deliveries=rows,
        next_after=next_after,
        paged=after is not None,
    )


@router.get("/deliveries/{delivery_id}")
async def delivery_page(request: Request, conn: ConnDep, delivery_id: str) -> Response:
    operator = await _operator(request, conn)
    if operator is None:
        return _to_sign_in(request)
    the_id = _uuid(delivery_id)
    row = await store.delivery(conn, operator.tenant_id, the_id) if the_id else None
    if the_id is None or row is None:
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
        audit=await store.delivery_audit(conn, operator.tenant_id, the_id),
        replayable=row["state"] in REPLAYABLE,
        replay_token=secrets.token_urlsafe(16),
        waiting=row["state"] in ("pending", "retry_scheduled"),
    )


@router.post("/deliveries/{delivery_id}/replay")
async def replay_one(request: Request, conn: ConnDep, delivery_id: str) -> Response:
    operator = await _operator(request, conn)
    if operator is None:
        return _to_sign_in(request)
    form = await _form(request)
    if not _csrf_ok(request, form):
        return _forbidden(operator)
    the_id = _uuid(delivery_id)
    if the_id is None:
        return not_found(operator)
    token = form.get("replay_token", "")[:64]
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
            _uuid(values.get("destination_id")),
            _time(values.get("since")),
            _time(values.get("until")),
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
    operator = await _operator(request, conn)
    if operator is None:
        return _to_sign_in(request)
    params = dict(request.query_params)
    filters = DeadLetterFilter.read(params)
    rows, next_after = _page(
        await store.dead_letters(
            conn,
            operator.tenant_id,
            destination_id=filters.destination_id,
            since=filters.since,
            until=filters.until,
            after=_uuid(params.get("after")),
            limit=PAGE_SIZE,
        )
    )
    return render(
        "dead_letters.html",
        operator=operator,
        nav="dead-letters",
        filters=filters,
        destinations=await store.destinations(conn, operator.tenant_id),
        rows=rows,
        next_after=next_after,
        paged="after" in params,
        replay_token=secrets.token_urlsafe(16),
        explain_reason=reason_sentence,
    )


async def _batch(
    conn: store.AsyncConn, operator: Operator, filters: DeadLetterFilter, *, dry_run: bool
) -> tuple[int, list[uuid.UUID]]:
    """Replay (or count, on a dry run) every dead letter the filter matches."""
    count, cursor = 0, None
    ids: list[uuid.UUID] = []
    while True:
        result = await replay.replay_dead_letters(
            conn,
            operator.tenant_id,
            actor=operator.actor,
            destination_id=filters.destination_id,
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
            return count, ids


@router.get("/dead-letters/replay")
async def confirm_batch_replay(request: Request, conn: ConnDep) -> Response:
    operator = await _operator(request, conn)
    if operator is None:
        return _to_sign_in(request)
    filters = DeadLetterFilter.read(dict(request.query_params))
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
    operator = await _operator(request, conn)
    if operator is None:
        return _to_sign_in(request)
    form = await _form(request)
    if not _csrf_ok(request, form):
        return _forbidden(operator)
    filters = DeadLetterFilter.read(form)
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


# -- live updates ------------------------------------------------------------------------


@router.get("/events")
async def console_events(request: Request) -> Response:
    """The tenant's lifecycle events from now on, as SSE; the pages re-render on each."""
    hub = getattr(request.app.state, "feed_hub", None)
    if hub is None:
        return Response(status_code=503)
    async with request.app.state.pool.connection(timeout=POOL_TIMEOUT) as conn:
        operator = await _operator(request, conn)
        if operator is None:
            return Response(status_code=401)
        head = await store.feed_head(conn, operator.tenant_id)
    config: StreamConfig = request.app.state.event_stream_config
    body = event_stream(
        pool=request.app.state.pool,
        hub=hub,
        tenant_id=operator.tenant_id,
        after=head,
        config=config,
    )
    return EventStreamResponse(
        body, send_timeout_s=config.send_timeout_s, metrics=app_metrics(request.app)
    )
