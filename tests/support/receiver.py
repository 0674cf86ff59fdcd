"""A real HTTP receiver on loopback for delivery tests, with scripted answers per path.

    async with Receiver() as rx:
        rx.script("/flaky", [500, 500, 200])
        url = rx.url("/flaky")

Every request is recorded (time, path, headers, body), so tests assert on what was
actually received.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Answer = int | tuple[int, dict[str, str]] | Callable[[web.Request], Any]


@dataclass
class Received:
    path: str
    at: float  # time.monotonic()
    wall: float  # time.time()
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    host: str = "127.0.0.1"
    default_status: int = 200
    requests: list[Received] = field(default_factory=list)
    _scripts: dict[str, list[Answer]] = field(default_factory=lambda: defaultdict(list))
    _always: dict[str, Answer] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    port: int = 0

    def script(self, path: str, answers: Sequence[Answer], then: Answer | None = None) -> str:
        """Answer the next requests to `path` in order, then `then` (default: 200)."""
        self._scripts[path] = list(answers)
        if then is not None:
            self._always[path] = then
        return self.url(path)

    def always(self, path: str, answer: Answer) -> str:
        self._always[path] = answer
        return self.url(path)

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def hits(self, path: str | None = None) -> list[Received]:
        return [r for r in self.requests if path is None or r.path == path]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            Received(request.path, time.monotonic(), time.time(), dict(request.headers), body)
        )
        queue = self._scripts.get(request.path)
        answer: Answer = (
            queue.pop(0) if queue else self._always.get(request.path, self.default_status)
        )
        if callable(answer):
            result = answer(request)
            if asyncio.iscoroutine(result):
                result = await result
            assert isinstance(result, web.StreamResponse)
            return result
        if isinstance(answer, tuple):
            status, headers = answer
            return web.Response(status=status, headers=headers, text=f"status {status}")
        return web.Response(status=answer, text=f"status {answer}")

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[union-attr]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Receiver:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_for(self, count: int, path: str | None = None, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.hits(path)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"receiver got {len(self.hits(path))} requests on {path}, expected {count}"
                )
            await asyncio.sleep(0.01)
