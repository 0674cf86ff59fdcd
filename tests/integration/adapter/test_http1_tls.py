"""TLS through the HTTP/1.1 client against a real TLS server on loopback (trustme's CA)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from yarl import URL

from courier.adapters.http1 import Http1Client, Target


@pytest.fixture
async def tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict]:
    """A server with a certificate for "localhost", from a CA the client is told to trust
    through SSL_CERT_FILE (read when the client makes its TLS context)."""
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    seen: dict = {"sni": [], "heads": []}
    context.sni_callback = lambda _obj, name, _ctx: seen["sni"].append(name)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            seen["heads"].append(head)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            await reader.read()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    seen["port"] = server.sockets[0].getsockname()[1]
    yield seen
    server.close()
    await server.wait_closed()


async def test_a_fully_qualified_name_with_a_trailing_dot_verifies(tls_server: dict) -> None:
    looked_up: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        looked_up.append(host)
        return ["127.0.0.1"]

    client = Http1Client(resolve, max_body_bytes=65536, excerpt_bytes=64)
    port = tls_server["port"]
    target = Target.for_post(URL(f"https://localhost.:{port}/hook"), "test")
    try:
        response = await client.post(target, target.request({}, b"{}"), 5.0)
    finally:
        await client.close()
    assert (response.status, response.excerpt) == (200, b"ok")
    # Resolved as written (no search domains), named without the dot everywhere else.
    assert looked_up == ["localhost."]
    assert tls_server["sni"] == ["localhost"]
    [head] = tls_server["heads"]
    assert f"host: localhost:{port}\r\n".encode() in head
