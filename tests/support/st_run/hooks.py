"""Schemathesis hooks for the API run (SCHEMATHESIS_HOOKS=tests.support.schemathesis.hooks).

An OpenAPI document cannot relate one field to another, so a few rules are written in
the fields' descriptions instead, and a request that breaks one is schema-valid yet
refused. `filter_failure` drops a "schema-valid request rejected" failure only when the
request really breaks one of those rules AND the answer is the 422 that names it; any
other rejection, and every other check, still fails the run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import schemathesis
import trustme
from hypothesis import strategies as st
from schemathesis import Case, HookContext, Response
from schemathesis.core.failures import Failure

from courier.api.routes.events import KEY_REUSED
from courier.filters import problems

# (field, message) of each cross-field rule's 422, with the test on the request
Rule = Callable[[Case], bool]

# The document's PEM formats: a PEM must parse, which no pattern says, so the generator
# is given real ones (a certificate and a key drawn apart rarely match: that rule is
# one field against another, accepted below).
_CA = trustme.CA()
_ISSUED = [_CA.issue_cert(f"client{n}.example.com") for n in range(2)]
schemathesis.openapi.format(
    "pem-certificates",
    st.sampled_from(
        [_CA.cert_pem.bytes().decode()]
        + [b"".join(b.bytes() for b in i.cert_chain_pems).decode() for i in _ISSUED]
    ),
)
schemathesis.openapi.format(
    "pem-private-key", st.sampled_from([i.private_key_pem.bytes().decode() for i in _ISSUED])
)


def _body(case: Case) -> Mapping[str, Any]:
    return case.body if isinstance(case.body, Mapping) else {}


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _until_before_since(case: Case) -> bool:
    since, until = _time(_body(case).get("since")), _time(_body(case).get("until"))
    return since is not None and until is not None and until < since


def _two_idempotency_keys(case: Case) -> bool:
    header = {k.lower(): v for k, v in (case.headers or {}).items()}.get("idempotency-key")
    body = _body(case).get("idempotency_key")
    return header is not None and body is not None and header != body


def _idempotency_key_given(case: Case) -> bool:
    """A key reused with another request is refused; which keys were used before is the
    server's state, not the request's, so a request that carries a key may meet it."""
    header = {k.lower(): v for k, v in (case.headers or {}).items()}.get("idempotency-key")
    return header is not None or _body(case).get("idempotency_key") is not None


def _unknown_destination(field: Any, message: Any) -> bool:
    """A portal session's scope and the operations destination name destinations by id;
    which ids exist is the server's state, so a generated id is usually refused."""
    return (
        isinstance(field, str)
        and (field.startswith("destination_ids[") or field == "destination_id")
        and message == "no such destination"
    )


def _example_against_schema(case: Case, field: Any) -> bool:
    """An event type's `example` must satisfy its `schema` (the description says so)."""
    return (
        isinstance(field, str)
        and (field == "example" or field.startswith(("example.", "example[")))
        and _body(case).get("schema") is not None
    )


def _catalog_example(case: Case, field: Any) -> bool:
    """A test send's `event_type` must name a catalog type with examples and `example` one
    of them that its schema accepts (the descriptions say so); which types the catalog
    holds is the server's state, so a generated name is usually refused."""
    return (
        case.path.endswith("/test")
        and isinstance(field, str)
        and (field == "event_type" or field == "example" or field.startswith("example."))
    )


def _kind_rule(case: Case, field: Any) -> bool:
    """A destination's kind decides which of `url` and `config` it takes, and what the
    config holds (the descriptions say so per kind); a PATCH is judged against the stored
    kind, which the request does not show."""
    if not isinstance(field, str) or not (field in ("url", "kind") or field.startswith("config")):
        return False
    body = _body(case)
    kind = body.get("kind", "webhook")
    if case.method.upper() == "PATCH":
        return "url" in body or "kind" in body or "config" in body
    if field == "url":
        return body.get("url") is None if kind == "webhook" else "url" in body
    return kind != "webhook" or "config" in body


def _filter_rule(case: Case, field: Any) -> bool:
    """A destination's filter follows its own language (the field's description points
    to it), which a schema does not state: refused exactly when courier.filters finds
    the request's filter wrong."""
    if not isinstance(field, str) or not (field == "filter" or field.startswith("filter.")):
        return False
    document = _body(case).get("filter")
    return bool(document) and bool(problems(document))


def _options_rule(case: Case, field: Any, message: Any) -> bool:
    """The destination options' rules between fields, as their descriptions state them: a
    key must match its certificate, header names are compared without regard to case,
    `Authorization` and `auth` exclude each other, `auth` and TLS are for https webhooks.
    A PATCH is judged against the stored destination, which the request does not show."""
    if not isinstance(field, str) or not isinstance(message, str):
        return False
    body = _body(case)
    patch = case.method.upper() == "PATCH"
    if field == "tls_client_certificate.private_key":
        return message == "does not match the certificate" and "tls_client_certificate" in body
    if message == "repeats a header name (names are case-insensitive)":
        headers = body.get("headers")
        names = [n.lower() for n in headers] if isinstance(headers, Mapping) else []
        return len(set(names)) < len(names)
    if message == "headers.Authorization and auth conflict: send one of them":
        headers = body.get("headers") if isinstance(body.get("headers"), Mapping) else {}
        sent = any(n.lower() == "authorization" for n in headers or {})
        return (sent or patch) and (body.get("auth") is not None or patch)
    if message.endswith("is only for webhooks") or message.endswith("needs an https url"):
        return patch or body.get("kind", "webhook") != "webhook"
    return False


def _backoff_inverted(case: Case) -> bool:
    body = _body(case)
    if case.method.upper() == "PATCH":
        # compared with the destination's stored values, which the request does not show
        return "backoff_max_ms" in body or "backoff_initial_ms" in body
    initial, most = body.get("backoff_initial_ms", 5_000), body.get("backoff_max_ms", 36_000_000)
    return isinstance(initial, int | float) and isinstance(most, int | float) and most < initial


RULES: dict[tuple[str, str], Rule] = {
    ("until", "must not be before since"): _until_before_since,
    (
        "idempotency_key",
        "differs from the Idempotency-Key header; send one of them",
    ): _two_idempotency_keys,
    ("idempotency_key", KEY_REUSED): _idempotency_key_given,
    ("backoff_max_ms", "must be at least backoff_initial_ms"): _backoff_inverted,
    ("backoff_max_ms", "backoff_max_ms must be at least backoff_initial_ms"): _backoff_inverted,
    ("backoff_initial_ms", "backoff_max_ms must be at least backoff_initial_ms"): _backoff_inverted,
}


def _null_path_parameter(case: Case, field: str) -> bool:
    """Schemathesis's stateful phase can fill a path parameter from a nullable response
    field (e.g. an audit record's `delivery_id`) and send null as the text `None`."""
    return (case.path_parameters or {}).get(field, "") is None


def _body_required(case: Case) -> list[str]:
    """The `required` list of the operation's JSON body schema, as the document has it."""
    raw = case.operation.schema.raw_schema
    content = case.operation.definition.raw.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema", {})
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        schema = raw["components"]["schemas"][ref.rsplit("/", 1)[1]]
    required: list[str] = schema.get("required", [])
    return required


def _optional_property_left_out(case: Case) -> bool:
    """Schemathesis's coverage phase can count leaving out an optional body property as
    invalid ("Missing required property") on a schema that requires none."""
    data = case.meta.phase.data if case.meta is not None else None
    scenario = getattr(data, "scenario", None)
    return getattr(scenario, "name", "") == "OBJECT_MISSING_REQUIRED_PROPERTY" and getattr(
        data, "parameter", None
    ) not in _body_required(case)


@schemathesis.hook
def filter_failure(context: HookContext, failure: Failure, case: Case, response: Response) -> bool:
    """Keep every failure but a rejection explained by a rule above (True keeps it)."""
    if failure.code == "ST201":
        return not _optional_property_left_out(case)
    if failure.code != "ST202" or response.status_code != 422:
        return True
    try:
        errors = response.json().get("errors") or []
    except ValueError:
        return True
    if not errors:
        return True
    for error in errors:
        field, message = error.get("field"), error.get("message")
        rule = RULES.get((field, message))
        explained = (
            (rule is not None and rule(case))
            or _unknown_destination(field, message)
            or _kind_rule(case, field)
            or _example_against_schema(case, field)
            or _catalog_example(case, field)
            or _filter_rule(case, field)
            or _options_rule(case, field, message)
            or (error.get("location") == "path" and _null_path_parameter(case, field))
        )
        if not explained:
            return True
    return False
