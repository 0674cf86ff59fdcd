"""Templates that turn an event into a ticket's fields: Jinja2 in its sandbox.

Templates are tenant input and run inside the worker, so they get Jinja2's
`SandboxedEnvironment` (no attribute access to internals, no unsafe calls) and a bound on
what one rendering may produce. A missing value renders as empty text (Jinja2's default,
so `payload.severity == "high"` works on events without one); the adapter refuses an
empty correlation key or subject, and using a missing value further
(`payload.missing.field`) is a render error. A template that does not compile is refused
when the destination is saved; one that fails while rendering fails its attempt for good
(the same event renders the same way next time).

What a template sees: `type`, `payload` (the event's JSON, parsed), `event_id`,
`timestamp` (when the event was accepted, ISO 8601 UTC) and `now` (when this attempt
renders).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from jinja2 import TemplateError
from jinja2.environment import Template
from jinja2.sandbox import SandboxedEnvironment

from courier.errors import CourierError

MAX_RENDERED_CHARS: Final = 60_000  # Redmine's text columns hold 65,535 bytes


class TemplateFailed(CourierError, ValueError):
    """A template could not be compiled or rendered; the message says where and why."""


@functools.cache
def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(autoescape=False)
    env.policies["json.dumps_kwargs"] = {"sort_keys": True, "ensure_ascii": False}
    return env


def _describe(exc: TemplateError) -> str:
    line = getattr(exc, "lineno", None)
    where = f" (line {line})" if line else ""
    return f"{type(exc).__name__}: {exc.message or exc}{where}"


@functools.lru_cache(maxsize=2048)
def compile_template(source: str) -> Template:
    """The compiled template, or TemplateFailed saying why it does not compile."""
    try:
        return _environment().from_string(source)
    except TemplateError as exc:
        raise TemplateFailed(_describe(exc)) from None


def check(source: str) -> str:
    """`source` if it compiles (a pydantic validator); else ValueError with the reason."""
    compile_template(source)
    return source


def event_time(event_id: str) -> str:
    """When the event was accepted: the milliseconds a UUIDv7 event id starts with."""
    try:
        millis = uuid.UUID(event_id).int >> 80
    except ValueError:
        return ""
    moment = datetime.fromtimestamp(millis / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def context(event_type: str, event_id: str, body: bytes) -> dict[str, Any]:
    """What every template of one event sees; a body that is not JSON is a string."""
    try:
        payload: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = body.decode("utf-8", errors="replace")
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "type": event_type,
        "event_id": event_id,
        "payload": payload,
        "timestamp": event_time(event_id),
        "now": now,
    }


def render(source: str, values: Mapping[str, Any], what: str) -> str:
    """`source` rendered over `values`, stripped; TemplateFailed names `what` and why."""
    try:
        template = compile_template(source)
        text = template.render(values)
    except TemplateFailed as exc:
        raise TemplateFailed(f"the {what} template does not compile: {exc}") from None
    except TemplateError as exc:
        raise TemplateFailed(f"the {what} template failed: {_describe(exc)}") from None
    except Exception as exc:  # a filter raising on a value (e.g. int("x")) is the same
        raise TemplateFailed(f"the {what} template failed: {type(exc).__name__}") from None
    if len(text) > MAX_RENDERED_CHARS:
        raise TemplateFailed(f"the {what} template rendered more than {MAX_RENDERED_CHARS} chars")
    return text.strip()
