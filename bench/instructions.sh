#!/usr/bin/env bash
# Instructions per request of the three hot paths, counted by callgrind on the
# release binary: GET /healthz, POST /tenants (3 subscriptions paused, one
# group commit per request) and one delivery (claim, attempt, outcome write)
# to a loopback receiver answering 204. Each figure is a workload run minus a
# baseline run with the same start, set-up, duration and stop, divided by the
# number of requests (see bench/instructions.py). Takes a few minutes.
# Usage: bench/instructions.sh [HEALTHZ_N [TENANTS_N [DELIVERY_TENANTS]]]
#        PROVISIOND_BIN=path/to/provisiond bench/instructions.sh
#        INSTRUCTIONS_KEEP=dir keeps the callgrind files for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")"
command -v valgrind > /dev/null || { echo "valgrind is missing: apt-get install valgrind" >&2; exit 1; }
exec python3 instructions.py --healthz "${1:-20000}" --tenants "${2:-1000}" --deliveries "${3:-500}" \
    ${INSTRUCTIONS_KEEP:+--keep "$INSTRUCTIONS_KEEP"} ${INSTRUCTIONS_LABEL:+--label "$INSTRUCTIONS_LABEL"}
