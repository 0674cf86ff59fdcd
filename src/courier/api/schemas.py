"""Request and response bodies of the HTTP API (separate from the tables they come from).

Bounds mirror the schema's CHECK constraints, so an out-of-range value is a 422 that
names the field, never a constraint violation from PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    ValidationInfo,
    field_validator,
)

T = TypeVar("T")

DeliveryState = Literal[
    "pending", "delivering", "delivered", "retry_scheduled", "failed", "dead_lettered"
]
AttemptOutcome = Literal["succeeded", "retryable_failure", "permanent_failure", "abandoned"]


def _storable(value: str) -> str:
    """PostgreSQL text holds neither NUL nor lone surrogates; refuse them as a 422."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


Text = Annotated[str, AfterValidator(_storable)]
EVENT_TYPE_PATTERN = r"^[A-Za-z0-9_:\-]+(\.[A-Za-z0-9_:\-]+)*$"
EVENT_FILTER_PATTERN = r"^(\*|[A-Za-z0-9_:\-]+(\.[A-Za-z0-9_:\-]+)*(\.\*)?)$"
EventType = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        pattern=EVENT_TYPE_PATTERN,
        examples=["order.created"],
        description="dot-separated name of letters, digits, `_`, `-` and `:`",
    ),
]
EventTypeFilter = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        pattern=EVENT_FILTER_PATTERN,
        examples=["order.created", "invoice.*"],
        description="an exact event type, `prefix.*` for a family, or `*` for all",
    ),
]
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")]
Name = Annotated[Text, Field(min_length=1, max_length=200)]
Url = Annotated[Text, Field(min_length=1, max_length=2048, examples=["https://example.com/hook"])]
MaxAttempts = Annotated[int, Field(ge=1, le=100)]
MaxAgeSeconds = Annotated[int, Field(ge=1, le=2_147_483_647)]
TimeoutMs = Annotated[int, Field(ge=100, le=300_000)]
BackoffInitialMs = Annotated[int, Field(ge=100, le=2_147_483_647)]
BackoffMaxMs = Annotated[int, Field(ge=100, le=9_223_372_036_854_775_807)]
EventTypes = Annotated[list[EventTypeFilter], Field(max_length=100)]
Ordering = Annotated[
    Literal["unordered", "fifo"],
    Field(
        description="fifo: the next delivery waits until the one before it is terminal; "
        "retries of the head hold the line"
    ),
]
RateLimit = Annotated[
    float,
    Field(gt=0, le=100_000, description="requests per second across all workers"),
]
MaxInFlight = Annotated[
    int,
    Field(
        ge=1,
        le=10_000,
        description="deliveries to this destination in flight at once, across all workers",
    ),
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null at the end"
    )


class _Strict(BaseModel):
    """A request body: unknown fields and loose types (`"1"` for 1, 0 for false) are 422s."""

    model_config = ConfigDict(extra="forbid", strict=True)


class DestinationCreate(_Strict):
    name: Name
    url: Url
    enabled: bool = True
    event_types: EventTypes = Field(default_factory=list, description="empty: every event type")
    max_attempts: MaxAttempts = 8
    max_age_seconds: MaxAgeSeconds = 259_200
    timeout_ms: TimeoutMs = 10_000
    backoff_initial_ms: BackoffInitialMs = 5_000
    backoff_max_ms: BackoffMaxMs = 36_000_000
    max_in_flight: MaxInFlight = 16
    ordering: Ordering = "unordered"
    rate_limit_per_second: RateLimit | None = None


class DestinationUpdate(_Strict):
    """Only the fields sent change; null is not a value any of them takes."""

    name: Name | None = None
    url: Url | None = None
    enabled: bool | None = None
    event_types: EventTypes | None = None
    max_attempts: MaxAttempts | None = None
    max_age_seconds: MaxAgeSeconds | None = None
    timeout_ms: TimeoutMs | None = None
    backoff_initial_ms: BackoffInitialMs | None = None
    backoff_max_ms: BackoffMaxMs | None = None
    max_in_flight: MaxInFlight | None = None
    ordering: Ordering | None = None
    rate_limit_per_second: RateLimit | None = None

    @field_validator("*")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        # Runs only for fields the request sent (defaults are not validated).
        if value is None:
            raise ValueError(f"{info.field_name} cannot be null")
        return value

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in sorted(self.model_fields_set)}


class Destination(BaseModel):
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    url: str
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
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime


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


class SecretRotate(_Strict):
    grace_period_seconds: int = Field(
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


class EventCreate(_Strict):
    type: EventType
    payload: JsonValue = Field(description="any JSON value; delivered as the webhook body")
    idempotency_key: IdempotencyKey | None = None


class EventDelivery(BaseModel):
    id: uuid.UUID
    destination_id: uuid.UUID
    state: DeliveryState


class EventAccepted(BaseModel):
    id: uuid.UUID
    deliveries: list[EventDelivery]


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


class DeliveryWithAttempts(Delivery):
    attempts: list[Attempt] = Field(description="oldest first")


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


# Operations: replay, bulk replay, outage recovery, destination health (issue 9).

ReplayState = Literal["dead_lettered", "failed"]
# JSON has no uuid or date-time type: these take their text form despite _Strict
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


class DeadLetterReplay(_Strict):
    """Which terminal deliveries to replay; every field narrows the selection."""

    destination_id: UuidText | None = None
    since: TimeText | None = Field(default=None, description="ended at or after this time")
    until: TimeText | None = Field(default=None, description="ended before this time")
    states: list[ReplayState] = Field(
        default_factory=lambda: list[ReplayState](["dead_lettered"]), min_length=1, max_length=2
    )
    dry_run: bool = Field(default=False, description="count and list; change nothing")
    cursor: str | None = Field(
        default=None, max_length=200, description="`next_cursor` of the previous call"
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


class DestinationRecover(_Strict):
    since: TimeText = Field(description="the start of the outage (e.g. `recovery.since`)")
    until: TimeText | None = Field(default=None, description="the end of the window")
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
