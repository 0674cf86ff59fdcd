"""The `courier` command. Settings are built here, from COURIER_* variables and flags."""

from __future__ import annotations

import signal
import sys
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import click
import psycopg
from pydantic import ValidationError

from courier import __version__
from courier.crypto import SecretBox
from courier.errors import CourierError
from courier.settings import Settings, describe_invalid
from courier.store.database import database_url, unreachable
from courier.store.migrate import migrate
from courier.store.pooler import direct_database_url

P = ParamSpec("P")
R = TypeVar("R")


REFUSED = 2  # exit status: a setting, URL, key or argument to fix, or no database


def clear_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Known failures end in one clear line on stderr and an exit status, not a traceback."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (CourierError, ValueError, psycopg.OperationalError) as exc:
            line, status = answer_for(exc)
            click.echo(f"courier: {line}", err=True)
            sys.exit(status)

    return wrapper


def answer_for(exc: Exception) -> tuple[str, int]:
    """The line and the exit status a failure ends a command with: courier's own errors
    (the courier.errors tree) carry their status, a ValueError is a value the caller gave
    that cannot be used, and an OperationalError means PostgreSQL is out of reach."""
    if isinstance(exc, CourierError):
        return str(exc), exc.exit_code
    if isinstance(exc, psycopg.OperationalError):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"database unavailable: {first}", REFUSED
    return str(exc), REFUSED


# Settings whose flag is not the setting's name
_FLAGS = {"serve_workers": "--workers"}


def _settings(**overrides: Any) -> Settings:
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:  # one line per invalid setting, naming it
        flags = {k: _FLAGS.get(k, f"--{k.replace('_', '-')}") for k in given}
        for line in describe_invalid(exc, flags):
            click.echo(f"courier: {line}", err=True)
        sys.exit(REFUSED)


settings_from_env = _settings  # for the command modules beside this one (cli_bulk)


def _setup_logging(settings: Settings) -> None:
    from courier.logs import configure_logging

    configure_logging(settings.log_format, settings.log_level.upper())


@click.group()
@click.version_option(__version__, prog_name="courier")
def main() -> None:
    """courier: durable outbound webhook delivery on PostgreSQL."""


@main.command("migrate")
@clear_errors
def migrate_cmd() -> None:
    """Apply pending migrations (safe to run concurrently and repeatedly)."""
    settings = _settings()
    with direct_database_url(settings) as url:
        applied = _migrate(url)
    click.echo(
        f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else "")
    )


def _migrate(url: str) -> list[str]:
    try:
        # A line as each file starts and ends (a long one shows where it is); the summary
        # comes last, and stderr holds only an error.
        return migrate(
            url,
            on_start=lambda name: click.echo(f"applying {name} ..."),
            on_applied=lambda name, s: click.echo(f"applied {name} in {s:.2f} s"),
        )
    except psycopg.OperationalError as exc:
        raise unreachable(url, exc) from None


@main.group()
def tenants() -> None:
    """Tenants."""


@tenants.command("create")
@click.argument("name")
@clear_errors
def tenants_create(name: str) -> None:
    """Create a tenant and print its first API key (shown once)."""
    from courier.tenancy import create_tenant

    settings = _settings()
    with direct_database_url(settings) as url, psycopg.connect(url, autocommit=True) as conn:
        try:
            tenant_id, key = create_tenant(conn, name)
        except psycopg.errors.UniqueViolation:
            raise ValueError(f"a tenant named {name!r} already exists") from None
    click.echo(f"tenant_id: {tenant_id}")
    click.echo(f"key_id:    {key.id}")
    click.echo(f"api_key:   {key.key}")
    click.echo("(the API key is shown only now; store it safely)", err=True)


@main.group()
def keys() -> None:
    """API keys."""


@keys.command("create")
@click.option("--tenant", "tenant_ref", required=True, help="tenant id or name")
@click.option("--name", default=None, help="a label for the key")
@clear_errors
def keys_create(tenant_ref: str, name: str | None) -> None:
    """Create an API key for a tenant (printed once; only a hash is stored)."""
    from courier.tenancy import create_api_key, resolve_tenants

    settings = _settings()
    with direct_database_url(settings) as url, psycopg.connect(url, autocommit=True) as conn:
        (tenant_id,) = resolve_tenants(conn, [tenant_ref])
        key = create_api_key(conn, tenant_id, name)
    click.echo(f"key_id:  {key.id}")
    click.echo(f"api_key: {key.key}")


@keys.command("list")
@click.option("--tenant", "tenant_ref", required=True, help="tenant id or name")
@clear_errors
def keys_list(tenant_ref: str) -> None:
    """List a tenant's API keys: id, created, revoked, prefix (never the key itself)."""
    from courier.tenancy import list_api_keys, resolve_tenants

    settings = _settings()
    with database_url(settings) as url, psycopg.connect(url, autocommit=True) as conn:
        (tenant_id,) = resolve_tenants(conn, [tenant_ref])
        found = list_api_keys(conn, tenant_id)
    click.echo(f"{'KEY ID':36}  {'CREATED':25}  {'REVOKED':25}  {'PREFIX':12}  NAME")
    for k in found:
        revoked = k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else "no"
        created = k.created_at.isoformat(timespec="seconds")
        click.echo(f"{k.id!s:36}  {created:25}  {revoked:25}  {k.prefix:12}  {k.name or ''}")


@keys.command("revoke")
@click.argument("key_id")
@clear_errors
def keys_revoke(key_id: str) -> None:
    """Revoke an API key by its id."""
    from courier.tenancy import revoke_api_key

    try:
        parsed = uuid.UUID(key_id)
    except ValueError:
        raise ValueError(f"not a key id: {key_id!r}") from None
    settings = _settings()
    with direct_database_url(settings) as url, psycopg.connect(url, autocommit=True) as conn:
        if not revoke_api_key(conn, parsed):
            raise ValueError(f"no active key with id {key_id}")
    click.echo(f"revoked {key_id}")


def _secret_box(settings: Settings, needed_for: str) -> SecretBox:
    """The SecretBox of COURIER_SECRET_KEY; a missing or unusable key is one clear line."""
    if settings.secret_key is None:
        raise ValueError(f"COURIER_SECRET_KEY is not set: {needed_for}")
    return SecretBox(settings.secret_key.get_secret_value())  # SecretKeyError: a ValueError


@main.group()
def secrets() -> None:
    """Destination signing secrets, encrypted at rest under COURIER_SECRET_KEY."""


@secrets.command("generate-key")
def secrets_generate_key() -> None:
    """Print a fresh COURIER_SECRET_KEY value (to start with, or to rotate to)."""
    from courier.crypto import generate_key

    click.echo(generate_key())


@secrets.command("rekey")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=500,
    show_default=True,
    help="destinations re-encrypted per transaction",
)
@clear_errors
def secrets_rekey(batch_size: int) -> None:
    """Re-encrypt every destination's secrets under the first key of COURIER_SECRET_KEY.

    To retire a key: set COURIER_SECRET_KEY=NEW,OLD everywhere, run this, then drop OLD.
    Safe to run again (secrets already under NEW are left alone) and while courier runs.
    """
    from courier.cli_bulk import progress
    from courier.rekey import RekeyResult, rekey_secrets
    from courier.store import destinations as destinations_store

    settings = _settings()
    box = _secret_box(settings, "it holds the keys to re-encrypt with")
    with direct_database_url(settings) as url, psycopg.connect(url, autocommit=True) as conn:
        total = destinations_store.secrets_total(conn)
        # a bar on a terminal; a line per batch otherwise (logs, CI)
        with progress("rekey", total) as bar:

            def on_batch(r: RekeyResult) -> None:
                if bar.bar_shown:
                    bar.step(r.destinations - bar.done)
                else:
                    click.echo(
                        f"rekey: {r.destinations} destination(s) scanned, "
                        f"{r.rekeyed_destinations} rewritten"
                    )

            result = rekey_secrets(conn, box, batch_size=batch_size, on_batch=on_batch)
    click.echo(
        f"destinations: {result.destinations} scanned, {result.rekeyed_destinations} rewritten "
        f"({result.batches} batch(es))"
    )
    click.echo(
        f"secrets: {result.rekeyed_secrets} re-encrypted, {result.current_secrets} already "
        f"under the first key, {result.undecryptable} undecryptable"
    )
    if result.undecryptable:
        raise ValueError(
            f"{result.undecryptable} secret(s) could not be decrypted with any key in "
            "COURIER_SECRET_KEY and were left unchanged: add the key that encrypted them"
        )


@main.group()
def maintenance() -> None:
    """Maintenance services: destination health and retention (docs/operations.md)."""


@maintenance.command("run-once")
@click.option(
    "--only",
    type=click.Choice(["health", "cleaner", "partitions"]),
    default=None,
    help="run one service (default: all)",
)
@clear_errors
def maintenance_run_once(only: str | None) -> None:
    """One pass of the health service, the history partitions and the retention cleaner;
    prints what each did.

    Safe to run from cron on many machines: each service runs at most once at a time.
    """
    import asyncio

    from courier.worker.cleaner import Cleaner
    from courier.worker.health import HealthConfig, HealthService
    from courier.worker.partitions import HistoryPartitions
    from courier.worker_setup import cleaner_config

    settings = _settings()
    with direct_database_url(settings) as url:
        if only in (None, "health"):
            health = asyncio.run(
                HealthService(url, HealthConfig.from_settings(settings)).run_once()
            )
            disabled = ", ".join(f"{d.destination_id} ({d.reason})" for d in health.disabled)
            click.echo(
                f"health: checked {health.checked} destination(s), disabled "
                f"{len(health.disabled)}{': ' + disabled if disabled else ''}"
                if health.ran
                else "health: another run holds the lock; skipped"
            )
        if only in (None, "partitions"):
            made = asyncio.run(HistoryPartitions(url).run_once())
            click.echo(
                f"partitions: created {len(made.created)}"
                f"{': ' + ', '.join(made.created) if made.created else ''}"
                if made.ran
                else "partitions: another run holds the lock; skipped"
            )
        if only in (None, "cleaner"):
            cleaned = asyncio.run(Cleaner(url, cleaner_config(settings)).run_once())
            counts = ", ".join(f"{n} {kind}" for kind, n in cleaned.deleted.items())
            dropped = f"; dropped {', '.join(cleaned.dropped)}" if cleaned.dropped else ""
            click.echo(
                f"cleaner: deleted {counts}{dropped}"
                if cleaned.ran
                else "cleaner: another run holds the lock; skipped"
            )


@main.command("worker")
@clear_errors
def worker_cmd() -> None:
    """Run one delivery worker (COURIER_WORKER_* settings)."""
    from courier.worker.runner import START_WAIT_S
    from courier.worker_setup import run_worker

    settings = _settings()
    _setup_logging(settings)
    settings.worker_tenant_refs()  # refuse early, before touching the database
    _secret_box(settings, "the worker needs it to decrypt signing secrets")
    with database_url(settings, wait_s=START_WAIT_S) as url:
        run_worker(settings, url)  # a loop that dies: LoopDied, exit 1 (clear_errors)


@main.command("serve")
@click.option("--host", default=None, help="listen address (default 127.0.0.1)")
@click.option("--port", type=int, default=None, help="listen port (default 8080)")
@click.option(
    "--workers",
    default=None,
    help="processes serving on the one port (default COURIER_SERVE_WORKERS, else one per "
    "usable core, at most 8)",
)
@clear_errors
def serve_cmd(host: str | None, port: int | None, workers: str | None) -> None:
    """Run the HTTP API and console."""
    settings = _settings(host=host, port=port, serve_workers=workers)
    _setup_logging(settings)
    _secret_box(settings, "the API needs it to encrypt signing secrets")
    with database_url(settings) as url:
        code = _serve(settings, url)
    if code:
        sys.exit(code)


def _serve(settings: Settings, url: str) -> int:
    """Serve until SIGTERM or SIGINT; the exit code."""
    import logging

    from courier.serving import default_workers, listen, supervise

    sock = listen(settings.host, settings.port)
    workers = settings.serve_workers or default_workers()
    # Imported before any fork, so each worker starts from the modules already loaded.
    import uvicorn  # noqa: F401

    import courier.asgi  # noqa: F401

    if workers == 1:
        _serve_one(settings, url, sock, announce=True)
        return 0
    host, port = sock.getsockname()[:2]
    log = logging.getLogger("courier.serve")

    def started() -> None:
        # The socket already listens: connections wait in its backlog for a worker.
        click.echo(f"courier serve: listening on http://{_url_host(host)}:{port}")
        log.info("serving with %d worker processes", workers)

    return supervise(workers, lambda: _serve_one(settings, url, sock, announce=False), log, started)


def _serve_one(settings: Settings, url: str, sock: Any, *, announce: bool) -> None:
    import asyncio

    import uvicorn

    from courier.asgi import create_app
    from courier.serving import uvicorn_logging, wait_started

    config = uvicorn.Config(
        create_app(settings, url),
        host=settings.host,
        port=settings.port,
        **uvicorn_logging(settings.log_level),
        proxy_headers=False,  # the app applies COURIER_FORWARDED_ALLOW_IPS itself
    )
    server = uvicorn.Server(config)

    async def serve() -> None:
        # Our own handlers, installed first: uvicorn restores them and re-raises the signal
        # after its graceful shutdown, which must not kill the process before the embedded
        # database handle is released.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        if await wait_started(server, task) and announce:
            host, port = sock.getsockname()[:2]
            click.echo(f"courier serve: listening on http://{_url_host(host)}:{port}")
        await task

    try:
        import uvloop

        uvloop.run(serve())
    except ImportError:  # pragma: no cover
        asyncio.run(serve())


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@main.command("up")
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
@click.option(
    "--demo",
    is_flag=True,
    help="seed a demo tenant (and run a local receiver) with every kind of outcome",
)
@clear_errors
def up_cmd(host: str | None, port: int | None, demo: bool) -> None:
    """Everything on one machine for a first look."""
    from courier.up import run_up

    settings = _settings(host=host, port=port)
    run_up(settings, demo=demo)


# Registers `replay` and `recover` on `main`; imported last, as it imports from here.
from courier import cli_bulk  # noqa: E402, F401

if __name__ == "__main__":  # pragma: no cover
    main()
