"""Request and response bodies of the HTTP API (separate from the tables they come from).

Bounds mirror the schema's CHECK constraints, so an out-of-range value is a 422 that
names the field, never a constraint violation from PostgreSQL.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    Field,
    JsonValue,
    WithJsonSchema,
    model_validator,
)

from courier import destination_options as opts
from courier.kinds import shown_config
from courier.states import BulkReplayState, OutcomeName, StateName
from courier.web.destination_input import (
    UUID_TEXT_PATTERN,
    EventType,
    IdempotencyKey,
    Strict,
    WholeNumber,
)
from courier.web.problems import Problem

T = TypeVar("T")

DeliveryState = StateName
AttemptOutcome = OutcomeName


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null at the end"
    )


class Destination(BaseModel):
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    url: str = Field(description="a webhook's URL; a broker's address, without credentials")
    kind: str = "webhook"
    config: dict[str, Any] | None = Field(
        default=None,
        description="the kind's settings, secret fields `<redacted>`; null for webhooks",
    )
    enabled: bool
    event_types: list[str]
    max_attempts: int
    max_age_seconds: int
    timeout_ms: int
    backoff_initial_ms: int
    backoff_max_ms: int
    max_in_flight: int
    ordering: str
    rate_limit_per_second: float | None
    filter: dict[str, Any] | None = Field(
        default=None, description="the payload filter; null: every event (of its event types)"
    )
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime
    headers: dict[str, str] | None = Field(
        default=None, description="the extra headers' names, each value `<redacted>`"
    )
    auth: dict[str, str] | None = Field(
        default=None,
        description="`type` and the fields that are not secret; the secret one `<redacted>`",
    )
    tls_client_certificate: dict[str, str] | None = Field(
        default=None, description="`certificate`, and `private_key` as `<redacted>`"
    )
    tls_ca_certificate: str | None = None
    payload_format: str = "raw"
    capture_response_body: bool = False

    @model_validator(mode="before")
    @classmethod
    def _redacted_config(cls, data: Any) -> Any:
        # A stored row: its secret config fields and option values are named, never shown.
        if isinstance(data, dict) and "config_secrets" in data:
            secrets = data["config_secrets"] or {}
            config = data.get("config") or {}
            shown = shown_config(config, secrets) if (config or secrets) else None
            data = {**data, "config": shown}
        if isinstance(data, dict) and "option_secrets" in data:
            shown_options = opts.shown_options(data["options"] or {}, data["option_secrets"] or {})
            data = {**data, **shown_options}
        return data


class DestinationCreated(Destination):
    signing_secret: str = Field(
        description="the `whsec_…` secret receivers verify with; shown only here and by "
        "`GET /v1/destinations/{id}/secret`"
    )


class SigningSecret(BaseModel):
    secret: str
    created_at: datetime | None
    expires_at: datetime | None


class DestinationSecrets(BaseModel):
    destination_id: uuid.UUID
    signing_secret: str = Field(description="the newest secret: the one to verify with")
    secrets: list[SigningSecret] = Field(description="every live secret, newest first")


class SecretRotate(Strict):
    grace_period_seconds: Annotated[int, WholeNumber] = Field(
        default=86_400,
        ge=0,
        le=604_800,
        description="how long the previous secrets keep signing (seconds); 0 stops them at once",
    )


class SecretRotated(BaseModel):
    signing_secret: str = Field(description="the new `whsec_…` secret; shown only here")
    previous_expires_at: datetime | None = Field(
        description="when the previous secrets stop signing; null when none was live"
    )


class EventCreate(Strict):
    type: EventType
    payload: JsonValue = Field(description="any JSON value; delivered as the webhook body")
    idempotency_key: IdempotencyKey | None = Field(
        default=None,
        description="a repeat answers the first answer; when the `Idempotency-Key` header "
        "is sent too, the two must be equal",
    )


class EventDelivery(BaseModel):
    id: uuid.UUID
    destination_id: uuid.UUID
    state: DeliveryState


class EventAccepted(BaseModel):
    id: uuid.UUID
    deliveries: list[EventDelivery]


class Event(BaseModel):
    id: uuid.UUID
    type: str
    payload: JsonValue
    idempotency_key: str | None
    created_at: datetime
    delivery_ids: list[uuid.UUID] = Field(
        description="all its deliveries (replays too), oldest first"
    )


class Attempt(BaseModel):
    id: uuid.UUID
    delivery_id: uuid.UUID
    event_id: uuid.UUID
    attempt_number: int
    worker_id: str
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    http_status: int | None
    retryable: bool | None
    outcome: AttemptOutcome | None = Field(description="null while the attempt is in flight")
    error_summary: str | None
    response_body_excerpt: str | None = Field(
        default=None,
        description="the response body's start (at most 4 KiB, redacted) when the "
        "destination has `capture_response_body`; else null",
    )


class Delivery(BaseModel):
    id: uuid.UUID
    tenant_id: uuid.UUID
    event_id: uuid.UUID
    destination_id: uuid.UUID
    state: DeliveryState
    attempt_count: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
    dead_lettered_at: datetime | None
    dead_letter_reason: str | None
    replay_of: uuid.UUID | None
    failure_reason: str | None
    last_http_status: int | None


class Ticket(BaseModel):
    id: str = Field(description="the ticket's id in the ticketing system (a Redmine issue id)")
    url: str = Field(description="the ticket's page")
    action: Literal["created", "noted", "closed"] = Field(
        description="what this delivery did to it: opened it (or found the one it opened), "
        "added a note, or closed it"
    )


class DeliveryWithAttempts(Delivery):
    attempts: list[Attempt] = Field(description="oldest first")
    ticket: Ticket | None = Field(
        default=None,
        description="the ticket this delivery wrote to (ticketing kinds, once delivered); "
        "null otherwise",
    )


class AuditRecord(BaseModel):
    id: uuid.UUID
    tenant_id: uuid.UUID
    actor: str
    action: str
    delivery_id: uuid.UUID | None
    destination_id: uuid.UUID | None
    reason: str | None
    data: dict[str, JsonValue]
    created_at: datetime


class Health(BaseModel):
    status: Literal["ok", "ready"]


# Operations: replay, bulk replay, outage recovery, destination health.

ReplayState = BulkReplayState
# JSON has no uuid or date-time type: these take their text form despite Strict
UuidText = Annotated[uuid.UUID, Field(strict=False)]


def _time_text(value: Any) -> Any:
    """A date-time is RFC 3339 text with an offset; a number is not one."""
    if not isinstance(value, str | datetime):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2025-01-01T12:00:00Z")
    return value


TimeText = Annotated[
    AwareDatetime,
    BeforeValidator(_time_text),
    Field(strict=False, examples=["2025-01-01T12:00:00Z"]),
]


def _time_query(value: Any) -> Any:
    """A query's date-time is RFC 3339 text; not a number of seconds, as pydantic allows."""
    if isinstance(value, str) and not re.match(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ]", value):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2025-01-01T12:00:00Z")
    return value


TimeQuery = Annotated[AwareDatetime, BeforeValidator(_time_query)]


class DeadLetterReplay(Strict):
    """Which terminal deliveries to replay; every field narrows the selection."""

    destination_id: UuidText | None = None
    since: TimeText | None = Field(default=None, description="ended at or after this time")
    until: TimeText | None = Field(
        default=None,
        description="ended before this time; not before `since` (equal to it: an empty "
        "window, nothing replayed)",
    )
    states: list[ReplayState] = Field(
        default_factory=lambda: list[ReplayState](["dead_lettered"]), min_length=1, max_length=2
    )
    dry_run: bool = Field(default=False, description="count and list; change nothing")
    cursor: str | None = Field(
        default=None,
        pattern=UUID_TEXT_PATTERN,
        description="`next_cursor` of the previous call (the id of the last delivery it took)",
    )


class BulkReplayed(BaseModel):
    count: int = Field(description="deliveries replayed (or, on a dry run, that would be)")
    delivery_ids: list[uuid.UUID] = Field(
        description="the new deliveries; on a dry run, the deliveries that would be replayed"
    )
    next_cursor: str | None = Field(
        description="more remain: send it as `cursor` with the same filter; null when done"
    )
    dry_run: bool


class DestinationRecover(Strict):
    since: TimeText = Field(description="the start of the outage (e.g. `recovery.since`)")
    until: TimeText | None = Field(
        default=None,
        description="the end of the window (excluded); not before `since` (equal to it: an "
        "empty window, nothing recovered)",
    )
    dry_run: bool = Field(default=False, description="count and list; change nothing")


class DestinationRecovered(BaseModel):
    count: int = Field(description="deliveries made (or, on a dry run, that would be)")
    delivery_ids: list[uuid.UUID] = Field(description="the new deliveries (empty on a dry run)")
    missed_events: int = Field(description="events that had no delivery to the destination")
    disabled_failures: int = Field(description="its `destination_disabled` failures replayed")
    event_ids: list[uuid.UUID] = Field(description="the events given a delivery")
    replayed_ids: list[uuid.UUID] = Field(description="the failed deliveries replayed")
    more: bool = Field(description="the bound was reached: call again to continue")
    dry_run: bool


class DestinationRecovery(BaseModel):
    """What a destination missed while it was off (shown when it is enabled again)."""

    since: datetime = Field(description="when it was disabled")
    missed_events: int = Field(description="matching events that arrived, with no delivery")
    disabled_failures: int = Field(description="deliveries that failed as destination_disabled")


class DestinationPatched(Destination):
    recovery: DestinationRecovery | None = Field(
        default=None,
        description="only when this change enabled a disabled destination: what it missed; "
        "`POST /v1/destinations/{id}/recover` with `since` delivers it",
    )


class DestinationTestSend(Strict):
    """Which catalog example a test send carries (no body: a `courier.test` event)."""

    event_type: EventType = Field(
        description="a type of the event-type catalog: the test event has this type"
    )
    example: int = Field(
        default=0,
        ge=0,
        le=999,
        description="which of its example payloads, from 0: the type's `example`, then "
        "its schema's `examples`, in order",
    )


class DestinationTestSent(BaseModel):
    event_id: uuid.UUID = Field(description="the test event")
    delivery_id: uuid.UUID = Field(description="its one delivery, to this destination")
    event_type: str = Field(description="`courier.test`, or the catalog type asked for")
    filter_bypassed: bool = Field(
        description="true when the destination has a filter: a test is sent regardless"
    )


class DestinationHealth(BaseModel):
    destination_id: uuid.UUID
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    consecutive_failures: int = Field(description="failed attempts since the last success")
    last_success_at: datetime | None
    last_attempt_at: datetime | None
    attempts_last_hour: int
    success_ratio_last_hour: float | None = Field(
        description="succeeded ÷ finished attempts over the last hour; null without attempts"
    )
    failing_since: datetime | None = Field(
        description="the first failed attempt after the last success, while it was enabled"
    )
    gone_since: datetime | None = Field(
        description="the first of an unbroken run of `410 Gone` answers"
    )


MAX_BATCH_EVENTS = 1_000  # events in one POST /v1/events/batch


class EventBatch(Strict):
    # Items are checked one by one in the route, so one bad item answers its own 422
    # without refusing the others; the document says so: an EventCreate, or anything
    # (which the results refuse), never a refusal of the whole body.
    events: Annotated[
        list[Any],
        Field(max_length=MAX_BATCH_EVENTS),
        WithJsonSchema(
            {
                "type": "array",
                "maxItems": MAX_BATCH_EVENTS,
                "items": {
                    "anyOf": [
                        {"$ref": "#/components/schemas/EventCreate"},
                        {"description": "anything else is answered by its own 422 result"},
                    ]
                },
                "description": "at most 1,000 events, each as the body of `POST /v1/events`",
            }
        ),
    ]


class BatchEventAccepted(BaseModel):
    status: Literal[200, 202] = Field(
        description="202: written; 200: a repeated idempotency key, the first answer"
    )
    event: EventAccepted


class BatchEventRefused(BaseModel):
    status: Literal[422]
    problem: Problem = Field(description="why this event was refused; `errors` name its fields")


class EventBatchResults(BaseModel):
    results: list[BatchEventAccepted | BatchEventRefused] = Field(
        description="one per event, in request order"
    )
