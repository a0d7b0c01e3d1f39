#!/usr/bin/env bash
# Room-nights a small hotel sells when booked to exhaustion (issue #16, "no sellable stay
# refused"): 8 rooms of one type, stays of 2-4 nights drawn from the next 14 nights, 400
# booking requests from one connection (so a seed gives one request sequence), then the
# sold room-nights read back from availability, night by night. Run it on two builds with
# the same seeds to compare; a build that rearranges also prints how many bookings it
# booked by moving others (innkeep_rearrangements_total).
#
#   scripts/bench-rearrange.sh BINARY [SEED...]     # default seeds: 7 8 9
set -euo pipefail
bin=$1
shift
seeds=("${@:-7 8 9}")
load="${LOAD_BIN:-$(dirname "$0")/../target/release/innkeep-load}"
port="${BENCH_PORT:-18183}"
for seed in ${seeds[@]}; do
    data=$(mktemp -d)
    INNKEEP_DATA_DIR=$data INNKEEP_LISTEN=127.0.0.1:$port INNKEEP_LOG=error "$bin" serve &
    pid=$!
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    "$load" --target "http://127.0.0.1:$port" --connections 1 --requests 400 --rooms 8 \
        --room-types 1 --horizon-days 14 --stay-nights 2-4 --setup --mix book=100 \
        --seed "$seed" --quiet --no-check >/dev/null
    sold=0
    for d in $(seq 1 14); do
        a=$(date -u -d "+$d day" +%F)
        b=$(date -u -d "+$((d + 1)) day" +%F)
        free=$(curl -fs "http://127.0.0.1:$port/v1/hotels/LOAD-0/availability?arrival=$a&departure=$b&guests=1" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["room_types"][0]["available"])')
        sold=$((sold + 8 - free))
    done
    moved=$(curl -fs "http://127.0.0.1:$port/metrics" |
        awk '/^innkeep_rearrangements_total\{outcome="booked"\}/ {print $2}')
    echo "seed $seed: sold room-nights $sold of 112; booked by rearranging: ${moved:-0}"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$data"
done
