"""The operator console in Chromium, against a real server, worker and receiver.

Each test seeds deliveries through the real pipeline (enqueue → worker → receiver),
signs in with an API key and reads what an operator would read.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from aiohttp import web
from playwright.async_api import Page, expect

from courier.enqueue import enqueue_event
from tests.e2e.console.conftest import Console, Tenant, screenshot_dir
from tests.support.broker_servers import RedisServer
from tests.support.engine import Engine, wait_terminal
from tests.support.keys import key_secret

XSS_BODY = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'


def _send(conn: psycopg.Connection[Any], tenant: Tenant, event_type: str, n: int = 1) -> None:
    for i in range(n):
        enqueue_event(conn, tenant.id, event_type, {"n": i, "note": "</pre><b>not bold</b>"})


def _delivery_ids(conn: psycopg.Connection[Any], destination_id: uuid.UUID) -> list[uuid.UUID]:
    rows = conn.execute(
        "SELECT id FROM deliveries WHERE destination_id = %s ORDER BY id", (destination_id,)
    ).fetchall()
    return [r[0] for r in rows]


async def test_sign_in_pick_a_destination_and_read_its_attempts(
    console: Console, engine: Engine, page: Page
) -> None:
    acme = console.make_tenant("acme")
    ok, _ = engine.make_destination(
        engine.receiver.url("/ok"), tenant_id=acme.id, name="billing-ok", event_types=["ok.*"]
    )
    flaky, _ = engine.make_destination(
        engine.receiver.script("/flaky", [500, 500]),
        tenant_id=acme.id,
        name="crm-flaky",
        event_types=["flaky.*"],
    )
    _send(engine.conn, acme, "ok.created", 3)
    _send(engine.conn, acme, "flaky.created")
    await wait_terminal(engine.db_url, 4)

    await console.sign_in(acme)
    await expect(page.locator("header .who")).to_contain_text(acme.name)
    rows = page.locator("#destinations tbody tr")
    await expect(rows).to_have_count(2)
    ok_row = page.locator(f'tr[data-destination="{ok["id"]}"]')
    await expect(ok_row.locator("td").nth(5)).to_have_text("3")  # delivered
    await expect(ok_row.locator(".health")).to_have_text("healthy")
    flaky_row = page.locator(f'tr[data-destination="{flaky["id"]}"]')
    await expect(flaky_row).to_contain_text("33%")  # 1 of 3 attempts succeeded
    await expect(page.locator("#chart rect")).not_to_have_count(0)

    await page.click("text=crm-flaky")
    await page.wait_for_url(f"{console.url}/console/integrations/{flaky['id']}")
    (flaky_delivery,) = _delivery_ids(engine.conn, flaky["id"])
    listed = page.locator("#deliveries tbody tr[data-delivery]")
    await expect(listed).to_have_count(1)
    await expect(listed.first).to_have_attribute("data-delivery", str(flaky_delivery))
    await expect(listed.first).to_contain_text("delivered")
    await page.click("nav.filters >> text=failed")
    await expect(page.locator("#deliveries tbody tr[data-delivery]")).to_have_count(0)
    await expect(page.locator("#deliveries")).to_contain_text("No deliveries in state failed")
    await page.click("nav.filters >> text=delivered")
    await expect(page.locator("#deliveries tbody tr[data-delivery]")).to_have_count(1)

    await page.click(f'tr[data-delivery="{flaky_delivery}"] a')
    await page.wait_for_url(f"{console.url}/console/deliveries/{flaky_delivery}")
    attempts = page.locator("ol.timeline li.attempt[data-attempt]")
    await expect(attempts).to_have_count(3)
    for number, outcome, http, retryable in (
        (1, "retryable failure", "HTTP 500", "retryable"),
        (2, "retryable failure", "HTTP 500", "retryable"),
        (3, "succeeded", "HTTP 200", "—"),
    ):
        item = attempts.nth(number - 1)
        await expect(item.locator(".num")).to_have_text(f"#{number}")
        await expect(item.locator(".outcome")).to_have_text(outcome)
        await expect(item.locator(".http")).to_have_text(http)
        await expect(item.locator(".retryable")).to_have_text(retryable)
        await expect(item.locator(".duration")).to_have_text(re.compile(r"^\d+ ms$|^\d+\.\d+ s$"))
        await expect(item.locator(".worker code")).to_have_text(re.compile(r"^test-"))
    await expect(attempts.nth(0).locator(".error-summary")).to_contain_text("HTTP 500")
    await expect(page.locator("#state")).to_have_text("delivered")
    await expect(page.locator("#why")).to_have_count(0)  # nothing to explain
    # the payload's markup is shown as text
    await expect(page.locator("pre.payload")).to_contain_text("</pre><b>not bold</b>")


async def test_a_broker_destination_shows_its_kind_redacted_config_and_attempts(
    console: Console, engine: Engine, page: Page, tmp_path: Path
) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    redis_server = RedisServer(tmp_path, password=password)
    await redis_server.start()
    try:
        acme = console.make_tenant("acme")
        stream, _ = engine.make_destination(
            "",
            tenant_id=acme.id,
            name="orders-stream",
            kind="redis_stream",
            config={"url": redis_server.url, "stream": "orders", "maxlen": 500},
        )
        _send(engine.conn, acme, "order.created")
        await wait_terminal(engine.db_url, 1)
    finally:
        await redis_server.kill()

    await console.sign_in(acme)
    row = page.locator(f'tr[data-destination="{stream["id"]}"]')
    await expect(row.locator(".kind")).to_have_text("redis_stream")
    await page.click("text=orders-stream")
    await page.wait_for_url(f"{console.url}/console/integrations/{stream['id']}")
    await expect(page.locator(".url")).to_have_text(f"redis://127.0.0.1:{redis_server.port}")
    await expect(page.locator("#kind-name")).to_have_text("redis_stream")
    await expect(page.locator('dd.config[data-field="url"]')).to_have_text("<redacted>")
    await expect(page.locator('dd.config[data-field="stream"]')).to_have_text("orders")
    await expect(page.locator('dd.config[data-field="maxlen"]')).to_have_text("500")
    assert password not in await page.content()

    (delivery_id,) = _delivery_ids(engine.conn, stream["id"])
    await page.click(f'tr[data-delivery="{delivery_id}"] a')
    await page.wait_for_url(f"{console.url}/console/deliveries/{delivery_id}")
    (attempt,) = await page.locator("ol.timeline li.attempt[data-attempt]").all()
    await expect(attempt.locator(".outcome")).to_have_text("succeeded")
    await expect(attempt.locator(".http")).to_have_text("XADD: entry added")
    await expect(page.locator("#summary .kind")).to_have_text("redis_stream")
    assert password not in await page.content()


async def test_a_dead_letter_is_explained_then_replayed_and_watched_to_delivery(
    console: Console, engine: Engine, page: Page
) -> None:
    acme = console.make_tenant("acme")
    down, _ = engine.make_destination(
        engine.receiver.always("/down", 503),
        tenant_id=acme.id,
        name="warehouse-down",
        max_attempts=3,
    )
    _send(engine.conn, acme, "order.created")
    await wait_terminal(engine.db_url, 1)
    (dead,) = _delivery_ids(engine.conn, down["id"])

    await console.sign_in(acme, "/console/dead-letters")
    row = page.locator(f'#dead-letters tr[data-delivery="{dead}"]')
    await expect(row).to_contain_text("warehouse-down")
    await expect(row).to_contain_text("503")
    await row.locator("a").first.click()
    await page.wait_for_url(f"{console.url}/console/deliveries/{dead}")
    await expect(page.locator("#state")).to_have_text("dead lettered")
    explanation = page.locator("#why .explanation")
    await expect(explanation).to_have_text(
        re.compile(r"^Dead-lettered: 3 attempts over [\d.]+ seconds; last: HTTP 503$")
    )
    await expect(page.locator("#why")).to_contain_text(
        "Every allowed delivery attempt failed with a temporary error"
    )

    engine.receiver.always("/down", 200)  # the receiver is fixed; replay
    await page.click("#replay")
    await page.wait_for_url(re.compile(r"/console/deliveries/(?!" + str(dead) + ")"))
    replay_id = uuid.UUID(page.url.rsplit("/", 1)[1])
    await expect(page.locator("#replay-of")).to_have_text(str(dead))
    await page.evaluate("window.__same_page = true")  # a reload would clear it
    await expect(page.locator("#state")).to_have_text("delivered", timeout=20_000)
    await expect(page.locator("ol.timeline li.attempt[data-attempt]")).to_have_count(1)
    await expect(page.locator("ol.timeline .http")).to_have_text("HTTP 200")
    assert await page.evaluate("window.__same_page") is True  # it updated while we watched
    assert len(engine.receiver.hits("/down")) == 4

    await page.click("#replay-of")
    await expect(page.locator("a.replayed-as")).to_have_text(str(replay_id))
    await expect(page.locator("#audit")).to_contain_text("delivery.replayed")
    key_id = engine.conn.execute(
        "SELECT id FROM api_keys WHERE tenant_id = %s", (acme.id,)
    ).fetchone()
    assert key_id is not None
    await expect(page.locator("#audit")).to_contain_text(f"console:{key_id[0]}")
    audit = engine.conn.execute(
        "SELECT actor FROM audit_records WHERE delivery_id = %s AND action = 'delivery.replayed'",
        (dead,),
    ).fetchall()
    assert audit == [(f"console:{key_id[0]}",)]


async def test_batch_replay_confirms_with_the_dry_run_count(
    console: Console, engine: Engine, page: Page
) -> None:
    acme = console.make_tenant("acme")
    first, _ = engine.make_destination(
        engine.receiver.always("/a", 503),
        tenant_id=acme.id,
        name="a",
        event_types=["a.*"],
        max_attempts=1,
    )
    engine.make_destination(
        engine.receiver.always("/b", 503),
        tenant_id=acme.id,
        name="b",
        event_types=["b.*"],
        max_attempts=1,
    )
    _send(engine.conn, acme, "a.created", 3)
    _send(engine.conn, acme, "b.created", 1)
    await wait_terminal(engine.db_url, 4)

    await console.sign_in(acme, "/console/dead-letters")
    await expect(page.locator("#dead-letters tbody tr[data-delivery]")).to_have_count(4)
    await page.select_option("select[name=destination_id]", str(first["id"]))
    await page.click(".filters-form button[type=submit]")
    await expect(page.locator("#dead-letters tbody tr[data-delivery]")).to_have_count(3)
    engine.receiver.always("/a", 200)
    await page.click("#replay-batch")
    await expect(page.locator("#dry-run-count")).to_have_text("3")
    assert engine.conn.execute("SELECT count(*) FROM deliveries").fetchone() == (4,)  # dry run
    await page.click("#confirm-replay")
    await expect(page.locator("#replayed-count")).to_have_text("3")
    await wait_terminal(engine.db_url, 7)
    replays = engine.conn.execute(
        "SELECT count(*) FROM deliveries WHERE replay_of IS NOT NULL AND state = 'delivered'"
    ).fetchone()
    assert replays == (3,)
    bulk = engine.conn.execute(
        "SELECT actor FROM audit_records WHERE action = 'deliveries.bulk_replayed'"
    ).fetchall()
    assert len(bulk) == 1 and bulk[0][0].startswith("console:")


async def test_another_tenants_delivery_by_url_answers_404(
    console: Console, engine: Engine, page: Page
) -> None:
    acme, globex = console.make_tenant("acme"), console.make_tenant("globex")
    theirs, _ = engine.make_destination(
        engine.receiver.url("/globex"), tenant_id=globex.id, name="globex-hook"
    )
    _send(engine.conn, globex, "order.created")
    await wait_terminal(engine.db_url, 1)
    (their_delivery,) = _delivery_ids(engine.conn, theirs["id"])

    await console.sign_in(acme)
    for path in (
        f"/console/deliveries/{their_delivery}",
        f"/console/integrations/{theirs['id']}",
        f"/console/deliveries/{uuid.uuid4()}",
        "/console/deliveries/not-a-uuid",
    ):
        response = await page.goto(console.url + path)
        assert response is not None and response.status == 404, path
        await expect(page.locator("h1")).to_have_text("Not found")
        await expect(page.locator("main")).not_to_contain_text("globex")
    await page.goto(console.url + "/console/integrations")
    await expect(page.locator("#destinations")).not_to_contain_text("globex-hook")
    # replaying it is refused the same way
    status = await page.evaluate(
        """async (id) => {
            const csrf = document.querySelector("input[name=csrf_token]").value;
            const r = await fetch(`/console/deliveries/${id}/replay`, {method: "POST",
                headers: {"content-type": "application/x-www-form-urlencoded"},
                body: "csrf_token=" + encodeURIComponent(csrf)});
            return r.status;
        }""",
        str(their_delivery),
    )
    assert status == 404
    replayed = engine.conn.execute("SELECT count(*) FROM deliveries WHERE replay_of IS NOT NULL")
    assert replayed.fetchone() == (0,)


async def test_script_in_an_error_summary_renders_as_text(
    console: Console, engine: Engine, page: Page
) -> None:
    acme = console.make_tenant("acme")
    engine.receiver.always("/xss", lambda request: web.Response(status=500, text=XSS_BODY))
    hostile, _ = engine.make_destination(
        engine.receiver.url("/xss"), tenant_id=acme.id, name="<i>hostile</i>", max_attempts=1
    )
    _send(engine.conn, acme, "order.created")
    await wait_terminal(engine.db_url, 1)
    (delivery,) = _delivery_ids(engine.conn, hostile["id"])
    stored = engine.conn.execute("SELECT error_summary FROM delivery_attempts").fetchone()
    assert stored is not None and "<script>window.__xss = 1</script>" in stored[0]

    await console.sign_in(acme)
    for path in (
        f"/console/deliveries/{delivery}",
        "/console/dead-letters",
        f"/console/integrations/{hostile['id']}",
        "/console/integrations",
    ):
        await page.goto(console.url + path)
        await expect(page.locator("main")).to_contain_text("<i>hostile</i>")
        assert await page.evaluate("window.__xss") is None, path
        assert await page.locator("main script, main img, main i").count() == 0, path
        scripts = await page.eval_on_selector_all("script", "els => els.map(e => e.src)")
        assert scripts == [f"{console.url}/console/static/console.js"], path
    await page.goto(f"{console.url}/console/deliveries/{delivery}")
    await expect(page.locator(".error-summary")).to_contain_text(
        "<script>window.__xss = 1</script>"
    )
    await page.goto(f"{console.url}/console/dead-letters")
    await expect(page.locator(f'tr[data-delivery="{delivery}"] td.err')).to_contain_text(
        "<script>window.__xss = 1</script>"
    )


async def test_counts_and_chart_update_while_you_watch(
    console: Console, engine: Engine, page: Page
) -> None:
    acme = console.make_tenant("acme")
    engine.make_destination(engine.receiver.url("/ok"), tenant_id=acme.id, name="live")
    await console.sign_in(acme)
    delivered = page.locator('#totals [data-state="delivered"]')
    await expect(delivered).to_have_text("0")
    await expect(page.locator("#live-status")).to_have_text("live")
    await page.evaluate("window.__same_page = true")
    _send(engine.conn, acme, "order.created", 2)
    await expect(delivered).to_have_text("2", timeout=20_000)
    await expect(page.locator("#chart figcaption")).to_contain_text("(2 in all")
    assert await page.evaluate("window.__same_page") is True


async def test_sign_out_ends_the_session_and_forms_need_their_token(
    server: str,
    page: Page,
    conn: psycopg.Connection[Any],
    make_tenant: Callable[[str], Tenant],
) -> None:
    acme = make_tenant("acme")
    await page.goto(server + "/console/integrations")
    await page.fill("#api_key", acme.key[:-4] + "AAAA")
    await page.click("button[type=submit]")
    await expect(page.locator("[role=alert]")).to_have_text("That API key is not valid.")

    await page.fill("#api_key", acme.key)
    await page.click("button[type=submit]")
    await page.wait_for_url(server + "/console/integrations")
    (cookie,) = [c for c in await page.context.cookies() if c["name"] == "courier_console"]
    assert cookie.get("httpOnly") is True
    assert cookie.get("sameSite") == "Strict"
    assert cookie.get("secure") is False  # plain http on loopback; https sets it
    secret_part = key_secret(acme.key)
    assert secret_part not in cookie["value"] and acme.key not in cookie["value"]

    forged = await page.evaluate(
        """async () => (await fetch("/console/sign-out", {method: "POST",
            headers: {"content-type": "application/x-www-form-urlencoded"},
            body: "csrf_token=forged"})).status"""
    )
    assert forged == 403
    await page.goto(server + "/console/integrations")
    await expect(page.locator("h1")).to_have_text("Integrations")  # still signed in

    await page.click("text=Sign out")
    await page.wait_for_url(re.compile(r"/console/sign-in"))
    await page.goto(server + "/console/integrations")
    assert "/console/sign-in" in page.url


async def test_screenshots_of_the_main_pages(
    console: Console, engine: Engine, page: Page, tmp_path: Path
) -> None:
    """PNGs of the integrations page, two timelines and the dead letters (docs/images)."""
    demo = console.make_tenant("demo")
    engine.make_destination(
        engine.receiver.url("/orders"),
        tenant_id=demo.id,
        name="orders-service",
        event_types=["order.*"],
    )
    flaky, _ = engine.make_destination(
        engine.receiver.script("/crm", [503, 502, 500, 503]),
        tenant_id=demo.id,
        name="crm-sync",
        event_types=["customer.*"],
    )
    ledger, _ = engine.make_destination(
        engine.receiver.always("/ledger", 503),
        tenant_id=demo.id,
        name="ledger",
        event_types=["invoice.*"],
        max_attempts=3,
    )
    engine.make_destination(
        engine.receiver.always("/legacy", 410),
        tenant_id=demo.id,
        name="legacy-erp",
        event_types=["invoice.*"],
    )
    _send(engine.conn, demo, "order.created", 6)
    _send(engine.conn, demo, "customer.updated", 2)
    _send(engine.conn, demo, "invoice.paid", 2)
    await wait_terminal(engine.db_url, 12)
    flaky_ids = _delivery_ids(engine.conn, flaky["id"])

    folder = screenshot_dir(tmp_path)
    await console.sign_in(demo)
    dead_letter = _delivery_ids(engine.conn, ledger["id"])[0]
    shots = {
        "console-integrations.png": "/console/integrations",
        "console-timeline.png": f"/console/deliveries/{flaky_ids[0]}",
        "console-dead-letters.png": "/console/dead-letters",
        "console-dead-letter.png": f"/console/deliveries/{dead_letter}",
    }
    for name, path in shots.items():
        await page.goto(console.url + path)
        await page.wait_for_load_state("load")
        await page.screenshot(path=str(folder / name), full_page=True)
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    await page.goto(console.url + "/console/integrations")
    await expect(page.locator("#destinations tbody tr")).to_have_count(4)
    await expect(page.locator(".health.h-failing, .health.h-degraded")).not_to_have_count(0)
