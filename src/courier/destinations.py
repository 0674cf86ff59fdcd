"""Destinations: the stored columns of a kind's config (secret fields encrypted), and
creation with a fresh signing secret (encrypted at rest).

`create_destination` takes trusted values (scripts, the demo, tests); the API and the
console validate a request first (courier.web.kind_config, courier.web.option_fields)
and store its config through the same `config_columns`. Both insert with the same SQL
block (store/sql/destinations.sql `api_create_destination`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

from courier import destination_defaults as defaults
from courier.crypto import SecretBox
from courier.destination_options import split_options
from courier.kinds import address, split_config
from courier.signing import generate_secret
from courier.store.destinations import insert_destination


def config_columns(
    kind: str, url: str, config: Mapping[str, Any], box: SecretBox
) -> dict[str, Any]:
    """The columns `kind`, `url`, `config` and `config_secrets` of a validated config: its
    secret fields encrypted, and for a kind other than webhook `url` is the server it
    names, without credentials (what reads show)."""
    shown, hidden = split_config(config)
    if kind != "webhook":
        url = address(kind, shown, hidden) or url
    return {
        "kind": kind,
        "url": url,
        "config": Jsonb(shown, dumps=_dumps),
        "config_secrets": Jsonb({k: box.encrypt(v) for k, v in hidden.items()}, dumps=_dumps),
    }


def secret_entry(box: SecretBox, secret: str, expires_at: datetime | None = None) -> dict[str, Any]:
    return {
        "token": box.encrypt(secret),
        "created_at": datetime.now(UTC).isoformat(),
        "expires_at": expires_at.isoformat() if expires_at else None,
    }


def create_destination(
    conn: psycopg.Connection[Any],
    box: SecretBox,
    tenant_id: uuid.UUID,
    *,
    name: str,
    url: str,
    enabled: bool = True,
    event_types: Sequence[str] = (),
    max_attempts: int = defaults.MAX_ATTEMPTS,
    max_age_seconds: int = defaults.MAX_AGE_SECONDS,
    timeout_ms: int = defaults.TIMEOUT_MS,
    backoff_initial_ms: int = defaults.BACKOFF_INITIAL_MS,
    backoff_max_ms: int = defaults.BACKOFF_MAX_MS,
    max_in_flight: int = defaults.MAX_IN_FLIGHT,
    ordering: str = defaults.ORDERING,
    rate_limit_per_second: float | None = None,
    secret: str | None = None,
    kind: str = "webhook",
    config: Mapping[str, Any] | None = None,
    filter: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    payload_format: str = defaults.PAYLOAD_FORMAT,
    capture_response_body: bool = False,
) -> tuple[dict[str, Any], str]:
    """Returns the stored row and the plaintext signing secret (shown to the caller once).

    For a broker kind, `config` is already valid (the API validates what tenants send);
    its secret fields are encrypted here and `url` is stored as the display address;
    `filter` too is already valid (courier.filters).
    `options` (`headers`, `auth`, `tls_client_certificate`, `tls_ca_certificate`) is
    trusted the same way; its secret values are encrypted here.
    """
    secret = secret or generate_secret()
    shown_options, hidden_options = split_options(options or {})
    params = {
        **config_columns(kind, url, config or {}, box),
        "tenant_id": tenant_id,
        "name": name,
        "enabled": enabled,
        "event_types": list(event_types),
        "max_attempts": max_attempts,
        "max_age_seconds": max_age_seconds,
        "timeout_ms": timeout_ms,
        "backoff_initial_ms": backoff_initial_ms,
        "backoff_max_ms": backoff_max_ms,
        "max_in_flight": max_in_flight,
        "ordering": ordering,
        "rate_limit_per_second": rate_limit_per_second,
        "signing_secrets": Jsonb([secret_entry(box, secret)], dumps=_dumps),
        "filter": Jsonb(filter, dumps=_dumps) if filter else None,
        "options": Jsonb(shown_options, dumps=_dumps),
        "option_secrets": Jsonb(
            {k: box.encrypt(v) for k, v in hidden_options.items()}, dumps=_dumps
        ),
        "payload_format": payload_format,
        "capture_response_body": capture_response_body,
        "actor": None,  # no audit record (the API's create writes one)
    }
    return insert_destination(conn, params), secret


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")
