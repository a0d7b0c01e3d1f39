"""What the latency scripts (`bench-group-latency.py`, `bench-rearrange-latency.py`)
share: one request at a time on a new connection to a server on loopback without API
keys, hotels of one type, the fragmenting step, and the summary of timings."""
import json, http.client, datetime, statistics

guest = {"name": "T", "phone": "+86 138 0000 0000", "email": "t@example.com"}
_today = datetime.datetime.now(datetime.timezone.utc).date()


def day(n):
    """The date `n` days after today (UTC), as the API writes it."""
    return (_today + datetime.timedelta(days=n)).isoformat()


class Client:
    def __init__(self, port):
        self.port = port

    def call(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port)
        c.request(method, path, body=json.dumps(body) if body is not None else None,
                  headers={"content-type": "application/json"})
        r = c.getresponse(); data = r.read(); c.close()
        return r.status, (json.loads(data) if data else None)

    def put(self, path, body):
        s, b = self.call("PUT", path, body); assert s in (200, 201), (path, s, b)

    def hotels(self, *sizes):
        """Creates each (hotel, rooms): one type STD, rooms numbered from 1."""
        for h, rooms in sizes:
            self.put(f"/v1/hotels/{h}", {"name": h, "time_zone": "UTC", "currency": "CNY"})
            self.put(f"/v1/hotels/{h}/room-types/STD", {"name": "S", "capacity": 2, "base_rate": 10000})
            for n in range(1, rooms + 1):
                self.put(f"/v1/hotels/{h}/rooms/{n}", {"room_type": "STD"})

    def single(self, h, a, b):
        """One room of STD in `h` from day `a` to day `b`."""
        return self.call("POST", f"/v1/hotels/{h}/reservations",
                         {"room_type": "STD", "arrival": day(a), "departure": day(b), "guests": 1, "guest": guest})

    def beside(self, blocked, n):
        """Books night `n` in FRAG's room other than `blocked` (out-of-order ranges steer
        the engine's choice, so the reservation is not pinned)."""
        s, b = self.call("POST", f"/v1/hotels/FRAG/rooms/{blocked}/out-of-order", {"from": day(n), "to": day(n + 1), "reason": "x"}); assert s == 200, b
        s, b = self.single("FRAG", n, n + 1); assert s == 201, b
        s, b = self.call("DELETE", f"/v1/hotels/FRAG/rooms/{blocked}/out-of-order/{day(n)}"); assert s == 200, b


def ms(xs):
    """Median and p90 of timings in seconds, in milliseconds."""
    return f"median {statistics.median(xs)*1e3:.2f} ms, p90 {sorted(xs)[int(len(xs)*0.9)]*1e3:.2f} ms"
