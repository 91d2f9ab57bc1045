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
./outage.sh steady | tail -1
# Instructions per request (callgrind; a few minutes): the figures that do not
# drift with the machine. Needs valgrind (apt-get install valgrind).
if command -v valgrind > /dev/null; then ./instructions.sh 2>/dev/null; else echo "instructions: skipped, valgrind is not installed"; fi
