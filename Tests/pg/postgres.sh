#!/bin/sh
# A PostgreSQL server of its own for the tests: Tests/pg/postgres.sh start|stop|status
#
# Its data directory is under the build folder (PG_TEST_DIR, default
# <repo>/.build/pg-test), it listens on a free port on 127.0.0.1 only, its
# unix socket is inside the data directory, and local connections need no
# password. `start` prints the admin URL (postgres://postgres@127.0.0.1:PORT/postgres)
# and writes it to $PG_TEST_DIR/url; it only prints it when the server is
# already running. As root (CI), initdb and postgres refuse to run, so they run
# as the `postgres` system user, which then owns the data directory; when that
# user cannot reach the build folder, the data directory goes under /tmp.
#
# The server is fast rather than durable (fsync off), as tests want. With
# PG_TEST_DURABLE=1 it starts with fsync, synchronous_commit and
# full_page_writes on, as a production server runs, for figures that mean a
# commit is on disk (bench/table.sh); give it a PG_TEST_DIR of its own, since
# `start` hands back a server already running in that directory as it is.
set -eu

repo=$(cd "$(dirname "$0")/../.." && pwd)
dir=${PG_TEST_DIR:-$repo/.build/pg-test}
url_file=$dir/url
where_file=$dir/data-dir   # where the data directory is (the build folder or /tmp)

# The binaries: PG_BIN, else Debian's newest installed version (15 on bookworm).
if [ -z "${PG_BIN:-}" ]; then
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/pg_ctl" ]; then
    echo "postgres.sh: no PostgreSQL server binaries (install Debian's postgresql package, or set PG_BIN)" >&2
    exit 1
fi

# Runs a server command as the user that owns the data directory.
if [ "$(id -u)" = 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
        echo "postgres.sh: running as root needs the postgres system user (Debian's postgresql package creates it)" >&2
        exit 1
    fi
    as_server() { runuser -u postgres -- "$@"; }
else
    as_server() { "$@"; }
fi

data_dir() {
    if [ -f "$where_file" ]; then cat "$where_file"; else echo "$dir/data"; fi
}

is_running() {
    data=$(data_dir)
    [ -f "$data/PG_VERSION" ] && as_server "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1
}

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    else
        echo $((20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000))
    fi
}

# A data directory the server's user can write, initialized once and kept
# between runs (each test makes and drops its own database).
prepare() {
    mkdir -p "$dir"
    data=$dir/data
    if [ -f "$where_file" ] && [ -f "$(cat "$where_file")/PG_VERSION" ]; then
        data=$(cat "$where_file")
    fi
    mkdir -p "$data"
    if [ "$(id -u)" = 0 ]; then
        chown postgres:postgres "$data"
        if ! runuser -u postgres -- test -w "$data"; then
            # A parent directory the postgres user cannot traverse (a home directory).
            rmdir "$data" 2>/dev/null || true
            data=$(mktemp -d "${TMPDIR:-/tmp}/provisiond-pg-test.XXXXXX")
            chown postgres:postgres "$data"
        fi
    fi
    chmod 700 "$data"
    echo "$data" >"$where_file"
    version=$("$PG_BIN/pg_ctl" --version | awk '{print $3}' | cut -d. -f1)
    if [ -f "$data/PG_VERSION" ] && [ "$(cat "$data/PG_VERSION")" != "$version" ]; then
        echo "postgres.sh: $data is from PostgreSQL $(cat "$data/PG_VERSION"); making a new one for $version" >&2
        find "$data" -mindepth 1 -delete
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
        as_server "$PG_BIN/initdb" -D "$data" --username=postgres --auth=trust \
            --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1 || {
            cat "$dir/initdb.log" >&2
            exit 1
        }
        # A socket path longer than 107 bytes is refused: then TCP only.
        socket_dir=$data
        if [ ${#data} -gt 90 ]; then socket_dir=''; fi
        cat >>"$data/postgresql.conf" <<EOF

# Tests/pg/postgres.sh: reachable from this machine only; fast rather than durable.
listen_addresses = '127.0.0.1'
unix_socket_directories = '$socket_dir'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    fi
}

start() {
    if is_running && [ -f "$url_file" ]; then
        cat "$url_file"
        return
    fi
    prepare
    data=$(data_dir)
    options=
    if [ "${PG_TEST_DURABLE:-0}" = 1 ]; then
        options=" -c fsync=on -c synchronous_commit=on -c full_page_writes=on"
    fi
    # A port taken between choosing and binding it: try another.
    for try in 1 2 3 4 5; do
        port=$(free_port)
        if as_server "$PG_BIN/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 -o "-p $port$options" start >/dev/null 2>&1; then
            echo "postgres://postgres@127.0.0.1:$port/postgres" >"$url_file"
            cat "$url_file"
            return
        fi
    done
    echo "postgres.sh: the server did not start; its log:" >&2
    tail -n 20 "$data/server.log" >&2 || true
    exit 1
}

stop() {
    if is_running; then
        as_server "$PG_BIN/pg_ctl" -D "$(data_dir)" -m fast -w -t 60 stop >/dev/null
    fi
    rm -f "$url_file"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status)
    if is_running && [ -f "$url_file" ]; then
        echo "running: $(cat "$url_file")"
    else
        echo "stopped"
        exit 3
    fi
    ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
