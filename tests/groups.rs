//! Multi-room bookings (issue #16) through the real binary: all or nothing when rooms are
//! short (and when two families race for the last rooms), one payment through the sandbox
//! provider confirming every room and a room cancelled alone refunded its own share, every
//! acknowledged booking whole after a kill -9 (and none half there), and the event stream
//! telling each reservation and the booking.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{client, hotel, plus, put_ok, send, today, try_send, Server};

/// Every hotel here is in UTC: `day(n)` is `n` days after tomorrow.
const TZ: &str = "UTC";

/// `tomorrow + days` as text.
fn day(days: i64) -> String {
    plus(plus(today(TZ), 1), days).to_string()
}

/// A booking of `[day(a), day(b))` with a line per room type in `rooms` (2 guests each,
/// the second room in the name of a guest of its own).
fn group(a: i64, b: i64, rooms: &[&str]) -> Value {
    let lines: Vec<Value> = rooms
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut line = json!({"room_type": t, "guests": 2});
            if i == 1 {
                line["guest"] = json!({"name": "Second Guest", "phone": "+86 139 0000 0000",
                    "email": "second@example.com"});
            }
            line
        })
        .collect();
    json!({
        "arrival": day(a),
        "departure": day(b),
        "guest": {"name": "Lead Guest", "phone": "+86 138 0000 0000", "email": "lead@example.com"},
        "rooms": lines,
    })
}

/// POSTs a booking to hotel `h` (with an `Idempotency-Key` if given); status and body.
async fn book(
    c: &reqwest::Client,
    s: &Server,
    h: &str,
    body: &Value,
    key: Option<&str>,
) -> (u16, Value) {
    let mut req = c
        .post(s.url(&format!("/v1/hotels/{h}/bookings")))
        .json(body);
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    let (status, body, _) = send(req).await;
    (status, body)
}

/// Rooms of `room_type` free on every night of `[day(a), day(b))` in hotel `h`.
async fn free(c: &reqwest::Client, s: &Server, h: &str, room_type: &str, a: i64, b: i64) -> u64 {
    let (status, body, _) = send(c.get(s.url(&format!(
        "/v1/hotels/{h}/availability?arrival={}&departure={}&guests=1",
        day(a),
        day(b)
    ))))
    .await;
    assert_eq!(status, 200, "{body}");
    body["room_types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["room_type"] == room_type)
        .and_then(|t| t["available"].as_u64())
        .unwrap_or_else(|| panic!("{room_type} in {body}"))
}

/// `GET /v1/bookings/{id}`, asserting a 200.
async fn get_booking(c: &reqwest::Client, s: &Server, id: &Value) -> Value {
    let id = id.as_str().unwrap();
    let (status, b, _) = send(c.get(s.url(&format!("/v1/bookings/{id}")))).await;
    assert_eq!(status, 200, "{b}");
    b
}

/// GETs booking `id` until `done` holds for it (at most 15 s); answers it.
async fn wait_booking(
    c: &reqwest::Client,
    s: &Server,
    id: &Value,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let b = get_booking(c, s, id).await;
        if done(&b) {
            return b;
        }
        assert!(Instant::now() < deadline, "{what}: {b:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The statuses of a booking's reservations, in its order.
fn statuses(b: &Value) -> Vec<String> {
    b["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_owned())
        .collect()
}

/// `ik` and the 32 hex digits of a reservation's (or booking's) id.
fn reference_of(id: &Value) -> String {
    format!(
        "ik{}",
        uuid::Uuid::parse_str(id.as_str().unwrap())
            .unwrap()
            .simple()
    )
}

/// The example: a family asks three rooms of a hotel with two free. 409
/// `sold_out` naming the type, and nothing held on any night; two rooms then book. And
/// two families racing for the same last two rooms: one gets both, the other none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_room_family_booking_against_two_free_rooms_holds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    hotel(&c, &s, "G1", TZ, 2).await;

    let (status, problem) = book(&c, &s, "G1", &group(0, 2, &["STD"; 3]), None).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["code"], "sold_out");
    assert_eq!(problem["room_types"], json!(["STD"]), "{problem}");
    for night in 0..2 {
        assert_eq!(
            free(&c, &s, "G1", "STD", night, night + 1).await,
            2,
            "night {night}"
        );
    }

    let (status, b) = book(&c, &s, "G1", &group(0, 2, &["STD"; 2]), None).await;
    assert_eq!(status, 201, "{b}");
    let mut rooms: Vec<&str> = b["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["room"].as_str().unwrap())
        .collect();
    rooms.sort_unstable();
    assert_eq!(rooms, ["1", "2"]);
    assert_eq!(free(&c, &s, "G1", "STD", 0, 2).await, 0);

    // Two families, the same two rooms, at once, a few times over: exactly one books,
    // the other holds nothing (no night sold twice, none left half-held).
    for round in 0..4 {
        let (a, b) = (3 + 2 * round, 4 + 2 * round);
        let body = group(a, b, &["STD"; 2]);
        let (first, second) = tokio::join!(
            book(&c, &s, "G1", &body, None),
            book(&c, &s, "G1", &body, None)
        );
        let mut codes = [first.0, second.0];
        codes.sort_unstable();
        assert_eq!(codes, [201, 409], "round {round}: {first:?} {second:?}");
        let loser = if first.0 == 409 { &first.1 } else { &second.1 };
        assert_eq!(loser["room_types"], json!(["STD"]), "{loser}");
        assert_eq!(free(&c, &s, "G1", "STD", a, b).await, 0);
    }
}

/// A server paying through the sandbox provider quickly and without injected faults.
fn sandbox_server(dir: &std::path::Path) -> Server {
    Server::start(
        dir,
        &[
            ("INNKEEP_PAYMENT_PROVIDER", "sandbox"),
            ("INNKEEP_PAYMENT_RECONCILE_EVERY_SECONDS", "1"),
            ("INNKEEP_PAYMENT_PENDING_THRESHOLD_SECONDS", "1"),
            ("INNKEEP_PAYMENT_BACKOFF_BASE_MS", "50"),
            ("INNKEEP_PAYMENT_SANDBOX_CHARGE_DELAY_MS", "300"),
            ("INNKEEP_PAYMENT_SANDBOX_DELAY_MS", "50"),
        ],
    )
}

/// The sandbox provider's books.
async fn books(c: &reqwest::Client, s: &Server) -> Value {
    let (status, ledger, _) = send(c.get(s.url("/v1/payments/sandbox/ledger"))).await;
    assert_eq!(status, 200, "{ledger}");
    ledger["ledger"].clone()
}

/// Cancels reservation `r` alone and waits until its share is refunded; answers it.
async fn cancel_and_refund(c: &reqwest::Client, s: &Server, r: &Value) -> Value {
    let id = r["id"].as_str().unwrap();
    let (status, cancelled, _) =
        send(c.post(s.url(&format!("/v1/reservations/{id}/cancel")))).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, now, _) = send(c.get(s.url(&format!("/v1/reservations/{id}")))).await;
        assert_eq!(status, 200, "{now}");
        if now["payment"]["status"] == "refunded" {
            return now;
        }
        assert!(Instant::now() < deadline, "share not refunded: {now:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A group's payment confirms all its rooms: the sandbox is asked for one charge, under
/// the booking's reference, for the sum of the rooms' totals; the guest pays it and its
/// callback confirms every reservation. A room cancelled alone afterwards gets exactly its
/// own share back from that charge, refunded under its own reference (so a second room
/// cancelled is a second refund, not taken for a repeat of the first), and the rest stays
/// confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_payment_confirms_all_its_rooms() {
    let dir = tempfile::tempdir().unwrap();
    let s = sandbox_server(dir.path());
    let c = client();
    hotel(&c, &s, "G2", TZ, 2).await;
    put_ok(
        &c,
        s.url("/v1/hotels/G2/room-types/FAM"),
        json!({"name": "Family", "capacity": 4, "base_rate": 25000}),
    )
    .await;
    put_ok(
        &c,
        s.url("/v1/hotels/G2/rooms/9"),
        json!({"room_type": "FAM"}),
    )
    .await;

    let (status, b) = book(&c, &s, "G2", &group(0, 2, &["STD", "FAM", "STD"]), None).await;
    assert_eq!(status, 201, "{b}");
    let reference = reference_of(&b["id"]);
    assert_eq!(b["payment"]["out_trade_no"], reference.as_str());
    let shares: Vec<i64> = b["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["payment"]["amount"]["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(shares, [20_000, 50_000, 20_000]);
    assert_eq!(b["payment"]["amount"]["amount"], 90_000);

    let paid = wait_booking(&c, &s, &b["id"], "paid by the sandbox", |b| {
        b["status"] == "confirmed"
    })
    .await;
    assert_eq!(statuses(&paid), ["confirmed"; 3]);
    assert_eq!(paid["payment"]["status"], "succeeded");
    for r in paid["reservations"].as_array().unwrap() {
        assert_eq!(r["payment"]["status"], "succeeded", "{r}");
        assert_eq!(r["payment"]["out_trade_no"], reference.as_str());
    }
    let ledger = books(&c, &s).await;
    let charges = ledger["charges"].as_array().unwrap();
    assert_eq!(charges.len(), 1, "one charge for the booking: {ledger:#}");
    assert_eq!(charges[0]["out_trade_no"], reference.as_str());
    assert_eq!(charges[0]["amount_minor"], 90_000);
    assert_eq!(charges[0]["state"], "captured");
    assert_eq!(ledger["captured_minor"], 90_000);
    assert_eq!(ledger["callbacks_rejected"], 0, "{ledger:#}");

    // The family room cancelled alone: its share comes back, the rest stays confirmed.
    let fam = &paid["reservations"][1];
    let fam = cancel_and_refund(&c, &s, fam).await;
    assert_eq!(fam["payment"]["refunds"][0]["amount"]["amount"], 50_000);
    let (status, detail, _) =
        send(c.get(s.url(&format!("/v1/payments/{}", reference_of(&fam["id"]))))).await;
    assert_eq!(status, 200, "{detail}");
    let events: Vec<&str> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "created",
            "succeeded",
            "cancelled_after_payment",
            "refunded"
        ]
    );
    let ledger = books(&c, &s).await;
    let charge = &ledger["charges"][0];
    assert_eq!(
        (charge["refunded_minor"].as_i64(), charge["state"].as_str()),
        (Some(50_000), Some("refunded")),
        "{ledger:#}"
    );
    assert_eq!(ledger["refunds"], 1);
    assert_eq!(ledger["net_captured_minor"], 40_000);
    let now = get_booking(&c, &s, &b["id"]).await;
    assert_eq!(now["status"], "confirmed", "the rest's status");
    assert_eq!(statuses(&now), ["confirmed", "cancelled", "confirmed"]);
    assert_eq!(now["payment"]["status"], "succeeded");

    // A second room cancelled alone: a refund of its own, not a repeat of the first.
    cancel_and_refund(&c, &s, &paid["reservations"][0]).await;
    let ledger = books(&c, &s).await;
    assert_eq!(ledger["refunds"], 2, "{ledger:#}");
    assert_eq!(ledger["refunded_minor"], 70_000);
    assert_eq!(ledger["net_captured_minor"], 20_000);
    assert_eq!(ledger["charges"].as_array().unwrap().len(), 1);
    let (status, ledger_all, _) = send(c.get(s.url("/v1/payments/sandbox/ledger"))).await;
    assert_eq!(status, 200);
    assert_eq!(
        ledger_all["supervisor"]["refunds_owed"], 0,
        "{ledger_all:#}"
    );
}

/// A reservation of a paid booking whose total rose pays its difference under its own
/// reference; cancelled after the booking's other rooms were refunded (the booking's
/// charge spent down to its share), it gets back all it paid: the difference from its own
/// charge, the rest from the booking's. Nothing stays owed, nothing is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_room_that_paid_a_difference_gets_it_all_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = sandbox_server(dir.path());
    let c = client();
    hotel(&c, &s, "G5", TZ, 2).await;
    let (status, b) = book(&c, &s, "G5", &group(0, 1, &["STD", "STD"]), None).await;
    assert_eq!(status, 201, "{b}");
    let paid = wait_booking(&c, &s, &b["id"], "paid by the sandbox", |b| {
        b["status"] == "confirmed"
    })
    .await;
    cancel_and_refund(&c, &s, &paid["reservations"][1]).await;
    let a = &paid["reservations"][0];
    let id = a["id"].as_str().unwrap();
    let (status, m, _) = send(
        c.post(s.url(&format!("/v1/reservations/{id}/modify")))
            .json(&json!({"departure": day(2)})),
    )
    .await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["balance_due"]["amount"], 10_000, "{m}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, now, _) = send(c.get(s.url(&format!("/v1/reservations/{id}")))).await;
        if now.get("balance_due").is_none() {
            break;
        }
        assert!(Instant::now() < deadline, "difference not paid: {now:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = cancel_and_refund(&c, &s, a).await;
    assert_eq!(
        r["payment"]["refunds"][0]["amount"]["amount"], 20_000,
        "{r:#}"
    );
    let ledger = books(&c, &s).await;
    assert_eq!(ledger["captured_minor"], 30_000, "{ledger:#}");
    assert_eq!(ledger["refunded_minor"], 30_000, "{ledger:#}");
    assert_eq!(ledger["net_captured_minor"], 0, "{ledger:#}");
    let (status, all, _) = send(c.get(s.url("/v1/payments/sandbox/ledger"))).await;
    assert_eq!(status, 200);
    assert_eq!(all["supervisor"]["refunds_owed"], 0, "{all:#}");
}

/// Held for the whole test: no hold lapses behind its back.
const LONG_HOLDS: &[(&str, &str)] = &[("INNKEEP_HOLD_SECONDS", "604800")];

/// A kill -9 right after a booking is acknowledged: after the restart it is there with
/// every reservation, as it was answered. Other bookings in flight at the kill are either
/// all there or not at all (never some of their rooms), and a retry with their key makes
/// or finds each exactly once. A few cycles, so the kill lands at different points.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_acknowledged_before_a_kill_9_is_there_whole_after_it() {
    const CYCLES: i64 = 4;
    const BOOKINGS: i64 = 6;
    const ROOMS: u64 = 3;
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), LONG_HOLDS);
    let c = client();
    hotel(&c, &s, "G3", TZ, ROOMS as usize).await;
    let (mut acknowledged, mut unanswered) = (0, 0);
    for cycle in 0..CYCLES {
        // Several two-room bookings, each for a night of its own, all at once; the server
        // is killed as soon as the first is acknowledged.
        let night = |i: i64| cycle * BOOKINGS + i;
        let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for i in 0..BOOKINGS {
            let (c, url, tx) = (c.clone(), s.url("/v1/hotels/G3/bookings"), acked_tx.clone());
            let body = group(night(i), night(i) + 1, &["STD"; 2]);
            tasks.push(tokio::spawn(async move {
                let req = c
                    .post(url)
                    .header("idempotency-key", format!("crash-{cycle}-{i}"))
                    .json(&body);
                match try_send(req).await {
                    Ok((201, body, _)) => {
                        let _ = tx.send(());
                        Some(body)
                    }
                    Ok((status, body, _)) => panic!("booking {i} → {status} {body}"),
                    Err(_) => None, // killed before it answered
                }
            }));
        }
        drop(acked_tx);
        tokio::time::timeout(Duration::from_secs(30), acked_rx.recv())
            .await
            .expect("a booking acknowledged in time")
            .expect("a booking acknowledged");
        let data = s.data_dir.clone();
        s.kill();
        let mut answered = Vec::new();
        for t in tasks {
            answered.push(t.await.unwrap());
        }
        acknowledged += answered.iter().filter(|a| a.is_some()).count();
        unanswered += answered.iter().filter(|a| a.is_none()).count();

        s = Server::start(&data, LONG_HOLDS);
        for (i, answer) in (0..BOOKINGS).zip(&answered) {
            let left = free(&c, &s, "G3", "STD", night(i), night(i) + 1).await;
            match answer {
                Some(b) => {
                    assert_eq!(left, ROOMS - 2, "booking {cycle}-{i} acknowledged");
                    let now = get_booking(&c, &s, &b["id"]).await;
                    assert_eq!(&now, b, "booking {cycle}-{i} as it was answered");
                    for r in b["reservations"].as_array().unwrap() {
                        let id = r["id"].as_str().unwrap();
                        let (status, alone, _) =
                            send(c.get(s.url(&format!("/v1/reservations/{id}")))).await;
                        assert_eq!(status, 200, "{alone}");
                        assert_eq!(alone["booking_id"], b["id"]);
                    }
                }
                None => assert!(
                    left == ROOMS || left == ROOMS - 2,
                    "booking {cycle}-{i}, unanswered, is whole or absent: {left} rooms free"
                ),
            }
        }
        // Retried with their keys: each made or found once; an acknowledged one is the
        // same booking.
        for (i, answer) in (0..BOOKINGS).zip(&answered) {
            let key = format!("crash-{cycle}-{i}");
            let body = group(night(i), night(i) + 1, &["STD"; 2]);
            let (status, b) = book(&c, &s, "G3", &body, Some(&key)).await;
            assert_eq!(status, 201, "{b}");
            if let Some(first) = answer {
                assert_eq!(b["id"], first["id"]);
            }
            let left = free(&c, &s, "G3", "STD", night(i), night(i) + 1).await;
            assert_eq!(left, ROOMS - 2);
        }
    }
    eprintln!("kill -9 cycles: {acknowledged} bookings acknowledged, {unanswered} cut off");
}

/// One server-sent event: its id (none on the items a journal record implies), name and
/// data.
type Sse = (Option<u64>, String, Value);

/// Reads hotel `h`'s stream from the start of its window until an event named `last`
/// has come `times` times; every event read.
async fn read_events(s: &Server, h: &str, last: &str, times: usize) -> Vec<Sse> {
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
    let (mut buf, mut out) = (String::new(), Vec::new());
    while out.iter().filter(|(_, name, _)| name == last).count() < times {
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (mut id, mut name, mut data) = (None, String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().parse().expect("numeric id"));
                } else if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if !name.is_empty() {
                out.push((id, name, serde_json::from_str(&data).expect("JSON data")));
            }
        }
        if out.iter().filter(|(_, name, _)| name == last).count() >= times {
            break;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), res.chunk())
            .await
            .expect("events in time")
            .expect("stream")
            .expect("stream open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
    out
}

/// The event stream shows a booking as each reservation's own `reservation.created`
/// (after the nights it took, each with `booking_id`) and then the record's one
/// `booking.created`, carrying the journal id; its cancellation likewise as each
/// reservation's `reservation.cancelled` and then one `booking.changed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_shows_each_reservation_of_a_booking_then_the_booking() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    hotel(&c, &s, "G4", TZ, 3).await;
    let (status, b) = book(&c, &s, "G4", &group(0, 1, &["STD"; 2]), None).await;
    assert_eq!(status, 201, "{b}");
    let id = b["id"].clone();
    let ids: Vec<Value> = b["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();

    let events = read_events(&s, "G4", "booking.created", 1).await;
    // The booking's items: everything after the record before its own.
    let at = events
        .iter()
        .position(|(_, name, _)| name == "booking.created")
        .unwrap();
    let start = events[..at]
        .iter()
        .rposition(|(seq, _, _)| seq.is_some())
        .map_or(0, |p| p + 1);
    let items = &events[start..=at];
    let names: Vec<&str> = items.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "availability.changed",
            "reservation.created",
            "availability.changed",
            "reservation.created",
            "booking.created"
        ],
        "{items:#?}"
    );
    for (k, r) in b["reservations"].as_array().unwrap().iter().enumerate() {
        let (seq, _, nights) = &items[2 * k];
        assert_eq!(*seq, None);
        assert_eq!(nights["room"], r["room"]);
        assert_eq!(nights["change"], "booked");
        let (seq, _, created) = &items[2 * k + 1];
        assert_eq!(*seq, None, "implied by the booking's record");
        assert_eq!(created["reservation_id"], r["id"]);
        assert_eq!(created["booking_id"], id);
        assert_eq!(created["room"], r["room"]);
        assert_eq!(created["status"], "pending_payment");
    }
    let (seq, _, booked) = &items[4];
    assert!(seq.is_some(), "the record's own item carries its id");
    assert_eq!(booked["booking_id"], id);
    let listed: Vec<Value> = booked["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reservation_id"].clone())
        .collect();
    assert_eq!(listed, ids);

    // Cancelled whole: each reservation's cancellation, then the booking's change.
    let (status, cancelled, _) =
        send(c.post(s.url(&format!("/v1/bookings/{}/cancel", id.as_str().unwrap())))).await;
    assert_eq!(status, 200, "{cancelled}");
    let events = read_events(&s, "G4", "booking.changed", 1).await;
    let at = events
        .iter()
        .position(|(_, name, _)| name == "booking.changed")
        .unwrap();
    let cancels: Vec<&Value> = events[..at]
        .iter()
        .rev()
        .take_while(|(seq, _, _)| seq.is_none())
        .filter(|(_, name, _)| name == "reservation.cancelled")
        .map(|(_, _, data)| data)
        .collect();
    assert_eq!(cancels.len(), 2, "{events:#?}");
    for data in &cancels {
        assert_eq!(data["booking_id"], id);
        assert!(ids.contains(&data["reservation_id"]));
    }
    let (seq, _, changed) = &events[at];
    assert!(seq.is_some());
    assert_eq!(changed["booking_id"], id);
    let types: Vec<&str> = changed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ch| ch["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["reservation.cancelled", "reservation.cancelled"]);
}
