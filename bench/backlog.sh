#!/usr/bin/env bash
# A million pending deliveries must not grow the process: publish N tenants
# (default 333,334) to 3 subscriptions whose receivers are down (refused), so
# the backlog reaches ~1,000,000 rows in SQLite; report the service's memory
# (VmRSS) before and after, its peak (VmHWM), and how long the status reads
# take at that size and at 1,000 tenants (GET /subscriptions and GET /status
# read kept counters: the same time whatever the backlog; the median of 5).
# Usage: bench/backlog.sh [N]
source "$(dirname "$0")/lib.sh"
N=${1:-333334}
start_provisiond --retry-initial 1s --retry-max 10s
PID=${PIDS[0]}
rss() { awk '/^VmRSS/ {print $2}' /proc/$PID/status; }
hwm() { awk '/^VmHWM/ {print $2}' /proc/$PID/status; }
# t URL: the median of 5 sequential GETs as curl times them (request to
# last byte, without curl's own start-up), in ms.
t() {
    local i
    for i in 1 2 3 4 5; do api -o /dev/null -w '%{time_total}\n' "$@"; done |
        sort -n | sed -n 3p | awk '{printf "%.1f", $1 * 1000}'
}
ids=()
for env in dev test prod; do
    ids+=($(api -X POST "$URL/subscriptions" -d "{\"name\":\"$env\",\"url\":\"http://127.0.0.1:9/$env\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'))
done
python3 "$(dirname "$0")/publish_many.py" "$URL" "$TOKEN" 1000 16 warmup
before=$(rss)
small="get_subscriptions_ms=$(t "$URL/subscriptions") get_status_ms=$(t "$URL/status") get_metrics_ms=$(t "$URL/metrics")"
python3 "$(dirname "$0")/publish_many.py" "$URL" "$TOKEN" "$N" 32 backlog
sleep 5  # let the dispatcher probe the dead receivers with the full backlog in place
after=$(rss)
backlog=$(api "$URL/metrics" | awk '/^provisiond_delivery_backlog/ {s += $2} END {print s + 0}')
echo "at 1000 tenants: $small"
echo "backlog: tenants=$((N + 1000)) pending_deliveries=$backlog rss_before_kib=$before rss_after_kib=$after rss_peak_kib=$(hwm)" \
     "get_subscriptions_ms=$(t "$URL/subscriptions") get_status_ms=$(t "$URL/status") get_metrics_ms=$(t "$URL/metrics")" \
     "get_tenants_ms=$(t "$URL/tenants?limit=100")" \
     "db_mib=$(( $(du -sk "$WORK/data" | cut -f1) / 1024 ))"
