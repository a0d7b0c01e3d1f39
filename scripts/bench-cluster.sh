#!/usr/bin/env bash
# The cluster runs of BENCHMARKS.md (issue #18): durable bookings/s of one node alone, of
# a node of a cluster publishing its partition stream to NATS JetStream (replication
# "async" and "sync"), and of that sync node behind HAProxy configured by
# `innkeep cluster haproxy-config`. One JSON report per run in OUT, then a summary. Last,
# failover: a standby follows the sync node's partition, the node is killed (SIGKILL), and
# the script reports how long until the standby serves and until a booking through the
# proxy succeeds again.
#
#   cargo build --release --bin innkeep -p innkeep
#   cargo build --release -p innkeep-benches --bins
#   scripts/bench-cluster.sh [OUT_DIR] [TARGET_DIR]     # defaults: /tmp/innkeep-cluster, target
#
# Needs nats-server and haproxy (Debian packages; scripts/test.sh installs them). Each run
# is BENCH_DURATION (10 s) of closed-loop bookings with 64 connections on a fresh server,
# data dir and NATS store; everything shares the machine and talks over loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
# For wait_http; the ports below are this script's own.
# shellcheck source=bench-lib.sh
source scripts/bench-lib.sh
out="${1:-/tmp/innkeep-cluster}"
target="${2:-target}"
bin="$target/release/innkeep"
load_bin="$target/release/innkeep-load"
port="${BENCH_PORT:-18281}"
nats_port=$((port + 1))
proxy_port=$((port + 2))
standby_port=$((port + 3))
secret=bench-secret-0123456789
duration="${BENCH_DURATION:-10s}"
mkdir -p "$out"
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    # Gone before their data dirs are.
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/cluster.toml" <<TOML
[[nodes]]
id = "a"
address = "127.0.0.1:$port"
[[nodes]]
id = "c"
address = "127.0.0.1:$standby_port"
[[partitions]]
id = "p1"
primary = "a"
standbys = ["c"]
hotels = ["U-0"]
TOML

start_nats() {
    rm -rf "$work/nats"
    nats-server -js -a 127.0.0.1 -p "$nats_port" -sd "$work/nats" >/dev/null 2>&1 &
    nats_pid=$!
    pids+=("$nats_pid")
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nats-server did not start" >&2
    exit 1
}
# start [replication]: a fresh node; with a replication mode, a node of the cluster.
start() {
    data=$(mktemp -d -p "$work")
    local cluster=()
    if [[ $# -gt 0 ]]; then
        cluster=(INNKEEP_CLUSTER_NODE_ID=a INNKEEP_CLUSTER_FILE="$work/cluster.toml"
            INNKEEP_CLUSTER_NATS_URL="nats://127.0.0.1:$nats_port" INNKEEP_CLUSTER_REPLICATION="$1")
    fi
    env INNKEEP_DATA_DIR="$data" INNKEEP_LISTEN=127.0.0.1:$port INNKEEP_PAYMENT_SECRET=$secret \
        INNKEEP_LOG=warn ${cluster[@]+"${cluster[@]}"} "$bin" serve &
    pid=$!
    pids+=("$pid")
    wait_http "http://127.0.0.1:$port/readyz" || exit 1
}
stop() {
    kill -TERM "$pid"
    wait "$pid" || true
}
run() {
    local name=$1 base=$2
    "$load_bin" --target "$base" --payment-secret $secret --connections 64 \
        --duration "$duration" --quiet --json --setup --hotel-prefix U --rooms 1000 \
        --room-types 4 --horizon-days 700 --stay-nights 1-3 --mix book=100 >"$out/$name.json"
}

start
run single "http://127.0.0.1:$port"
stop
for mode in async sync; do
    start_nats
    start "$mode"
    run "$mode" "http://127.0.0.1:$port"
    stop
    kill -TERM "$nats_pid"
    wait "$nats_pid" || true
done
start_nats
start sync
"$bin" cluster haproxy-config --file "$work/cluster.toml" --bind "127.0.0.1:$proxy_port" \
    >"$work/haproxy.cfg"
haproxy -db -f "$work/haproxy.cfg" >/dev/null 2>&1 &
pids+=("$!")
# Through the proxy once its checks found the standby (not started yet) down.
wait_http "http://127.0.0.1:$proxy_port/readyz" || exit 1
sleep 2
run haproxy "http://127.0.0.1:$proxy_port"

# Failover: the standby follows p1 (it has the run's events), then the primary dies.
standby_data=$(mktemp -d -p "$work")
env INNKEEP_DATA_DIR="$standby_data" INNKEEP_LISTEN=127.0.0.1:$standby_port \
    INNKEEP_PAYMENT_SECRET=$secret INNKEEP_LOG=warn INNKEEP_CLUSTER_NODE_ID=c \
    INNKEEP_CLUSTER_FILE="$work/cluster.toml" INNKEEP_CLUSTER_NATS_URL="nats://127.0.0.1:$nats_port" \
    "$bin" serve &
pids+=("$!")
wait_http "http://127.0.0.1:$standby_port/healthz" || exit 1
sleep 5
kill -KILL "$pid"
died=$(date +%s.%N)
until curl -fs "http://127.0.0.1:$standby_port/readyz?partition=p1" >/dev/null 2>&1; do sleep 0.02; done
serving=$(date +%s.%N)
arrival=$(date -d '+400 days' +%F)
departure=$(date -d '+401 days' +%F)
until [[ $(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' \
    -d "{\"room_type\":\"T0\",\"arrival\":\"$arrival\",\"departure\":\"$departure\",\"guests\":1,\"guest\":{\"name\":\"F\",\"phone\":\"+86 138 0000 0000\",\"email\":\"f@example.com\"}}" \
    "http://127.0.0.1:$proxy_port/v1/hotels/U-0/reservations") == 201 ]]; do sleep 0.02; done
booked=$(date +%s.%N)
python3 -c "import sys; d,s,b=map(float,sys.argv[1:]); print(f'failover: standby serving {s-d:.2f} s, booking through the proxy {b-d:.2f} s after the kill')" "$died" "$serving" "$booked" >"$out/failover.txt"

python3 - "$out" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
rows = {}
print(f"{'run':<8} {'req/s':>8} {'p50 µs':>8} {'p99 µs':>8}  check")
for name in ["single", "async", "sync", "haproxy"]:
    r = json.loads((out / f"{name}.json").read_text())
    lat = r["overall"]["latency"]
    check = r.get("check")
    ok = "-" if check is None else ("ok" if check.get("ok") else "FAILED")
    rows[name] = r["throughput_rps"]
    print(f"{name:<8} {r['throughput_rps']:>8.0f} {lat['p50_us']:>8} {lat['p99_us']:>8}  {ok}")
for name in ["async", "sync", "haproxy"]:
    print(f"{name} / single = {rows[name] / rows['single']:.2f}")
print((out / "failover.txt").read_text().strip())
PY
