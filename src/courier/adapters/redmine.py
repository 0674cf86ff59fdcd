"""The `redmine` adapter: events open, annotate and close issues in a Redmine project.

Each event renders a correlation key (`config.correlation_key`). The first event of a key
creates an issue whose custom field `config.correlation_field_id` holds the key; later
events add a journal note; event types in `config.resolving_event_types` also set
`config.closed_status_id`. Succeeds when Redmine answers the create or update.

Exactly one issue per key, whatever crashes: the deliveries of one key take turns (a
PostgreSQL advisory lock held for the whole exchange, released with the connection if the
worker dies), and under that lock the adapter looks for the key's issue first in courier's
own links, then in Redmine itself (the custom field, searched through the REST API), and
creates one only when neither has it. The link is saved in the same transaction, after
Redmine's answer. A worker killed after Redmine created the issue but before the link
committed leaves an issue that the next attempt's search finds; a killed worker's lock
goes with its connection.

Notes are not repeated either: the description and every note end with a marker line,
`courier event: <event id>`. A found issue whose description carries this event's marker
is this event's own (an earlier attempt created it), so no note repeats it; and a retry
(an attempt after the first) reads the issue's journals first and skips a note that is
already there (the answer to an earlier attempt's update was lost), and after writing its
note empties any later copy (an earlier attempt's update that timed out but still reached
Redmine). A replay is a new delivery: it adds its note again, on the same issue.

Retry classes: 401, 403, 404 and 422 (and other 4xx) are permanent, with Redmine's error
messages in the summary; 408, 429 and 5xx, timeouts and connection failures are retried,
honouring Retry-After on 429 and 503. A template that fails to render, an empty subject
and an event without a correlation key are permanent. The API key never reaches a summary.

HTTP goes through courier's own client (`courier.adapters.http1`) with the SSRF policy
applied to every address it connects to, as for webhooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import time
import uuid
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from yarl import URL

from courier import __version__, redact, retry
from courier.adapters.base import AttemptOutcome, AttemptResult, DeliveryRequest, finished
from courier.adapters.brokers import AddressGuard, BrokerRefused
from courier.adapters.http1 import (
    CannotConnect,
    Http1Client,
    InvalidResponse,
    Proxy,
    ProxyFailed,
    Target,
)
from courier.adapters.resolver import LookupFailed
from courier.errors import CourierError
from courier.store import tickets
from courier.store.pooler import pooled_kwargs
from courier.ticket_templates import TemplateFailed, context, render

USER_AGENT: Final = f"courier-webhooks/{__version__}"
MAX_RESPONSE_BYTES: Final = 1024 * 1024  # a search answers whole issues, descriptions too
MAX_KEY_CHARS: Final = 255
_RETRY_AFTER_STATUSES: Final = frozenset({429, 503})
_ERRORS_SHOWN: Final = 5  # Redmine's validation messages quoted in a summary
DATABASE_CONNECTIONS: Final = 16  # per worker: one per delivery holding a key's lock
MARKER: Final = "courier event: {event_id}"


# The status of the last answer Redmine gave this task's delivery (each delivery runs in a
# task of its own): what a successful attempt records as its `http_status`.
_LAST_STATUS: ContextVar[int | None] = ContextVar("courier_redmine_status", default=None)


class RedmineFailure(CourierError):
    """One attempt's failure, already classified; the text is redacted before it is kept."""

    def __init__(
        self,
        outcome: AttemptOutcome,
        text: str,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(text)
        self.outcome: AttemptOutcome = outcome
        self.text = text
        self.status = status
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class Plan:
    """An event rendered into what Redmine is sent."""

    key: str
    subject: str
    description: str
    note: str
    priority_id: int | None
    custom_fields: tuple[tuple[int, str], ...]
    closes: bool


def _marked(text: str, event_id: str) -> str:
    marker = MARKER.format(event_id=event_id)
    return f"{text}\n\n{marker}" if text else marker


def plan(event_type: str, event_id: str, body: bytes, config: Mapping[str, Any]) -> Plan:
    """Render every template of `config` for one event; TemplateFailed says what is wrong.
    The description and the note end with the event's marker line."""
    values = context(event_type, event_id, body)
    key = render(str(config.get("correlation_key", "")), values, "correlation_key")
    if not key:
        raise TemplateFailed("the event has no correlation key: correlation_key rendered empty")
    if len(key) > MAX_KEY_CHARS:
        raise TemplateFailed(f"the correlation key is longer than {MAX_KEY_CHARS} characters")
    subject = render(str(config.get("subject", "")), values, "subject")
    if not subject:
        raise TemplateFailed("the subject template rendered an empty subject")
    subject = subject.splitlines()[0][:255]  # Redmine's subject is one line of 255
    priority: int | None = None
    if config.get("priority_id"):
        text = render(str(config["priority_id"]), values, "priority_id")
        if text:
            if not text.isascii() or not text.isdigit():
                raise TemplateFailed("the priority_id template rendered something not an id")
            priority = int(text)
    fields = tuple(
        (int(field_id), render(str(source), values, f"custom_fields.{field_id}"))
        for field_id, source in sorted((config.get("custom_fields") or {}).items())
    )
    return Plan(
        key=key,
        subject=subject,
        description=_marked(
            render(str(config.get("description", "")), values, "description"), event_id
        ),
        note=_marked(render(str(config.get("note", "")), values, "note"), event_id),
        priority_id=priority,
        custom_fields=fields,
        closes=event_type in (config.get("resolving_event_types") or ()),
    )


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes


def _error_text(status: int, what: str, body: bytes) -> str:
    """`Redmine answered <status> to <what>`, with Redmine's own messages when it sent any."""
    text = f"Redmine answered {status} to {what}"
    try:
        errors = orjson.loads(body).get("errors") if body else None
    except (orjson.JSONDecodeError, AttributeError):
        errors = None
    if isinstance(errors, list) and errors:
        shown = [str(e) for e in errors[:_ERRORS_SHOWN]]
        return f"{text}: " + "; ".join(shown)
    if status == 404:
        return f"{text}: not found (a deleted project or issue, or a wrong base_url)"
    if status in (401, 403):
        return f"{text}: the API key is refused or lacks the permission"
    return text


class RedmineAdapter:
    """`DeliveryAdapter` for `redmine` destinations. `database_url` is where the links
    between correlation keys and issues live (the worker's own database)."""

    def __init__(
        self,
        guard: AddressGuard,
        database_url: str | None = None,
        *,
        pooled: bool = False,
        database_connections: int = DATABASE_CONNECTIONS,
        egress_proxy: str | None = None,
    ) -> None:
        self._guard = guard
        self._proxy = Proxy.parse(egress_proxy) if egress_proxy else None
        self._database_url = database_url
        self._pooled = pooled
        self._connections = database_connections
        self._pool: AsyncConnectionPool[Any] | None = None
        self._client: Http1Client | None = None

    # -- resources -------------------------------------------------------------------------

    async def _database(self) -> AsyncConnectionPool[Any]:
        if self._pool is None:
            if self._database_url is None:
                raise RedmineFailure(
                    "permanent_failure", "this worker has no database for ticket links"
                )
            pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                self._database_url,
                min_size=1,
                max_size=self._connections,
                open=False,
                kwargs={
                    "autocommit": True,
                    "application_name": "courier-ticketing",
                    **pooled_kwargs(self._pooled),
                },
            )
            self._pool = pool
            await pool.open(wait=False)
        return self._pool

    def _http(self) -> Http1Client:
        if self._client is None:
            self._client = Http1Client(
                self._guard.addresses,
                max_body_bytes=MAX_RESPONSE_BYTES,
                excerpt_bytes=MAX_RESPONSE_BYTES,
                proxy=self._proxy,
            )
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(Exception):
                await pool.close(timeout=5)

    # -- one delivery ------------------------------------------------------------------------

    async def deliver(self, request: DeliveryRequest) -> AttemptResult:
        started = time.perf_counter()
        _LAST_STATUS.set(None)
        try:
            async with asyncio.timeout(request.timeout_s):
                await self._deliver(request)
        except RedmineFailure as exc:
            return _result(request, started, exc.outcome, exc.text, exc.status, exc.retry_after_s)
        except TimeoutError:
            text = f"timeout after {request.timeout_s:g}s"
            return _result(request, started, "retryable_failure", text)
        except TemplateFailed as exc:
            return _result(request, started, "permanent_failure", str(exc))
        except (psycopg.Error, PoolTimeout) as exc:
            text = f"database error (ticket links): {type(exc).__name__}"
            return _result(request, started, "retryable_failure", text)
        except Exception as exc:
            # Never crash the worker; the class only: a message could quote a secret.
            text = f"unexpected error: {type(exc).__name__}"
            return _result(request, started, "retryable_failure", text)
        return _result(request, started, "succeeded", None, _LAST_STATUS.get())

    async def _deliver(self, request: DeliveryRequest) -> None:
        config = request.config
        rendered = plan(request.event_type, request.event_id, request.body, config)
        if request.destination_id is None:
            raise RedmineFailure("permanent_failure", "the delivery names no destination")
        tenant = uuid.UUID(request.tenant_id)
        destination = request.destination_id
        event = uuid.UUID(request.event_id)
        key = rendered.key
        pool = await self._database()
        failure: RedmineFailure | None = None
        async with pool.connection() as conn, conn.transaction():
            await tickets.lock_key(conn, tenant, destination, key)
            link = await tickets.find_link(conn, tenant, destination, key)
            if link is not None:
                ticket_id, ticket_url = str(link["ticket_id"]), str(link["ticket_url"])
                own = link["created_event_id"] == event
            else:
                found = await self._search(request, key)
                if found is not None:
                    ticket_id = str(found["id"])
                    opener = _opener(str(found.get("description") or ""))
                else:
                    ticket_id = await self._create(request, rendered)
                    opener = event
                own = opener == event
                ticket_url = _issue_url(config, ticket_id)
                await tickets.save_link(
                    conn,
                    tenant,
                    destination,
                    key,
                    ticket_id=ticket_id,
                    ticket_url=ticket_url,
                    event_id=opener,
                )
            try:
                action = await self._update(request, rendered, ticket_id, own)
            except RedmineFailure as exc:
                failure = exc  # the link stays: the issue exists either way
            else:
                if action == "closed":
                    await tickets.mark_closed(conn, tenant, destination, key)
                if request.delivery_id is not None:
                    await tickets.record_delivery(
                        conn,
                        tenant,
                        request.delivery_id,
                        ticket_id=ticket_id,
                        ticket_url=ticket_url,
                        action=action,
                    )
        if failure is not None:
            raise failure

    # -- Redmine's REST API ------------------------------------------------------------------

    async def _search(self, request: DeliveryRequest, key: str) -> dict[str, Any] | None:
        """The oldest issue of the project whose correlation field is exactly `key`.

        The filter is spelled out (`f[]`, `op[]`, `v[][]`) rather than as `cf_N=key`:
        the short form reads a leading `~`, `!` or `*` as an operator and `|` as "or".
        """
        config = request.config
        field = f"cf_{int(config['correlation_field_id'])}"
        query: Sequence[tuple[str, str]] = (
            ("project_id", str(config["project"])),
            ("set_filter", "1"),
            ("f[]", "status_id"),
            ("op[status_id]", "*"),
            ("f[]", field),
            (f"op[{field}]", "="),
            (f"v[{field}][]", key),
            ("sort", "id"),
            ("limit", "100"),
        )
        answer = await self._call(request, "GET", "/issues.json", query, None, "the search")
        issues = _json(answer, "the search").get("issues")
        if not isinstance(issues, list):
            raise RedmineFailure("retryable_failure", "Redmine's search answer has no issues")
        field_id = int(config["correlation_field_id"])
        matching = [
            issue
            for issue in issues
            if isinstance(issue, dict) and _field_value(issue, field_id) == key
        ]
        return min(matching, key=lambda issue: int(issue["id"])) if matching else None

    async def _create(self, request: DeliveryRequest, rendered: Plan) -> str:
        config = request.config
        fields = [{"id": int(config["correlation_field_id"]), "value": rendered.key}]
        fields += [{"id": i, "value": v} for i, v in rendered.custom_fields]
        issue: dict[str, Any] = {
            "project_id": config["project"],
            "tracker_id": config["tracker_id"],
            "subject": rendered.subject,
            "description": rendered.description,
            "custom_fields": fields,
        }
        if rendered.priority_id is not None:
            issue["priority_id"] = rendered.priority_id
        answer = await self._call(
            request, "POST", "/issues.json", (), {"issue": issue}, "the create"
        )
        created = _json(answer, "the create").get("issue")
        if not isinstance(created, dict) or not isinstance(created.get("id"), int):
            raise RedmineFailure("retryable_failure", "Redmine's create answer has no issue id")
        return str(created["id"])

    async def _update(
        self, request: DeliveryRequest, rendered: Plan, ticket_id: str, own: bool
    ) -> str:
        """Add this event's note (unless it opened the issue) and close on a resolving type."""
        issue: dict[str, Any] = {}
        retrying = not own and request.attempt_number > 1
        if retrying:
            if not await self._keep_first_note(request, ticket_id):
                issue["notes"] = rendered.note
        elif not own:
            issue["notes"] = rendered.note
        if rendered.closes:
            issue["status_id"] = request.config["closed_status_id"]
        if issue:
            path = f"/issues/{int(ticket_id)}.json"
            what = f"the update of #{ticket_id}"
            await self._call(request, "PUT", path, (), {"issue": issue}, what)
        if retrying and "notes" in issue:
            await self._keep_first_note(request, ticket_id)
        if rendered.closes:
            return "closed"
        return "created" if own else "noted"

    async def _keep_first_note(self, request: DeliveryRequest, ticket_id: str) -> bool:
        """Whether the issue has this event's note; any copy after the first is emptied.

        A retry reads the journals before it writes (an earlier attempt's note may be in,
        its answer lost) and again after. The second look is for an earlier attempt whose
        update timed out but still reached Redmine after the first look (Redmine keeps
        working on a request whose client has gone): its REST API has no conditional
        update to prevent that, so every copy but the first is emptied, and Redmine
        deletes a journal left with neither notes nor changes. The emptying is best
        effort: the note is in either way, so a refusal (the API user may not edit
        notes) leaves the copy and the attempt still succeeds.
        """
        before = _LAST_STATUS.get()
        found = await self._own_notes(request, ticket_id)
        status = before if before is not None else _LAST_STATUS.get()
        with contextlib.suppress(RedmineFailure):
            for journal in found[1:]:
                path = f"/journals/{journal}.json"
                body = {"journal": {"notes": ""}}
                await self._call(request, "PUT", path, (), body, "the removal of a repeat")
        _LAST_STATUS.set(status)  # the attempt reports Redmine's answer to the update
        return bool(found)

    async def _own_notes(self, request: DeliveryRequest, ticket_id: str) -> list[int]:
        """The ids of the issue's journals that carry this event's note, oldest first."""
        path = f"/issues/{int(ticket_id)}.json"
        query = (("include", "journals"),)
        answer = await self._call(request, "GET", path, query, None, f"the read of #{ticket_id}")
        issue = _json(answer, f"the read of #{ticket_id}").get("issue")
        journals = issue.get("journals") if isinstance(issue, dict) else None
        marker = MARKER.format(event_id=request.event_id)
        return sorted(
            int(j["id"])
            for j in journals or ()
            if isinstance(j, dict)
            and isinstance(j.get("id"), int)
            and marker in str(j.get("notes") or "")
        )

    async def _call(
        self,
        request: DeliveryRequest,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        body: Any,
        what: str,
    ) -> _Answer:
        base = str(request.config.get("base_url", "")).rstrip("/")
        try:
            url = URL(base + path)
            if query:
                url = url.with_query(list(query))
            target = Target.for_method(method, url, USER_AGENT)
        except (ValueError, TypeError):
            raise RedmineFailure("permanent_failure", "invalid base_url") from None
        payload = orjson.dumps(body) if body is not None else b""
        headers = {
            "x-redmine-api-key": str(request.config.get("api_key", "")),
            "accept": "application/json",
        }
        if body is not None:
            headers["content-type"] = "application/json"
        try:
            message = target.request(headers, payload)
        except ValueError:
            raise RedmineFailure("permanent_failure", "the API key holds a line break") from None
        try:
            response = await self._http().post(
                target, message, request.timeout_s, request.tenant_id
            )
        except BrokerRefused as exc:
            raise RedmineFailure("permanent_failure", f"Redmine {exc}") from None
        except LookupFailed as exc:
            raise RedmineFailure("retryable_failure", f"DNS lookup failed: {exc.reason}") from None
        except ProxyFailed as exc:  # the proxy's fault, named, never Redmine's address
            raise RedmineFailure("retryable_failure", str(exc)) from None
        except CannotConnect as exc:
            raise RedmineFailure("retryable_failure", f"cannot connect to Redmine: {exc}") from None
        except InvalidResponse as exc:
            text = f"invalid response from Redmine: {exc}"
            raise RedmineFailure("retryable_failure", text) from None
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise RedmineFailure("retryable_failure", f"TLS error: {type(exc).__name__}") from None
        except (ConnectionError, OSError) as exc:
            text = f"{what} failed: {type(exc).__name__}"
            raise RedmineFailure("retryable_failure", text) from None
        status = response.status
        _LAST_STATUS.set(status)
        verdict = retry.classify_status(status)
        if verdict == "success":
            return _Answer(status, response.excerpt)
        retry_after = None
        if status in _RETRY_AFTER_STATUSES:
            retry_after = retry.parse_retry_after(response.retry_after, datetime.now(UTC))
        outcome: AttemptOutcome = (
            "retryable_failure" if verdict == "retryable" else "permanent_failure"
        )
        raise RedmineFailure(
            outcome, _error_text(status, what, response.excerpt), status, retry_after
        )


def _json(answer: _Answer, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        text = f"Redmine's answer to {what} is not a JSON object (HTTP {answer.status})"
        raise RedmineFailure("retryable_failure", text)
    return value


_MARKER_LINE: Final = re.compile(r"courier event: ([0-9a-fA-F-]{36})\s*\Z")


def _opener(description: str) -> uuid.UUID | None:
    """The event that opened an issue, from the marker ending its description."""
    found = _MARKER_LINE.search(description)
    if found is None:
        return None
    try:
        return uuid.UUID(found.group(1))
    except ValueError:
        return None


def _field_value(issue: Mapping[str, Any], field_id: int) -> str | None:
    for field in issue.get("custom_fields") or ():
        if isinstance(field, dict) and field.get("id") == field_id:
            value = field.get("value")
            return value if isinstance(value, str) else None
    return None


def _issue_url(config: Mapping[str, Any], ticket_id: str) -> str:
    return f"{str(config.get('base_url', '')).rstrip('/')}/issues/{ticket_id}"


def _result(
    request: DeliveryRequest,
    started: float,
    outcome: AttemptOutcome,
    text: str | None,
    status: int | None = None,
    retry_after_s: float | None = None,
) -> AttemptResult:
    summary = None
    if text is not None:
        summary = redact.summarize(text, secrets=(*request.config_secrets, *request.secrets))
    return finished(started, outcome, status, summary, retry_after_s)


__all__ = ["Plan", "RedmineAdapter", "RedmineFailure", "plan"]
