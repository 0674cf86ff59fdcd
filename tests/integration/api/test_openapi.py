"""The OpenAPI document: the committed docs/openapi.json is what /openapi.json serves,
and every route documents a summary, a response model and its error responses."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from courier.api.app import create_app
from courier.api.openapi import render
from courier.settings import Settings

COMMITTED = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"
PROBLEM = "application/problem+json"


async def test_committed_document_matches_what_the_app_serves(client: httpx.AsyncClient) -> None:
    served = (await client.get("/openapi.json")).json()
    committed = json.loads(COMMITTED.read_text("utf-8"))
    assert served == committed, "docs/openapi.json is stale: run `make openapi`"


def test_committed_document_is_rendered_canonically() -> None:
    app = create_app(Settings(secret_key=None), "postgresql://unused")
    assert COMMITTED.read_text("utf-8") == render(app), "run `make openapi`"


def test_every_route_has_summary_response_model_and_errors() -> None:
    document = json.loads(COMMITTED.read_text("utf-8"))
    for path, item in document["paths"].items():
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            assert operation.get("summary"), where
            responses = operation["responses"]
            ok = [code for code in responses if code.startswith("2")]
            assert ok, where
            for code in ok:
                if code != "204":
                    schema = responses[code]["content"]["application/json"]["schema"]
                    assert "$ref" in schema, where
            errors = {code for code in responses if code[0] in "45"}
            if path.startswith("/v1/"):
                assert {"401", "422", "503"} <= errors, where
                if "{" in path:
                    assert "404" in errors, where
                if "requestBody" in operation:
                    assert "413" in errors, where
                assert operation["security"] == [{"ApiKey": []}], where
            for code in errors:
                assert list(responses[code]["content"]) == [PROBLEM], where
            if "503" in responses:
                assert "Retry-After" in responses["503"]["headers"], where
