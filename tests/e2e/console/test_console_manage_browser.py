"""Destination self-service in Chromium, through a scoped operator portal link: create a
destination in the console and deliver to it (signature checked with the secret the
console showed once), rotate the secret and deliver again, disable, enable, edit and
delete it, while the link never shows the tenant's other destination."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, expect
from standardwebhooks.webhooks import Webhook

from courier.enqueue import enqueue_event
from tests.e2e.console.conftest import Console, Tenant, screenshot_dir
from tests.support.engine import Engine, wait_terminal


async def _api(console: Console, tenant: Tenant, method: str, path: str, **body: Any) -> Any:
    async with httpx.AsyncClient(base_url=console.url) as client:
        answer = await client.request(
            method, path, json=body, headers={"Authorization": f"Bearer {tenant.key}"}
        )
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


async def test_an_operator_link_creates_rotates_and_deletes_a_destination_screenshots(
    console: Console, engine: Engine, page: Page, tmp_path: Path
) -> None:
    acme = console.make_tenant("selfserve")
    mine, _ = engine.make_destination(
        "https://example.com/mine", tenant_id=acme.id, name="mine", event_types=["other.x"]
    )
    engine.make_destination(
        "https://example.com/hidden", tenant_id=acme.id, name="hidden-crm", event_types=["x.y"]
    )
    await _api(console, acme, "PUT", "/v1/event-types/order.created", description="an order")
    link = await _api(
        console,
        acme,
        "POST",
        "/v1/portal-sessions",
        role="operator",
        destination_ids=[str(mine["id"])],
    )
    folder = screenshot_dir(tmp_path)

    await page.goto(link["url"])
    await page.wait_for_url(f"{console.url}/console/integrations")
    await expect(page.locator("#destinations")).not_to_contain_text("hidden-crm")
    await page.click("#new-destination")
    await page.fill("#name", "orders")
    await page.fill("#url", engine.receiver.url("/orders"))
    await page.check('input[name=event_types][value="order.created"]')
    await page.fill("#max_attempts", "3")
    await page.screenshot(path=str(folder / "console-destination-form.png"), full_page=True)
    await page.click("#save")
    secret = (await page.locator("#signing-secret").inner_text()).strip()
    assert secret.startswith("whsec_")

    result = enqueue_event(engine.conn, acme.id, "order.created", {"order": 1})
    await wait_terminal(engine.db_url, 1)
    (first,) = engine.receiver.hits("/orders")
    assert first.headers["webhook-id"] == str(result.event_id)
    Webhook(secret).verify(first.body, first.headers)

    await page.click("#to-destination")
    await expect(page.locator("h1")).to_have_text("orders")
    await expect(page.locator("#manage")).to_be_visible()
    await page.screenshot(path=str(folder / "console-destination-manage.png"), full_page=True)
    await page.click("#rotate-secret")
    rotated = (await page.locator("#signing-secret").inner_text()).strip()
    assert rotated.startswith("whsec_") and rotated != secret
    enqueue_event(engine.conn, acme.id, "order.created", {"order": 2})
    await wait_terminal(engine.db_url, 2)
    second = engine.receiver.hits("/orders")[1]
    Webhook(rotated).verify(second.body, second.headers)  # the new secret signs
    Webhook(secret).verify(second.body, second.headers)  # and the old one, for a grace period

    await page.click("#to-destination")
    await page.click("#disable")
    await expect(page.locator("#enabled")).to_contain_text("no — disabled")
    await page.click("#enable")
    await expect(page.locator("#enabled")).to_have_text("yes")

    await page.click("#edit")
    await expect(page.locator("#name")).to_have_value("orders")
    await expect(page.locator('input[name=event_types][value="order.created"]')).to_be_checked()
    await page.fill("#name", "orders v2")
    await page.click("#save")
    await expect(page.locator("h1")).to_have_text("orders v2")

    await page.click("#delete")
    await expect(page.locator("#confirm-delete")).to_be_visible()
    await page.click("#confirm-delete")
    await page.wait_for_url(f"{console.url}/console/integrations")
    listed = page.locator("#destinations")
    await expect(listed).to_contain_text("mine")
    await expect(listed).not_to_contain_text("orders v2")
    await expect(listed).not_to_contain_text("hidden-crm")

    actors = engine.conn.execute(
        "SELECT DISTINCT actor FROM audit_records WHERE tenant_id = %s"
        " AND action LIKE 'destination.%%'",
        (acme.id,),
    ).fetchall()
    assert [a for (a,) in actors] == [f"portal:{_session(engine, acme.id)}"]


def _session(engine: Engine, tenant_id: uuid.UUID) -> uuid.UUID:
    row = engine.conn.execute(
        "SELECT id FROM portal_sessions WHERE tenant_id = %s", (tenant_id,)
    ).fetchone()
    assert row is not None
    session_id: uuid.UUID = row[0]
    return session_id
