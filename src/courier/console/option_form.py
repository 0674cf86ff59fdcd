"""The destination form's delivery options (docs/destinations.md): the payload filter,
payload format, captured response bodies, extra headers, authentication and TLS, read
into the body the API's POST and PATCH /v1/destinations take, and the values the form
shows.

Secrets are write-only. The form never holds a stored header value, password, token,
client secret or private key; it says that one is set. A secret field left blank keeps
the stored value (read back from `option_secrets` with the secret box, so the write path
gets the whole option as a PATCH must send it); a remove control, or `none` for the
authentication type, clears it. Everything else the API checks itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from courier import destination_options as opts
from courier.console.inputs import BadField, choice_field, text_field
from courier.crypto import SecretBox
from courier.store.rows import Row

FILTER_MAX_CHARS: Final = 16_384
BLANK_HEADER_ROWS: Final = 3  # empty rows the form offers for new headers
AUTH_TYPES: Final = ("none", "basic", "bearer", "oauth2_client_credentials")
PAYLOAD_FORMATS: Final = ("raw", "envelope")
# The form's fields for each auth type: (form field, API field); secrets are opts'.
AUTH_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "basic": ("username", "password"),
    "bearer": ("token",),
    "oauth2_client_credentials": ("token_url", "client_id", "client_secret", "scope", "audience"),
}
OPTIONAL_AUTH_FIELDS: Final = frozenset({"scope", "audience"})
LIMITS: Final = {
    "filter": FILTER_MAX_CHARS,
    "header_value": opts.MAX_HEADER_VALUE_CHARS,
    "pem": opts.MAX_PEM_CHARS,
}


def stored_options(destination: Row | None, box: SecretBox) -> dict[str, Any]:
    """A stored destination's option fields whole, secrets decrypted (server side only:
    the form never shows them); {} for a new destination."""
    if destination is None:
        return {}
    opened = {path: box.decrypt(token) for path, token in destination["option_secrets"].items()}
    return opts.open_options(destination["options"], opened)


def _one(fields: Mapping[str, list[str]], name: str) -> str:
    values = fields.get(name)
    return values[0] if values else ""


def _pem(fields: Mapping[str, list[str]], name: str, api_field: str) -> str:
    """A PEM textarea's text with the browser's CRLFs as LFs and one final newline
    (blank: "")."""
    text = text_field(api_field, _one(fields, name), opts.MAX_PEM_CHARS) or ""
    text = text.replace("\r\n", "\n").strip()
    return text + "\n" if text else ""


def _same_pem(sent: str, stored: str | None) -> str:
    """The stored PEM when the form sent it back unchanged (the textarea's line ends and
    trailing space aside), so an untouched PEM is not a change."""
    if stored is not None and sent.strip() == stored.replace("\r\n", "\n").strip():
        return stored
    return sent


def _filter(fields: Mapping[str, list[str]]) -> dict[str, Any] | None:
    text = text_field("filter", _one(fields, "filter"), FILTER_MAX_CHARS)
    if text is None or not text.strip():
        return None
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BadField("filter", f"is not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise BadField("filter", "must be a JSON object")
    return document or None


def _headers(fields: Mapping[str, list[str]], stored: Mapping[str, str]) -> dict[str, str] | None:
    names = fields.get("header_name", [])
    values = fields.get("header_value", [])
    if len(values) != len(names):
        raise BadField("headers", "every header row needs a name and a value field")
    removed = set(fields.get("header_remove", []))
    headers: dict[str, str] = {}
    for raw_name, value in zip(names, values, strict=True):
        name = raw_name.strip()
        if not name:
            if value:
                raise BadField("headers", "a header value needs a name")
            continue
        if name in removed:
            continue
        if name in headers:
            raise BadField(f"headers.{name}", "repeats a header name")
        if value == "" and name in stored:
            value = stored[name]  # left blank: the stored value stays
        headers[name] = value
    return headers or None


def _auth(fields: Mapping[str, list[str]], stored: Mapping[str, Any] | None) -> Any:
    kind = choice_field("auth.type", _one(fields, "auth_type"), AUTH_TYPES) or "none"
    if kind == "none":
        return None
    same = stored if stored is not None and stored.get("type") == kind else {}
    auth: dict[str, Any] = {"type": kind}
    for name in AUTH_FIELDS[kind]:
        value = _one(fields, f"auth_{name}")
        if name in opts.SECRET_AUTH_FIELDS:
            if value == "" and name in same:
                value = same[name]  # left blank: the stored secret stays
        else:
            value = value.strip()
        if value == "" and name in OPTIONAL_AUTH_FIELDS:
            continue
        auth[name] = value
    return auth


def _client_certificate(
    fields: Mapping[str, list[str]], stored: Mapping[str, str] | None
) -> dict[str, str] | None:
    if _one(fields, "tls_client_certificate_remove"):
        return None
    certificate = _pem(fields, "tls_certificate", "tls_client_certificate.certificate")
    key = _pem(fields, "tls_private_key", "tls_client_certificate.private_key")
    if not certificate and not key:
        return None
    if stored is not None:
        certificate = _same_pem(certificate, stored["certificate"])
        if not key:
            key = stored["private_key"]  # left blank: the stored key stays
    return {"certificate": certificate, "private_key": key}


def read_options(
    fields: Mapping[str, list[str]], stored: Mapping[str, Any], *, webhook: bool
) -> dict[str, Any]:
    """The option fields of the posted form as the API's body; {} when the form has none
    (a post from a form without them changes none). `stored`: from stored_options."""
    if not _one(fields, "options_form"):
        return {}
    body: dict[str, Any] = {
        "filter": _filter(fields),
        "payload_format": choice_field(
            "payload_format", _one(fields, "payload_format"), PAYLOAD_FORMATS
        )
        or "raw",
        "capture_response_body": bool(_one(fields, "capture_response_body")),
        "headers": _headers(fields, stored.get("headers") or {}),
    }
    if webhook:  # a broker's form has no authentication or TLS fields
        body["auth"] = _auth(fields, stored.get("auth"))
        body["tls_client_certificate"] = _client_certificate(
            fields, stored.get("tls_client_certificate")
        )
        ca = _pem(fields, "tls_ca_certificate", "tls_ca_certificate")
        body["tls_ca_certificate"] = _same_pem(ca, stored.get("tls_ca_certificate")) or None
    return body


def _plain(value: Any) -> Any:
    """A validated option as plain JSON, without the optional fields left out."""
    if hasattr(value, "model_dump"):
        return {k: v for k, v in value.model_dump().items() if v is not None}
    return value


def changed(sent: Mapping[str, Any], destination: Row, stored: Mapping[str, Any]) -> dict[str, Any]:
    """Of the option fields a validated edit sent, those that differ from the destination."""
    current: dict[str, Any] = {
        "filter": destination["filter"],
        "payload_format": destination["payload_format"],
        "capture_response_body": destination["capture_response_body"],
        **{name: stored.get(name) for name in opts.OPTION_FIELDS},
    }
    return {
        name: value
        for name, value in sent.items()
        if name in current and _plain(value) != current[name]
    }


@dataclass(slots=True)
class HeaderRow:
    name: str
    stored: bool  # a saved header: its value is set and not shown


@dataclass(slots=True)
class OptionValues:
    """What the form shows of the options: nothing secret, only which secrets are set."""

    filter_text: str = ""
    payload_format: str = "raw"
    capture_response_body: bool = False
    header_rows: list[HeaderRow] = field(default_factory=list)
    auth_type: str = "none"
    auth: dict[str, str] = field(default_factory=dict)  # the shown fields only
    auth_set: frozenset[str] = frozenset()  # secret fields with a stored value
    tls_certificate: str = ""
    tls_key_set: bool = False
    tls_ca_certificate: str = ""


def _rows(stored_names: list[str], extra_names: list[str]) -> list[HeaderRow]:
    rows = [HeaderRow(n, True) for n in stored_names]
    rows += [HeaderRow(n, False) for n in extra_names if n not in stored_names]
    blank = max(0, min(BLANK_HEADER_ROWS, opts.MAX_HEADERS - len(rows)))
    return rows + [HeaderRow("", False) for _ in range(blank)]


def shown_values(destination: Row | None) -> OptionValues:
    """The form's option values for a destination as stored (a new one: the defaults)."""
    if destination is None:
        return OptionValues(header_rows=_rows([], []))
    options = destination["options"]
    paths = set(destination["option_secrets"])
    auth = dict(options.get("auth") or {})
    certificate = options.get("tls_client_certificate") or {}
    return OptionValues(
        filter_text=_pretty(destination["filter"]),
        payload_format=destination["payload_format"],
        capture_response_body=destination["capture_response_body"],
        header_rows=_rows(list(options.get("headers") or []), []),
        auth_type=str(auth.pop("type", "none")),
        auth={k: str(v) for k, v in auth.items()},
        auth_set=frozenset(p.partition(".")[2] for p in paths if p.startswith("auth.")),
        tls_certificate=certificate.get("certificate", ""),
        tls_key_set="tls_client_certificate.private_key" in paths,
        tls_ca_certificate=options.get("tls_ca_certificate") or "",
    )


def posted_values(fields: Mapping[str, list[str]], destination: Row | None) -> OptionValues:
    """The form's option values as posted, for showing it again with a refusal: the
    non-secret fields as typed; no secret, typed or stored, only which are set."""
    stored = shown_values(destination)
    if not _one(fields, "options_form"):
        return stored
    kind = _one(fields, "auth_type")
    stored_names = [r.name for r in stored.header_rows if r.stored]
    typed = [n.strip() for n in fields.get("header_name", []) if n.strip()]
    return OptionValues(
        filter_text=_one(fields, "filter")[:FILTER_MAX_CHARS],
        payload_format=_one(fields, "payload_format"),
        capture_response_body=bool(_one(fields, "capture_response_body")),
        header_rows=_rows(stored_names, typed[: opts.MAX_HEADERS]),
        auth_type=kind if kind in AUTH_TYPES else "none",
        auth={
            name: _one(fields, f"auth_{name}")[:2048]
            for names in AUTH_FIELDS.values()
            for name in names
            if name not in opts.SECRET_AUTH_FIELDS
        },
        auth_set=stored.auth_set if kind == stored.auth_type else frozenset(),
        tls_certificate=_one(fields, "tls_certificate")[: opts.MAX_PEM_CHARS],
        tls_key_set=stored.tls_key_set,
        tls_ca_certificate=_one(fields, "tls_ca_certificate")[: opts.MAX_PEM_CHARS],
    )


def _pretty(document: Any) -> str:
    if not document:
        return ""
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode("utf-8")
