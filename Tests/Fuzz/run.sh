#!/usr/bin/env bash
# make fuzz: each libFuzzer target for a bounded time (FUZZ_SECONDS, default
# 60) from the committed seed corpus, with AddressSanitizer. New inputs go to
# a scratch corpus; a crash is saved under Tests/Fuzz/crashes/ (commit it to
# the corpus as a regression input once fixed). Prints a figures line per target.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECONDS_EACH=${1:-${FUZZ_SECONDS:-60}}
SCRATCH=$ROOT/.build-fuzz
cd "$ROOT"
mkdir -p Tests/Fuzz/crashes
status=0
for target in FuzzHTTPParser:http-parser FuzzRequestDecoding:request-decoding; do
    product=${target%%:*}
    corpus=${target##*:}
    swift build --scratch-path "$SCRATCH" --product "$product" \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -use-ld=lld 2>&1 | grep -E "error|warning: unre|Compiling|Build" | tail -3
    work=$(mktemp -d /tmp/provisiond-fuzz.XXXXXX)
    log=$work/log
    "$SCRATCH/debug/$product" -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
        -artifact_prefix="Tests/Fuzz/crashes/$corpus-" -max_len=8192 -timeout=10 \
        "$work" "Tests/Fuzz/corpus/$corpus" > "$log" 2>&1 || status=1
    runs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
    rate=$(awk '/stat::average_exec_per_sec/ {print $2}' "$log")
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
    corpus_size=$(ls "$work" | wc -l)
    echo "fuzz: target=$product seconds=$SECONDS_EACH runs=${runs:-?} execs_per_s=${rate:-?} ${cov:-cov: ?} new_inputs=$corpus_size"
    if [ $status -ne 0 ]; then
        grep -E "ERROR|SUMMARY|Test unit written" "$log" | head -5
        break
    fi
    rm -rf "$work"
done
exit $status
