"""The console's front: /console, the integrations overview (every destination with its
health, deliveries by state, the 24-hour attempts chart) and the tenant's brand colours.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from courier import destination_health
from courier.console.auth import HOME, current_operator, to_sign_in
from courier.console.chart import attempt_chart
from courier.console.health import build_health, totals
from courier.console.rendering import render
from courier.store import console as store
from courier.web.deps import ConnDep

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("")
async def console_root() -> RedirectResponse:
    return RedirectResponse(HOME, status_code=303)


@router.get("/integrations")
async def integrations(request: Request, conn: ConnDep) -> Response:
    operator = await current_operator(request, conn)
    if operator is None:
        return to_sign_in(request)
    now = datetime.now(UTC)
    scope = operator.scope
    destinations = await store.destinations(conn, operator.tenant_id, scope)
    healths = build_health(
        destinations,
        await store.state_counts(conn, operator.tenant_id, None, scope),
        await destination_health.read_healths(conn, operator.tenant_id, None, scope),
    )
    chart = attempt_chart(
        await store.attempts_by_hour(conn, operator.tenant_id, None, now, scope), now
    )
    return render(
        "integrations.html",
        operator=operator,
        nav="integrations",
        healths=healths,
        totals=totals(healths),
        chart=chart,
    )


@router.get("/brand.css")
async def brand_css(request: Request, conn: ConnDep) -> Response:
    """The tenant's accent colour as a stylesheet (the CSP allows no inline style)."""
    operator = await current_operator(request, conn)
    colour = operator.branding.accent_color if operator is not None else None
    body = ""
    if colour is not None and re.fullmatch(r"#[0-9a-f]{6}", colour):
        body = (
            f":root {{ --accent: {colour}; }}\n"
            f"header.top {{ border-bottom: 4px solid {colour}; }}\n"
            f"button[type=submit], a.button {{ border-color: {colour}; }}\n"
        )
    return Response(body, media_type="text/css", headers={"Cache-Control": "no-store"})
