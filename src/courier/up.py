"""`courier up`: everything on one machine for a first look.

Embedded database (unless COURIER_DATABASE_URL is set), migrations, a `default` tenant
with a fresh API key, the API and console, and one worker for all tenants, in one
process. Private destination addresses are allowed, so a receiver on this machine works.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket

import click
import psycopg

from courier.crypto import generate_key
from courier.logs import configure_logging
from courier.metrics import CourierMetrics
from courier.serving import listen, uvicorn_logging
from courier.settings import Settings
from courier.store.database import database_url
from courier.store.migrate import migrate
from courier.store.pooler import direct_url
from courier.tenancy import create_api_key, create_tenant, resolve_tenants

DEFAULT_TENANT = "default"
DEMO_NOTE = [
    "  demo:      the key is tenant demo's: sign in to the console with it to see",
    "             delivered, retrying, failed and dead-lettered deliveries",
]


def _ensure_secret_key(settings: Settings) -> Settings:
    if settings.secret_key is not None:
        return settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key_file = settings.data_dir / "secret_key"
    if not key_file.exists():
        key_file.write_text(generate_key())
        key_file.chmod(0o600)
    return settings.model_copy(update={"secret_key": key_file.read_text().strip()})


def _api_key(url: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            (tenant_id,) = resolve_tenants(conn, [DEFAULT_TENANT])
            return create_api_key(conn, tenant_id, name="courier up").key
        except ValueError:
            return create_tenant(conn, DEFAULT_TENANT)[1].key


def _describe_database(settings: Settings) -> str:
    if settings.database_url:
        return "COURIER_DATABASE_URL"
    return f"embedded PostgreSQL in {settings.data_dir.resolve()}"


def run_up(settings: Settings, demo: bool = False) -> None:
    from pydantic import SecretStr

    settings = _ensure_secret_key(settings)
    if isinstance(settings.secret_key, str):
        settings = settings.model_copy(update={"secret_key": SecretStr(settings.secret_key)})
    settings = settings.model_copy(
        update={"allow_private_destinations": True, "worker_tenants": "*", "log_format": "human"}
    )
    configure_logging("human", settings.log_level.upper())
    # The port is taken before anything says courier is up: a busy one is one clear line.
    sock = listen(settings.host, settings.port)
    with database_url(settings) as url:
        direct = direct_url(settings, url)  # migrations hold a session lock
        applied = migrate(direct)
        _verify_secret_key(settings, direct)
        key = _api_key(direct) if not demo else _demo_key(direct)
        base = f"http://{settings.host}:{settings.port}"
        click.echo(
            "\n".join(
                [
                    "courier is up",
                    f"  database:  {_describe_database(settings)}",
                    f"  migrations applied now: {len(applied)}",
                    f"  API:       {base}/v1   (OpenAPI: {base}/docs)",
                    f"  console:   {base}/console/integrations",
                    f"  API key:   {key}",
                    *(DEMO_NOTE if demo else []),
                    "  worker:    1, serving all tenants",
                    "  note:      private/loopback destinations are ALLOWED (first-look mode)",
                    "Stop with Ctrl-C.",
                ]
            )
        )
        _run(settings, url, sock, demo)


def _verify_secret_key(settings: Settings, url: str) -> None:
    """The worker serves every tenant: its key must open their secrets (one line if not)."""
    from courier.crypto import SecretBox
    from courier.worker.runner import verify_secret_key

    assert settings.secret_key is not None
    verify_secret_key(url, SecretBox(settings.secret_key.get_secret_value()), None)


def _demo_key(url: str) -> str:
    from courier.console.demo import demo_tenant_key

    return demo_tenant_key(url)


def _run(settings: Settings, url: str, sock: socket.socket, demo: bool = False) -> None:
    try:
        import uvloop

        uvloop.run(_serve_and_work(settings, url, sock, demo))
    except ImportError:  # pragma: no cover
        asyncio.run(_serve_and_work(settings, url, sock, demo))


async def _serve_and_work(
    settings: Settings, url: str, sock: socket.socket, demo: bool = False
) -> None:
    import uvicorn

    from courier.asgi import create_app
    from courier.worker_setup import build_worker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    demo_receiver = None
    if demo:  # a local receiver and the demo tenant's destinations and events
        from courier.console.demo import start_demo
        from courier.crypto import SecretBox

        assert settings.secret_key is not None
        demo_receiver = await start_demo(
            direct_url(settings, url), SecretBox(settings.secret_key.get_secret_value())
        )
    # One registry for both parts: the API's /metrics shows the in-process worker's work.
    metrics = CourierMetrics()
    worker = build_worker(settings, url, metrics)
    config = uvicorn.Config(
        create_app(settings, url, metrics),
        host=settings.host,
        port=settings.port,
        **uvicorn_logging(settings.log_level),
        proxy_headers=False,  # the app applies COURIER_FORWARDED_ALLOW_IPS itself
    )
    server = uvicorn.Server(config)
    worker_task = asyncio.create_task(worker.run(stop))
    server_task = asyncio.create_task(server.serve(sockets=[sock]))
    # uvicorn takes SIGINT/SIGTERM while it serves; either way, both parts stop together.
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({server_task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    server.should_exit = True
    stopper.cancel()
    await asyncio.gather(worker_task, server_task, return_exceptions=True)
    if demo_receiver is not None:
        await demo_receiver.stop()
    logging.getLogger("courier").info("courier up: stopped (pid %d)", os.getpid())
