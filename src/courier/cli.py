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

from courier.crypto import SecretBox
from courier.settings import Settings
from courier.store.database import DatabaseUnavailable, database_url, describe_url
from courier.store.embedded import EmbeddedPostgresError
from courier.store.migrate import MigrationError, migrate

P = ParamSpec("P")
R = TypeVar("R")


def _fail(message: str) -> None:
    click.echo(f"courier: {message}", err=True)
    sys.exit(2)


def clear_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Known failures end in one clear line on stderr, not a traceback."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (DatabaseUnavailable, EmbeddedPostgresError, MigrationError, ValueError) as exc:
            _fail(str(exc))
        except psycopg.OperationalError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            _fail(f"database unavailable: {first}")
        raise AssertionError("unreachable")

    return wrapper


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except Exception as exc:  # pydantic's ValidationError, made into one line
        _fail(f"invalid settings: {exc}".splitlines()[0])
        raise


def _setup_logging(settings: Settings) -> None:
    from courier.logs import configure_logging

    configure_logging(settings.log_format)


@click.group()
@click.version_option(package_name="courier")
def main() -> None:
    """courier: durable outbound webhook delivery on PostgreSQL."""


@main.command("migrate")
@clear_errors
def migrate_cmd() -> None:
    """Apply pending migrations (safe to run concurrently and repeatedly)."""
    settings = _settings()
    with database_url(settings) as url:
        applied = _migrate(url)
    click.echo(
        f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else "")
    )


def _migrate(url: str) -> list[str]:
    try:
        return migrate(url)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot reach the database at {describe_url(url)}") from exc


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
    with database_url(settings) as url, psycopg.connect(url, autocommit=True) as conn:
        try:
            tenant_id, key = create_tenant(conn, name)
        except psycopg.errors.UniqueViolation:
            raise ValueError(f"a tenant named {name!r} already exists") from None
    click.echo(f"tenant_id: {tenant_id}")
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
    with database_url(settings) as url, psycopg.connect(url, autocommit=True) as conn:
        (tenant_id,) = resolve_tenants(conn, [tenant_ref])
        key = create_api_key(conn, tenant_id, name)
    click.echo(f"key_id:  {key.id}")
    click.echo(f"api_key: {key.key}")


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
    with database_url(settings) as url, psycopg.connect(url, autocommit=True) as conn:
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
    from courier.rekey import rekey_secrets

    settings = _settings()
    box = _secret_box(settings, "it holds the keys to re-encrypt with")
    with database_url(settings) as url, psycopg.connect(url, autocommit=True) as conn:
        result = rekey_secrets(conn, box, batch_size=batch_size)
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
    type=click.Choice(["health", "cleaner"]),
    default=None,
    help="run one service (default: both)",
)
@clear_errors
def maintenance_run_once(only: str | None) -> None:
    """One pass of the health service and the retention cleaner; prints what each did.

    Safe to run from cron on many machines: each service runs at most once at a time.
    """
    import asyncio

    from courier.worker.cleaner import Cleaner, CleanerConfig
    from courier.worker.health import HealthConfig, HealthService

    settings = _settings()
    with database_url(settings) as url:
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
        if only in (None, "cleaner"):
            cleaned = asyncio.run(Cleaner(url, CleanerConfig.from_settings(settings)).run_once())
            counts = ", ".join(f"{n} {kind}" for kind, n in cleaned.deleted.items())
            click.echo(
                f"cleaner: deleted {counts}"
                if cleaned.ran
                else "cleaner: another run holds the lock; skipped"
            )


@main.command("worker")
@clear_errors
def worker_cmd() -> None:
    """Run one delivery worker (COURIER_WORKER_* settings)."""
    from courier.worker.runner import WorkerConfigError, run_worker

    settings = _settings()
    _setup_logging(settings)
    settings.worker_tenant_refs()  # refuse early, before touching the database
    _secret_box(settings, "the worker needs it to decrypt signing secrets")
    with database_url(settings) as url:
        try:
            run_worker(settings, url)
        except WorkerConfigError as exc:
            raise ValueError(str(exc)) from None


@main.command("serve")
@click.option("--host", default=None, help="listen address (default 127.0.0.1)")
@click.option("--port", type=int, default=None, help="listen port (default 8080)")
@clear_errors
def serve_cmd(host: str | None, port: int | None) -> None:
    """Run the HTTP API and console."""
    settings = _settings(host=host, port=port)
    _setup_logging(settings)
    _secret_box(settings, "the API needs it to encrypt signing secrets")
    with database_url(settings) as url:
        _serve(settings, url)


def _serve(settings: Settings, url: str) -> None:
    import asyncio

    import uvicorn

    from courier.api.app import create_app

    config = uvicorn.Config(
        create_app(settings, url), host=settings.host, port=settings.port, log_level="warning"
    )
    server = uvicorn.Server(config)

    async def serve() -> None:
        # Our own handlers, installed first: uvicorn restores them and re-raises the signal
        # after its graceful shutdown, which must not kill the process before the embedded
        # database handle is released.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
        await server.serve()

    try:
        import uvloop

        uvloop.run(serve())
    except ImportError:  # pragma: no cover
        asyncio.run(serve())


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


if __name__ == "__main__":  # pragma: no cover
    main()
