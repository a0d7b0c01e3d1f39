#!/usr/bin/env python3
"""Latency of a booking that needs a rearrangement against a plain one (issue #16).

Against a running server (no API keys, on loopback) on PORT: two hotels of two rooms; in
FRAG, thirty times over, a night booked in each room on consecutive nights (out-of-order
ranges steer the engine's choice, so neither is pinned), then the two nights across both,
which moves one of them; in FREE the same two-night stays, which need no move. Prints the
medians and p90s, one request at a time on a new connection each.

    scripts/bench-rearrange-latency.py PORT
"""
import sys, time
from latency_client import Client, ms
api = Client(int(sys.argv[1]))
api.hotels(("FRAG", 2), ("FREE", 2))
rearranged, plain = [], []
for k in range(30):
    a = 1 + 3 * k
    api.beside("2", a); api.beside("1", a + 1)
    t = time.perf_counter(); s, b = api.single("FRAG", a, a + 2); rearranged.append(time.perf_counter() - t)
    assert s == 201, b
    t = time.perf_counter(); s, b = api.single("FREE", a, a + 2); plain.append(time.perf_counter() - t)
    assert s == 201, b
print(f"30 bookings each, one at a time over HTTP (a new connection each): plain {ms(plain)}; rearranged (one move) {ms(rearranged)}")
