"""A destination's delivery options and catalog examples in Chromium, through an operator
portal link: fill the options form (a secret header, basic authentication, the envelope,
captured response bodies), see a refused header named beside its field, save an edit
that leaves the secrets blank, then send a catalog example as the test event and see it
delivered with the header and credentials kept; no page ever shows a secret."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import orjson
from playwright.async_api import Page, expect

from tests.e2e.console.conftest import Console, Tenant, screenshot_dir
from tests.support.engine import Engine, wait_terminal

HEADER_VALUE = "hv-e2e-7c41-secret"
PASSWORD = "pw-e2e-7c41-secret"
EXAMPLE = {"id": "ord_1001", "amount": 4200, "currency": "EUR"}


async def _api(console: Console, tenant: Tenant, method: str, path: str, **body: Any) -> Any:
    async with httpx.AsyncClient(base_url=console.url) as client:
        answer = await client.request(
            method, path, json=body, headers={"Authorization": f"Bearer {tenant.key}"}
        )
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


async def _no_secret(page: Page) -> None:
    html = await page.content()
    assert HEADER_VALUE not in html and PASSWORD not in html, page.url


async def test_an_operator_sets_options_and_sends_an_example_screenshots(
    console: Console, engine: Engine, page: Page, tmp_path: Path
) -> None:
    acme = console.make_tenant("options")
    await _api(
        console,
        acme,
        "PUT",
        "/v1/event-types/order.created",
        description="An order was placed",
        schema={
            "type": "object",
            "required": ["id", "amount"],
            "properties": {"id": {"type": "string"}, "amount": {"type": "integer"}},
        },
        example=EXAMPLE,
    )
    link = await _api(console, acme, "POST", "/v1/portal-sessions", role="operator")
    folder = screenshot_dir(tmp_path)

    await page.goto(link["url"])
    await page.wait_for_url(f"{console.url}/console/integrations")
    await page.click("#new-destination")
    await page.fill("#name", "orders")
    await page.fill("#url", engine.receiver.url("/orders"))
    await page.check('input[name=event_types][value="order.created"]')
    await page.fill("input[name=header_name] >> nth=0", "X-Api-Key")
    await page.fill("input[name=header_value] >> nth=0", HEADER_VALUE)
    await expect(page.locator("#auth_username")).to_be_hidden()  # only the type's fields
    await page.select_option("#auth_type", "basic")
    await expect(page.locator("#auth_token")).to_be_hidden()
    await page.fill("#auth_username", "courier-user")
    await page.fill("#auth_password", PASSWORD)
    await page.select_option("#payload_format", "envelope")
    await page.check("#capture_response_body")
    # A reserved header is refused, the API's message beside the headers, nothing stored.
    await page.fill("input[name=header_name] >> nth=1", "Host")
    await page.fill("input[name=header_value] >> nth=1", "evil.example")
    await page.click("#save")
    error = page.locator('#header-fields .field-error[data-field="headers.Host"]')
    await expect(error).to_contain_text("reserved header")
    await page.screenshot(path=str(folder / "console-destination-options.png"), full_page=True)
    await _no_secret(page)
    assert engine.conn.execute(
        "SELECT count(*) FROM destinations WHERE tenant_id = %s", (acme.id,)
    ).fetchone() == (0,)
    # The form kept what was typed except the secrets: type them again, drop the Host row.
    await expect(page.locator("#auth_username")).to_have_value("courier-user")
    await page.fill("input[name=header_name] >> nth=1", "")
    await page.fill("input[name=header_value] >> nth=1", "")
    await page.fill("input[name=header_value] >> nth=0", HEADER_VALUE)
    await page.fill("#auth_password", PASSWORD)
    await page.click("#save")
    assert (await page.locator("#signing-secret").inner_text()).startswith("whsec_")
    await _no_secret(page)

    await page.click("#to-destination")
    await expect(page.locator("#headers")).to_contain_text("X-Api-Key: <redacted>")
    await _no_secret(page)
    await page.click("#edit")
    await _no_secret(page)
    kept = page.locator('input[name=header_value][aria-label="value of X-Api-Key"]')
    await expect(kept).to_have_attribute("placeholder", "set — leave blank to keep")
    await expect(page.locator("#auth_password")).to_have_attribute(
        "placeholder", "set — leave blank to keep"
    )
    await page.fill("#name", "orders (EU)")
    await page.click("#save")  # the secrets left blank
    await expect(page.locator("h1")).to_have_text("orders (EU)")
    await _no_secret(page)

    example = page.locator('#examples [data-event-type="order.created"]')
    await expect(example.locator("pre.example")).to_contain_text('"ord_1001"')
    await page.screenshot(path=str(folder / "console-destination-examples.png"), full_page=True)
    await example.locator("button.send-example-button").click()
    await page.wait_for_url(f"{console.url}/console/deliveries/*")
    await wait_terminal(engine.db_url, 1)
    (hit,) = engine.receiver.hits("/orders")
    assert hit.headers["X-Api-Key"] == HEADER_VALUE
    pair = base64.b64encode(f"courier-user:{PASSWORD}".encode()).decode()
    assert hit.headers["Authorization"] == f"Basic {pair}"
    assert hit.headers["courier-event-type"] == "order.created"
    body = orjson.loads(hit.body)
    assert body["type"] == "order.created" and body["data"] == EXAMPLE
    await page.reload()
    await expect(page.locator(".badge").first).to_contain_text("delivered")
    await _no_secret(page)

    # The catalog page: each type with its description and example, the schema folded.
    await page.goto(f"{console.url}/console/event-types")
    entry = page.locator('#event-types [data-event-type="order.created"]')
    await expect(entry.locator(".description")).to_have_text("An order was placed")
    await expect(entry.locator("pre.example")).to_contain_text('"ord_1001"')
    await page.screenshot(path=str(folder / "console-event-types.png"), full_page=True)
