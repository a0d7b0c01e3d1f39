//! Modifying reservations through the real binary: in place, into another room, a race for
//! the last free night, durability across a kill -9, and the money of paid reservations
//! re-priced (a difference refunded or charged through the sandbox provider).

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

/// A server paying through the sandbox provider, quickly and without injected faults.
fn sandbox_server(dir: &std::path::Path) -> Server {
    sandbox_server_paying_after(dir, "300")
}

/// A sandbox server whose guests pay `charge_delay_ms` after a charge is created.
fn sandbox_server_paying_after(dir: &std::path::Path, charge_delay_ms: &str) -> Server {
    Server::start(
        dir,
        &[
            ("INNKEEP_PAYMENT_PROVIDER", "sandbox"),
            ("INNKEEP_PAYMENT_RECONCILE_EVERY_SECONDS", "1"),
            ("INNKEEP_PAYMENT_PENDING_THRESHOLD_SECONDS", "1"),
            ("INNKEEP_PAYMENT_BACKOFF_BASE_MS", "50"),
            ("INNKEEP_PAYMENT_SANDBOX_CHARGE_DELAY_MS", charge_delay_ms),
            ("INNKEEP_PAYMENT_SANDBOX_DELAY_MS", "50"),
        ],
    )
}

/// GETs reservation `r` until `done` holds for it (at most 15 s); answers it.
async fn wait_for(
    c: &reqwest::Client,
    s: &Server,
    r: &Value,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let id = r["id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (status, now, _) = send(c.get(s.url(&format!("/v1/reservations/{id}")))).await;
        assert_eq!(status, 200, "{now}");
        if done(&now) {
            return now;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {now}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The sandbox provider's books.
async fn books(c: &reqwest::Client, s: &Server) -> Value {
    let (status, ledger, _) = send(c.get(s.url("/v1/payments/sandbox/ledger"))).await;
    assert_eq!(status, 200, "{ledger}");
    ledger["ledger"].clone()
}

/// The sandbox's charge `out_trade_no`.
fn charge<'a>(books: &'a Value, out_trade_no: &str) -> &'a Value {
    books["charges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["out_trade_no"] == out_trade_no)
        .unwrap_or_else(|| panic!("no charge {out_trade_no} in {books}"))
}

/// The events of reservation `r`'s payment history (`GET /v1/payments/{out_trade_no}`).
async fn payment_events(c: &reqwest::Client, s: &Server, r: &Value) -> Vec<String> {
    let out_trade_no = r["payment"]["out_trade_no"].as_str().unwrap();
    let (status, payment, _) = send(c.get(s.url(&format!("/v1/payments/{out_trade_no}")))).await;
    assert_eq!(status, 200, "{payment}");
    payment["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A paid reservation shortened by one night gets exactly that night's price back: the
/// reservation stays confirmed and paid, and the sandbox provider's books show the refund.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_reservation_shortened_by_a_night_gets_that_night_refunded() {
    let dir = tempfile::tempdir().unwrap();
    let s = sandbox_server(dir.path());
    let c = client();
    hotel(&c, &s, "P1", "UTC", 2).await;
    let a = book(&c, &s, "P1", 0, 3, None).await;
    let out_trade_no = a["payment"]["out_trade_no"].as_str().unwrap().to_owned();
    let a = wait_for(&c, &s, &a, "paid by the sandbox", |r| {
        r["status"] == "confirmed"
    })
    .await;
    // The last night's price, as availability quotes it.
    let (status, quote, _) = send(c.get(s.url(&format!(
        "/v1/hotels/P1/availability?arrival={}&departure={}&guests=1",
        day(2),
        day(3)
    ))))
    .await;
    assert_eq!(status, 200, "{quote}");
    let night = quote["room_types"][0]["total"]["amount"].as_i64().unwrap();
    assert!(night > 0);

    let (status, r) = modify(&c, &s, &a, json!({"departure": day(2)})).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["status"], "confirmed");
    assert_eq!(
        r["total"]["amount"].as_i64().unwrap(),
        a["total"]["amount"].as_i64().unwrap() - night
    );
    assert_eq!(r["payment"]["refunds"][0]["amount"]["amount"], night, "{r}");
    assert!(r.get("balance_due").is_none(), "{r}");

    let r = wait_for(&c, &s, &r, "the difference refunded", |r| {
        r["payment"]["refunds"][0]["status"] == "refunded"
    })
    .await;
    assert_eq!(
        (r["status"].as_str(), r["payment"]["status"].as_str()),
        (Some("confirmed"), Some("succeeded"))
    );
    assert_eq!(
        payment_events(&c, &s, &r).await,
        [
            "created",
            "succeeded",
            "difference_refund_owed",
            "difference_refunded"
        ]
    );
    let books = books(&c, &s).await;
    let first = charge(&books, &out_trade_no);
    assert_eq!(first["amount_minor"], a["total"]["amount"]);
    assert_eq!(first["refunded_minor"], night, "{books}");
    assert_eq!(books["refunded_minor"], night);
    assert_eq!(books["net_captured_minor"], r["total"]["amount"]);

    // Cancelled now (free under BAR): the rest goes back as a second refund.
    let id = r["id"].as_str().unwrap();
    let (status, cancelled, _) =
        send(c.post(s.url(&format!("/v1/reservations/{id}/cancel")))).await;
    assert_eq!(status, 200, "{cancelled}");
    wait_for(&c, &s, &cancelled, "the rest refunded", |r| {
        r["payment"]["status"] == "refunded"
    })
    .await;
    let books = self::books(&c, &s).await;
    assert_eq!(books["net_captured_minor"], 0, "{books}");
    assert_eq!(books["refunds"], 2);
}

/// A paid reservation extended shows what is still to pay as `balance_due` until the
/// sandbox captures the charge for the difference; then nothing is due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_reservation_extended_owes_the_difference_until_it_is_paid() {
    let dir = tempfile::tempdir().unwrap();
    let s = sandbox_server(dir.path());
    let c = client();
    hotel(&c, &s, "P2", "UTC", 2).await;
    let a = book(&c, &s, "P2", 0, 1, None).await;
    let out_trade_no = a["payment"]["out_trade_no"].as_str().unwrap().to_owned();
    let a = wait_for(&c, &s, &a, "paid by the sandbox", |r| {
        r["status"] == "confirmed"
    })
    .await;
    let (status, r) = modify(&c, &s, &a, json!({"departure": day(2)})).await;
    assert_eq!(status, 200, "{r}");
    let before = a["total"]["amount"].as_i64().unwrap();
    let after = r["total"]["amount"].as_i64().unwrap();
    assert!(after > before);
    assert_eq!(r["status"], "confirmed");
    assert_eq!(
        r["balance_due"],
        json!({"amount": after - before, "currency": "CNY"}),
        "{r}"
    );
    assert_eq!(
        r["payment"]["amount"]["amount"], before,
        "the first charge keeps its amount"
    );

    let r = wait_for(&c, &s, &r, "the difference paid", |r| {
        r.get("balance_due").is_none()
    })
    .await;
    assert_eq!(r["status"], "confirmed");
    assert_eq!(
        payment_events(&c, &s, &r).await,
        ["created", "succeeded", "balance_due", "balance_paid"]
    );
    let books = books(&c, &s).await;
    let second = charge(&books, &format!("{out_trade_no}-1"));
    assert_eq!(
        (second["amount_minor"].as_i64(), second["state"].as_str()),
        (Some(after - before), Some("captured")),
        "{books}"
    );
    assert_eq!(books["net_captured_minor"], after);
}

/// Without a provider the client pays the difference itself: its callback is checked
/// like any other (signature, amount, a reference we made), and applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_difference_callback_is_checked_like_any_other() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    hotel(&c, &s, "P3", "UTC", 2).await;
    let a = book(&c, &s, "P3", 0, 2, None).await;
    pay(&c, &s, &a).await;
    let (status, r) = modify(&c, &s, &a, json!({"departure": day(3)})).await;
    assert_eq!(status, 200, "{r}");
    let due = r["balance_due"]["amount"].as_i64().unwrap();
    assert!(due > 0, "{r}");
    // Another re-pricing waits for this difference; nothing changes.
    let (status, problem) = modify(&c, &s, &r, json!({"departure": day(1)})).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("payment_in_progress")),
        "{problem}"
    );
    let out_trade_no = r["payment"]["out_trade_no"].as_str().unwrap();
    let callback = |reference: String, amount: i64| {
        json!({
            "out_trade_no": reference,
            "trade_no": "T-2",
            "status": "succeeded",
            "amount": amount,
            "currency": "CNY",
        })
    };
    let (status, problem) =
        crate::harness::notify(&c, &s, &callback(format!("{out_trade_no}-1"), due - 1)).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("amount_mismatch"))
    );
    let (status, problem) =
        crate::harness::notify(&c, &s, &callback(format!("{out_trade_no}-2"), due)).await;
    assert_eq!((status, problem["code"].as_str()), (404, Some("not_found")));
    let raw = callback(format!("{out_trade_no}-1"), due).to_string();
    let (status, problem, _) = send(
        c.post(s.url("/v1/payments/notify"))
            .header("content-type", "application/json")
            .header("x-signature", "t=1,v1=00")
            .body(raw),
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (401, Some("bad_signature"))
    );
    let id = r["id"].as_str().unwrap();
    let (_, unchanged, _) = send(c.get(s.url(&format!("/v1/reservations/{id}")))).await;
    assert_eq!(unchanged["balance_due"]["amount"], due);
    for _ in 0..2 {
        let (status, ack) =
            crate::harness::notify(&c, &s, &callback(format!("{out_trade_no}-1"), due)).await;
        assert_eq!(status, 200, "{ack}");
    }
    let (_, paid, _) = send(c.get(s.url(&format!("/v1/reservations/{id}")))).await;
    assert!(paid.get("balance_due").is_none(), "{paid}");
    assert_eq!(
        paid["version"],
        r["version"].as_u64().unwrap() + 1,
        "applied once"
    );
    // Settled: it may be re-priced again.
    let (status, shorter) = modify(&c, &s, &paid, json!({"departure": day(2)})).await;
    assert_eq!(status, 200, "{shorter}");
    assert_eq!(shorter["payment"]["refunds"][0]["status"], "owed");
}

/// A hold re-priced after its charge was made at the provider: the charge keeps its
/// amount, the guest pays it, and the difference is then charged like a paid
/// reservation's (here, through the sandbox too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_priced_hold_is_paid_by_its_charge_then_the_difference() {
    let dir = tempfile::tempdir().unwrap();
    // The guest pays 2 s after the charge is made: time to extend the hold first.
    let s = sandbox_server_paying_after(dir.path(), "2000");
    let c = client();
    hotel(&c, &s, "P4", "UTC", 2).await;
    let a = book(&c, &s, "P4", 0, 1, None).await;
    let out_trade_no = a["payment"]["out_trade_no"].as_str().unwrap().to_owned();
    let (status, r) = modify(&c, &s, &a, json!({"departure": day(2)})).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        r["status"], "pending_payment",
        "paid too early for this test: {r}"
    );
    assert_eq!(r["hold_expires_at"], a["hold_expires_at"]);
    let (before, after) = (
        a["total"]["amount"].as_i64().unwrap(),
        r["total"]["amount"].as_i64().unwrap(),
    );
    assert!(after > before);
    assert_eq!(r["payment"]["amount"]["amount"], before);
    assert!(r.get("balance_due").is_none(), "{r}");

    let r = wait_for(&c, &s, &r, "the first charge paid", |r| {
        r["status"] == "confirmed"
    })
    .await;
    let r = wait_for(&c, &s, &r, "the difference paid", |r| {
        r.get("balance_due").is_none()
    })
    .await;
    assert_eq!(
        payment_events(&c, &s, &r).await,
        ["created", "succeeded", "balance_due", "balance_paid"]
    );
    let books = books(&c, &s).await;
    assert_eq!(charge(&books, &out_trade_no)["amount_minor"], before);
    assert_eq!(
        charge(&books, &format!("{out_trade_no}-1"))["amount_minor"],
        after - before
    );
    assert_eq!(books["net_captured_minor"], after);
    assert_eq!(books["callbacks_rejected"], 0, "{books}");
}

/// Every callback lost and refunds refused half the time: the payment supervisor still
/// finds the first charge and the difference charge captured (reconciliation) and gets the
/// difference refunded (retries), so the provider's books and the reservation agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_difference_callbacks_and_refused_refunds_are_made_good() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &[
            ("INNKEEP_PAYMENT_PROVIDER", "sandbox"),
            ("INNKEEP_PAYMENT_RECONCILE_EVERY_SECONDS", "1"),
            ("INNKEEP_PAYMENT_PENDING_THRESHOLD_SECONDS", "1"),
            ("INNKEEP_PAYMENT_BACKOFF_BASE_MS", "50"),
            ("INNKEEP_PAYMENT_SANDBOX_CHARGE_DELAY_MS", "100"),
            ("INNKEEP_PAYMENT_SANDBOX_DELAY_MS", "50"),
            ("INNKEEP_PAYMENT_SANDBOX_DROP_RATE", "1.0"),
            ("INNKEEP_PAYMENT_SANDBOX_REFUND_ERROR_RATE", "0.5"),
            ("INNKEEP_PAYMENT_SANDBOX_SEED", "20261205"),
        ],
    );
    let c = client();
    hotel(&c, &s, "P5", "UTC", 2).await;
    let a = book(&c, &s, "P5", 0, 1, None).await;
    let out_trade_no = a["payment"]["out_trade_no"].as_str().unwrap().to_owned();
    let a = wait_for(&c, &s, &a, "confirmed by reconciliation", |r| {
        r["status"] == "confirmed"
    })
    .await;
    let night = a["total"]["amount"].as_i64().unwrap();
    let (status, r) = modify(&c, &s, &a, json!({"departure": day(3)})).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["balance_due"]["amount"], 2 * night, "{r}");
    let r = wait_for(&c, &s, &r, "the difference found paid", |r| {
        r.get("balance_due").is_none()
    })
    .await;
    // Back to one night: two nights owed back, refused at first, then refunded.
    let (status, r) = modify(&c, &s, &r, json!({"departure": day(1)})).await;
    assert_eq!(status, 200, "{r}");
    let r = wait_for(&c, &s, &r, "the difference refunded", |r| {
        r["payment"]["refunds"][0]["status"] == "refunded"
    })
    .await;
    assert_eq!(r["payment"]["refunds"][0]["amount"]["amount"], 2 * night);
    assert_eq!(
        payment_events(&c, &s, &r).await,
        [
            "created",
            "succeeded",
            "balance_due",
            "balance_paid",
            "difference_refund_owed",
            "difference_refunded"
        ]
    );
    let books = books(&c, &s).await;
    assert_eq!(
        books["callbacks_sent"], 0,
        "every callback dropped: {books}"
    );
    assert_eq!(
        charge(&books, &format!("{out_trade_no}-1"))["amount_minor"],
        2 * night
    );
    assert_eq!(books["refunded_minor"], 2 * night);
    assert_eq!(books["net_captured_minor"], night, "{books}");
}
