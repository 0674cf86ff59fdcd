#!/usr/bin/env python3
"""A loopback webhook receiver for scripts/container_smoke.sh, on the standard library only.

    smoke_receiver.py serve PORT LOG       answer every POST 200, one JSON line per request
    smoke_receiver.py verify LOG SECRET ID exit 0 when LOG holds exactly one request for the
                                           webhook-id ID whose signature SECRET verifies

It runs with the host's python3 (no virtual environment): the container smoke test needs
nothing on the host but podman, PostgreSQL, curl and python3. `serve` stops by itself
after SERVE_LIMIT seconds, so a smoke run that dies never leaves it behind for long.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SERVE_LIMIT = 600.0  # seconds the receiver lives at most
MAX_BODY = 1024 * 1024  # bytes read from one request at most


def serve(port: int, log: Path) -> None:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the name http.server dispatches on
            length = min(int(self.headers.get("content-length", "0")), MAX_BODY)
            body = self.rfile.read(length)
            record = {
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", errors="replace"),
            }
            with lock, log.open("a", encoding="utf-8") as out:
                out.write(json.dumps(record) + "\n")
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass  # the JSON lines are the record

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Timer(SERVE_LIMIT, server.shutdown).start()
    print(f"receiver on http://127.0.0.1:{port}, logging to {log}", flush=True)
    server.serve_forever()


def signature_ok(secret: str, headers: dict[str, str], body: str) -> bool:
    """Standard Webhooks: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.{body}".encode()
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [s.partition(",")[2] for s in headers.get("webhook-signature", "").split()]
    return any(hmac.compare_digest(expected, o) for o in offered)


def verify(log: Path, secret: str, webhook_id: str) -> int:
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    records = [json.loads(line) for line in lines]
    mine = [r for r in records if r["headers"].get("webhook-id") == webhook_id]
    if len(mine) != 1:
        print(f"receiver: expected 1 request for {webhook_id}, saw {len(mine)}", file=sys.stderr)
        return 1
    record = mine[0]
    if not signature_ok(secret, record["headers"], record["body"]):
        print("receiver: the request's webhook-signature does not verify", file=sys.stderr)
        return 1
    print(
        f"receiver: 1 signed request for {webhook_id} on {record['path']} "
        f"(signature verified, body {record['body']})"
    )
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "serve":
        serve(int(argv[1]), Path(argv[2]))
        return 0
    if len(argv) == 4 and argv[0] == "verify":
        return verify(Path(argv[1]), argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
