#!/usr/bin/env bash
# A serving node's memory and disk (BENCHMARKS.md, (e)): a release server on loopback with a
# snapshot every 6 000 events, 50 hotels x 200 rooms, 300 000 durable bookings through
# innkeep-load (64 connections); prints the resident growth over the bookings, the data
# dir's size (snapshots, journal) and how many snapshots were written, then the data dir
# after SIGTERM (final snapshot).
#
#   cargo build --release --bin innkeep -p innkeep
#   cargo build --release -p innkeep-benches --bins
#   scripts/bench-node.sh [TARGET_DIR]        # default: target
#
# LOAD_BIN overrides the generator (to drive an older server with this one);
# SNAPSHOT_EVERY_EVENTS the snapshot interval (default 6 000; a snapshot of this size
# takes a while to write, so that gives about 15 snapshots, and 100 about 70). It also
# prints the data dir's largest size while the bookings ran.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:-target}"
bin="$target/release/innkeep"
load_bin="${LOAD_BIN:-$target/release/innkeep-load}"
port="${BENCH_PORT:-18183}"
secret=bench-secret-0123456789
data=$(mktemp -d)
log=$(mktemp)
INNKEEP_DATA_DIR=$data INNKEEP_LISTEN=127.0.0.1:$port INNKEEP_PAYMENT_SECRET=$secret \
    INNKEEP_LOG=info INNKEEP_SNAPSHOT_EVERY_EVENTS="${SNAPSHOT_EVERY_EVENTS:-6000}" "$bin" serve 2>"$log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; rm -rf "$data" "$log" "${peak:-}"' EXIT
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
args=(--target "http://127.0.0.1:$port" --payment-secret $secret --connections 64 --quiet
    --no-check --hotels 50 --hotel-prefix D --rooms 200 --room-types 4 --horizon-days 365
    --stay-nights 1-3 --mix book=100)
"$load_bin" "${args[@]}" --setup --requests 2000 >/dev/null
rss() { awk '/VmRSS/ {print $2 * 1024}' "/proc/$pid/status"; }
size() { du -sb "$1" 2>/dev/null | cut -f1; }
# The data dir's largest size while the bookings run, sampled every half second: old
# snapshots must be gone once a newer one is durable, whatever the interval.
peak=$(mktemp)
(max=0; while kill -0 "$pid" 2>/dev/null; do
    s=$(size "$data" || echo 0); ((s > max)) && max=$s && echo "$max" >"$peak"
    sleep 0.5
done) &
sampler=$!
before=$(rss)
"$load_bin" "${args[@]}" --requests 300000 >/dev/null
sleep 2
after=$(rss)
kill "$sampler" 2>/dev/null || true
echo "resident growth: $((after - before)) B over 300 000 bookings, $(((after - before) / 300000)) B per booking"
echo "data dir: $(size "$data") B ($(($(size "$data") / 300000)) B per reservation); snapshots $(size "$data/snapshots") B, journal $(size "$data/journal") B; snapshots written: $(grep -c 'snapshot written' "$log")"
echo "data dir at its largest during the bookings: $(cat "$peak") B"
kill -TERM "$pid"
wait "$pid" || true
echo "after SIGTERM: data dir $(size "$data") B"
