#!/usr/bin/env bash
# Open-loop latency of two server builds, alternating (BENCHMARKS.md, (g)): each round
# starts a fresh server of each build in turn on a fresh data dir and drives it with
# innkeep-load in open loop at RATE bookings/s for 10 s (the setup included), then prints
# the latency percentiles and how many of the journal's fsyncs took under 100 µs,
# 250 µs, 1 ms and 5 ms (from the server's /metrics), out of all of them.
#
#   cargo build --release --bin innkeep -p innkeep
#   cargo build --release -p innkeep-benches --bins
#   scripts/bench-open-ab.sh NEW/innkeep OLD/innkeep [RATE] [ROUNDS]   # 8000, 5
#
# Extra server settings come from the environment (e.g. INNKEEP_JOURNAL_COMMIT_DELAY_US).
set -euo pipefail
cd "$(dirname "$0")/.."
new=$1
old=$2
rate="${3:-8000}"
rounds="${4:-5}"
load_bin="${LOAD_BIN:-target/release/innkeep-load}"
# shellcheck source=bench-lib.sh
source scripts/bench-lib.sh
out=$(mktemp -d)
trap 'kill -TERM $server_pid 2>/dev/null || true; rm -rf "$out"' EXIT
one() {
    local name=$1 bin=$2
    serve "$bin"
    "$load_bin" --target "http://127.0.0.1:$port" --payment-secret $secret --connections 64 \
        --duration 10s --quiet --json --setup --hotel-prefix U --rooms 1000 --room-types 4 \
        --horizon-days 700 --stay-nights 1-3 --mix book=100 --mode open --rate "$rate" \
        >"$out/$name.json"
    curl -s "http://127.0.0.1:$port/metrics" >"$out/$name.metrics"
    unserve
    python3 - "$name" "$out/$name.json" "$out/$name.metrics" <<'PY'
import json, re, sys
name, report, metrics = sys.argv[1:]
r = json.load(open(report))
lat = r["overall"]["latency"]
buckets = {}
for line in open(metrics):
    m = re.match(r'innkeep_journal_fsync_duration_seconds_(bucket\{le="([0-9.]+)"\}|count) (\d+)', line)
    if m:
        buckets[m.group(2) or "count"] = int(m.group(3))
syncs = " ".join(f"{buckets.get(le, 0)}" for le in ["0.0001", "0.00025", "0.001", "0.005"])
print(f"{name:<8} {r['throughput_rps']:>6.0f}/s  p50 {lat['p50_us']:>6} µs  p90 {lat['p90_us']:>6}  "
      f"p99 {lat['p99_us']:>7}  max {lat['max_us']:>7}  fsyncs <100µs/<250µs/<1ms/<5ms of all: "
      f"{syncs} of {buckets.get('count', 0)}")
PY
}
for round in $(seq "$rounds"); do
    one "old$round" "$old"
    one "new$round" "$new"
done
