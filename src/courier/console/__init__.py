"""The operator console: server-rendered pages under /console (docs/console.md), readable
without JavaScript.

    auth.py          sign-in and sign-out, portal links, the session's operator, CSRF, cookies
    operator.py      who is signed in: tenant, role, destination scope, branding
    rendering.py     templates, filters, security headers, the pages every group shares
    overview.py      /console, /console/integrations (destinations and their health), brand.css
    destinations.py  /console/integrations/{id}: one destination's deliveries, by state
    deliveries.py    /console/deliveries/{id} and its replay; /console/dead-letters, one or a batch
    events.py        /console/event-types (the catalog); /console/events (SSE, cookie auth)
    manage.py        destination self-service: create, edit, enable, disable, rotate, delete
    inputs.py        form fields and query parameters, checked (BadField → a 422 page naming it)
    throttle.py      failed sign-ins per client address and per tenant (429 beyond the limit)
    session.py       signed session cookies and CSRF tokens (keys derived from COURIER_SECRET_KEY)
    framing.py       COURIER_CONSOLE_FRAME_ANCESTORS as the CSP frame-ancestors (embedding)
    health.py        destination health from grouped counts
    explain.py       plain words: durations, why a delivery failed or was dead-lettered
    chart.py         attempts by outcome over 24 hours, as SVG bars
    demo.py          `courier up --demo`: a demo tenant and a local receiver with every outcome
    templates/       Jinja2, autoescaped; static/ one stylesheet and a few lines of script

Reads go through courier.store.console (statements in store/sql, grouped by noun). Every read
is scoped by the session's tenant, so another tenant's id answers 404 exactly as a
missing one. Templates autoescape everything; a Content-Security-Policy allows only the
console's own script and stylesheet.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from starlette.staticfiles import StaticFiles


def routers() -> list[APIRouter]:
    """Every router of the console, one per page group."""
    from courier.console import auth, deliveries, destinations, events, manage, overview

    return [
        auth.router,
        overview.router,
        destinations.router,
        deliveries.router,
        events.router,
        manage.router,  # destination self-service
    ]


def install(app: FastAPI) -> None:
    """Mount the console's pages and static files on `app`."""
    from courier.console.framing import FrameAncestorsMiddleware
    from courier.console.inputs import BadField
    from courier.console.rendering import bad_field
    from courier.web.state import state_of

    for router in routers():
        app.include_router(router)
    app.add_exception_handler(BadField, bad_field)
    app.mount(
        "/console/static",
        StaticFiles(packages=[("courier.console", "static")]),
        name="console-static",
    )
    settings = state_of(app).settings
    if settings.console_embedded:
        app.add_middleware(FrameAncestorsMiddleware, sources=settings.console_frame_ancestors)
