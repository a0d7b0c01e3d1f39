#!/usr/bin/env python3
"""Where a server's shard threads spend their time, by layer of the booking path
(BENCHMARKS.md, nineteenth session). Each sample of `perf script`'s output is counted once,
under the first layer (in the order of LAYERS) with a frame anywhere in its stack.

    perf record -F 999 --call-graph dwarf,16384 -o perf.data -p SERVER_PID -- sleep 3
    perf script -i perf.data --comm 'actix-rt|system' > perf.txt
    scripts/perf-layers.py perf.txt             # share of samples per layer
    scripts/perf-layers.py perf.txt saga 2      # the top stacks (2 frames deep) of one layer

Record while a booking run (`innkeep-load --mix book=100`) is under way, so the samples
are of bookings. Frames are matched by name, so a layer that inlines into another moves
with the compiler: compare two builds profiled the same way, not one build's shares with
an old table.
"""
import collections
import re
import signal
import sys

# (layer, pattern of a frame that puts a sample in it), first match wins: the booking's own
# layers before the ones every request passes through.
LAYERS = [
    ("resp_json", r"reservation_response"),
    ("req_json", r"ApiJson|BookRequestBody"),
    ("snapshot", r"SnapshotRoom|room::part"),
    ("room_reserve", r"Handler<innkeep_actors::protocol::Reserve>"),
    ("room_other", r"RoomActor as actix::handler"),
    ("saga", r"booking::run"),
    ("engine_glue", r"on_a_shard|book_inner|Engine::book"),
    ("handler", r"routes::reservations::book"),
    ("route_checks", r"route_checks"),
    ("observe", r"innkeep_http::observe"),
    ("reqid", r"request_id"),
    ("trace", r"tower_http::trace"),
    ("tcp_write", r"poll_flush|tcp_sendmsg|sendmsg|writev"),
    ("tcp_read", r"poll_read|recvfrom|tcp_recvmsg"),
    ("epoll", r"epoll_wait|ep_poll"),
    ("hyper", r"hyper::"),
    ("axum", r"axum::|tower::"),
    ("actix", r"actix::"),
    ("tokio", r"tokio::"),
    ("kernel_sched", r"schedule|finish_task_switch|futex"),
]

# A frame line of `perf script`: address, symbol (+offset), (object).
FRAME = re.compile(r"\s*[0-9a-f]+ (.*?)(\+0x[0-9a-f]+)? \((.*)\)$")


def samples(path):
    """Each sample's frames, innermost first."""
    out, cur = [], None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                if cur is not None:
                    out.append(cur)
                cur = None
                continue
            if cur is None:
                cur = []  # the sample's header line
                continue
            m = FRAME.match(line)
            if m:
                cur.append(m.group(1))
    if cur:
        out.append(cur)
    return out


def layer_of(stack):
    for name, pattern in LAYERS:
        if any(re.search(pattern, frame) for frame in stack):
            return name
    return "other"


def main():
    # Piped into `head`: stop quietly when it has read enough.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    all_samples = samples(sys.argv[1])
    if not all_samples:
        sys.exit("no samples in " + sys.argv[1])
    if len(sys.argv) > 2:
        want, depth = sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 2
        stacks = collections.Counter(
            " < ".join(frame[:70] for frame in s[:depth])
            for s in all_samples
            if layer_of(s) == want
        )
        for stack, n in stacks.most_common(25):
            print(f"{n:6} {stack}")
        return
    counts = collections.Counter(layer_of(s) for s in all_samples)
    print(f"{len(all_samples)} samples")
    for name, n in counts.most_common():
        print(f"{100 * n / len(all_samples):5.1f} % {name}")


if __name__ == "__main__":
    main()
