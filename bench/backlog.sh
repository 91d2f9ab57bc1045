#!/usr/bin/env bash
# A million pending deliveries must not grow the process: publish N tenants
# (default 333,334) to 3 subscriptions whose receivers are down (refused), so
# the backlog reaches ~1,000,000 rows in SQLite; report the service's memory
# (VmRSS) before and after, and how long status queries take at that size.
# Usage: bench/backlog.sh [N]
source "$(dirname "$0")/lib.sh"
N=${1:-333334}
start_provisiond --retry-initial 1s --retry-max 10s
PID=${PIDS[0]}
rss() { awk '/^VmRSS/ {print $2}' /proc/$PID/status; }
ids=()
for env in dev test prod; do
    ids+=($(api -X POST "$URL/subscriptions" -d "{\"name\":\"$env\",\"url\":\"http://127.0.0.1:9/$env\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'))
done
python3 "$(dirname "$0")/publish_many.py" "$URL" "$TOKEN" 1000 16 warmup
before=$(rss)
python3 "$(dirname "$0")/publish_many.py" "$URL" "$TOKEN" "$N" 32 backlog
sleep 5  # let the dispatcher probe the dead receivers with the full backlog in place
after=$(rss)
backlog=$(api "$URL/metrics" | awk '/^provisiond_delivery_backlog/ {s += $2} END {print s + 0}')
t() { local s e; s=$(date +%s%N); api "$@" > /dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
echo "backlog: tenants=$((N + 1000)) pending_deliveries=$backlog rss_before_kib=$before rss_after_kib=$after" \
     "get_subscriptions_ms=$(t "$URL/subscriptions") get_metrics_ms=$(t "$URL/metrics") get_tenants_ms=$(t "$URL/tenants?limit=100")" \
     "db_mib=$(( $(du -sk "$WORK/data" | cut -f1) / 1024 ))"
