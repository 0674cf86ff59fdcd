"""The ASGI application that `courier serve` and `courier up` run: the HTTP API with the
operator console mounted on it. The one module that knows both.

    python -m courier.asgi docs/openapi.json   # write the API's OpenAPI document
"""

from __future__ import annotations

import sys
from pathlib import Path

from fastapi import FastAPI

from courier import console
from courier.api.app import create_api
from courier.api.openapi import render
from courier.metrics import CourierMetrics
from courier.settings import Settings


def create_app(
    settings: Settings, database_url: str, metrics: CourierMetrics | None = None
) -> FastAPI:
    """The API and the console; `metrics` is a registry shared with an in-process worker."""
    return create_api(settings, database_url, metrics, mount=console.install)


def main(argv: list[str]) -> int:
    # The document does not depend on settings or the database; nothing is connected.
    text = render(create_app(Settings(database_url=None), "postgresql://unused"))
    if len(argv) > 1:
        Path(argv[1]).write_text(text, "utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv))
