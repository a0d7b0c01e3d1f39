#!/usr/bin/env python3
"""Latency of a multi-room booking against single ones (issue #16).

Against a running server (no API keys, on loopback) on PORT: a hotel of 200 rooms of one
type; thirty times over, one booking of three rooms for a two-night stay, then three
single bookings of the same stay, one after another; and (in a hotel of two rooms kept
fragmented: a night booked in each room on consecutive nights) a one-room multi-room
booking of both nights, which moves one of them. Prints medians and p90s, one request at
a time on a new connection each.

    scripts/bench-group-latency.py PORT
"""
import sys, time
from latency_client import Client, day, guest, ms
api = Client(int(sys.argv[1]))
call = api.call
api.hotels(("GRP", 200), ("FRAG", 2))
def group(h, a, b, n): return call("POST", f"/v1/hotels/{h}/bookings", {"arrival": day(a), "departure": day(b), "guest": guest, "rooms": [{"room_type": "STD", "guests": 1}] * n})
single, beside = api.single, api.beside
groups, singles, rearranged = [], [], []
for k in range(30):
    a = 1 + 3 * k
    t = time.perf_counter(); s, b = group("GRP", a, a + 2, 3); groups.append(time.perf_counter() - t); assert s == 201, b
    t = time.perf_counter()
    for _ in range(3):
        s, b = single("GRP", a, a + 2); assert s == 201, b
    singles.append(time.perf_counter() - t)
    beside("2", a); beside("1", a + 1)
    t = time.perf_counter(); s, b = group("FRAG", a, a + 2, 1); rearranged.append(time.perf_counter() - t); assert s == 201, b
print(f"30 each, one request at a time over HTTP: three rooms in one booking {ms(groups)}; "
      f"three single bookings one after another {ms(singles)}; a one-room booking that moves one reservation {ms(rearranged)}")
