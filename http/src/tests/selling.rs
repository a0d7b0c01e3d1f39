//! Issue #15 over HTTP: rate plans, restrictions, offers in availability, booking and
//! cancelling under a plan.

use super::*;

/// A plan selling KING at -20 %: cancelling is free until 30 days (720 hours) before
/// arrival, then costs the first night; a no-show costs the first night too.
fn flex_plan() -> Value {
    json!({
        "name": "Advance saver",
        "room_types": ["KING"],
        "adjust_percent": -20,
        "cancellation": {"free_until_hours": 720, "fee": {"nights": 1}},
        "no_show_fee": {"nights": 1},
    })
}

impl Harness {
    async fn put_plan(&self, code: &str, body: Value) -> Reply {
        self.call(
            Method::PUT,
            &format!("/v1/hotels/H1/rate-plans/{code}"),
            Some(body),
        )
        .await
    }

    async fn put_restrictions(&self, body: Value) -> Reply {
        self.call(Method::PUT, "/v1/hotels/H1/restrictions", Some(body))
            .await
    }

    async fn book_under(&self, plan: &str, room_type: &str, arrival: Date, nights: i64) -> Reply {
        let mut body = booking(arrival, nights);
        body["room_type"] = json!(room_type);
        body["rate_plan"] = json!(plan);
        self.call(Method::POST, "/v1/hotels/H1/reservations", Some(body))
            .await
    }
}

/// Asserts a 400 `invalid_request` whose detail names `field`.
#[track_caller]
fn assert_bad_field(r: &Reply, field: &str) {
    r.assert_problem(400, "invalid_request");
    let detail = r.body["detail"].as_str().unwrap();
    assert!(detail.contains(field), "{field} not named in {detail:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_plans_are_created_replaced_listed_and_validated() {
    let h = Harness::start();
    h.setup().await;
    let r = h.put_plan("FLEX", flex_plan()).await;
    assert_eq!(r.status, 201, "{:#}", r.body);
    let flex = json!({
        "code": "FLEX",
        "name": "Advance saver",
        "room_types": ["KING"],
        "adjust_percent": -20,
        "cancellation": {"free_until_hours": 720, "fee": {"nights": 1}},
        "no_show_fee": {"nights": 1},
        "min_advance_days": null,
        "max_advance_days": null,
    });
    assert_eq!(r.body, flex);
    // Replaced: 200, with the booking window.
    let mut body = flex_plan();
    body["name"] = json!("Advance saver 2");
    body["room_types"] = json!(["SUITE", "KING", "KING"]);
    body["cancellation"]["fee"] = json!({"percent": 50});
    body["min_advance_days"] = json!(7);
    body["max_advance_days"] = json!(365);
    let r = h.put_plan("FLEX", body).await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    let mut flex2 = flex.clone();
    flex2["name"] = json!("Advance saver 2");
    flex2["room_types"] = json!(["KING", "SUITE"]);
    flex2["cancellation"]["fee"] = json!({"percent": 50});
    flex2["min_advance_days"] = json!(7);
    flex2["max_advance_days"] = json!(365);
    assert_eq!(r.body, flex2);

    // The list: the built-in BAR (selling every type the hotel has) and FLEX, by code.
    let listed = h.get("/v1/hotels/H1/rate-plans").await;
    assert_eq!(listed.status, 200, "{:#}", listed.body);
    let bar = json!({
        "code": "BAR",
        "name": "Best available rate",
        "room_types": ["KING", "SUITE"],
        "adjust_percent": 0,
        "cancellation": {"free_until_hours": 0, "fee": {"percent": 0}},
        "no_show_fee": {"percent": 0},
        "min_advance_days": null,
        "max_advance_days": null,
    });
    assert_eq!(
        listed.body,
        json!({"hotel_id": "H1", "rate_plans": [bar, flex2]})
    );

    // Bad bodies: 400 naming the field, nothing changed.
    let with = |path: &[&str], v: Value| {
        let mut b = flex_plan();
        let mut at = &mut b;
        for p in &path[..path.len() - 1] {
            at = &mut at[*p];
        }
        at[path[path.len() - 1]] = v;
        b
    };
    let cases = [
        (with(&["adjust_percent"], json!(101)), "adjust_percent"),
        (with(&["adjust_percent"], json!(-101)), "adjust_percent"),
        (
            with(&["cancellation", "fee"], json!({"nights": 1, "percent": 5})),
            "cancellation.fee",
        ),
        (
            with(&["cancellation", "fee"], json!({})),
            "cancellation.fee",
        ),
        (
            with(&["cancellation", "fee"], json!({"hours": 1})),
            "cancellation.fee",
        ),
        (
            with(&["cancellation", "free_until_hours"], json!(-1)),
            "cancellation.free_until_hours",
        ),
        (
            with(&["no_show_fee"], json!({"percent": 101})),
            "no_show_fee.percent",
        ),
        (
            with(&["cancellation", "fee"], json!({"nights": 731})),
            "cancellation.fee.nights",
        ),
        (with(&["room_types"], json!([])), "room_types"),
        (with(&["room_types"], json!(["NOPE"])), "room_types"),
        (with(&["room_types"], json!(["bad code"])), "room_types"),
        (with(&["name"], json!(" ")), "name"),
        (with(&["min_advance_days"], json!(-1)), "min_advance_days"),
        (with(&["surprise"], json!(1)), "surprise"),
        (with(&["cancellation", "surprise"], json!(1)), "surprise"),
    ];
    for (body, field) in cases {
        assert_bad_field(&h.put_plan("FLEX", body.clone()).await, field);
        assert_bad_field(&h.put_plan("NEW", body).await, field);
    }
    let mut missing = flex_plan();
    missing.as_object_mut().unwrap().remove("no_show_fee");
    assert_bad_field(&h.put_plan("NEW", missing).await, "no_show_fee");
    assert_bad_field(&h.put_plan("bad%20code", flex_plan()).await, "rate_plan");
    assert_eq!(h.get("/v1/hotels/H1/rate-plans").await.body, listed.body);

    let r = h
        .call(
            Method::PUT,
            "/v1/hotels/NOPE/rate-plans/FLEX",
            Some(flex_plan()),
        )
        .await;
    r.assert_problem(404, "not_found");
    h.get("/v1/hotels/NOPE/rate-plans")
        .await
        .assert_problem(404, "not_found");
}

/// The first Monday at least `days` days from today.
fn monday_after(days: i64) -> Date {
    let mut d = plus(today(), days);
    while d.weekday() != jiff::civil::Weekday::Monday {
        d = plus(d, 1);
    }
    d
}

#[tokio::test(flavor = "multi_thread")]
async fn restrictions_are_set_on_weekdays_cleared_with_null_and_listed() {
    let h = Harness::start();
    h.setup().await;
    assert_eq!(h.put_plan("FLEX", flex_plan()).await.status, 201);
    let from = monday_after(10);
    let to = plus(from, 7);
    let (fri, sat) = (plus(from, 4), plus(from, 5));
    let r = h
        .put_restrictions(json!({
            "from": from.to_string(), "to": to.to_string(),
            "room_types": ["KING"], "rate_plans": ["FLEX"], "weekdays": ["fri", "sat"],
            "set": {"closed_to_arrival": true, "min_stay_arrival": 2},
        }))
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(
        r.body,
        json!({"hotel_id": "H1", "from": from.to_string(), "to": to.to_string(), "cells": 2})
    );
    let uri = format!("/v1/hotels/H1/restrictions?from={from}&to={to}");
    let cell = |date: Date, cta: bool, min: Value, closed: bool| {
        json!({
            "date": date.to_string(), "room_type": "KING", "rate_plan": "FLEX",
            "closed": closed, "closed_to_arrival": cta, "closed_to_departure": false,
            "min_stay_arrival": min, "max_stay_arrival": null, "min_stay_through": null,
        })
    };
    let r = h.get(&uri).await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(
        r.body,
        json!({"hotel_id": "H1", "from": from.to_string(), "to": to.to_string(),
               "restrictions": [cell(fri, true, json!(2), false), cell(sat, true, json!(2), false)]})
    );
    // Every day of the week: null clears the minimum, the flag set before stays; days
    // that end up restricting nothing are not listed.
    let r = h
        .put_restrictions(json!({
            "from": from.to_string(), "to": to.to_string(),
            "room_types": ["KING"], "rate_plans": ["FLEX"],
            "set": {"min_stay_arrival": null},
        }))
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(r.body["cells"], 2);
    assert_eq!(
        h.get(&uri).await.body["restrictions"],
        json!([
            cell(fri, true, Value::Null, false),
            cell(sat, true, Value::Null, false)
        ])
    );
    // Every type and plan when left out: BAR and FLEX for KING, BAR for SUITE… and FLEX
    // for SUITE too (restrictions are kept per type and plan, sold or not).
    let r = h
        .put_restrictions(json!({
            "from": sat.to_string(), "to": plus(sat, 1).to_string(), "set": {"closed": true},
        }))
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    let listed = h.get(&uri).await.body["restrictions"].clone();
    let keys: Vec<(String, String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["date"].as_str().unwrap().to_owned(),
                c["room_type"].as_str().unwrap().to_owned(),
                c["rate_plan"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let key = |d: Date, t: &str, p: &str| (d.to_string(), t.to_owned(), p.to_owned());
    assert_eq!(
        keys,
        [
            key(fri, "KING", "FLEX"),
            key(sat, "KING", "BAR"),
            key(sat, "KING", "FLEX"),
            key(sat, "SUITE", "BAR"),
            key(sat, "SUITE", "FLEX"),
        ]
    );
    assert_eq!(listed[2], cell(sat, true, Value::Null, true));
    // The answer counts the cells of its own range.
    assert_eq!(r.body["cells"], 4);
    // Only part of the range asked for.
    let r = h
        .get(&format!("/v1/hotels/H1/restrictions?from={sat}&to={to}"))
        .await;
    assert_eq!(r.body["restrictions"].as_array().unwrap().len(), 4);

    // Bad bodies: 400 naming the field, nothing changed.
    let before = h.get(&uri).await.body;
    let base = || json!({"from": from.to_string(), "to": to.to_string(), "set": {"closed": false}});
    let with = |key: &str, v: Value| {
        let mut b = base();
        b[key] = v;
        b
    };
    let set = |v: Value| with("set", v);
    let cases = [
        (with("weekdays", json!(["fri", "xyz"])), "weekdays"),
        (with("weekdays", json!([])), "weekdays"),
        (with("room_types", json!(["NOPE"])), "room_types"),
        (with("room_types", json!(["bad code"])), "room_types"),
        (with("rate_plans", json!(["NOPE"])), "rate_plans"),
        (with("to", json!(from.to_string())), "to"),
        (with("to", json!(plus(from, 731).to_string())), "to"),
        (with("from", json!("2030-02-30")), "from"),
        (with("surprise", json!(1)), "surprise"),
        (set(json!({})), "set"),
        (set(json!({"min_stay_arrival": 0})), "set.min_stay_arrival"),
        (
            set(json!({"min_stay_through": 731})),
            "set.min_stay_through",
        ),
        (
            set(json!({"max_stay_arrival": "2"})),
            "set.max_stay_arrival",
        ),
        (set(json!({"closed": null})), "set.closed"),
        (set(json!({"closed": 1})), "set.closed"),
        (set(json!({"open": true})), "open"),
    ];
    for (body, field) in cases {
        assert_bad_field(&h.put_restrictions(body).await, field);
    }
    let mut no_set = base();
    no_set.as_object_mut().unwrap().remove("set");
    assert_bad_field(&h.put_restrictions(no_set).await, "set");
    assert_eq!(h.get(&uri).await.body, before);

    // Bad queries.
    assert_bad_field(
        &h.get(&format!("/v1/hotels/H1/restrictions?from={from}"))
            .await,
        "to",
    );
    assert_bad_field(
        &h.get(&format!("/v1/hotels/H1/restrictions?from={to}&to={from}"))
            .await,
        "to",
    );
    assert_bad_field(
        &h.get(&format!(
            "/v1/hotels/H1/restrictions?from={from}&to={to}&x=1"
        ))
        .await,
        "x",
    );
    h.get(&format!("/v1/hotels/NOPE/restrictions?from={from}&to={to}"))
        .await
        .assert_problem(404, "not_found");
}

/// Availability shows each plan's offer with its reasons; a booking the restrictions
/// forbid is 422 `restricted` and books nothing; an unknown plan, or one not selling the
/// type, is 422 `invalid_request`; a booking under a plan shows the plan, its price and
/// its policies; cancelling shows what it cost.
#[tokio::test(flavor = "multi_thread")]
async fn booking_under_a_plan_follows_its_restrictions_price_and_policies() {
    let h = Harness::start();
    h.setup().await;
    assert_eq!(h.put_plan("FLEX", flex_plan()).await.status, 201);
    let arrival = plus(today(), 10);
    let r = h
        .put_restrictions(json!({
            "from": arrival.to_string(), "to": plus(arrival, 1).to_string(),
            "room_types": ["KING"], "rate_plans": ["FLEX"], "set": {"closed_to_arrival": true},
        }))
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);

    let avail = format!(
        "/v1/hotels/H1/availability?arrival={arrival}&departure={}",
        plus(arrival, 2)
    );
    let r = h.get(&avail).await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    let nightly = |amount: i64| {
        json!([{"date": arrival.to_string(), "amount": amount},
               {"date": plus(arrival, 1).to_string(), "amount": amount}])
    };
    assert_eq!(
        r.body["room_types"][0]["rate_plans"],
        json!([
            {"code": "BAR", "bookable": true, "reasons": [], "nightly_rates": nightly(50_000),
             "total": {"amount": 100_000, "currency": "CNY"}},
            {"code": "FLEX", "bookable": false, "reasons": ["closed_to_arrival"],
             "nightly_rates": nightly(40_000), "total": {"amount": 80_000, "currency": "CNY"}},
        ])
    );
    // FLEX does not sell SUITE.
    let suite_plans: Vec<&str> = r.body["room_types"][1]["rate_plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["code"].as_str().unwrap())
        .collect();
    assert_eq!(suite_plans, ["BAR"]);

    // Restricted: 422 with the reasons, nothing booked.
    let r = h.book_under("FLEX", "KING", arrival, 2).await;
    r.assert_problem(422, "restricted");
    assert_eq!(r.body["title"], "Restricted");
    assert_eq!(r.body["reasons"], json!(["closed_to_arrival"]));
    assert_eq!(h.get(&avail).await.body["room_types"][0]["available"], 2);
    // An unknown plan, or one not selling the type: 422 invalid_request; a bad code: 400.
    let r = h.book_under("NOPE", "KING", arrival, 2).await;
    r.assert_problem(422, "invalid_request");
    assert!(r.body["detail"].as_str().unwrap().contains("rate_plan"));
    assert!(r.body.get("reasons").is_none());
    h.book_under("FLEX", "SUITE", arrival, 2)
        .await
        .assert_problem(422, "invalid_request");
    assert_bad_field(
        &h.book_under("bad code", "KING", arrival, 2).await,
        "rate_plan",
    );
    assert_eq!(h.get(&avail).await.body["room_types"][0]["available"], 2);

    // Arriving a day later is not restricted: FLEX's price and policies.
    let later = plus(arrival, 1);
    let r = h.book_under("FLEX", "KING", later, 2).await;
    assert_eq!(r.status, 201, "{:#}", r.body);
    let b = r.body.clone();
    let tz = jiff::tz::TimeZone::get(TZ).unwrap();
    let free_until = later
        .to_zoned(tz)
        .unwrap()
        .timestamp()
        .checked_sub(jiff::SignedDuration::from_hours(720))
        .unwrap();
    let cny = |amount: i64| json!({"amount": amount, "currency": "CNY"});
    assert_eq!(b["rate_plan"], "FLEX");
    assert_eq!(b["total"], cny(80_000));
    assert_eq!(b["payment"]["amount"], cny(80_000));
    assert_eq!(
        b["cancellation_policy"],
        json!({"free_until_hours": 720, "fee": {"nights": 1},
               "free_until": free_until.to_string(), "late_fee": cny(40_000)})
    );
    assert_eq!(
        b["no_show_policy"],
        json!({"fee": {"nights": 1}, "amount": cny(40_000)})
    );
    assert_eq!(b["cancellation_fee"], Value::Null);
    assert_eq!(b["payment"]["fees"], json!([]));
    assert_eq!(b["payment"]["refunds"], json!([]));
    let id = b["id"].as_str().unwrap().to_owned();
    assert_eq!(h.get(&format!("/v1/reservations/{id}")).await.body, b);
    // The front desk shows the plan.
    let day = h
        .get(&format!("/v1/hotels/H1/front-desk?date={later}"))
        .await
        .body;
    assert_eq!(day["arrivals"][0]["id"], id.as_str());
    assert_eq!(day["arrivals"][0]["rate_plan"], "FLEX");

    // Without a plan: BAR, free to cancel.
    let bar = h.book(later, 1, &[]).await.body;
    assert_eq!(bar["rate_plan"], "BAR");
    assert_eq!(
        bar["cancellation_policy"],
        json!({"free_until_hours": 0, "fee": {"percent": 0}, "free_until": null,
               "late_fee": cny(0)})
    );
    assert_eq!(
        bar["no_show_policy"],
        json!({"fee": {"percent": 0}, "amount": cny(0)})
    );
    // Cancelling an unpaid hold costs nothing, shown as 0.
    let c = act(&h, &bar, "cancel").await;
    assert_eq!(c["cancellation_fee"], cny(0));
    assert_eq!(c["payment"]["fees"], json!([]));

    // Paid, then cancelled past its free window: the first night is kept, the rest owed
    // back (or already refunded).
    pay(&h, &b).await;
    let c = act(&h, &b, "cancel").await;
    assert_eq!(c["status"], "cancelled");
    assert_eq!(c["cancellation_fee"], cny(40_000));
    assert_eq!(
        c["payment"]["fees"],
        json!([{"kind": "cancellation", "amount": cny(40_000)}])
    );
    let refunds = c["payment"]["refunds"].as_array().unwrap();
    assert_eq!(refunds.len(), 1, "{:#}", c["payment"]);
    assert_eq!(refunds[0]["amount"], cny(40_000));
    assert!(
        refunds[0]["status"] == "owed" || refunds[0]["status"] == "refunded",
        "{:#}",
        refunds[0]
    );
    let otn = c["payment"]["out_trade_no"].as_str().unwrap();
    let p = h.get(&format!("/v1/payments/{otn}")).await.body;
    assert_eq!(p["fees"], c["payment"]["fees"]);
    assert_eq!(p["refunds"][0]["amount"], cny(40_000));
    let events: Vec<&str> = p["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(events.contains(&"cancelled_after_payment"), "{events:?}");
}
