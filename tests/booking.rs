//! Booking under concurrency, idempotency, the reservation life cycle and hotel-local dates.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use crate::harness::{booking, client, hotel, pay, plus, send, today, Rng, Server};

const TZ: &str = "Asia/Shanghai";

/// 48 clients race for 5 rooms with overlapping stays. Nothing is released during the run,
/// so at the end: no room-night is held twice, availability per night is rooms minus
/// bookings, and every stay refused `sold_out` still has no free room.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_clients_never_double_sell() {
    const CLIENTS: u64 = 48;
    const ATTEMPTS: u64 = 8;
    const ROOMS: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    hotel(&c, &s, "RACE", TZ, ROOMS).await;
    let first = plus(today(TZ), 1);

    let mut tasks = Vec::new();
    for client_no in 0..CLIENTS {
        let c = c.clone();
        let url = s.url("/v1/hotels/RACE/reservations");
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((client_no + 1) * 0x1000_0001));
            let mut outcomes = Vec::new();
            for _ in 0..ATTEMPTS {
                let arrival = plus(first, rng.below(6) as i64);
                let departure = plus(arrival, 1 + rng.below(3) as i64);
                let (status, body, _) = send(c.post(&url).json(&booking(arrival, departure))).await;
                outcomes.push((status, body, arrival, departure));
            }
            outcomes
        }));
    }
    let mut booked: Vec<Value> = Vec::new();
    let mut refused = Vec::new();
    for t in tasks {
        for (status, body, arrival, departure) in t.await.unwrap() {
            match status {
                201 => booked.push(body),
                409 => {
                    assert_eq!(body["code"], "sold_out", "{body}");
                    refused.push((arrival, departure));
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
    }
    assert!(
        !booked.is_empty() && !refused.is_empty(),
        "the race had winners and losers"
    );

    // No (room, night) is held by two reservations.
    let mut held: HashMap<(String, jiff::civil::Date), String> = HashMap::new();
    for r in &booked {
        let arrival: jiff::civil::Date = r["arrival"].as_str().unwrap().parse().unwrap();
        let departure: jiff::civil::Date = r["departure"].as_str().unwrap().parse().unwrap();
        let mut night = arrival;
        while night < departure {
            let key = (r["room"].as_str().unwrap().to_owned(), night);
            if let Some(other) = held.insert(key.clone(), r["id"].as_str().unwrap().to_owned()) {
                panic!("{key:?} sold to {other} and {}", r["id"]);
            }
            night = plus(night, 1);
        }
    }

    // Availability per night equals rooms minus bookings on that night.
    for offset in 0..9 {
        let night = plus(first, offset);
        let sold = held.keys().filter(|(_, n)| *n == night).count();
        let (status, body, _) = send(c.get(s.url(&format!(
            "/v1/hotels/RACE/availability?arrival={night}&departure={}&guests=1",
            plus(night, 1)
        ))))
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["room_types"][0]["available"].as_u64().unwrap() as usize,
            ROOMS - sold,
            "night {night}"
        );
    }

    // Every refused stay really had no room free for all of its nights.
    let refused: HashSet<_> = refused.into_iter().collect();
    for (arrival, departure) in refused {
        let rooms_free = (1..=ROOMS).any(|room| {
            let mut night = arrival;
            while night < departure {
                if held.contains_key(&(room.to_string(), night)) {
                    return false;
                }
                night = plus(night, 1);
            }
            true
        });
        assert!(
            !rooms_free,
            "{arrival}..{departure} was refused but a room was free"
        );
        let (_, body, _) = send(c.get(s.url(&format!(
            "/v1/hotels/RACE/availability?arrival={arrival}&departure={departure}"
        ))))
        .await;
        assert_eq!(body["room_types"][0]["available"], 0);
    }

    // Every acknowledged reservation reads back as it was created.
    for r in booked.iter().take(20) {
        let (status, got, _) =
            send(c.get(s.url(&format!("/v1/reservations/{}", r["id"].as_str().unwrap())))).await;
        assert_eq!(status, 200);
        for field in [
            "id",
            "room",
            "arrival",
            "departure",
            "status",
            "total",
            "version",
        ] {
            assert_eq!(got[field], r[field], "{field}");
        }
    }
}

/// Many retries with one `Idempotency-Key` racing create exactly one reservation, and all
/// of them get it; the key with another body is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_key_race_creates_one_reservation() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    hotel(&c, &s, "IDEM", TZ, 3).await;
    let arrival = plus(today(TZ), 2);
    let body = booking(arrival, plus(arrival, 2));
    let url = s.url("/v1/hotels/IDEM/reservations");

    let mut tasks = Vec::new();
    for _ in 0..24 {
        let (c, url, body) = (c.clone(), url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            send(
                c.post(&url)
                    .header("Idempotency-Key", "retry-42")
                    .json(&body),
            )
            .await
        }));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        let (status, body, _) = t.await.unwrap();
        assert_eq!(status, 201, "{body}");
        ids.insert(body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "one reservation for one key: {ids:?}");
    let (_, avail, _) = send(c.get(s.url(&format!(
        "/v1/hotels/IDEM/availability?arrival={arrival}&departure={}",
        plus(arrival, 2)
    ))))
    .await;
    assert_eq!(
        avail["room_types"][0]["available"], 2,
        "exactly one room taken"
    );

    let mut other = body.clone();
    other["guests"] = json!(1);
    let (status, problem, _) = send(
        c.post(&url)
            .header("Idempotency-Key", "retry-42")
            .json(&other),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(problem["code"], "idempotency_key_reused");

    // A retry after a restart still answers with the same reservation.
    drop(c);
    s.kill();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    let (status, again, _) = send(
        c.post(s.url("/v1/hotels/IDEM/reservations"))
            .header("Idempotency-Key", "retry-42")
            .json(&body),
    )
    .await;
    assert_eq!(status, 201, "{again}");
    assert!(ids.contains(again["id"].as_str().unwrap()));
}

/// book → pay → check in → check out, with ETags, If-Match and the room's status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservation_life_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    hotel(&c, &s, "LIFE", TZ, 2).await;
    let arrival = today(TZ);
    let (status, r, headers) = send(
        c.post(s.url("/v1/hotels/LIFE/reservations"))
            .json(&booking(arrival, plus(arrival, 2))),
    )
    .await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(headers["etag"], "\"1\"");
    assert_eq!(r["status"], "pending_payment");
    assert_eq!(r["total"], json!({"amount": 20000, "currency": "CNY"}));
    let id = r["id"].as_str().unwrap().to_owned();
    let path = |verb: &str| s.url(&format!("/v1/reservations/{id}/{verb}"));

    // Check-in needs a confirmed reservation.
    let (status, p, _) = send(c.post(path("check-in"))).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (409, Some("invalid_transition"))
    );

    pay(&c, &s, &r).await;
    let (_, r, headers) = send(c.get(s.url(&format!("/v1/reservations/{id}")))).await;
    assert_eq!(r["status"], "confirmed");
    assert_eq!(r["payment"]["status"], "succeeded");
    assert_eq!(headers["etag"], "\"2\"");

    // A stale If-Match changes nothing.
    let (status, p, _) = send(c.post(path("check-in")).header("If-Match", "\"1\"")).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (412, Some("version_mismatch"))
    );

    let (status, r, _) = send(c.post(path("check-in")).header("If-Match", "\"2\"")).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["status"], "checked_in");
    let (_, rooms, _) = send(c.get(s.url("/v1/hotels/LIFE/rooms"))).await;
    let room = rooms
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["number"] == r["room"])
        .unwrap()
        .clone();
    assert_eq!(room["occupancy"], "occupied");
    assert_eq!(room["reservation"], r["id"]);

    let (status, p, _) = send(c.post(path("cancel"))).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (409, Some("invalid_transition"))
    );

    let (status, r, _) = send(c.post(path("check-out"))).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["status"], "checked_out");
    let history: Vec<&str> = r["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["to"].as_str().unwrap())
        .collect();
    assert_eq!(
        history,
        ["pending_payment", "confirmed", "checked_in", "checked_out"]
    );
    let (_, rooms, _) = send(c.get(s.url("/v1/hotels/LIFE/rooms"))).await;
    let room = rooms
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["number"] == r["room"])
        .unwrap()
        .clone();
    assert_eq!(room["occupancy"], "vacant");
    assert_eq!(room["housekeeping"], "dirty");
    assert_eq!(room["reservation"], Value::Null);
    // Leaving on the first day gave the second night back.
    let (_, avail, _) = send(c.get(s.url(&format!(
        "/v1/hotels/LIFE/availability?arrival={}&departure={}",
        plus(arrival, 1),
        plus(arrival, 2)
    ))))
    .await;
    assert_eq!(avail["room_types"][0]["available"], 2);
}

/// Cancelling gives the nights back; an unpaid hold expires by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_expiry_release_nights() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[("INNKEEP_HOLD_SECONDS", "1")]);
    let c = client();
    hotel(&c, &s, "HOLD", TZ, 1).await;
    let arrival = plus(today(TZ), 3);
    let stay = booking(arrival, plus(arrival, 1));
    let url = s.url("/v1/hotels/HOLD/reservations");

    let (status, r, _) = send(c.post(&url).json(&stay)).await;
    assert_eq!(status, 201);
    let (status, p, _) = send(c.post(&url).json(&stay)).await;
    assert_eq!((status, p["code"].as_str()), (409, Some("sold_out")));
    let (status, cancelled, _) = send(c.post(s.url(&format!(
        "/v1/reservations/{}/cancel",
        r["id"].as_str().unwrap()
    ))))
    .await;
    assert_eq!(status, 200);
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["version"], 2);

    let (status, held, _) = send(c.post(&url).json(&stay)).await;
    assert_eq!(status, 201, "the cancelled nights are free again: {held}");
    // The hold lapses after a second; the expiry timer releases the night.
    let id = held["id"].as_str().unwrap().to_owned();
    let mut status_now = String::new();
    for _ in 0..100 {
        let (_, got, _) = send(c.get(s.url(&format!("/v1/reservations/{id}")))).await;
        status_now = got["status"].as_str().unwrap().to_owned();
        if status_now == "expired" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status_now, "expired");
    let (status, _, _) = send(c.post(&url).json(&stay)).await;
    assert_eq!(status, 201, "expired nights are free again");
}

/// A hotel at UTC+14 and one at UTC−11 each accept their own local today and refuse their
/// local yesterday, whatever the server's clock zone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn today_is_the_hotels_own() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    for (id, tz) in [("EAST", "Pacific/Kiritimati"), ("WEST", "Pacific/Niue")] {
        hotel(&c, &s, id, tz, 1).await;
        let url = s.url(&format!("/v1/hotels/{id}/reservations"));
        // Recompute "today" around each request: a local midnight between the two reads
        // would otherwise make the expectation wrong, not the server.
        loop {
            let local = today(tz);
            let (status, body, _) = send(c.post(&url).json(&booking(local, plus(local, 1)))).await;
            if today(tz) != local {
                continue;
            }
            assert_eq!(status, 201, "{id} today {local}: {body}");
            break;
        }
        loop {
            let local = today(tz);
            let yesterday = plus(local, -1);
            let (status, body, _) = send(c.post(&url).json(&booking(yesterday, local))).await;
            if today(tz) != local {
                continue;
            }
            assert_eq!(status, 422, "{id} yesterday {yesterday}: {body}");
            assert_eq!(body["code"], "invalid_stay");
            break;
        }
    }
    // The two hotels' todays differ: UTC+14 and UTC-11 are 25 hours apart, so at one
    // instant their dates are one day apart, or two during the hour after 10:00 UTC.
    let now = jiff::Timestamp::now();
    let date_in = |tz: &str| now.in_tz(tz).expect("zone").date();
    let apart = (date_in("Pacific/Kiritimati") - date_in("Pacific/Niue")).get_days();
    assert!(apart == 1 || apart == 2, "{apart} days apart");
}
