#!/usr/bin/env bash
# The HTTP runs of BENCHMARKS.md ((a)–(c), (g), (h) and server CPU per request): a release
# server on loopback and innkeep-load against it, one JSON report per run in OUT, then a
# summary table.
#
#   cargo build --release --bin innkeep -p innkeep
#   cargo build --release -p innkeep-benches --bins
#   scripts/bench-http.sh [OUT_DIR] [TARGET_DIR]     # defaults: /tmp/innkeep-bench, target
#
# wrk (Debian's package) is installed with apt-get when missing: (a) and (h) are measured
# with it too.
#
# Every run is 10 s on a fresh server and data dir, closed loop with 64 connections unless
# said otherwise; the server and the generator share the machine. Traffic goes only to
# 127.0.0.1. LOAD_BIN overrides the generator (to drive an older server with this one).
# Server CPU per request (utime + stime from /proc) comes from two runs of their own, a
# booking one and a /healthz one, measured after a warm-up run that did the setup and
# without the closing check, so only the measured requests are counted.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-/tmp/innkeep-bench}"
target="${2:-target}"
bin="$target/release/innkeep"
load_bin="${LOAD_BIN:-$target/release/innkeep-load}"
duration="${BENCH_DURATION:-10s}"
mkdir -p "$out"
# wrk (for (a) as issue #13 measured it): Debian's package, installed when missing.
if ! command -v wrk >/dev/null 2>&1; then
    as_root=()
    [[ "$(id -u)" -eq 0 ]] || as_root=(sudo)
    ${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends wrk
fi
# The server logs its warnings here, so a run that goes wrong says why.
BENCH_PORT="${BENCH_PORT:-18181}" BENCH_SERVER_LOG=warn
# shellcheck source=bench-lib.sh
source scripts/bench-lib.sh
start() { serve "$bin" "$@" || exit 1; }
# CPU seconds the server has used so far.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$server_pid/stat"; }
stop() { unserve; }
trap 'kill -TERM $server_pid 2>/dev/null || true' EXIT
run() {
    local name=$1
    shift
    "$load_bin" --target "http://127.0.0.1:$port" --payment-secret $secret \
        --connections "${connections:-64}" --duration "$duration" --quiet --json "$@" \
        >"$out/$name.json"
}
book=(--setup --room-types 4 --horizon-days 700 --stay-nights 1-3 --mix book=100)
hot=(--hot-share 0.9 --hot-room-type)

# Every run on a fresh server and data dir. A server's throughput falls as its state grows,
# so runs sharing one server are not comparable and a ratio depends on their order
# (measured: a 4 000-room hot run after a uniform one in the same server answered 0.86–0.92
# of it, run before it 1.05–1.20).
fresh() {
    local name=$1 flag=$2
    shift 2
    if [[ -n "$flag" ]]; then start "$flag"; else start; fi
    run "$name" "$@"
    stop
}
# Server CPU per request: setup and warm-up in a first run, then a measured run.
cpu_run() {
    local name=$1
    shift
    start
    "$load_bin" --target "http://127.0.0.1:$port" --payment-secret $secret --connections 64 \
        --duration 2s --quiet --setup --no-check "$@" >/dev/null
    local before
    before=$(cpu)
    run "$name" --no-check "$@"
    echo "$before $(cpu)" >"$out/$name.cpu"
    stop
}
fresh health "" --setup --hotel-prefix HEALTH --rooms 10 --mix health=100 --no-check
fresh uniform "" --hotel-prefix U --rooms 1000 "${book[@]}"
fresh hot "" --hotel-prefix HOT --rooms 1000 "${book[@]}" "${hot[@]}"
fresh mix "" --setup --hotel-prefix MIX --rooms 1000 --room-types 4 --horizon-days 700
fresh uniform4k "" --hotel-prefix U4K --rooms 4000 "${book[@]}"
fresh hot4k "" --hotel-prefix HOT4K --rooms 4000 "${book[@]}" "${hot[@]}"
fresh nofsync --unsafe-no-fsync --hotel-prefix U --rooms 1000 "${book[@]}"
# (g) open loop at half of the uniform run's peak.
half=$(python3 -c "import json,sys; print(int(json.load(open(sys.argv[1]))['throughput_rps'] / 2))" "$out/uniform.json")
fresh open "" --hotel-prefix U --rooms 1000 "${book[@]}" --mode open --rate "$half"
# (h) 2 000 connections: clients that wait as Retry-After says, and clients that do not.
connections=2000 fresh c2000 "" --hotel-prefix U --rooms 1000 "${book[@]}" --honor-retry-after
connections=2000 fresh c2000raw "" --hotel-prefix U --rooms 1000 "${book[@]}"
cpu_run cpubook --hotel-prefix U --rooms 1000 --room-types 4 --horizon-days 700 \
    --stay-nights 1-3 --mix book=100
cpu_run cpuhealth --hotel-prefix HEALTH --rooms 10 --mix health=100
# (a) and the CPU per request again as issue #13 first measured them: wrk (2 threads, 64
# connections) instead of innkeep-load. wrk spends a fraction of innkeep-load's CPU per
# request (it parses no answer and keeps no books), so on a shared machine the ratio is
# nearer the server's own. The setup and a warm-up go through innkeep-load first.
wrk_run() {
    local name=$1 warmup=$2
    shift 2
    start
    # shellcheck disable=SC2086
    "$load_bin" --target "http://127.0.0.1:$port" --payment-secret $secret --connections 64 \
        --duration 2s --quiet --setup --no-check $warmup >/dev/null
    local before
    before=$(cpu)
    wrk -t2 -c"${connections:-64}" -d"$duration" --latency "$@" >"$out/$name.wrk"
    echo "$before $(cpu)" >"$out/$name.cpu"
    stop
}
wrk_run wrkhealth "--hotel-prefix HEALTH --rooms 10 --mix health=100" \
    "http://127.0.0.1:$port/healthz"
wrk_run wrkbook "--hotel-prefix U --rooms 1000 --room-types 4 --horizon-days 700 \
    --stay-nights 1-3 --mix book=100" -s scripts/wrk-book.lua "http://127.0.0.1:$port"
# (h) with wrk: 2 000 connections that wait as Retry-After says (see wrk-book.lua), against
# the 64-connection run above. wrk's CPU per request is small enough that the server, not
# the generator, decides the goodput.
connections=2000 wrk_run wrkc2000 "--hotel-prefix U --rooms 1000 --room-types 4 \
    --horizon-days 700 --stay-nights 1-3 --mix book=100" -s scripts/wrk-book.lua \
    "http://127.0.0.1:$port" -- honor-retry-after

python3 - "$out" <<'EOF'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
rows = {}
reports = {}
print(f"{'run':<10} {'req/s':>9} {'p50':>7} {'p90':>7} {'p99':>7} {'p99.9':>7} {'max':>8} "
      f"{'good/s':>8} {'adm p99':>8} {'503':>7}  check")
for name in ["health", "uniform", "hot", "mix", "uniform4k", "hot4k", "nofsync", "open",
             "c2000", "c2000raw"]:
    r = json.loads((out / f"{name}.json").read_text())
    reports[name] = r
    lat = r["overall"]["latency"]
    admitted = r["overall"].get("admitted", {}).get("latency", {})
    check = r.get("check")
    ok = "-" if check is None else ("ok" if check.get("ok") else "FAILED")
    rows[name] = r["throughput_rps"]
    print(f"{name:<10} {r['throughput_rps']:>9.0f} {lat['p50_us']:>7} {lat['p90_us']:>7} "
          f"{lat['p99_us']:>7} {lat['p999_us']:>7} {lat['max_us']:>8} "
          f"{r.get('goodput_rps', 0):>8.0f} {admitted.get('p99_us', 0):>8} "
          f"{r.get('overloaded', 0):>7}  {ok}")
print(f"(a) uniform/health   {rows['uniform'] / rows['health']:.2f}")
print(f"(b) uniform/nofsync  {rows['uniform'] / rows['nofsync']:.2f}")
print(f"(c) hot/uniform      {rows['hot'] / rows['uniform']:.2f} (1 000 rooms), "
      f"{rows['hot4k'] / rows['uniform4k']:.2f} (4 000 rooms)")
o = reports["open"]["overall"]["latency"]
print(f"(g) open loop at {reports['open']['throughput_rps']:.0f}/s: p50 {o['p50_us']} µs, "
      f"p99 {o['p99_us']} µs")
peak = reports["uniform"]["goodput_rps"]
for name in ["c2000", "c2000raw"]:
    r = reports[name]
    print(f"(h) {name}: goodput {r['goodput_rps'] / peak:.2f} of the 64-connection peak, "
          f"admitted p99 {r['overall']['admitted']['latency']['p99_us']} µs, "
          f"{r['overloaded']} answered 503 overloaded")
cpu = {}
for name in ["cpubook", "cpuhealth"]:
    r = json.loads((out / f"{name}.json").read_text())
    before, after = map(float, (out / f"{name}.cpu").read_text().split())
    cpu[name] = (after - before) * 1e6 / max(r["requests"], 1)
print(f"server CPU per request: durable booking {cpu['cpubook']:.1f} µs, "
      f"/healthz {cpu['cpuhealth']:.1f} µs")
def own(name):
    us = json.loads((out / f"{name}.json").read_text()).get("own_cpu_us_per_request")
    return "?" if us is None else f"{us:.1f} µs"
print(f"innkeep-load's own CPU per request: booking {own('cpubook')}, /healthz "
      f"{own('cpuhealth')}, booking at 2 000 connections {own('c2000')}")
import re
wrk = {}
good = {}
for name in ["wrkbook", "wrkhealth", "wrkc2000"]:
    text = (out / f"{name}.wrk").read_text()
    rps = float(re.search(r"Requests/sec:\s*([0-9.]+)", text).group(1))
    total = int(re.search(r"(\d+) requests in", text).group(1))
    failed = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    failed = int(failed.group(1)) if failed else 0
    before, after = map(float, (out / f"{name}.cpu").read_text().split())
    wrk[name] = rps
    secs = float(re.search(r"requests in ([0-9.]+)(m?s)", text).group(1))
    good[name] = (total - failed) / secs
    print(f"wrk {name}: {rps:.0f} req/s, {total} requests, {failed} not 2xx, "
          f"server CPU {(after - before) * 1e6 / max(total, 1):.1f} µs per request")
print(f"(a) with wrk: uniform/health {wrk['wrkbook'] / wrk['wrkhealth']:.2f}")
admitted = re.search(r"Admitted p99: (\d+) us", (out / "wrkc2000.wrk").read_text()).group(1)
print(f"(h) with wrk, 2 000 connections honouring Retry-After: goodput "
      f"{good['wrkc2000'] / good['wrkbook']:.2f} of the 64-connection run's, admitted p99 "
      f"{admitted} µs (refusals taken as faster than the admitted tail)")
EOF
