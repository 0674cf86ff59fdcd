"""The operator console: server-rendered pages under /console (docs/console.md).

    routes.py    the pages, sign-in and sign-out, replay, the cookie-authenticated SSE
    inputs.py    form fields and query parameters, checked (BadField → a 422 page naming it)
    throttle.py  failed sign-ins per client address and per tenant (429 beyond the limit)
    session.py   signed session cookies and CSRF tokens (keys derived from COURIER_SECRET_KEY)
    framing.py   COURIER_CONSOLE_FRAME_ANCESTORS as the CSP frame-ancestors (embedding)
    health.py    destination health from grouped counts
    explain.py   plain words: durations, why a delivery failed or was dead-lettered
    chart.py     attempts by outcome over 24 hours, as SVG bars
    demo.py      `courier up --demo`: a demo tenant and a local receiver with every outcome
    templates/   Jinja2, autoescaped; static/ one stylesheet and a few lines of script

Reads go through courier.store.console (statements in store/sql/console.sql).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles


def install(app: FastAPI) -> None:
    """Mount the console's pages and static files on `app`."""
    from courier.console.framing import FrameAncestorsMiddleware
    from courier.console.inputs import BadField
    from courier.console.manage import router as manage_router
    from courier.console.routes import bad_field, router

    app.include_router(router)
    app.include_router(manage_router)  # destination self-service
    app.add_exception_handler(BadField, bad_field)
    app.mount(
        "/console/static",
        StaticFiles(packages=[("courier.console", "static")]),
        name="console-static",
    )
    settings = app.state.settings
    if settings.console_embedded:
        app.add_middleware(FrameAncestorsMiddleware, sources=settings.console_frame_ancestors)
