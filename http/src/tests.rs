//! End-to-end tests of the router over a real engine (actors, journal, tempdir), driven
//! with `tower::ServiceExt::oneshot`.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use innkeep_actors::{Engine, EngineConfig};
use innkeep_engine::{HotelId, Housekeeping, RoomNumber};
use jiff::civil::Date;
use jiff::ToSpan;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::routes::payments::signature_header;
use crate::{router, AppState, PaymentConfig, PROBLEM_JSON};

const SECRET: &[u8] = b"test-secret";
const OLD_SECRET: &[u8] = b"old-secret";
const TZ: &str = "Asia/Shanghai";

/// A running engine with its router; shuts the engine down when dropped.
struct Harness {
    app: Router,
    engine: Engine,
    _dir: tempfile::TempDir,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.engine.shutdown();
    }
}

/// One response, with the body parsed as JSON (`Null` when empty).
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    /// Length of the raw body, to check `Content-Length` against.
    len: usize,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts a problem+json error with this status and code.
    #[track_caller]
    fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{:#}", self.body);
        assert_eq!(self.code(), code, "{:#}", self.body);
        assert_eq!(self.header("content-type"), PROBLEM_JSON);
        assert_eq!(self.body["status"], status);
        assert!(self.body["type"].is_string() && self.body["title"].is_string());
        assert!(self.body["detail"].is_string());
        assert!(self.body["instance"]
            .as_str()
            .unwrap_or("")
            .starts_with('/'));
        assert!(self.len > 0);
    }
}

impl Harness {
    fn start() -> Self {
        Self::with_payment(PaymentConfig::new(SECRET))
    }

    fn with_payment(payment: PaymentConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::start(EngineConfig::new(dir.path())).unwrap();
        let app = router(AppState::new(engine.clone(), payment));
        Self {
            app,
            engine,
            _dir: dir,
        }
    }

    async fn send(&self, req: Request<Body>) -> Reply {
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        if let Some(cl) = headers.get(header::CONTENT_LENGTH) {
            assert_eq!(cl.to_str().unwrap(), bytes.len().to_string());
        }
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            len: bytes.len(),
            headers,
            body,
        }
    }

    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> Reply {
        self.call_with(method, uri, &[], body).await
    }

    async fn call_with(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = match body {
            Some(v) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(v.to_string())),
            None => req.body(Body::empty()),
        };
        self.send(req.unwrap()).await
    }

    async fn raw(
        &self,
        method: Method,
        uri: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        self.send(req.body(Body::from(body)).unwrap()).await
    }

    /// Hotel H1 (Asia/Shanghai, CNY): KING (2 guests, 500.00) rooms 101 and 102,
    /// SUITE (4 guests, 1200.00) room 201.
    async fn setup(&self) {
        let hotel = json!({"name": "Bund Riverside", "time_zone": TZ, "currency": "CNY"});
        assert_eq!(
            self.call(Method::PUT, "/v1/hotels/H1", Some(hotel))
                .await
                .status,
            201
        );
        for (code, name, cap, rate) in [("KING", "King", 2, 50_000), ("SUITE", "Suite", 4, 120_000)]
        {
            let body = json!({"name": name, "capacity": cap, "base_rate": rate});
            let uri = format!("/v1/hotels/H1/room-types/{code}");
            assert_eq!(self.call(Method::PUT, &uri, Some(body)).await.status, 201);
        }
        for (number, rt) in [("101", "KING"), ("102", "KING"), ("201", "SUITE")] {
            let uri = format!("/v1/hotels/H1/rooms/{number}");
            let r = self
                .call(Method::PUT, &uri, Some(json!({"room_type": rt})))
                .await;
            assert_eq!(r.status, 201, "{:#}", r.body);
        }
    }

    async fn book(&self, arrival: Date, nights: i64, extra_headers: &[(&str, &str)]) -> Reply {
        self.call_with(
            Method::POST,
            "/v1/hotels/H1/reservations",
            extra_headers,
            Some(booking(arrival, nights)),
        )
        .await
    }

    async fn get(&self, uri: &str) -> Reply {
        self.call(Method::GET, uri, None).await
    }

    async fn notify(&self, body: &Value, t: i64, secret: &[u8]) -> Reply {
        let bytes = body.to_string().into_bytes();
        let sig = signature_header(secret, t, &bytes);
        let req = Request::post("/v1/payments/notify")
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-signature", sig)
            .body(Body::from(bytes))
            .unwrap();
        self.send(req).await
    }
}

fn today() -> Date {
    let tz = jiff::tz::TimeZone::get(TZ).unwrap();
    jiff::Timestamp::now().to_zoned(tz).date()
}

fn plus(d: Date, days: i64) -> Date {
    d.checked_add(days.days()).unwrap()
}

fn now_secs() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn booking(arrival: Date, nights: i64) -> Value {
    json!({
        "room_type": "KING",
        "arrival": arrival.to_string(),
        "departure": plus(arrival, nights).to_string(),
        "guests": 2,
        "guest": {"name": "Li Lei", "phone": "+86 138-0000-0000", "email": "li@example.com"},
    })
}

fn payment_of(reservation: &Value, status: &str) -> Value {
    json!({
        "out_trade_no": reservation["payment"]["out_trade_no"],
        "trade_no": "T-1",
        "status": status,
        "amount": reservation["payment"]["amount"]["amount"],
        "currency": reservation["payment"]["amount"]["currency"],
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_routes_create_then_update_and_hotel_shape() {
    let h = Harness::start();
    h.setup().await;
    // Same PUTs again answer 200.
    let again = json!({"name": "Bund Riverside Hotel", "time_zone": TZ, "currency": "CNY"});
    let r = h.call(Method::PUT, "/v1/hotels/H1", Some(again)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["name"], "Bund Riverside Hotel");
    let rt =
        json!({"name": "King", "capacity": 2, "base_rate": {"amount": 55_000, "currency": "CNY"}});
    let r = h
        .call(Method::PUT, "/v1/hotels/H1/room-types/KING", Some(rt))
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(
        r.body,
        json!({"code": "KING", "name": "King", "capacity": 2,
               "base_rate": {"amount": 55_000, "currency": "CNY"}, "rooms": 2})
    );
    let r = h
        .call(
            Method::PUT,
            "/v1/hotels/H1/rooms/101",
            Some(json!({"room_type": "KING"})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!({"hotel_id": "H1", "number": "101", "room_type": "KING"})
    );
    let rate = json!({"from": "2030-01-01", "to": "2030-01-03", "amount": 70_000});
    let r = h
        .call(
            Method::PUT,
            "/v1/hotels/H1/room-types/KING/rates",
            Some(rate),
        )
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(
        r.body,
        json!({"room_type": "KING", "from": "2030-01-01", "to": "2030-01-03",
               "amount": {"amount": 70_000, "currency": "CNY"}})
    );

    let r = h.get("/v1/hotels/H1").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!({
            "hotel_id": "H1",
            "name": "Bund Riverside Hotel",
            "time_zone": TZ,
            "currency": "CNY",
            "room_types": [
                {"code": "KING", "name": "King", "capacity": 2,
                 "base_rate": {"amount": 55_000, "currency": "CNY"}, "rooms": 2},
                {"code": "SUITE", "name": "Suite", "capacity": 4,
                 "base_rate": {"amount": 120_000, "currency": "CNY"}, "rooms": 1},
            ],
            "rooms": 3,
        })
    );
    h.get("/v1/hotels/NOPE")
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn availability_shape_and_values() {
    let h = Harness::start();
    h.setup().await;
    let arrival = plus(today(), 10);
    let departure = plus(arrival, 2);
    let rate = json!({"from": arrival.to_string(), "to": plus(arrival, 1).to_string(),
                      "amount": {"amount": 80_000, "currency": "CNY"}});
    let r = h
        .call(
            Method::PUT,
            "/v1/hotels/H1/room-types/KING/rates",
            Some(rate),
        )
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);

    let uri = format!("/v1/hotels/H1/availability?arrival={arrival}&departure={departure}");
    let r = h.get(&uri).await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(
        r.body,
        json!({
            "hotel_id": "H1",
            "arrival": arrival.to_string(),
            "departure": departure.to_string(),
            "nights": 2,
            "room_types": [
                {"room_type": "KING", "available": 2,
                 "nightly_rates": [{"date": arrival.to_string(), "amount": 80_000},
                                   {"date": plus(arrival, 1).to_string(), "amount": 50_000}],
                 "total": {"amount": 130_000, "currency": "CNY"},
                 "rate_plans": [
                    {"code": "BAR", "bookable": true, "reasons": [],
                     "nightly_rates": [{"date": arrival.to_string(), "amount": 80_000},
                                       {"date": plus(arrival, 1).to_string(), "amount": 50_000}],
                     "total": {"amount": 130_000, "currency": "CNY"}},
                 ]},
                {"room_type": "SUITE", "available": 1,
                 "nightly_rates": [{"date": arrival.to_string(), "amount": 120_000},
                                   {"date": plus(arrival, 1).to_string(), "amount": 120_000}],
                 "total": {"amount": 240_000, "currency": "CNY"},
                 "rate_plans": [
                    {"code": "BAR", "bookable": true, "reasons": [],
                     "nightly_rates": [{"date": arrival.to_string(), "amount": 120_000},
                                       {"date": plus(arrival, 1).to_string(), "amount": 120_000}],
                     "total": {"amount": 240_000, "currency": "CNY"}},
                 ]},
            ],
        })
    );
    // Guests above KING's capacity leave it out.
    let r = h.get(&format!("{uri}&guests=3")).await;
    assert_eq!(r.status, 200);
    let types: Vec<&str> = r.body["room_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["room_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["SUITE"]);
    // A booking of one night takes one KING off the stay.
    assert_eq!(h.book(plus(arrival, 1), 1, &[]).await.status, 201);
    let r = h.get(&uri).await;
    assert_eq!(r.body["room_types"][0]["available"], 1);
    assert_eq!(r.body["room_types"][1]["available"], 1);

    // Bad queries.
    h.get("/v1/hotels/H1/availability")
        .await
        .assert_problem(400, "invalid_request");
    h.get(&format!(
        "/v1/hotels/H1/availability?arrival=2030-13-01&departure={departure}"
    ))
    .await
    .assert_problem(400, "invalid_request");
    h.get(&format!("{uri}&guests=0"))
        .await
        .assert_problem(400, "invalid_request");
    h.get(&format!("{uri}&guests=abc"))
        .await
        .assert_problem(400, "invalid_request");
    h.get(&format!(
        "/v1/hotels/H1/availability?arrival={departure}&departure={arrival}"
    ))
    .await
    .assert_problem(422, "invalid_stay");
    h.get(&format!(
        "/v1/hotels/H1/availability?arrival={}&departure={arrival}",
        plus(today(), -1)
    ))
    .await
    .assert_problem(422, "invalid_stay");
    h.get(&format!(
        "/v1/hotels/NOPE/availability?arrival={arrival}&departure={departure}"
    ))
    .await
    .assert_problem(404, "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn booking_get_and_cancel() {
    let h = Harness::start();
    h.setup().await;
    let arrival = plus(today(), 3);
    let r = h.book(arrival, 2, &[]).await;
    assert_eq!(r.status, 201, "{:#}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.header("location"), format!("/v1/reservations/{id}"));
    assert_eq!(r.header("etag"), format!("\"{}\"", r.body["version"]));
    let b = &r.body;
    assert_eq!(b["hotel_id"], "H1");
    assert_eq!(b["room_type"], "KING");
    assert!(b["room"] == "101" || b["room"] == "102");
    assert_eq!(b["arrival"], arrival.to_string());
    assert_eq!(b["departure"], plus(arrival, 2).to_string());
    assert_eq!(b["nights"], 2);
    assert_eq!(b["guests"], 2);
    assert_eq!(
        b["guest"],
        json!({"name": "Li Lei", "phone": "+86 138-0000-0000", "email": "li@example.com"})
    );
    assert_eq!(b["status"], "pending_payment");
    assert_eq!(b["total"], json!({"amount": 100_000, "currency": "CNY"}));
    assert_eq!(b["payment"]["amount"], b["total"]);
    assert_eq!(b["payment"]["status"], "pending");
    assert!(b["payment"]["out_trade_no"]
        .as_str()
        .unwrap()
        .starts_with("ik"));
    for instant in ["created_at", "hold_expires_at"] {
        let s = b[instant].as_str().unwrap();
        assert!(s.ends_with('Z'), "{instant}: {s}");
        s.parse::<jiff::Timestamp>().unwrap();
    }

    let r = h.get(&format!("/v1/reservations/{id}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("etag"), format!("\"{}\"", r.body["version"]));
    let history = r.body["history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["from"], Value::Null);
    assert_eq!(history[0]["to"], "pending_payment");
    let v1 = r.body["version"].as_u64().unwrap();

    // Cancel with an empty body, then with `{}` again: 409.
    let r = h
        .call(Method::POST, &format!("/v1/reservations/{id}/cancel"), None)
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(r.body["status"], "cancelled");
    assert_eq!(r.body["version"].as_u64().unwrap(), v1 + 1);
    assert_eq!(r.header("etag"), format!("\"{}\"", v1 + 1));
    let r = h
        .call(
            Method::POST,
            &format!("/v1/reservations/{id}/cancel"),
            Some(json!({})),
        )
        .await;
    r.assert_problem(409, "invalid_transition");
    let r = h.get(&format!("/v1/reservations/{id}")).await;
    let history = r.body["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1]["from"], "pending_payment");
    assert_eq!(history[1]["to"], "cancelled");
    assert_eq!(history[1]["version"].as_u64().unwrap(), v1 + 1);

    // Action bodies other than empty or {} are refused: an array too (which serde would
    // take for a struct without fields).
    for body in [json!({"x": 1}), json!([]), json!(null), json!(1)] {
        h.call(
            Method::POST,
            &format!("/v1/reservations/{id}/check-in"),
            Some(body),
        )
        .await
        .assert_problem(400, "invalid_request");
    }
    // Ids: not a UUID → 400; unknown → 404.
    h.get("/v1/reservations/not-a-uuid")
        .await
        .assert_problem(400, "invalid_request");
    h.get(&format!("/v1/reservations/{}", uuid::Uuid::now_v7()))
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn if_match_mismatch_is_412_and_changes_nothing() {
    let h = Harness::start();
    h.setup().await;
    let r = h.book(plus(today(), 1), 1, &[]).await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let v = r.body["version"].as_u64().unwrap();
    let cancel = format!("/v1/reservations/{id}/cancel");
    let stale = format!("\"{}\"", v + 5);
    h.call_with(Method::POST, &cancel, &[("if-match", &stale)], None)
        .await
        .assert_problem(412, "version_mismatch");
    h.call_with(Method::POST, &cancel, &[("if-match", "\"abc\"")], None)
        .await
        .assert_problem(400, "invalid_request");
    let r = h.get(&format!("/v1/reservations/{id}")).await;
    assert_eq!(r.body["status"], "pending_payment");
    assert_eq!(r.body["version"].as_u64().unwrap(), v);
    // Weak form of the right version passes.
    let weak = format!("W/\"{v}\"");
    let r = h
        .call_with(Method::POST, &cancel, &[("if-match", &weak)], None)
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(r.body["status"], "cancelled");
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_key_replays_and_refuses_reuse() {
    let h = Harness::start();
    h.setup().await;
    let arrival = plus(today(), 5);
    let key = [("idempotency-key", "order-42")];
    let first = h.book(arrival, 1, &key).await;
    assert_eq!(first.status, 201, "{:#}", first.body);
    let again = h.book(arrival, 1, &key).await;
    assert_eq!(again.status, 201, "{:#}", again.body);
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(again.header("location"), first.header("location"));
    // Same key, another body.
    h.book(arrival, 2, &key)
        .await
        .assert_problem(422, "idempotency_key_reused");
    // A bad key changes nothing.
    h.book(arrival, 1, &[("idempotency-key", "no spaces allowed")])
        .await
        .assert_problem(400, "invalid_request");
    let uri = format!(
        "/v1/hotels/H1/availability?arrival={arrival}&departure={}",
        plus(arrival, 1)
    );
    assert_eq!(h.get(&uri).await.body["room_types"][0]["available"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let h = Harness::start();
    h.setup().await;
    let hotel_before = h.get("/v1/hotels/H1").await.body;
    let arrival = plus(today(), 2);
    let avail_uri = format!(
        "/v1/hotels/H1/availability?arrival={arrival}&departure={}",
        plus(arrival, 1)
    );
    let avail_before = h.get(&avail_uri).await.body;

    // Malformed JSON, unknown field, wrong type.
    h.raw(
        Method::PUT,
        "/v1/hotels/H1",
        Some("application/json"),
        b"{\"name\": ".to_vec(),
    )
    .await
    .assert_problem(400, "invalid_request");
    h.call(
        Method::PUT,
        "/v1/hotels/H1",
        Some(json!({"name": "X", "time_zone": TZ, "currency": "CNY", "stars": 5})),
    )
    .await
    .assert_problem(400, "invalid_request");
    h.call(
        Method::PUT,
        "/v1/hotels/H1/room-types/KING",
        Some(json!({"name": "K", "capacity": "two", "base_rate": 1})),
    )
    .await
    .assert_problem(400, "invalid_request");
    // Bad currency, bad time zone, bad hotel code.
    h.call(
        Method::PUT,
        "/v1/hotels/H2",
        Some(json!({"name": "X", "time_zone": TZ, "currency": "XYZ"})),
    )
    .await
    .assert_problem(400, "invalid_request");
    h.call(
        Method::PUT,
        "/v1/hotels/H2",
        Some(json!({"name": "X", "time_zone": "Mars/Olympus", "currency": "CNY"})),
    )
    .await
    .assert_problem(400, "invalid_request");
    h.call(
        Method::PUT,
        "/v1/hotels/bad%20id",
        Some(json!({"name": "X", "time_zone": TZ, "currency": "CNY"})),
    )
    .await
    .assert_problem(400, "invalid_request");
    h.get("/v1/hotels/H2")
        .await
        .assert_problem(404, "not_found");
    // Changing the currency of a hotel with room types.
    h.call(
        Method::PUT,
        "/v1/hotels/H1",
        Some(json!({"name": "Bund Riverside", "time_zone": TZ, "currency": "USD"})),
    )
    .await
    .assert_problem(409, "currency_locked");
    // Negative rate, foreign currency, float amount, capacity 0.
    for body in [
        json!({"name": "K", "capacity": 2, "base_rate": -1}),
        json!({"name": "K", "capacity": 2, "base_rate": {"amount": 1, "currency": "EUR"}}),
        json!({"name": "K", "capacity": 2, "base_rate": 10.5}),
        json!({"name": "K", "capacity": 0, "base_rate": 1}),
    ] {
        h.call(Method::PUT, "/v1/hotels/H1/room-types/KING", Some(body))
            .await
            .assert_problem(400, "invalid_request");
    }
    let rate = json!({"from": "2030-01-02", "to": "2030-01-01", "amount": 1});
    h.call(
        Method::PUT,
        "/v1/hotels/H1/room-types/KING/rates",
        Some(rate),
    )
    .await
    .assert_problem(400, "invalid_request");
    let rate = json!({"from": "2030-01-01", "to": "2030-01-02", "amount": -5});
    h.call(
        Method::PUT,
        "/v1/hotels/H1/room-types/KING/rates",
        Some(rate),
    )
    .await
    .assert_problem(400, "invalid_request");
    let rate = json!({"from": "01/01/2030", "to": "2030-01-02", "amount": 5});
    h.call(
        Method::PUT,
        "/v1/hotels/H1/room-types/KING/rates",
        Some(rate),
    )
    .await
    .assert_problem(400, "invalid_request");
    h.call(
        Method::PUT,
        "/v1/hotels/H1/rooms/301",
        Some(json!({"room_type": "NOPE"})),
    )
    .await
    .assert_problem(404, "not_found");

    // Bookings: bad date, guests 0, guests above capacity, bad contact, past arrival,
    // unknown room type.
    let mut b = booking(arrival, 1);
    b["arrival"] = json!("2030-02-30");
    let uri = "/v1/hotels/H1/reservations";
    h.call(Method::POST, uri, Some(b))
        .await
        .assert_problem(400, "invalid_request");
    let mut b = booking(arrival, 1);
    b["guests"] = json!(0);
    h.call(Method::POST, uri, Some(b))
        .await
        .assert_problem(400, "invalid_request");
    let mut b = booking(arrival, 1);
    b["guests"] = json!(3);
    h.call(Method::POST, uri, Some(b))
        .await
        .assert_problem(400, "invalid_request");
    let mut b = booking(arrival, 1);
    b["guests"] = json!(-1);
    h.call(Method::POST, uri, Some(b))
        .await
        .assert_problem(400, "invalid_request");
    let mut b = booking(arrival, 1);
    b["guest"]["email"] = json!("not-an-email");
    h.call(Method::POST, uri, Some(b))
        .await
        .assert_problem(400, "invalid_request");
    let mut b = booking(arrival, 1);
    b["guest"]["age"] = json!(30);
    h.call(Method::POST, uri, Some(b))
        .await
        .assert_problem(400, "invalid_request");
    h.call(Method::POST, uri, Some(booking(plus(today(), -1), 2)))
        .await
        .assert_problem(422, "invalid_stay");
    let mut b = booking(arrival, 1);
    b["room_type"] = json!("NOPE");
    h.call(Method::POST, uri, Some(b))
        .await
        .assert_problem(404, "not_found");
    let mut b = booking(arrival, 1);
    b.as_object_mut().unwrap().remove("guest");
    h.call(Method::POST, uri, Some(b))
        .await
        .assert_problem(400, "invalid_request");

    // Body over 1 MiB, no content type, wrong content type.
    let mut huge = b"{\"name\": \"".to_vec();
    huge.extend(std::iter::repeat_n(b'x', (1 << 20) + 10));
    huge.extend(b"\", \"time_zone\": \"UTC\", \"currency\": \"CNY\"}");
    h.raw(
        Method::PUT,
        "/v1/hotels/H1",
        Some("application/json"),
        huge.clone(),
    )
    .await
    .assert_problem(413, "payload_too_large");
    h.raw(
        Method::POST,
        "/v1/payments/notify",
        Some("application/json"),
        huge,
    )
    .await
    .assert_problem(413, "payload_too_large");
    let hotel = json!({"name": "X", "time_zone": TZ, "currency": "CNY"}).to_string();
    h.raw(
        Method::PUT,
        "/v1/hotels/H1",
        None,
        hotel.clone().into_bytes(),
    )
    .await
    .assert_problem(415, "invalid_request");
    h.raw(
        Method::PUT,
        "/v1/hotels/H1",
        Some("text/plain"),
        hotel.into_bytes(),
    )
    .await
    .assert_problem(415, "invalid_request");

    // Housekeeping: unknown status, a step the workflow refuses, unknown room.
    let hk = "/v1/hotels/H1/rooms/101/housekeeping";
    h.call(Method::PUT, hk, Some(json!({"status": "sparkling"})))
        .await
        .assert_problem(400, "invalid_request");
    h.call(Method::PUT, hk, Some(json!({"status": "cleaning"})))
        .await
        .assert_problem(400, "invalid_request");
    h.call(
        Method::PUT,
        "/v1/hotels/H1/rooms/999/housekeeping",
        Some(json!({"status": "dirty"})),
    )
    .await
    .assert_problem(404, "not_found");

    // Routing.
    h.get("/v1/nowhere").await.assert_problem(404, "not_found");
    h.call(Method::DELETE, "/v1/hotels/H1", None)
        .await
        .assert_problem(405, "method_not_allowed");

    // Nothing changed.
    assert_eq!(h.get("/v1/hotels/H1").await.body, hotel_before);
    assert_eq!(h.get(&avail_uri).await.body, avail_before);
    let rooms = h.get("/v1/hotels/H1/rooms").await.body;
    for room in rooms.as_array().unwrap() {
        assert_eq!(room["housekeeping"], "clean");
        assert_eq!(room["occupancy"], "vacant");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn payment_notify_signature_matrix() {
    let h = Harness::with_payment(PaymentConfig::new(SECRET).with_previous_secret(OLD_SECRET));
    h.setup().await;
    let r = h.book(plus(today(), 4), 1, &[]).await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let res_uri = format!("/v1/reservations/{id}");
    let v = r.body["version"].as_u64().unwrap();
    let paid = payment_of(&r.body, "succeeded");
    let now = now_secs();

    // Rejected: wrong secret, stale, future, missing header, tampered body.
    h.notify(&paid, now, b"wrong")
        .await
        .assert_problem(401, "bad_signature");
    h.notify(&paid, now - 301, SECRET)
        .await
        .assert_problem(401, "bad_signature");
    h.notify(&paid, now + 400, SECRET)
        .await
        .assert_problem(401, "bad_signature");
    let unsigned = h
        .raw(
            Method::POST,
            "/v1/payments/notify",
            Some("application/json"),
            paid.to_string().into_bytes(),
        )
        .await;
    unsigned.assert_problem(401, "bad_signature");
    let sig = signature_header(SECRET, now, paid.to_string().as_bytes());
    let mut tampered = paid.clone();
    tampered["amount"] = json!(1);
    let req = Request::post("/v1/payments/notify")
        .header("x-signature", sig)
        .body(Body::from(tampered.to_string()))
        .unwrap();
    h.send(req).await.assert_problem(401, "bad_signature");
    // Signed but wrong: unknown reference, amount or currency mismatch, garbage body.
    let mut unknown = paid.clone();
    unknown["out_trade_no"] = json!(format!("ik{}", uuid::Uuid::now_v7().simple()));
    h.notify(&unknown, now, SECRET)
        .await
        .assert_problem(404, "not_found");
    unknown["out_trade_no"] = json!("nonsense");
    h.notify(&unknown, now, SECRET)
        .await
        .assert_problem(404, "not_found");
    let mut short = paid.clone();
    short["amount"] = json!(1);
    h.notify(&short, now, SECRET)
        .await
        .assert_problem(422, "amount_mismatch");
    let mut usd = paid.clone();
    usd["currency"] = json!("USD");
    h.notify(&usd, now, SECRET)
        .await
        .assert_problem(422, "amount_mismatch");
    h.notify(&json!({"hello": 1}), now, SECRET)
        .await
        .assert_problem(400, "invalid_request");
    // A failure report is recorded; the reservation stays pending (its hold runs on).
    let failed = payment_of(&r.body, "failed");
    let r = h.notify(&failed, now, SECRET).await;
    assert_eq!(
        (r.status.as_u16(), r.body.clone()),
        (200, json!({"received": true}))
    );
    let r = h.get(&res_uri).await;
    assert_eq!(r.body["status"], "pending_payment");
    assert_eq!(r.body["payment"]["status"], "failed");
    let v = v + 1;
    assert_eq!(r.body["version"].as_u64().unwrap(), v);
    // The same failure again changes nothing.
    h.notify(&failed, now, SECRET).await;
    assert_eq!(h.get(&res_uri).await.body["version"].as_u64().unwrap(), v);

    // Good, signed with the previous secret during rotation.
    let r = h.notify(&paid, now, OLD_SECRET).await;
    assert_eq!(
        (r.status.as_u16(), r.body.clone()),
        (200, json!({"received": true}))
    );
    let r = h.get(&res_uri).await;
    assert_eq!(r.body["status"], "confirmed");
    assert_eq!(r.body["payment"]["status"], "succeeded");
    let confirmed_version = r.body["version"].as_u64().unwrap();
    assert_eq!(confirmed_version, v + 1);
    // Duplicate: 200, applied once.
    let r = h.notify(&paid, now, SECRET).await;
    assert_eq!(
        (r.status.as_u16(), r.body.clone()),
        (200, json!({"received": true}))
    );
    let r = h.get(&res_uri).await;
    assert_eq!(r.body["version"].as_u64().unwrap(), confirmed_version);
    assert_eq!(r.body["history"].as_array().unwrap().len(), 2);

    // Success after cancellation: 200 (refund owed), the reservation stays cancelled.
    let r = h.book(plus(today(), 4), 1, &[]).await;
    let id2 = r.body["id"].as_str().unwrap().to_owned();
    let late = payment_of(&r.body, "succeeded");
    let c = h
        .call(
            Method::POST,
            &format!("/v1/reservations/{id2}/cancel"),
            None,
        )
        .await;
    assert_eq!(c.status, 200);
    let r = h.notify(&late, now_secs(), SECRET).await;
    assert_eq!(
        (r.status.as_u16(), r.body.clone()),
        (200, json!({"received": true}))
    );
    let r = h.get(&format!("/v1/reservations/{id2}")).await;
    assert_eq!(r.body["status"], "cancelled");
    // No provider here to refund through: the money stays recorded as owed back.
    assert_eq!(r.body["payment"]["status"], "succeeded");
    let otn = late["out_trade_no"].as_str().unwrap();
    let p = h.get(&format!("/v1/payments/{otn}")).await;
    assert_eq!(p.status, 200);
    assert_eq!(p.body["refund_owed"], true);
    assert_eq!(p.body["reservation_id"], json!(id2));
    let events: Vec<&str> = p.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["created", "refund_owed"]);
    // And a duplicate of that late success changes nothing.
    let before = h.get(&format!("/v1/reservations/{id2}")).await.body;
    let r = h.notify(&late, now_secs(), SECRET).await;
    assert_eq!(r.status, 200);
    assert_eq!(h.get(&format!("/v1/reservations/{id2}")).await.body, before);
    h.get("/v1/payments/ik00000000000000000000000000000000")
        .await
        .assert_problem(404, "not_found");
    h.get("/v1/payments/sandbox/ledger")
        .await
        .assert_problem(404, "not_found");
}

/// A gateway that refunds whatever it is asked to and remembers it.
#[derive(Debug, Default)]
struct RecordingGateway {
    refunds: std::sync::Mutex<Vec<innkeep_actors::RefundRequest>>,
}

impl innkeep_actors::PaymentGateway for RecordingGateway {
    fn create(&self, _: innkeep_actors::ChargeIntent) -> innkeep_actors::GatewayFuture<()> {
        Box::pin(async { Ok(()) })
    }
    fn query(&self, _: String) -> innkeep_actors::GatewayFuture<innkeep_actors::GatewayStatus> {
        Box::pin(async { Ok(innkeep_actors::GatewayStatus::Pending) })
    }
    fn refund(&self, r: innkeep_actors::RefundRequest) -> innkeep_actors::GatewayFuture<()> {
        self.refunds.lock().unwrap().push(r);
        Box::pin(async { Ok(()) })
    }
}

/// The notify matrix's money side: failure then success confirms; a success after expiry
/// or cancellation is refunded through the gateway and recorded `refunded`, the
/// reservation staying expired/cancelled without its nights; cancelling a paid
/// reservation refunds too; duplicates change nothing.
#[tokio::test(flavor = "multi_thread")]
async fn payment_notify_refunds_late_and_cancelled_payments() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = std::sync::Arc::new(RecordingGateway::default());
    let mut config = EngineConfig::new(dir.path());
    config.hold_seconds = 1;
    config.payment.gateway = Some(gateway.clone());
    let engine = Engine::start(config).unwrap();
    let h = Harness {
        app: router(AppState::new(engine.clone(), PaymentConfig::new(SECRET))),
        engine,
        _dir: dir,
    };
    h.setup().await;
    let arrival = plus(today(), 4);

    // Failure, then success: confirmed.
    let a = h.book(arrival, 1, &[]).await.body;
    h.notify(&payment_of(&a, "failed"), now_secs(), SECRET)
        .await;
    let r = h
        .notify(&payment_of(&a, "succeeded"), now_secs(), SECRET)
        .await;
    assert_eq!(r.status, 200);
    let a_id = a["id"].as_str().unwrap();
    let r = h.get(&format!("/v1/reservations/{a_id}")).await;
    assert_eq!(
        (
            r.body["status"].as_str(),
            r.body["payment"]["status"].as_str()
        ),
        (Some("confirmed"), Some("succeeded"))
    );

    // Success after the hold lapsed: refunded, and the reservation does not come back.
    let b = h.book(arrival, 1, &[]).await.body;
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let r = h
        .notify(&payment_of(&b, "succeeded"), now_secs(), SECRET)
        .await;
    assert_eq!(r.status, 200);
    let b_otn = b["payment"]["out_trade_no"].as_str().unwrap().to_owned();
    let p = wait_refunded(&h, &b_otn).await;
    let events: Vec<&str> = p["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["created", "refund_owed", "refunded"]);
    let b_id = b["id"].as_str().unwrap();
    let r = h.get(&format!("/v1/reservations/{b_id}")).await;
    assert_ne!(r.body["status"], "confirmed");
    // The expiry timer still expires it; its room-nights are free for others.
    for _ in 0..40 {
        if h.get(&format!("/v1/reservations/{b_id}")).await.body["status"] == "expired" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        h.get(&format!("/v1/reservations/{b_id}")).await.body["status"],
        "expired"
    );
    // A duplicate of the late success changes nothing and refunds nothing more.
    let before = h.get(&format!("/v1/reservations/{b_id}")).await.body;
    let r = h
        .notify(&payment_of(&b, "succeeded"), now_secs(), SECRET)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        h.get(&format!("/v1/reservations/{b_id}")).await.body,
        before
    );

    // Cancelling a paid reservation refunds it.
    let c = h
        .call(
            Method::POST,
            &format!("/v1/reservations/{a_id}/cancel"),
            None,
        )
        .await;
    assert_eq!(c.status, 200);
    let a_otn = a["payment"]["out_trade_no"].as_str().unwrap().to_owned();
    let p = wait_refunded(&h, &a_otn).await;
    assert_eq!(
        p["history"].as_array().unwrap().last().unwrap()["event"],
        "refunded"
    );
    let r = h.get(&format!("/v1/reservations/{a_id}")).await;
    assert_eq!(r.body["status"], "cancelled");
    let refunds = gateway.refunds.lock().unwrap().clone();
    let refunded: Vec<&str> = refunds.iter().map(|r| r.out_trade_no.as_str()).collect();
    assert_eq!(refunded, [b_otn.as_str(), a_otn.as_str()]);
}

async fn wait_refunded(h: &Harness, out_trade_no: &str) -> Value {
    for _ in 0..50 {
        let p = h.get(&format!("/v1/payments/{out_trade_no}")).await;
        if p.body["status"] == "refunded" {
            assert_eq!(p.body["refund_owed"], false);
            return p.body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{out_trade_no} was not refunded");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_in_and_out_with_room_status() {
    let h = Harness::start();
    h.setup().await;
    let r = h.book(today(), 1, &[]).await;
    assert_eq!(r.status, 201, "{:#}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let room = r.body["room"].as_str().unwrap().to_owned();
    // Not paid yet: 409.
    let check_in = format!("/v1/reservations/{id}/check-in");
    h.call(Method::POST, &check_in, None)
        .await
        .assert_problem(409, "invalid_transition");
    let r = h
        .notify(&payment_of(&r.body, "succeeded"), now_secs(), SECRET)
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    let r = h.call(Method::POST, &check_in, Some(json!({}))).await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(r.body["status"], "checked_in");

    let rooms = h.get("/v1/hotels/H1/rooms").await;
    assert_eq!(rooms.status, 200);
    let entry = rooms
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["number"] == room.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        entry,
        json!({"number": room, "room_type": "KING", "occupancy": "occupied",
               "housekeeping": "clean", "reservation": id, "out_of_order": []})
    );
    let r = h
        .call(
            Method::POST,
            &format!("/v1/reservations/{id}/check-out"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(r.body["status"], "checked_out");
    let rooms = h.get("/v1/hotels/H1/rooms").await.body;
    let entry = rooms
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["number"] == room.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["occupancy"], "vacant");
    assert_eq!(entry["housekeeping"], "dirty");
    assert_eq!(entry["reservation"], Value::Null);

    let hk = format!("/v1/hotels/H1/rooms/{room}/housekeeping");
    let r = h
        .call(Method::PUT, &hk, Some(json!({"status": "cleaning"})))
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(r.body["housekeeping"], "cleaning");
    assert_eq!(r.body["number"], room.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn request_ids_health_and_openapi() {
    let h = Harness::start();
    let r = h
        .call_with(
            Method::GET,
            "/healthz",
            &[("x-request-id", "abc-123")],
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"status": "ok"}));
    assert_eq!(r.header("x-request-id"), "abc-123");
    // Generated when absent, replaced when unusable; also on errors.
    let r = h.get("/nowhere").await;
    r.assert_problem(404, "not_found");
    assert!(uuid::Uuid::parse_str(r.header("x-request-id")).is_ok());
    let long = "x".repeat(129);
    let r = h
        .call_with(Method::GET, "/healthz", &[("x-request-id", &long)], None)
        .await;
    assert!(uuid::Uuid::parse_str(r.header("x-request-id")).is_ok());

    let r = h.get("/readyz").await;
    assert_eq!(r.status, 200);

    let r = h.get("/openapi.json").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), "application/json");
    assert!(r.body["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = r.body["paths"].as_object().unwrap();
    // Every route the server protects or serves publicly is described.
    for (method, path, _) in crate::auth::ROUTES {
        let m = method.to_ascii_lowercase();
        assert!(
            paths.get(*path).is_some_and(|p| p[&m].is_object()),
            "{m} {path} missing from /openapi.json"
        );
    }
    let schemas = r.body["components"]["schemas"].as_object().unwrap();
    for s in [
        "ReservationView",
        "Problem",
        "MoneyInput",
        "AvailabilityView",
        "NotifyRequest",
        "PutRatePlanRequest",
        "RatePlanView",
        "RatePlansView",
        "FeeRule",
        "PutRestrictionsRequest",
        "RestrictionSet",
        "RestrictionsView",
        "RestrictionsPutView",
        "RatePlanOfferView",
        "CancellationPolicyView",
        "NoShowPolicyView",
        "PaymentFeeView",
        "RefundView",
    ] {
        assert!(schemas.contains_key(s), "schema {s} missing");
    }
    // Issue #15's routes, each with its body and answer.
    let op = |path: &str, method: &str| paths[path][method].clone();
    let put_plan = op("/v1/hotels/{hotel_id}/rate-plans/{code}", "put");
    assert_eq!(
        put_plan["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/PutRatePlanRequest"
    );
    assert!(put_plan["responses"]["201"].is_object() && put_plan["responses"]["200"].is_object());
    assert!(put_plan["security"].is_array());
    assert!(op("/v1/hotels/{hotel_id}/rate-plans", "get")["responses"]["200"].is_object());
    assert!(op("/v1/hotels/{hotel_id}/restrictions", "put")["responses"]["200"].is_object());
    let get_restrictions = op("/v1/hotels/{hotel_id}/restrictions", "get");
    let params: Vec<&str> = get_restrictions["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["hotel_id", "from", "to"]);
    assert!(
        op("/v1/hotels/{hotel_id}/reservations", "post")["responses"]["422"]["description"]
            .as_str()
            .unwrap()
            .contains("restricted")
    );
    assert!(schemas["Problem"]["properties"]["reasons"].is_object());
    assert!(schemas["BookRequestBody"]["properties"]["rate_plan"].is_object());
    assert!(schemas["TypeAvailabilityView"]["properties"]["rate_plans"].is_object());

    // Not ready once shutting down.
    h.engine.shutdown();
    h.get("/readyz").await.assert_problem(503, "not_ready");
    let r = h.get("/v1/hotels/H1/rooms").await;
    r.assert_problem(503, "shutting_down");
    assert!(!r.header("retry-after").is_empty());
}

/// Every `$ref` in `v`.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, item) in map {
                match (k.as_str(), item) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(item, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| refs(i, out)),
        _ => {}
    }
}

/// `/openapi.json` states the rules the server enforces (issue #17): patterns, formats,
/// ranges and enumerations from the engine's own limits, optional headers, every status
/// the layers around a handler can answer, the security scheme, and links between
/// operations that resolve.
#[tokio::test(flavor = "multi_thread")]
async fn openapi_states_the_rules_the_server_enforces() {
    use innkeep_engine::selling::{MAX_FEE_NIGHTS, MAX_FREE_UNTIL_HOURS};
    let h = Harness::start();
    let doc = h.get("/openapi.json").await.body;
    let schemas = doc["components"]["schemas"].as_object().unwrap();

    // Every reference resolves.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 100);
    for r in &all {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or(r);
        assert!(schemas.contains_key(name), "unresolved {r}");
    }

    // The constraints, from the engine's rules.
    assert_eq!(schemas["Code"]["pattern"], "^[A-Za-z0-9._-]{1,64}$");
    assert_eq!(
        schemas["Code"]["maxLength"],
        innkeep_engine::ids::MAX_CODE_LEN
    );
    assert_eq!(schemas["CivilDate"]["format"], "date");
    assert_eq!(schemas["ReservationId"]["format"], "uuid");
    assert_eq!(schemas["OutTradeNo"]["pattern"], "^ik[0-9A-Fa-f]{32}$");
    assert_eq!(
        schemas["Capacity"]["maximum"],
        innkeep_engine::catalog::MAX_CAPACITY
    );
    assert_eq!(
        schemas["AmountMinor"]["maximum"],
        innkeep_engine::money::MAX_AMOUNT_MINOR
    );
    assert_eq!(schemas["FeeNights"]["maximum"], MAX_FEE_NIGHTS);
    let currencies = schemas["CurrencyCode"]["enum"].as_array().unwrap();
    assert!(currencies.contains(&json!("CNY")) && !currencies.contains(&json!("ABC")));
    let zones = schemas["TimeZoneName"]["enum"].as_array().unwrap();
    assert!(zones.contains(&json!(TZ)));
    let prop = |schema: &str, field: &str| schemas[schema]["properties"][field].clone();
    assert_eq!(
        prop("PutHotelRequest", "currency")["$ref"],
        "#/components/schemas/CurrencyCode"
    );
    assert_eq!(
        prop("GuestContact", "phone")["$ref"],
        "#/components/schemas/PhoneNumber"
    );
    assert_eq!(
        prop("BookRequestBody", "arrival")["$ref"],
        "#/components/schemas/CivilDate"
    );
    assert_eq!(
        prop("PutRatePlanRequest", "room_types")["items"]["$ref"],
        "#/components/schemas/Code"
    );
    assert_eq!(prop("PutRatePlanRequest", "room_types")["minItems"], 1);
    assert_eq!(
        prop("PutRatePlanRequest", "adjust_percent")["minimum"],
        -100
    );
    assert_eq!(prop("PutRatePlanRequest", "adjust_percent")["maximum"], 100);
    assert_eq!(
        prop("PutRatePlanRequest", "max_advance_days")["maximum"],
        MAX_FEE_NIGHTS
    );
    assert_eq!(
        prop("CancellationInput", "free_until_hours")["maximum"],
        MAX_FREE_UNTIL_HOURS
    );
    assert_eq!(
        prop("RestrictionSet", "min_stay_through")["maximum"],
        MAX_FEE_NIGHTS
    );
    assert_eq!(
        prop("PutRestrictionsRequest", "weekdays")["items"]["$ref"],
        "#/components/schemas/Weekday"
    );
    // `set` sets something (and utoipa's `maxProperties` slip is not there).
    assert_eq!(schemas["RestrictionSet"]["minProperties"], 1);
    assert!(schemas["RestrictionSet"]["maxProperties"].is_null());
    // A fee has exactly one key.
    for fee in schemas["FeeRule"]["oneOf"].as_array().unwrap() {
        assert_eq!(fee["additionalProperties"], false);
        assert_eq!(fee["required"].as_array().unwrap().len(), 1);
    }
    for body in [
        "PutHotelRequest",
        "BookRequestBody",
        "GuestContact",
        "MoneyObject",
    ] {
        assert_eq!(schemas[body]["additionalProperties"], false, "{body}");
    }

    let paths = doc["paths"].as_object().unwrap();
    let mut operation_ids = Vec::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let name = format!("{method} {path}");
            operation_ids.push(op["operationId"].as_str().unwrap().to_owned());
            let responses = op["responses"].as_object().unwrap();
            let has = |status: &str| responses.contains_key(status);
            // Every parameter has a schema, and every path segment can be malformed.
            for p in op["parameters"].as_array().into_iter().flatten() {
                assert!(p["schema"].is_object(), "{name}: {p}");
                if p["in"] == "header" {
                    assert_eq!(p["required"], p["name"] == "X-Signature", "{name}: {p}");
                }
            }
            if path.contains('{') {
                assert!(has("400"), "{name}");
            }
            assert!(has("503"), "{name}");
            if path != "/healthz" && path != "/readyz" {
                assert!(has("429"), "{name}");
            }
            if op["requestBody"].is_object() {
                assert!(has("413"), "{name}");
            }
            let access =
                crate::auth::route_access(&method.to_ascii_uppercase().parse().unwrap(), path);
            let public = access == Some(crate::auth::Access::Public);
            assert_eq!(op["security"].is_array(), !public, "{name}");
            if !public {
                assert!(has("401") && has("403"), "{name}");
            }
            // On a node of a cluster, a hotel another node serves is 421 misdirected.
            if path.contains("{hotel_id}")
                || matches!(access, Some(crate::auth::Access::Reservation(_)))
            {
                assert!(has("421"), "{name}");
            }
            // A hotel the key does not cover is answered as missing.
            if matches!(
                access,
                Some(crate::auth::Access::Hotel(_) | crate::auth::Access::Reservation(_))
            ) {
                assert!(has("404"), "{name}");
            }
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"][PROBLEM_JSON]["schema"]["$ref"],
                        "#/components/schemas/Problem",
                        "{name} {status}"
                    );
                    let text = response["description"].as_str().unwrap();
                    assert!(
                        text.split(|c: char| !c.is_ascii_lowercase() && c != '_')
                            .any(|w| w.contains('_')
                                || [
                                    "forbidden",
                                    "unauthorized",
                                    "timeout",
                                    "overloaded",
                                    "restricted",
                                    "misdirected"
                                ]
                                .contains(&w)),
                        "{name} {status}: no problem code in {text:?}"
                    );
                }
            }
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );

    // Optional headers where they are honoured.
    let header = |path: &str, method: &str, name: &str| {
        paths[path][method]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{method} {path}: no {name}"))
    };
    let key = header(
        "/v1/hotels/{hotel_id}/reservations",
        "post",
        "Idempotency-Key",
    );
    assert_eq!(key["schema"]["$ref"], "#/components/schemas/Code");
    for action in ["cancel", "check-in", "check-out", "move"] {
        let path = format!("/v1/reservations/{{id}}/{action}");
        let if_match = header(&path, "post", "If-Match");
        assert_eq!(if_match["schema"]["$ref"], "#/components/schemas/IfMatch");
        assert!(paths[&path]["post"]["responses"]["412"].is_object());
    }
    // An action's body may be left out.
    let cancel = &paths["/v1/reservations/{id}/cancel"]["post"];
    assert_eq!(cancel["requestBody"]["required"], false);

    // Links name existing operations, in OpenAPI's spelling.
    let book = &paths["/v1/hotels/{hotel_id}/reservations"]["post"];
    let get = &book["responses"]["201"]["links"]["GetReservation"];
    assert_eq!(get["operationId"], "get_reservation");
    assert_eq!(get["parameters"]["id"], "$response.body#/id");
    let mut links = 0;
    for item in paths.values() {
        for op in item.as_object().unwrap().values() {
            for response in op["responses"].as_object().unwrap().values() {
                for link in response["links"]
                    .as_object()
                    .into_iter()
                    .flat_map(|l| l.values())
                {
                    let to = link["operationId"].as_str().unwrap();
                    assert!(operation_ids.iter().any(|id| id == to), "{link}");
                    links += 1;
                }
            }
        }
    }
    assert!(links > 20, "{links}");
}

/// An engine past its in-flight bound answers 503 `overloaded` with `Retry-After`.
#[tokio::test(flavor = "multi_thread")]
async fn overloaded_engine_answers_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        max_in_flight: 0,
        ..EngineConfig::new(dir.path())
    };
    let engine = Engine::start(config).unwrap();
    let h = Harness {
        app: router(AppState::new(engine.clone(), PaymentConfig::new(SECRET))),
        engine,
        _dir: dir,
    };
    let reply = h
        .call(
            Method::PUT,
            "/v1/hotels/H1",
            Some(json!({"name": "Hotel", "time_zone": TZ, "currency": "CNY"})),
        )
        .await;
    reply.assert_problem(503, "overloaded");
    assert_eq!(reply.header("retry-after"), "1");
    // Shed before parsing: a body the handler would refuse with 400 is not even read.
    h.call(Method::PUT, "/v1/hotels/H1", Some(json!({"name": 7})))
        .await
        .assert_problem(503, "overloaded");
    // Operational routes are never shed.
    assert_eq!(h.get("/healthz").await.status.as_u16(), 200);
    assert_eq!(h.get("/metrics").await.status.as_u16(), 200);
    // Reads that do not enter the engine are shed as well while it is saturated.
    h.get("/v1/hotels/H1")
        .await
        .assert_problem(503, "overloaded");
}

/// Reads the next SSE event (`id`, `event`, `data`) from a streaming body, skipping
/// keep-alive comments; `None` when the stream ended. Bounded: a missing event fails the
/// test after ten seconds instead of hanging it.
async fn next_sse(body: &mut Body, buf: &mut String) -> Option<(String, String, Value)> {
    loop {
        if let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (mut id, mut name, mut data) = (String::new(), String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if name.is_empty() && data.is_empty() {
                continue; // a keep-alive comment
            }
            return Some((id, name, serde_json::from_str(&data).unwrap_or(Value::Null)));
        }
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("an event within 10 s");
        match frame {
            None => return None,
            Some(frame) => {
                if let Ok(bytes) = frame.unwrap().into_data() {
                    buf.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
        }
    }
}

/// The event stream: live events with journal ids, resuming after `Last-Event-ID` without
/// gap or duplicate (across a restart too), a `resync` for ids older than the window, and
/// the end of every stream on shutdown.
#[tokio::test(flavor = "multi_thread")]
async fn event_stream_is_live_resumable_and_ends_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(EngineConfig::new(dir.path())).unwrap();
    let state = AppState::new(engine.clone(), PaymentConfig::new(SECRET));
    let streams = state.streams.clone();
    let h = Harness {
        app: router(state),
        engine,
        _dir: dir,
    };
    h.setup().await;
    let open = |last: Option<&str>| {
        let mut req = Request::get("/v1/hotels/H1/events");
        if let Some(id) = last {
            req = req.header("last-event-id", id);
        }
        h.app.clone().oneshot(req.body(Body::empty()).unwrap())
    };
    let res = open(None).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut live = res.into_body();
    let mut buf = String::new();

    let booked = h.book(today(), 1, &[]).await;
    assert_eq!(booked.status, 201);
    let id = booked.body["id"].as_str().unwrap().to_owned();
    // The feed publishes each event just after its batch is durable, so the setup's last
    // events may still arrive on a stream opened right after the setup answered.
    let (implied_id, name, data) = loop {
        let e = next_sse(&mut live, &mut buf).await.unwrap();
        if e.1 != "setup.updated" {
            break e;
        }
    };
    // What a journal event implies comes first, without an id (so resuming from the
    // previous id replays it rather than skipping it).
    assert_eq!(
        (implied_id.as_str(), name.as_str()),
        ("", "availability.changed")
    );
    assert_eq!(data["change"], "booked");
    assert_eq!(data["room"], booked.body["room"]);
    assert_eq!(data["room_type"], "KING");
    let (created_seq, name, data) = next_sse(&mut live, &mut buf).await.unwrap();
    assert_eq!(name, "reservation.created");
    assert_eq!(data["reservation_id"], id.as_str());
    assert_eq!(data["room"], booked.body["room"]);
    let cancel = h
        .call(Method::POST, &format!("/v1/reservations/{id}/cancel"), None)
        .await;
    assert_eq!(cancel.status, 200);
    let (none, name, data) = next_sse(&mut live, &mut buf).await.unwrap();
    assert_eq!((none.as_str(), name.as_str()), ("", "availability.changed"));
    assert_eq!(data["change"], "released");
    let (cancelled_seq, name, _) = next_sse(&mut live, &mut buf).await.unwrap();
    assert_eq!(name, "reservation.cancelled");
    let (a, b): (u64, u64) = (created_seq.parse().unwrap(), cancelled_seq.parse().unwrap());
    assert!(b > a, "ids are journal order: {a} then {b}");

    // Resuming after the creation gives the cancellation next: no gap, no duplicate.
    let mut resumed = open(Some(&created_seq)).await.unwrap().into_body();
    let mut rbuf = String::new();
    let (none, name, _) = next_sse(&mut resumed, &mut rbuf).await.unwrap();
    assert_eq!((none.as_str(), name.as_str()), ("", "availability.changed"));
    let (seq, name, _) = next_sse(&mut resumed, &mut rbuf).await.unwrap();
    assert_eq!(
        (seq.as_str(), name.as_str()),
        (cancelled_seq.as_str(), "reservation.cancelled")
    );
    // A bad id is refused; an unknown hotel is not found.
    let bad = h
        .send(
            Request::get("/v1/hotels/H1/events")
                .header("last-event-id", "soon")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    bad.assert_problem(400, "invalid_request");
    h.get("/v1/hotels/NOPE/events")
        .await
        .assert_problem(404, "not_found");

    // Shutdown ends every open stream.
    streams.cancel();
    assert!(next_sse(&mut live, &mut buf).await.is_none());
    assert!(next_sse(&mut resumed, &mut rbuf).await.is_none());

    // After a restart the window is refilled from the journal: resuming after the
    // creation still gives the cancellation next.
    let dir = h._dir.path().to_owned();
    h.engine.shutdown();
    let open_after = |app: Router, id: &str| {
        app.oneshot(
            Request::get("/v1/hotels/H1/events")
                .header("last-event-id", id)
                .body(Body::empty())
                .unwrap(),
        )
    };
    let engine = Engine::start(EngineConfig::new(&dir)).unwrap();
    let app = router(AppState::new(engine.clone(), PaymentConfig::new(SECRET)));
    let mut after_restart = open_after(app, &created_seq).await.unwrap().into_body();
    let mut abuf = String::new();
    let (none, name, _) = next_sse(&mut after_restart, &mut abuf).await.unwrap();
    assert_eq!((none.as_str(), name.as_str()), ("", "availability.changed"));
    let (seq, name, _) = next_sse(&mut after_restart, &mut abuf).await.unwrap();
    assert_eq!(
        (seq.as_str(), name.as_str()),
        (cancelled_seq.as_str(), "reservation.cancelled")
    );
    engine.shutdown();

    // Ids older than the window cannot be replayed: the stream says so first.
    let engine = Engine::start(EngineConfig {
        resume_window_events: 1,
        ..EngineConfig::new(&dir)
    })
    .unwrap();
    let app = router(AppState::new(engine.clone(), PaymentConfig::new(SECRET)));
    let mut too_old = open_after(app, "1").await.unwrap().into_body();
    let mut obuf = String::new();
    let (_, name, data) = next_sse(&mut too_old, &mut obuf).await.unwrap();
    assert_eq!(name, "resync");
    assert_eq!(
        data["first_available"], b,
        "the window holds the newest event only"
    );
    engine.shutdown();
}

/// Out-of-order ranges and room moves over HTTP: a range over sold nights is 409
/// `nights_sold` listing the reservation in `conflicts`; a free range shows on the room
/// and lowers availability until it is deleted; a move answers the reservation in its new
/// room with its move recorded, a move into sold nights lists the conflict, and every
/// refusal changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn out_of_order_ranges_and_room_moves() {
    let h = Harness::start();
    h.setup().await;
    let arrival = plus(today(), 1);
    let first = h.book(arrival, 2, &[]).await;
    assert_eq!(first.status, 201);
    let id = first.body["id"].as_str().unwrap().to_owned();
    let room = first.body["room"].as_str().unwrap().to_owned();
    let other_room = if room == "101" { "102" } else { "101" };

    // Over sold nights: refused, naming the reservation.
    let ooo = format!("/v1/hotels/H1/rooms/{room}/out-of-order");
    let range =
        json!({"from": arrival.to_string(), "to": plus(arrival, 5).to_string(), "reason": "leak"});
    let r = h.call(Method::POST, &ooo, Some(range)).await;
    r.assert_problem(409, "nights_sold");
    assert_eq!(
        r.body["conflicts"],
        json!([{"kind": "reservation", "reservation_id": id, "status": "pending_payment",
                "from": arrival.to_string(), "to": plus(arrival, 2).to_string()}])
    );
    // Bad dates and unknown fields: 400, nothing set.
    for bad in [
        json!({"from": plus(today(), -1).to_string(), "to": arrival.to_string()}),
        json!({"from": arrival.to_string(), "to": arrival.to_string()}),
        json!({"from": "soon", "to": arrival.to_string()}),
        json!({"from": arrival.to_string(), "to": plus(arrival, 400).to_string()}),
        json!({"from": arrival.to_string(), "to": plus(arrival, 1).to_string(), "why": "x"}),
    ] {
        h.call(Method::POST, &ooo, Some(bad.clone()))
            .await
            .assert_problem(400, "invalid_request");
    }
    // The other KING room, free: taken out of order for the same nights.
    let other_ooo = format!("/v1/hotels/H1/rooms/{other_room}/out-of-order");
    let range =
        json!({"from": arrival.to_string(), "to": plus(arrival, 2).to_string(), "reason": "paint"});
    let r = h.call(Method::POST, &other_ooo, Some(range)).await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(
        r.body["out_of_order"],
        json!([{"from": arrival.to_string(), "to": plus(arrival, 2).to_string(), "reason": "paint"}])
    );
    let avail = format!(
        "/v1/hotels/H1/availability?arrival={arrival}&departure={}&guests=1",
        plus(arrival, 2)
    );
    let king = |v: &Value| {
        v["room_types"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["room_type"] == "KING")
            .unwrap()["available"]
            .clone()
    };
    assert_eq!(king(&h.get(&avail).await.body), 0);
    h.book(arrival, 2, &[])
        .await
        .assert_problem(409, "sold_out");

    // Paid, the reservation can move; into the out-of-order room it cannot.
    let paid = h
        .notify(&payment_of(&first.body, "succeeded"), now_secs(), SECRET)
        .await;
    assert_eq!(paid.status, 200);
    let mv = format!("/v1/reservations/{id}/move");
    let r = h
        .call(Method::POST, &mv, Some(json!({"room": other_room})))
        .await;
    r.assert_problem(409, "nights_sold");
    assert_eq!(r.body["conflicts"][0]["kind"], "out_of_order");
    h.call(Method::POST, &mv, Some(json!({"room": "999"})))
        .await
        .assert_problem(404, "not_found");
    h.call(Method::POST, &mv, Some(json!({"floor": 2})))
        .await
        .assert_problem(400, "invalid_request");

    // Lifting the range frees the nights; the move then goes through.
    let r = h
        .call(Method::DELETE, &format!("{other_ooo}/{arrival}"), None)
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(r.body["out_of_order"], json!([]));
    h.call(Method::DELETE, &format!("{other_ooo}/{arrival}"), None)
        .await
        .assert_problem(404, "not_found");
    let r = h
        .call(Method::POST, &mv, Some(json!({"room": other_room})))
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(r.body["room"], other_room);
    assert_eq!(r.body["status"], "confirmed");
    assert_eq!(r.body["moves"][0]["from_room"], room.as_str());
    assert_eq!(r.body["moves"][0]["first_night"], arrival.to_string());
    assert_eq!(r.header("etag"), format!("\"{}\"", r.body["version"]));
    // The old room's nights are free again: one KING room is available.
    assert_eq!(king(&h.get(&avail).await.body), 1);
    // A suite is a room too: moving there takes its type, the price stays.
    let r = h
        .call(Method::POST, &mv, Some(json!({"room": "201"})))
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(r.body["room_type"], "SUITE");
    assert_eq!(r.body["total"], first.body["total"]);
    assert_eq!(king(&h.get(&avail).await.body), 2);
}

/// Books `room` (of `room_type`) for `[arrival, arrival + nights)` as guest `name`.
async fn book_room(
    h: &Harness,
    room: &str,
    room_type: &str,
    arrival: Date,
    nights: i64,
    name: &str,
) -> Value {
    let mut body = booking_body(room_type, arrival, nights, name);
    body["room"] = json!(room);
    post_booking(h, body).await
}

/// Books `room_type` for `nights` from `arrival` in whichever room the engine picks (so
/// the reservation is not pinned).
async fn book_any(h: &Harness, room_type: &str, arrival: Date, nights: i64, name: &str) -> Value {
    post_booking(h, booking_body(room_type, arrival, nights, name)).await
}

fn booking_body(room_type: &str, arrival: Date, nights: i64, name: &str) -> Value {
    json!({
        "room_type": room_type,
        "arrival": arrival.to_string(),
        "departure": plus(arrival, nights).to_string(),
        "guests": 1,
        "guest": {"name": name, "phone": "+86 138-0000-0000", "email": "guest@example.com"},
    })
}

async fn post_booking(h: &Harness, body: Value) -> Value {
    let r = h
        .call(Method::POST, "/v1/hotels/H1/reservations", Some(body))
        .await;
    assert_eq!(r.status, 201, "{:#}", r.body);
    r.body
}

/// Pays a reservation with a signed callback.
async fn pay(h: &Harness, reservation: &Value) {
    let r = h
        .notify(&payment_of(reservation, "succeeded"), now_secs(), SECRET)
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
}

async fn act(h: &Harness, reservation: &Value, action: &str) -> Value {
    let id = reservation["id"].as_str().unwrap();
    let r = h
        .call(
            Method::POST,
            &format!("/v1/reservations/{id}/{action}"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{action}: {:#}", r.body);
    r.body
}

/// The ids of one front-desk list, in order.
fn ids(day: &Value, list: &str) -> Vec<String> {
    day[list]
        .as_array()
        .unwrap_or_else(|| panic!("{list} in {day:#}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

fn id(r: &Value) -> String {
    r["id"].as_str().unwrap().to_owned()
}

/// The front desk's day: who arrives, who leaves, who is in the house; statuses that do
/// not count are left out; an early departure is listed on the day the guest left; the
/// date defaults to the hotel-local today; bad input is 400 and an unknown hotel 404.
#[tokio::test(flavor = "multi_thread")]
async fn front_desk_lists_arrivals_departures_and_in_house() {
    let h = Harness::start();
    h.setup().await;
    let today = today();
    // 102: unpaid, arriving today.
    let unpaid = book_room(&h, "102", "KING", today, 1, "Ann Unpaid").await;
    // 101: paid and checked in today, booked for two nights.
    let guest = book_room(&h, "101", "KING", today, 2, "Bo Guest").await;
    pay(&h, &guest).await;
    act(&h, &guest, "check-in").await;
    // 201: cancelled, arriving today: on no list.
    let gone = book_room(&h, "201", "SUITE", today, 1, "Cy Cancelled").await;
    act(&h, &gone, "cancel").await;
    // 102 again: paid, arriving tomorrow for two nights.
    let later = book_room(&h, "102", "KING", plus(today, 1), 2, "Di Later").await;
    pay(&h, &later).await;

    let day = h.get("/v1/hotels/H1/front-desk").await;
    assert_eq!(day.status, 200, "{:#}", day.body);
    assert_eq!(day.body["hotel_id"], "H1");
    assert_eq!(day.body["date"], today.to_string());
    // Sorted by room: 101 before 102.
    assert_eq!(ids(&day.body, "arrivals"), [id(&guest), id(&unpaid)]);
    assert_eq!(
        day.body["arrivals"][0],
        json!({
            "id": id(&guest),
            "room": "101",
            "room_type": "KING",
            "guest_name": "Bo Guest",
            "arrival": today.to_string(),
            "departure": plus(today, 2).to_string(),
            "status": "checked_in",
            "rate_plan": "BAR",
        })
    );
    assert_eq!(day.body["arrivals"][1]["status"], "pending_payment");
    assert_eq!(ids(&day.body, "departures"), Vec::<String>::new());
    assert_eq!(ids(&day.body, "in_house"), [id(&guest)]);
    // An explicit date gives the same answer.
    let same = h
        .get(&format!("/v1/hotels/H1/front-desk?date={today}"))
        .await;
    assert_eq!(same.body, day.body);

    let tomorrow = h
        .get(&format!("/v1/hotels/H1/front-desk?date={}", plus(today, 1)))
        .await
        .body;
    assert_eq!(tomorrow["date"], plus(today, 1).to_string());
    assert_eq!(ids(&tomorrow, "arrivals"), [id(&later)]);
    assert_eq!(tomorrow["arrivals"][0]["status"], "confirmed");
    assert_eq!(ids(&tomorrow, "in_house"), [id(&guest)]);
    let in_three = format!("/v1/hotels/H1/front-desk?date={}", plus(today, 3));
    assert_eq!(
        ids(&h.get(&in_three).await.body, "departures"),
        [id(&later)]
    );
    let in_two = format!("/v1/hotels/H1/front-desk?date={}", plus(today, 2));
    assert_eq!(ids(&h.get(&in_two).await.body, "departures"), [id(&guest)]);

    // Bo leaves a night early: a departure today, not on the booked day.
    act(&h, &guest, "check-out").await;
    let day = h.get("/v1/hotels/H1/front-desk").await.body;
    assert_eq!(ids(&day, "departures"), [id(&guest)]);
    assert_eq!(day["departures"][0]["status"], "checked_out");
    assert_eq!(ids(&day, "arrivals"), [id(&unpaid)]);
    assert_eq!(ids(&day, "in_house"), Vec::<String>::new());
    assert_eq!(
        ids(&h.get(&in_two).await.body, "departures"),
        Vec::<String>::new()
    );

    // Bad input.
    for query in [
        "date=2026-13-01",
        "date=tomorrow",
        "date=",
        "date=2026-1-01",
        "day=2026-01-01",
    ] {
        h.get(&format!("/v1/hotels/H1/front-desk?{query}"))
            .await
            .assert_problem(400, "invalid_request");
    }
    h.get("/v1/hotels/NOPE/front-desk")
        .await
        .assert_problem(404, "not_found");
    h.get("/v1/hotels/bad%20code/front-desk")
        .await
        .assert_problem(400, "invalid_request");
}

/// "Today" for the front desk is the hotel's, not the server's: two hotels 25 hours apart
/// always have different dates, and each gets its own.
#[tokio::test(flavor = "multi_thread")]
async fn front_desk_today_is_hotel_local() {
    let h = Harness::start();
    let local = |tz: &str| {
        jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::get(tz).unwrap())
            .date()
            .to_string()
    };
    let mut dates = Vec::new();
    for (hotel, tz) in [
        ("EAST", "Pacific/Kiritimati"),
        ("WEST", "Pacific/Pago_Pago"),
    ] {
        let body = json!({"name": hotel, "time_zone": tz, "currency": "USD"});
        let r = h
            .call(Method::PUT, &format!("/v1/hotels/{hotel}"), Some(body))
            .await;
        assert_eq!(r.status, 201, "{:#}", r.body);
        let before = local(tz);
        let day = h.get(&format!("/v1/hotels/{hotel}/front-desk")).await;
        let after = local(tz);
        assert_eq!(day.status, 200, "{:#}", day.body);
        let date = day.body["date"].as_str().unwrap().to_owned();
        assert!(
            date == before || date == after,
            "{hotel}: {date} vs {before}"
        );
        // A hotel without rooms has empty lists.
        for list in ["arrivals", "departures", "in_house"] {
            assert_eq!(day.body[list], json!([]));
        }
        dates.push(date);
    }
    assert_ne!(dates[0], dates[1]);
}

/// The rows of a tape chart by room number: each room's reservation ids, in order.
fn tape_rows(tape: &Value) -> Vec<(String, Vec<String>)> {
    tape["rooms"]
        .as_array()
        .unwrap_or_else(|| panic!("rooms in {tape:#}"))
        .iter()
        .map(|room| {
            let ids = room["reservations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned())
                .collect();
            (room["number"].as_str().unwrap().to_owned(), ids)
        })
        .collect()
}

/// The tape chart: every room by number with the stays holding its nights in the window
/// (whole stays, whatever part of them the window shows), their status and pin, and the
/// room's out-of-order ranges there; what holds no nights (cancelled) is not on it; a
/// move puts the stay in its new room's row, pinned; `from` and `nights` move and size the
/// window (default: 14 nights from the hotel-local today); bad input is 400.
#[tokio::test(flavor = "multi_thread")]
async fn tape_chart_shows_each_rooms_stays_and_out_of_order_ranges() {
    let h = Harness::start();
    h.setup().await;
    let today = today();
    let r = h
        .call(
            Method::POST,
            "/v1/hotels/H1/rooms/102/out-of-order",
            Some(
                json!({"from": today.to_string(), "to": plus(today, 2).to_string(),
                        "reason": "paint"}),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    // Placed by the engine (102 is out of order): 101, not pinned.
    let ann = book_any(&h, "KING", today, 2, "Ann Unpaid").await;
    // Longer than the window: on the chart whole, from its first night on. Booked with
    // a chosen room: pinned.
    let bo = book_room(&h, "102", "KING", plus(today, 3), 20, "Bo Long").await;
    pay(&h, &bo).await;
    let cy = book_room(&h, "201", "SUITE", plus(today, 1), 1, "Cy Cancelled").await;
    act(&h, &cy, "cancel").await;

    let tape = h.get("/v1/hotels/H1/tape").await;
    assert_eq!(tape.status, 200, "{:#}", tape.body);
    assert_eq!(tape.body["hotel_id"], "H1");
    assert_eq!(tape.body["from"], today.to_string());
    assert_eq!(tape.body["to"], plus(today, 14).to_string());
    assert_eq!(tape.body["nights"], 14);
    assert_eq!(
        tape_rows(&tape.body),
        [
            ("101".to_owned(), vec![id(&ann)]),
            ("102".to_owned(), vec![id(&bo)]),
            ("201".to_owned(), vec![]),
        ]
    );
    let rooms = &tape.body["rooms"];
    assert_eq!(rooms[0]["room_type"], "KING");
    assert_eq!(rooms[0]["out_of_order"], json!([]));
    assert_eq!(
        rooms[0]["reservations"][0],
        json!({
            "id": id(&ann),
            "status": "pending_payment",
            "arrival": today.to_string(),
            "departure": plus(today, 2).to_string(),
            "held_from": today.to_string(),
            "held_to": plus(today, 2).to_string(),
            "guest_name": "Ann Unpaid",
            "pinned": false,
        })
    );
    assert_eq!(
        rooms[1]["out_of_order"],
        json!([{"from": today.to_string(), "to": plus(today, 2).to_string(), "reason": "paint"}])
    );
    let long = &rooms[1]["reservations"][0];
    assert_eq!(long["status"], "confirmed");
    assert_eq!(long["departure"], plus(today, 23).to_string());
    assert_eq!(long["held_to"], plus(today, 23).to_string());
    assert_eq!(long["pinned"], true);
    // Asked for explicitly, the same window is the same answer.
    let same = h
        .get(&format!("/v1/hotels/H1/tape?from={today}&nights=14"))
        .await;
    assert_eq!(same.body, tape.body);

    // The front desk moves Bo to 101: in 101's row now, after Ann, pinned.
    let r = h
        .call(
            Method::POST,
            &format!("/v1/reservations/{}/move", id(&bo)),
            Some(json!({"room": "101"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    let tape = h.get("/v1/hotels/H1/tape").await.body;
    assert_eq!(
        tape_rows(&tape),
        [
            ("101".to_owned(), vec![id(&ann), id(&bo)]),
            ("102".to_owned(), vec![]),
            ("201".to_owned(), vec![]),
        ]
    );
    assert_eq!(tape["rooms"][0]["reservations"][1]["pinned"], true);
    assert_eq!(tape["rooms"][0]["reservations"][0]["pinned"], false);

    // A one-night window on Bo's fifth night: only Bo; past every stay: nothing.
    let r = h
        .get(&format!(
            "/v1/hotels/H1/tape?from={}&nights=1",
            plus(today, 5)
        ))
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(r.body["to"], plus(today, 6).to_string());
    assert_eq!(tape_rows(&r.body)[0], ("101".to_owned(), vec![id(&bo)]));
    let r = h
        .get(&format!(
            "/v1/hotels/H1/tape?from={}&nights=31",
            plus(today, 23)
        ))
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert!(tape_rows(&r.body).iter().all(|(_, ids)| ids.is_empty()));

    // A modification that takes the stay to another room is not the desk pinning it: Di
    // (placed by the engine), lengthened into a night Ed holds in 101, ends in 102
    // unpinned.
    let ed = book_room(&h, "101", "KING", plus(today, 31), 1, "Ed Next").await;
    let di = book_any(&h, "KING", plus(today, 30), 1, "Di Longer").await;
    let r = h
        .call(
            Method::POST,
            &format!("/v1/reservations/{}/modify", id(&di)),
            Some(json!({"departure": plus(today, 32).to_string()})),
        )
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(r.body["room"], "102", "{:#}", r.body);
    let r = h
        .get(&format!(
            "/v1/hotels/H1/tape?from={}&nights=3",
            plus(today, 30)
        ))
        .await;
    assert_eq!(
        tape_rows(&r.body),
        [
            ("101".to_owned(), vec![id(&ed)]),
            ("102".to_owned(), vec![id(&di)]),
            ("201".to_owned(), vec![]),
        ]
    );
    assert_eq!(r.body["rooms"][1]["reservations"][0]["pinned"], false);
    assert_eq!(
        r.body["rooms"][1]["reservations"][0]["held_to"],
        plus(today, 32).to_string()
    );

    // Bad input: 400 invalid_request, naming the field.
    for (query, field) in [
        ("nights=0", "nights"),
        ("nights=32", "nights"),
        ("nights=-1", "nights"),
        ("nights=two", "nights"),
        ("from=2026-13-01", "from"),
        ("from=tomorrow", "from"),
        ("from=", "from"),
        ("from=9999-12-30", "from"),
        ("night=3", "night"),
    ] {
        let r = h.get(&format!("/v1/hotels/H1/tape?{query}")).await;
        r.assert_problem(400, "invalid_request");
        assert!(
            r.body["detail"].as_str().unwrap_or("").contains(field),
            "{query}: {:#}",
            r.body
        );
    }
    h.get("/v1/hotels/NOPE/tape")
        .await
        .assert_problem(404, "not_found");
    h.get("/v1/hotels/bad%20code/tape")
        .await
        .assert_problem(400, "invalid_request");

    // Described, protected like the other hotel routes.
    let doc = h.get("/openapi.json").await.body;
    let op = &doc["paths"]["/v1/hotels/{hotel_id}/tape"]["get"];
    assert!(op["security"].is_array(), "{op:#}");
    assert!(op["responses"]["400"].is_object(), "{op:#}");
    assert!(doc["components"]["schemas"]["TapeView"].is_object());
}

/// The board page: the same static shell for any well-formed hotel code (it holds no
/// data), locked down by a Content-Security-Policy naming its inline script and style,
/// with the hooks the browser test uses; a malformed code is 400.
#[tokio::test(flavor = "multi_thread")]
async fn board_page_is_a_static_shell() {
    let h = Harness::start();
    h.setup().await;
    let get = |uri: &'static str| {
        h.app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
    };
    let res = get("/board/H1").await.unwrap();
    assert_eq!(res.status(), 200);
    let headers = res.headers().clone();
    let page = res.into_body().collect().await.unwrap().to_bytes();
    let text = std::str::from_utf8(&page).unwrap();
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.starts_with("default-src 'none'; script-src 'sha256-"),
        "{csp}"
    );
    assert!(csp.contains("connect-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(text.contains("<meta name=\"viewport\""));
    for hook in [
        "id=\"rooms\"",
        "id=\"arrivals\"",
        "id=\"departures\"",
        "id=\"key-form\"",
        "id=\"api-key\"",
        "data-state=\"connecting\"",
        "class SseParser",
        "Last-Event-ID",
    ] {
        assert!(text.contains(hook), "{hook} missing");
    }
    // Nothing is fetched from anywhere else.
    assert!(!text.contains("http://") && !text.contains("https://"));

    // Any well-formed code gets the same bytes: a missing hotel is not revealed.
    let other = get("/board/NO-SUCH-HOTEL").await.unwrap();
    assert_eq!(other.status(), 200);
    assert_eq!(other.into_body().collect().await.unwrap().to_bytes(), page);
    h.get("/board/bad%20code")
        .await
        .assert_problem(400, "invalid_request");
    let r = h.call(Method::POST, "/board/H1", None).await;
    r.assert_problem(405, "method_not_allowed");

    let doc = h.get("/openapi.json").await.body;
    assert!(doc["paths"]["/v1/hotels/{hotel_id}/front-desk"]["get"].is_object());
    assert!(doc["paths"]["/board/{hotel_id}"]["get"].is_object());
    // The page is public; the listing needs a key like the other hotel routes.
    assert!(doc["paths"]["/board/{hotel_id}"]["get"]["security"].is_null());
    assert!(doc["paths"]["/v1/hotels/{hotel_id}/front-desk"]["get"]["security"].is_array());
    assert!(doc["components"]["schemas"]["FrontDeskView"].is_object());
}

/// A client that reads nothing while more than the live channel holds
/// (`FEED_CHANNEL_EVENTS`) is published gets one final `resync` saying it was too slow
/// and how many events it skipped, and then its stream ends; it resumes with its last id.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_too_slow_for_the_live_channel_is_told_and_dropped() {
    let dir = tempfile::tempdir().unwrap();
    // Acknowledgements without fdatasync: this test is about the feed, not the disk.
    let engine = Engine::start(EngineConfig {
        sync: innkeep_actors::SyncMode::None,
        ..EngineConfig::new(dir.path())
    })
    .unwrap();
    let h = Harness {
        app: router(AppState::new(engine.clone(), PaymentConfig::new(SECRET))),
        engine,
        _dir: dir,
    };
    h.setup().await;
    let res = h
        .app
        .clone()
        .oneshot(
            Request::get("/v1/hotels/H1/events")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut slow = res.into_body();

    // More changes than the channel holds, three rooms at a time, while nobody reads.
    let changes = innkeep_actors::feed::FEED_CHANNEL_EVENTS + 300;
    let hotel = HotelId::parse("H1").unwrap();
    let rooms: Vec<RoomNumber> = ["101", "102", "201"]
        .iter()
        .map(|n| RoomNumber::parse(n).unwrap())
        .collect();
    let toggles = rooms.iter().map(|room| {
        let (engine, hotel, room) = (h.engine.clone(), hotel.clone(), room.clone());
        async move {
            for i in 0..changes.div_ceil(3) {
                let to = if i % 2 == 0 {
                    Housekeeping::OutOfOrder
                } else {
                    Housekeeping::Dirty
                };
                engine.set_housekeeping(&hotel, &room, to).await.unwrap();
            }
        }
    });
    futures_util::future::join_all(toggles).await;

    let mut buf = String::new();
    let (id, name, data) = next_sse(&mut slow, &mut buf).await.unwrap();
    assert_eq!((id.as_str(), name.as_str()), ("", "resync"), "{data}");
    assert!(
        data["skipped"].as_u64().is_some_and(|n| n > 0),
        "says how much it missed: {data}"
    );
    assert!(
        next_sse(&mut slow, &mut buf).await.is_none(),
        "and the stream ends"
    );
}

mod bookings;
mod selling;

/// Two nodes: `a` serves partition `p1` (hotel H1), `b` serves `p2` (hotel H2).
const CLUSTER_FILE: &str = r#"
[[nodes]]
id = "a"
address = "127.0.0.1:8081"
[[nodes]]
id = "b"
address = "127.0.0.1:8082"

[[partitions]]
id = "p1"
primary = "a"
hotels = ["H1"]

[[partitions]]
id = "p2"
primary = "b"
hotels = ["H2"]
"#;

/// The router of node `node` of [`CLUSTER_FILE`] over `engine`.
fn cluster_router(engine: &Engine, node: &str) -> Router {
    let file = crate::cluster::ClusterFile::parse(CLUSTER_FILE).unwrap();
    let cluster = crate::cluster::Cluster::new(file, node).unwrap();
    router(AppState::new(engine.clone(), PaymentConfig::new(SECRET)).in_cluster(cluster))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_node_serves_only_its_own_partitions_hotels() {
    let mut h = Harness::start();
    h.setup().await;
    // H2 and one reservation in it, made while this engine still served every hotel (as
    // on a node whose hotel has since moved to another partition).
    let hotel = json!({"name": "Second", "time_zone": TZ, "currency": "CNY"});
    assert_eq!(
        h.call(Method::PUT, "/v1/hotels/H2", Some(hotel))
            .await
            .status,
        201
    );
    let body = json!({"name": "King", "capacity": 2, "base_rate": 50_000});
    let r = h
        .call(Method::PUT, "/v1/hotels/H2/room-types/KING", Some(body))
        .await;
    assert_eq!(r.status, 201);
    let r = h
        .call(
            Method::PUT,
            "/v1/hotels/H2/rooms/1",
            Some(json!({"room_type": "KING"})),
        )
        .await;
    assert_eq!(r.status, 201);
    let arrival = plus(today(), 3);
    let r2 = h
        .call(
            Method::POST,
            "/v1/hotels/H2/reservations",
            Some(booking(arrival, 1)),
        )
        .await;
    assert_eq!(r2.status, 201, "{:#}", r2.body);
    let r2_id = r2.body["id"].as_str().unwrap().to_owned();
    let r1 = h.book(arrival, 2, &[]).await;
    assert_eq!(r1.status, 201);
    let r1_id = r1.body["id"].as_str().unwrap().to_owned();
    let group = json!({
        "arrival": plus(arrival, 2).to_string(),
        "departure": plus(arrival, 3).to_string(),
        "guest": {"name": "Li Lei", "phone": "+86 138-0000-0000", "email": "li@example.com"},
        "rooms": [{"room_type": "KING", "guests": 1}],
    });
    let b2 = h
        .call(Method::POST, "/v1/hotels/H2/bookings", Some(group))
        .await;
    assert_eq!(b2.status, 201, "{:#}", b2.body);
    let b2_id = b2.body["id"].as_str().unwrap().to_owned();
    let plain = h.app.clone();

    h.app = cluster_router(&h.engine, "a");
    // Its own hotel, as before.
    assert_eq!(h.get("/v1/hotels/H1").await.status, 200);
    // Another node's hotel: 421 naming that node, for reads and changes alike.
    let r = h.get("/v1/hotels/H2").await;
    r.assert_problem(421, "misdirected");
    assert_eq!(
        r.body["owner"],
        json!({"partition": "p2", "node": "b", "address": "127.0.0.1:8082"})
    );
    let later = plus(arrival, 5);
    h.call(
        Method::POST,
        "/v1/hotels/H2/reservations",
        Some(booking(later, 1)),
    )
    .await
    .assert_problem(421, "misdirected");
    // A hotel no partition holds: 421 without an owner, and nothing is created.
    let hotel = json!({"name": "Nowhere", "time_zone": TZ, "currency": "CNY"});
    let r = h.call(Method::PUT, "/v1/hotels/H9", Some(hotel)).await;
    r.assert_problem(421, "misdirected");
    assert!(r.body.get("owner").is_none(), "{:#}", r.body);
    // A reservation of another node's hotel, reached without the hotel in the path.
    let r = h.get(&format!("/v1/reservations/{r2_id}")).await;
    r.assert_problem(421, "misdirected");
    assert_eq!(r.body["owner"]["node"], "b");
    h.call(
        Method::POST,
        &format!("/v1/reservations/{r2_id}/cancel"),
        None,
    )
    .await
    .assert_problem(421, "misdirected");
    h.get(&format!("/v1/hotels/H2/reservations/{r2_id}"))
        .await
        .assert_problem(421, "misdirected");
    // Under its own hotel's path a reservation of another hotel does not exist.
    h.get(&format!("/v1/hotels/H1/reservations/{r2_id}"))
        .await
        .assert_problem(404, "not_found");
    // A multi-room booking alike.
    h.get(&format!("/v1/bookings/{b2_id}"))
        .await
        .assert_problem(421, "misdirected");
    h.get(&format!("/v1/hotels/H2/bookings/{b2_id}"))
        .await
        .assert_problem(421, "misdirected");
    h.get(&format!("/v1/hotels/H1/bookings/{b2_id}"))
        .await
        .assert_problem(404, "not_found");
    let paid_elsewhere = payment_of(&r2.body, "succeeded");
    h.notify(&paid_elsewhere, now_secs(), SECRET)
        .await
        .assert_problem(421, "misdirected");

    // The hotel-scoped forms of its own reservations work as the plain ones do.
    let r = h.get(&format!("/v1/hotels/H1/reservations/{r1_id}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, r1.body);
    let paid = payment_of(&r1.body, "succeeded");
    let bytes = paid.to_string().into_bytes();
    let req = Request::post("/v1/hotels/H1/payments/notify")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-signature", signature_header(SECRET, now_secs(), &bytes))
        .body(Body::from(bytes))
        .unwrap();
    let r = h.send(req).await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    let out_trade_no = r1.body["payment"]["out_trade_no"].as_str().unwrap();
    let r = h
        .get(&format!("/v1/hotels/H1/payments/{out_trade_no}"))
        .await;
    assert_eq!(r.body["status"], "succeeded", "{:#}", r.body);
    h.get(&format!("/v1/hotels/H2/payments/{out_trade_no}"))
        .await
        .assert_problem(421, "misdirected");
    let r = h
        .call_with(
            Method::POST,
            &format!("/v1/hotels/H1/reservations/{r1_id}/cancel"),
            &[("if-match", "\"2\"")],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(r.body["status"], "cancelled");

    // Readiness per partition: 200 only for the partitions this node serves.
    assert_eq!(h.get("/readyz?partition=p1").await.status, 200);
    h.get("/readyz?partition=p2")
        .await
        .assert_problem(503, "not_owner");
    h.get("/readyz?partition=p3")
        .await
        .assert_problem(404, "not_found");
    assert_eq!(h.get("/readyz").await.status, 200);

    // Nothing the misdirected requests asked for happened.
    h.app = plain;
    h.get("/readyz?partition=p1")
        .await
        .assert_problem(404, "not_found");
    h.get("/v1/hotels/H9")
        .await
        .assert_problem(404, "not_found");
    let r = h.get(&format!("/v1/reservations/{r2_id}")).await;
    assert_eq!(r.body, r2.body);
    let b = h.get(&format!("/v1/hotels/H2/bookings/{b2_id}")).await;
    assert_eq!(b.body, b2.body);
    let r = h
        .get(&format!(
            "/v1/hotels/H2/availability?arrival={later}&departure={}",
            plus(later, 1)
        ))
        .await;
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(r.body["room_types"][0]["available"], 1, "{:#}", r.body);
}
