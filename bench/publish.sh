#!/usr/bin/env bash
# POST /tenants throughput: 3 subscriptions (paused, so the dispatcher does
# not compete), 64 concurrent keep-alive clients. Every 202 means the tenant
# and its 3 deliveries are committed with synchronous=FULL.
# Usage: bench/publish.sh [duration, default 10s]   (PROVISIOND_ARGS: extra flags)
source "$(dirname "$0")/lib.sh"
start_provisiond "${STORE_ARGS[@]}"
add_subscriptions http://127.0.0.1:9/dev http://127.0.0.1:9/test http://127.0.0.1:9/prod
set_paused true
TOKEN=$TOKEN RUN=$RANDOM wrk -t2 -c64 -d"${1:-10s}" -s "$(dirname "$0")/publish.lua" "$URL"
echo "tenants stored: $(metric provisiond_tenants_total)"
