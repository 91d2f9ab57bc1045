#!/usr/bin/env bash
# Contract test: schemathesis generates requests from openapi.yaml against
# the real binary and checks every response against the spec (no 5xx,
# status codes, content types, headers, schemas, bad input rejected, good
# input accepted). Bounded: a fixed number of examples per operation.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PROVISIOND_BIN=${PROVISIOND_BIN:-$ROOT/.build/debug/provisiond}
source "$ROOT/bench/lib.sh"  # start_provisiond: the binary on a free port with its own data dir
EXAMPLES=${EXAMPLES:-25}
start_provisiond

run() {
    schemathesis run "$ROOT/openapi.yaml" --url "$URL" \
        -H "Authorization: Bearer $TOKEN" -n "$EXAMPLES" --seed 20261129 \
        --phases examples,coverage,fuzzing --workers 2 "$@"
}
# Everything but the operations below, with every check.
run --checks all --exclude-operation-id listTenants --exclude-operation-id listSubscriptionDeliveries \
    --exclude-operation-id listTenantEvents --exclude-operation-id createSubscription \
    --exclude-operation-id updateSubscription
# Operations where a schema-valid value is a 400 by contract, which "positive
# data acceptance" cannot know: an `after` cursor the server never issued (the
# list operations; the events of a tenant are such a list too, its cursor an
# event id), and a webhook URL libcurl would send elsewhere than it reads
# (`HTTPS://000…0` is host 0.0.0.0), which no JSON Schema pattern can tell.
run --checks all --exclude-checks positive_data_acceptance \
    --include-operation-id listTenants --include-operation-id listSubscriptionDeliveries \
    --include-operation-id listTenantEvents --include-operation-id createSubscription \
    --include-operation-id updateSubscription
