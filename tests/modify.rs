//! Modifying reservations through the real binary: in place, into another room, a race for
//! the last free night, paid reservations, and durability across a kill -9.

use serde_json::{json, Value};

use crate::harness::{booking, client, hotel, pay, plus, send, today, Server};

/// Books `[arrival + a, arrival + b)` (days from tomorrow) in `hotel_id`, in `room` if
/// given; the 201 body.
async fn book(
    c: &reqwest::Client,
    s: &Server,
    hotel_id: &str,
    a: i64,
    b: i64,
    room: Option<&str>,
) -> Value {
    let first = plus(today("UTC"), 1);
    let mut body = booking(plus(first, a), plus(first, b));
    if let Some(room) = room {
        body["room"] = json!(room);
    }
    let (status, r, _) = send(
        c.post(s.url(&format!("/v1/hotels/{hotel_id}/reservations")))
            .json(&body),
    )
    .await;
    assert_eq!(status, 201, "{r}");
    r
}

/// `arrival + days` (days from tomorrow) as text.
fn day(days: i64) -> String {
    plus(plus(today("UTC"), 1), days).to_string()
}

async fn modify(c: &reqwest::Client, s: &Server, r: &Value, body: Value) -> (u16, Value) {
    let id = r["id"].as_str().unwrap();
    let (status, body, _) = send(
        c.post(s.url(&format!("/v1/reservations/{id}/modify")))
            .json(&body),
    )
    .await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modifications_move_nights_in_one_step_and_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    hotel(&c, &s, "M1", "UTC", 2).await;
    // A holds day 0 in room 1; B holds day 1 in room 1, so A cannot grow there.
    let a = book(&c, &s, "M1", 0, 1, Some("1")).await;
    let b = book(&c, &s, "M1", 1, 2, Some("1")).await;

    // Extended by a night: room 1 cannot, room 2 takes the whole new stay.
    let (status, r) = modify(&c, &s, &a, json!({"departure": day(2)})).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (r["room"].as_str(), r["nights"].as_u64()),
        (Some("2"), Some(2))
    );
    assert_eq!(r["total"]["amount"], 20_000);
    assert_eq!(r["version"], 2);
    assert_eq!(
        r["hold_expires_at"], a["hold_expires_at"],
        "the hold keeps its deadline"
    );
    let entry = r["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(entry["action"], "modified");
    let fields: Vec<&str> = entry["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["departure", "room", "total"]);
    assert_eq!(entry["changes"][0]["from"], day(1));
    assert_eq!(entry["changes"][0]["to"], day(2));
    assert_eq!(entry["changes"][2]["to"]["amount"], 20_000);

    // Room 1's day 0 is free again: a booking of exactly that room and night succeeds.
    book(&c, &s, "M1", 0, 1, Some("1")).await;
    // Nothing free for day 1 any more (B in room 1, A in room 2): moving B's arrival is
    // fine in place, but A cannot take day 3 and day 4 if both rooms are held there.
    let (status, r) = modify(&c, &s, &b, json!({"departure": day(3)})).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["room"], "1");
    book(&c, &s, "M1", 3, 4, Some("1")).await;
    book(&c, &s, "M1", 3, 4, Some("2")).await;
    let (status, problem) = modify(&c, &s, &a, json!({"departure": day(4)})).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("sold_out")),
        "{problem}"
    );
    assert_eq!(problem["nights"], json!([day(3)]));
    // Bad input changes nothing.
    let (status, problem) =
        modify(&c, &s, &a, json!({"arrival": day(2), "departure": day(1)})).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("invalid_stay"))
    );
    let (status, problem) = modify(&c, &s, &a, json!({"guests": 3})).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, problem) = modify(&c, &s, &a, json!({"nights": 3})).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("invalid_request"))
    );
    let id = a["id"].as_str().unwrap();
    let (status, problem, _) = send(
        c.post(s.url(&format!("/v1/reservations/{id}/modify")))
            .header("if-match", "\"1\"")
            .json(&json!({"guests": 1})),
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (412, Some("version_mismatch"))
    );
    let (status, now) = modify(&c, &s, &a, json!({})).await;
    assert_eq!((status, now["version"].as_u64()), (200, Some(2)), "{now}");

    // Acknowledged is durable: after kill -9 the modification is there, in room 2.
    let data = s.data_dir.clone();
    s.kill();
    let s = Server::start(&data, &[]);
    let (status, r, _) = send(c.get(s.url(&format!("/v1/reservations/{id}")))).await;
    assert_eq!(status, 200);
    assert_eq!(
        (r["room"].as_str(), r["departure"].as_str()),
        (Some("2"), Some(day(2).as_str()))
    );
    assert_eq!(
        r["history"].as_array().unwrap().last().unwrap()["action"],
        "modified"
    );
    // And the rooms' nights are as they were acknowledged: days 0 and 1 held in both rooms
    // (A in 2; the later booking and B in 1), day 2 only in room 1 (B).
    for (d, free) in [(0, 0), (1, 0), (2, 1)] {
        let (status, rooms, _) = send(c.get(s.url(&format!(
            "/v1/hotels/M1/availability?arrival={}&departure={}&guests=1",
            day(d),
            day(d + 1)
        ))))
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            rooms["room_types"][0]["available"], free,
            "day {d}: {rooms}"
        );
    }
}

/// Two clients extend into the same last free night: exactly one gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_modifications_racing_for_the_last_night_give_it_to_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    for round in 0..5 {
        let hotel_id = format!("R{round}");
        hotel(&c, &s, &hotel_id, "UTC", 1).await;
        // One room: A on day 0, B on day 2; day 1 is the last free night.
        let a = book(&c, &s, &hotel_id, 0, 1, None).await;
        let b = book(&c, &s, &hotel_id, 2, 3, None).await;
        let (first, second) = tokio::join!(
            modify(&c, &s, &a, json!({"departure": day(2)})),
            modify(&c, &s, &b, json!({"arrival": day(1)})),
        );
        let mut statuses = [first.0, second.0];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "{first:?} {second:?}");
        let loser = if first.0 == 409 { &first.1 } else { &second.1 };
        assert_eq!(loser["code"], "sold_out");
        assert_eq!(loser["nights"], json!([day(1)]));
        // The room's calendar holds day 1 once.
        let (status, rooms, _) = send(c.get(s.url(&format!(
            "/v1/hotels/{hotel_id}/availability?arrival={}&departure={}&guests=1",
            day(1),
            day(2)
        ))))
        .await;
        assert_eq!(
            (status, &rooms["room_types"][0]["available"]),
            (200, &json!(0))
        );
    }
}

/// A paid reservation keeps its total: a modification that would change it is refused;
/// one that does not (new contact details) goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_reservation_changes_only_what_keeps_its_total() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    hotel(&c, &s, "P1", "UTC", 2).await;
    let a = book(&c, &s, "P1", 0, 2, None).await;
    pay(&c, &s, &a).await;
    let (status, problem) = modify(&c, &s, &a, json!({"departure": day(3)})).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("total_change_unsupported")),
        "{problem}"
    );
    let guest =
        json!({"name": "Han Meimei", "phone": "+86 139 0000 0000", "email": "han@example.com"});
    let (status, r) = modify(&c, &s, &a, json!({"guest": guest})).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (r["status"].as_str(), r["version"].as_u64()),
        (Some("confirmed"), Some(3))
    );
    assert_eq!(r["guest"]["name"], "Han Meimei");
    assert_eq!(r["total"], a["total"]);
}
