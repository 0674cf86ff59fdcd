"""A destination's kind and config as the API accepts them: validated per kind, the secret
fields encrypted, every refusal a 422 naming the field (`config.exchange`, `kind`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from courier import kinds
from courier.crypto import SecretBox, SecretKeyError
from courier.destinations import config_columns
from courier.settings import Settings
from courier.web.problems import invalid_field
from courier.web.urls import broker_url_problem, url_problem


def _webhook(
    url: str | None, config: Mapping[str, Any] | None, box: SecretBox, settings: Settings
) -> dict[str, Any]:
    if config:
        raise invalid_field("config", "is only for kinds other than webhook")
    if url is None:
        raise invalid_field("url", "is required for a webhook destination")
    reason = url_problem(url, settings)
    if reason is not None:
        raise invalid_field("url", reason)
    return config_columns("webhook", url, {}, box)


def _broker(
    kind: str, config: Mapping[str, Any], box: SecretBox, settings: Settings
) -> dict[str, Any]:
    spec = kinds.SPECS[kind]
    try:
        valid = spec.config.model_validate(dict(config)).model_dump()
    except ValidationError as exc:
        error = exc.errors()[0]
        path = ".".join(str(p) for p in ("config", *error.get("loc", ())))
        raise invalid_field(path, str(error.get("msg"))) from None
    if kind in kinds.TICKETING:
        # An HTTP server like a webhook's: the same rules, credentials in api_key only.
        field, reason = "config.base_url", url_problem(valid["base_url"], settings)
    else:
        field, reason = "config.url", broker_url_problem(valid["url"], spec.schemes, settings)
    if reason is not None:
        raise invalid_field(field, reason)
    return config_columns(kind, "", valid, box)


def _server(kind: str) -> str:
    return "config.base_url" if kind in kinds.TICKETING else "config.url"


def _installed(kind: str) -> None:
    missing = kinds.extra_missing(kind)
    if missing is not None:
        raise invalid_field("kind", missing)


def for_create(
    kind: str,
    url: str | None,
    config: Mapping[str, Any] | None,
    box: SecretBox,
    settings: Settings,
) -> dict[str, Any]:
    """The columns `kind`, `url`, `config`, `config_secrets` of a new destination."""
    if kind == "webhook":
        return _webhook(url, config, box, settings)
    _installed(kind)
    if url is not None:
        raise invalid_field("url", f"is not used by {kind} destinations: set {_server(kind)}")
    if config is None:
        raise invalid_field("config", f"is required for a {kind} destination")
    return _broker(kind, config, box, settings)


def for_update(
    current: Mapping[str, Any], changes: Mapping[str, Any], box: SecretBox, settings: Settings
) -> dict[str, Any]:
    """The same columns after a PATCH; sent config fields replace the stored ones."""
    kind = changes.get("kind", current["kind"])
    config = changes.get("config")
    if kind == "webhook":
        url = changes.get("url", current["url"] if current["kind"] == "webhook" else None)
        return _webhook(url, config, box, settings)
    _installed(kind)
    if "url" in changes:
        raise invalid_field("url", f"is not used by {kind} destinations: set {_server(kind)}")
    if kind != current["kind"]:
        if config is None:
            raise invalid_field("config", f"is required when the kind changes to {kind}")
        return _broker(kind, config, box, settings)
    stored: dict[str, Any] = dict(current["config"] or {})
    for name, token in (current["config_secrets"] or {}).items():
        if config is not None and name in config:
            continue  # replaced: the stored value is not needed
        try:
            stored[name] = box.decrypt(token)
        except SecretKeyError:
            raise invalid_field(
                f"config.{name}", "the stored value cannot be decrypted; send it again"
            ) from None
    return _broker(kind, {**stored, **(config or {})}, box, settings)
