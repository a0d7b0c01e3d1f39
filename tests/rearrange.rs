//! No sellable stay refused (issue #16), through the real binary: a stay no single room can
//! take is booked by moving another reservation of the type, in one journaled change that
//! survives a kill -9; pinned reservations never move.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{booking, client, hotel, plus, send, today, Server};

/// `tomorrow + days` as text.
fn day(days: i64) -> String {
    plus(plus(today("UTC"), 1), days).to_string()
}

/// Books `[day(a), day(b))` in hotel `h` (in `room` if given); the status and body.
async fn book(
    c: &reqwest::Client,
    s: &Server,
    h: &str,
    a: i64,
    b: i64,
    room: Option<&str>,
) -> (u16, Value) {
    let first = plus(today("UTC"), 1);
    let mut body = booking(plus(first, a), plus(first, b));
    if let Some(room) = room {
        body["room"] = json!(room);
    }
    let (status, r, _) = send(
        c.post(s.url(&format!("/v1/hotels/{h}/reservations")))
            .json(&body),
    )
    .await;
    (status, r)
}

/// Takes room `n` of `h` out of order for `day(a)`, books `[day(a), day(a + 1))` (so it
/// lands in the other room, unpinned), and puts the room back in order: the engine's
/// own choice, made deterministic.
async fn book_elsewhere(c: &reqwest::Client, s: &Server, h: &str, n: &str, a: i64) -> Value {
    let (status, body, _) = send(
        c.post(s.url(&format!("/v1/hotels/{h}/rooms/{n}/out-of-order")))
            .json(&json!({"from": day(a), "to": day(a + 1), "reason": "paint"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, r) = book(c, s, h, a, a + 1, None).await;
    assert_eq!(status, 201, "{r}");
    assert_ne!(r["room"], n, "{r}");
    assert_eq!(r["pinned"], false);
    let (status, body, _) =
        send(c.delete(s.url(&format!("/v1/hotels/{h}/rooms/{n}/out-of-order/{}", day(a))))).await;
    assert_eq!(status, 200, "{body}");
    r
}

async fn availability(c: &reqwest::Client, s: &Server, h: &str, a: i64, b: i64) -> u64 {
    let (status, body, _) = send(c.get(s.url(&format!(
        "/v1/hotels/{h}/availability?arrival={}&departure={}&guests=1",
        day(a),
        day(b)
    ))))
    .await;
    assert_eq!(status, 200, "{body}");
    body["room_types"][0]["available"]
        .as_u64()
        .expect("available")
}

/// Of two reservations as they were (`first`, `second`), the one that is in another room
/// now, as it is now; fails unless exactly one moved.
async fn the_one_moved(c: &reqwest::Client, s: &Server, first: &Value, second: &Value) -> Value {
    let (a, b) = (
        get(c, s, &first["id"]).await,
        get(c, s, &second["id"]).await,
    );
    let mut moved: Vec<Value> = [(first, &a), (second, &b)]
        .into_iter()
        .filter(|(before, now)| before["room"] != now["room"])
        .map(|(_, now)| now.clone())
        .collect();
    assert_eq!(moved.len(), 1, "{a}\n{b}");
    moved.remove(0)
}

async fn get(c: &reqwest::Client, s: &Server, id: &Value) -> Value {
    let (status, r, _) =
        send(c.get(s.url(&format!("/v1/reservations/{}", id.as_str().unwrap())))).await;
    assert_eq!(status, 200, "{r}");
    r
}

/// The example: two rooms, a night booked in each on consecutive nights, then a
/// two-night stay across both. Availability says 1, the stay books, the other guest moves
/// (told by `reservation.moved`, price unchanged), and all of it survives a kill -9.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stay_no_single_room_can_take_books_by_moving_another() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    hotel(&c, &s, "R1", "UTC", 2).await;
    let first = book_elsewhere(&c, &s, "R1", "2", 0).await; // day 0 in room 1
    let second = book_elsewhere(&c, &s, "R1", "1", 1).await; // day 1 in room 2
    assert_eq!(
        (first["room"].as_str(), second["room"].as_str()),
        (Some("1"), Some("2"))
    );
    assert_eq!(
        availability(&c, &s, "R1", 0, 2).await,
        1,
        "a free room every night"
    );

    let (status, stay) = book(&c, &s, "R1", 0, 2, None).await;
    assert_eq!(status, 201, "{stay}");
    assert_eq!(stay["nights"], 2);
    assert_eq!(stay["total"]["amount"], 20_000);
    assert_eq!(availability(&c, &s, "R1", 0, 2).await, 0);

    // Exactly one of the two moved, whole, to the other room; price and status kept.
    let m = &the_one_moved(&c, &s, &first, &second).await;
    assert_eq!(m["version"], 2);
    assert_eq!(m["total"]["amount"], 10_000);
    assert_eq!(m["status"], "pending_payment");
    assert_eq!(m["moves"].as_array().map(Vec::len), Some(1));
    assert_eq!(m["pinned"], false);
    assert_ne!(stay["room"], m["room"]);
    let (a, b) = (
        get(&c, &s, &first["id"]).await,
        get(&c, &s, &second["id"]).await,
    );
    assert_eq!(
        a["room"], b["room"],
        "both one-night stays share the other room now"
    );

    // The stream: the moved guest's `reservation.moved`, then the booking with its moves.
    let events = read_events(&s, "R1", |text| {
        text.find("\"rearranged\"")
            .is_some_and(|i| text[i..].contains("\n\n"))
    })
    .await;
    let moved_event = events
        .iter()
        .find(|(name, _)| name == "reservation.moved")
        .map(|(_, d)| d)
        .expect("a reservation.moved event");
    assert_eq!(moved_event["reservation_id"], m["id"]);
    assert_eq!(moved_event["room"], m["room"]);
    assert_eq!(moved_event["rearranged_for"], stay["id"]);
    let created = events
        .iter()
        .filter(|(name, _)| name == "reservation.created")
        .map(|(_, d)| d)
        .find(|d| d["reservation_id"] == stay["id"])
        .expect("the booking's reservation.created");
    assert_eq!(created["rearranged"][0]["reservation_id"], m["id"]);

    // kill -9: the moves and the booking come back together.
    s.kill();
    let s = Server::start(dir.path(), &[]);
    let after = get(&c, &s, &m["id"]).await;
    assert_eq!(
        (after["room"].clone(), after["version"].clone()),
        (m["room"].clone(), json!(2))
    );
    assert_eq!(get(&c, &s, &stay["id"]).await["room"], stay["room"]);
    assert_eq!(availability(&c, &s, "R1", 0, 2).await, 0);
}

/// Pinned reservations never move: booked with an explicit room, or moved by the staff.
/// Availability still counts the stay (a free room every night), the booking is refused
/// `sold_out` and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_reservations_stay_where_people_put_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    hotel(&c, &s, "R2", "UTC", 2).await;
    let (status, chosen) = book(&c, &s, "R2", 0, 1, Some("1")).await;
    assert_eq!(status, 201, "{chosen}");
    assert_eq!(chosen["pinned"], true, "booked with an explicit room");
    // Placed by the engine in room 1 (room 2 blocked), then moved to 2 by the staff.
    let placed = book_elsewhere(&c, &s, "R2", "2", 1).await;
    assert_eq!(placed["room"], "1");
    let (status, moved, _) = send(
        c.post(s.url(&format!(
            "/v1/reservations/{}/move",
            placed["id"].as_str().unwrap()
        )))
        .json(&json!({"room": "2"})),
    )
    .await;
    assert_eq!(status, 409, "a pending hold cannot be moved: {moved}");
    // Pay it first (a move needs a confirmed reservation), then move it.
    crate::harness::pay(&c, &s, &placed).await;
    let (status, moved, _) = send(
        c.post(s.url(&format!(
            "/v1/reservations/{}/move",
            placed["id"].as_str().unwrap()
        )))
        .json(&json!({"room": "2"})),
    )
    .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["pinned"], true, "moved by the staff");

    assert_eq!(availability(&c, &s, "R2", 0, 2).await, 1);
    let (status, refused) = book(&c, &s, "R2", 0, 2, None).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["code"], "sold_out");
    assert_eq!(get(&c, &s, &chosen["id"]).await["room"], "1");
    assert_eq!(get(&c, &s, &placed["id"]).await["room"], "2");
}

/// Reads `GET /v1/hotels/{h}/events` from the start of its window until `done` holds for
/// what was read; each event's name and data.
async fn read_events(s: &Server, h: &str, done: impl Fn(&str) -> bool) -> Vec<(String, Value)> {
    let c = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut res = c
        .get(s.url(&format!("/v1/hotels/{h}/events")))
        .header("last-event-id", "0")
        .send()
        .await
        .expect("stream opens");
    assert_eq!(res.status(), 200);
    let mut text = String::new();
    while !done(&text) {
        let chunk = tokio::time::timeout(Duration::from_secs(10), res.chunk())
            .await
            .expect("events in time")
            .expect("stream");
        text.push_str(&String::from_utf8_lossy(&chunk.expect("stream open")));
    }
    text.split("\n\n")
        .filter_map(|block| {
            let name = block.lines().find_map(|l| l.strip_prefix("event:"))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data:"))?;
            Some((
                name.trim().to_owned(),
                serde_json::from_str(data.trim()).ok()?,
            ))
        })
        .collect()
}

/// A modification no single room can take is made by moving another reservation, in one
/// journaled change: two rooms, a night in each on consecutive nights, and a third
/// reservation later on modified to both nights; the moved guest is told, the modified one
/// gets a `reservation.modified` listing the move, and all of it survives a kill -9.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modification_no_single_room_can_take_moves_another() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    hotel(&c, &s, "R4", "UTC", 2).await;
    let first = book_elsewhere(&c, &s, "R4", "2", 0).await; // day 0 in room 1
    let second = book_elsewhere(&c, &s, "R4", "1", 1).await; // day 1 in room 2
    let (status, later) = book(&c, &s, "R4", 4, 5, None).await;
    assert_eq!(status, 201, "{later}");
    let (status, modified, _) = send(
        c.post(s.url(&format!(
            "/v1/reservations/{}/modify",
            later["id"].as_str().unwrap()
        )))
        .json(&json!({"arrival": day(0), "departure": day(2)})),
    )
    .await;
    assert_eq!(status, 200, "{modified}");
    assert_eq!(
        (modified["arrival"].as_str(), modified["nights"].as_u64()),
        (Some(day(0).as_str()), Some(2))
    );
    assert_eq!(modified["version"], 2);
    assert_eq!(availability(&c, &s, "R4", 0, 2).await, 0);
    let m = &the_one_moved(&c, &s, &first, &second).await;
    assert_eq!(
        (m["version"].clone(), m["pinned"].clone()),
        (json!(2), json!(false))
    );
    assert_ne!(m["room"], modified["room"]);

    let events = read_events(&s, "R4", |text| {
        text.find("\"rearranged\"")
            .is_some_and(|i| text[i..].contains("\n\n"))
    })
    .await;
    let moved_event = events
        .iter()
        .find(|(name, _)| name == "reservation.moved")
        .map(|(_, d)| d)
        .expect("a reservation.moved event");
    assert_eq!(moved_event["reservation_id"], m["id"]);
    assert_eq!(moved_event["rearranged_for"], later["id"]);
    let record = events
        .iter()
        .find(|(name, d)| name == "reservation.modified" && d["reservation_id"] == later["id"])
        .map(|(_, d)| d)
        .expect("the reservation.modified");
    assert_eq!(record["rearranged"][0]["reservation_id"], m["id"]);

    s.kill();
    let s = Server::start(dir.path(), &[]);
    let after = get(&c, &s, &later["id"]).await;
    assert_eq!(
        (after["room"].clone(), after["version"].clone()),
        (modified["room"].clone(), json!(2))
    );
    assert_eq!(get(&c, &s, &m["id"]).await["room"], m["room"]);
    assert_eq!(availability(&c, &s, "R4", 0, 2).await, 0);
}
