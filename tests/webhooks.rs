//! Outbound webhooks against a local receiver (a small axum server in the test): the
//! definitions API and its validation (with the request-forgery refusals), signed
//! deliveries in journal order with the payload the event stream sends (a multi-room
//! booking as one delivery per journal record), a dead receiver retried until it answers
//! 2xx, a SIGKILL of the server mid-delivery with nothing skipped after the restart, dead
//! letters after `max_age`, and replay.
//!
//! The receiver verifies every signature with the server's own payment-callback verifier
//! (`innkeep_http::routes::payments::verify_signature`): one scheme, one verifier.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::to_bytes;
use axum::extract::Request;
use axum::http::StatusCode;
use innkeep_http::routes::payments::verify_signature;
use innkeep_http::PaymentConfig;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::harness::{booking, client, hotel, plus, send, today, Server};

const TZ: &str = "Asia/Shanghai";
const HOOK_SECRET: &str = "whsec-e2e-0123456789abcdef";

/// Longest wait for deliveries to arrive; far above what they take, so only a lost
/// delivery trips it.
const WAIT: Duration = Duration::from_secs(60);

/// Fast retries, so a test's dead receiver is retried many times in little time.
const FAST_RETRIES: &[(&str, &str)] = &[
    ("INNKEEP_WEBHOOKS_BACKOFF_BASE_MS", "20"),
    ("INNKEEP_WEBHOOKS_BACKOFF_MAX_MS", "200"),
    ("INNKEEP_WEBHOOKS_TIMEOUT_MS", "5000"),
];

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Delivery {
    /// The URL path it was sent to (one receiver serves several webhooks).
    path: String,
    /// `Innkeep-Event-Id`.
    event_id: u64,
    /// `Innkeep-Event-Type`.
    event_type: String,
    /// The JSON body.
    body: Value,
    /// Whether `Innkeep-Signature` verified with [`HOOK_SECRET`].
    signed: bool,
    /// What the receiver answered.
    answered: u16,
}

/// A local webhook receiver: records every request, answers with `answer`, after
/// `delay_ms`.
struct Receiver {
    base: String,
    log: watch::Receiver<Vec<Delivery>>,
    answer: Arc<AtomicU16>,
    delay_ms: Arc<AtomicU64>,
}

impl Receiver {
    async fn start() -> Receiver {
        let (tx, log) = watch::channel(Vec::<Delivery>::new());
        let tx = Arc::new(tx);
        let answer = Arc::new(AtomicU16::new(200));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let app = {
            let (answer, delay_ms) = (answer.clone(), delay_ms.clone());
            axum::Router::new().fallback(move |req: Request| {
                let (tx, answer, delay_ms) = (tx.clone(), answer.clone(), delay_ms.clone());
                async move {
                    let path = req.uri().path().to_owned();
                    let headers = req.headers().clone();
                    let body = to_bytes(req.into_body(), 1 << 20).await.expect("body");
                    let now = jiff::Timestamp::now().as_second();
                    let config = PaymentConfig::new(HOOK_SECRET.as_bytes().to_vec());
                    let signed =
                        verify_signature(&config, headers.get("innkeep-signature"), &body, now)
                            .is_ok();
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let status = answer.load(Ordering::SeqCst);
                    tx.send_modify(|log| {
                        log.push(Delivery {
                            path,
                            event_id: header("innkeep-event-id").parse().unwrap_or(0),
                            event_type: header("innkeep-event-type"),
                            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                            signed,
                            answered: status,
                        })
                    });
                    let delay = delay_ms.load(Ordering::SeqCst);
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    StatusCode::from_u16(status).expect("status")
                }
            })
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("receiver");
        });
        Receiver {
            base: format!("http://{addr}"),
            log,
            answer,
            delay_ms,
        }
    }

    /// Waits until the deliveries so far satisfy `done`; answers them.
    async fn wait(&self, what: &str, done: impl Fn(&[Delivery]) -> bool) -> Vec<Delivery> {
        let mut log = self.log.clone();
        let seen = tokio::time::timeout(WAIT, log.wait_for(|l| done(l)))
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}: {:#?}", self.log.borrow()))
            .expect("receiver stopped")
            .clone();
        seen
    }
}

/// Deliveries to `path` that were answered 2xx.
fn delivered<'a>(log: &'a [Delivery], path: &'a str) -> impl Iterator<Item = &'a Delivery> {
    log.iter()
        .filter(move |d| d.path == path && (200..300).contains(&d.answered))
}

/// The ids of `path`'s successful deliveries in the order they first arrived, asserting
/// that every first arrival is newer than the one before (in order; a duplicate is an
/// id seen before, which a receiver drops by its id).
fn first_arrivals(log: &[Delivery], path: &str) -> Vec<u64> {
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    for d in delivered(log, path) {
        if seen.insert(d.event_id) {
            if let Some(last) = order.last() {
                assert!(
                    d.event_id > *last,
                    "{path}: {} arrived after {last}",
                    d.event_id
                );
            }
            order.push(d.event_id);
        }
    }
    order
}

async fn put_hook(s: &Server, name: &str, body: Value) -> (u16, Value) {
    let (status, body, _) = send(
        client()
            .put(s.url(&format!("/v1/webhooks/{name}")))
            .json(&body),
    )
    .await;
    (status, body)
}

fn hook(url: &str, hotels: &[&str], events: &[&str]) -> Value {
    json!({"url": url, "hotels": hotels, "events": events, "secret": HOOK_SECRET})
}

async fn deliveries(s: &Server, name: &str) -> Value {
    let (status, body, _) =
        send(client().get(s.url(&format!("/v1/webhooks/{name}/deliveries")))).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Polls `GET …/deliveries` until `done` holds (the server has no push for its own
/// bookkeeping; the receiver's side is awaited, not polled).
async fn wait_deliveries(
    s: &Server,
    name: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let view = deliveries(s, name).await;
        if done(&view) {
            return view;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {view:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Books `n` one-night stays in `hotel_id`'s room type STD on consecutive nights.
async fn book_nights(s: &Server, hotel_id: &str, n: i64) {
    let c = client();
    let first = plus(today(TZ), 1);
    for i in 0..n {
        let (status, body, _) = send(
            c.post(s.url(&format!("/v1/hotels/{hotel_id}/reservations")))
                .json(&booking(plus(first, i), plus(first, i + 1))),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_are_validated_and_never_show_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let c = client();

    let (status, body) = put_hook(
        &s,
        "crm",
        hook("https://hooks.example.com/a", &["H1"], &["*"]),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["url"], "https://hooks.example.com/a");
    assert!(body.get("secret").is_none(), "{body}");
    let (status, body) = put_hook(
        &s,
        "crm",
        hook(
            "https://hooks.example.com/b",
            &["H2", "H1", "H1"],
            &["reservation.created"],
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["hotels"], &body["events"]),
        (&json!(["H1", "H2"]), &json!(["reservation.created"]))
    );
    let (status, list, _) = send(c.get(s.url("/v1/webhooks"))).await;
    assert_eq!(status, 200);
    assert_eq!(list["webhooks"].as_array().map(Vec::len), Some(1), "{list}");
    assert!(!list.to_string().contains(HOOK_SECRET), "{list}");
    let (status, one, _) = send(c.get(s.url("/v1/webhooks/crm"))).await;
    assert_eq!(
        (status, &one["url"]),
        (200, &json!("https://hooks.example.com/b"))
    );
    assert!(!one.to_string().contains(HOOK_SECRET));

    // Every rule: 400 invalid_request naming the field, nothing changed.
    let bad = [
        (
            "plain http to a non-loopback host",
            hook("http://hooks.example.com/", &["H1"], &["*"]),
            "url",
        ),
        (
            "a private address",
            hook("https://10.1.2.3/hook", &["H1"], &["*"]),
            "not a public address",
        ),
        (
            "link-local metadata",
            hook("https://169.254.169.254/latest", &["H1"], &["*"]),
            "not a public address",
        ),
        (
            "private over plain http",
            hook("http://192.168.1.10/", &["H1"], &["*"]),
            "url",
        ),
        (
            "credentials",
            hook("https://u:p@hooks.example.com/", &["H1"], &["*"]),
            "credentials",
        ),
        (
            "an unknown event",
            hook(
                "https://hooks.example.com/",
                &["H1"],
                &["reservation.eaten"],
            ),
            "events",
        ),
        (
            "no hotels",
            hook("https://hooks.example.com/", &[], &["*"]),
            "hotels",
        ),
        (
            "a bad hotel id",
            hook("https://hooks.example.com/", &["no spaces"], &["*"]),
            "hotels",
        ),
        (
            "a short secret",
            json!({"url": "https://hooks.example.com/", "hotels": ["H1"], "events": ["*"], "secret": "short"}),
            "secret",
        ),
        (
            "an unknown field",
            json!({"url": "https://hooks.example.com/", "hotels": ["H1"], "events": ["*"], "secret": HOOK_SECRET, "retries": 3}),
            "retries",
        ),
    ];
    for (what, body, says) in bad {
        let (status, problem) = put_hook(&s, "crm", body).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (400, Some("invalid_request")),
            "{what}: {problem}"
        );
        assert!(
            problem["detail"].as_str().unwrap_or("").contains(says),
            "{what}: {problem}"
        );
    }
    let (status, problem) = put_hook(
        &s,
        "bad name",
        hook("https://hooks.example.com/", &["H1"], &["*"]),
    )
    .await;
    assert_eq!(status, 400, "{problem}");
    let (_, one, _) = send(c.get(s.url("/v1/webhooks/crm"))).await;
    assert_eq!(
        one["url"], "https://hooks.example.com/b",
        "a refused PUT changed nothing"
    );

    // Replay bounds.
    let (status, problem, _) = send(
        c.post(s.url("/v1/webhooks/crm/replay"))
            .json(&json!({"from_event_id": 0})),
    )
    .await;
    assert_eq!(status, 400, "{problem}");
    let (status, problem, _) = send(
        c.post(s.url("/v1/webhooks/crm/replay"))
            .json(&json!({"from_event_id": 1_000_000})),
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("event_unavailable")),
        "{problem}"
    );

    let (status, _, _) = send(c.delete(s.url("/v1/webhooks/crm"))).await;
    assert_eq!(status, 204);
    let (status, problem, _) = send(c.get(s.url("/v1/webhooks/crm"))).await;
    assert_eq!((status, problem["code"].as_str()), (404, Some("not_found")));
    let (status, _, _) = send(c.delete(s.url("/v1/webhooks/crm"))).await;
    assert_eq!(status, 404);
    drop(s);

    // With allow_private, a private receiver is the operator's choice.
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[("INNKEEP_WEBHOOKS_ALLOW_PRIVATE", "true")]);
    let (status, body) = put_hook(&s, "lan", hook("http://10.1.2.3/hook", &["*"], &["*"])).await;
    assert_eq!(status, 201, "{body}");
    assert!(s.terminate().success());
    // Restarted without it, the stored webhook is refused at every attempt: nothing is
    // sent into the private network.
    let s = Server::start(dir.path(), FAST_RETRIES);
    hotel(&c, &s, "P1", TZ, 1).await;
    let view = wait_deliveries(&s, "lan", "a refused attempt", |v| {
        v["attempts"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let attempt = &view["attempts"][0];
    assert!(attempt["status"].is_null(), "{view:#}");
    assert!(
        attempt["error"]
            .as_str()
            .unwrap_or("")
            .contains("10.1.2.3 is not a public address"),
        "{view:#}"
    );
}

/// Two webhooks on one receiver: one for hotel H1, all types; one for booking events of
/// every hotel. The receiver is dead at first (503), then answers 200: every matching
/// event arrives signed, once answered 2xx, in journal order, with the stream's payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_signed_in_order_and_retried_until_2xx() {
    let receiver = Receiver::start().await;
    receiver.answer.store(503, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), FAST_RETRIES);
    let c = client();
    let url = |path: &str| format!("{}{path}", receiver.base);
    assert_eq!(
        put_hook(&s, "h1", hook(&url("/h1"), &["H1"], &["*"]))
            .await
            .0,
        201
    );
    assert_eq!(
        put_hook(
            &s,
            "bookings",
            hook(&url("/bookings"), &["*"], &["reservation.created"])
        )
        .await
        .0,
        201
    );
    // Events 1..=5: H1's setup; 6..=8: H2's; 9..=14: bookings in H1; 15..=16 in H2.
    hotel(&c, &s, "H1", TZ, 3).await;
    hotel(&c, &s, "H2", TZ, 1).await;
    book_nights(&s, "H1", 6).await;
    book_nights(&s, "H2", 2).await;

    // The dead receiver is tried again and again for the first event, nothing after it.
    let log = receiver
        .wait("three failed attempts", |l| {
            l.iter().filter(|d| d.path == "/h1").count() >= 3
        })
        .await;
    assert!(log
        .iter()
        .filter(|d| d.path == "/h1")
        .all(|d| d.event_id == 1 && d.answered == 503));
    let view = wait_deliveries(&s, "h1", "failures shown", |v| {
        v["attempts"].as_array().is_some_and(|a| a.len() >= 3) && v["failing_since"].is_string()
    })
    .await;
    assert_eq!(view["cursor"], 0, "{view:#}");
    assert_eq!(view["attempts"][0]["status"], 503, "{view:#}");
    assert!(view["attempts"][0]["latency_ms"].is_u64(), "{view:#}");

    receiver.answer.store(200, Ordering::SeqCst);
    let h1: Vec<u64> = (1..=5).chain(9..=14).collect();
    let bookings: Vec<u64> = (9..=16).collect();
    let log = receiver
        .wait("every event", |l| {
            let got = |p| delivered(l, p).map(|d| d.event_id).collect::<BTreeSet<_>>();
            got("/h1").len() >= h1.len() && got("/bookings").len() >= bookings.len()
        })
        .await;
    assert_eq!(first_arrivals(&log, "/h1"), h1);
    assert_eq!(first_arrivals(&log, "/bookings"), bookings);
    for d in &log {
        assert!(d.signed, "unsigned or wrongly signed: {d:?}");
        assert_eq!(d.body["id"], d.event_id, "{d:?}");
        assert_eq!(d.body["type"], d.event_type.as_str(), "{d:?}");
    }
    for d in delivered(&log, "/h1") {
        assert_eq!(d.body["hotel_id"], "H1", "{d:?}");
    }
    let created: Vec<&Delivery> = delivered(&log, "/bookings").collect();
    assert!(created
        .iter()
        .all(|d| d.event_type == "reservation.created"));
    assert_eq!(
        created
            .iter()
            .filter(|d| d.body["hotel_id"] == "H2")
            .count(),
        2,
        "booking events of every hotel"
    );
    // The payload is the event stream's: a reservation.created names the reservation.
    let booked = &created[0].body["data"];
    assert!(
        booked["reservation_id"].is_string() && booked["status"] == "pending_payment",
        "{booked}"
    );

    let view = wait_deliveries(&s, "h1", "the cursor at the last event", |v| {
        v["cursor"] == 16
    })
    .await;
    assert!(view["failing_since"].is_null(), "{view:#}");
    assert_eq!(view["dead_letters_total"], 0);
}

/// A multi-room booking is one journal record, so one delivery: `booking.created` with
/// its reservations (not a `reservation.created` per room, which only the event stream
/// adds), and its cancellation one `booking.changed` listing each reservation's change. A
/// webhook that subscribed to `reservation.created` only gets neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_room_booking_is_one_delivery_per_record() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), FAST_RETRIES);
    let c = client();
    let url = |path: &str| format!("{}{path}", receiver.base);
    for (name, events) in [
        ("all", &["*"][..]),
        ("groups", &["booking.created", "booking.changed"][..]),
        ("single", &["reservation.created"][..]),
    ] {
        let (status, body) =
            put_hook(&s, name, hook(&url(&format!("/{name}")), &["B1"], events)).await;
        assert_eq!(status, 201, "{body}");
    }
    hotel(&c, &s, "B1", TZ, 2).await;
    let first = plus(today(TZ), 1);
    let lead =
        json!({"name": "Lead Guest", "phone": "+86 138 0000 0000", "email": "lead@example.com"});
    let (status, b, _) = send(c.post(s.url("/v1/hotels/B1/bookings")).json(&json!({
        "arrival": first.to_string(),
        "departure": plus(first, 1).to_string(),
        "guest": lead,
        "rooms": [{"room_type": "STD", "guests": 2}, {"room_type": "STD", "guests": 1}],
    })))
    .await;
    assert_eq!(status, 201, "{b}");
    let id = b["id"].as_str().unwrap();
    let (status, cancelled, _) = send(c.post(s.url(&format!("/v1/bookings/{id}/cancel")))).await;
    assert_eq!(status, 200, "{cancelled}");
    // A single booking after them: the `single` webhook's only delivery, and the mark
    // that every earlier record was handed to every webhook (they go in journal order).
    book_nights(&s, "B1", 1).await;

    let log = receiver
        .wait("every webhook's deliveries", |l| {
            delivered(l, "/all").any(|d| d.event_type == "reservation.created")
                && delivered(l, "/groups").any(|d| d.event_type == "booking.changed")
                && delivered(l, "/single").count() >= 1
        })
        .await;
    let types = |path| {
        let ids = first_arrivals(&log, path);
        ids.iter()
            .map(|id| {
                delivered(&log, path)
                    .find(|d| d.event_id == *id)
                    .map(|d| d.event_type.clone())
                    .unwrap()
            })
            .filter(|t| t != "setup.updated")
            .collect::<Vec<_>>()
    };
    assert_eq!(
        types("/all"),
        ["booking.created", "booking.changed", "reservation.created"]
    );
    assert_eq!(types("/groups"), ["booking.created", "booking.changed"]);
    assert_eq!(types("/single"), ["reservation.created"]);

    let of = |t: &str| {
        delivered(&log, "/groups")
            .find(|d| d.event_type == t)
            .map(|d| d.body["data"].clone())
            .unwrap()
    };
    let created = of("booking.created");
    assert_eq!(created["booking_id"], id);
    let listed: Vec<&Value> = created["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["reservation_id"])
        .collect();
    let ids: Vec<&Value> = b["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["id"])
        .collect();
    assert_eq!(listed, ids);
    let changed = of("booking.changed");
    assert_eq!(changed["booking_id"], id);
    for change in changed["changes"].as_array().unwrap() {
        assert_eq!(change["type"], "reservation.cancelled", "{changed}");
        assert!(
            ids.contains(&&change["data"]["reservation_id"]),
            "{changed}"
        );
    }
    assert_eq!(changed["changes"].as_array().map(Vec::len), Some(2));
}

/// A receiver that hangs holds up only its own webhook: bookings are answered and another
/// webhook gets every event while the first request to the hanging one is still open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_slows_nothing_else() {
    let stuck = Receiver::start().await;
    stuck.delay_ms.store(60_000, Ordering::SeqCst);
    let live = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), FAST_RETRIES);
    let c = client();
    let to = |r: &Receiver| format!("{}/x", r.base);
    assert_eq!(
        put_hook(&s, "stuck", hook(&to(&stuck), &["*"], &["*"]))
            .await
            .0,
        201
    );
    assert_eq!(
        put_hook(&s, "live", hook(&to(&live), &["*"], &["*"]))
            .await
            .0,
        201
    );
    hotel(&c, &s, "S1", TZ, 2).await;
    stuck
        .wait("the first request, which hangs", |l| !l.is_empty())
        .await;
    book_nights(&s, "S1", 20).await;
    let log = live
        .wait("every event at the live receiver", |l| {
            delivered(l, "/x").count() >= 24
        })
        .await;
    assert_eq!(first_arrivals(&log, "/x"), (1..=24).collect::<Vec<_>>());
    // Its own webhook still waits on (or retries) its first event, in order.
    assert!(
        stuck.log.borrow().iter().all(|d| d.event_id == 1),
        "{:?}",
        stuck.log.borrow()
    );
}

/// SIGKILL while deliveries are under way, restart: delivery resumes from the durable
/// cursor, reading the journal's files (the in-memory window holds one event); every
/// event arrives (some twice, none skipped), new ones in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_delivery_resumes_from_the_durable_cursor() {
    const BOOKINGS: i64 = 120;
    let receiver = Receiver::start().await;
    // Slow enough that the server is killed with most events still to send.
    receiver.delay_ms.store(15, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    // A window of one event and frequent snapshots: after the restart the webhook is far
    // behind what memory holds and reads the journal's files.
    let mut env = FAST_RETRIES.to_vec();
    env.extend([
        ("INNKEEP_RESUME_WINDOW_EVENTS", "1"),
        ("INNKEEP_SNAPSHOT_EVERY_EVENTS", "10"),
    ]);
    let env = env.as_slice();
    let s = Server::start(dir.path(), env);
    let c = client();
    assert_eq!(
        put_hook(
            &s,
            "all",
            hook(&format!("{}/all", receiver.base), &["K1"], &["*"])
        )
        .await
        .0,
        201
    );
    hotel(&c, &s, "K1", TZ, 2).await;
    book_nights(&s, "K1", BOOKINGS).await;
    let total = 4 + BOOKINGS as u64;
    receiver
        .wait("some deliveries", |l| delivered(l, "/all").count() >= 30)
        .await;
    s.kill();
    let before = receiver.log.borrow().len();
    assert!(
        (before as u64) < total,
        "the kill came after every delivery ({before} of {total}); the test proves nothing"
    );

    let s = Server::start(dir.path(), env);
    let log = receiver
        .wait("every event after the restart", |l| {
            delivered(l, "/all")
                .map(|d| d.event_id)
                .collect::<BTreeSet<_>>()
                .len() as u64
                >= total
        })
        .await;
    let ids = first_arrivals(&log, "/all");
    assert_eq!(
        ids,
        (1..=total).collect::<Vec<_>>(),
        "none skipped, in order"
    );
    assert!(log.iter().all(|d| d.signed));
    wait_deliveries(&s, "all", "the cursor at the last event", |v| {
        v["cursor"] == total
    })
    .await;
    // A graceful stop writes the cursor; nothing is sent again after it.
    assert!(s.terminate().success());
    let sent = receiver.log.borrow().len();
    let s = Server::start(dir.path(), env);
    let view = deliveries(&s, "all").await;
    assert_eq!(view["cursor"], total, "{view:#}");
    assert_eq!(
        receiver.log.borrow().len(),
        sent,
        "nothing resent after a clean stop"
    );
}

/// A receiver failing for `max_age` gets its events dead-lettered and delivery moves on;
/// a replay sends them again once it answers; shutdown does not wait for a dead receiver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_after_max_age_then_replay() {
    let receiver = Receiver::start().await;
    receiver.answer.store(500, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let mut env = FAST_RETRIES.to_vec();
    env.push(("INNKEEP_WEBHOOKS_MAX_AGE_SECONDS", "1"));
    let s = Server::start(dir.path(), &env);
    let c = client();
    assert_eq!(
        put_hook(
            &s,
            "dl",
            hook(&format!("{}/dl", receiver.base), &["D1"], &["*"])
        )
        .await
        .0,
        201
    );
    // Events 1..=3.
    hotel(&c, &s, "D1", TZ, 1).await;
    let view = wait_deliveries(&s, "dl", "three dead letters", |v| {
        v["dead_letters_total"] == 3
    })
    .await;
    assert_eq!(view["cursor"], 3, "{view:#}");
    let letters = view["dead_letters"].as_array().expect("dead letters");
    let ids: Vec<&Value> = letters.iter().map(|d| &d["event_id"]).collect();
    assert_eq!(
        ids,
        vec![&json!(3), &json!(2), &json!(1)],
        "newest first: {view:#}"
    );
    assert_eq!(letters[2]["event_type"], "setup.updated");
    assert!(
        letters[2]["reason"].as_str().unwrap_or("").contains("500"),
        "{view:#}"
    );
    assert!(
        letters[2]["attempts"].as_u64().unwrap_or(0) >= 2,
        "retried first: {view:#}"
    );
    assert!(delivered(&receiver.log.borrow(), "/dl").next().is_none());

    receiver.answer.store(200, Ordering::SeqCst);
    let (status, view, _) = send(
        c.post(s.url("/v1/webhooks/dl/replay"))
            .json(&json!({"from_event_id": 2})),
    )
    .await;
    assert_eq!((status, &view["cursor"]), (200, &json!(1)), "{view}");
    let log = receiver
        .wait("the replayed events", |l| delivered(l, "/dl").count() >= 2)
        .await;
    assert_eq!(first_arrivals(&log, "/dl"), vec![2, 3]);
    wait_deliveries(&s, "dl", "the cursor back at the end", |v| v["cursor"] == 3).await;

    // A receiver that never answers: graceful shutdown still ends at once.
    receiver.answer.store(503, Ordering::SeqCst);
    put_hook(
        &s,
        "dl",
        hook(&format!("{}/dl", receiver.base), &["D1"], &["*"]),
    )
    .await;
    send(
        c.put(s.url("/v1/hotels/D1/rooms/1/housekeeping"))
            .json(&json!({"status": "dirty"})),
    )
    .await;
    receiver
        .wait("an attempt at the new event", |l| {
            l.iter().any(|d| d.event_id == 4)
        })
        .await;
    let started = std::time::Instant::now();
    assert!(s.terminate().success());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown waited on a dead receiver"
    );
}

/// A webhook file that cannot be read whole stops start-up with a message naming it;
/// nothing is half-loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_webhook_file_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let (status, body) = put_hook(
        &s,
        "good",
        hook("https://hooks.example.com/", &["*"], &["*"]),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(s.terminate().success());
    let file = dir.path().join("webhooks/good.json");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, &text[..text.len() / 2]).unwrap();
    let early = match Server::launch(dir.path(), &[]) {
        Ok(s) => panic!("started over a torn webhook file: {:#?}", s.startup),
        Err(e) => e,
    };
    assert!(!early.timed_out && !early.status.success(), "{early:#?}");
    let said = early.plain_stderr().join("\n");
    assert!(said.contains("good.json"), "{said}");
    // Put back whole, it loads with its cursor.
    std::fs::write(&file, &text).unwrap();
    let s = Server::start(dir.path(), &[]);
    let (status, one, _) = send(client().get(s.url("/v1/webhooks/good"))).await;
    assert_eq!(
        (status, &one["url"]),
        (200, &json!("https://hooks.example.com/"))
    );
}

/// Webhooks are for admin keys, scoped by the hotels they name: a key may create, see,
/// replay and delete only webhooks whose hotels it covers (`"*"` only with a key for every
/// hotel); another's is 404 as if missing; naming a hotel outside the key is 403; other
/// roles get 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_see_and_change_only_webhooks_of_their_hotels() {
    let (admin_all, admin_all_hash) = crate::security::keygen();
    let (admin_h1, admin_h1_hash) = crate::security::keygen();
    let (desk_h1, desk_h1_hash) = crate::security::keygen();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("innkeep.toml");
    std::fs::write(
        &config,
        format!(
            "[[api_keys]]\nkey_sha256 = \"{admin_all_hash}\"\nrole = \"admin\"\nhotels = [\"*\"]\n\
             [[api_keys]]\nkey_sha256 = \"{admin_h1_hash}\"\nrole = \"admin\"\nhotels = [\"H1\"]\n\
             [[api_keys]]\nkey_sha256 = \"{desk_h1_hash}\"\nrole = \"front_desk\"\nhotels = [\"H1\"]\n"
        ),
    )
    .unwrap();
    let s = Server::start(
        &dir.path().join("data"),
        &[("INNKEEP_CONFIG", config.to_str().unwrap())],
    );
    let c = client();
    let put = |key: &str, name: &str, hotels: &[&str]| {
        c.put(s.url(&format!("/v1/webhooks/{name}")))
            .bearer_auth(key)
            .json(&hook("https://hooks.example.com/", hotels, &["*"]))
    };
    let code = |v: &Value| v["code"].as_str().unwrap_or("").to_owned();

    assert_eq!(send(put(&admin_h1, "mine", &["H1"])).await.0, 201);
    let (status, body, _) = send(put(&admin_h1, "wide", &["H1", "H2"])).await;
    assert_eq!((status, code(&body)), (403, "forbidden".into()), "{body}");
    let (status, body, _) = send(put(&admin_h1, "every", &["*"])).await;
    assert_eq!((status, code(&body)), (403, "forbidden".into()), "{body}");
    assert_eq!(send(put(&admin_all, "every", &["*"])).await.0, 201);
    // Replacing a webhook the key does not cover is refused, not a takeover.
    let (status, body, _) = send(put(&admin_h1, "every", &["H1"])).await;
    assert_eq!((status, code(&body)), (403, "forbidden".into()), "{body}");
    let (status, body, _) = send(put(&desk_h1, "desk", &["H1"])).await;
    assert_eq!((status, code(&body)), (403, "forbidden".into()), "{body}");

    let names = |key: &str| {
        let req = c.get(s.url("/v1/webhooks")).bearer_auth(key);
        async move {
            let (status, body, _) = send(req).await;
            assert_eq!(status, 200, "{body}");
            body["webhooks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(names(&admin_all).await, vec!["every", "mine"]);
    assert_eq!(names(&admin_h1).await, vec!["mine"]);
    for (method, path) in [
        ("GET", "/v1/webhooks/every"),
        ("GET", "/v1/webhooks/every/deliveries"),
        ("DELETE", "/v1/webhooks/every"),
    ] {
        let req = c
            .request(method.parse().unwrap(), s.url(path))
            .bearer_auth(&admin_h1);
        let (status, body, _) = send(req).await;
        assert_eq!(
            (status, code(&body)),
            (404, "not_found".into()),
            "{method} {path}: {body}"
        );
    }
    let (status, body, _) = send(
        c.post(s.url("/v1/webhooks/every/replay"))
            .bearer_auth(&admin_h1)
            .json(&json!({"from_event_id": 1})),
    )
    .await;
    assert_eq!((status, code(&body)), (404, "not_found".into()), "{body}");
    let (status, _, _) = send(c.get(s.url("/v1/webhooks/mine")).bearer_auth(&desk_h1)).await;
    assert_eq!(status, 403);
    let (status, _, _) = send(c.get(s.url("/v1/webhooks"))).await;
    assert_eq!(status, 401);
    // The key that covers it may delete it.
    let (status, _, _) = send(
        c.delete(s.url("/v1/webhooks/every"))
            .bearer_auth(&admin_all),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(names(&admin_all).await, vec!["mine"]);
}
