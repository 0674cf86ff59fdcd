"""How the console's pages are rendered: the Jinja2 templates (autoescaped, strict),
their filters, the security headers every page carries, and the pages shared by every
group (a message, not found, read-only, an expired form, a field the console cannot use).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from courier.console.explain import attempt_medium, human_duration, human_ms
from courier.console.health import STATES
from courier.console.inputs import BadField
from courier.console.operator import Operator
from courier.store.rows import Row
from courier.web.pagination import split_page

PAGE_SIZE = 50  # rows per list page
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


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


def one_page(rows: list[Row]) -> tuple[list[Row], uuid.UUID | None]:
    """The rows to show and the id to continue after (None on the last page)."""
    shown, last = split_page(rows, PAGE_SIZE)
    return shown, (last["id"] if last is not None else None)


def pretty(value: Any) -> str:
    """A JSON value as a page shows it: indented, its keys in their own order."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)
