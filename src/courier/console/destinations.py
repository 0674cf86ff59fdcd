"""One destination's page: its health, kind and configuration (secrets redacted), the
attempts chart, its deliveries by state, and the catalog examples it can be sent.
(Changing a destination is courier.console.manage.)
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response

from courier import destination_health, kinds
from courier.console.auth import current_operator, to_sign_in
from courier.console.chart import attempt_chart
from courier.console.health import STATES, build_health
from courier.console.inputs import choice_field, path_id, uuid_field
from courier.console.rendering import PAGE_SIZE, not_found, one_page, pretty, render
from courier.destination_options import shown_options
from courier.store import console as store
from courier.store import portal as portal_store
from courier.web import catalog_examples
from courier.web.deps import ConnDep

router = APIRouter(prefix="/console", include_in_schema=False)

CATALOG_EXAMPLES_SHOWN = 200  # catalog types a destination's page looks through


@router.get("/integrations/{destination_id}")
async def integration(
    request: Request,
    conn: ConnDep,
    destination_id: str,
    state: str | None = None,
    after: str | None = None,
) -> Response:
    operator = await current_operator(request, conn)
    if operator is None:
        return to_sign_in(request)
    dest_id = path_id(destination_id)
    if dest_id is not None and not operator.sees(dest_id):
        dest_id = None  # outside this session's scope: as if it did not exist
    destination = await store.destination(conn, operator.tenant_id, dest_id) if dest_id else None
    if dest_id is None or destination is None:
        return not_found(operator)
    state = choice_field("state", state, STATES)
    after_id = uuid_field("after", after)
    now = datetime.now(UTC)
    (health,) = build_health(
        [destination],
        await store.state_counts(conn, operator.tenant_id, dest_id),
        await destination_health.read_healths(conn, operator.tenant_id, dest_id),
    )
    rows, next_after = one_page(
        await store.list_deliveries(
            conn,
            operator.tenant_id,
            dest_id,
            state=state,
            after=after_id,
            limit=PAGE_SIZE,
        )
    )
    chart = attempt_chart(await store.attempts_by_hour(conn, operator.tenant_id, dest_id, now), now)
    catalog = await portal_store.list_event_types(
        conn, operator.tenant_id, after=None, limit=CATALOG_EXAMPLES_SHOWN
    )
    examples = [
        (row, catalog_examples.examples_of(row))
        for row in catalog[:CATALOG_EXAMPLES_SHOWN]
        if catalog_examples.subscribed(destination["event_types"], row["name"])
    ]
    return render(
        "destination.html",
        examples=[(row, found) for row, found in examples if found or row["schema"] is not None],
        pretty=pretty,
        operator=operator,
        nav="integrations",
        health=health,
        destination=destination,
        config=kinds.shown_config(destination["config"] or {}, destination["secret_fields"]),
        settings=shown_options(destination["options"], destination["secret_paths"]),
        chart=chart,
        state=state,
        deliveries=rows,
        next_after=next_after,
        paged=after is not None,
    )
