#!/usr/bin/env bash
# The outage figure: attempts a down environment gets in the first 10 s
# (bound: 20), default retry settings, counted from the metrics, the debug
# log and the deliveries' attempts. See outage.py for the two modes.
# Usage: bench/outage.sh [steady|backlog] [WINDOW_S=10] [RATE=20] [BACKLOG=1000]
source "$(dirname "$0")/lib.sh"
start_provisiond --log-level debug
python3 "$(dirname "$0")/outage.py" "$URL" "$TOKEN" "$WORK/provisiond.log" "$@"
