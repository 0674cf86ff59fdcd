"""The request bodies that create and change a destination, and the field types they
share with the API's other bodies. The API and the console's forms validate with these
same models, so a value one accepts the other accepts.

Bounds mirror the schema's CHECK constraints, so an out-of-range value is a 422 that
names the field, never a constraint violation from PostgreSQL.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from courier import destination_defaults as defaults
from courier import destination_options as opts
from courier.kinds import Kind


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
# API itself checks URLs in courier.web.urls (it also takes public IP literals, and http
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
        # in the document only: courier.web.urls makes the checks, with the settings
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


class Strict(BaseModel):
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


class BasicAuth(Strict):
    type: Literal["basic"]
    username: Annotated[
        str, Field(min_length=1, max_length=1024, pattern=r"^[^\x00-\x1f\x7f:]+$"), _Storable
    ] = Field(description="shown in reads; no colon (RFC 7617)")
    password: Annotated[
        str, Field(max_length=1024, pattern=opts.HEADER_VALUE_PATTERN), _Storable
    ] = Field(description=SECRET_NOTE)


class BearerAuth(Strict):
    type: Literal["bearer"]
    token: _Visible = Field(description=SECRET_NOTE)


class OAuth2ClientCredentials(Strict):
    type: Literal["oauth2_client_credentials"]
    token_url: Url = Field(description="where courier asks for tokens; the same rules as `url`")
    client_id: _OneLine
    client_secret: _OneLine = Field(description=SECRET_NOTE)
    scope: _OneLine | None = None
    audience: _OneLine | None = None


class TlsClientCertificateBody(Strict):
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


class DestinationCreate(Strict):
    name: Name
    url: Url | None = Field(default=None, description="required for webhooks only")
    kind: KindField = "webhook"
    config: KindConfig | None = None
    enabled: bool = True
    event_types: EventTypes = Field(default_factory=list, description="empty: every event type")
    max_attempts: MaxAttempts = defaults.MAX_ATTEMPTS
    max_age_seconds: MaxAgeSeconds = defaults.MAX_AGE_SECONDS
    timeout_ms: TimeoutMs = defaults.TIMEOUT_MS
    backoff_initial_ms: BackoffInitialMs = defaults.BACKOFF_INITIAL_MS
    backoff_max_ms: BackoffMaxMs = Field(
        default=defaults.BACKOFF_MAX_MS, description="at least `backoff_initial_ms`"
    )
    max_in_flight: MaxInFlight = defaults.MAX_IN_FLIGHT
    ordering: Ordering = defaults.ORDERING
    rate_limit_per_second: RateLimit | None = None
    filter: PayloadFilter | None = None
    headers: Headers | None = None
    auth: AuthField | None = None
    tls_client_certificate: TlsClientCertificate | None = None
    tls_ca_certificate: TlsCaCertificate | None = None
    payload_format: PayloadFormat = defaults.PAYLOAD_FORMAT
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


class DestinationUpdate(Strict):
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
