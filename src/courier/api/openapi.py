"""The OpenAPI document: error responses declared per route, served as problem+json.

`docs/openapi.json` is this document, committed; `make openapi` regenerates it
(`python -m courier.api.openapi docs/openapi.json`) and a test fails when they drift.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from courier.api.problems import PROBLEM_MEDIA_TYPE, Problem

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
            for code, response in operation.get("responses", {}).items():
                content = response.get("content")
                if (
                    code.isdigit()
                    and int(code) >= 400
                    and content
                    and "application/json" in content
                ):
                    response["content"] = {PROBLEM_MEDIA_TYPE: content["application/json"]}
    app.openapi_schema = schema
    return schema


def render(app: FastAPI) -> str:
    """The document as committed: sorted keys, two-space indent, final newline."""
    return json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    from courier.api.app import create_app
    from courier.settings import Settings

    # The document does not depend on settings or the database; nothing is connected.
    app = create_app(Settings(database_url=None), "postgresql://unused")
    text = render(app)
    if len(argv) > 1:
        Path(argv[1]).write_text(text, "utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv))
