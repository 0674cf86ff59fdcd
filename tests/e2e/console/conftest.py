"""The console under a real browser: courier's app served by uvicorn on 127.0.0.1, a
worker, the loopback receiver, and Debian's Chromium driven by Playwright.

Everything runs on the test's event loop: the server and the worker are tasks, and
Playwright's async API talks to Chromium while they serve it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from playwright.async_api import Browser, Page, ViewportSize, async_playwright
from pydantic import SecretStr

from courier.asgi import create_app
from courier.settings import Settings
from courier.tenancy import create_tenant
from tests.integration.observability.conftest import uvicorn_serving
from tests.support.engine import make_worker, run_workers

CHROMIUM = "/usr/bin/chromium"  # Debian's package (.ci/run installs it)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}  # fixed, so screenshots are comparable
# Where `make screenshots` asks the screenshot test to write (docs/images); unset: tmp.
SCREENSHOT_DIR_ENV = "COURIER_CONSOLE_SCREENSHOTS"


@dataclass
class Tenant:
    id: uuid.UUID
    name: str
    key: str
    key_id: uuid.UUID


@pytest.fixture
def make_tenant(conn: psycopg.Connection[Any]) -> Callable[[str], Tenant]:
    def make(prefix: str = "console") -> Tenant:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        tenant_id, issued = create_tenant(conn, name)
        return Tenant(tenant_id, name, issued.key, issued.id)

    return make


@pytest.fixture
async def server(db_url: str, secret_key: str) -> AsyncIterator[str]:
    """`courier serve`'s app on a free loopback port; yields its base URL."""
    settings = Settings(
        database_url=db_url, secret_key=SecretStr(secret_key), allow_private_destinations=True
    )
    async with uvicorn_serving(create_app(settings, db_url)) as base:
        yield base


@pytest.fixture
async def worker(db_url: str, secret_key: str) -> AsyncIterator[None]:
    async with run_workers([make_worker(db_url, secret_key)]):
        yield


@pytest.fixture
def chromium_path() -> str:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(15_000)
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def sign_in(page: Page, base: str, key: str, path: str = "/console/integrations") -> None:
    """Open a console page, get sent to sign-in, sign in, and land back on that page."""
    await page.goto(base + path)
    assert "/console/sign-in" in page.url
    await page.fill("#api_key", key)
    await page.click("button[type=submit]")
    await page.wait_for_url(base + path)


@dataclass(frozen=True)
class Console:
    """The console served on `url` with a worker delivering behind it, and the browser
    page to use it through."""

    url: str
    page: Page
    make_tenant: Callable[[str], Tenant]

    async def sign_in(self, tenant: Tenant, path: str = "/console/integrations") -> None:
        """Sign in as `tenant` on the way to `path` and land there."""
        await sign_in(self.page, self.url, tenant.key, path)


@pytest.fixture
def console(server: str, worker: None, page: Page, make_tenant: Callable[[str], Tenant]) -> Console:
    return Console(server, page, make_tenant)


def screenshot_dir(tmp_path: Path) -> Path:
    configured = os.environ.get(SCREENSHOT_DIR_ENV)
    folder = Path(configured) if configured else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder
