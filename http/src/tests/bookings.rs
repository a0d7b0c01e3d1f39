//! Issue #16 over HTTP: multi-room bookings (`POST /v1/hotels/{id}/bookings`, `GET
//! /v1/bookings/{id}`, `POST /v1/bookings/{id}/cancel`), their one payment, and what each
//! of their reservations shows.

use super::*;

/// The lead guest of every booking here.
fn lead() -> Value {
    json!({"name": "Han Meimei", "phone": "+86 139-0000-0000", "email": "han@example.com"})
}

/// A booking body for `[arrival, arrival + nights)` with one line per `(room_type,
/// guests)`.
fn group(arrival: Date, nights: i64, rooms: &[(&str, u16)]) -> Value {
    json!({
        "arrival": arrival.to_string(),
        "departure": plus(arrival, nights).to_string(),
        "guest": lead(),
        "rooms": rooms
            .iter()
            .map(|(t, g)| json!({"room_type": t, "guests": g}))
            .collect::<Vec<_>>(),
    })
}

/// The booking's payment callback (`succeeded` or `failed`) for what its payment asks.
fn booking_payment(booking: &Value, status: &str) -> Value {
    json!({
        "out_trade_no": booking["payment"]["out_trade_no"],
        "trade_no": "T-GROUP-1",
        "status": status,
        "amount": booking["payment"]["amount"]["amount"],
        "currency": booking["payment"]["amount"]["currency"],
    })
}

/// `ik` and the id's 32 hex digits: the payment reference of a booking (or reservation).
fn reference_of(id: &str) -> String {
    format!("ik{}", uuid::Uuid::parse_str(id).unwrap().simple())
}

impl Harness {
    async fn book_group(&self, body: Value, headers: &[(&str, &str)]) -> Reply {
        self.call_with(Method::POST, "/v1/hotels/H1/bookings", headers, Some(body))
            .await
    }

    /// Books `body`, asserting a 201; the booking.
    async fn booked(&self, body: Value) -> Value {
        let r = self.book_group(body, &[]).await;
        assert_eq!(r.status, 201, "{:#}", r.body);
        r.body
    }

    async fn cancel_booking(&self, id: &str, if_match: Option<&str>) -> Reply {
        let headers: Vec<(&str, &str)> = if_match.map(|v| ("if-match", v)).into_iter().collect();
        self.call_with(
            Method::POST,
            &format!("/v1/bookings/{id}/cancel"),
            &headers,
            None,
        )
        .await
    }

    /// Free KING and SUITE rooms for `[arrival, arrival + nights)`.
    async fn free(&self, arrival: Date, nights: i64) -> (u64, u64) {
        let r = self
            .get(&format!(
                "/v1/hotels/H1/availability?arrival={arrival}&departure={}",
                plus(arrival, nights)
            ))
            .await;
        assert_eq!(r.status, 200, "{:#}", r.body);
        let of = |code: &str| {
            r.body["room_types"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["room_type"] == code)
                .and_then(|t| t["available"].as_u64())
                .unwrap_or_else(|| panic!("{code} in {:#}", r.body))
        };
        (of("KING"), of("SUITE"))
    }
}

/// The statuses of a booking's reservations, in its order.
fn statuses(booking: &Value) -> Vec<&str> {
    booking["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect()
}

/// A 201 with `Location` and `ETag`; one reservation per line in the order asked, each in
/// a room of its own, with the lead guest unless the line names its own, each carrying the
/// booking's id and its payment reference with its own share; the booking's total and
/// payment are the sums. `GET /v1/bookings/{id}` answers the same, and each reservation
/// reads the same on its own.
#[tokio::test(flavor = "multi_thread")]
async fn a_booking_takes_a_room_per_line_in_the_order_asked() {
    let h = Harness::start();
    h.setup().await;
    let arrival = plus(today(), 3);
    let other = json!({"name": "Li Lei", "phone": "+86 138-0000-0000", "email": "li@example.com"});
    let mut body = group(arrival, 2, &[("KING", 2), ("SUITE", 3), ("KING", 1)]);
    body["rooms"][1]["guest"] = other.clone();
    let r = h.book_group(body, &[]).await;
    assert_eq!(r.status, 201, "{:#}", r.body);
    let b = &r.body;
    let id = b["id"].as_str().unwrap().to_owned();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);
    assert_eq!(r.header("location"), format!("/v1/bookings/{id}"));
    assert_eq!(r.header("etag"), "\"3\"");
    assert_eq!(b["hotel_id"], "H1");
    assert_eq!(b["status"], "pending_payment");
    assert_eq!(b["version"], 3, "one version per new reservation");

    let list = b["reservations"].as_array().unwrap();
    let types: Vec<&str> = list
        .iter()
        .map(|r| r["room_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["KING", "SUITE", "KING"], "in the order asked");
    let guests: Vec<u64> = list.iter().map(|r| r["guests"].as_u64().unwrap()).collect();
    assert_eq!(guests, [2, 3, 1]);
    let mut rooms: Vec<&str> = list.iter().map(|r| r["room"].as_str().unwrap()).collect();
    assert_eq!(rooms[1], "201");
    rooms.sort_unstable();
    assert_eq!(rooms, ["101", "102", "201"], "a room of its own each");
    assert_eq!(list[0]["guest"], lead());
    assert_eq!(list[1]["guest"], other, "a line's own guest");
    assert_eq!(list[2]["guest"], lead());

    let reference = reference_of(&id);
    let shares = [100_000, 240_000, 100_000];
    for (r, share) in list.iter().zip(shares) {
        assert_eq!(r["booking_id"], id.as_str());
        assert_eq!(r["status"], "pending_payment");
        assert_eq!(r["arrival"], arrival.to_string());
        assert_eq!(r["nights"], 2);
        assert_eq!(r["total"], json!({"amount": share, "currency": "CNY"}));
        assert_eq!(r["payment"]["out_trade_no"], reference.as_str());
        assert_eq!(r["payment"]["amount"]["amount"], share, "its own share");
        assert_eq!(r["payment"]["status"], "pending");
        assert_eq!(r["hold_expires_at"], b["hold_expires_at"]);
        assert_eq!(r["version"], 1);
    }
    assert_eq!(b["total"], json!({"amount": 440_000, "currency": "CNY"}));
    assert_eq!(
        b["payment"],
        json!({
            "out_trade_no": reference,
            "amount": {"amount": 440_000, "currency": "CNY"},
            "status": "pending",
        })
    );
    b["hold_expires_at"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap();
    assert_eq!(h.free(arrival, 2).await, (0, 0), "every room taken");

    // Read back: the same booking, and each reservation as it reads on its own.
    let again = h.get(&format!("/v1/bookings/{id}")).await;
    assert_eq!(again.status, 200, "{:#}", again.body);
    assert_eq!(again.header("etag"), "\"3\"");
    assert_eq!(&again.body, b);
    for r in list {
        let alone = h
            .get(&format!("/v1/reservations/{}", r["id"].as_str().unwrap()))
            .await;
        assert_eq!(alone.status, 200);
        assert_eq!(&alone.body, r);
    }
    // A reservation booked alone carries no booking id.
    let single = h.book(plus(arrival, 10), 1, &[]).await;
    assert_eq!(single.status, 201);
    assert!(single.body.get("booking_id").is_none(), "{:#}", single.body);
}

/// Bad input is 400 (or 404/422 where that is what it is) and holds nothing: no rooms, too
/// many rooms, a bad contact (lead or a line's own), unknown fields, no guests or more than
/// the type sleeps; an unknown room type or hotel; a stay that ends before it starts.
#[tokio::test(flavor = "multi_thread")]
async fn bad_bookings_are_refused_and_hold_nothing() {
    let h = Harness::start();
    h.setup().await;
    let arrival = plus(today(), 4);
    let before = h.free(arrival, 1).await;
    assert_eq!(before, (2, 1));
    let twenty_one: Vec<(&str, u16)> = vec![("KING", 1); 21];
    let mut bad_lead = group(arrival, 1, &[("KING", 1)]);
    bad_lead["guest"]["email"] = json!("not-an-email");
    let mut bad_line_guest = group(arrival, 1, &[("KING", 1), ("SUITE", 1)]);
    bad_line_guest["rooms"][1]["guest"] =
        json!({"name": "", "phone": "+86 138-0000-0000", "email": "x@example.com"});
    let mut unknown_field = group(arrival, 1, &[("KING", 1)]);
    unknown_field["nights"] = json!(1);
    let mut unknown_line_field = group(arrival, 1, &[("KING", 1)]);
    unknown_line_field["rooms"][0]["room"] = json!("101");
    let mut no_rooms_field = group(arrival, 1, &[("KING", 1)]);
    no_rooms_field.as_object_mut().unwrap().remove("rooms");
    for (what, body) in [
        ("no rooms", group(arrival, 1, &[])),
        ("21 rooms", group(arrival, 1, &twenty_one)),
        ("bad lead contact", bad_lead),
        ("bad contact of a line", bad_line_guest),
        ("unknown field", unknown_field),
        ("unknown field of a line", unknown_line_field),
        ("rooms missing", no_rooms_field),
        ("no guests", group(arrival, 1, &[("KING", 1), ("KING", 0)])),
        (
            "more guests than the type sleeps",
            group(arrival, 1, &[("KING", 3)]),
        ),
        ("bad room type code", group(arrival, 1, &[("king size", 1)])),
    ] {
        let r = h.book_group(body, &[]).await;
        assert_eq!(r.status, 400, "{what}: {:#}", r.body);
        r.assert_problem(400, "invalid_request");
    }
    // Twenty is the most, and works when the hotel has the rooms (here: refused only for
    // want of rooms, naming the type).
    let twenty: Vec<(&str, u16)> = vec![("KING", 1); 20];
    let r = h.book_group(group(arrival, 1, &twenty), &[]).await;
    r.assert_problem(409, "sold_out");

    h.book_group(group(arrival, 1, &[("KING", 1), ("TWIN", 1)]), &[])
        .await
        .assert_problem(404, "not_found");
    h.call(
        Method::POST,
        "/v1/hotels/NOPE/bookings",
        Some(group(arrival, 1, &[("KING", 1)])),
    )
    .await
    .assert_problem(404, "not_found");
    h.book_group(group(arrival, 0, &[("KING", 1)]), &[])
        .await
        .assert_problem(422, "invalid_stay");
    let mut unknown_plan = group(arrival, 1, &[("KING", 1)]);
    unknown_plan["rate_plan"] = json!("NOPLAN");
    h.book_group(unknown_plan, &[])
        .await
        .assert_problem(422, "invalid_request");
    assert_eq!(h.free(arrival, 1).await, before, "nothing held");
}

/// More rooms of a type than are free: 409 `sold_out` naming each short type once, in the
/// order asked, and nothing is held, so a booking that fits still succeeds afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn a_booking_short_of_rooms_holds_nothing_and_names_the_short_types() {
    let h = Harness::start();
    h.setup().await;
    let arrival = plus(today(), 5);
    for (rooms, short) in [
        (vec![("KING", 2), ("KING", 2), ("KING", 1)], vec!["KING"]),
        (vec![("KING", 2), ("SUITE", 2), ("SUITE", 2)], vec!["SUITE"]),
        (
            vec![
                ("SUITE", 1),
                ("KING", 1),
                ("SUITE", 1),
                ("KING", 1),
                ("KING", 1),
            ],
            vec!["SUITE", "KING"],
        ),
    ] {
        let r = h.book_group(group(arrival, 2, &rooms), &[]).await;
        r.assert_problem(409, "sold_out");
        assert_eq!(r.body["room_types"], json!(short), "{:#}", r.body);
        assert_eq!(h.free(arrival, 2).await, (2, 1), "nothing held");
    }
    // One KING night taken by a reservation alone: two KINGs over a stay across it are
    // short, though each other night has both free.
    let single = h.book(plus(arrival, 1), 1, &[]).await;
    assert_eq!(single.status, 201);
    let r = h
        .book_group(group(arrival, 3, &[("KING", 1), ("KING", 1)]), &[])
        .await;
    r.assert_problem(409, "sold_out");
    assert_eq!(r.body["room_types"], json!(["KING"]));
    assert_eq!(h.free(arrival, 1).await, (2, 1));
    // What fits still books: every room free for the stay.
    let b = h
        .booked(group(arrival, 1, &[("KING", 2), ("SUITE", 4), ("KING", 2)]))
        .await;
    assert_eq!(b["reservations"].as_array().unwrap().len(), 3);
    assert_eq!(h.free(arrival, 1).await, (0, 0));
    // A single booking's sold_out carries no `room_types`.
    let r = h.book(arrival, 1, &[]).await;
    r.assert_problem(409, "sold_out");
    assert!(r.body.get("room_types").is_none(), "{:#}", r.body);
}

/// With an `Idempotency-Key` a retry answers the same booking (holding nothing more, also
/// when the retries run at once); the key with another body, or a key of a reservation
/// booked alone, is 422 `idempotency_key_reused`.
#[tokio::test(flavor = "multi_thread")]
async fn an_idempotency_key_replays_the_booking_and_refuses_another_body() {
    let h = Harness::start();
    h.setup().await;
    let arrival = plus(today(), 6);
    let key = [("idempotency-key", "family-trip-7")];
    let body = group(arrival, 1, &[("KING", 2), ("KING", 1)]);
    let first = h.book_group(body.clone(), &key).await;
    assert_eq!(first.status, 201, "{:#}", first.body);
    let again = h.book_group(body.clone(), &key).await;
    assert_eq!(again.status, 201, "{:#}", again.body);
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.body, first.body);
    assert_eq!(h.free(arrival, 1).await, (0, 1), "booked once");

    // Two retries at once with a fresh key make one booking between them.
    let racing = [("idempotency-key", "family-trip-8")];
    let later = group(plus(arrival, 2), 1, &[("KING", 2), ("SUITE", 1)]);
    let (one, two) = tokio::join!(
        h.book_group(later.clone(), &racing),
        h.book_group(later, &racing)
    );
    assert_eq!(
        (one.status, two.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_eq!(
        one.body["id"], two.body["id"],
        "{:#}\n{:#}",
        one.body, two.body
    );
    assert_eq!(h.free(plus(arrival, 2), 1).await, (1, 0), "booked once");

    let mut other = body.clone();
    other["rooms"][1]["guests"] = json!(2);
    h.book_group(other, &key)
        .await
        .assert_problem(422, "idempotency_key_reused");
    // Same lines in another order are another booking.
    let swapped = group(arrival, 1, &[("KING", 1), ("KING", 2)]);
    h.book_group(swapped, &key)
        .await
        .assert_problem(422, "idempotency_key_reused");
    // A key of a reservation booked alone is not taken for a booking, nor the reverse.
    let single_key = [("idempotency-key", "single-1")];
    assert_eq!(h.book(plus(arrival, 1), 1, &single_key).await.status, 201);
    h.book_group(group(plus(arrival, 1), 1, &[("KING", 2)]), &single_key)
        .await
        .assert_problem(422, "idempotency_key_reused");
    h.book(arrival, 1, &key)
        .await
        .assert_problem(422, "idempotency_key_reused");
    h.book_group(body, &[("idempotency-key", "no spaces allowed")])
        .await
        .assert_problem(400, "invalid_request");
    assert_eq!(h.free(plus(arrival, 1), 1).await, (1, 1));
}

/// Reading and cancelling: unknown ids are 404 (a reservation's id is not a booking's),
/// ids that are not UUIDs 400; a stale `If-Match` is 412 and changes nothing; the right
/// one cancels every reservation in one step (each one version up) and frees the rooms; a
/// repeat answers the booking unchanged.
#[tokio::test(flavor = "multi_thread")]
async fn a_booking_is_read_and_cancelled_whole() {
    let h = Harness::start();
    h.setup().await;
    h.get("/v1/bookings/not-a-uuid")
        .await
        .assert_problem(400, "invalid_request");
    let unknown = uuid::Uuid::now_v7().to_string();
    h.get(&format!("/v1/bookings/{unknown}"))
        .await
        .assert_problem(404, "not_found");
    h.cancel_booking(&unknown, None)
        .await
        .assert_problem(404, "not_found");
    h.cancel_booking("nope", None)
        .await
        .assert_problem(400, "invalid_request");

    let arrival = plus(today(), 7);
    let b = h
        .booked(group(arrival, 2, &[("KING", 2), ("SUITE", 2)]))
        .await;
    let id = b["id"].as_str().unwrap().to_owned();
    let member = b["reservations"][0]["id"].as_str().unwrap().to_owned();
    h.get(&format!("/v1/bookings/{member}"))
        .await
        .assert_problem(404, "not_found");

    // The booking's version is the sum of its reservations': 2. Another is 412.
    assert_eq!(b["version"], 2);
    for stale in ["\"1\"", "\"3\"", "W/\"5\""] {
        h.cancel_booking(&id, Some(stale))
            .await
            .assert_problem(412, "version_mismatch");
    }
    h.cancel_booking(&id, Some("\"x\""))
        .await
        .assert_problem(400, "invalid_request");
    let r = h
        .call(
            Method::POST,
            &format!("/v1/bookings/{id}/cancel"),
            Some(json!({"reason": "x"})),
        )
        .await;
    r.assert_problem(400, "invalid_request");
    let now = h.get(&format!("/v1/bookings/{id}")).await.body;
    assert_eq!(now, b, "nothing changed");
    assert_eq!(h.free(arrival, 2).await, (1, 0));

    let etag = b["version"].to_string();
    let r = h.cancel_booking(&id, Some(&format!("\"{etag}\""))).await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(r.body["status"], "cancelled");
    assert_eq!(statuses(&r.body), ["cancelled", "cancelled"]);
    assert_eq!(r.body["version"], 4, "each reservation one version up");
    assert_eq!(r.header("etag"), "\"4\"");
    for res in r.body["reservations"].as_array().unwrap() {
        let history = res["history"].as_array().unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[1]["to"], "cancelled");
    }
    assert_eq!(h.free(arrival, 2).await, (2, 1), "the rooms are free again");

    // Again: answered as it is (a retry is safe), with or without If-Match.
    for if_match in [None, Some("\"4\"")] {
        let again = h.cancel_booking(&id, if_match).await;
        assert_eq!(again.status, 200, "{:#}", again.body);
        assert_eq!(again.body, r.body);
        assert_eq!(again.header("etag"), "\"4\"");
    }
}

/// The booking's one payment: a wrong amount or currency is 422 `amount_mismatch` and
/// changes nothing; the right callback confirms every reservation at once; a duplicate
/// changes nothing. A reference the booking's reservations were never charged under
/// (a reservation's own id) is not a payment of it.
#[tokio::test(flavor = "multi_thread")]
async fn the_booking_payment_confirms_every_reservation() {
    let h = Harness::start();
    h.setup().await;
    let b = h
        .booked(group(plus(today(), 8), 1, &[("KING", 2), ("SUITE", 2)]))
        .await;
    let id = b["id"].as_str().unwrap().to_owned();
    let uri = format!("/v1/bookings/{id}");
    let now = now_secs();
    let paid = booking_payment(&b, "succeeded");
    assert_eq!(paid["amount"], 170_000);

    // One reservation's share is not what the booking owes; nor another currency.
    let mut share = paid.clone();
    share["amount"] = b["reservations"][0]["payment"]["amount"]["amount"].clone();
    h.notify(&share, now, SECRET)
        .await
        .assert_problem(422, "amount_mismatch");
    let mut usd = paid.clone();
    usd["currency"] = json!("USD");
    h.notify(&usd, now, SECRET)
        .await
        .assert_problem(422, "amount_mismatch");
    // A reservation's own reference is no charge of it: its share is not taken for it.
    let mut own = paid.clone();
    own["out_trade_no"] = json!(reference_of(b["reservations"][0]["id"].as_str().unwrap()));
    own["amount"] = share["amount"].clone();
    h.notify(&own, now, SECRET)
        .await
        .assert_problem(404, "not_found");
    assert_eq!(h.get(&uri).await.body, b, "nothing changed");

    // A failure is recorded on every reservation; the holds run on.
    let r = h.notify(&booking_payment(&b, "failed"), now, SECRET).await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    let failed = h.get(&uri).await.body;
    assert_eq!(failed["status"], "pending_payment");
    assert_eq!(failed["payment"]["status"], "failed");
    assert_eq!(failed["version"], 4);

    let r = h.notify(&paid, now, SECRET).await;
    assert_eq!(
        (r.status.as_u16(), r.body.clone()),
        (200, json!({"received": true}))
    );
    let confirmed = h.get(&uri).await.body;
    assert_eq!(confirmed["status"], "confirmed");
    assert_eq!(confirmed["payment"]["status"], "succeeded");
    assert_eq!(confirmed["payment"]["amount"], b["payment"]["amount"]);
    assert_eq!(statuses(&confirmed), ["confirmed", "confirmed"]);
    assert_eq!(confirmed["version"], 6);
    for r in confirmed["reservations"].as_array().unwrap() {
        assert_eq!(r["payment"]["status"], "succeeded");
        let own = reference_of(r["id"].as_str().unwrap());
        let detail = h.get(&format!("/v1/payments/{own}")).await.body;
        assert_eq!(detail["trade_no"], "T-GROUP-1", "{detail:#}");
        assert_eq!(detail["out_trade_no"], b["payment"]["out_trade_no"]);
        let events: Vec<&str> = detail["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert_eq!(events.last(), Some(&"succeeded"), "{detail:#}");
    }
    // A duplicate is acknowledged and applied once.
    let r = h.notify(&paid, now_secs(), SECRET).await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(h.get(&uri).await.body, confirmed);
}

/// A reservation of a booking is still its own: cancelled alone, the booking shows the
/// status of the rest and a version one up; the booking's payment then confirms the rest
/// and owes the cancelled one's share back.
#[tokio::test(flavor = "multi_thread")]
async fn a_reservation_of_a_booking_is_cancelled_alone() {
    let h = Harness::start();
    h.setup().await;
    let arrival = plus(today(), 9);
    let b = h
        .booked(group(arrival, 1, &[("KING", 2), ("KING", 2), ("SUITE", 1)]))
        .await;
    let id = b["id"].as_str().unwrap().to_owned();
    let uri = format!("/v1/bookings/{id}");
    let first = b["reservations"][0]["id"].as_str().unwrap().to_owned();
    let r = h
        .call(
            Method::POST,
            &format!("/v1/reservations/{first}/cancel"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(r.body["booking_id"], id.as_str());
    let now = h.get(&uri).await;
    assert_eq!(now.body["status"], "pending_payment", "the rest's status");
    assert_eq!(
        statuses(&now.body),
        ["cancelled", "pending_payment", "pending_payment"]
    );
    assert_eq!(now.body["version"], 4);
    assert_eq!(now.header("etag"), "\"4\"");
    assert_eq!(h.free(arrival, 1).await, (1, 0));

    // The provider charged what the booking asked when it was made: that pays it.
    assert_eq!(now.body["payment"]["amount"], b["payment"]["amount"]);
    let r = h
        .notify(&booking_payment(&b, "succeeded"), now_secs(), SECRET)
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    let paid = h.get(&uri).await.body;
    assert_eq!(paid["status"], "confirmed");
    assert_eq!(statuses(&paid), ["cancelled", "confirmed", "confirmed"]);
    assert_eq!(paid["payment"]["status"], "succeeded");
    let cancelled = &paid["reservations"][0];
    assert_eq!(cancelled["payment"]["status"], "succeeded");
    let detail = h
        .get(&format!("/v1/payments/{}", reference_of(&first)))
        .await;
    assert_eq!(detail.status, 200, "{:#}", detail.body);
    assert_eq!(detail.body["refund_owed"], true, "its share is owed back");
    assert_eq!(h.free(arrival, 1).await, (1, 0));

    // Cancelling the booking now cancels the two left; the first stays as it was.
    let r = h.cancel_booking(&id, None).await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(statuses(&r.body), ["cancelled", "cancelled", "cancelled"]);
    assert_eq!(
        r.body["reservations"][0]["version"],
        paid["reservations"][0]["version"]
    );
    assert_eq!(h.free(arrival, 1).await, (2, 1));
}

/// Cancelling a booking whose guests have come: one checked in is 409 (nothing to
/// cancel, something still going on); once every reservation ended (one cancelled, the
/// other checked out) a cancel is answered with the booking as it is.
#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_booking_whose_stays_ended_answers_it_as_it_is() {
    let h = Harness::start();
    h.setup().await;
    let b = h
        .booked(group(today(), 1, &[("KING", 2), ("KING", 2)]))
        .await;
    let id = b["id"].as_str().unwrap().to_owned();
    let r = h
        .notify(&booking_payment(&b, "succeeded"), now_secs(), SECRET)
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    let (one, two) = (
        b["reservations"][0]["id"].as_str().unwrap().to_owned(),
        b["reservations"][1]["id"].as_str().unwrap().to_owned(),
    );
    let act = |id: &str, action: &str| format!("/v1/reservations/{id}/{action}");
    assert_eq!(
        h.call(Method::POST, &act(&one, "cancel"), None)
            .await
            .status,
        200
    );
    let r = h.call(Method::POST, &act(&two, "check-in"), None).await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    let r = h.cancel_booking(&id, None).await;
    r.assert_problem(409, "invalid_transition");
    let r = h.call(Method::POST, &act(&two, "check-out"), None).await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    let ended = h.get(&format!("/v1/bookings/{id}")).await.body;
    assert_eq!(ended["status"], "checked_out");
    let r = h.cancel_booking(&id, None).await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(r.body, ended);
}

/// An unpaid booking's holds lapse together: every reservation expires, the rooms are
/// free, and a payment arriving afterwards is recorded with each share owed back, none
/// confirmed.
#[tokio::test(flavor = "multi_thread")]
async fn an_unpaid_booking_expires_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.hold_seconds = 1;
    let engine = Engine::start(config).unwrap();
    let h = Harness {
        app: router(AppState::new(engine.clone(), PaymentConfig::new(SECRET))),
        engine,
        _dir: dir,
    };
    h.setup().await;
    let arrival = plus(today(), 2);
    let b = h
        .booked(group(arrival, 1, &[("KING", 2), ("SUITE", 2)]))
        .await;
    let uri = format!("/v1/bookings/{}", b["id"].as_str().unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let expired = loop {
        let now = h.get(&uri).await.body;
        if now["status"] == "expired" {
            break now;
        }
        assert!(std::time::Instant::now() < deadline, "not expired: {now:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(statuses(&expired), ["expired", "expired"]);
    assert_eq!(expired["version"], 4);
    assert_eq!(h.free(arrival, 1).await, (2, 1));

    let r = h
        .notify(&booking_payment(&b, "succeeded"), now_secs(), SECRET)
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    let late = h.get(&uri).await.body;
    assert_eq!(statuses(&late), ["expired", "expired"]);
    for r in late["reservations"].as_array().unwrap() {
        let detail = h
            .get(&format!(
                "/v1/payments/{}",
                reference_of(r["id"].as_str().unwrap())
            ))
            .await;
        assert_eq!(detail.body["refund_owed"], true, "{:#}", detail.body);
    }
    assert_eq!(h.free(arrival, 1).await, (2, 1));
}

/// `/openapi.json` describes the three routes with their bodies and answers, the problem's
/// `room_types`, a reservation's `booking_id`, and the bookings' event types.
#[tokio::test(flavor = "multi_thread")]
async fn openapi_describes_bookings() {
    let h = Harness::start();
    let doc = h.get("/openapi.json").await.body;
    let op = |path: &str, method: &str| doc["paths"][path][method].clone();
    let schema_ref = |name: &str| json!(format!("#/components/schemas/{name}"));
    let book = op("/v1/hotels/{hotel_id}/bookings", "post");
    assert_eq!(
        book["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        schema_ref("GroupBookingBody")
    );
    assert_eq!(
        book["responses"]["201"]["content"]["application/json"]["schema"]["$ref"],
        schema_ref("BookingView")
    );
    for status in ["400", "404", "409", "422", "429"] {
        assert!(book["responses"][status].is_object(), "{status}");
    }
    let params: Vec<&str> = book["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["hotel_id", "Idempotency-Key"]);
    let get = op("/v1/bookings/{id}", "get");
    assert_eq!(
        get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        schema_ref("BookingView")
    );
    let cancel = op("/v1/bookings/{id}/cancel", "post");
    assert!(cancel["responses"]["412"].is_object());
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["Problem"]["properties"]["room_types"].is_object());
    assert!(schemas["ReservationView"]["properties"]["booking_id"].is_object());
    let rooms = &schemas["GroupBookingBody"]["properties"]["rooms"];
    assert_eq!(
        (rooms["minItems"].as_u64(), rooms["maxItems"].as_u64()),
        (Some(1), Some(20))
    );
    // The event stream's description names every type a stream or webhook sends,
    // the bookings' ones included.
    let stream = op("/v1/hotels/{hotel_id}/events", "get")["responses"]["200"]["description"]
        .as_str()
        .unwrap()
        .to_owned();
    for name in crate::routes::events::EVENT_TYPES {
        assert!(
            stream.contains(&format!(" {name},")),
            "{name} not in {stream:?}"
        );
    }
    for field in [
        "id",
        "status",
        "reservations",
        "total",
        "payment",
        "version",
    ] {
        assert!(
            schemas["BookingView"]["required"]
                .as_array()
                .unwrap()
                .contains(&json!(field)),
            "{field}"
        );
    }
}
