#!/usr/bin/env bash
# The container image, end to end (make test-container):
#
#   1. a Debian bookworm base image built locally with debootstrap from the host's apt
#      mirror (no container registry needed), kept between runs;
#   2. courier's image built from the Containerfile on that base;
#   3. against the host's PostgreSQL (a fresh database): `courier migrate`,
#      `courier tenants create`, then `courier serve` and `courier worker` containers;
#   4. a loopback receiver on the host, one destination, one event, and proof of ONE
#      delivery: the receiver saw one request whose signature verifies, the API says
#      `delivered`, and the image's HEALTHCHECK passes.
#
# Every step has a timeout; everything started is removed on the way out. Settings:
#   COURIER_PG_URL   server to create the test database on (postgresql://postgres@127.0.0.1:5432)
#   IMAGE            tag to build (localhost/courier:smoke)
#   BASE_IMAGE       base to build on (localhost/courier-base:bookworm; built when absent)
#   REBUILD_BASE=1   rebuild the base even when it exists
set -euo pipefail
cd "$(dirname "$0")/.."

PG_URL=${COURIER_PG_URL:-postgresql://postgres@127.0.0.1:5432}
IMAGE=${IMAGE:-localhost/courier:smoke}
BASE_IMAGE=${BASE_IMAGE:-localhost/courier-base:bookworm}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/scripts/containers.conf}

BASE_TIMEOUT=900     # seconds: debootstrap + import
BUILD_TIMEOUT=1200   # seconds: the image build (pip downloads every dependency)
CLI_TIMEOUT=120      # seconds: one `courier` command in a container
READY_TIMEOUT=60     # seconds: the API answers /readyz
DELIVERY_TIMEOUT=60  # seconds: the delivery reaches `delivered`
HTTP_TIMEOUT=10      # seconds: one API call

RUN_ID="courier_smoke_$$"
DB="${RUN_ID}"
DB_URL="${PG_URL}/${DB}"
WORK=$(mktemp -d)
CONTAINERS=()
RECEIVER_PID=""
STARTED=$SECONDS

say() { printf '== [%4ss] %s\n' "$((SECONDS - STARTED))" "$*"; }
fail() { printf 'container smoke: FAILED: %s\n' "$*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# json_get KEY... < JSON: the value at that path (list indexes as numbers)
json_get() {
  python3 -c 'import json, sys
d = json.load(sys.stdin)
for k in sys.argv[1:]:
    d = d[int(k)] if isinstance(d, list) else d[k]
print(d)' "$@"
}

cleanup() {
  local code=$?
  if ((code != 0)); then
    for name in "${CONTAINERS[@]}"; do
      echo "--- last lines of ${name} ---" >&2
      timeout 20 podman logs --tail 20 "$name" >&2 2>&1 || true
    done
  fi
  for name in "${CONTAINERS[@]}"; do timeout 30 podman rm -f -t 5 "$name" >/dev/null 2>&1 || true; done
  if [[ -n "$RECEIVER_PID" ]]; then kill "$RECEIVER_PID" 2>/dev/null || true; fi
  timeout 30 psql "${PG_URL}/postgres" -qc "DROP DATABASE IF EXISTS ${DB} WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
  exit "$code"
}
trap cleanup EXIT

command -v podman >/dev/null || fail "podman is not installed (apt-get install podman runc debootstrap)"

# -- 1. the base ---------------------------------------------------------------------------
apt_mirror() {
  # The first Debian mirror the host's apt uses (deb822 .sources or one-line .list files).
  local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list)
  local url
  url=$(cat "${files[@]}" 2>/dev/null \
    | grep -Eo '(URIs:[[:space:]]*|^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)[a-z]+://[^[:space:]]*/debian/?([[:space:]]|$)' \
    | grep -Eo '[a-z]+://[^[:space:]]+' | head -n1)
  echo "${url:-http://deb.debian.org/debian}"
}

# The recipe is stored as a label: a base made from another recipe is rebuilt.
BASE_PACKAGES=python3,python3-venv,python3-pip,ca-certificates
BASE_RECIPE="bookworm minbase ${BASE_PACKAGES}"
base_recipe() { podman image inspect --format '{{index .Labels "courier.base.recipe"}}' "$BASE_IMAGE" 2>/dev/null; }

if [[ "${REBUILD_BASE:-0}" != 1 ]] && [[ "$(base_recipe)" == "$BASE_RECIPE" ]]; then
  say "base: ${BASE_IMAGE} exists (REBUILD_BASE=1 rebuilds it)"
  BASE_SECONDS=0
else
  command -v debootstrap >/dev/null || fail "debootstrap is not installed"
  MIRROR=$(apt_mirror)
  say "base: debootstrap bookworm (minbase + python3, venv, pip) from ${MIRROR}"
  t0=$SECONDS
  timeout "$BASE_TIMEOUT" debootstrap --variant=minbase --include="$BASE_PACKAGES" \
    bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 20 "$WORK/debootstrap.log" >&2; fail "debootstrap"; }
  rm -rf "$WORK/rootfs/var/cache/apt/archives/"*.deb "$WORK/rootfs/var/lib/apt/lists/"*
  tar -C "$WORK/rootfs" -c . | timeout "$BASE_TIMEOUT" podman import \
    --change "LABEL courier.base.recipe=\"${BASE_RECIPE}\"" - "$BASE_IMAGE" >/dev/null
  rm -rf "$WORK/rootfs"
  BASE_SECONDS=$((SECONDS - t0))
  say "base: built in ${BASE_SECONDS}s"
fi

# -- 2. the image --------------------------------------------------------------------------
say "image: podman build ${IMAGE} on ${BASE_IMAGE}"
t0=$SECONDS
timeout "$BUILD_TIMEOUT" podman build --format docker --network host \
  --secret "id=ca,src=${CA_BUNDLE}" \
  --build-arg "BASE=${BASE_IMAGE}" \
  -t "$IMAGE" -f Containerfile . >"$WORK/build.log" 2>&1 \
  || { tail -n 30 "$WORK/build.log" >&2; fail "podman build"; }
BUILD_SECONDS=$((SECONDS - t0))
SIZE=$(podman image inspect --format '{{.Size}}' "$IMAGE")
# Untagged layers of earlier builds: kept a day as build cache, then dropped.
timeout 120 podman image prune -f --filter until=24h >/dev/null 2>&1 || true
say "image: built in ${BUILD_SECONDS}s, $((SIZE / 1000000)) MB"

# -- 3. the stack --------------------------------------------------------------------------
SMOKE_STARTED=$SECONDS
timeout 30 psql "${PG_URL}/postgres" -qc "CREATE DATABASE ${DB}" || fail "cannot create ${DB} on ${PG_URL}"
SECRET_KEY=$(timeout "$CLI_TIMEOUT" podman run --rm --no-healthcheck --network none "$IMAGE" \
  secrets generate-key)
API_PORT=$(free_port)
ENV_ARGS=(
  -e "COURIER_DATABASE_URL=${DB_URL}"
  -e "COURIER_SECRET_KEY=${SECRET_KEY}"
  -e "COURIER_ALLOW_PRIVATE_DESTINATIONS=true"  # the receiver is on loopback
  -e "COURIER_PORT=${API_PORT}"
)
cli() { timeout "$CLI_TIMEOUT" podman run --rm --no-healthcheck --network host "${ENV_ARGS[@]}" "$IMAGE" "$@"; }

say "courier migrate"
cli migrate
say "courier tenants create smoke"
API_KEY=$(cli tenants create smoke 2>/dev/null | awk '/^api_key:/ {print $2}')
[[ -n "$API_KEY" ]] || fail "tenants create printed no api_key"

say "courier serve on 127.0.0.1:${API_PORT}, courier worker"
CONTAINERS+=("${RUN_ID}_api")
# The HEALTHCHECK's schedule needs systemd, absent here; it is run by hand below.
# (podman still complains on stderr that it cannot schedule it: kept in a file.)
# Read-only root filesystems, as the Helm chart runs them (podman mounts a tmpfs on /tmp).
timeout 60 podman run -d --name "${RUN_ID}_api" --network host --read-only --health-interval disable \
  "${ENV_ARGS[@]}" "$IMAGE" serve --host 127.0.0.1 >/dev/null 2>"$WORK/api-run.err" \
  || { cat "$WORK/api-run.err" >&2; fail "podman run serve"; }
CONTAINERS+=("${RUN_ID}_worker")
timeout 60 podman run -d --name "${RUN_ID}_worker" --network host --read-only --no-healthcheck \
  "${ENV_ARGS[@]}" -e "COURIER_WORKER_TENANTS=*" "$IMAGE" worker >/dev/null

API="http://127.0.0.1:${API_PORT}"
api() {
  curl -sS --fail-with-body --max-time "$HTTP_TIMEOUT" -H "Authorization: Bearer ${API_KEY}" \
    -H 'content-type: application/json' "$@"
}
deadline=$((SECONDS + READY_TIMEOUT))
until curl -sf --max-time 2 "${API}/readyz" >/dev/null; do
  for name in "${CONTAINERS[@]}"; do
    [[ "$(podman inspect --format '{{.State.Running}}' "$name")" == true ]] || fail "${name} exited"
  done
  ((SECONDS < deadline)) || fail "the API was not ready after ${READY_TIMEOUT}s"
  sleep 0.5
done
HEALTH=$(timeout 30 podman healthcheck run "${RUN_ID}_api" 2>"$WORK/health.err") || fail "the image's HEALTHCHECK: ${HEALTH:-timed out}"
say "API ready; the image's HEALTHCHECK: ${HEALTH:-healthy}"

# -- 4. one delivery -----------------------------------------------------------------------
RECEIVER_PORT=$(free_port)
python3 scripts/smoke_receiver.py serve "$RECEIVER_PORT" "$WORK/received.jsonl" >"$WORK/receiver.log" 2>&1 &
RECEIVER_PID=$!
deadline=$((SECONDS + 10))
until curl -s --max-time 1 -o /dev/null -X POST "http://127.0.0.1:${RECEIVER_PORT}/ping"; do
  ((SECONDS < deadline)) || fail "the receiver did not start"
  sleep 0.2
done

DESTINATION=$(api -X POST "${API}/v1/destinations" -d "{
  \"name\": \"smoke\", \"url\": \"http://127.0.0.1:${RECEIVER_PORT}/hook\",
  \"event_types\": [\"smoke.ping\"], \"max_attempts\": 3,
  \"backoff_initial_ms\": 100, \"backoff_max_ms\": 500, \"timeout_ms\": 2000}")
SIGNING_SECRET=$(json_get signing_secret <<<"$DESTINATION")
EVENT=$(api -X POST "${API}/v1/events" \
  -d '{"type": "smoke.ping", "payload": {"hello": "container"}, "idempotency_key": "smoke-1"}')
EVENT_ID=$(json_get id <<<"$EVENT")
DELIVERY_ID=$(json_get deliveries 0 id <<<"$EVENT")
say "event ${EVENT_ID} accepted; delivery ${DELIVERY_ID}"

deadline=$((SECONDS + DELIVERY_TIMEOUT))
while :; do
  STATE=$(api "${API}/v1/deliveries/${DELIVERY_ID}" | json_get state)
  case "$STATE" in
    delivered) break ;;
    failed | dead_lettered) fail "delivery ${DELIVERY_ID} ended ${STATE}" ;;
  esac
  ((SECONDS < deadline)) || fail "delivery ${DELIVERY_ID} still ${STATE} after ${DELIVERY_TIMEOUT}s"
  sleep 0.5
done
ATTEMPTS=$(api "${API}/v1/deliveries/${DELIVERY_ID}" | json_get attempt_count)
[[ "$ATTEMPTS" == 1 ]] || fail "expected 1 attempt, the API counts ${ATTEMPTS}"
say "API: delivery ${DELIVERY_ID} delivered after ${ATTEMPTS} attempt"
python3 scripts/smoke_receiver.py verify "$WORK/received.jsonl" "$SIGNING_SECRET" "$EVENT_ID"

SMOKE_SECONDS=$((SECONDS - SMOKE_STARTED))
echo "container smoke: PASSED (base ${BASE_SECONDS}s, image build ${BUILD_SECONDS}s," \
  "image $((SIZE / 1000000)) MB, stack + delivery ${SMOKE_SECONDS}s, total $((SECONDS - STARTED))s)"
