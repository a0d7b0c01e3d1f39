#!/usr/bin/env python3
"""Latency of a booking that needs a rearrangement against a plain one (issue #16).

Against a running server (no API keys, on loopback) on PORT: two hotels of two rooms; in
FRAG, thirty times over, a night booked in each room on consecutive nights (out-of-order
ranges steer the engine's choice, so neither is pinned), then the two nights across both,
which moves one of them; in FREE the same two-night stays, which need no move. Prints the
medians and p90s, one request at a time on a new connection each.

    scripts/bench-rearrange-latency.py PORT
"""
import json, sys, time, http.client, datetime, statistics
port = int(sys.argv[1])
def call(method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers={"content-type": "application/json"})
    r = c.getresponse(); data = r.read(); c.close()
    return r.status, (json.loads(data) if data else None)
def put(path, body):
    s, b = call("PUT", path, body); assert s in (200, 201), (path, s, b)
today = datetime.datetime.now(datetime.timezone.utc).date()
day = lambda n: (today + datetime.timedelta(days=n)).isoformat()
guest = {"name": "T", "phone": "+86 138 0000 0000", "email": "t@example.com"}
def booking(a, b): return {"room_type": "STD", "arrival": day(a), "departure": day(b), "guests": 1, "guest": guest}
for h, rooms in (("FRAG", 2), ("FREE", 2)):
    put(f"/v1/hotels/{h}", {"name": h, "time_zone": "UTC", "currency": "CNY"})
    put(f"/v1/hotels/{h}/room-types/STD", {"name": "S", "capacity": 2, "base_rate": 10000})
    for n in range(1, rooms + 1):
        put(f"/v1/hotels/{h}/rooms/{n}", {"room_type": "STD"})
def beside(blocked, n):
    s, b = call("POST", f"/v1/hotels/FRAG/rooms/{blocked}/out-of-order", {"from": day(n), "to": day(n + 1), "reason": "x"}); assert s == 200, b
    s, b = call("POST", "/v1/hotels/FRAG/reservations", booking(n, n + 1)); assert s == 201, b
    s, b = call("DELETE", f"/v1/hotels/FRAG/rooms/{blocked}/out-of-order/{day(n)}"); assert s == 200, b
rearranged, plain = [], []
for k in range(30):
    a = 1 + 3 * k
    beside("2", a); beside("1", a + 1)
    t = time.perf_counter(); s, b = call("POST", "/v1/hotels/FRAG/reservations", booking(a, a + 2)); rearranged.append(time.perf_counter() - t)
    assert s == 201, b
    t = time.perf_counter(); s, b = call("POST", "/v1/hotels/FREE/reservations", booking(a, a + 2)); plain.append(time.perf_counter() - t)
    assert s == 201, b
ms = lambda xs: f"median {statistics.median(xs)*1e3:.2f} ms, p90 {sorted(xs)[int(len(xs)*0.9)]*1e3:.2f} ms"
print(f"30 bookings each, one at a time over HTTP (a new connection each): plain {ms(plain)}; rearranged (one move) {ms(rearranged)}")
