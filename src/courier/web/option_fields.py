"""A destination's options as the API takes them (`headers`, `auth`, `tls_client_certificate`,
`tls_ca_certificate`): checked as a whole, the secret values encrypted, every refusal a
422 naming the field (`headers.Host`, `auth.token_url`, `tls_client_certificate.private_key`).

A PATCH replaces each option field it sends (null removes it); the fields it leaves out
keep their stored values, secrets included, without decrypting them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from psycopg.types.json import Jsonb

from courier import destination_options as options
from courier.crypto import SecretBox
from courier.settings import Settings
from courier.web.problems import invalid_field
from courier.web.urls import url_problem


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


def _plain(value: Any) -> Any:
    return value.model_dump() if hasattr(value, "model_dump") else value


def _check_headers(headers: Mapping[str, str]) -> None:
    seen: set[str] = set()
    for name in headers:
        reason = options.header_name_problem(name)
        if reason is not None:
            raise invalid_field(f"headers.{name}", reason)
        if name.lower() in seen:
            raise invalid_field(
                f"headers.{name}", "repeats a header name (names are case-insensitive)"
            )
        seen.add(name.lower())


def _check(
    sent: Mapping[str, Any],
    merged_shown: Mapping[str, Any],
    url: str | None,
    kind: str,
    settings: Settings,
) -> None:
    """Checks of the option fields just sent, against the whole destination they join."""
    if "headers" in sent and sent["headers"] is not None:
        _check_headers(sent["headers"])
    auth = sent.get("auth")
    if auth is not None and auth["type"] == "oauth2_client_credentials":
        reason = url_problem(auth["token_url"], settings)
        if reason is not None:
            raise invalid_field("auth.token_url", reason)
    certificate = sent.get("tls_client_certificate")
    if certificate is not None:
        found = options.key_problem(certificate["certificate"], certificate["private_key"])
        if found is not None:
            raise invalid_field(f"tls_client_certificate.{found[0]}", found[1])
    ca = sent.get("tls_ca_certificate")
    if ca is not None:
        reason = options.certificates_problem(ca)
        if reason is not None:
            raise invalid_field("tls_ca_certificate", reason)
    # Rules between fields, judged on the destination as it will be stored.
    names = {n.lower(): n for n in merged_shown.get("headers", ())}
    if "authorization" in names and "auth" in merged_shown:
        field = f"headers.{names['authorization']}" if "headers" in sent else "auth"
        raise invalid_field(field, "headers.Authorization and auth conflict: send one of them")
    for field in ("auth", "tls_client_certificate", "tls_ca_certificate"):
        if field in merged_shown and kind != "webhook":
            raise invalid_field(field if field in sent else "kind", f"{field} is only for webhooks")
    for field in ("tls_client_certificate", "tls_ca_certificate"):
        if field in merged_shown and url is not None and not url.lower().startswith("https:"):
            raise invalid_field(field if field in sent else "url", f"{field} needs an https url")


def columns(
    sent: Mapping[str, Any],
    current: Mapping[str, Any] | None,
    url: str | None,
    kind: str,
    box: SecretBox,
    settings: Settings,
) -> dict[str, Any]:
    """The `options` and `option_secrets` columns after `sent` (the option fields of a
    create, or of a PATCH that `current`, the stored row, receives)."""
    sent = {k: _plain(v) for k, v in sent.items() if k in options.OPTION_FIELDS}
    shown: dict[str, Any] = dict(current["options"]) if current else {}
    tokens: dict[str, str] = dict(current["option_secrets"]) if current else {}
    for field in sent:
        shown.pop(field, None)
        tokens = {p: t for p, t in tokens.items() if p.partition(".")[0] != field}
    new_shown, new_secret = options.split_options({k: v for k, v in sent.items() if v})
    shown.update(new_shown)
    _check(sent, shown, url, kind, settings)
    tokens.update({path: box.encrypt(value) for path, value in new_secret.items()})
    return {
        "options": Jsonb(shown, dumps=_dumps),
        "option_secrets": Jsonb(tokens, dumps=_dumps),
    }
