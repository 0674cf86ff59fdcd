"""`courier replay` and `courier recover`: the bulk operations, in batches, with progress.

Both call the domain functions the API calls (courier.replay, courier.recovery) in
batches, so a large run shows progress and each batch commits on its own: stopping
part-way keeps what was done, and running the same filter again never delivers twice.
Progress is a bar on a terminal and one plain line per batch otherwise (logs, CI).
"""

from __future__ import annotations

import asyncio
import getpass
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click
import psycopg

from courier.cli import clear_errors, main, settings_from_env
from courier.store.database import database_url

DEFAULT_BATCH = 500  # deliveries per call: one transaction, one progress step


class Timestamp(click.ParamType):  # type: ignore[type-arg]
    """An ISO 8601 time; one without a zone is read as UTC."""

    name = "timestamp"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time (e.g. 2026-01-31T12:00:00Z)", param, ctx)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Progress:
    """A bar on a terminal; one plain line per step otherwise."""

    def __init__(self, label: str, total: int, bar: Any | None) -> None:
        self.label, self.total, self.done, self._bar = label, total, 0, bar

    @property
    def bar_shown(self) -> bool:
        return self._bar is not None

    def step(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        else:
            click.echo(f"{self.label}: {self.done}/{self.total}")


@contextmanager
def progress(label: str, total: int) -> Iterator[Progress]:
    if sys.stdout.isatty():
        with click.progressbar(length=max(total, 1), label=label) as bar:
            yield Progress(label, total, bar)
    else:
        yield Progress(label, total, None)


def _actor() -> str:
    """How audit records name a CLI run: the operating-system user."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in a bare container
        return "cli"


def _tenant(url: str, ref: str) -> uuid.UUID:
    from courier.tenancy import resolve_tenants

    with psycopg.connect(url, autocommit=True) as conn:
        (tenant_id,) = resolve_tenants(conn, [ref])
    return tenant_id


@main.command("replay")
@click.option("--tenant", "tenant_ref", required=True, help="tenant id or name")
@click.option("--destination", type=click.UUID, default=None, help="only this destination")
@click.option("--since", type=Timestamp(), default=None, help="ended at or after (ISO 8601)")
@click.option("--until", type=Timestamp(), default=None, help="ended before (ISO 8601)")
@click.option(
    "--state",
    "states",
    type=click.Choice(["dead_lettered", "failed"]),
    multiple=True,
    help="states to replay (repeatable; default dead_lettered)",
)
@click.option("--dry-run", is_flag=True, help="count what would be replayed; write nothing")
@click.option(
    "--batch-size", type=click.IntRange(1, 10_000), default=DEFAULT_BATCH, show_default=True
)
@clear_errors
def replay_cmd(
    tenant_ref: str,
    destination: uuid.UUID | None,
    since: datetime | None,
    until: datetime | None,
    states: tuple[str, ...],
    dry_run: bool,
    batch_size: int,
) -> None:
    """Replay a tenant's dead-lettered (or failed) deliveries as new deliveries.

    Never replays a delivery twice: safe to stop and run again.
    """
    if since and until and until <= since:
        raise ValueError("--until must be after --since")
    settings = settings_from_env()
    with database_url(settings) as url:
        tenant_id = _tenant(url, tenant_ref)
        total, replayed = asyncio.run(
            _replay(
                url,
                tenant_id,
                destination_id=destination,
                since=since,
                until=until,
                states=states or ("dead_lettered",),
                dry_run=dry_run,
                batch_size=batch_size,
            )
        )
    if dry_run:
        click.echo(f"would replay {total} deliveries (dry run: nothing written)")
    else:
        click.echo(f"replayed {replayed} deliveries")


async def _replay(
    url: str,
    tenant_id: uuid.UUID,
    *,
    states: tuple[str, ...],
    dry_run: bool,
    batch_size: int,
    **filters: Any,
) -> tuple[int, int]:
    from courier.replay import MAX_BULK, replay_dead_letters

    actor = _actor()
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        # Count first (a dry run writes nothing), so progress has a length.
        total, cursor = 0, None
        while True:
            page = await replay_dead_letters(
                conn, tenant_id, actor=actor, states=states, dry_run=True,
                limit=MAX_BULK, cursor=cursor, **filters,
            )  # fmt: skip
            total += page.count
            cursor = page.next_cursor
            if cursor is None:
                break
        if dry_run:
            return total, 0
        replayed = 0
        with progress("replaying", total) as bar:
            while True:
                # Replayed deliveries drop out of the filter, so each batch starts over
                # from the beginning and never finds the same one twice.
                result = await replay_dead_letters(
                    conn, tenant_id, actor=actor, states=states, limit=batch_size, **filters
                )
                replayed += result.count
                bar.step(result.count)
                if result.count == 0 or result.next_cursor is None:
                    break
        return total, replayed


@main.command("recover")
@click.option("--tenant", "tenant_ref", required=True, help="tenant id or name")
@click.option("--destination", type=click.UUID, required=True, help="the destination's id")
@click.option("--since", type=Timestamp(), required=True, help="the outage began (ISO 8601)")
@click.option("--until", type=Timestamp(), default=None, help="the outage ended (default: now)")
@click.option("--dry-run", is_flag=True, help="count what would be delivered; write nothing")
@click.option(
    "--batch-size", type=click.IntRange(1, 10_000), default=DEFAULT_BATCH, show_default=True
)
@clear_errors
def recover_cmd(
    tenant_ref: str,
    destination: uuid.UUID,
    since: datetime,
    until: datetime | None,
    dry_run: bool,
    batch_size: int,
) -> None:
    """Deliver what a destination missed while it was disabled or failing.

    Events it never received become new deliveries, and deliveries that failed in the
    window are replayed. Safe to stop and run again.
    """
    if until is not None and until <= since:
        raise ValueError("--until must be after --since")
    settings = settings_from_env()
    with database_url(settings) as url:
        tenant_id = _tenant(url, tenant_ref)
        total, made = asyncio.run(
            _recover(url, tenant_id, destination, since, until, dry_run, batch_size)
        )
    if dry_run:
        click.echo(f"would deliver {total} (dry run: nothing written)")
    else:
        click.echo(f"recovered {made} deliveries")


async def _recover(
    url: str,
    tenant_id: uuid.UUID,
    destination: uuid.UUID,
    since: datetime,
    until: datetime | None,
    dry_run: bool,
    batch_size: int,
) -> tuple[int, int]:
    from courier.recovery import (
        DestinationDisabled,
        DestinationNotFound,
        outage,
        recover_destination,
    )

    actor = _actor()
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        missed = await outage(conn, tenant_id, destination, since, until)
        if missed is None:
            raise ValueError(f"no destination {destination} in this tenant")
        total = missed.missed_events + missed.disabled_failures
        if dry_run:
            return total, 0
        made = 0
        with progress("recovering", total) as bar:
            while True:
                try:
                    result = await recover_destination(
                        conn, tenant_id, destination, actor=actor, since=since, until=until,
                        limit=batch_size,
                    )  # fmt: skip
                except DestinationNotFound:
                    raise ValueError(f"no destination {destination} in this tenant") from None
                except DestinationDisabled:
                    raise ValueError(
                        f"destination {destination} is disabled: enable it first, then recover"
                    ) from None
                made += result.count
                bar.step(result.count)
                if result.count == 0 or not result.more:
                    break
        return total, made
