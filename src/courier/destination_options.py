"""Destination options: extra headers, authentication and TLS identities, how they are
checked and stored, and what an adapter gets of them (the API's request bodies for them
are in courier.api.schemas).

What may be shown (header names, the auth type with its user name, client id, token URL,
scope and audience, certificates) is stored as it is in `options`. Every secret-bearing
value (header values, password, bearer token, client secret, private key) goes to
`option_secrets` under a path such as `headers.X-Api-Key` or `auth.password`, encrypted
at rest like the signing secrets; reads show the path's field as `"<redacted>"`.

A PEM is checked here with `cryptography`: it must parse, and a private key must be the
one its certificate was issued for.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from courier.adapters.base import RequestOptions
from courier.adapters.http1 import header_block
from courier.kinds import SECRET_SHOWN

MAX_HEADERS: Final = 20
MAX_HEADER_VALUE_CHARS: Final = 4096
MAX_PEM_CHARS: Final = 65_536
# RFC 9110 token characters: what a field name is made of.
HEADER_NAME_PATTERN: Final = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$"
# Any visible text, spaces and tabs; no other control character (a CR or LF would split
# the request head).
HEADER_VALUE_PATTERN: Final = r"^[^\x00-\x08\x0a-\x1f\x7f]*$"
# Names courier writes itself: a destination may not send them twice or change them.
RESERVED_HEADERS: Final = frozenset(
    {"content-type", "content-length", "host", "transfer-encoding", "connection"}
)
RESERVED_PREFIX: Final = "webhook-"
EVENT_TYPE_HEADER: Final = "courier-event-type"
# Fields of each object whose values are secret.
SECRET_AUTH_FIELDS: Final = frozenset({"password", "token", "client_secret"})
SECRET_CERTIFICATE_FIELDS: Final = frozenset({"private_key"})
OPTION_FIELDS: Final = ("headers", "auth", "tls_client_certificate", "tls_ca_certificate")

_HEADER_NAME = re.compile(HEADER_NAME_PATTERN)


def header_name_problem(name: str) -> str | None:
    """Why `name` cannot be an extra request header, or None when it can."""
    if not _HEADER_NAME.match(name):
        return "is not an HTTP header name (a token of letters, digits and !#$%&'*+-.^_`|~)"
    lowered = name.lower()
    if lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_PREFIX):
        return "is a reserved header that courier sets itself"
    if lowered == EVENT_TYPE_HEADER:
        return "is a reserved header that courier sets itself"
    return None


def certificates_problem(pem: str) -> str | None:
    """Why `pem` is not one or more PEM certificates, or None."""
    try:
        found = x509.load_pem_x509_certificates(pem.encode("utf-8"))
    except ValueError:
        return "is not a PEM certificate"
    return None if found else "is not a PEM certificate"


def key_problem(certificate_pem: str, key_pem: str) -> tuple[str, str] | None:
    """(field, why) when the certificate or key is unusable or the two do not match."""
    reason = certificates_problem(certificate_pem)
    if reason is not None:
        return "certificate", reason
    try:
        key = serialization.load_pem_private_key(key_pem.encode("utf-8"), password=None)
    except (ValueError, TypeError):
        return "private_key", "is not an unencrypted PEM private key"
    except Exception:  # unsupported algorithms raise their own classes
        return "private_key", "is not an unencrypted PEM private key"
    leaf = x509.load_pem_x509_certificates(certificate_pem.encode("utf-8"))[0]
    if leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        return "private_key", "does not match the certificate"
    return None


def split_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(what may be shown, secret path -> plaintext) of validated options.

    `options` maps each of OPTION_FIELDS that is set to its plain JSON value.
    """
    shown: dict[str, Any] = {}
    secret: dict[str, str] = {}
    headers = options.get("headers")
    if headers:
        shown["headers"] = sorted(headers)
        secret.update({f"headers.{name}": value for name, value in headers.items()})
    for field, secret_fields in (
        ("auth", SECRET_AUTH_FIELDS),
        ("tls_client_certificate", SECRET_CERTIFICATE_FIELDS),
    ):
        value = options.get(field)
        if value is None:
            continue
        shown[field] = {k: v for k, v in value.items() if k not in secret_fields and v is not None}
        secret.update({f"{field}.{k}": v for k, v in value.items() if k in secret_fields})
    if options.get("tls_ca_certificate") is not None:
        shown["tls_ca_certificate"] = options["tls_ca_certificate"]
    return shown, secret


def shown_options(options: Mapping[str, Any], secret_paths: Any) -> dict[str, Any]:
    """The option fields as reads show them: every secret value `<redacted>`."""
    out: dict[str, Any] = {field: None for field in OPTION_FIELDS}
    out.update({k: v for k, v in options.items() if k != "headers"})
    if "headers" in options:
        out["headers"] = {name: SECRET_SHOWN for name in options["headers"]}
    for path in secret_paths:
        field, _, name = path.partition(".")
        if field in ("auth", "tls_client_certificate") and isinstance(out.get(field), dict):
            out[field] = {**out[field], name: SECRET_SHOWN}
    return out


def open_options(options: Mapping[str, Any], opened: Mapping[str, str]) -> dict[str, Any]:
    """The options whole again, from what is shown and the decrypted secret values."""
    whole: dict[str, Any] = {k: v for k, v in options.items() if k != "headers"}
    if "headers" in options:
        whole["headers"] = {name: opened[f"headers.{name}"] for name in options["headers"]}
    for path, value in opened.items():
        field, _, name = path.partition(".")
        if field in ("auth", "tls_client_certificate") and isinstance(whole.get(field), dict):
            whole[field] = {**whole[field], name: value}
    return whole


def request_options(whole: Mapping[str, Any], capture_response_body: bool) -> RequestOptions:
    """What an adapter needs of a destination's options (`whole`: from open_options).

    Basic and bearer credentials become the Authorization header here, once per
    destination; an OAuth2 token is the adapter's to fetch.
    """
    headers: list[tuple[str, str]] = []
    user_agent = None
    secrets: list[str] = []
    for name, value in (whole.get("headers") or {}).items():
        if name.lower() == "user-agent":
            user_agent = value
        else:
            headers.append((name, value))  # as the tenant wrote it: some receivers care
        secrets.append(value)
    auth = whole.get("auth")
    if auth is not None:
        secrets += [auth[f] for f in SECRET_AUTH_FIELDS if auth.get(f)]
        if auth["type"] == "basic":
            pair = f"{auth['username']}:{auth['password']}".encode()
            encoded = base64.b64encode(pair).decode("ascii")
            headers.append(("authorization", f"Basic {encoded}"))
            secrets.append(encoded)
        elif auth["type"] == "bearer":
            headers.append(("authorization", f"Bearer {auth['token']}"))
    certificate = whole.get("tls_client_certificate")
    if certificate is not None:
        secrets.append(certificate["private_key"])
    key = hashlib.sha256(orjson.dumps(whole, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return RequestOptions(
        key=key,
        headers=tuple(headers),
        head=header_block(headers),
        user_agent=user_agent,
        auth=auth,
        client_certificate=(
            (certificate["certificate"], certificate["private_key"]) if certificate else None
        ),
        ca_certificate=whole.get("tls_ca_certificate"),
        capture_response_body=capture_response_body,
        secrets=tuple(s for s in dict.fromkeys(secrets) if s),
    )


def envelope(event_type: str, created_at: datetime, payload: bytes) -> bytes:
    """The Standard Webhooks envelope `{"type", "timestamp", "data"}` around a payload's
    JSON text, which goes in as it is (it is not parsed again)."""
    timestamp = created_at.astimezone(UTC).isoformat(timespec="microseconds")
    head = orjson.dumps({"type": event_type, "timestamp": timestamp.replace("+00:00", "Z")})
    return b"".join((head[:-1], b',"data":', payload, b"}"))
