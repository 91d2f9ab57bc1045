#!/usr/bin/env bash
# GET /healthz with wrk: the HTTP server's own overhead (no database).
# Usage: bench/healthz.sh [duration, default 10s]
source "$(dirname "$0")/lib.sh"
start_provisiond
wrk -t2 -c64 -d"${1:-10s}" --latency "$URL/healthz"
