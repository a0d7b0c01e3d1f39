#!/usr/bin/env bash
# Server CPU per request of two builds, alternating (BENCHMARKS.md): for each of ROUNDS
# rounds, a durable-booking run and a /healthz run on each build, each on a fresh server
# and data dir after a 2 s warm-up that does the setup, 8 s measured, 64 connections. Prints
# requests per second and the server's utime + stime per request, and per thread name
# (shards are `actix-rt|system`, the journal writer `innkeep-journal`, the snapshot writer
# `innkeep-snapshot`).
#
#   scripts/bench-cpu-ab.sh NEW_BINARY OLD_BINARY [ROUNDS]     # default: 3 rounds
set -euo pipefail
new=$1
old=$2
rounds=${3:-3}
load="${LOAD_BIN:-$(dirname "$0")/../target/release/innkeep-load}"
# shellcheck source=bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
hz=$(getconf CLK_TCK)
one() {
    local bin=$1 tag=$2 kind=$3
    serve "$bin"
    local pid=$server_pid
    local args=(--target "http://127.0.0.1:$port" --payment-secret $secret --connections 64
        --quiet --no-check)
    if [[ $kind == book ]]; then
        args+=(--hotel-prefix U --rooms 1000 --room-types 4 --horizon-days 700
            --stay-nights 1-3 --mix book=100)
    else
        args+=(--hotel-prefix HEALTH --rooms 10 --mix health=100)
    fi
    "$load" "${args[@]}" --duration 2s --setup >/dev/null
    declare -A before
    local t
    for t in /proc/$pid/task/*; do before[$t]=$(awk '{print $14 + $15}' "$t/stat"); done
    local report
    report=$(mktemp)
    "$load" "${args[@]}" --duration 8s --json >"$report"
    declare -A per
    local total=0 name ticks
    for t in /proc/$pid/task/*; do
        name=$(sed 's/[0-9]*$//' "$t/comm")
        ticks=$(($(awk '{print $14 + $15}' "$t/stat") - ${before[$t]:-0}))
        per[$name]=$((${per[$name]:-0} + ticks))
        total=$((total + ticks))
    done
    local threads=""
    for name in "${!per[@]}"; do threads+=" $name=${per[$name]}"; done
    python3 - "$tag" "$kind" "$total" "$hz" "$threads" "$report" <<'PY'
import json, sys
tag, kind, total, hz, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
r = json.load(open(sys.argv[6]))
n = max(r["requests"], 1)
per = " ".join(f"{k}={int(v) / hz * 1e6 / n:.1f}" for k, v in (p.split("=") for p in threads.split()))
print(f"{tag:<4} {kind:<6} {r['throughput_rps']:>8.0f} req/s {total / hz * 1e6 / n:6.1f} us/req  ({per})")
PY
    unserve
    rm -f "$report"
}
for _ in $(seq "$rounds"); do
    for kind in book health; do
        one "$new" new "$kind"
        one "$old" old "$kind"
    done
done
