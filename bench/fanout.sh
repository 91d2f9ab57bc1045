#!/usr/bin/env bash
# Deliveries per second: N tenants (default 10000) fan out to 3 receivers
# (nginx answering 204). The tenants are published while the subscriptions
# are paused; the clock runs from unpausing them to an empty backlog.
# Usage: bench/fanout.sh [N]   (PROVISIOND_ARGS: extra flags)
source "$(dirname "$0")/lib.sh"
N=${1:-10000}
start_provisiond --max-in-flight 32 "${STORE_ARGS[@]}"
urls=()
for _ in 0 1 2; do
    port=$(free_port)
    start_nginx_receiver "$port"
    urls+=("http://127.0.0.1:$port/hook")
done
add_subscriptions "${urls[@]}"
set_paused true
python3 "$(dirname "$0")/publish_many.py" "$URL" "$TOKEN" "$N" 32 fanout
echo "published $N tenants; backlog $(metric provisiond_delivery_backlog)"
start=$(date +%s.%N)
set_paused false
wait_for_drain 600
end=$(date +%s.%N)
delivered=$(metric provisiond_deliveries_total 'outcome="delivered"')
python3 -c "import sys; d=float(sys.argv[2])-float(sys.argv[1]); n=int(sys.argv[3]); print(f'fanout: tenants=$N deliveries={n} seconds={d:.2f} deliveries_per_second={n/d:.0f}')" "$start" "$end" "$delivered"
