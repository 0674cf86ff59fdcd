"""The OpenAPI document: error responses declared per route, served as problem+json.

`docs/openapi.json` is this document, committed; `make openapi` regenerates it
(`python -m courier.asgi docs/openapi.json`) and a test fails when they drift.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from courier.web.problems import PROBLEM_MEDIA_TYPE, Problem

DESCRIPTIONS = {
    401: "Missing, malformed, unknown or revoked API key",
    404: "No such resource for this tenant",
    413: "Request body larger than COURIER_MAX_PAYLOAD_BYTES",
    422: "Invalid request; `errors` names the failing fields",
    503: "Database unavailable; retry after `Retry-After` seconds",
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}


def errors(*codes: int, auth: bool = True) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: the given codes, plus 401 and 503 for every /v1 route."""
    wanted = set(codes) | ({401, 503} if auth else {503})
    out: dict[int | str, dict[str, Any]] = {}
    for code in sorted(wanted):
        entry: dict[str, Any] = {"model": Problem, "description": DESCRIPTIONS[code]}
        if code == 503:
            entry["headers"] = _RETRY_AFTER
        out[code] = entry
    return out


def conflict_response(description: str) -> dict[int | str, dict[str, Any]]:
    """A 409 problem response for `responses=`, beside errors() (which has no 409)."""
    return {409: {"model": Problem, "description": description}}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with every 4xx/5xx body under `application/problem+json`."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            for parameter in operation.get("parameters", []):
                parameter["schema"] = _without_null(parameter["schema"])
            for code, response in operation.get("responses", {}).items():
                content = response.get("content")
                if code.isdigit() and int(code) >= 400 and content:
                    # FastAPI files them under the route's media type (JSON, or the
                    # event stream's); an error is always a problem document.
                    response["content"] = {PROBLEM_MEDIA_TYPE: next(iter(content.values()))}
    _integer_bounds(schema)
    app.openapi_schema = schema
    return schema


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional parameter's schema without FastAPI's `null` branch: a query string or a
    header cannot carry null (leaving the parameter out is how it is not given)."""
    branches = schema.get("anyOf")
    if not isinstance(branches, list) or {"type": "null"} not in branches:
        return schema
    rest = [b for b in branches if b != {"type": "null"}]
    outer = {k: v for k, v in schema.items() if k != "anyOf"}
    if len(rest) == 1:
        return {**rest[0], **outer}
    return {**outer, "anyOf": rest}


_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def _integer_bounds(node: Any) -> None:
    """Bounds of integer schemas written as integers: FastAPI's document model holds them
    as floats (`100.0`), which reads as a bound on a number, and above 2**53 is not even
    the bound the API checks."""
    if isinstance(node, dict):
        if node.get("type") == "integer":
            for key in _BOUNDS:
                value = node.get(key)
                if isinstance(value, float) and value.is_integer():
                    node[key] = int(value)
        for child in node.values():
            _integer_bounds(child)
    elif isinstance(node, list):
        for child in node:
            _integer_bounds(child)


def render(app: FastAPI) -> str:
    """The document as committed: sorted keys, two-space indent, final newline."""
    return json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
