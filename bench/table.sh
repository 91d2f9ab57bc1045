#!/usr/bin/env bash
# Issue 12's table (`make bench`): provisiond beside the limits of the parts it
# is built on, each limit measured in the same run as the figure it bounds, as
# ratios (on a shared machine seconds drift from run to run; a ratio measured
# side by side drifts much less), plus the three callgrind instruction counts.
# Prints a markdown table at the end and writes it to bench/last-run.md.
#
#   GET /healthz   provisiond and nginx (2 workers, `return 200`), wrk -t2 -c64,
#                  alternating, ROUNDS times each; medians, and the median of
#                  the rounds' ratios (each round's pair ran under the same load).
#   POST /tenants  3 paused subscriptions, wrk -t2 -c64 (publish.lua), ROUNDS
#                  times; CPU from /proc/PID/stat. Limit: the store's batched
#                  inserts on the same disk (SQLite: sqlite-ceiling.c;
#                  PostgreSQL: pg-ceiling.c on the same server), 64 x rows per
#                  tenant a commit, before and after each round ÷ the rows one
#                  publish writes (SQLite: counted by triggers in a data dir of
#                  their own; PostgreSQL: by pg_stat_user_tables in a database
#                  of its own); the median of the rounds' ratios.
#   fan-out        N tenants x 3 nginx receivers (204), --max-in-flight 32. Limit:
#                  one libcurl-multi thread (curl-ceiling.c) keeping 3 x 32
#                  POSTs of a webhook's size in flight to the same nginx, run
#                  before and after provisiond's drain; their mean.
#   latency        publish -> last of 3 acks at 100 tenants/s (latency.sh), default store.
#   instructions   instructions.sh (callgrind): per GET /healthz, POST /tenants, delivery.
#
# Stores (BENCH_STORES, default all three, comma-separated), a publish and a
# fan-out row each:
#   sqlite     the default store (or the one PROVISIOND_ARGS names)
#   postgres1  one provisiond on a fresh PostgreSQL database
#   postgres2  two provisiond on one fresh database, both publishing (wrk -t1
#              -c32 at each, tenants/s summed) and both dispatching
# PostgreSQL: the server PROVISIOND_TEST_POSTGRES names (its admin URL), else
# one started here with Tests/pg/postgres.sh (fsync and synchronous_commit
# on, its data in .build/pg-bench, 127.0.0.1, a free port) and stopped at the
# end. Every measurement gets a database of its own, dropped after it.
#
# Usage: bench/table.sh                       after swift build -c release (make bench does both)
#        BENCH_QUICK=1 bench/table.sh         smaller N, shorter runs: a quick check of the script
#        BENCH_STORES=sqlite,postgres2        which stores (sqlite, postgres1, postgres2)
#        BENCH_FANOUT_N=50000 bench/table.sh  fan-out tenants (default 20000; 100..200000)
#        BENCH_SKIP=instructions,latency      parts left out (healthz,publish,fanout,latency,instructions)
#        BENCH_OUT=file.md                    where the table goes besides stdout (default bench/last-run.md)
#        PROVISIOND_ARGS="--database ..."     extra flags for every store-bound provisiond. With a
#                  --database in it, give BENCH_STORES=sqlite: that row is then labelled with the
#                  store provisiond logs at start (or BENCH_LABEL), and takes its limit from
#                  BENCH_STORE_CEILING (rows/s, batched) and BENCH_ROWS_PER_TENANT.
source "$(dirname "$0")/lib.sh"
HERE=$ROOT/bench
OUT=${BENCH_OUT:-$HERE/last-run.md}
RESULTS=$WORK/results          # section|key|value lines, rendered by table.py
SKIP=",${BENCH_SKIP:-},"
MAX_IN_FLIGHT=32               # provisiond's default, per subscription

if [ "${BENCH_QUICK:-0}" = 1 ]; then
    ROUNDS=1 HEALTHZ_SECONDS=3 PUBLISH_SECONDS=3 ROW_COUNT_TENANTS=100 CEILING_SECONDS=1
    FANOUT_N=${BENCH_FANOUT_N:-2000} LATENCY_N=300 INSTRUCTIONS=(2000 100 50)
else
    ROUNDS=3 HEALTHZ_SECONDS=8 PUBLISH_SECONDS=6 ROW_COUNT_TENANTS=500 CEILING_SECONDS=2
    FANOUT_N=${BENCH_FANOUT_N:-20000} LATENCY_N=2000 INSTRUCTIONS=(20000 1000 500)
fi
[[ "$FANOUT_N" =~ ^[0-9]+$ ]] && [ "$FANOUT_N" -ge 100 ] && [ "$FANOUT_N" -le 200000 ] ||
    { echo "BENCH_FANOUT_N must be a number from 100 to 200000" >&2; exit 2; }
[ -x "$BIN" ] || { echo "no binary at $BIN: swift build -c release" >&2; exit 1; }
IFS=, read -ra STORES <<< "${BENCH_STORES:-sqlite,postgres1,postgres2}"
for store in "${STORES[@]}"; do
    case $store in sqlite | postgres1 | postgres2) ;;
    *) echo "BENCH_STORES: unknown store '$store' (sqlite, postgres1, postgres2)" >&2; exit 2 ;;
    esac
done

result() { echo "$1|$2|$3" >> "$RESULTS"; }
log() { echo "[$(date +%T)] $*" >&2; }
mean() { awk '{s += $1} END {print NR ? s / NR : ""}'; }
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }   # utime + stime
wrk_rps() { awk '/^Requests\/sec:/ {print $2}' "$1"; }
wrk_p99_ms() {   # wrk --latency prints 99% as 812.00us, 1.20ms or 1.02s
    awk '$1 == "99%" {v = $2; if (v ~ /us$/) print v / 1000; else if (v ~ /ms$/) print v + 0; else print v * 1000}' "$1"
}
# store_of LOG: the store provisiond says it opened ("sqlite", ...).
store_of() { grep -o 'store="[A-Za-z]*' "$1" | head -1 | cut -d'"' -f2; }
skipped() { [[ "$SKIP" == *",$1,"* ]]; }

build_tools() {
    gcc -O2 -o "$WORK/curl-ceiling" "$HERE/curl-ceiling.c" -lcurl
    gcc -O2 -o "$WORK/sqlite-ceiling" "$HERE/sqlite-ceiling.c" -lsqlite3
    if [ -n "$PG_ADMIN" ]; then
        # shellcheck disable=SC2046
        gcc -O2 -o "$WORK/pg-ceiling" "$HERE/pg-ceiling.c" $(pkg-config --cflags --libs libpq) -lpthread
    fi
}

# PostgreSQL: the server (its admin URL in PG_ADMIN), a fresh database per
# measurement (DB, its URL DB_URL), dropped after it and by the EXIT trap.
PG_ADMIN= PG_STARTED= PG_DBS=() DB= DB_URL=
PG_DIR=$ROOT/.build/pg-bench
psql_on() { psql -X -q -v ON_ERROR_STOP=1 -At -d "$1" -c "$2"; }
psql_admin() { psql_on "$PG_ADMIN" "$1"; }
db_url() {   # db_url NAME: the URL of database NAME on PG_ADMIN's server
    python3 -c 'import sys, urllib.parse as u; print(u.urlunsplit(u.urlsplit(sys.argv[1])._replace(path="/" + sys.argv[2])))' "$PG_ADMIN" "$1"
}
start_postgres() {
    if [ -n "${PROVISIOND_TEST_POSTGRES:-}" ]; then
        PG_ADMIN=$PROVISIOND_TEST_POSTGRES
    else
        log "PostgreSQL: starting a server of the bench's own, fsync and synchronous_commit on ($PG_DIR)"
        PG_ADMIN=$(PG_TEST_DIR=$PG_DIR PG_TEST_DURABLE=1 "$ROOT/Tests/pg/postgres.sh" start)
        PG_STARTED=1
        # What an interrupted run of ours left on our own server.
        local db
        for db in $(psql_admin "SELECT datname FROM pg_database WHERE datname LIKE 'provisiond\_bench\_%'"); do
            psql_admin "DROP DATABASE IF EXISTS $db WITH (FORCE)"
        done
    fi
    result run pg_server "$(psql_admin "SELECT 'PostgreSQL ' || current_setting('server_version') || ': fsync ' || current_setting('fsync')
        || ', synchronous_commit ' || current_setting('synchronous_commit') || ', full_page_writes ' || current_setting('full_page_writes')
        || ', wal_sync_method ' || current_setting('wal_sync_method') || ', shared_buffers ' || current_setting('shared_buffers')")"
}
new_database() {   # new_database WHAT: sets DB and DB_URL
    DB=provisiond_bench_$$_${MEASURE}_$1
    psql_admin "CREATE DATABASE $DB"
    PG_DBS+=("$DB")
    DB_URL=$(db_url "$DB")
}
drop_database() { psql_admin "DROP DATABASE IF EXISTS $1 WITH (FORCE)"; }
bench_cleanup() {   # lib.sh's EXIT trap, after every provisiond stopped
    local db
    for db in "${PG_DBS[@]}"; do drop_database "$db" 2> /dev/null || true; done
    if [ -n "$PG_STARTED" ]; then PG_TEST_DIR=$PG_DIR "$ROOT/Tests/pg/postgres.sh" stop || true; fi
}
# pg_settle DB: until no connection to DB is left, so that the statistics of
# the sessions that ended are in pg_stat_* (a backend writes them as it exits).
pg_settle() {
    local _
    for _ in $(seq 1 100); do
        [ "$(psql_admin "SELECT count(*) FROM pg_stat_activity WHERE datname = '$1'")" = 0 ] && break
        sleep 0.1
    done
    sleep 0.2
}
# pg_pids DB: the server processes working for DB (its backends) and for every
# database (WAL writer, checkpointer, background writer).
pg_pids() {
    psql_admin "SELECT pid FROM pg_stat_activity WHERE datname = '$1' OR backend_type IN ('walwriter', 'checkpointer', 'background writer')"
}
# sum_ticks PID...: CPU ticks of those that still run (utime + stime).
sum_ticks() {
    local pid total=0
    for pid in "$@"; do
        [ -r "/proc/$pid/stat" ] && total=$((total + $(cpu_ticks "$pid" 2> /dev/null || echo 0)))
    done
    echo "$total"
}

# start_instances COUNT [flags...]: COUNT provisiond with the same flags, data
# dir $RUN_BASE-K and log $RUN_BASE-K.log each; pids in INST_PIDS, URLs in
# INST_URLS; PROVISIOND_PID, URL, DATA and LOG are the first's.
start_instances() {
    local count=$1 k
    shift
    INST_PIDS=() INST_URLS=()
    for k in $(seq 1 "$count"); do
        DATA=$RUN_BASE-$k LOG=$RUN_BASE-$k.log
        start_provisiond "$@"
        INST_PIDS+=("$PROVISIOND_PID")
        INST_URLS+=("$URL")
    done
    PROVISIOND_PID=${INST_PIDS[0]} URL=${INST_URLS[0]} DATA=$RUN_BASE-1 LOG=$RUN_BASE-1.log
}
stop_instances() {
    local pid
    for pid in "${INST_PIDS[@]}"; do kill "$pid" 2> /dev/null || true; done
    for pid in "${INST_PIDS[@]}"; do PROVISIOND_PID=$pid stop_provisiond; done
    PROVISIOND_PID=${INST_PIDS[0]}
}

# store_config KIND [WHAT]: for sqlite, postgres1 or postgres2, sets INSTANCES,
# KIND_LABEL (empty: the store provisiond logs) and KIND_ARGS; on PostgreSQL
# it makes a fresh database (named after WHAT).
store_config() {
    KIND_ARGS=()
    case $1 in
    sqlite) INSTANCES=1 KIND_LABEL=${BENCH_LABEL:-} ;;
    postgres*)
        INSTANCES=${1#postgres}
        KIND_LABEL="postgres, $INSTANCES instance$([ "$INSTANCES" = 1 ] || echo s)"
        new_database "${2:-x}"
        KIND_ARGS=(--database "$DB_URL")
        ;;
    esac
}

# GET /healthz: provisiond and nginx alternately, ROUNDS times.
measure_healthz() {
    log "healthz: $ROUNDS x ${HEALTHZ_SECONDS}s each, provisiond and nginx alternating"
    DATA=$WORK/healthz LOG=$WORK/healthz.log
    start_provisiond
    local nginx_port i
    nginx_port=$(free_port)
    start_nginx_receiver "$nginx_port" 2 200
    for i in $(seq 1 "$ROUNDS"); do
        wrk -t2 -c64 -d"${HEALTHZ_SECONDS}s" --latency "$URL/healthz" > "$WORK/healthz-p$i.wrk"
        wrk -t2 -c64 -d"${HEALTHZ_SECONDS}s" --latency "http://127.0.0.1:$nginx_port/healthz" > "$WORK/healthz-n$i.wrk"
        log "  round $i: provisiond $(wrk_rps "$WORK/healthz-p$i.wrk") req/s, nginx $(wrk_rps "$WORK/healthz-n$i.wrk") req/s"
        result healthz ratio "$(awk -v p="$(wrk_rps "$WORK/healthz-p$i.wrk")" -v n="$(wrk_rps "$WORK/healthz-n$i.wrk")" 'BEGIN {print p / n}')"
    done
    stop_provisiond
    local who
    for who in p n; do
        result healthz "${who}_rps" "$(for f in "$WORK"/healthz-$who*.wrk; do wrk_rps "$f"; done | median)"
        result healthz "${who}_p99_ms" "$(for f in "$WORK"/healthz-$who*.wrk; do wrk_p99_ms "$f"; done | median)"
    done
    result healthz rounds "$ROUNDS"
    result healthz seconds "$HEALTHZ_SECONDS"
}

# count_rows_per_tenant RUN [provisiond flags...]: the rows one publish writes
# (inserted, updated, deleted; every table but SQLite's own), counted by
# triggers added to a data dir of its own (RUN-rows) with 3 paused
# subscriptions, over ROW_COUNT_TENANTS tenants. Writes rows per tenant, then
# which, to RUN.rows. Starts and stops its own provisiond.
count_rows_per_tenant() {
    local run=$1 db=$1-rows/provisiond.sqlite3 sql="CREATE TABLE bench_writes (tbl TEXT, op TEXT, n INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (tbl, op)) WITHOUT ROWID;"
    local t op
    shift
    DATA=$run-rows LOG=$run-rows.log
    start_provisiond "$@"
    add_subscriptions http://127.0.0.1:9/dev http://127.0.0.1:9/test http://127.0.0.1:9/prod
    set_paused true
    stop_provisiond
    for t in $(sqlite3 "$db" "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"); do
        for op in INSERT UPDATE DELETE; do
            sql+="INSERT INTO bench_writes (tbl, op) VALUES ('$t', '$op');"
            sql+="CREATE TRIGGER bench_${t}_$op AFTER $op ON $t BEGIN UPDATE bench_writes SET n = n + 1 WHERE tbl = '$t' AND op = '$op'; END;"
        done
    done
    sqlite3 "$db" "$sql"
    start_provisiond "$@"
    sqlite3 "$db" "SELECT tbl, op, n FROM bench_writes" > "$run.writes-before"
    python3 "$HERE/publish_many.py" "$URL" "$TOKEN" "$ROW_COUNT_TENANTS" 8 rows
    sqlite3 "$db" "SELECT tbl, op, n FROM bench_writes" > "$run.writes-after"
    stop_provisiond
    rows_summary "$run.writes-before" "$run.writes-after" > "$run.rows"
}

# pg_count_rows_per_tenant RUN [provisiond flags...]: the same on PostgreSQL,
# in a database of its own, from pg_stat_user_tables (rows inserted, updated,
# deleted per table, every table but schema_migrations), read with no session
# open so that every write is counted. One client at a time: a transaction
# run again after a serialization failure would count its rows twice.
pg_count_rows_per_tenant() {
    local run=$1 writes="SELECT relname, w.op, w.n FROM pg_stat_user_tables,
        LATERAL (VALUES ('INSERT', n_tup_ins), ('UPDATE', n_tup_upd), ('DELETE', n_tup_del)) AS w (op, n)
        WHERE relname <> 'schema_migrations' ORDER BY 1, 2"
    shift
    new_database rows
    DATA=$run-rows LOG=$run-rows.log
    start_provisiond --database "$DB_URL" "$@"
    add_subscriptions http://127.0.0.1:9/dev http://127.0.0.1:9/test http://127.0.0.1:9/prod
    set_paused true
    stop_provisiond
    pg_settle "$DB"
    psql_on "$DB_URL" "$writes" > "$run.writes-before"
    start_provisiond --database "$DB_URL" "$@"
    python3 "$HERE/publish_many.py" "$URL" "$TOKEN" "$ROW_COUNT_TENANTS" 1 rows
    stop_provisiond
    pg_settle "$DB"
    psql_on "$DB_URL" "$writes" > "$run.writes-after"
    drop_database "$DB"
    rows_summary "$run.writes-before" "$run.writes-after" > "$run.rows"
}

# rows_summary BEFORE AFTER: from two "table|op|n" lists, over
# ROW_COUNT_TENANTS tenants: rows per tenant, then e.g. "tenants +1 ~1,
# events +1, deliveries +3, subscriptions ~3, tenant_stats ~1".
rows_summary() {
    python3 - "$1" "$2" "$ROW_COUNT_TENANTS" <<'PY'
import sys
def load(path):
    return {(t, op): int(n) for t, op, n in (line.strip().split("|") for line in open(path) if line.strip())}
before, after, n = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3])
sign = {"INSERT": "+", "UPDATE": "~", "DELETE": "-"}
per, parts = 0.0, {}
for (t, op), v in sorted(after.items()):
    d = (v - before.get((t, op), 0)) / n
    if d:
        per += d
        parts.setdefault(t, []).append(f"{sign[op]}{d:g}")
print(f"{per:g}")
print(", ".join(f"{t} {' '.join(p)}" for t, p in parts.items()))
PY
}

# sqlite_ceiling OUT PER: SQLite's batched inserts for CEILING_SECONDS in
# $WORK, the disk of the data dirs, PER rows a commit; the figure appended to OUT.
sqlite_ceiling() {
    "$WORK/sqlite-ceiling" "$WORK/ceiling.sqlite3" "$CEILING_SECONDS" "$2" | tee -a "$1" >&2
    rm -f "$WORK/ceiling.sqlite3"*
}

# postgres_ceiling OUT PER: PostgreSQL's batched inserts for CEILING_SECONDS into
# the measurement's database (a table of its own, dropped after), PER rows a
# commit, as many connections as cores; the figure appended to OUT.
postgres_ceiling() {
    "$WORK/pg-ceiling" "$DB_URL" "$CEILING_SECONDS" "$2" "$(nproc)" | tee -a "$1" >&2
}

# publish_round OUT: wrk with publish.lua for PUBLISH_SECONDS, 64 connections
# in all, split over the instances (one wrk each, at the same time); one
# "publish:" line to OUT: requests, non2xx and rps summed, p50 and p99 the
# highest of the instances'.
publish_round() {
    local out=$1 k pids=() n=${#INST_URLS[@]}
    for k in $(seq 0 $((n - 1))); do
        TOKEN=$TOKEN RUN="r${ROUND}i${k}x$RANDOM" wrk -t$((n > 1 ? 1 : 2)) -c$((64 / n)) -d"${PUBLISH_SECONDS}s" \
            -s "$HERE/publish.lua" "${INST_URLS[$k]}" > "$out.$k" &
        pids+=($!)
    done
    wait "${pids[@]}"
    python3 - "$out".* > "$out" <<'PY'
import re, sys
lines = [l for path in sys.argv[1:] for l in open(path) if l.startswith("publish:")]
f = [{k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", l)} for l in lines]
total = {k: sum(x[k] for x in f) for k in ("requests", "non2xx", "rps")}
line = (f"publish: requests={total['requests']:.0f} non2xx={total['non2xx']:.0f} rps={total['rps']:.0f} "
        f"p50={max(x['p50'] for x in f):.2f}ms p99={max(x['p99'] for x in f):.2f}ms")
if len(f) > 1:
    line += f" instances={len(f)} rps_each=" + "/".join(f"{x['rps']:.0f}" for x in f)
print(line)
PY
}

# measure_publish KIND: POST /tenants for ROUNDS x PUBLISH_SECONDS, its
# store's limit just before each round and after the last, and the rows per
# tenant. The ceiling commits as many rows at once as the most one group
# commit can hold under this load (64 clients x the rows of one publish):
# with fewer, a slow fsync would make the "ceiling" lower than what
# provisiond reaches.
measure_publish() {
    local kind=$1
    MEASURE=$((MEASURE + 1))   # each call its own files: one run measures several stores
    local run=$WORK/publish-$MEASURE
    store_config "$kind" publish
    RUN_BASE=$run
    start_instances "$INSTANCES" "${KIND_ARGS[@]}" "${STORE_ARGS[@]}"
    local store section tenants hz engine= per_commit= db=${DB:-}
    store=$(store_of "$LOG")
    STORE_NAME=${KIND_LABEL:-${store:-?}}
    section="publish:$STORE_NAME"
    if [ "$store" = sqlite ]; then engine=sqlite; elif [ "$kind" != sqlite ]; then engine=postgres; fi
    add_subscriptions http://127.0.0.1:9/dev http://127.0.0.1:9/test http://127.0.0.1:9/prod
    set_paused true
    result "$section" store "$STORE_NAME"
    result "$section" instances "$INSTANCES"
    if [ -n "$engine" ]; then
        log "publish ($STORE_NAME): rows written per tenant ($ROW_COUNT_TENANTS tenants)"
        local pid=$PROVISIOND_PID url=$URL
        if [ "$engine" = sqlite ]; then
            count_rows_per_tenant "$run" "${STORE_ARGS[@]}"
            result "$section" rows_how "counted by triggers"
        else
            pg_count_rows_per_tenant "$run" "${STORE_ARGS[@]}"
            result "$section" rows_how "counted by pg_stat_user_tables in a database of their own, one client"
            DB=$db DB_URL=$(db_url "$db")   # back to the measurement's database
        fi
        PROVISIOND_PID=$pid URL=$url
        result "$section" rows_per_tenant "$(sed -n 1p "$run.rows")"
        result "$section" rows_detail "$(sed -n 2p "$run.rows")"
        per_commit=$(awk -v r="$(sed -n 1p "$run.rows")" 'BEGIN {printf "%d", 64 * r + 0.5}')
        if [ "$engine" = sqlite ]; then
            result "$section" ceiling_label "SQLite batched inserts, $per_commit rows a commit (64 clients × rows per tenant)"
        else
            result "$section" ceiling_label "PostgreSQL batched inserts, same server, $(nproc) connections, $per_commit rows a commit (64 clients × rows per tenant), pipelined"
        fi
    else
        result "$section" rows_per_tenant "${BENCH_ROWS_PER_TENANT:-}"
        result "$section" ceiling_label "${BENCH_STORE_CEILING_LABEL:-$store batched rows (BENCH_STORE_CEILING)}"
        result "$section" ceiling "${BENCH_STORE_CEILING:-}"
    fi
    # ROUNDS rounds of wrk, each between two runs of the ceiling (a commit's
    # fsync on this shared disk takes 0.1 to 4 ms from one minute to the next).
    local i ticks=0 pg_ticks=0 before pg_before pg_procs=()
    for i in $(seq 1 "$ROUNDS"); do
        if [ -n "$engine" ]; then
            log "publish ($STORE_NAME): round $i, $engine's batched inserts ${CEILING_SECONDS}s, $per_commit rows a commit"
            "${engine}_ceiling" "$run.ceiling" "$per_commit"
        fi
        log "publish ($STORE_NAME): round $i, wrk ${PUBLISH_SECONDS}s, 64 connections over $INSTANCES instance(s), 3 paused subscriptions"
        if [ "$engine" = postgres ]; then
            mapfile -t pg_procs < <(pg_pids "$db")
            pg_before=$(sum_ticks "${pg_procs[@]}")
        fi
        before=$(sum_ticks "${INST_PIDS[@]}")
        ROUND=$i publish_round "$run-$i.wrk"
        ticks=$((ticks + $(sum_ticks "${INST_PIDS[@]}") - before))
        if [ "$engine" = postgres ]; then pg_ticks=$((pg_ticks + $(sum_ticks "${pg_procs[@]}") - pg_before)); fi
        cat "$run-$i.wrk" >&2
        result "$section" line "$(cat "$run-$i.wrk")"
    done
    if [ -n "$engine" ]; then
        log "publish ($STORE_NAME): $engine's batched inserts once more, after the last round"
        "${engine}_ceiling" "$run.ceiling" "$per_commit"
    fi
    if [ "$engine" = postgres ]; then
        tenants=$(psql_on "$DB_URL" "SELECT count(*) FROM tenants")
    else
        tenants=$(metric provisiond_tenants_total)
    fi
    stop_instances
    hz=$(getconf CLK_TCK)
    result "$section" tenants "$tenants"
    result "$section" seconds "$ROUNDS x $PUBLISH_SECONDS"
    result "$section" cpu_us "$(( ticks * 1000000 / hz / (tenants > 0 ? tenants : 1) ))"
    if [ "$engine" = postgres ]; then
        pg_settle "$db"
        result "$section" pg_cpu_us "$(( pg_ticks * 1000000 / hz / (tenants > 0 ? tenants : 1) ))"
        # Transactions rolled back: each a write run again after a serialization failure or deadlock (or a failed request).
        result "$section" rollbacks "$(psql_admin "SELECT xact_rollback FROM pg_stat_database WHERE datname = '$db'")"
        drop_database "$db"
    fi
    if [ -n "$engine" ]; then
        for i in $(grep -o 'rows_per_second=[0-9]*' "$run.ceiling" | cut -d= -f2); do result "$section" ceiling "$i"; done
    fi
}

# curl_ceiling OUT COUNT PAYLOAD URL...: one libcurl-multi thread, 3 x
# MAX_IN_FLIGHT POSTs in flight; the figure appended to OUT.
curl_ceiling() {
    local out=$1 count=$2 payload=$3
    shift 3
    "$WORK/curl-ceiling" "$count" $((3 * MAX_IN_FLIGHT)) "$payload" "$@" | tee -a "$out" >&2
}

# measure_fanout KIND: FANOUT_N tenants to 3 nginx receivers, then its limit.
# Several instances: the tenants published through each in equal parts, all
# dispatching; the clock stops when the store holds no pending delivery.
measure_fanout() {
    local kind=$1
    MEASURE=$((MEASURE + 1))
    local run=$WORK/fanout-$MEASURE
    store_config "$kind" fanout
    log "fan-out ($kind): $FANOUT_N tenants x 3 nginx receivers, --max-in-flight $MAX_IN_FLIGHT, $INSTANCES instance(s)"
    local urls=() port
    for _ in 0 1 2; do
        port=$(free_port)
        start_nginx_receiver "$port"
        urls+=("http://127.0.0.1:$port/hook")
    done
    RUN_BASE=$run
    start_instances "$INSTANCES" --max-in-flight "$MAX_IN_FLIGHT" "${KIND_ARGS[@]}" "${STORE_ARGS[@]}"
    local store section payload=${BENCH_PAYLOAD_BYTES:-} start end delivered k pids=() share each=()
    store=$(store_of "$LOG")
    STORE_NAME=${KIND_LABEL:-${store:-?}}
    section="fanout:$STORE_NAME"
    add_subscriptions "${urls[@]}"
    set_paused true
    # A 5xx is sent again (up to 50 times), as a publisher would: the fan-out
    # needs all FANOUT_N tenants; how many were sent again goes in the notes.
    for k in $(seq 0 $((INSTANCES - 1))); do
        share=$((FANOUT_N / INSTANCES + (k < FANOUT_N % INSTANCES ? 1 : 0)))
        PUBLISH_RETRY=50 python3 "$HERE/publish_many.py" "${INST_URLS[$k]}" "$TOKEN" "$share" $((32 / INSTANCES)) "fanout$k" \
            2> "$run.publish-$k" &
        pids+=($!)
    done
    for k in "${!pids[@]}"; do
        wait "${pids[$k]}" || { cat "$run.publish-$k" >&2; exit 1; }
    done
    result "$section" publish_retried "$(cat "$run".publish-* | grep -o 'retried=[0-9]*' | cut -d= -f2 | awk '{s += $1} END {print s + 0}')"
    # The ceiling POSTs bodies of the webhooks' mean size: once before provisiond drains, once after.
    if [ -z "$payload" ] && [ "$store" = sqlite ]; then
        payload=$(sqlite3 "$DATA/provisiond.sqlite3" "SELECT CAST(round(avg(length(payload))) AS INTEGER) FROM events")
    elif [ -z "$payload" ] && [ "$kind" != sqlite ]; then
        payload=$(psql_on "$DB_URL" "SELECT round(avg(length(payload)))::int FROM events")
    fi
    payload=${payload:-300}
    log "fan-out ($STORE_NAME): libcurl ceiling before, $((3 * FANOUT_N)) POSTs of $payload bytes"
    curl_ceiling "$run.ceiling" $((3 * FANOUT_N)) "$payload" "${urls[@]}"
    log "fan-out ($STORE_NAME): provisiond drains $((3 * FANOUT_N)) deliveries"
    start=$(date +%s.%N)
    set_paused false
    # The backlog gauge is read from the store (on PostgreSQL, every instance's).
    # A bound, not a target: 300 deliveries/s on SQLite, 50 on PostgreSQL.
    local slowest=300
    if [ "$kind" != sqlite ]; then slowest=50; fi
    wait_for_drain $((60 + 3 * FANOUT_N / slowest))
    end=$(date +%s.%N)
    for k in $(seq 0 $((INSTANCES - 1))); do
        each+=("$(URL=${INST_URLS[$k]} metric provisiond_deliveries_total 'outcome="delivered"')")
    done
    if [ "$kind" != sqlite ]; then
        delivered=$(psql_on "$DB_URL" "SELECT count(*) FROM deliveries WHERE state = 1")
    else
        delivered=${each[0]}
    fi
    stop_instances
    if [ "$kind" != sqlite ]; then drop_database "$DB"; fi
    log "fan-out ($STORE_NAME): libcurl ceiling after"
    curl_ceiling "$run.ceiling" $((3 * FANOUT_N)) "$payload" "${urls[@]}"
    result "$section" store "$STORE_NAME"
    result "$section" instances "$INSTANCES"
    result "$section" tenants "$FANOUT_N"
    result "$section" delivered "$delivered"
    result "$section" delivered_each "$(IFS=/; echo "${each[*]}")"
    result "$section" seconds "$(python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$start" "$end")"
    result "$section" payload_bytes "$payload"
    result "$section" in_flight $((3 * MAX_IN_FLIGHT))
    result "$section" curl_posts_per_s "$(grep -o 'posts_per_second=[0-9]*' "$run.ceiling" | cut -d= -f2 | mean)"
}

# measure_latency LABEL: latency.sh, with PROVISIOND_ARGS as publish and fan-out had them.
measure_latency() {
    log "latency: $LATENCY_N tenants at 100/s, 3 receivers"
    local line
    line=$("$HERE/latency.sh" "$LATENCY_N" 100 | tail -1)
    echo "$line" >&2
    result "latency:$1" line "$line"
}

measure_instructions() {
    log "instructions: callgrind, ${INSTRUCTIONS[*]} (a few minutes)"
    if ! command -v valgrind > /dev/null; then
        result instructions missing "valgrind is not installed (apt-get install valgrind)"
        return
    fi
    PROVISIOND_BIN=$BIN "$HERE/instructions.sh" "${INSTRUCTIONS[@]}" > "$WORK/instructions.txt" 2> "$WORK/instructions.log" ||
        { cat "$WORK/instructions.log" >&2; result instructions missing "instructions.sh failed"; return; }
    cat "$WORK/instructions.txt" >&2
    while IFS= read -r line; do result instructions line "$line"; done < "$WORK/instructions.txt"
}

: > "$RESULTS"
result run date "$(date -u +%Y-%m-%dT%H:%MZ)"
result run commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- Sources Package.swift 2>/dev/null || echo '+changes')"
result run quick "${BENCH_QUICK:-0}"
result run cores "$(nproc)"
result run load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
for store in "${STORES[@]}"; do
    if [[ "$store" == postgres* ]] && ! { skipped publish && skipped fanout; }; then start_postgres; break; fi
done
build_tools
# (if, not ||: set -e does not apply inside a function called left of ||)
STORE_NAME= MEASURE=0 LATENCY_LABEL=${BENCH_LABEL:-}
if ! skipped healthz; then measure_healthz; fi
for store in "${STORES[@]}"; do
    if ! skipped publish; then measure_publish "$store"; fi
    if ! skipped fanout; then measure_fanout "$store"; fi
    if [ "$store" = sqlite ] && [ -n "$STORE_NAME" ]; then LATENCY_LABEL=$STORE_NAME; fi
done
# latency.sh: the default store (with PROVISIOND_ARGS), one instance.
if ! skipped latency; then measure_latency "$LATENCY_LABEL"; fi
if ! skipped instructions; then measure_instructions; fi
result run load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$HERE/table.py" "$RESULTS" > "$OUT"
echo
cat "$OUT"
echo
echo "(written to ${OUT#"$ROOT"/})"
