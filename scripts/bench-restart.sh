#!/usr/bin/env bash
# A restart from a snapshot of 1M reservations (BENCHMARKS.md, (f)): the release server on
# a copy of the data dir `examples/recovery 1000000 DIR snapshot` writes (its 1M unpaid
# holds have all lapsed, so the restart also expires them), timed from spawn until
# `/readyz` answers 200; then `/healthz`'s time while the holds expire, how many expired in
# the first seconds, and the peak resident memory. Three runs, a fresh copy each.
#
#   cargo build --release --bin innkeep -p innkeep
#   cargo build --release -p innkeep-benches --examples
#   scripts/bench-restart.sh [TARGET_DIR]        # default: target
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:-target}"
bin="$target/release/innkeep"
port="${BENCH_PORT:-18234}"
fixture=$(mktemp -d)
copy=$(mktemp -d)
pid=
trap 'kill -TERM $pid 2>/dev/null || true; rm -rf "$fixture" "$copy"' EXIT
"$target/release/examples/recovery" 1000000 "$fixture/dir" snapshot >/dev/null 2>&1
for run in 1 2 3; do
    rm -rf "$copy/dir"
    cp -r "$fixture/dir" "$copy/dir"
    rm -f "$copy/dir/LOCK"
    start=$(date +%s.%N)
    INNKEEP_DATA_DIR="$copy/dir" INNKEEP_LISTEN=127.0.0.1:$port INNKEEP_LOG=warn "$bin" serve 2>/dev/null &
    pid=$!
    until curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do sleep 0.02; done
    ready=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$start" "$(date +%s.%N)")
    healthz=()
    for _ in $(seq 10); do
        healthz+=("$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$port/healthz")")
        sleep 0.3
    done
    expired=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^innkeep_holds_expired_total/ {print $2}')
    peak=$(awk '/VmHWM/ {print $2 * 1024}' "/proc/$pid/status")
    echo "run $run: spawn to /readyz 200 in $ready s; /healthz ${healthz[*]} s; holds expired so far $expired; peak resident $peak B"
    kill -TERM "$pid"
    wait "$pid" || true
done
