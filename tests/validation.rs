//! Bad input gets a 4xx with a stable `code` and changes nothing.

use serde_json::{json, Value};

use crate::harness::{booking, client, hotel, plus, send, today, Server};

const TZ: &str = "Europe/Berlin";

async fn snapshot(c: &reqwest::Client, s: &Server) -> (Value, Value, Value) {
    let (_, hotel, _) = send(c.get(s.url("/v1/hotels/BAD"))).await;
    let a = today(TZ);
    let (_, avail, _) = send(c.get(s.url(&format!(
        "/v1/hotels/BAD/availability?arrival={a}&departure={}",
        plus(a, 5)
    ))))
    .await;
    let (_, rooms, _) = send(c.get(s.url("/v1/hotels/BAD/rooms"))).await;
    (hotel, avail, rooms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    hotel(&c, &s, "BAD", TZ, 2).await;
    let before = snapshot(&c, &s).await;
    let t = today(TZ);
    let good = booking(t, plus(t, 2));
    let with = |field: &str, value: Value| {
        let mut b = good.clone();
        b[field] = value;
        b
    };
    let json_post = |path: &str| {
        c.post(s.url(path))
            .header("content-type", "application/json")
    };
    let reservations = "/v1/hotels/BAD/reservations";

    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "malformed json",
            json_post(reservations).body("{\"room_type\":"),
            400,
            "invalid_request",
        ),
        (
            "unknown field",
            c.post(s.url(reservations))
                .json(&with("discount", json!(50))),
            400,
            "invalid_request",
        ),
        (
            "wrong type",
            c.post(s.url(reservations))
                .json(&with("guests", json!("two"))),
            400,
            "invalid_request",
        ),
        (
            "bad date",
            c.post(s.url(reservations))
                .json(&with("arrival", json!("2026-02-30"))),
            400,
            "invalid_request",
        ),
        (
            "departure before arrival",
            c.post(s.url(reservations))
                .json(&with("departure", json!(plus(t, -1).to_string()))),
            422,
            "invalid_stay",
        ),
        (
            "arrival in the past",
            c.post(s.url(reservations))
                .json(&booking(plus(t, -2), plus(t, 1))),
            422,
            "invalid_stay",
        ),
        (
            "too many nights",
            c.post(s.url(reservations)).json(&booking(t, plus(t, 91))),
            422,
            "invalid_stay",
        ),
        (
            "beyond the horizon",
            c.post(s.url(reservations))
                .json(&booking(plus(t, 729), plus(t, 731))),
            422,
            "invalid_stay",
        ),
        (
            "zero guests",
            c.post(s.url(reservations)).json(&with("guests", json!(0))),
            400,
            "invalid_request",
        ),
        (
            "too many guests",
            c.post(s.url(reservations)).json(&with("guests", json!(3))),
            400,
            "invalid_request",
        ),
        (
            "bad email",
            c.post(s.url(reservations)).json(&with(
                "guest",
                json!({"name": "A", "phone": "12345678", "email": "nope"}),
            )),
            400,
            "invalid_request",
        ),
        (
            "unknown room type",
            c.post(s.url(reservations))
                .json(&with("room_type", json!("NOPE"))),
            404,
            "not_found",
        ),
        (
            "unknown hotel",
            c.post(s.url("/v1/hotels/NOPE/reservations")).json(&good),
            404,
            "not_found",
        ),
        (
            "bad idempotency key",
            c.post(s.url(reservations))
                .header("Idempotency-Key", "has space")
                .json(&good),
            400,
            "invalid_request",
        ),
        (
            "body over 1 MiB",
            json_post(reservations).body(format!("{{\"pad\":\"{}\"}}", "x".repeat(1 << 20))),
            413,
            "payload_too_large",
        ),
        (
            "bad currency",
            c.put(s.url("/v1/hotels/BAD2"))
                .json(&json!({"name": "x", "time_zone": TZ, "currency": "XYZ"})),
            400,
            "invalid_request",
        ),
        (
            "bad time zone",
            c.put(s.url("/v1/hotels/BAD2"))
                .json(&json!({"name": "x", "time_zone": "Mars/Base", "currency": "EUR"})),
            400,
            "invalid_request",
        ),
        (
            "currency change",
            c.put(s.url("/v1/hotels/BAD"))
                .json(&json!({"name": "x", "time_zone": TZ, "currency": "USD"})),
            409,
            "currency_locked",
        ),
        (
            "negative base rate",
            c.put(s.url("/v1/hotels/BAD/room-types/STD"))
                .json(&json!({"name": "S", "capacity": 2, "base_rate": -1})),
            400,
            "invalid_request",
        ),
        (
            "zero capacity",
            c.put(s.url("/v1/hotels/BAD/room-types/STD"))
                .json(&json!({"name": "S", "capacity": 0, "base_rate": 1})),
            400,
            "invalid_request",
        ),
        (
            "negative rate",
            c.put(s.url("/v1/hotels/BAD/room-types/STD/rates"))
                .json(&json!({"from": t.to_string(), "to": plus(t, 2).to_string(), "amount": -5})),
            400,
            "invalid_request",
        ),
        (
            "empty rate range",
            c.put(s.url("/v1/hotels/BAD/room-types/STD/rates"))
                .json(&json!({"from": t.to_string(), "to": t.to_string(), "amount": 5})),
            400,
            "invalid_request",
        ),
        (
            "room of unknown type",
            c.put(s.url("/v1/hotels/BAD/rooms/9"))
                .json(&json!({"room_type": "NOPE"})),
            404,
            "not_found",
        ),
        (
            "bad room number",
            c.put(s.url("/v1/hotels/BAD/rooms/a%20b"))
                .json(&json!({"room_type": "STD"})),
            400,
            "invalid_request",
        ),
        (
            "bad housekeeping",
            c.put(s.url("/v1/hotels/BAD/rooms/1/housekeeping"))
                .json(&json!({"status": "sparkling"})),
            400,
            "invalid_request",
        ),
        (
            "housekeeping out of order",
            c.put(s.url("/v1/hotels/BAD/rooms/1/housekeeping"))
                .json(&json!({"status": "inspected", "extra": 1})),
            400,
            "invalid_request",
        ),
        (
            "bad reservation id",
            c.get(s.url("/v1/reservations/not-a-uuid")),
            400,
            "invalid_request",
        ),
        (
            "unknown reservation",
            c.post(s.url("/v1/reservations/01890a5d-ac96-774b-bcce-b302099a8057/cancel")),
            404,
            "not_found",
        ),
        (
            "availability without dates",
            c.get(s.url("/v1/hotels/BAD/availability")),
            400,
            "invalid_request",
        ),
        (
            "unsigned callback",
            c.post(s.url("/v1/payments/notify"))
                .json(&json!({"out_trade_no": "x"})),
            401,
            "bad_signature",
        ),
        (
            "unknown route",
            c.get(s.url("/v1/nothing")),
            404,
            "not_found",
        ),
    ];
    for (name, req, status, code) in cases {
        let (got, body, headers) = send(req).await;
        assert_eq!(got, status, "{name}: {body}");
        assert_eq!(body["code"], code, "{name}: {body}");
        assert_eq!(
            headers.get("content-type").map(String::as_str),
            Some("application/problem+json"),
            "{name}"
        );
    }
    assert_eq!(
        snapshot(&c, &s).await,
        before,
        "refused requests changed nothing"
    );
    let (status, _, _) = send(c.get(s.url("/v1/hotels/BAD2"))).await;
    assert_eq!(status, 404, "the refused hotel was not created");
}
