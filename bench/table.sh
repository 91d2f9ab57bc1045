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
#                  times; CPU from /proc/PID/stat. Limit: SQLite's batched
#                  inserts on the same disk (sqlite-ceiling.c, 64 x rows per
#                  tenant a commit) before and after each round ÷ the rows one
#                  publish writes, counted by triggers in a data dir of their
#                  own; the median of the rounds' ratios.
#   fan-out        N tenants x 3 nginx receivers (204), --max-in-flight 32. Limit:
#                  one libcurl-multi thread (curl-ceiling.c) keeping 3 x 32
#                  POSTs of a webhook's size in flight to the same nginx, run
#                  before and after provisiond's drain; their mean.
#   latency        publish -> last of 3 acks at 100 tenants/s (latency.sh).
#   instructions   instructions.sh (callgrind): per GET /healthz, POST /tenants, delivery.
#
# Usage: bench/table.sh                       after swift build -c release (make bench does both)
#        BENCH_QUICK=1 bench/table.sh         smaller N, shorter runs: a quick check of the script
#        BENCH_FANOUT_N=50000 bench/table.sh  fan-out tenants (default 20000; 100..200000)
#        BENCH_SKIP=instructions,latency      parts left out (healthz,publish,fanout,latency,instructions)
#        BENCH_OUT=file.md                    where the table goes besides stdout (default bench/last-run.md)
#        PROVISIOND_ARGS="--database ..."     another store for publish, fan-out and latency. The
#                  rows are labelled with the store provisiond logs at start (or BENCH_LABEL); a
#                  store other than SQLite takes its limit from BENCH_STORE_CEILING (rows/s,
#                  batched, measured by whoever adds the store) and BENCH_ROWS_PER_TENANT. To put
#                  several stores (or instances) in one table, call measure_publish/measure_fanout
#                  once per store below, each with its own ROW_LABEL: each call is a row.
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
    # rows per tenant, then e.g. "tenants +1 ~1, events +1, deliveries +3, subscriptions ~3, tenant_stats ~1"
    python3 - "$run.writes-before" "$run.writes-after" "$ROW_COUNT_TENANTS" > "$run.rows" <<'PY'
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

# measure_publish [provisiond flags...]: POST /tenants for PUBLISH_SECONDS, its
# store's limit just before and just after, and (SQLite) the rows per tenant.
# The ceiling commits as many rows at once as the most one group commit can
# hold under this load (64 clients x the rows of one publish): with fewer, a
# slow fsync would make the "ceiling" lower than what provisiond reaches.
measure_publish() {
    MEASURE=$((MEASURE + 1))   # each call its own files: one run may measure several stores
    local run=$WORK/publish-$MEASURE
    DATA=$run LOG=$run.log
    start_provisiond "$@"
    local store section tenants hz sqlite= per_commit=
    store=$(store_of "$LOG")
    STORE_NAME=${ROW_LABEL:-${store:-?}}
    section="publish:$STORE_NAME"
    if [ "$store" = sqlite ]; then sqlite=1; fi
    add_subscriptions http://127.0.0.1:9/dev http://127.0.0.1:9/test http://127.0.0.1:9/prod
    set_paused true
    if [ -n "$sqlite" ]; then
        log "publish: rows written per tenant (triggers, $ROW_COUNT_TENANTS tenants)"
        local pid=$PROVISIOND_PID url=$URL
        count_rows_per_tenant "$run" "$@"
        PROVISIOND_PID=$pid URL=$url
        result "$section" rows_per_tenant "$(sed -n 1p "$run.rows")"
        result "$section" rows_detail "$(sed -n 2p "$run.rows")"
        per_commit=$(awk -v r="$(sed -n 1p "$run.rows")" 'BEGIN {printf "%d", 64 * r + 0.5}')
        result "$section" ceiling_label "SQLite batched inserts, $per_commit rows a commit (64 clients × rows per tenant)"
    else
        result "$section" rows_per_tenant "${BENCH_ROWS_PER_TENANT:-}"
        result "$section" ceiling_label "${BENCH_STORE_CEILING_LABEL:-$store batched rows (BENCH_STORE_CEILING)}"
        result "$section" ceiling "${BENCH_STORE_CEILING:-}"
    fi
    # ROUNDS rounds of wrk, each between two runs of the ceiling (a commit's
    # fsync on this shared disk takes 0.1 to 4 ms from one minute to the next).
    local i ticks=0 before
    for i in $(seq 1 "$ROUNDS"); do
        if [ -n "$sqlite" ]; then
            log "publish: round $i, SQLite's batched inserts ${CEILING_SECONDS}s, $per_commit rows a commit"
            sqlite_ceiling "$run.ceiling" "$per_commit"
        fi
        log "publish: round $i, wrk -t2 -c64 ${PUBLISH_SECONDS}s, 3 paused subscriptions"
        before=$(cpu_ticks "$PROVISIOND_PID")
        TOKEN=$TOKEN RUN=$RANDOM wrk -t2 -c64 -d"${PUBLISH_SECONDS}s" -s "$HERE/publish.lua" "$URL" > "$run-$i.wrk"
        ticks=$((ticks + $(cpu_ticks "$PROVISIOND_PID") - before))
        grep '^publish:' "$run-$i.wrk" >&2
        result "$section" line "$(grep '^publish:' "$run-$i.wrk")"
    done
    if [ -n "$sqlite" ]; then
        log "publish: SQLite's batched inserts once more, after the last round"
        sqlite_ceiling "$run.ceiling" "$per_commit"
    fi
    tenants=$(metric provisiond_tenants_total)
    stop_provisiond
    hz=$(getconf CLK_TCK)
    result "$section" store "$STORE_NAME"
    result "$section" tenants "$tenants"
    result "$section" seconds "$ROUNDS x $PUBLISH_SECONDS"
    result "$section" cpu_us "$(( ticks * 1000000 / hz / (tenants > 0 ? tenants : 1) ))"
    if [ -n "$sqlite" ]; then
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

# measure_fanout [provisiond flags...]: FANOUT_N tenants to 3 nginx receivers, then its limit.
measure_fanout() {
    log "fan-out: $FANOUT_N tenants x 3 nginx receivers, --max-in-flight $MAX_IN_FLIGHT"
    local urls=() port
    for _ in 0 1 2; do
        port=$(free_port)
        start_nginx_receiver "$port"
        urls+=("http://127.0.0.1:$port/hook")
    done
    MEASURE=$((MEASURE + 1))
    local run=$WORK/fanout-$MEASURE
    DATA=$run LOG=$run.log
    start_provisiond --max-in-flight "$MAX_IN_FLIGHT" "$@"
    local store section payload=${BENCH_PAYLOAD_BYTES:-} start end delivered
    store=$(store_of "$LOG")
    STORE_NAME=${ROW_LABEL:-${store:-?}}
    section="fanout:$STORE_NAME"
    add_subscriptions "${urls[@]}"
    set_paused true
    python3 "$HERE/publish_many.py" "$URL" "$TOKEN" "$FANOUT_N" 32 fanout
    # The ceiling POSTs bodies of the webhooks' mean size: once before provisiond drains, once after.
    if [ -z "$payload" ] && [ "$store" = sqlite ]; then
        payload=$(sqlite3 "$DATA/provisiond.sqlite3" "SELECT CAST(round(avg(length(payload))) AS INTEGER) FROM events")
    fi
    payload=${payload:-300}
    log "fan-out: libcurl ceiling before, $((3 * FANOUT_N)) POSTs of $payload bytes"
    curl_ceiling "$run.ceiling" $((3 * FANOUT_N)) "$payload" "${urls[@]}"
    log "fan-out: provisiond drains $((3 * FANOUT_N)) deliveries"
    start=$(date +%s.%N)
    set_paused false
    wait_for_drain $((60 + FANOUT_N / 100))
    end=$(date +%s.%N)
    delivered=$(metric provisiond_deliveries_total 'outcome="delivered"')
    stop_provisiond
    log "fan-out: libcurl ceiling after"
    curl_ceiling "$run.ceiling" $((3 * FANOUT_N)) "$payload" "${urls[@]}"
    result "$section" store "$STORE_NAME"
    result "$section" tenants "$FANOUT_N"
    result "$section" delivered "$delivered"
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
build_tools
# (if, not ||: set -e does not apply inside a function called left of ||)
STORE_NAME= ROW_LABEL=${BENCH_LABEL:-} MEASURE=0
if ! skipped healthz; then measure_healthz; fi
if ! skipped publish; then measure_publish "${STORE_ARGS[@]}"; fi
if ! skipped fanout; then measure_fanout "${STORE_ARGS[@]}"; fi
if ! skipped latency; then measure_latency "$STORE_NAME"; fi
if ! skipped instructions; then measure_instructions; fi
result run load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$HERE/table.py" "$RESULTS" > "$OUT"
echo
cat "$OUT"
echo
echo "(written to ${OUT#"$ROOT"/})"
