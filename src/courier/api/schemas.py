"""Request and response bodies of the HTTP API (separate from the tables they come from).

Bounds mirror the schema's CHECK constraints, so an out-of-range value is a 422 that
names the field, never a constraint violation from PostgreSQL.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from courier import destination_options as opts
from courier.api.problems import Problem
from courier.kinds import Kind, shown_config
from courier.states import BulkReplayState, OutcomeName, StateName

T = TypeVar("T")

DeliveryState = StateName
AttemptOutcome = OutcomeName


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
# a UUID in its hyphenated text form: the cursors of lists walked by id
UUID_TEXT_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
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

# The destination URLs the API accepts with its default settings, as the document states
# them: https, a host name (its last label starts with a letter, so no IP literal) that is
# not localhost, an optional port 1-65535, and no whitespace or control characters. The
# API itself checks URLs in courier.api.urls (it also takes public IP literals, and http
# and private hosts when COURIER_ALLOW_PRIVATE_DESTINATIONS is set); this pattern is kept
# inside what those checks accept, so a URL that matches it is never refused.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_LAST_LABEL = r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_NOT_LOCALHOST = r"(?!(?:[A-Za-z0-9-]+\.)*[Ll][Oo][Cc][Aa][Ll][Hh][Oo][Ss][Tt](?:[:/?#]|$))"
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
URL_PATTERN = (
    rf"^https://{_NOT_LOCALHOST}(?:{_LABEL}\.)*{_LAST_LABEL}(?::{_PORT})?"
    r"(?:[/?#][^\s\x00-\x1f\x7f\x85]*)?$"
)
Url = Annotated[
    Text,
    Field(
        min_length=1,
        max_length=2048,
        examples=["https://example.com/hook"],
        # in the document only: courier.api.urls makes the checks, with the settings
        json_schema_extra={"pattern": URL_PATTERN},
        description="https, to a public host; with COURIER_ALLOW_PRIVATE_DESTINATIONS also "
        "http and loopback or private hosts",
    ),
]


def _whole_number(value: Any) -> Any:
    """JSON does not tell 5 from 5.0 and the document's `integer` admits both; a float
    with no fraction is that integer (anything else still fails the strict check)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WholeNumber = BeforeValidator(_whole_number)
MaxAttempts = Annotated[int, Field(ge=1, le=100), WholeNumber]
MaxAgeSeconds = Annotated[int, Field(ge=1, le=2_147_483_647), WholeNumber]
TimeoutMs = Annotated[int, Field(ge=100, le=300_000), WholeNumber]
BackoffInitialMs = Annotated[int, Field(ge=100, le=2_147_483_647), WholeNumber]
# 2**53 - 1: the largest integer every JSON client reads exactly (and far beyond any
# useful backoff); the column is a bigint
BackoffMaxMs = Annotated[int, Field(ge=100, le=9_007_199_254_740_991), WholeNumber]
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
    WholeNumber,
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null at the end"
    )


class _Strict(BaseModel):
    """A request body: unknown fields and loose types (`"1"` for 1, 0 for false) are 422s."""

    model_config = ConfigDict(extra="forbid", strict=True)


# Destination options (courier.destination_options keeps the rules and the storage).
# A pattern is stated before the storable-text check, or the document would lose it.
_Storable = AfterValidator(_storable)
HeaderValue = Annotated[
    str,
    Field(max_length=opts.MAX_HEADER_VALUE_CHARS, pattern=opts.HEADER_VALUE_PATTERN),
    _Storable,
]
_Visible = Annotated[str, Field(min_length=1, max_length=4096, pattern=r"^[\x21-\x7e]+$")]
_OneLine = Annotated[
    str, Field(min_length=1, max_length=1024, pattern=opts.HEADER_VALUE_PATTERN), _Storable
]
# The PEM formats are the document's own (`pem-certificates`, `pem-private-key`): a PEM
# must parse, which no pattern can say; the schemathesis hooks generate real ones.
PemCertificates = Annotated[
    Text,
    Field(
        min_length=1,
        max_length=opts.MAX_PEM_CHARS,
        json_schema_extra={"format": "pem-certificates"},
    ),
]
PemPrivateKey = Annotated[
    Text,
    Field(
        min_length=1, max_length=opts.MAX_PEM_CHARS, json_schema_extra={"format": "pem-private-key"}
    ),
]
SECRET_NOTE = "secret: stored encrypted, shown as `<redacted>`"


class BasicAuth(_Strict):
    type: Literal["basic"]
    username: Annotated[
        str, Field(min_length=1, max_length=1024, pattern=r"^[^\x00-\x1f\x7f:]+$"), _Storable
    ] = Field(description="shown in reads; no colon (RFC 7617)")
    password: Annotated[
        str, Field(max_length=1024, pattern=opts.HEADER_VALUE_PATTERN), _Storable
    ] = Field(description=SECRET_NOTE)


class BearerAuth(_Strict):
    type: Literal["bearer"]
    token: _Visible = Field(description=SECRET_NOTE)


class OAuth2ClientCredentials(_Strict):
    type: Literal["oauth2_client_credentials"]
    token_url: Url = Field(description="where courier asks for tokens; the same rules as `url`")
    client_id: _OneLine
    client_secret: _OneLine = Field(description=SECRET_NOTE)
    scope: _OneLine | None = None
    audience: _OneLine | None = None


class TlsClientCertificateBody(_Strict):
    certificate: PemCertificates = Field(
        description="PEM: the client certificate, then any intermediates"
    )
    private_key: PemPrivateKey = Field(
        description="PEM: its unencrypted private key, which must match the certificate; "
        + SECRET_NOTE
    )


def _case_blind(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


# The header names a destination may set, as the document states them: a token that is
# not one of the names courier sets itself (compared without regard to case).
_RESERVED_NAMES = "|".join(
    [f"{_case_blind(n)}$" for n in sorted(opts.RESERVED_HEADERS | {opts.EVENT_TYPE_HEADER})]
    + [_case_blind(opts.RESERVED_PREFIX)]
)
HEADER_NAME_DOC_PATTERN = f"^(?!{_RESERVED_NAMES})" + opts.HEADER_NAME_PATTERN[1:]
Headers = Annotated[
    dict[str, HeaderValue],
    Field(max_length=opts.MAX_HEADERS),
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": opts.MAX_HEADERS,
            "propertyNames": {"pattern": HEADER_NAME_DOC_PATTERN},
            "additionalProperties": {
                "type": "string",
                "maxLength": opts.MAX_HEADER_VALUE_CHARS,
                "pattern": opts.HEADER_VALUE_PATTERN,
            },
            "description": "extra request headers, at most 20; names are HTTP tokens, "
            "compared without regard to case (each at most once), and not `webhook-*`, "
            "`content-type`, `content-length`, `host`, `transfer-encoding`, `connection` or "
            "`courier-event-type`; not `Authorization` together with `auth`. Values are "
            "secret: stored encrypted, shown as `<redacted>`",
        }
    ),
]
AuthField = Annotated[
    BasicAuth | BearerAuth | OAuth2ClientCredentials,
    Field(
        discriminator="type",
        description="how courier authenticates to the receiver; secret fields are stored "
        "encrypted and shown as `<redacted>`. For `oauth2_client_credentials` courier "
        "fetches, caches and refreshes the token (before expiry, and once on a 401)",
    ),
]
TlsClientCertificate = Annotated[
    TlsClientCertificateBody,
    Field(
        description="mutual TLS: the certificate courier presents (https destinations only); "
        "the key must match the certificate"
    ),
]
TlsCaCertificate = Annotated[
    PemCertificates,
    Field(
        description="PEM of one or more CA certificates the server's certificate may chain "
        "to, besides the system's trust store (https destinations only; hostname "
        "verification still applies)"
    ),
]
PayloadFormat = Annotated[
    Literal["raw", "envelope"],
    Field(
        description='raw: the body is the event payload; envelope: `{"type", "timestamp", '
        '"data"}` with the payload as `data`'
    ),
]
CaptureResponseBody = Annotated[
    bool,
    Field(
        description="keep at most 4 KiB of each response body, redacted, on its attempt "
        "as `response_body_excerpt`"
    ),
]


KindField = Annotated[
    Kind,
    Field(
        description="how deliveries are sent: a signed HTTP POST, a message to a broker, "
        "or a ticket in a ticketing system (`redmine`)"
    ),
]
KindConfig = Annotated[
    dict[str, JsonValue],
    Field(
        description="the kind's settings (not for webhooks); a broker's `url` (credentials "
        "included) and a ticketing system's `api_key` are stored encrypted and shown as "
        "`<redacted>`"
    ),
]

PayloadFilter = Annotated[
    dict[str, JsonValue],
    Field(
        description="only events whose payload matches create deliveries: keys are dotted "
        "paths (or `$and`, `$or`, `$not`), values a JSON value to equal or an object of "
        "operators `$eq $ne $gt $gte $lt $lte $in $nin $exists $not`; see "
        "docs/destinations.md. `{}` matches every event",
        examples=[{"data.amount": {"$gte": 100}}],
    ),
]


class DestinationCreate(_Strict):
    name: Name
    url: Url | None = Field(default=None, description="required for webhooks only")
    kind: KindField = "webhook"
    config: KindConfig | None = None
    enabled: bool = True
    event_types: EventTypes = Field(default_factory=list, description="empty: every event type")
    max_attempts: MaxAttempts = 8
    max_age_seconds: MaxAgeSeconds = 259_200
    timeout_ms: TimeoutMs = 10_000
    backoff_initial_ms: BackoffInitialMs = 5_000
    backoff_max_ms: BackoffMaxMs = Field(
        default=36_000_000, description="at least `backoff_initial_ms`"
    )
    max_in_flight: MaxInFlight = 16
    ordering: Ordering = "unordered"
    rate_limit_per_second: RateLimit | None = None
    filter: PayloadFilter | None = None
    headers: Headers | None = None
    auth: AuthField | None = None
    tls_client_certificate: TlsClientCertificate | None = None
    tls_ca_certificate: TlsCaCertificate | None = None
    payload_format: PayloadFormat = "raw"
    capture_response_body: CaptureResponseBody = False


def _patch_schema(schema: dict[str, Any]) -> None:
    """The document shows a PATCH field as optional: left out, not null, unless null is a
    value it takes (None in the model means "not sent")."""
    for name, field in schema.get("properties", {}).items():
        field.pop("default", None)
        branches = field.get("anyOf")
        if name in DestinationUpdate.NULLABLE or not isinstance(branches, list):
            continue
        rest = [b for b in branches if b != {"type": "null"}]
        if len(rest) == 1:
            del field["anyOf"]
            field.update({**rest[0], **field})


class DestinationUpdate(_Strict):
    """Only the fields sent change; null is not a value any of them takes (None here only
    means "not sent", so the document leaves null out; `rate_limit_per_second` and
    `filter` are the exceptions: null removes the limit or the filter)."""

    model_config = ConfigDict(json_schema_extra=_patch_schema)
    NULLABLE: ClassVar[frozenset[str]] = frozenset(
        {"rate_limit_per_second", "filter", *opts.OPTION_FIELDS}
    )

    name: Name | None = None
    url: Url | None = None
    kind: KindField | None = None
    config: KindConfig | None = Field(
        default=None,
        description="fields sent replace the stored ones (an omitted secret keeps its value)",
    )
    enabled: bool | None = None
    event_types: EventTypes | None = None
    max_attempts: MaxAttempts | None = None
    max_age_seconds: MaxAgeSeconds | None = None
    timeout_ms: TimeoutMs | None = None
    backoff_initial_ms: BackoffInitialMs | None = None
    backoff_max_ms: BackoffMaxMs | None = Field(
        default=None,
        description="at least `backoff_initial_ms` (the one sent, or else the one stored)",
    )
    max_in_flight: MaxInFlight | None = None
    ordering: Ordering | None = None
    rate_limit_per_second: RateLimit | None = Field(default=None, description="null: no limit")
    filter: PayloadFilter | None = Field(default=None, description="null: no filter")
    headers: Headers | None = Field(default=None, description="replaces them all; null: none")
    auth: AuthField | None = Field(default=None, description="replaces it; null: none")
    tls_client_certificate: TlsClientCertificate | None = Field(
        default=None, description="replaces it; null: none"
    )
    tls_ca_certificate: TlsCaCertificate | None = Field(
        default=None, description="replaces them; null: none"
    )
    payload_format: PayloadFormat | None = None
    capture_response_body: CaptureResponseBody | None = None

    @field_validator("*")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        # Runs only for fields the request sent (defaults are not validated).
        if value is None and info.field_name not in cls.NULLABLE:
            raise ValueError(f"{info.field_name} cannot be null")
        return value

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in sorted(self.model_fields_set)}


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


class SecretRotate(_Strict):
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


class EventCreate(_Strict):
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


def _time_query(value: Any) -> Any:
    """A query's date-time is RFC 3339 text; not a number of seconds, as pydantic allows."""
    if isinstance(value, str) and not re.match(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ]", value):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2025-01-01T12:00:00Z")
    return value


TimeQuery = Annotated[AwareDatetime, BeforeValidator(_time_query)]


class DeadLetterReplay(_Strict):
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


class DestinationRecover(_Strict):
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


class DestinationTestSend(_Strict):
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


class EventBatch(_Strict):
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
