# Shared helpers for the benchmark and contract scripts: start the release binary on a
# free port with its own data dir, and stop it again.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${PROVISIOND_BIN:-$ROOT/.build/release/provisiond}
TOKEN=bench-token
WORK=$(mktemp -d /tmp/provisiond-bench.XXXXXX)
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# start_provisiond [extra flags...]: sets PORT and URL.
start_provisiond() {
    "$BIN" serve --port 0 --data-dir "$WORK/data" --api-token "$TOKEN" "$@" > "$WORK/provisiond.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 200); do
        PORT=$(grep -o 'listening on http://[^ ]*' "$WORK/provisiond.log" | sed 's/.*://' || true)
        [ -n "$PORT" ] && break
        sleep 0.05
    done
    [ -n "$PORT" ] || { cat "$WORK/provisiond.log"; exit 1; }
    URL=http://127.0.0.1:$PORT
}

api() { curl -sf -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }

# start_nginx_receiver PORT: nginx answering 204 to every POST, as a fast webhook receiver.
start_nginx_receiver() {
    local port=$1 dir=$WORK/nginx-$1
    mkdir -p "$dir"
    cat > "$dir/nginx.conf" <<CONF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$port;
        location / { return 204; }
    }
}
CONF
    nginx -c "$dir/nginx.conf" -g 'daemon off;' &
    PIDS+=($!)
    sleep 0.3
}
