# Shared helpers for the benchmark and contract scripts: start the release binary on a
# free port with its own data dir, and stop it again.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${PROVISIOND_BIN:-$ROOT/.build/release/provisiond}
TOKEN=bench-token
WORK=$(mktemp -d /tmp/provisiond-bench.XXXXXX)
PIDS=()

# A script that starts more (a database server) defines bench_cleanup, run
# after its processes stopped.
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if declare -F bench_cleanup > /dev/null; then bench_cleanup || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
# A signal ends the script through its EXIT trap, so whatever it started stops too.
trap 'exit 130' INT
trap 'exit 143' TERM

# PROVISIOND_ARGS: extra flags for the store-bound measurements (publish,
# fan-out, latency), e.g. PROVISIOND_ARGS="--database postgres://..." to
# measure another store with the same scripts.
read -ra STORE_ARGS <<< "${PROVISIOND_ARGS:-}"

# free_port: a TCP port on 127.0.0.1 nobody listens on now.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_provisiond [extra flags...]: sets PORT, URL and PROVISIOND_PID. Its data
# dir is $DATA, its log $LOG: set them first to run another one (or one again).
DATA=$WORK/data
LOG=$WORK/provisiond.log
start_provisiond() {
    PORT=
    "$BIN" serve --port 0 --data-dir "$DATA" --api-token "$TOKEN" "$@" > "$LOG" 2>&1 &
    PROVISIOND_PID=$!
    PIDS+=($!)
    for _ in $(seq 1 200); do
        PORT=$(grep -o 'listening on http://[^ ]*' "$LOG" | sed 's/.*://' || true)
        [ -n "$PORT" ] && break
        sleep 0.05
    done
    [ -n "$PORT" ] || { cat "$LOG"; exit 1; }
    URL=http://127.0.0.1:$PORT
}

# stop_provisiond: SIGTERM, then up to 60 s for the clean stop, then SIGKILL.
stop_provisiond() {
    kill "$PROVISIOND_PID" 2>/dev/null || true
    for _ in $(seq 1 600); do kill -0 "$PROVISIOND_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$PROVISIOND_PID" 2>/dev/null || true
    wait "$PROVISIOND_PID" 2>/dev/null || true
}

api() { curl -sf -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }

# metric NAME [LABEL FILTER]: the sum of a /metrics series' values.
metric() { api "$URL/metrics" | awk -v name="^$1" -v filter="${2:-}" '$0 ~ name && (filter == "" || index($0, filter)) {s += $NF} END {print s + 0}'; }

# add_subscriptions URL...: one subscription per URL (named env0, env1, ...), ids in SUB_IDS.
add_subscriptions() {
    SUB_IDS=()
    local i=0 url
    for url in "$@"; do
        SUB_IDS+=($(api -X POST "$URL/subscriptions" -d "{\"name\":\"env$i\",\"url\":\"$url\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'))
        i=$((i + 1))
    done
}

# set_paused true|false: pauses or resumes every subscription in SUB_IDS.
set_paused() {
    local id
    for id in "${SUB_IDS[@]}"; do api -X PATCH "$URL/subscriptions/$id" -d "{\"paused\":$1}" > /dev/null; done
}

# wait_for_drain SECONDS: until the delivery backlog is empty; fails after SECONDS.
wait_for_drain() {
    local deadline=$(( $(date +%s) + $1 ))
    while [ "$(metric provisiond_delivery_backlog)" != 0 ]; do
        [ "$(date +%s)" -lt "$deadline" ] || { echo "backlog did not drain in $1 s" >&2; return 1; }
        sleep 0.1
    done
}

# start_nginx_receiver PORT [WORKERS=1] [STATUS=204]: nginx answering STATUS to
# every request, as a fast webhook receiver (or, with 200, as a reference server).
start_nginx_receiver() {
    local port=$1 workers=${2:-1} status=${3:-204} dir=$WORK/nginx-$1
    mkdir -p "$dir"
    cat > "$dir/nginx.conf" <<CONF
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$port;
        location / { return $status; }
    }
}
CONF
    nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'daemon off;' &
    PIDS+=($!)
    for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && return; sleep 0.05; done
    echo "nginx did not start on port $port: $(cat "$dir/error.log")" >&2
    return 1
}
