"""Errors as RFC 9457 problem documents (`application/problem+json`), and their handlers.

    ProblemError                 raised by routes and dependencies: a chosen status
    └── Unauthorized (401)       the same document for every authentication failure
    courier.errors.NotFound      404, the same document for a missing and another
                                 tenant's id: "No such <noun>."

Framework errors are mapped too: request validation → 422 with `errors: [{field,
message}]`, Starlette's HTTPException (unknown route, 405, 413) → its status, an
unreachable database → 503 with `Retry-After`. Anything else becomes a bare 500 in
`UnhandledErrorMiddleware`, logged on the server; no traceback reaches a client.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from courier.errors import CourierError
from courier.errors import NotFound as NotFound  # routes raise it from here

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://courier.dev/problems/"
RETRY_AFTER_SECONDS = 5  # what a 503 asks clients to wait
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

log = logging.getLogger("courier.api")


class FieldError(BaseModel):
    field: str = Field(description="dotted path of the failing field, e.g. `url` or `limit`")
    location: str = Field(description="where the field is: body, query, path or header")
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem document; extension members may follow."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


class ProblemError(CourierError):
    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        title: str | None = None,
        errors: Sequence[FieldError] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug
        self.title = title
        self.errors = list(errors)
        self.headers = headers or {}


class Unauthorized(ProblemError):
    def __init__(self) -> None:
        super().__init__(
            401,
            "A valid API key is required: send `Authorization: Bearer <api key>`.",
            slug="unauthorized",
            headers={"WWW-Authenticate": "Bearer"},
        )


def conflict(detail: str, slug: str) -> ProblemError:
    """A 409: the resource's state forbids the action; `slug` names that state."""
    return ProblemError(409, detail, slug=slug)


def invalid_field(field: str, message: str, location: str = "body") -> ProblemError:
    """A 422 naming one field, for checks that pydantic cannot make (they need settings)."""
    return ProblemError(
        422,
        f"{field}: {message}",
        slug="validation-error",
        title="Request validation failed",
        errors=[FieldError(field=field, location=location, message=message)],
    )


def _slug(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "-").replace("'", "")
    except ValueError:
        return "error"


def problem_response(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    title: str | None = None,
    errors: Sequence[FieldError] = (),
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    problem = Problem(
        type=PROBLEM_TYPE_BASE + (slug or _slug(status)),
        title=title or phrase,
        status=status,
        detail=detail,
        errors=list(errors) or None,
        **(extra or {}),
    )
    return JSONResponse(
        problem.model_dump(mode="json", exclude_none=True),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def unavailable_response() -> JSONResponse:
    return problem_response(
        503,
        "The database is unavailable; try again shortly.",
        slug="service-unavailable",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _field_errors(exc: RequestValidationError) -> list[FieldError]:
    found: list[FieldError] = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ())]
        location = loc[0] if loc else "body"
        path = loc[1:]
        if error.get("type") == "json_invalid":
            path = []  # the position in the document, not a field
        field = ".".join(path) if path else location
        found.append(FieldError(field=field, location=location, message=str(error.get("msg"))))
    return found


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return problem_response(
        exc.status,
        exc.detail,
        slug=exc.slug,
        title=exc.title,
        errors=exc.errors,
        headers=exc.headers,
    )


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = _field_errors(exc)
    return problem_response(
        422,
        "; ".join(f"{e.field}: {e.message}" for e in errors) or "The request is invalid.",
        slug="validation-error",
        title="Request validation failed",
        errors=errors,
    )


async def _on_not_found(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NotFound)
    return problem_response(404, f"No such {exc.noun}.", slug="not-found")


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else _slug(exc.status_code)
    headers = dict(exc.headers or {})
    if exc.status_code == 400:
        # FastAPI's answer to a body it cannot decode (not UTF-8, not JSON): the
        # contract makes every unreadable or invalid body a 422 naming the field.
        return problem_response(
            422,
            "body: could not be read as JSON",
            slug="validation-error",
            title="Request validation failed",
            errors=[FieldError(field="body", location="body", message="not valid JSON")],
        )
    if exc.status_code == 404:
        detail = "No such resource."
    elif exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return problem_response(exc.status_code, detail, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's).

    Probed with a fresh scope per method: the request's own scope carries routing state.
    """
    allowed = []
    for method in _METHODS:
        probe = {
            "type": "http",
            "path": request.scope["path"],
            "root_path": request.scope.get("root_path", ""),
            "method": method,
        }
        if any(route.matches(probe)[0] == Match.FULL for route in request.app.routes):
            allowed.append(method)
    return allowed


async def _on_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable: %s", type(exc).__name__)
    return unavailable_response()


def install(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(NotFound, _on_not_found)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(psycopg.OperationalError, _on_unavailable)
    app.add_exception_handler(PoolTimeout, _on_unavailable)
    app.add_middleware(UnhandledErrorMiddleware)


class UnhandledErrorMiddleware:
    """The last net: an unexpected exception becomes a plain 500 problem, logged here.

    Sits inside Starlette's ServerErrorMiddleware, so nothing reaches that one (which
    would re-raise into the server) and the client never sees a traceback.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if started:
                return
            response = problem_response(500, "An internal error occurred.")
            await response(scope, receive, send)
