"""The console's create and edit forms for a destination's delivery options: headers,
authentication, TLS, payload format, response bodies and the payload filter.

Secrets are write-only: after saving, no console page's HTML holds one; a blank secret
field keeps the stored value (a real delivery to a loopback receiver shows the header
and the credentials still sent); a refusal is the API's message beside the field it
names, with nothing stored; every change is audited as through the API.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import psycopg
import pytest
import trustme
from fastapi import FastAPI
from psycopg.rows import dict_row

from courier.asgi import create_app
from courier.crypto import SecretBox
from tests.integration.api.conftest import api_settings, serving
from tests.integration.console.test_console_manage import FORM, SECRET, _row, _sign_in, _tenant
from tests.support.engine import make_worker, run_workers, wait_terminal
from tests.support.receiver import Receiver

HEADER_VALUE = "hv-5e1d-header-secret"
PASSWORD = "pw-5e1d-basic-secret"
TOKEN_VALUE = "tk-5e1d-bearer-secret"
ID = re.compile(r'href="/console/integrations/([0-9a-f-]{36})"')


@pytest.fixture
def app(db_url: str, secret_key: str) -> FastAPI:
    return create_app(api_settings(secret_key), db_url)


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(app) as client:
        yield client


@pytest.fixture(scope="module")
def client_cert() -> tuple[str, str]:
    issued = trustme.CA().issue_cert("courier-client@example.com")
    certificate = b"".join(blob.bytes() for blob in issued.cert_chain_pems).decode()
    return certificate, issued.private_key_pem.bytes().decode()


def _form(csrf: str, url: str, **options: Any) -> dict[str, Any]:
    """The destination form as a browser posts it: every options field, blanks included."""
    form: dict[str, Any] = {
        **FORM,
        "url": url,
        "csrf_token": csrf,
        "options_form": "1",
        "filter": "",
        "payload_format": "raw",
        "header_name": ["", "", ""],
        "header_value": ["", "", ""],
        "auth_type": "none",
        "auth_username": "",
        "auth_password": "",
        "auth_token": "",
        "auth_token_url": "",
        "auth_client_id": "",
        "auth_client_secret": "",
        "auth_scope": "",
        "auth_audience": "",
        "tls_certificate": "",
        "tls_private_key": "",
        "tls_ca_certificate": "",
    }
    form.update(options)
    return form


async def _pages(api: httpx.AsyncClient, dest_id: str) -> list[str]:
    """Every console page that shows something of this destination, as raw bodies."""
    bodies = []
    for path in (
        "/console/integrations",
        f"/console/integrations/{dest_id}",
        f"/console/integrations/{dest_id}/edit",
        f"/console/integrations/{dest_id}/delete",
        "/console/event-types",
    ):
        answer = await api.get(path)
        assert answer.status_code == 200, path
        bodies.append(answer.text)
    return bodies


def _audited(conn: psycopg.Connection[Any], dest_id: str) -> list[tuple[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT action, data FROM audit_records WHERE destination_id = %s ORDER BY id",
            (dest_id,),
        ).fetchall()
    return [(r["action"], r["data"]) for r in rows]


async def test_secrets_are_write_only_and_a_blank_field_keeps_them(
    api: httpx.AsyncClient,
    conn: psycopg.Connection[Any],
    db_url: str,
    secret_key: str,
    receiver: Receiver,
) -> None:
    acme = _tenant(conn)
    csrf = await _sign_in(api, acme)
    created = await api.post(
        "/console/destinations",
        data=_form(
            csrf,
            receiver.url("/hook"),
            header_name=["X-Api-Key", "", ""],
            header_value=[HEADER_VALUE, "", ""],
            auth_type="basic",
            auth_username="courier-user",
            auth_password=PASSWORD,
            payload_format="envelope",
            capture_response_body="1",
            filter='{"type": {"$ne": "never"}}',
        ),
    )
    assert created.status_code == 200, created.text
    assert SECRET.search(created.text) is not None  # the signing secret, shown once
    assert HEADER_VALUE not in created.text and PASSWORD not in created.text
    found = ID.search(created.text)
    assert found is not None
    dest_id = found.group(1)
    row = _row(conn, dest_id)
    assert row["options"]["headers"] == ["X-Api-Key"]
    assert row["options"]["auth"] == {"type": "basic", "username": "courier-user"}
    assert row["payload_format"] == "envelope" and row["capture_response_body"] is True
    assert row["filter"] == {"type": {"$ne": "never"}}
    stored = orjson.dumps(row, default=str).decode()
    assert HEADER_VALUE not in stored and PASSWORD not in stored  # encrypted at rest
    assert _audited(conn, dest_id)[0][0] == "destination.created"

    for body in await _pages(api, dest_id):
        assert HEADER_VALUE not in body and PASSWORD not in body
    edit = await api.get(f"/console/integrations/{dest_id}/edit")
    assert edit.text.count("set — leave blank to keep") == 2  # the header and the password

    # An edit that leaves the secrets blank keeps them; only the name is audited.
    saved = await api.post(
        f"/console/integrations/{dest_id}/edit",
        data=_form(
            csrf,
            receiver.url("/hook"),
            name="orders renamed",
            header_name=["X-Api-Key", "", "", ""],
            header_value=["", "", "", ""],
            auth_type="basic",
            auth_username="courier-user",
            payload_format="envelope",
            capture_response_body="1",
            filter='{"type": {"$ne": "never"}}',  # as it was
        ),
    )
    assert saved.status_code == 303, saved.text
    assert _audited(conn, dest_id)[-1] == ("destination.updated", {"changed": ["name"]})
    for body in await _pages(api, dest_id):
        assert HEADER_VALUE not in body and PASSWORD not in body

    sent = await api.post(f"/console/integrations/{dest_id}/send-test", data={"csrf_token": csrf})
    assert sent.status_code == 303
    async with run_workers([make_worker(db_url, secret_key)]):
        await wait_terminal(db_url, 1)
    (hit,) = receiver.hits()
    assert hit.headers["X-Api-Key"] == HEADER_VALUE
    expected = base64.b64encode(f"courier-user:{PASSWORD}".encode()).decode()
    assert hit.headers["Authorization"] == f"Basic {expected}"
    assert orjson.loads(hit.body)["type"] == "courier.test"  # the envelope
    for body in await _pages(api, dest_id):
        assert HEADER_VALUE not in body and PASSWORD not in body


async def test_remove_controls_clear_secrets_and_new_ones_replace_them(
    api: httpx.AsyncClient,
    conn: psycopg.Connection[Any],
    db_url: str,
    secret_key: str,
    receiver: Receiver,
) -> None:
    acme = _tenant(conn)
    csrf = await _sign_in(api, acme)
    created = await api.post(
        "/console/destinations",
        data=_form(
            csrf,
            receiver.url("/hook"),
            header_name=["X-Api-Key", "X-Other", ""],
            header_value=[HEADER_VALUE, "other-value", ""],
            auth_type="basic",
            auth_username="courier-user",
            auth_password=PASSWORD,
        ),
    )
    found = ID.search(created.text)
    assert found is not None
    dest_id = found.group(1)
    saved = await api.post(
        f"/console/integrations/{dest_id}/edit",
        data=_form(
            csrf,
            receiver.url("/hook"),
            header_name=["X-Api-Key", "X-Other", "", "", ""],
            header_value=["", "", "", "", ""],
            header_remove=["X-Api-Key"],
            auth_type="bearer",
            auth_token=TOKEN_VALUE,
        ),
    )
    assert saved.status_code == 303, saved.text
    assert _audited(conn, dest_id)[-1] == ("destination.updated", {"changed": ["auth", "headers"]})
    row = _row(conn, dest_id)
    assert row["options"]["headers"] == ["X-Other"]
    assert set(row["option_secrets"]) == {"headers.X-Other", "auth.token"}
    for body in await _pages(api, dest_id):
        assert TOKEN_VALUE not in body and "other-value" not in body

    # A bearer token left blank stays; leaving the type at bearer keeps it.
    kept = await api.post(
        f"/console/integrations/{dest_id}/edit",
        data=_form(
            csrf,
            receiver.url("/hook"),
            header_name=["X-Other", "", "", ""],
            header_value=["", "", "", ""],
            auth_type="bearer",
        ),
    )
    assert kept.status_code == 303 and _audited(conn, dest_id)[-1][0] == "destination.updated"
    await api.post(f"/console/integrations/{dest_id}/send-test", data={"csrf_token": csrf})
    async with run_workers([make_worker(db_url, secret_key)]):
        await wait_terminal(db_url, 1)
    (hit,) = receiver.hits()
    assert hit.headers["Authorization"] == f"Bearer {TOKEN_VALUE}"
    assert hit.headers["X-Other"] == "other-value" and "X-Api-Key" not in hit.headers

    # `none` removes the authentication; removing the last header leaves none.
    cleared = await api.post(
        f"/console/integrations/{dest_id}/edit",
        data=_form(
            csrf,
            receiver.url("/hook"),
            header_name=["X-Other", "", "", ""],
            header_value=["", "", "", ""],
            header_remove=["X-Other"],
        ),
    )
    assert cleared.status_code == 303
    row = _row(conn, dest_id)
    assert row["options"] == {} and row["option_secrets"] == {}


async def test_a_client_certificate_key_is_write_only_and_kept_when_blank(
    api: httpx.AsyncClient,
    conn: psycopg.Connection[Any],
    secret_key: str,
    client_cert: tuple[str, str],
) -> None:
    certificate, key = client_cert
    acme = _tenant(conn)
    csrf = await _sign_in(api, acme)
    url = "https://hooks.example.com/in"
    created = await api.post(
        "/console/destinations",
        data=_form(
            csrf,
            url,
            tls_certificate=certificate.replace("\n", "\r\n"),  # as a textarea posts it
            tls_private_key=key.replace("\n", "\r\n"),
            tls_ca_certificate=certificate,
        ),
    )
    assert created.status_code == 200, created.text
    found = ID.search(created.text)
    assert found is not None
    dest_id = found.group(1)
    key_body = key.strip().splitlines()[1]  # a line of the key's base64
    for body in await _pages(api, dest_id):
        assert key_body not in body
    edit = await api.get(f"/console/integrations/{dest_id}/edit")
    assert (
        "set — leave blank to keep" in edit.text
        and 'id="tls_client_certificate_remove"' in edit.text
    )
    assert certificate.strip().splitlines()[1] in edit.text  # a certificate is not secret

    saved = await api.post(
        f"/console/integrations/{dest_id}/edit",
        data=_form(
            csrf, url, name="renamed", tls_certificate=certificate, tls_ca_certificate=certificate
        ),
    )
    assert saved.status_code == 303, saved.text
    assert _audited(conn, dest_id)[-1] == ("destination.updated", {"changed": ["name"]})
    row = _row(conn, dest_id)
    box = SecretBox(secret_key)
    opened = box.decrypt(row["option_secrets"]["tls_client_certificate.private_key"])
    assert opened.replace("\r\n", "\n").strip() == key.strip()

    removed = await api.post(
        f"/console/integrations/{dest_id}/edit",
        data=_form(
            csrf,
            url,
            name="renamed",
            tls_certificate=certificate,
            tls_client_certificate_remove="1",
            tls_ca_certificate=certificate,
        ),
    )
    assert removed.status_code == 303
    row = _row(conn, dest_id)
    assert "tls_client_certificate" not in row["options"] and row["option_secrets"] == {}
    assert _audited(conn, dest_id)[-1] == (
        "destination.updated",
        {"changed": ["tls_client_certificate"]},
    )


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        (
            {"header_name": ["Host", ""], "header_value": [HEADER_VALUE, ""]},
            "headers.Host",
            "is a reserved header that courier sets itself",
        ),
        (
            {"header_name": ["X Bad", ""], "header_value": [HEADER_VALUE, ""]},
            "headers.X Bad",
            "is not an HTTP header name",
        ),
        (
            {"header_name": ["", ""], "header_value": [HEADER_VALUE, ""]},
            "headers",
            "a header value needs a name",
        ),
        (
            {"tls_certificate": "-----BEGIN CERTIFICATE-----\nnope\n", "tls_private_key": "x"},
            "tls_client_certificate.certificate",
            "is not a PEM certificate",
        ),
        (
            {"tls_ca_certificate": "not a pem"},
            "tls_ca_certificate",
            "is not a PEM certificate",
        ),
        ({"auth_type": "bearer"}, "auth.bearer.token", "at least 1 character"),
        ({"filter": '{"amount": {"$gte": "x"'}, "filter", "is not JSON"),
        ({"filter": '{"amount": {"$bogus": 1}}'}, "filter.amount.$bogus", ""),
        ({"payload_format": "xml"}, "payload_format", "must be one of"),
    ],
)
async def test_a_refused_option_names_its_field_and_stores_nothing(
    api: httpx.AsyncClient,
    conn: psycopg.Connection[Any],
    options: dict[str, Any],
    field: str,
    message: str,
) -> None:
    acme = _tenant(conn)
    csrf = await _sign_in(api, acme)
    form = _form(
        csrf,
        "https://hooks.example.com/in",
        auth_type=options.pop("auth_type", "basic"),
        auth_username="courier-user",
        auth_password=PASSWORD,
        **options,
    )
    answer = await api.post("/console/destinations", data=form)
    assert answer.status_code == 422, answer.text
    assert f'class="field-error" role="alert" data-field="{field}"' in answer.text
    assert message in answer.text
    assert 'id="destination-form"' in answer.text  # the form again, to correct
    assert PASSWORD not in answer.text and HEADER_VALUE not in answer.text  # not echoed
    assert conn.execute(
        "SELECT count(*) FROM destinations WHERE tenant_id = %s", (acme.id,)
    ).fetchone() == (0,)

    # The same refusal on an edit changes nothing and is not audited.
    made = await api.post("/console/destinations", data=_form(csrf, "https://hooks.example.com/in"))
    found = ID.search(made.text)
    assert found is not None
    dest_id = found.group(1)
    before = _row(conn, dest_id)
    form["csrf_token"] = csrf
    edited = await api.post(f"/console/integrations/{dest_id}/edit", data=form)
    assert edited.status_code == 422
    assert f'data-field="{field}"' in edited.text and PASSWORD not in edited.text
    assert _row(conn, dest_id) == before
    assert [a for a, _ in _audited(conn, dest_id)] == ["destination.created"]


async def test_a_broker_destinations_form_has_no_auth_or_tls(
    api: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    acme = _tenant(conn)
    found = conn.execute(
        "INSERT INTO destinations (tenant_id, name, url, kind, config)"
        " VALUES (%s, 'orders', 'amqp://broker.example/', 'rabbitmq',"
        ' \'{"exchange": "orders"}\') RETURNING id',
        (acme.id,),
    ).fetchone()
    assert found is not None
    dest_id = str(found[0])
    csrf = await _sign_in(api, acme)
    page = await api.get(f"/console/integrations/{dest_id}/edit")
    assert 'id="auth_type"' not in page.text and 'id="tls_certificate"' not in page.text
    assert 'name="header_name"' in page.text and 'id="payload_format"' in page.text
    form = _form(csrf, "", capture_response_body="1")
    del form["url"]
    row = _row(conn, dest_id)
    form.update({k: str(row[k]) for k in ("max_attempts", "timeout_ms", "backoff_initial_ms")})
    form.update(name="orders", backoff_max_ms=str(row["backoff_max_ms"]))
    saved = await api.post(f"/console/integrations/{dest_id}/edit", data=form)
    assert saved.status_code == 303, saved.text
    assert _row(conn, dest_id)["capture_response_body"] is True
    assert _audited(conn, dest_id)[-1] == (
        "destination.updated",
        {"changed": ["capture_response_body"]},
    )


async def test_a_scoped_session_cannot_reach_anothers_options(
    api: httpx.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    acme = _tenant(conn)
    mine = await api.post(
        "/v1/destinations",
        json={"name": "mine", "url": "https://example.com/m"},
        headers=acme.headers,
    )
    theirs = await api.post(
        "/v1/destinations",
        json={
            "name": "theirs",
            "url": "https://example.com/t",
            "headers": {"X-Api-Key": HEADER_VALUE},
        },
        headers=acme.headers,
    )
    csrf = await _sign_in(api, acme, destination_ids=[mine.json()["id"]])
    other = theirs.json()["id"]
    assert (await api.get(f"/console/integrations/{other}/edit")).status_code == 404
    answer = await api.post(
        f"/console/integrations/{other}/edit",
        data=_form(
            csrf,
            "https://example.com/t",
            header_name=["X-Api-Key", ""],
            header_value=["", ""],
            header_remove=["X-Api-Key"],
        ),
    )
    assert answer.status_code == 404
    assert _row(conn, other)["options"] == {"headers": ["X-Api-Key"]}
    assert uuid.UUID(other)  # the path named a real destination, of this tenant
