#!/usr/bin/env bash
# Run a command with PgBouncer (transaction pooling) in front of PostgreSQL:
#
#   scripts/pgbouncer.sh make test-integration
#
# Starts the Debian package's `pgbouncer` on a free loopback port, pointing at the server
# of COURIER_DATABASE_DIRECT_URL (default postgresql://postgres@127.0.0.1:5432/postgres;
# every database name routes through, trust authentication), then runs the command with
# COURIER_DATABASE_URL at PgBouncer and COURIER_DATABASE_DIRECT_URL at PostgreSQL itself.
# PgBouncer stops when the command ends; the command's exit status is the script's.
# PgBouncer refuses to run as root: as root it runs as the `postgres` user.
set -euo pipefail

if [[ $# -eq 0 ]]; then
  echo "usage: $0 COMMAND [ARG...]" >&2
  exit 2
fi
command -v pgbouncer >/dev/null || {
  echo "pgbouncer: not installed (Debian: apt-get install -y pgbouncer)" >&2
  exit 2
}

DIRECT="${COURIER_DATABASE_DIRECT_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
# host, port, user and database of the direct URL; then a free loopback port for PgBouncer
read -r PG_HOST PG_PORT PG_USER PG_DB PORT < <(python3 - "$DIRECT" <<'EOF'
import socket, sys
from urllib.parse import urlsplit
u = urlsplit(sys.argv[1])
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
print(u.hostname or "127.0.0.1", u.port or 5432, u.username or "postgres",
      u.path.lstrip("/") or "postgres", port)
EOF
)

RUN_DIR="$(mktemp -d -t courier-pgbouncer-XXXXXX)"
chmod 755 "$RUN_DIR"
cat >"$RUN_DIR/pgbouncer.ini" <<EOF
[databases]
* = host=$PG_HOST port=$PG_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PORT
unix_socket_dir =
auth_type = trust
auth_file = $RUN_DIR/users.txt
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 20
logfile = $RUN_DIR/pgbouncer.log
pidfile = $RUN_DIR/pgbouncer.pid
EOF
echo "\"$PG_USER\" \"\"" >"$RUN_DIR/users.txt"
chmod 644 "$RUN_DIR/pgbouncer.ini" "$RUN_DIR/users.txt"

as_runner=()
if [[ "$(id -u)" == 0 ]]; then
  chown postgres "$RUN_DIR"
  as_runner=(runuser -u postgres --)
fi

stop() {
  if [[ -s "$RUN_DIR/pgbouncer.pid" ]]; then
    kill "$(cat "$RUN_DIR/pgbouncer.pid")" 2>/dev/null || true
    for _ in $(seq 1 50); do [[ -e "$RUN_DIR/pgbouncer.pid" ]] || break; sleep 0.1; done
  fi
  rm -rf "$RUN_DIR"
}
trap stop EXIT

"${as_runner[@]}" pgbouncer -d "$RUN_DIR/pgbouncer.ini"
for _ in $(seq 1 50); do
  pg_isready -q -h 127.0.0.1 -p "$PORT" && break
  sleep 0.1
done
pg_isready -q -h 127.0.0.1 -p "$PORT" || {
  echo "pgbouncer did not start; its log:" >&2
  cat "$RUN_DIR/pgbouncer.log" >&2
  exit 1
}
echo "pgbouncer $(pgbouncer --version | head -n1 | cut -d' ' -f2) (transaction pooling) on 127.0.0.1:$PORT -> $PG_HOST:$PG_PORT" >&2

export COURIER_DATABASE_DIRECT_URL="$DIRECT"
export COURIER_DATABASE_URL="postgresql://$PG_USER@127.0.0.1:$PORT/$PG_DB"
set +e
"$@"
status=$?
set -e
exit "$status"
