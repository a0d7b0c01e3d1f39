#!/usr/bin/env bash
# Target (d) of two builds, alternating (BENCHMARKS.md): ROUNDS rounds, each running both
# `inprocess` examples once with ARGS (default `600000 2048 durable 4`), the order swapped
# every round. Prints each run's bookings/s and CPU µs per booking (all threads, shards,
# journal writer, caller), then each build's medians.
#
# On a shared VM every thread's CPU time swings with the host's load (the same binary
# spans ±20 % between runs, all threads together), so compare medians of many rounds (16
# take under two minutes). Dividing the shards' time by the journal writer's does not
# cancel the swing: the writer's time per booking falls when the shards are faster (more
# bookings per sync), so the ratio moves against the change.
#
#   scripts/bench-inprocess-ab.sh NEW/examples/inprocess OLD/examples/inprocess [ROUNDS [ARGS...]]
set -euo pipefail
new=$1
old=$2
rounds=${3:-8}
shift $(($# < 3 ? $# : 3))
args=("$@")
if [[ ${#args[@]} -eq 0 ]]; then
    args=(600000 2048 durable 4)
fi
runs=$(mktemp)
trap 'rm -f "$runs"' EXIT
for round in $(seq "$rounds"); do
    if ((round % 2)); then order=(new old); else order=(old new); fi
    for tag in "${order[@]}"; do
        if [[ $tag == new ]]; then bin=$new; else bin=$old; fi
        line=$("$bin" "${args[@]}" 2>/dev/null | tail -n 1)
        echo "$tag $line" >>"$runs"
        python3 - "$tag" "$line" <<'PY'
import json, sys
tag, r = sys.argv[1], json.loads(sys.argv[2])
t = r["cpu_us_per_booking_by_thread"]
print(f"{tag:<4} {r['bookings_per_s']:>8} /s  {r['cpu_us_per_booking']:5.2f} µs  shards "
      f"{t.get('actix-rt|system', 0):4.2f}  journal {t.get('innkeep-journal', 0):4.2f}  "
      f"caller {t.get('tokio-rt-worker', 0):4.2f}")
PY
    done
done
python3 - "$runs" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    tag, report = line.split(" ", 1)
    rows.setdefault(tag, []).append(json.loads(report))
for tag in ("new", "old"):
    runs = rows.get(tag, [])
    if not runs:
        continue
    thread = lambda r, name: r["cpu_us_per_booking_by_thread"].get(name, 0.0)
    med = lambda f: statistics.median(f(r) for r in runs)
    print(f"{tag}: medians of {len(runs)}: {med(lambda r: r['bookings_per_s']):.0f} /s, "
          f"{med(lambda r: r['cpu_us_per_booking']):.2f} µs, shards "
          f"{med(lambda r: thread(r, 'actix-rt|system')):.2f}, journal "
          f"{med(lambda r: thread(r, 'innkeep-journal')):.2f}, caller "
          f"{med(lambda r: thread(r, 'tokio-rt-worker')):.2f}")
PY
