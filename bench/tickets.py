"""Ticketing throughput and latency: one `courier worker` against a local Redmine.

    python -m bench.tickets [--tickets 200] [--notes 200] [--paced 40] [--rate 2]
                            [--in-flight 2]

Three figures, against Debian's Redmine 5 (WEBrick over SQLite, started on loopback by
tests/support/redmine.py) and a fresh courier database:
  * tickets/s: `--tickets` events with distinct correlation keys, all enqueued before
    the worker starts, timed from the first to the last delivery (each one a search and
    a create in Redmine);
  * notes/s: `--notes` events on those keys (each a note added to an existing issue);
  * enqueue -> ticket: `--paced` events with new keys enqueued at `--rate` per second
    while the worker idles; p50 and p95 of `delivered_at - created_at`.
And the ceiling: Redmine alone, the same search and create sent straight to it by
`--in-flight` threads (no courier), for `--tickets` / 4 keys. The CPU used by the Redmine
server and by the worker over the runs shows which one is the limit. Every count is
bounded; PostgreSQL is COURIER_DATABASE_URL's or an embedded server.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import psycopg
from tests.support.redmine import running_redmine

from bench import pg, procs
from courier.crypto import SecretBox, generate_key
from courier.destinations import create_destination
from courier.enqueue import enqueue_event
from courier.store.migrate import migrate
from courier.tenancy import create_tenant

READY = "started: concurrency"  # the worker's start-up log line
WAIT_S = 600.0  # at most this long for any one phase


def _delivered(conn: psycopg.Connection[Any], since: Any) -> tuple[int, Any, Any]:
    row = conn.execute(
        "SELECT count(*), min(delivered_at), max(delivered_at) FROM deliveries"
        " WHERE state = 'delivered' AND created_at >= %s",
        (since,),
    ).fetchone()
    assert row is not None
    return int(row[0]), row[1], row[2]


def _wait(conn: psycopg.Connection[Any], since: Any, expected: int, worker: procs.Child) -> None:
    deadline = time.monotonic() + WAIT_S
    while True:
        done = conn.execute(
            "SELECT count(*) FILTER (WHERE state IN ('delivered', 'failed', 'dead_lettered')),"
            " count(*) FILTER (WHERE state <> 'delivered'"
            "   AND state IN ('failed', 'dead_lettered'))"
            " FROM deliveries WHERE created_at >= %s",
            (since,),
        ).fetchone()
        assert done is not None
        if done[1]:
            raise RuntimeError(f"{done[1]} deliveries failed:\n{worker.tail()}")
        if done[0] >= expected:
            return
        if worker.popen.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{done[0]}/{expected} delivered:\n{worker.tail()}")
        time.sleep(0.05)


def _now(conn: psycopg.Connection[Any]) -> Any:
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return row[0]


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            times = [proc.cpu_times()] + [c.cpu_times() for c in proc.children(recursive=True)]
        except psutil.Error:
            continue
        total += sum(t.user + t.system for t in times)
    return total


def _alone(redmine: Any, count: int, threads: int) -> float:
    """Searches and creates per second sent straight to Redmine: its ceiling."""
    project = redmine.create_project(f"alone{uuid.uuid4().hex[:8]}")
    field = f"cf_{redmine.correlation_field_id}"

    def one(n: int) -> None:
        key = f"ALONE-{n}"
        search = {
            "project_id": project,
            "set_filter": "1",
            "f[]": ["status_id", field],
            "op[status_id]": "*",
            f"op[{field}]": "=",
            f"v[{field}][]": key,
        }
        assert redmine.api("GET", "/issues.json", params=search).status_code == 200
        issue = {
            "project_id": project,
            "tracker_id": redmine.tracker_id("Bug"),
            "subject": f"alone {n}",
            "custom_fields": [{"id": redmine.correlation_field_id, "value": key}],
        }
        answer = redmine.api("POST", "/issues.json", json={"issue": issue})
        assert answer.status_code == 201, answer.text

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))
    return count / (time.perf_counter() - started)


def run(tickets: int, notes: int, paced: int, rate: float, in_flight: int) -> dict[str, float]:
    results: dict[str, float] = {}
    with (
        pg.server() as server,
        tempfile.TemporaryDirectory(prefix="courier-bench-tickets-") as tmp,
    ):
        workdir = Path(tmp)
        name, url = pg.create_database(server, "courier_tickets")
        try:
            _measure(url, workdir, tickets, notes, paced, rate, in_flight, results)
        finally:
            with psycopg.connect(pg.admin_url(server), autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return results


def _measure(
    url: str,
    workdir: Path,
    tickets: int,
    notes: int,
    paced: int,
    rate: float,
    in_flight: int,
    results: dict[str, float],
) -> None:
    migrate(url)
    key = generate_key()
    with (
        running_redmine(workdir / "redmine") as redmine,
        psycopg.connect(url, autocommit=True) as conn,
    ):
        results["redmine_alone_per_s"] = _alone(redmine, max(2, tickets // 4), in_flight)
        project = redmine.create_project(f"bench{uuid.uuid4().hex[:8]}")
        tenant, _ = create_tenant(conn, "bench-tickets")
        create_destination(
            conn,
            SecretBox(key),
            tenant,
            name="redmine",
            url="",
            kind="redmine",
            config=redmine.destination_config(
                project, subject="{{ payload.title }}", description="{{ payload | tojson }}"
            ),
            timeout_ms=30_000,
            max_in_flight=in_flight,
        )
        start = _now(conn)
        for n in range(tickets):
            payload = {"incident_id": f"INC-{n}", "title": f"incident {n}"}
            enqueue_event(conn, tenant, "incident.opened", payload)
        env = {
            "COURIER_DATABASE_URL": url,
            "COURIER_SECRET_KEY": key,
            "COURIER_WORKER_TENANTS": "*",
            "COURIER_ALLOW_PRIVATE_DESTINATIONS": "true",
        }
        worker = procs.spawn("worker", procs.python_module("courier", "worker"), env, workdir)
        try:
            procs.wait_ready([worker], READY)
            assert redmine.proc is not None
            redmine_pids, worker_pids = [redmine.proc.pid], [worker.pid]
            cpu_before = (_cpu(redmine_pids), _cpu(worker_pids))
            wall = time.perf_counter()
            _wait(conn, start, tickets, worker)
            count, first, last = _delivered(conn, start)
            results["tickets_per_s"] = (count - 1) / (last - first).total_seconds()

            start = _now(conn)
            for n in range(notes):
                payload = {"incident_id": f"INC-{n % tickets}", "title": f"update {n}"}
                enqueue_event(conn, tenant, "incident.updated", payload)
            _wait(conn, start, notes, worker)
            count, first, last = _delivered(conn, start)
            results["notes_per_s"] = (count - 1) / (last - first).total_seconds()
            elapsed = time.perf_counter() - wall
            cpu_after = (_cpu(redmine_pids), _cpu(worker_pids))
            results["redmine_cpu"] = (cpu_after[0] - cpu_before[0]) / elapsed
            results["worker_cpu"] = (cpu_after[1] - cpu_before[1]) / elapsed

            start = _now(conn)
            for n in range(paced):
                payload = {"incident_id": f"PACED-{n}", "title": f"paced {n}"}
                enqueue_event(conn, tenant, "incident.opened", payload)
                time.sleep(1 / rate)
            _wait(conn, start, paced, worker)
            rows = conn.execute(
                "SELECT extract(epoch FROM delivered_at - created_at) FROM deliveries"
                " WHERE created_at >= %s",
                (start,),
            ).fetchall()
            latencies = sorted(float(r[0]) * 1000 for r in rows)
            results["p50_ms"] = statistics.median(latencies)
            results["p95_ms"] = latencies[int(0.95 * (len(latencies) - 1))]
            params = {"project_id": project, "status_id": "*", "limit": 1}
            answer = redmine.api("GET", "/issues.json", params=params).json()
            if answer["total_count"] != tickets + paced:  # one issue per key
                raise RuntimeError(f"{answer['total_count']} issues, {tickets + paced} keys")
        finally:
            procs.stop([worker])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=200)
    parser.add_argument("--notes", type=int, default=200)
    parser.add_argument("--paced", type=int, default=40)
    parser.add_argument("--rate", type=float, default=2.0, help="paced events per second")
    parser.add_argument(
        "--in-flight",
        type=int,
        default=2,
        help="the destination's max_in_flight (Redmine on SQLite refuses many writers)",
    )
    args = parser.parse_args()
    for name, bound in (("tickets", 10_000), ("notes", 10_000), ("paced", 1_000)):
        if not 2 <= getattr(args, name) <= bound:
            parser.error(f"--{name} must be between 2 and {bound}")
    if not 0.1 <= args.rate <= 50:
        parser.error("--rate must be between 0.1 and 50")
    if not 1 <= args.in_flight <= 64:
        parser.error("--in-flight must be between 1 and 64")
    found = run(args.tickets, args.notes, args.paced, args.rate, args.in_flight)
    print(f"Redmine alone (search+create/s): {found['redmine_alone_per_s']:.1f}")
    print(f"tickets/s (search + create):  {found['tickets_per_s']:.1f}")
    print(f"notes/s (add a note):         {found['notes_per_s']:.1f}")
    print(f"enqueue -> ticket p50:        {found['p50_ms']:.0f} ms")
    print(f"enqueue -> ticket p95:        {found['p95_ms']:.0f} ms")
    print(f"CPU, Redmine server:          {found['redmine_cpu']:.0%} of a core")
    print(f"CPU, courier worker:          {found['worker_cpu']:.0%} of a core")


if __name__ == "__main__":
    main()
