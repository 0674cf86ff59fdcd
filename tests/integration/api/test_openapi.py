"""The OpenAPI document: the committed docs/openapi.json is what /openapi.json serves,
and every route documents a summary, a response model and its error responses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from courier.api.openapi import render
from courier.asgi import create_app
from courier.settings import Settings
from courier.store.feed import CURSOR_PATTERN as FEED_CURSOR_PATTERN

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
                if code == "204":
                    continue
                content = responses[code]["content"]
                if "text/event-stream" in content:  # one schema per event, its data a $ref
                    event = content["text/event-stream"]["schema"]
                    assert "$ref" in event["properties"]["data"]["contentSchema"], where
                else:
                    assert "$ref" in content["application/json"]["schema"], where
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


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for child in node.values():
            yield from _walk(child)
    elif isinstance(node, list):
        for child in node:
            yield from _walk(child)


def test_the_event_stream_is_documented_as_server_sent_events() -> None:
    document = json.loads(COMMITTED.read_text("utf-8"))
    stream = document["paths"]["/v1/delivery-events/stream"]["get"]
    parameters = {p["name"]: p for p in stream["parameters"]}
    assert parameters["after"]["in"] == "query"
    assert parameters["last-event-id"]["in"] == "header"
    event = stream["responses"]["200"]["content"]["text/event-stream"]["schema"]
    assert event["required"] == ["id", "data"]
    assert event["properties"]["id"]["pattern"] == FEED_CURSOR_PATTERN
    data = event["properties"]["data"]
    assert data["contentMediaType"] == "application/json"
    assert data["contentSchema"] == {"$ref": "#/components/schemas/DeliveryEvent"}
    assert "DeliveryEvent" in document["components"]["schemas"]


def test_bounds_are_exact_and_parameters_are_never_null() -> None:
    """FastAPI's document model writes bounds as floats (2**63 - 1 became 2**63); a query
    string or header cannot carry null, so no parameter schema offers it."""
    document = json.loads(COMMITTED.read_text("utf-8"))
    for node in _walk(document):
        if node.get("type") == "integer":
            for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                assert not isinstance(node.get(key), float), node
    for item in document["paths"].values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                assert {"type": "null"} not in parameter["schema"].get("anyOf", []), parameter
