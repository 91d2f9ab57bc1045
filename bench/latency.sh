#!/usr/bin/env bash
# POST /tenants to the last of 3 acknowledgements (median, p99) at a light load.
# Usage: bench/latency.sh [N=200] [RATE=20]
source "$(dirname "$0")/lib.sh"
start_provisiond "${STORE_ARGS[@]}"
python3 "$(dirname "$0")/latency.py" "$URL" "$TOKEN" "${1:-200}" "${2:-20}"
