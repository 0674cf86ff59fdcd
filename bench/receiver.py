"""The loopback receiver every contestant posts to: its own process, the same for all.

    python -m bench.receiver --port 0 --delay-ms 100

Prints `receiver listening on 127.0.0.1:PORT` once bound. Answers every POST with
200 (after `--delay-ms`), counts requests, and records the arrival time (time.time())
of each one keyed by its `webhook-id` header, so the orchestrator can compute
enqueue → delivered latency on the same clock.

Control endpoints (GET): `/stats` → {"count", "first", "last"}; `/arrivals` →
{"ids": [...], "times": [...]}; POST `/reset` forgets everything.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import orjson
from aiohttp import web

OK_BODY = b'{"ok":true}'


class Arrivals:
    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.ids: list[str] = []
        self.times: list[float] = []

    async def hook(self, request: web.Request) -> web.Response:
        await request.read()
        self.ids.append(request.headers.get("webhook-id", ""))
        self.times.append(time.time())
        if self.delay_s > 0:
            await asyncio.sleep(self.delay_s)
        return web.Response(body=OK_BODY, content_type="application/json")

    async def stats(self, _: web.Request) -> web.Response:
        body = {
            "count": len(self.times),
            "first": self.times[0] if self.times else None,
            "last": self.times[-1] if self.times else None,
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def arrivals(self, _: web.Request) -> web.Response:
        body = orjson.dumps({"ids": self.ids, "times": self.times})
        return web.Response(body=body, content_type="application/json")

    async def reset(self, _: web.Request) -> web.Response:
        self.ids = []
        self.times = []
        return web.Response(body=b"{}", content_type="application/json")


def build_app(delay_s: float) -> web.Application:
    arrivals = Arrivals(delay_s)
    app = web.Application()
    app.router.add_get("/stats", arrivals.stats)
    app.router.add_get("/arrivals", arrivals.arrivals)
    app.router.add_post("/reset", arrivals.reset)
    app.router.add_post("/{tail:.*}", arrivals.hook)
    return app


async def serve(port: int, delay_s: float) -> None:
    runner = web.AppRunner(build_app(delay_s), access_log=None)
    await runner.setup()
    # backlog: many workers open their keep-alive connections at once
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024)
    await site.start()
    server = site._server
    assert server is not None
    bound = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"receiver listening on 127.0.0.1:{bound}", flush=True)
    await asyncio.Event().wait()  # until the orchestrator terminates us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.port, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
