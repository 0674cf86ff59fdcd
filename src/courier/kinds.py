"""Destination kinds: what each kind's `config` holds, which of it is secret, and which
optional extra its adapter needs.

A webhook has no config (its URL is the destination's `url`). Every broker kind names its
broker in `config.url`, credentials and all; that field is secret: encrypted at rest,
shown as `"<redacted>"`, and kept out of every attempt summary and log line. A ticketing
kind (`redmine`) names its server in `config.base_url` (not secret: it may not carry
credentials) and keeps its credential in the secret `config.api_key`. The rest of the
config is stored and shown as it is.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal
from urllib.parse import unquote, urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from courier import ticket_templates

Kind = Literal["webhook", "rabbitmq", "nats", "redis_stream", "redmine"]
KINDS: Final = ("webhook", "rabbitmq", "nats", "redis_stream", "redmine")
SECRET_SHOWN: Final = "<redacted>"  # what a read shows in place of a secret config field


def _no_nul(value: str) -> str:
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError("must not contain control characters")
    try:
        value.encode("utf-8")  # PostgreSQL text and the encryption both need UTF-8
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


_Text = Annotated[str, AfterValidator(_no_nul)]
BrokerUrl = Annotated[_Text, Field(min_length=1, max_length=2048)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Config(_Strict):
    url: BrokerUrl = Field(description="the broker's URL, credentials included (secret)")


class RabbitMQConfig(_Config):
    exchange: Annotated[_Text, Field(max_length=255)] = Field(
        description='the exchange to publish to (`""` is the default exchange)'
    )
    routing_key: Annotated[_Text, Field(max_length=255)] = ""


class NatsConfig(_Config):
    subject: Annotated[_Text, Field(min_length=1, max_length=255, pattern=r"^[^\s*>]+$")] = Field(
        description="a JetStream subject, without wildcards"
    )


class RedisStreamConfig(_Config):
    stream: Annotated[_Text, Field(min_length=1, max_length=255)]
    maxlen: Annotated[int, Field(ge=1, le=2**62)] | None = Field(
        default=None, description="trim the stream to about this many entries (approximate)"
    )


Template = Annotated[str, Field(max_length=10_000), AfterValidator(ticket_templates.check)]
EVENT_TYPE_PATTERN: Final = r"^[A-Za-z0-9_:\-]+(\.[A-Za-z0-9_:\-]+)*$"
DEFAULT_NOTE: Final = "{{ type }} at {{ timestamp }}\n\n{{ payload | tojson }}"


class RedmineConfig(_Strict):
    """A Redmine project that events open, annotate and close issues in."""

    base_url: BrokerUrl = Field(description="the Redmine server, e.g. https://redmine.example.com")
    api_key: Annotated[_Text, Field(min_length=1, max_length=200)] = Field(
        description="a Redmine API key (secret); its user needs to add and edit issues"
    )
    project: Annotated[_Text, Field(min_length=1, max_length=100)] = Field(
        description="the project's identifier or id"
    )
    tracker_id: Annotated[int, Field(ge=1, le=2**31 - 1)]
    correlation_field_id: Annotated[int, Field(ge=1, le=2**31 - 1)] = Field(
        description="the issue custom field (a searchable text field usable as a filter) "
        "that holds the correlation key"
    )
    correlation_key: Template = Field(
        description="template of the key that ties events to one issue"
    )
    subject: Template
    description: Template = DEFAULT_NOTE
    note: Template = Field(default=DEFAULT_NOTE, description="template of a later event's note")
    priority_id: Template | None = Field(
        default=None, description="template rendering a priority id (empty: Redmine's default)"
    )
    custom_fields: Annotated[
        dict[Annotated[str, Field(pattern=r"^[1-9][0-9]{0,9}$")], Template],
        Field(max_length=20),
    ] = Field(default_factory=dict, description="custom field id -> value template")
    resolving_event_types: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=255, pattern=EVENT_TYPE_PATTERN)]],
        Field(max_length=50),
    ] = Field(default_factory=list, description="event types that close the issue")
    closed_status_id: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = Field(
        default=None, description="the status a resolving event sets"
    )

    @model_validator(mode="after")
    def _closing_needs_a_status(self) -> RedmineConfig:
        if self.resolving_event_types and self.closed_status_id is None:
            raise ValueError("closed_status_id is required when resolving_event_types is set")
        return self


@dataclass(frozen=True, slots=True)
class KindSpec:
    config: type[_Strict]
    schemes: frozenset[str]  # accepted broker URL schemes
    module: str  # the import that tells whether the optional extra is installed
    extra: str  # courier-webhooks[<extra>]
    package: str  # what the extra installs, for the error message
    default_port: int


SPECS: Final[Mapping[str, KindSpec]] = {
    "rabbitmq": KindSpec(
        RabbitMQConfig, frozenset({"amqp", "amqps"}), "aio_pika", "rabbitmq", "aio-pika", 5672
    ),
    "nats": KindSpec(NatsConfig, frozenset({"nats", "tls"}), "nats", "nats", "nats-py", 4222),
    "redis_stream": KindSpec(
        RedisStreamConfig, frozenset({"redis", "rediss"}), "redis", "redis", "redis", 6379
    ),
    # Templates need Jinja2, which courier always installs: no extra.
    "redmine": KindSpec(RedmineConfig, frozenset({"http", "https"}), "jinja2", "", "jinja2", 443),
}
TICKETING: Final = frozenset({"redmine"})  # kinds whose server is `base_url`, an HTTP URL
# Config fields that are secret, in every kind that has them.
SECRET_FIELDS: Final = frozenset({"url", "api_key"})


def extra_missing(kind: str) -> str | None:
    """Why `kind` cannot be delivered by this installation, or None when it can."""
    spec = SPECS.get(kind)
    if spec is None:
        return None
    if importlib.util.find_spec(spec.module) is None:
        return (
            f"the {kind} kind needs the optional extra courier-webhooks[{spec.extra}] "
            f"({spec.package}), which is not installed"
        )
    return None


def split_config(config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(what may be shown, what is secret) of a validated config."""
    shown = {k: v for k, v in config.items() if k not in SECRET_FIELDS}
    secret = {k: v for k, v in config.items() if k in SECRET_FIELDS and v is not None}
    return shown, secret


def shown_config(config: Mapping[str, Any], secret_names: Any) -> dict[str, Any]:
    """A config as reads show it: the secret fields named, their values `<redacted>`."""
    return {**config, **{name: SECRET_SHOWN for name in sorted(secret_names)}}


def address(kind: str, shown: Mapping[str, Any], secret: Mapping[str, str]) -> str | None:
    """What a non-webhook destination's `url` column shows: its server, no credentials."""
    if kind in TICKETING:
        return str(shown.get("base_url", "")).rstrip("/") or None
    if "url" in secret:
        return display_url(secret["url"])
    return None


def display_url(url: str) -> str:
    """The broker URL without credentials, path or query: what `url` shows for a broker."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def url_secrets(url: str) -> tuple[str, ...]:
    """The credentials a broker URL carries, for redaction (the whole URL is one too)."""
    found = [url]
    try:
        parts = urlsplit(url)
    except ValueError:
        return tuple(found)
    for value in (parts.password, parts.username):
        if value:
            found += [value, unquote(value)]  # libraries may quote either form
    if parts.query:
        values = [v.partition("=")[2] for v in parts.query.split("&") if "=" in v]
        found += values + [unquote(v) for v in values]
    return tuple(v for v in dict.fromkeys(found) if len(v) >= 4)
