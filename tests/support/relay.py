"""An HTTP relay on loopback in front of a real server (the test Redmine), to stop an
exchange at a chosen step: before the server sees a request, or after the server has
answered but before the client gets the answer. Everything else passes through.

`inject(method, path, status, headers)` answers the next such request itself, without
forwarding it (a 429 or 503 from a proxy in front of the server). A test names the step
with `hold(method, path)`; the relay sets `arrived` (the request is
here, not yet forwarded) or `answered` (the server answered; the client waits) and keeps
the exchange until `release()`: then it drops the connection without an answer, which is
what a client killed meanwhile would have seen anyway.

The step `late_forward` is a request that outlives its client: the relay keeps it
until the next request of the same method and path has been answered by the server,
then forwards it (the server acts on it after the later one) and only then passes the
later answer on. `forwarded` is set and `late_status` holds the server's answer to it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
from aiohttp import web

Step = Literal["before_forward", "after_answer", "late_forward"]
_HOP_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


@dataclass
class Hold:
    method: str
    path: str
    step: Step
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    forwarded: asyncio.Event = field(default_factory=asyncio.Event)
    late_status: int | None = None

    def matches(self, request: web.Request) -> bool:
        return request.method == self.method and request.path == self.path

    def release(self) -> None:
        self.released.set()


class Relay:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = 0
        self.holds: list[Hold] = []
        self.injected: list[tuple[str, str, web.Response]] = []
        self.seen: list[tuple[str, str]] = []  # (method, path) of every request relayed
        self._late: list[Hold] = []  # late_forward holds waiting for the next such request
        self._stopping = False
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hold(self, method: str, path: str, step: Step) -> Hold:
        """Stop the next `method path` exchange at `step` (once)."""
        held = Hold(method, path, step)
        self.holds.append(held)
        return held

    def inject(
        self, method: str, path: str, status: int, headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next `method path` with `status` instead of forwarding it (once)."""
        self.injected.append((method, path, web.Response(status=status, headers=headers)))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append((request.method, request.path))
        for method, path, answer in self.injected:
            if (method, path) == (request.method, request.path):
                self.injected.remove((method, path, answer))
                return answer
        held = next((h for h in self.holds if h.matches(request)), None)
        if held is not None:
            self.holds.remove(held)
        if held is not None and held.step == "before_forward":
            held.arrived.set()
            await held.released.wait()
            return _drop(request)
        if held is not None and held.step == "late_forward":
            held.arrived.set()
            self._late.append(held)
            await held.released.wait()
            if self._stopping:
                return _drop(request)
            held.late_status, _, _ = await self._forward(request, body)
            held.forwarded.set()
            return _drop(request)
        status, payload, kept = await self._forward(request, body)
        late = next((h for h in self._late if h.matches(request)), None)
        if late is not None:
            self._late.remove(late)
            late.release()
            await late.forwarded.wait()
        if held is not None:
            held.answered.set()
            await held.released.wait()
            return _drop(request)
        return web.Response(status=status, body=payload, headers=kept)

    async def _forward(
        self, request: web.Request, body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=body, headers=headers
        ) as answer:
            payload = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_HEADERS}
            return answer.status, payload, kept

    async def start(self) -> Relay:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server: Any = site._server  # aiohttp keeps the listening server here
        self.port = int(server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        self._stopping = True
        for held in [*self.holds, *self._late]:
            held.release()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> Relay:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _drop(request: web.Request) -> web.Response:
    transport = request.transport
    if transport is not None:
        with contextlib.suppress(Exception):
            transport.abort()
    return web.Response(status=502)  # never written: the connection is gone
