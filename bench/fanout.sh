#!/usr/bin/env bash
# Deliveries per second: N tenants (default 10000) fan out to 3 receivers
# (nginx answering 204). The tenants are published while the subscriptions
# are paused; the clock runs from unpausing them to an empty backlog.
# Usage: bench/fanout.sh [N]
source "$(dirname "$0")/lib.sh"
N=${1:-10000}
start_provisiond --max-in-flight 32
ids=()
for i in 0 1 2; do
    port=$((19400 + i))
    start_nginx_receiver $port
    ids+=($(api -X POST "$URL/subscriptions" -d "{\"name\":\"env$i\",\"url\":\"http://127.0.0.1:$port/hook\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'))
done
for id in "${ids[@]}"; do api -X PATCH "$URL/subscriptions/$id" -d '{"paused":true}' > /dev/null; done
python3 "$(dirname "$0")/publish_many.py" "$URL" "$TOKEN" "$N" 32 fanout
backlog() { api "$URL/metrics" | awk '/^provisiond_delivery_backlog/ {s += $2} END {print s + 0}'; }
echo "published $N tenants; backlog $(backlog)"
start=$(date +%s.%N)
for id in "${ids[@]}"; do api -X PATCH "$URL/subscriptions/$id" -d '{"paused":false}' > /dev/null; done
deadline=$(( $(date +%s) + 600 ))
while [ "$(backlog)" != 0 ]; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "backlog did not drain in 600 s"; exit 1; }
    sleep 0.1
done
end=$(date +%s.%N)
delivered=$(api "$URL/metrics" | awk '/^provisiond_deliveries_total.*outcome="delivered"/ {s += $2} END {print s + 0}')
python3 -c "import sys; d=float(sys.argv[2])-float(sys.argv[1]); n=int(sys.argv[3]); print(f'fanout: tenants=$N deliveries={n} seconds={d:.2f} deliveries_per_second={n/d:.0f}')" "$start" "$end" "$delivered"
