"""/console destination self-service: what an `operator` (an API-key session, or a portal
link with that role) may change; a `viewer` gets 403 on every route here, GET or POST.

    GET  /console/destinations/new                      the form; POST /console/destinations creates
    GET  /console/integrations/{id}/edit                the form; POST saves it
    POST /console/integrations/{id}/enable | /disable
    POST /console/integrations/{id}/rotate-secret       the new secret, shown once
    GET  /console/integrations/{id}/delete              asks to confirm; POST deletes

The forms set what the API's POST and PATCH /v1/destinations take (name, URL, event
types from the catalog, retry policy, timeout, and the delivery options of
courier.console.option_form: filter, payload format, response bodies, headers,
authentication, TLS), checked by the same models and written by the same code
(courier.web.destination_writes), so every change is audited as through the API, with
the console's actor. A refusal shows the form again, the message beside the field it
names, with nothing stored and no secret in it. Send-test sends the `courier.test` ping,
or a catalog type's example payload the operator picked (courier.web.catalog_examples).
A scoped portal session reaches only its own destinations (another answers 404, exactly
as a missing one); one it creates joins its scope. Every POST carries the session's CSRF token.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from courier import destination_defaults as defaults
from courier import ping
from courier.console import option_form
from courier.console.auth import csrf_ok, writer
from courier.console.inputs import BadField, form_lists, int_field, path_id, text_field
from courier.console.operator import Operator
from courier.console.rendering import not_found, refused_form, render
from courier.crypto import SecretBox
from courier.store import portal as portal_store
from courier.store import resources
from courier.store.rows import AsyncConn, Row
from courier.web import catalog_examples, destination_writes
from courier.web.deps import ConnDep, secret_box_of
from courier.web.destination_input import DestinationCreate, DestinationUpdate
from courier.web.problems import ProblemError
from courier.web.state import request_state

router = APIRouter(prefix="/console", include_in_schema=False)

NAME_MAX_CHARS = 200
EVENT_TYPE_MAX_CHARS = 255  # the longest event type name
URL_MAX_CHARS = 2048
EVENT_TYPES_MAX_CHARS = 4000  # the free-text list of further types
CATALOG_SHOWN = 500  # catalog entries offered as checkboxes
NUMBERS = ("max_attempts", "timeout_ms", "backoff_initial_ms", "backoff_max_ms")
GRACE_SECONDS = 86_400  # the previous secret keeps signing this long after a rotation
# The destination form's rows, options and catalog checkboxes, with room to spare.
FORM_MAX_FIELDS = CATALOG_SHOWN + 100
EXAMPLE_MAX = 999  # the highest example number the API takes


async def _writer_of(
    request: Request, conn: AsyncConn, destination_id: str
) -> tuple[Operator, Row] | Response:
    """A writer and the destination the path names, or the page that says why not."""
    found = await writer(request, conn)
    if isinstance(found, Response):
        return found
    destination = await _own(conn, found, destination_id)
    if destination is None:
        return not_found(found)
    return found, destination


Posted = tuple[Operator, dict[str, list[str]]]


async def _posted(request: Request, conn: AsyncConn) -> Posted | Response:
    """A writer's form, once its CSRF token holds."""
    found = await writer(request, conn)
    if isinstance(found, Response):
        return found
    fields: dict[str, list[str]] = {}
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        fields = form_lists(await request.body(), FORM_MAX_FIELDS)
    if not csrf_ok(request, {k: v[0] for k, v in fields.items()}):
        return refused_form(found)
    return found, fields


PostedFor = tuple[Operator, dict[str, list[str]], Row]


async def _posted_for(
    request: Request, conn: AsyncConn, destination_id: str
) -> PostedFor | Response:
    """A writer's form about the destination the path names, once its CSRF token holds."""
    posted = await _posted(request, conn)
    if isinstance(posted, Response):
        return posted
    operator, fields = posted
    destination = await _own(conn, operator, destination_id)
    if destination is None:
        return not_found(operator)
    return operator, fields, destination


async def _own(conn: AsyncConn, operator: Operator, raw_id: str) -> Row | None:
    """The destination the path names, if it is a live one this session sees."""
    destination_id = path_id(raw_id)
    if destination_id is None or not operator.sees(destination_id):
        return None
    return await resources.get_destination(conn, operator.tenant_id, destination_id)


def _one(fields: dict[str, list[str]], name: str) -> str | None:
    values = fields.get(name)
    return values[0] if values else None


def _settings_from(fields: dict[str, list[str]]) -> dict[str, Any]:
    """The form as the API's body: every field the form has, typed."""
    body: dict[str, Any] = {
        "name": text_field("name", _one(fields, "name"), NAME_MAX_CHARS) or "",
    }
    if "url" in fields:  # a broker destination's edit form has none
        body["url"] = text_field("url", _one(fields, "url"), URL_MAX_CHARS) or ""
    picked = [t for t in fields.get("event_types", []) if t]
    more = text_field("more_event_types", _one(fields, "more_event_types"), EVENT_TYPES_MAX_CHARS)
    typed = [t for t in (more or "").replace(",", " ").split() if t]
    body["event_types"] = list(dict.fromkeys(picked + typed))
    for name in NUMBERS:
        value = int_field(name, _one(fields, name))
        if value is not None:
            body[name] = value
    return body


def _checked(model: type[DestinationCreate] | type[DestinationUpdate], body: dict[str, Any]) -> Any:
    """The body through the API's own model; its first complaint names the field."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error.get("loc", ())) or "form"
        raise BadField(field, str(error.get("msg")).lower()) from None


def _refused(exc: ProblemError) -> BadField:
    """The API's 422 for a field (a URL the settings refuse, backoff bounds) as a form's."""
    if exc.errors:
        return BadField(exc.errors[0].field, exc.errors[0].message)
    return BadField("form", exc.detail)


async def _catalog(conn: AsyncConn, operator: Operator) -> list[str]:
    rows = await portal_store.list_event_types(
        conn, operator.tenant_id, after=None, limit=CATALOG_SHOWN
    )
    return [row["name"] for row in rows[:CATALOG_SHOWN]]


NEW_VALUES: dict[str, Any] = {
    "name": "",
    "url": "",
    "event_types": [],
    "max_attempts": defaults.MAX_ATTEMPTS,
    "timeout_ms": defaults.TIMEOUT_MS,
    "backoff_initial_ms": defaults.BACKOFF_INITIAL_MS,
    "backoff_max_ms": defaults.BACKOFF_MAX_MS,
}


def _form_page(
    operator: Operator,
    catalog: list[str],
    destination: Row | None,
    *,
    title: str,
    action: str,
    posted: dict[str, list[str]] | None = None,
    error: BadField | None = None,
) -> Response:
    """The form: the destination as stored, or (with `error`) as posted, without secrets."""
    values: dict[str, Any] = {**NEW_VALUES, **(destination or {})}
    if posted is None:
        options = option_form.shown_values(destination)
    else:
        values.update(_posted_base(posted))
        options = option_form.posted_values(posted, destination)
    values.update(asdict(options))
    extra = [t for t in values["event_types"] if t not in catalog]
    return render(
        "destination_form.html",
        status=422 if error else 200,
        operator=operator,
        nav="integrations",
        title=title,
        action=action,
        destination=destination,
        webhook=destination is None or destination["kind"] == "webhook",
        values=values,
        catalog=catalog,
        extra_types=" ".join(extra),
        limits=option_form.LIMITS,
        error=error,
    )


def _posted_base(fields: dict[str, list[str]]) -> dict[str, Any]:
    """The posted name, URL, event types and numbers, as typed (bounded), to show again."""
    shown: dict[str, Any] = {
        name: (_one(fields, name) or "")[:URL_MAX_CHARS]
        for name in ("name", "url", *NUMBERS)
        if name in fields  # a broker's form has no url: its address stays shown
    }
    more = (_one(fields, "more_event_types") or "")[:EVENT_TYPES_MAX_CHARS]
    shown["event_types"] = [t for t in fields.get("event_types", []) if t] + more.split()
    return shown


def _secret_page(operator: Operator, destination: Row, secret: str, *, rotated: bool) -> Response:
    return render(
        "destination_secret.html",
        operator=operator,
        nav="integrations",
        destination=destination,
        secret=secret,
        rotated=rotated,
        grace_hours=GRACE_SECONDS // 3600,
    )


def _back_to(destination_id: uuid.UUID) -> RedirectResponse:
    return RedirectResponse(f"/console/integrations/{destination_id}", status_code=303)


@router.get("/destinations/new")
async def new_destination(request: Request, conn: ConnDep) -> Response:
    found = await writer(request, conn)
    if isinstance(found, Response):
        return found
    return _form_page(
        found,
        await _catalog(conn, found),
        None,
        title="New destination",
        action="/console/destinations",
    )


@router.post("/destinations")
async def create_destination(request: Request, conn: ConnDep) -> Response:
    posted = await _posted(request, conn)
    if isinstance(posted, Response):
        return posted
    operator, fields = posted
    box = secret_box_of(request)
    if box is None:  # pragma: no cover - the console needs the key to sign sessions
        return not_found(operator)
    try:
        body = _checked(
            DestinationCreate,
            {**_settings_from(fields), **option_form.read_options(fields, {}, webhook=True)},
        )
        async with conn.transaction():
            row, secret = await destination_writes.create(
                conn, operator.tenant_id, operator.actor, body, box, request_state(request).settings
            )
            if operator.portal and operator.scope is not None:
                await portal_store.add_to_scope(
                    conn, operator.tenant_id, operator.key_id, row["id"]
                )
    except (BadField, ProblemError) as exc:
        return _form_page(
            operator,
            await _catalog(conn, operator),
            None,
            title="New destination",
            action="/console/destinations",
            posted=fields,
            error=_refused(exc) if isinstance(exc, ProblemError) else exc,
        )
    return _secret_page(operator, row, secret, rotated=False)


@router.get("/integrations/{destination_id}/edit")
async def edit_destination(request: Request, conn: ConnDep, destination_id: str) -> Response:
    got = await _writer_of(request, conn, destination_id)
    if isinstance(got, Response):
        return got
    found, destination = got
    return _form_page(
        found,
        await _catalog(conn, found),
        destination,
        title=f"Edit {destination['name']}",
        action=f"/console/integrations/{destination['id']}/edit",
    )


async def _change(
    request: Request, conn: AsyncConn, destination_id: str, changes: dict[str, Any] | None
) -> Response:
    """Apply `changes` (None: the posted form's settings) to a destination of this session."""
    posted = await _posted_for(request, conn, destination_id)
    if isinstance(posted, Response):
        return posted
    operator, fields, destination = posted
    box = secret_box_of(request)
    if box is None:
        return not_found(operator)
    try:
        if changes is None:
            changes = _edited(fields, destination, box)
            if not changes:
                return _back_to(destination["id"])
        updated = await destination_writes.update(
            conn,
            operator.tenant_id,
            destination["id"],
            operator.actor,
            changes,
            box,
            request_state(request).settings,
        )
    except (BadField, ProblemError) as exc:
        error = _refused(exc) if isinstance(exc, ProblemError) else exc
        if "options_form" not in fields:  # enable, disable: no form to show again
            raise error from None
        return _form_page(
            operator,
            await _catalog(conn, operator),
            destination,
            title=f"Edit {destination['name']}",
            action=f"/console/integrations/{destination['id']}/edit",
            posted=fields,
            error=error,
        )
    if updated is None:
        return not_found(operator)
    return _back_to(destination["id"])


def _edited(fields: dict[str, list[str]], destination: Row, box: SecretBox) -> dict[str, Any]:
    """The posted edit form's changes to `destination`: only what differs, so the audit
    record names what this edit changed."""
    stored = option_form.stored_options(destination, box)
    options = option_form.read_options(fields, stored, webhook=destination["kind"] == "webhook")
    sent = _checked(DestinationUpdate, {**_settings_from(fields), **options}).changes()
    if destination["kind"] != "webhook":
        sent.pop("url", None)  # a broker's address is its config's, set through the API
    settings = {k: v for k, v in sent.items() if k not in options}
    changes = {name: value for name, value in settings.items() if destination[name] != value}
    changes.update(
        option_form.changed({k: v for k, v in sent.items() if k in options}, destination, stored)
    )
    return changes


@router.post("/integrations/{destination_id}/edit")
async def save_destination(request: Request, conn: ConnDep, destination_id: str) -> Response:
    return await _change(request, conn, destination_id, None)


@router.post("/integrations/{destination_id}/enable")
async def enable_destination(request: Request, conn: ConnDep, destination_id: str) -> Response:
    return await _change(request, conn, destination_id, {"enabled": True})


@router.post("/integrations/{destination_id}/disable")
async def disable_destination(request: Request, conn: ConnDep, destination_id: str) -> Response:
    return await _change(request, conn, destination_id, {"enabled": False})


@router.post("/integrations/{destination_id}/rotate-secret")
async def rotate_secret(request: Request, conn: ConnDep, destination_id: str) -> Response:
    posted = await _posted_for(request, conn, destination_id)
    if isinstance(posted, Response):
        return posted
    operator, _, destination = posted
    box = secret_box_of(request)
    if box is None:
        return not_found(operator)
    rotated = await destination_writes.rotate_secret(
        conn, operator.tenant_id, destination["id"], operator.actor, box, GRACE_SECONDS
    )
    if rotated is None:
        return not_found(operator)
    return _secret_page(operator, destination, rotated.secret, rotated=True)


@router.post("/integrations/{destination_id}/send-test")
async def send_test(request: Request, conn: ConnDep, destination_id: str) -> Response:
    """A test event to this destination alone (the `courier.test` ping, or with
    `event_type` and `example` that catalog example); then its delivery's page, where the
    attempt shows up as the worker makes it."""
    posted = await _posted_for(request, conn, destination_id)
    if isinstance(posted, Response):
        return posted
    operator, fields, destination = posted
    event = None
    event_type = text_field("event_type", _one(fields, "event_type"), EVENT_TYPE_MAX_CHARS)
    if event_type is not None:
        number = int_field("example", _one(fields, "example")) or 0
        if number > EXAMPLE_MAX:
            raise BadField("example", f"must be at most {EXAMPLE_MAX}")
        try:
            event = await catalog_examples.example_event(
                conn, operator.tenant_id, event_type, number
            )
        except ProblemError as exc:
            raise _refused(exc) from None
    try:
        sent = await ping.send_test_event(
            conn, operator.tenant_id, destination["id"], actor=operator.actor, event=event
        )
    except ping.DestinationNotFound:
        return not_found(operator)
    except ping.DestinationDisabled:
        raise BadField(
            "enabled", "a disabled destination takes no deliveries: enable it first"
        ) from None
    return RedirectResponse(f"/console/deliveries/{sent.delivery_id}", status_code=303)


@router.get("/integrations/{destination_id}/delete")
async def confirm_delete(request: Request, conn: ConnDep, destination_id: str) -> Response:
    got = await _writer_of(request, conn, destination_id)
    if isinstance(got, Response):
        return got
    found, destination = got
    return render(
        "destination_delete.html", operator=found, nav="integrations", destination=destination
    )


@router.post("/integrations/{destination_id}/delete")
async def delete_destination(request: Request, conn: ConnDep, destination_id: str) -> Response:
    posted = await _posted_for(request, conn, destination_id)
    if isinstance(posted, Response):
        return posted
    operator, _, destination = posted
    if not await resources.delete_destination(
        conn, operator.tenant_id, destination["id"], operator.actor
    ):
        return not_found(operator)
    return RedirectResponse("/console/integrations", status_code=303)
