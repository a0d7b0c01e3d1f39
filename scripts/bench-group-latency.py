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
for h, rooms in (("GRP", 200), ("FRAG", 2)):
    put(f"/v1/hotels/{h}", {"name": h, "time_zone": "UTC", "currency": "CNY"})
    put(f"/v1/hotels/{h}/room-types/STD", {"name": "S", "capacity": 2, "base_rate": 10000})
    for n in range(1, rooms + 1):
        put(f"/v1/hotels/{h}/rooms/{n}", {"room_type": "STD"})
def group(h, a, b, n): return call("POST", f"/v1/hotels/{h}/bookings", {"arrival": day(a), "departure": day(b), "guest": guest, "rooms": [{"room_type": "STD", "guests": 1}] * n})
def single(h, a, b): return call("POST", f"/v1/hotels/{h}/reservations", {"room_type": "STD", "arrival": day(a), "departure": day(b), "guests": 1, "guest": guest})
def beside(blocked, n):
    s, b = call("POST", f"/v1/hotels/FRAG/rooms/{blocked}/out-of-order", {"from": day(n), "to": day(n + 1), "reason": "x"}); assert s == 200, b
    s, b = single("FRAG", n, n + 1); assert s == 201, b
    s, b = call("DELETE", f"/v1/hotels/FRAG/rooms/{blocked}/out-of-order/{day(n)}"); assert s == 200, b
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
ms = lambda xs: f"median {statistics.median(xs)*1e3:.2f} ms, p90 {sorted(xs)[int(len(xs)*0.9)]*1e3:.2f} ms"
print(f"30 each, one request at a time over HTTP: three rooms in one booking {ms(groups)}; "
      f"three single bookings one after another {ms(singles)}; a one-room booking that moves one reservation {ms(rearranged)}")
