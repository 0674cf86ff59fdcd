"""Request and response bodies of the portal routes: one-time console links, the
event-type catalog, the tenant's branding and its operations destination."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, JsonValue

from courier.api.schemas import UuidText
from courier.portal import DEFAULT_EXPIRES_IN, MAX_EXPIRES_IN
from courier.web.destination_input import Strict, Text, WholeNumber

MAX_SCOPE = 100  # destinations one link may name


class PortalSessionCreate(Strict):
    role: Literal["viewer", "operator"] = Field(
        description="`viewer` only reads; `operator` also replays and manages its "
        "destinations (create, edit, enable, disable, rotate the secret, delete)"
    )
    destination_ids: list[UuidText] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_SCOPE,
        description="limit the console to these destinations; absent: every destination",
    )
    expires_in_seconds: Annotated[int, WholeNumber] = Field(
        default=DEFAULT_EXPIRES_IN,
        ge=1,
        le=MAX_EXPIRES_IN,
        description="how long the link may wait to be opened",
    )


class PortalSession(BaseModel):
    """A link as listed: never its token (only a hash of it is stored)."""

    id: uuid.UUID
    role: Literal["viewer", "operator"]
    destination_ids: list[uuid.UUID] | None = Field(
        description="the destinations it is limited to; null: every destination"
    )
    created_by: str = Field(description="who made it: `api_key:<key id>`")
    created_at: datetime
    expires_at: datetime = Field(description="it could not be opened after this time")
    redeemed_at: datetime | None = Field(description="when it was opened; null: not yet")
    revoked_at: datetime | None = Field(description="when it was revoked; null: it was not")


class PortalSessionsRevoked(BaseModel):
    revoked: int = Field(description="how many links were live and are now revoked")


class PortalSessionCreated(BaseModel):
    id: uuid.UUID = Field(description="the link's id: `DELETE /v1/portal-sessions/{id}` revokes it")
    url: str = Field(description="the one-time link; it signs its holder in once")
    expires_at: datetime = Field(description="the link cannot be opened after this time")


Description = Annotated[Text, Field(max_length=2000)]


def _schema_shape(value: Any) -> Any:
    """A JSON Schema is an object or a boolean; one clear error rather than the union's."""
    if value is not None and not isinstance(value, dict | bool):
        raise ValueError("must be a JSON Schema: an object or a boolean")
    return value


class EventTypePut(Strict):
    description: Description = ""
    schema_: Annotated[dict[str, JsonValue] | bool | None, BeforeValidator(_schema_shape)] = Field(
        default=None,
        alias="schema",
        description="JSON Schema (2020-12) every payload of this type must satisfy",
    )
    example: JsonValue = Field(
        default=None,
        description="an example payload, shown in the console; it must satisfy `schema`",
    )


class EventTypeOut(BaseModel):
    name: str
    description: str
    schema_: JsonValue = Field(alias="schema", serialization_alias="schema")
    example: JsonValue
    version: int = Field(description="grows by one on every change")
    created_at: datetime
    updated_at: datetime


AccentColor = Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$", examples=["#0b7285"])]


def _https_url(value: str) -> str:
    """An https URL with a host, no credentials, no whitespace or control characters."""
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError("must not contain whitespace or control characters")
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if parts.scheme != "https":
        raise ValueError("must be an https URL")
    if not parts.hostname or "@" in parts.netloc:
        raise ValueError("must name a host (and no credentials)")
    return value


LogoUrl = Annotated[
    # A plain str, not Text: pydantic leaves a pattern out of the document when it sits on
    # a type that already has a validator, and _https_url refuses what Text would.
    str,
    # The pattern states for the document what _https_url checks: https, a host, no
    # credentials, no whitespace or control characters.
    # (the pattern's bounds keep it under 2,000 characters)
    Field(
        pattern=r"^https://[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?([/?#][!-~]{0,1700})?$",
        examples=["https://example.com/logo.png"],
    ),
    AfterValidator(_https_url),
]


class BrandingUpdate(Strict):
    """Only the fields sent change; null clears one."""

    display_name: Annotated[Text, Field(min_length=1, max_length=200)] | None = None
    accent_color: AccentColor | None = None
    logo_url: LogoUrl | None = None


class Branding(BaseModel):
    display_name: str | None
    accent_color: str | None
    logo_url: str | None


class OperationsDestinationSet(Strict):
    destination_id: UuidText = Field(
        description="one of the tenant's destinations: it receives the tenant's "
        "`courier.destination.disabled` and `courier.delivery.dead_lettered` events"
    )


class OperationsDestination(BaseModel):
    destination_id: uuid.UUID | None = Field(
        description="the tenant's operations destination; null when none is named (or it "
        "was deleted)"
    )
