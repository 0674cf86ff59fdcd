"""A delivery's page (the attempt timeline, why it failed, its replays and audit records)
and replay: one delivery, or the dead letters a filter selects, counted first to confirm.

    GET  /console/deliveries/{delivery id}       the attempt timeline; POST …/replay
    GET  /console/dead-letters                   by destination and time; replay one or a batch
    GET  /console/dead-letters/replay            the batch's dry-run count, to confirm; POST runs it
"""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from courier import replay
from courier.console.auth import current_operator, to_sign_in, writer, writer_form
from courier.console.explain import explain, reason_sentence
from courier.console.inputs import path_id, time_field, token_field, uuid_field
from courier.console.operator import Operator
from courier.console.rendering import (
    PAGE_SIZE,
    message,
    not_found,
    one_page,
    render,
)
from courier.store import console as store
from courier.store import resources
from courier.web.deps import ConnDep

router = APIRouter(prefix="/console", include_in_schema=False)

ATTEMPTS_SHOWN = 1000  # every attempt of a delivery (max_attempts is at most 100)
BATCH_REPLAY_LIMIT = 10_000  # deliveries replayed per batch call
REPLAYABLE = ("dead_lettered", "failed")


@router.get("/deliveries/{delivery_id}")
async def delivery_page(request: Request, conn: ConnDep, delivery_id: str) -> Response:
    operator = await current_operator(request, conn)
    if operator is None:
        return to_sign_in(request)
    the_id = path_id(delivery_id)
    row = await store.delivery(conn, operator.tenant_id, the_id) if the_id else None
    if the_id is None or row is None or not operator.sees(row["destination_id"]):
        return not_found(operator)
    attempts = await resources.list_attempts(
        conn, operator.tenant_id, the_id, after=0, limit=ATTEMPTS_SHOWN
    )
    return render(
        "delivery.html",
        operator=operator,
        nav="integrations",
        delivery=row,
        attempts=attempts,
        explanation=explain(row, attempts),
        reason=reason_sentence(row),
        replays=await store.replays_of(conn, operator.tenant_id, the_id),
        ticket=await resources.get_delivery_ticket(conn, operator.tenant_id, the_id),
        audit=await store.delivery_audit(conn, operator.tenant_id, the_id),
        replayable=row["state"] in REPLAYABLE and operator.can_write,
        replay_token=secrets.token_urlsafe(16),
        waiting=row["state"] in ("pending", "retry_scheduled"),
    )


@router.post("/deliveries/{delivery_id}/replay")
async def replay_one(request: Request, conn: ConnDep, delivery_id: str) -> Response:
    posted = await writer_form(request, conn)
    if isinstance(posted, Response):
        return posted
    operator, form = posted
    the_id = path_id(delivery_id)
    if the_id is not None and operator.scope is not None:
        row = await store.delivery(conn, operator.tenant_id, the_id)
        if row is None or not operator.sees(row["destination_id"]):
            the_id = None
    if the_id is None:
        return not_found(operator)
    token = token_field("replay_token", form.get("replay_token"))
    try:
        async with conn.transaction():
            result = await replay.replay_delivery(
                conn,
                operator.tenant_id,
                the_id,
                actor=operator.actor,
                idempotency_key=f"console:{token}" if token else None,
            )
    except replay.NotFound:
        return not_found(operator)
    except (replay.NotReplayable, replay.KeyReused) as exc:
        return message("Cannot replay", str(exc), status=409, operator=operator)
    return RedirectResponse(f"/console/deliveries/{result.delivery['id']}", status_code=303)


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    destination_id: uuid.UUID | None
    since: datetime | None
    until: datetime | None

    @classmethod
    def read(cls, values: dict[str, str]) -> DeadLetterFilter:
        return cls(
            uuid_field("destination_id", values.get("destination_id")),
            time_field("since", values.get("since")),
            time_field("until", values.get("until")),
        )

    def query(self) -> dict[str, str]:
        """As query parameters (datetime-local form: UTC, to the minute or second)."""
        out: dict[str, str] = {}
        if self.destination_id:
            out["destination_id"] = str(self.destination_id)
        if self.since:
            out["since"] = self.since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        if self.until:
            out["until"] = self.until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return out


@router.get("/dead-letters")
async def dead_letters(request: Request, conn: ConnDep) -> Response:
    operator = await current_operator(request, conn)
    if operator is None:
        return to_sign_in(request)
    params = dict(request.query_params)
    filters = DeadLetterFilter.read(params)
    if not operator.sees(filters.destination_id):
        return not_found(operator)
    rows, next_after = one_page(
        await store.dead_letters(
            conn,
            operator.tenant_id,
            destination_id=filters.destination_id,
            since=filters.since,
            until=filters.until,
            after=uuid_field("after", params.get("after")),
            limit=PAGE_SIZE,
            scope=operator.scope,
        )
    )
    return render(
        "dead_letters.html",
        operator=operator,
        nav="dead-letters",
        filters=filters,
        destinations=await store.destinations(conn, operator.tenant_id, operator.scope),
        rows=rows,
        next_after=next_after,
        paged="after" in params,
        replay_token=secrets.token_urlsafe(16),
        explain_reason=reason_sentence,
    )


async def _batch(
    conn: store.AsyncConn, operator: Operator, filters: DeadLetterFilter, *, dry_run: bool
) -> tuple[int, list[uuid.UUID]]:
    """Replay (or count, on a dry run) every dead letter the filter matches, of the
    destinations this session sees."""
    count = 0
    ids: list[uuid.UUID] = []
    targets: list[uuid.UUID | None]
    if filters.destination_id is not None:
        targets = [filters.destination_id] if operator.sees(filters.destination_id) else []
    elif operator.scope is not None:
        targets = list(sorted(operator.scope))
    else:
        targets = [None]
    for destination_id in targets:
        cursor = None
        while True:
            result = await replay.replay_dead_letters(
                conn,
                operator.tenant_id,
                actor=operator.actor,
                destination_id=destination_id,
                since=filters.since,
                until=filters.until,
                dry_run=dry_run,
                limit=BATCH_REPLAY_LIMIT,
                cursor=cursor,
            )
            count += int(result.count)
            ids.extend(result.delivery_ids or ())
            cursor = result.next_cursor
            if not cursor:
                break
    return count, ids


@router.get("/dead-letters/replay")
async def confirm_batch_replay(request: Request, conn: ConnDep) -> Response:
    operator = await writer(request, conn)
    if isinstance(operator, Response):
        return operator
    filters = DeadLetterFilter.read(dict(request.query_params))
    if not operator.sees(filters.destination_id):
        return not_found(operator)
    if filters.until is None:
        # Freeze the set being confirmed: what is dead-lettered after this page was shown
        # is not replayed by confirming it.
        until = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        filters = dataclasses.replace(filters, until=until)
    count, _ = await _batch(conn, operator, filters, dry_run=True)
    destination = (
        await store.destination(conn, operator.tenant_id, filters.destination_id)
        if filters.destination_id
        else None
    )
    return render(
        "replay_confirm.html",
        operator=operator,
        nav="dead-letters",
        filters=filters,
        destination=destination,
        count=count,
    )


@router.post("/dead-letters/replay")
async def batch_replay(request: Request, conn: ConnDep) -> Response:
    posted = await writer_form(request, conn)
    if isinstance(posted, Response):
        return posted
    operator, form = posted
    filters = DeadLetterFilter.read(form)
    if not operator.sees(filters.destination_id):
        return not_found(operator)
    async with conn.transaction():
        count, ids = await _batch(conn, operator, filters, dry_run=False)
    return render(
        "replay_done.html",
        operator=operator,
        nav="dead-letters",
        count=count,
        delivery_ids=ids[:PAGE_SIZE],
        filters=filters,
    )
