"""CPU per webhook POST of courier's HTTP/1.1 client against aiohttp, httpx and raw h11.

    python -m bench.http_clients                  # 1 and 32 in flight, 3 rounds each
    python -m bench.http_clients --in-flight 8 --rounds 1 --clients courier,aiohttp

The loopback receiver (bench.receiver) runs in its own process, so its CPU is not
counted. Each client runs in a fresh child process on uvloop (the worker's loop): it
sends `--warmup` POSTs, then `--requests` POSTs with `--in-flight` at a time over
keep-alive connections (stopping early after `--seconds`, so a slow client cannot make
a round endless), and reports the CPU time (user + system) its process spent on them.
Every client sends the same request: a 1 KiB JSON body with the Standard Webhooks
headers, each answer read whole. Rounds interleave the clients, and the table shows
each client's median round, because the machine is shared and a round can be unlucky.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from courier import signing

CLIENTS = ("courier", "aiohttp", "httpx", "h11")
TIMEOUT_S = 10.0
BODY = orjson.dumps({"type": "invoice.paid", "data": {"id": "inv_1", "pad": "x" * 960}})
HEADERS = {
    **signing.webhook_headers([signing.generate_secret()], "msg_bench", 1_700_000_000, BODY),
    "content-type": "application/json",
}

Post = Callable[[], Awaitable[None]]


async def courier_client(url: str, in_flight: int) -> tuple[Post, Callable[[], Awaitable[None]]]:
    from yarl import URL

    from courier.adapters.http1 import Http1Client, Target

    async def resolve(host: str, port: int) -> list[str]:
        return [host]

    client = Http1Client(resolve, max_body_bytes=64 * 1024, excerpt_bytes=4096)
    target = Target.for_post(URL(url), "bench")

    async def post() -> None:
        # The adapter builds the request bytes on every delivery, so this does too.
        response = await client.post(target, target.request(HEADERS, BODY), TIMEOUT_S)
        assert response.status == 200

    return post, client.close


async def aiohttp_client(url: str, in_flight: int) -> tuple[Post, Callable[[], Awaitable[None]]]:
    import aiohttp

    # As the adapter configured it before it had its own client: no redirects, cookies or
    # decompression, a bounded read.
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=in_flight),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
    )

    async def post() -> None:
        async with session.post(url, data=BODY, headers=HEADERS, allow_redirects=False) as r:
            await r.content.read(64 * 1024)
            assert r.status == 200

    return post, session.close


async def httpx_client(url: str, in_flight: int) -> tuple[Post, Callable[[], Awaitable[None]]]:
    import httpx

    client = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight),
        timeout=TIMEOUT_S,
        follow_redirects=False,
    )

    async def post() -> None:
        response = await client.post(url, content=BODY, headers=HEADERS)
        assert response.status_code == 200

    return post, client.aclose


async def h11_client(url: str, in_flight: int) -> tuple[Post, Callable[[], Awaitable[None]]]:
    """The smallest client h11 allows: one connection per task slot, no pool logic."""
    import h11
    from yarl import URL

    parsed = URL(url)
    host, port = parsed.host or "127.0.0.1", parsed.port or 80
    headers = [("host", f"{host}:{port}"), ("content-length", str(len(BODY))), *HEADERS.items()]
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, h11.Connection]] = []

    async def post() -> None:
        if idle:
            reader, writer, conn = idle.pop()
            conn.start_next_cycle()
        else:
            reader, writer = await asyncio.open_connection(host, port)
            conn = h11.Connection(h11.CLIENT)
        request = h11.Request(method="POST", target=parsed.raw_path_qs, headers=headers)
        writer.write(
            conn.send(request) + conn.send(h11.Data(data=BODY)) + conn.send(h11.EndOfMessage())
        )
        status = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage):
                break
        assert status == 200
        idle.append((reader, writer, conn))

    async def close() -> None:
        for _, writer, _ in idle:
            writer.close()

    return post, close


FACTORIES = {
    "courier": courier_client,
    "aiohttp": aiohttp_client,
    "httpx": httpx_client,
    "h11": h11_client,
}


async def _measure(
    name: str, url: str, requests: int, seconds: float, in_flight: int, warmup: int
) -> dict[str, Any]:
    post, close = await FACTORIES[name](url, in_flight)

    async def run(count: int, seconds: float) -> int:
        """POST from `in_flight` lanes until `count` are done or `seconds` have passed."""
        deadline = time.perf_counter() + seconds
        done = 0

        async def lane() -> None:
            nonlocal done
            while done < count and time.perf_counter() < deadline:
                done += 1
                await post()

        await asyncio.gather(*(lane() for _ in range(in_flight)))
        return done

    await run(warmup, seconds)
    cpu, wall = time.process_time(), time.perf_counter()
    done = await run(requests, seconds)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await close()
    return {"client": name, "in_flight": in_flight, "requests": done, "cpu_s": cpu, "wall_s": wall}


def _child(args: argparse.Namespace) -> None:
    import uvloop

    run = uvloop.run if args.loop == "uvloop" else asyncio.run
    result = run(
        _measure(
            args.child, args.url, args.requests, args.seconds, int(args.in_flight), args.warmup
        )
    )
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


def _start_receiver() -> tuple[subprocess.Popen[bytes], str]:
    receiver = subprocess.Popen(
        [sys.executable, "-m", "bench.receiver", "--port", "0"], stdout=subprocess.PIPE
    )
    assert receiver.stdout is not None
    line = receiver.stdout.readline().decode()
    if "listening on" not in line:
        receiver.kill()
        raise SystemExit(f"the receiver did not start: {line!r}")
    return receiver, f"http://{line.split()[-1]}/hook"


def _run_child(name: str, url: str, in_flight: int, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "bench.http_clients", "--child", name, "--url", url,
        "--requests", str(args.requests), "--seconds", str(args.seconds),
        "--in-flight", str(in_flight), "--warmup", str(args.warmup), "--loop", args.loop,
    ]  # fmt: skip
    out = subprocess.run(command, check=True, capture_output=True, timeout=600).stdout
    result: dict[str, Any] = orjson.loads(out.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="POSTs per round, at most")
    parser.add_argument("--seconds", type=float, default=15.0, help="a round's time, at most")
    parser.add_argument("--in-flight", default="1,32", help="comma-separated: one table row each")
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--child", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    names = [n for n in args.clients.split(",") if n]
    widths = [int(k) for k in args.in_flight.split(",") if k]
    receiver, url = _start_receiver()
    rounds: dict[tuple[str, int], list[dict[str, Any]]] = {}
    try:
        for i in range(args.rounds):
            for k in widths:
                for name in names:
                    result = _run_child(name, url, k, args)
                    rounds.setdefault((name, k), []).append(result)
                    us = result["cpu_s"] / result["requests"] * 1e6
                    print(f"round {i + 1} {name:8} x{k:<3} {us:7.1f} µs CPU/POST", file=sys.stderr)
    finally:
        receiver.terminate()
        receiver.wait(timeout=15)
    print(
        f"up to {args.requests} POSTs or {args.seconds:g} s per round, on {args.loop};"
        f" median of {args.rounds}"
    )
    print()
    print("| client | in flight | CPU per POST (µs) | POSTs per CPU-second | wall POSTs/s |")
    print("|---|---:|---:|---:|---:|")
    for (name, k), results in rounds.items():
        median = sorted(results, key=lambda r: r["cpu_s"] / r["requests"])[len(results) // 2]
        cpu_us = median["cpu_s"] / median["requests"] * 1e6
        per_cpu = median["requests"] / median["cpu_s"]
        per_wall = statistics.median(r["requests"] / r["wall_s"] for r in results)
        print(f"| {name} | {k} | {cpu_us:.0f} | {per_cpu:,.0f} | {per_wall:,.0f} |")


if __name__ == "__main__":
    main()
