//! Selling rules through the real server with the sandbox provider: rate plans priced and
//! refused by restrictions, and cancellation and no-show fees that move real money (the
//! sandbox's books show what was refunded).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{booking, client, hotel, plus, put_ok, send, today, Server};

/// A sandbox that pays every charge 50 ms after it is created and loses no callback.
const SANDBOX: [(&str, &str); 5] = [
    ("INNKEEP_PAYMENT_PROVIDER", "sandbox"),
    ("INNKEEP_PAYMENT_SANDBOX_CHARGE_DELAY_MS", "50"),
    ("INNKEEP_PAYMENT_SANDBOX_DELAY_MS", "0"),
    ("INNKEEP_PAYMENT_RECONCILE_EVERY_SECONDS", "1"),
    ("INNKEEP_NIGHT_AUDIT_TIME", "00:00"),
];

/// `NONREF`: cancelling costs everything at any time, so does a no-show. `FLEX`: free until
/// 48 hours before arrival, then the first night; a no-show costs the first night. Both
/// sell `STD` at the room type's rate.
async fn plans(c: &reqwest::Client, s: &Server, hotel: &str) {
    for (code, free_until_hours, fee, no_show) in [
        (
            "NONREF",
            0,
            json!({"percent": 100}),
            json!({"percent": 100}),
        ),
        ("FLEX", 48, json!({"nights": 1}), json!({"nights": 1})),
    ] {
        let (status, body, _) = send(
            c.put(s.url(&format!("/v1/hotels/{hotel}/rate-plans/{code}")))
                .json(&json!({
                    "name": code,
                    "room_types": ["STD"],
                    "adjust_percent": 0,
                    "cancellation": {"free_until_hours": free_until_hours, "fee": fee},
                    "no_show_fee": no_show,
                })),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
}

/// Books two nights from `arrival` under `plan` (`None`: no plan named) and waits until the
/// sandbox's payment confirmed it.
async fn book_paid(
    c: &reqwest::Client,
    s: &Server,
    hotel: &str,
    arrival: jiff::civil::Date,
    plan: Option<&str>,
) -> Value {
    let mut body = booking(arrival, plus(arrival, 2));
    if let Some(plan) = plan {
        body["rate_plan"] = json!(plan);
    }
    let (status, r, _) = send(
        c.post(s.url(&format!("/v1/hotels/{hotel}/reservations")))
            .json(&body),
    )
    .await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["rate_plan"], plan.unwrap_or("BAR"));
    until(c, s, &r, |now| now["status"] == "confirmed").await
}

/// Polls the reservation until `done` holds (bounded).
async fn until(c: &reqwest::Client, s: &Server, r: &Value, done: impl Fn(&Value) -> bool) -> Value {
    let url = s.url(&format!("/v1/reservations/{}", r["id"].as_str().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, now, _) = send(c.get(&url)).await;
        if done(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "never got there: {now}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// What the sandbox refunded per `out_trade_no`, once nothing is in flight or owed.
async fn refunded(c: &reqwest::Client, s: &Server) -> HashMap<String, (String, i64)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, ledger, _) = send(c.get(s.url("/v1/payments/sandbox/ledger"))).await;
        assert_eq!(status, 200, "{ledger}");
        if ledger["ledger"]["in_flight"] == 0 && ledger["supervisor"]["refunds_owed"] == 0 {
            return ledger["ledger"]["charges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|ch| {
                    (
                        ch["out_trade_no"].as_str().unwrap().to_owned(),
                        (
                            ch["state"].as_str().unwrap().to_owned(),
                            ch["refunded_minor"].as_i64().unwrap(),
                        ),
                    )
                })
                .collect();
        }
        assert!(Instant::now() < deadline, "sandbox never settled: {ledger}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn otn(r: &Value) -> String {
    r["payment"]["out_trade_no"].as_str().unwrap().to_owned()
}

async fn cancel(c: &reqwest::Client, s: &Server, r: &Value) -> Value {
    let url = s.url(&format!(
        "/v1/reservations/{}/cancel",
        r["id"].as_str().unwrap()
    ));
    let (status, body, _) = send(c.post(url)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
    body
}

/// A non-refundable plan cancelled after payment refunds 0; a flexible plan cancelled in
/// time refunds everything and late refunds the total less one night — in the sandbox's
/// books, and in the payment record.
#[tokio::test(flavor = "multi_thread")]
async fn cancellation_fees_refund_what_the_policy_leaves() {
    const TZ: &str = "Asia/Shanghai";
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &SANDBOX);
    let c = client();
    hotel(&c, &s, "FEES", TZ, 4).await;
    plans(&c, &s, "FEES").await;
    let far = plus(today(TZ), 10);
    // Arriving tomorrow: less than 48 hours before the arrival date starts.
    let near = plus(today(TZ), 1);

    let nonref = book_paid(&c, &s, "FEES", far, Some("NONREF")).await;
    assert_eq!(nonref["cancellation_policy"]["free_until_hours"], 0);
    assert_eq!(
        nonref["cancellation_policy"]["fee"],
        json!({"percent": 100})
    );
    let flex_in_time = book_paid(&c, &s, "FEES", far, Some("FLEX")).await;
    let flex_late = book_paid(&c, &s, "FEES", near, Some("FLEX")).await;
    assert_eq!(flex_late["total"]["amount"], 20_000);

    let r = cancel(&c, &s, &nonref).await;
    assert_eq!(r["cancellation_fee"]["amount"], 20_000);
    let r = cancel(&c, &s, &flex_in_time).await;
    assert_eq!(r["cancellation_fee"]["amount"], 0);
    let r = cancel(&c, &s, &flex_late).await;
    assert_eq!(r["cancellation_fee"]["amount"], 10_000);

    let books = refunded(&c, &s).await;
    assert_eq!(books[&otn(&nonref)], ("captured".to_owned(), 0));
    assert_eq!(books[&otn(&flex_in_time)], ("refunded".to_owned(), 20_000));
    assert_eq!(books[&otn(&flex_late)], ("refunded".to_owned(), 10_000));

    // The payment record shows the fee kept and the refund made.
    let (status, pay, _) = send(c.get(s.url(&format!("/v1/payments/{}", otn(&flex_late))))).await;
    assert_eq!(status, 200, "{pay}");
    assert_eq!(pay["status"], "refunded");
    assert_eq!(
        pay["fees"],
        json!([{"kind": "cancellation", "amount": {"amount": 10_000, "currency": "CNY"}}])
    );
    assert_eq!(
        pay["refunds"],
        json!([{"amount": {"amount": 10_000, "currency": "CNY"}, "status": "refunded"}])
    );
    let (_, pay, _) = send(c.get(s.url(&format!("/v1/payments/{}", otn(&nonref))))).await;
    assert_eq!(pay["status"], "succeeded");
    assert_eq!(pay["refunds"], json!([]));
    assert_eq!(pay["fees"][0]["amount"]["amount"], 20_000);

    // All of it survives a restart (the terms are journaled with each reservation).
    assert!(s.terminate().success());
    let s = Server::start(dir.path(), &SANDBOX);
    let (_, r, _) = send(c.get(s.url(&format!(
        "/v1/reservations/{}",
        flex_late["id"].as_str().unwrap()
    ))))
    .await;
    assert_eq!(r["rate_plan"], "FLEX");
    assert_eq!(r["cancellation_fee"]["amount"], 10_000);
    assert_eq!(r["payment"]["status"], "refunded");
}

/// The night audit marks paid guests who never came as no-shows; each keeps its plan's
/// no-show fee and is refunded the rest (`BAR` has none). The hotel moves its clock as in
/// `frontdesk::night_audit_marks_no_shows_in_the_server`: it books in Pacific/Niue
/// (UTC−11), then corrects its zone to Pacific/Kiritimati (UTC+14), where it is already the
/// day after arrival.
#[tokio::test(flavor = "multi_thread")]
async fn a_no_show_keeps_its_plan_s_fee() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &SANDBOX);
    let c = client();
    hotel(&c, &s, "SHOW", "Pacific/Niue", 3).await;
    plans(&c, &s, "SHOW").await;
    let arrival = today("Pacific/Niue");
    let mut made = Vec::new();
    for plan in ["NONREF", "FLEX", "BAR"] {
        made.push((plan, book_paid(&c, &s, "SHOW", arrival, Some(plan)).await));
    }
    let (status, r, _) = send(c.put(s.url("/v1/hotels/SHOW")).json(&json!({
        "name": "Hotel SHOW", "time_zone": "Pacific/Kiritimati", "currency": "CNY"
    })))
    .await;
    assert_eq!(status, 200, "{r}");
    for (_, r) in &made {
        until(&c, &s, r, |now| now["status"] == "no_show").await;
    }
    let books = refunded(&c, &s).await;
    let expected = [
        ("NONREF", ("captured", 0), 20_000),
        ("FLEX", ("refunded", 10_000), 10_000),
        ("BAR", ("refunded", 20_000), 0),
    ];
    for ((plan, r), (named, (state, back), fee)) in made.iter().zip(expected) {
        assert_eq!(*plan, named);
        assert_eq!(books[&otn(r)], (state.to_owned(), back), "{plan}");
        let (_, pay, _) = send(c.get(s.url(&format!("/v1/payments/{}", otn(r))))).await;
        let fees: i64 = pay["fees"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["amount"]["amount"].as_i64().unwrap())
            .sum();
        assert_eq!(fees, fee, "{plan}: {pay}");
        if fee > 0 {
            assert_eq!(pay["fees"][0]["kind"], "no_show", "{plan}");
        }
    }
}

/// Restricted stays are refused with the right reasons while `BAR` on the same dates
/// still sells, and availability says why per plan.
#[tokio::test(flavor = "multi_thread")]
async fn restricted_stays_are_refused_with_their_reasons() {
    const TZ: &str = "Asia/Shanghai";
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    hotel(&c, &s, "RULES", TZ, 3).await;
    plans(&c, &s, "RULES").await;
    let arrival = plus(today(TZ), 20);
    put_ok(
        &c,
        s.url("/v1/hotels/RULES/restrictions"),
        json!({
            "from": arrival.to_string(), "to": plus(arrival, 1).to_string(),
            "rate_plans": ["FLEX"], "set": {"closed_to_arrival": true, "min_stay_arrival": 3}
        }),
    )
    .await;
    put_ok(
        &c,
        s.url("/v1/hotels/RULES/restrictions"),
        json!({
            "from": plus(arrival, 1).to_string(), "to": plus(arrival, 2).to_string(),
            "rate_plans": ["NONREF"], "set": {"closed": true}
        }),
    )
    .await;
    let url = s.url("/v1/hotels/RULES/reservations");
    for (plan, reasons) in [
        ("FLEX", json!(["closed_to_arrival", "min_stay_arrival"])),
        ("NONREF", json!(["closed"])),
    ] {
        let mut body = booking(arrival, plus(arrival, 2));
        body["rate_plan"] = json!(plan);
        let (status, problem, _) = send(c.post(&url).json(&body)).await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["code"], "restricted");
        assert_eq!(problem["reasons"], reasons, "{plan}");
    }
    let mut unknown = booking(arrival, plus(arrival, 2));
    unknown["rate_plan"] = json!("NOPE");
    let (status, problem, _) = send(c.post(&url).json(&unknown)).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("invalid_request")),
        "{problem}"
    );

    let (_, avail, _) = send(c.get(s.url(&format!(
        "/v1/hotels/RULES/availability?arrival={arrival}&departure={}&guests=2",
        plus(arrival, 2)
    ))))
    .await;
    let offers: HashMap<&str, &Value> = avail["room_types"][0]["rate_plans"]
        .as_array()
        .unwrap_or_else(|| panic!("{avail}"))
        .iter()
        .map(|o| (o["code"].as_str().unwrap(), o))
        .collect();
    assert_eq!(offers["BAR"]["bookable"], true);
    assert_eq!(offers["FLEX"]["bookable"], false);
    assert_eq!(
        offers["FLEX"]["reasons"],
        json!(["closed_to_arrival", "min_stay_arrival"])
    );
    assert_eq!(offers["NONREF"]["reasons"], json!(["closed"]));

    // Nothing was booked by the refusals: all three rooms still free, and BAR sells.
    assert_eq!(avail["room_types"][0]["available"], 3);
    let (status, r, _) = send(c.post(&url).json(&booking(arrival, plus(arrival, 2)))).await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["rate_plan"], "BAR");

    // A hotel that replaces BAR with a 10 % cheaper one: a client naming no plan books
    // it, and availability's own price fields are BAR's.
    put_ok(
        &c,
        s.url("/v1/hotels/RULES/rate-plans/BAR"),
        json!({"name": "Best available", "room_types": ["STD"], "adjust_percent": -10,
               "cancellation": {"free_until_hours": 0, "fee": {"percent": 0}},
               "no_show_fee": {"percent": 0}}),
    )
    .await;
    let (_, avail, _) = send(c.get(s.url(&format!(
        "/v1/hotels/RULES/availability?arrival={arrival}&departure={}&guests=2",
        plus(arrival, 2)
    ))))
    .await;
    assert_eq!(avail["room_types"][0]["total"]["amount"], 18_000, "{avail}");
    let (status, r, _) = send(c.post(&url).json(&booking(arrival, plus(arrival, 2)))).await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["total"]["amount"], 18_000);
}
