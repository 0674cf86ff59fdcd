"""A quick side-by-side: chosen contestants and configurations, no report written.

    python -m bench.compare ceiling courier:2:64:64 pgqueuer:2:128:50 --repeat 2

Each spec is `ceiling` or `name:processes:concurrency:batch`; every round runs them in
the order given, on one server and one receiver, the way `make bench` measures its main
runs. For checking one change in a few minutes; `make bench` is the record.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from bench import measure, pg, procs
from bench.contestant import Contestant, WorkerSpec
from bench.courier_run import Courier
from bench.run import describe, describe_latency

CAP_S = 60.0  # a run still busy after this long is scored on what it finished
LATENCY_RATE = 200.0  # jobs/s offered in a --latency-seconds run, as in make bench


def _contestant(name: str) -> Contestant:
    if name == "courier":
        return Courier()
    if name == "pgqueuer":
        from bench.pgqueuer_run import PgQueuerContestant

        return PgQueuerContestant()
    if name == "procrastinate":
        from bench.procrastinate_run import ProcrastinateContestant

        return ProcrastinateContestant()
    raise SystemExit(f"bench.compare: unknown contestant {name!r}")


def _parse(spec: str) -> tuple[str, WorkerSpec | None]:
    if spec == "ceiling":
        return spec, None
    try:
        name, processes, concurrency, batch = spec.split(":")
        return name, WorkerSpec(int(processes), int(concurrency), int(batch))
    except ValueError:
        message = f"bench.compare: {spec!r} is not name:processes:concurrency:batch"
        raise SystemExit(message) from None


async def compare(
    server_url: str,
    specs: Sequence[str],
    events: int,
    repeat: int,
    delay_ms: float,
    latency_s: float = 0.0,
) -> None:
    log_dir = Path(tempfile.mkdtemp(prefix="courier-compare-"))
    setup = measure.Setup(server_url, log_dir)
    parsed = [_parse(s) for s in specs]
    contestants = {name: _contestant(name) for name, spec in parsed if spec is not None}
    async with aiohttp.ClientSession() as session:
        receiver = await measure.start_receiver("receiver", delay_ms, log_dir, session)
        try:
            for contestant in contestants.values():
                await measure.install_template(setup, contestant)
            for _ in range(repeat):
                for name, spec in parsed:
                    if spec is None:
                        rate, cpu_us = await measure.ceiling(receiver, log_dir, events, 64)
                        print(
                            f"{'ceiling':14} {'1p × c64':18} {rate:8,.0f}/s  client {cpu_us:.0f} µs"
                        )
                        continue
                    if latency_s:
                        lat = await measure.latency(
                            setup, contestants[name], receiver, spec, LATENCY_RATE, latency_s
                        )
                        print(
                            f"{name:14} {spec.label:18} latency at {LATENCY_RATE:.0f}/s: "
                            + describe_latency(lat),
                            flush=True,
                        )
                        continue
                    r = await measure.throughput(
                        setup, contestants[name], receiver, spec, events, CAP_S
                    )
                    print(f"{name:14} {spec.label:18} {describe(r)}", flush=True)
        finally:
            procs.stop([receiver.child])
            await measure.drop_templates(setup)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("specs", nargs="+", help="ceiling, or name:processes:concurrency:batch")
    parser.add_argument("--events", type=int, default=20_000, help="jobs per run (20,000)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds (1)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="receiver delay (0)")
    parser.add_argument(
        "--latency-seconds", type=float, default=0.0, help="latency runs at 200/s instead"
    )
    args = parser.parse_args(argv)
    with pg.server() as server_url:
        import uvloop

        uvloop.run(
            compare(
                server_url,
                args.specs,
                args.events,
                args.repeat,
                args.delay_ms,
                args.latency_seconds,
            )
        )


if __name__ == "__main__":
    main()
