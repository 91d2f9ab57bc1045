#!/usr/bin/env bash
# Every benchmark once, figures last.
set -euo pipefail
cd "$(dirname "$0")"
./healthz.sh 10s | tail -3
./publish.sh 10s | grep '^publish:'
./fanout.sh 10000 | tail -1
./latency.sh 200 20 | tail -1
./sqlite-limit.sh 2000
./backlog.sh | tail -1
