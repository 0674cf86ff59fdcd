"""The HTTP ceiling: a bare aiohttp client, keep-alive, no database, no signing.

    python -m bench.ceiling --url http://127.0.0.1:PORT/hook --events 20000 --concurrency 64

Posts the same small JSON bodies the contestants send, `--concurrency` in flight over
one pooled session, and prints one JSON line: {"events", "elapsed_s", "rate", "cpu_us"}.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp
import orjson

from bench.payloads import body, new_id


async def post_all(url: str, events: int, concurrency: int) -> float:
    bodies = [(i, new_id()) for i in range(events)]
    next_index = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def lane() -> None:
            nonlocal next_index
            while next_index < len(bodies):
                n, event_id = bodies[next_index]
                next_index += 1
                headers = {"content-type": "application/json", "webhook-id": event_id}
                async with session.post(url, data=body(event_id, n), headers=headers) as resp:
                    await resp.read()
                    resp.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    import uvloop

    elapsed = uvloop.run(post_all(args.url, args.events, args.concurrency))
    result = {
        "events": args.events,
        "elapsed_s": elapsed,
        "rate": args.events / elapsed,
        "cpu_us": time.process_time() / args.events * 1e6,  # this client's CPU per request
    }
    print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
