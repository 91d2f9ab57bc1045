#!/usr/bin/env bash
# SQLite's own limit on this disk, to set POST /tenants throughput beside:
# one transaction per row (each commit an fsync with synchronous=FULL in WAL
# mode) versus many rows per transaction, which is what group commit buys.
# Usage: bench/sqlite-limit.sh [rows, default 2000]
set -euo pipefail
ROWS=${1:-2000}
DB=$(mktemp -d /tmp/provisiond-sqlite.XXXXXX)/bench.sqlite3
trap 'rm -rf "$(dirname "$DB")"' EXIT
sqlite3 "$DB" "PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);" > /dev/null
run() {  # label, rows per transaction
    local per=$2 sql="PRAGMA synchronous=FULL;"
    for ((i = 0; i < ROWS; i += per)); do
        sql+="BEGIN;"
        for ((j = 0; j < per; j++)); do sql+="INSERT INTO t (v) VALUES ('tenant with three deliveries');"; done
        sql+="COMMIT;"
    done
    local start end
    start=$(date +%s.%N)
    sqlite3 "$DB" <<< "$sql" > /dev/null
    end=$(date +%s.%N)
    python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); print(f'sqlite: {sys.argv[3]} rows={sys.argv[4]} seconds={s:.2f} rows_per_second={int(sys.argv[4])/s:.0f}')" "$start" "$end" "$1" "$ROWS"
}
run "one row per commit" 1
run "100 rows per commit" 100
