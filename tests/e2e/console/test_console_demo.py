"""`courier up --demo`: a newcomer opens the printed console URL, signs in with the printed
key and sees the demo tenant's delivered, retrying, failed and dead-lettered deliveries."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, expect

from courier.crypto import generate_key
from tests.support.ports import free_port


@pytest.fixture
def courier_up_demo(db_url: str) -> Iterator[tuple[str, str]]:
    """`courier up --demo` on the test database; yields (console URL, API key)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}
    env.update(COURIER_DATABASE_URL=db_url, COURIER_SECRET_KEY=generate_key())
    proc = subprocess.Popen(
        [sys.executable, "-m", "courier", "up", "--demo", "--port", str(free_port())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        console = key = None
        deadline = time.monotonic() + 60
        assert proc.stdout is not None
        while (console is None or key is None) and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            if match := re.search(r"console:\s+(http://\S+)", line):
                console = match.group(1)
            if match := re.search(r"API key:\s+(ck_\S+)", line):
                key = match.group(1)
        assert console is not None and key is not None, "courier up --demo printed no URL/key"
        # Keep reading: a full pipe would block its logging, and then its SIGINT handling.
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        yield console, key
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()


async def test_up_demo_shows_every_kind_of_outcome(
    courier_up_demo: tuple[str, str], page: Page
) -> None:
    console, key = courier_up_demo
    for _ in range(100):  # the server starts after the banner is printed
        try:
            await page.goto(console)
            break
        except PlaywrightError:
            await asyncio.sleep(0.1)
    assert "/console/sign-in" in page.url
    await page.fill("#api_key", key)
    await page.click("button[type=submit]")
    await page.wait_for_url(console)
    await expect(page.locator("header .who")).to_contain_text("demo")
    await expect(page.locator("#destinations tbody tr")).to_have_count(5)
    totals = page.locator("#totals")
    # the stream updates the counts while the worker works through the demo events
    await expect(totals.locator('[data-state="delivered"]')).to_have_text("5", timeout=30_000)
    await expect(totals.locator('[data-state="retry_scheduled"]')).to_have_text("1")
    await expect(totals.locator('[data-state="failed"]')).to_have_text("1")
    await expect(totals.locator('[data-state="dead_lettered"]')).to_have_text("1")

    await page.click("nav >> text=Dead letters")
    row = page.locator("#dead-letters tbody tr[data-delivery]")
    await expect(row).to_have_count(1)
    await row.locator("a").first.click()
    await expect(page.locator("#why .explanation")).to_have_text(
        re.compile(r"3 attempts over [\d.]+ seconds; last: HTTP 503$")
    )
