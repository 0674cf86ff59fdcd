"""Destination options over HTTP: headers, auth, TLS identities, payload format and
response capture are accepted, stored with every secret encrypted, read back redacted,
changed by PATCH, and refused (422 naming the field, nothing stored) when bad."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest
import trustme

from tests.integration.api.conftest import Tenant, create_destination

SECRETS = {
    "header": "hdr-value-7f3a9c1e",
    "password": "pw-7f3a9c1e-basic",
    "token": "bearer-7f3a9c1e-token",
    "client_secret": "cs-7f3a9c1e-oauth",
}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def client_cert(ca: trustme.CA) -> tuple[str, str]:
    issued = ca.issue_cert("courier-client@example.com")
    certificate = b"".join(blob.bytes() for blob in issued.cert_chain_pems).decode()
    return certificate, issued.private_key_pem.bytes().decode()


def _stored(conn: psycopg.Connection[Any], destination_id: str) -> str:
    row = conn.execute("SELECT d::text FROM destinations d WHERE id = %s", (destination_id,))
    found = row.fetchone()
    assert found is not None
    return str(found[0])


async def test_every_option_is_stored_encrypted_and_read_back_redacted(
    client: httpx.AsyncClient,
    conn: psycopg.Connection[Any],
    tenant_a: Tenant,
    ca: trustme.CA,
    client_cert: tuple[str, str],
) -> None:
    certificate, key = client_cert
    ca_pem = ca.cert_pem.bytes().decode()
    created = await create_destination(
        client,
        tenant_a,
        headers={"X-Api-Key": SECRETS["header"], "X-Tenant": "acme-7f3a9c1e"},
        auth={"type": "basic", "username": "courier", "password": SECRETS["password"]},
        tls_client_certificate={"certificate": certificate, "private_key": key},
        tls_ca_certificate=ca_pem,
        payload_format="envelope",
        capture_response_body=True,
    )
    expected = {
        "headers": {"X-Api-Key": "<redacted>", "X-Tenant": "<redacted>"},
        "auth": {"type": "basic", "username": "courier", "password": "<redacted>"},
        "tls_client_certificate": {"certificate": certificate, "private_key": "<redacted>"},
        "tls_ca_certificate": ca_pem,
        "payload_format": "envelope",
        "capture_response_body": True,
    }
    assert {k: created[k] for k in expected} == expected
    one = await client.get(f"/v1/destinations/{created['id']}", headers=tenant_a.headers)
    listed = await client.get("/v1/destinations", headers=tenant_a.headers)
    audit = await client.get("/v1/audit", headers=tenant_a.headers)
    assert {k: one.json()[k] for k in expected} == expected
    stored = _stored(conn, created["id"])
    for text in (one.text, listed.text, audit.text, stored, str(created)):
        for secret in (
            SECRETS["header"],
            SECRETS["password"],
            "acme-7f3a9c1e",
            key.splitlines()[1],
        ):
            assert secret not in text


async def test_each_auth_type_reads_back_with_its_secret_redacted(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    bearer = await create_destination(
        client, tenant_a, auth={"type": "bearer", "token": SECRETS["token"]}
    )
    assert bearer["auth"] == {"type": "bearer", "token": "<redacted>"}
    oauth = await create_destination(
        client,
        tenant_a,
        auth={
            "type": "oauth2_client_credentials",
            "token_url": "https://auth.example.com/oauth/token",
            "client_id": "courier-app",
            "client_secret": SECRETS["client_secret"],
            "scope": "webhooks:write",
        },
    )
    assert oauth["auth"] == {
        "type": "oauth2_client_credentials",
        "token_url": "https://auth.example.com/oauth/token",
        "client_id": "courier-app",
        "client_secret": "<redacted>",
        "scope": "webhooks:write",
    }
    for created in (bearer, oauth):
        stored = _stored(conn, created["id"])
        assert SECRETS["token"] not in stored and SECRETS["client_secret"] not in stored


async def test_defaults_are_no_options(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    created = await create_destination(client, tenant_a)
    assert created["headers"] is None and created["auth"] is None
    assert created["tls_client_certificate"] is None and created["tls_ca_certificate"] is None
    assert created["payload_format"] == "raw" and created["capture_response_body"] is False


async def test_patch_replaces_a_field_keeps_the_others_and_null_removes(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    created = await create_destination(
        client,
        tenant_a,
        headers={"X-Api-Key": SECRETS["header"]},
        auth={"type": "bearer", "token": SECRETS["token"]},
    )
    before = conn.execute(
        "SELECT option_secrets->>'auth.token' FROM destinations WHERE id = %s", (created["id"],)
    ).fetchone()
    path = f"/v1/destinations/{created['id']}"
    changed = await client.patch(
        path, json={"headers": {"X-Other": "v2-7f3a"}}, headers=tenant_a.headers
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["headers"] == {"X-Other": "<redacted>"}
    assert changed.json()["auth"] == {"type": "bearer", "token": "<redacted>"}
    after = conn.execute(
        "SELECT option_secrets->>'auth.token', option_secrets ? 'headers.X-Api-Key' "
        "FROM destinations WHERE id = %s",
        (created["id"],),
    ).fetchone()
    assert after is not None and before is not None
    assert after[0] == before[0]  # untouched: the very same ciphertext
    assert after[1] is False
    removed = await client.patch(path, json={"auth": None}, headers=tenant_a.headers)
    assert removed.json()["auth"] is None and removed.json()["headers"] == {"X-Other": "<redacted>"}
    formats = await client.patch(
        path,
        json={"payload_format": "envelope", "capture_response_body": True},
        headers=tenant_a.headers,
    )
    assert formats.json()["payload_format"] == "envelope"
    assert formats.json()["capture_response_body"] is True
    audit = (await client.get("/v1/audit", headers=tenant_a.headers)).text
    assert "v2-7f3a" not in audit and SECRETS["token"] not in audit


BAD_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"headers": {"Host": "evil"}}, "headers.Host"),
    ({"headers": {"Webhook-Signature": "v1,x"}}, "headers.Webhook-Signature"),
    ({"headers": {"content-length": "1"}}, "headers.content-length"),
    ({"headers": {"Transfer-Encoding": "chunked"}}, "headers.Transfer-Encoding"),
    ({"headers": {"Connection": "close"}}, "headers.Connection"),
    ({"headers": {"courier-event-type": "x"}}, "headers.courier-event-type"),
    ({"headers": {"bad name": "x"}}, "headers.bad name"),
    ({"headers": {"X-A": "1", "x-a": "2"}}, "headers.x-a"),
    ({"headers": {"X-A": "line\r\nX-B: injected"}}, "headers.X-A"),
    ({"headers": {f"X-{n}": "v" for n in range(21)}}, "headers"),
    (
        {
            "headers": {"Authorization": "Bearer x"},
            "auth": {"type": "bearer", "token": "abcdef"},
        },
        "headers.Authorization",
    ),
    ({"auth": {"type": "basic", "username": "u"}}, "auth.basic.password"),
    ({"auth": {"type": "basic", "username": "a:b", "password": "p"}}, "auth.basic.username"),
    ({"auth": {"type": "bearer"}}, "auth.bearer.token"),
    ({"auth": {"type": "digest", "username": "u"}}, "auth"),
    (
        {
            "auth": {
                "type": "oauth2_client_credentials",
                "token_url": "https://auth.example.com/token",
                "client_secret": "s",
            }
        },
        "auth.oauth2_client_credentials.client_id",
    ),
    (
        {
            "auth": {
                "type": "oauth2_client_credentials",
                "token_url": "ftp://auth.example.com/token",
                "client_id": "c",
                "client_secret": "s",
            }
        },
        "auth.token_url",
    ),
    ({"tls_ca_certificate": "not a certificate"}, "tls_ca_certificate"),
    (
        {"tls_client_certificate": {"certificate": "nope", "private_key": "nope"}},
        "tls_client_certificate.certificate",
    ),
    ({"payload_format": "xml"}, "payload_format"),
    ({"capture_response_body": "yes"}, "capture_response_body"),
]


@pytest.mark.parametrize(("options", "field"), BAD_OPTIONS)
async def test_bad_options_are_422_naming_the_field_and_nothing_is_stored(
    client: httpx.AsyncClient,
    conn: psycopg.Connection[Any],
    tenant_a: Tenant,
    options: dict[str, Any],
    field: str,
) -> None:
    response = await client.post(
        "/v1/destinations",
        json={"name": "bad", "url": "https://example.com/hook", **options},
        headers=tenant_a.headers,
    )
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]], response.text
    count = conn.execute("SELECT count(*) FROM destinations").fetchone()
    assert count == (0,)


async def test_a_key_that_is_not_its_certificates_is_refused(
    client: httpx.AsyncClient,
    conn: psycopg.Connection[Any],
    tenant_a: Tenant,
    ca: trustme.CA,
    client_cert: tuple[str, str],
) -> None:
    other_key = ca.issue_cert("someone-else@example.com").private_key_pem.bytes().decode()
    response = await client.post(
        "/v1/destinations",
        json={
            "name": "mtls",
            "url": "https://example.com/hook",
            "tls_client_certificate": {"certificate": client_cert[0], "private_key": other_key},
        },
        headers=tenant_a.headers,
    )
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "tls_client_certificate.private_key"
    assert error["message"] == "does not match the certificate"
    assert "PRIVATE KEY" not in response.text
    assert conn.execute("SELECT count(*) FROM destinations").fetchone() == (0,)


async def test_a_bad_patch_changes_nothing(
    client: httpx.AsyncClient, conn: psycopg.Connection[Any], tenant_a: Tenant
) -> None:
    created = await create_destination(client, tenant_a, headers={"X-Api-Key": "keep-me-123"})
    before = _stored(conn, created["id"])
    response = await client.patch(
        f"/v1/destinations/{created['id']}",
        json={"headers": {"Host": "evil"}, "name": "renamed"},
        headers=tenant_a.headers,
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "headers.Host"
    assert _stored(conn, created["id"]) == before


async def test_tls_options_need_an_https_url(
    client: httpx.AsyncClient, tenant_a: Tenant, ca: trustme.CA
) -> None:
    response = await client.post(
        "/v1/destinations",
        json={
            "name": "plain",
            "url": "http://127.0.0.1:9/hook",
            "tls_ca_certificate": ca.cert_pem.bytes().decode(),
        },
        headers=tenant_a.headers,
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "tls_ca_certificate"
