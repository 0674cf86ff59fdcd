"""Request and response bodies of the HTTP API (separate from the tables they come from).

Bounds mirror the schema's CHECK constraints, so an out-of-range value is a 422 that
names the field, never a constraint violation from PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, model_validator

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


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null at the end"
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_backoff(initial: int | None, maximum: int | None) -> None:
    if initial is not None and maximum is not None and maximum < initial:
        raise ValueError("backoff_max_ms must be at least backoff_initial_ms")


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

    @model_validator(mode="after")
    def _backoff(self) -> DestinationCreate:
        _check_backoff(self.backoff_initial_ms, self.backoff_max_ms)
        return self


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

    @model_validator(mode="after")
    def _no_nulls(self) -> DestinationUpdate:
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        _check_backoff(self.backoff_initial_ms, self.backoff_max_ms)
        return self

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
