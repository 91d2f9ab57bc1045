#!/usr/bin/env bash
# POST /tenants throughput: 3 subscriptions (paused, so the dispatcher does
# not compete), 64 concurrent keep-alive clients. Every 202 means the tenant
# and its 3 deliveries are committed with synchronous=FULL.
# Usage: bench/publish.sh [duration, default 10s]
source "$(dirname "$0")/lib.sh"
start_provisiond
for env in dev test prod; do
    id=$(api -X POST "$URL/subscriptions" -d "{\"name\":\"$env\",\"url\":\"http://127.0.0.1:9/$env\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    api -X PATCH "$URL/subscriptions/$id" -d '{"paused":true}' > /dev/null
done
TOKEN=$TOKEN RUN=$RANDOM wrk -t2 -c64 -d"${1:-10s}" -s "$(dirname "$0")/publish.lua" "$URL"
echo "tenants stored: $(api "$URL/metrics" | awk '/^provisiond_tenants_total/ {print $2}')"
