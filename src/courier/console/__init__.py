"""The operator console: server-rendered pages under /console (issue 6, CONTRACT section 7).

    routes.py    the pages, sign-in and sign-out, replay, the cookie-authenticated SSE
    session.py   signed session cookies and CSRF tokens (keys derived from COURIER_SECRET_KEY)
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
    from courier.console.routes import router

    app.include_router(router)
    app.mount(
        "/console/static",
        StaticFiles(packages=[("courier.console", "static")]),
        name="console-static",
    )
