//! Authorization, limits and metrics through the router: the route × role × hotel matrix,
//! creators, rate limits, hold caps, the deadline, the connection limit and `/metrics`.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use innkeep_actors::{BookInput, Engine, EngineConfig};
use innkeep_engine::jiff::ToSpan;
use innkeep_engine::{Guest, HotelId, RoomNumber, RoomTypeCode};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::auth::{hash_key, key_id, ApiKey, AuthConfig, HotelScope, Role};
use crate::routes::payments::signature_header;
use crate::{router, AppState, HttpLimits, PaymentConfig, PROBLEM_JSON};

const SECRET: &[u8] = b"test-secret-0123456789";
const TZ: &str = "Asia/Shanghai";

const ADMIN_ALL: &str = "admin-all-key";
const ADMIN_H1: &str = "admin-h1-key";
const CHAN_A: &str = "channel-a-key";
const CHAN_B: &str = "channel-b-key";
const DESK_H1: &str = "front-desk-h1-key";

fn key(secret: &str, role: Role, hotels: &[&str]) -> ApiKey {
    ApiKey {
        name: None,
        key_sha256: hash_key(secret),
        role,
        hotels: if hotels == ["*"] {
            HotelScope::All
        } else {
            HotelScope::Only(hotels.iter().map(|h| (*h).to_owned()).collect())
        },
    }
}

fn keys() -> Vec<ApiKey> {
    vec![
        key(ADMIN_ALL, Role::Admin, &["*"]),
        key(ADMIN_H1, Role::Admin, &["H1"]),
        key(CHAN_A, Role::Channel, &["H1"]),
        key(CHAN_B, Role::Channel, &["H1"]),
        key(DESK_H1, Role::FrontDesk, &["H1"]),
    ]
}

fn creator(secret: &str) -> Option<String> {
    Some(key_id(&hash_key(secret)))
}

/// A keyed router over a real engine (whose data dir the test holds); shuts the engine
/// down when dropped.
struct Harness {
    app: Router,
    engine: Engine,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.engine.shutdown();
    }
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
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
}

impl Harness {
    fn start(config: EngineConfig, limits: HttpLimits) -> Self {
        let engine = Engine::start(config).unwrap();
        let state = AppState::new(engine.clone(), PaymentConfig::new(SECRET))
            .with_security(AuthConfig::new(keys()), limits);
        Self {
            app: router(state),
            engine,
        }
    }

    async fn send(&self, req: Request<Body>) -> Reply {
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        // An event stream never ends by itself: its status and headers are the answer.
        if headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
        {
            return Reply {
                status,
                headers,
                body: Value::Null,
            };
        }
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn call(
        &self,
        who: Option<&str>,
        method: Method,
        uri: &str,
        extra: &[(&str, &str)],
        body: Option<Value>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(k) = who {
            req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
        }
        for (k, v) in extra {
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

    /// Hotels H1 and H2, each with KING rooms 101..=110.
    async fn setup(&self) {
        for h in ["H1", "H2"] {
            let hotel = HotelId::parse(h).unwrap();
            self.engine
                .put_hotel(hotel.clone(), h, TZ, "CNY")
                .await
                .unwrap();
            let king = RoomTypeCode::parse("KING").unwrap();
            self.engine
                .put_room_type(&hotel, king.clone(), "King", 2, 50_000)
                .await
                .unwrap();
            for n in 101..=110 {
                self.engine
                    .put_room(
                        &hotel,
                        RoomNumber::parse(&n.to_string()).unwrap(),
                        king.clone(),
                    )
                    .await
                    .unwrap();
            }
        }
    }

    /// A reservation booked straight through the engine, as `by`.
    async fn reserve(&self, hotel: &str, by: Option<String>) -> String {
        let h = HotelId::parse(hotel).unwrap();
        let arrival = self
            .engine
            .today(&h)
            .unwrap()
            .checked_add(3.days())
            .unwrap();
        let input = BookInput {
            hotel_id: h,
            room_type: RoomTypeCode::parse("KING").unwrap(),
            arrival,
            departure: arrival.tomorrow().unwrap(),
            guests: 1,
            guest: Guest::parse("Li Lei", "+86 138 0000 0000", "li@example.com").unwrap(),
            room: None,
            created_by: by,
            rate_plan: None,
        };
        self.engine.book(input, None).await.unwrap().id.to_string()
    }

    /// A two-room booking in `hotel` made by `by`; its id.
    async fn book_group(&self, hotel: &str, by: Option<String>) -> String {
        let h = HotelId::parse(hotel).unwrap();
        let arrival = self
            .engine
            .today(&h)
            .unwrap()
            .checked_add(5.days())
            .unwrap();
        let room = innkeep_engine::group::GroupRoom {
            room_type: RoomTypeCode::parse("KING").unwrap(),
            guests: 1,
            guest: None,
        };
        let input = innkeep_engine::group::GroupInput {
            hotel_id: h,
            arrival,
            departure: arrival.tomorrow().unwrap(),
            guest: Guest::parse("Li Lei", "+86 138 0000 0000", "li@example.com").unwrap(),
            rooms: vec![room.clone(), room],
            rate_plan: None,
            created_by: by,
        };
        let booking = self.engine.book_group(input, None).await.unwrap();
        booking.summary.id.to_string()
    }
}

fn engine_config() -> (tempfile::TempDir, EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig::new(dir.path().join("data"));
    (dir, config)
}

fn generous() -> HttpLimits {
    HttpLimits {
        rate_per_second: 1_000_000,
        burst: 1_000_000,
        ..HttpLimits::default()
    }
}

fn today_plus(days: i64) -> String {
    let tz = innkeep_engine::jiff::tz::TimeZone::get(TZ).unwrap();
    innkeep_engine::jiff::Timestamp::now()
        .to_zoned(tz)
        .date()
        .checked_add(days.days())
        .unwrap()
        .to_string()
}

fn booking_body(days: i64) -> Value {
    json!({
        "room_type": "KING",
        "arrival": today_plus(days),
        "departure": today_plus(days + 1),
        "guests": 1,
        "guest": {"name": "Li Lei", "phone": "+86 138-0000-0000", "email": "li@example.com"},
    })
}

/// Who calls, in the order of the expectation columns.
const WHO: [(&str, Option<&str>); 6] = [
    ("anonymous", None),
    ("unknown key", Some("not-a-configured-key")),
    ("admin *", Some(ADMIN_ALL)),
    ("admin H1", Some(ADMIN_H1)),
    ("channel A H1", Some(CHAN_A)),
    ("front desk H1", Some(DESK_H1)),
];

/// What a row targets: a hotel in the path, or a reservation.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// H1: every scoped key's own hotel.
    OwnHotel,
    /// H2: no scoped key's hotel.
    OtherHotel,
    /// A reservation in H1 created by channel A.
    OwnReservation,
    /// A reservation in H1 created by channel B.
    OtherChannelsReservation,
    /// A reservation in H2.
    OtherHotelsReservation,
    /// The reservation of `OwnReservation`, under H2 in a hotel-scoped path.
    OwnReservationUnderOtherHotel,
    /// A multi-room booking in H1 made by channel A.
    OwnBooking,
    /// A multi-room booking in H1 made by channel B.
    OtherChannelsBooking,
    /// A multi-room booking in H2.
    OtherHotelsBooking,
    /// The booking of `OwnBooking`, under H2 in a hotel-scoped path.
    OwnBookingUnderOtherHotel,
    /// No target (public routes).
    None,
}

/// The authorization matrix: every route × every caller × own and other hotel (or
/// reservation). Allowed calls are made harmless: PUT/POST bodies are `{}` (400 after
/// authorization) and state changes carry a wrong `If-Match` (412 after authorization),
/// so the fixture never changes and each cell is independent of the others.
#[tokio::test(flavor = "multi_thread")]
async fn authorization_matrix() {
    let (_dir, config) = engine_config();
    let h = Harness::start(config, generous());
    h.setup().await;
    let own_res = h.reserve("H1", creator(CHAN_A)).await;
    let other_chan_res = h.reserve("H1", creator(CHAN_B)).await;
    let other_hotel_res = h.reserve("H2", creator(ADMIN_ALL)).await;
    let own_booking = h.book_group("H1", creator(CHAN_A)).await;
    let other_chan_booking = h.book_group("H1", creator(CHAN_B)).await;
    let other_hotel_booking = h.book_group("H2", creator(ADMIN_ALL)).await;
    let stay = format!("arrival={}&departure={}", today_plus(1), today_plus(2));
    let range = format!("from={}&to={}", today_plus(1), today_plus(2));

    use Target::*;
    type Row = (Method, &'static str, Target, [u16; 6]);
    let rows: Vec<Row> = vec![
        // Setup: admin only.
        (
            Method::PUT,
            "/v1/hotels/{h}",
            OwnHotel,
            [401, 401, 400, 400, 403, 403],
        ),
        (
            Method::PUT,
            "/v1/hotels/{h}",
            OtherHotel,
            [401, 401, 400, 404, 404, 404],
        ),
        (
            Method::GET,
            "/v1/hotels/{h}",
            OwnHotel,
            [401, 401, 200, 200, 403, 403],
        ),
        (
            Method::GET,
            "/v1/hotels/{h}",
            OtherHotel,
            [401, 401, 200, 404, 404, 404],
        ),
        (
            Method::PUT,
            "/v1/hotels/{h}/room-types/KING",
            OwnHotel,
            [401, 401, 400, 400, 403, 403],
        ),
        (
            Method::PUT,
            "/v1/hotels/{h}/room-types/KING",
            OtherHotel,
            [401, 401, 400, 404, 404, 404],
        ),
        (
            Method::PUT,
            "/v1/hotels/{h}/rooms/101",
            OwnHotel,
            [401, 401, 400, 400, 403, 403],
        ),
        (
            Method::PUT,
            "/v1/hotels/{h}/rooms/101",
            OtherHotel,
            [401, 401, 400, 404, 404, 404],
        ),
        (
            Method::PUT,
            "/v1/hotels/{h}/room-types/KING/rates",
            OwnHotel,
            [401, 401, 400, 400, 403, 403],
        ),
        (
            Method::PUT,
            "/v1/hotels/{h}/room-types/KING/rates",
            OtherHotel,
            [401, 401, 400, 404, 404, 404],
        ),
        // Selling rules: admin only, like the hotel itself.
        (
            Method::PUT,
            "/v1/hotels/{h}/rate-plans/KING",
            OwnHotel,
            [401, 401, 400, 400, 403, 403],
        ),
        (
            Method::PUT,
            "/v1/hotels/{h}/rate-plans/KING",
            OtherHotel,
            [401, 401, 400, 404, 404, 404],
        ),
        (
            Method::GET,
            "/v1/hotels/{h}/rate-plans",
            OwnHotel,
            [401, 401, 200, 200, 403, 403],
        ),
        (
            Method::GET,
            "/v1/hotels/{h}/rate-plans",
            OtherHotel,
            [401, 401, 200, 404, 404, 404],
        ),
        (
            Method::PUT,
            "/v1/hotels/{h}/restrictions",
            OwnHotel,
            [401, 401, 400, 400, 403, 403],
        ),
        (
            Method::PUT,
            "/v1/hotels/{h}/restrictions",
            OtherHotel,
            [401, 401, 400, 404, 404, 404],
        ),
        (
            Method::GET,
            "/v1/hotels/{h}/restrictions?{range}",
            OwnHotel,
            [401, 401, 200, 200, 403, 403],
        ),
        (
            Method::GET,
            "/v1/hotels/{h}/restrictions?{range}",
            OtherHotel,
            [401, 401, 200, 404, 404, 404],
        ),
        // Availability and booking: admin and channel.
        (
            Method::GET,
            "/v1/hotels/{h}/availability?{stay}",
            OwnHotel,
            [401, 401, 200, 200, 200, 403],
        ),
        (
            Method::GET,
            "/v1/hotels/{h}/availability?{stay}",
            OtherHotel,
            [401, 401, 200, 404, 404, 404],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/reservations",
            OwnHotel,
            [401, 401, 400, 400, 400, 403],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/reservations",
            OtherHotel,
            [401, 401, 400, 404, 404, 404],
        ),
        // Multi-room bookings: as reservations, a channel sees only its own.
        (
            Method::POST,
            "/v1/hotels/{h}/bookings",
            OwnHotel,
            [401, 401, 400, 400, 400, 403],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/bookings",
            OtherHotel,
            [401, 401, 400, 404, 404, 404],
        ),
        (
            Method::GET,
            "/v1/bookings/{b}",
            OwnBooking,
            [401, 401, 200, 200, 200, 200],
        ),
        (
            Method::GET,
            "/v1/bookings/{b}",
            OtherChannelsBooking,
            [401, 401, 200, 200, 404, 200],
        ),
        (
            Method::GET,
            "/v1/bookings/{b}",
            OtherHotelsBooking,
            [401, 401, 200, 404, 404, 404],
        ),
        // The hotel-scoped forms, as for reservations.
        (
            Method::GET,
            "/v1/hotels/{h}/bookings/{b}",
            OwnBooking,
            [401, 401, 200, 200, 200, 200],
        ),
        (
            Method::GET,
            "/v1/hotels/{h}/bookings/{b}",
            OtherChannelsBooking,
            [401, 401, 200, 200, 404, 200],
        ),
        (
            Method::GET,
            "/v1/hotels/{h}/bookings/{b}",
            OtherHotelsBooking,
            [401, 401, 200, 404, 404, 404],
        ),
        (
            Method::GET,
            "/v1/hotels/{h}/bookings/{b}",
            OwnBookingUnderOtherHotel,
            [401, 401, 404, 404, 404, 404],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/bookings/{b}/cancel",
            OwnBooking,
            [401, 401, 412, 412, 412, 412],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/bookings/{b}/cancel",
            OtherChannelsBooking,
            [401, 401, 412, 412, 404, 412],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/bookings/{b}/cancel",
            OtherHotelsBooking,
            [401, 401, 412, 404, 404, 404],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/bookings/{b}/cancel",
            OwnBookingUnderOtherHotel,
            [401, 401, 404, 404, 404, 404],
        ),
        (
            Method::POST,
            "/v1/bookings/{b}/cancel",
            OwnBooking,
            [401, 401, 412, 412, 412, 412],
        ),
        (
            Method::POST,
            "/v1/bookings/{b}/cancel",
            OtherChannelsBooking,
            [401, 401, 412, 412, 404, 412],
        ),
        (
            Method::POST,
            "/v1/bookings/{b}/cancel",
            OtherHotelsBooking,
            [401, 401, 412, 404, 404, 404],
        ),
        // Rooms and housekeeping: admin and front desk.
        (
            Method::GET,
            "/v1/hotels/{h}/rooms",
            OwnHotel,
            [401, 401, 200, 200, 403, 200],
        ),
        (
            Method::GET,
            "/v1/hotels/{h}/rooms",
            OtherHotel,
            [401, 401, 200, 404, 404, 404],
        ),
        (
            Method::PUT,
            "/v1/hotels/{h}/rooms/101/housekeeping",
            OwnHotel,
            [401, 401, 400, 400, 403, 400],
        ),
        (
            Method::PUT,
            "/v1/hotels/{h}/rooms/101/housekeeping",
            OtherHotel,
            [401, 401, 400, 404, 404, 404],
        ),
        // Out-of-order ranges: admin and front desk.
        (
            Method::POST,
            "/v1/hotels/{h}/rooms/101/out-of-order",
            OwnHotel,
            [401, 401, 400, 400, 403, 400],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/rooms/101/out-of-order",
            OtherHotel,
            [401, 401, 400, 404, 404, 404],
        ),
        (
            Method::DELETE,
            "/v1/hotels/{h}/rooms/101/out-of-order/bad-date",
            OwnHotel,
            [401, 401, 400, 400, 403, 400],
        ),
        (
            Method::DELETE,
            "/v1/hotels/{h}/rooms/101/out-of-order/bad-date",
            OtherHotel,
            [401, 401, 400, 404, 404, 404],
        ),
        // Reservations: a channel sees only its own.
        (
            Method::GET,
            "/v1/reservations/{r}",
            OwnReservation,
            [401, 401, 200, 200, 200, 200],
        ),
        (
            Method::GET,
            "/v1/reservations/{r}",
            OtherChannelsReservation,
            [401, 401, 200, 200, 404, 200],
        ),
        (
            Method::GET,
            "/v1/reservations/{r}",
            OtherHotelsReservation,
            [401, 401, 200, 404, 404, 404],
        ),
        (
            Method::POST,
            "/v1/reservations/{r}/cancel",
            OwnReservation,
            [401, 401, 412, 412, 412, 412],
        ),
        (
            Method::POST,
            "/v1/reservations/{r}/cancel",
            OtherChannelsReservation,
            [401, 401, 412, 412, 404, 412],
        ),
        (
            Method::POST,
            "/v1/reservations/{r}/cancel",
            OtherHotelsReservation,
            [401, 401, 412, 404, 404, 404],
        ),
        (
            Method::POST,
            "/v1/reservations/{r}/check-in",
            OwnReservation,
            [401, 401, 412, 412, 403, 412],
        ),
        (
            Method::POST,
            "/v1/reservations/{r}/check-in",
            OtherChannelsReservation,
            [401, 401, 412, 412, 404, 412],
        ),
        (
            Method::POST,
            "/v1/reservations/{r}/check-in",
            OtherHotelsReservation,
            [401, 401, 412, 404, 404, 404],
        ),
        (
            Method::POST,
            "/v1/reservations/{r}/check-out",
            OwnReservation,
            [401, 401, 412, 412, 403, 412],
        ),
        (
            Method::POST,
            "/v1/reservations/{r}/check-out",
            OtherChannelsReservation,
            [401, 401, 412, 412, 404, 412],
        ),
        (
            Method::POST,
            "/v1/reservations/{r}/check-out",
            OtherHotelsReservation,
            [401, 401, 412, 404, 404, 404],
        ),
        // Modify: like cancel (the channel that booked it, the hotel's front desk).
        (
            Method::POST,
            "/v1/reservations/{r}/modify",
            OwnReservation,
            [401, 401, 412, 412, 412, 412],
        ),
        (
            Method::POST,
            "/v1/reservations/{r}/modify",
            OtherChannelsReservation,
            [401, 401, 412, 412, 404, 412],
        ),
        (
            Method::POST,
            "/v1/reservations/{r}/modify",
            OtherHotelsReservation,
            [401, 401, 412, 404, 404, 404],
        ),
        (
            Method::POST,
            "/v1/reservations/{r}/move",
            OwnReservation,
            [401, 401, 400, 400, 403, 400],
        ),
        (
            Method::POST,
            "/v1/reservations/{r}/move",
            OtherChannelsReservation,
            [401, 401, 400, 400, 404, 400],
        ),
        (
            Method::POST,
            "/v1/reservations/{r}/move",
            OtherHotelsReservation,
            [401, 401, 400, 404, 404, 404],
        ),
        // Payments: like the reservation they pay for (no front-desk exclusion: it may
        // see payments of its hotel); the sandbox ledger is for admins of every hotel
        // (404 here: no sandbox provider in this server).
        (
            Method::GET,
            "/v1/payments/{p}",
            OwnReservation,
            [401, 401, 200, 200, 200, 200],
        ),
        (
            Method::GET,
            "/v1/payments/{p}",
            OtherChannelsReservation,
            [401, 401, 200, 200, 404, 200],
        ),
        (
            Method::GET,
            "/v1/payments/{p}",
            OtherHotelsReservation,
            [401, 401, 200, 404, 404, 404],
        ),
        // The hotel-scoped forms: the same answers, but the guard checks the path's hotel
        // and the role before the reservation is loaded (so a role that may never do
        // this is 403 for every reservation of its hotel), and a reservation under
        // another hotel's path is missing even for an admin of every hotel.
        (
            Method::GET,
            "/v1/hotels/{h}/reservations/{r}",
            OwnReservation,
            [401, 401, 200, 200, 200, 200],
        ),
        (
            Method::GET,
            "/v1/hotels/{h}/reservations/{r}",
            OtherChannelsReservation,
            [401, 401, 200, 200, 404, 200],
        ),
        (
            Method::GET,
            "/v1/hotels/{h}/reservations/{r}",
            OtherHotelsReservation,
            [401, 401, 200, 404, 404, 404],
        ),
        (
            Method::GET,
            "/v1/hotels/{h}/reservations/{r}",
            OwnReservationUnderOtherHotel,
            [401, 401, 404, 404, 404, 404],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/reservations/{r}/cancel",
            OwnReservation,
            [401, 401, 412, 412, 412, 412],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/reservations/{r}/cancel",
            OtherChannelsReservation,
            [401, 401, 412, 412, 404, 412],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/reservations/{r}/cancel",
            OtherHotelsReservation,
            [401, 401, 412, 404, 404, 404],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/reservations/{r}/cancel",
            OwnReservationUnderOtherHotel,
            [401, 401, 404, 404, 404, 404],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/reservations/{r}/modify",
            OwnReservation,
            [401, 401, 412, 412, 412, 412],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/reservations/{r}/modify",
            OtherChannelsReservation,
            [401, 401, 412, 412, 404, 412],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/reservations/{r}/modify",
            OtherHotelsReservation,
            [401, 401, 412, 404, 404, 404],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/reservations/{r}/modify",
            OwnReservationUnderOtherHotel,
            [401, 401, 404, 404, 404, 404],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/reservations/{r}/check-in",
            OwnReservation,
            [401, 401, 412, 412, 403, 412],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/reservations/{r}/check-in",
            OtherChannelsReservation,
            [401, 401, 412, 412, 403, 412],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/reservations/{r}/check-in",
            OtherHotelsReservation,
            [401, 401, 412, 404, 404, 404],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/reservations/{r}/check-in",
            OwnReservationUnderOtherHotel,
            [401, 401, 404, 404, 404, 404],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/reservations/{r}/check-out",
            OwnReservation,
            [401, 401, 412, 412, 403, 412],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/reservations/{r}/check-out",
            OtherChannelsReservation,
            [401, 401, 412, 412, 403, 412],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/reservations/{r}/check-out",
            OtherHotelsReservation,
            [401, 401, 412, 404, 404, 404],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/reservations/{r}/check-out",
            OwnReservationUnderOtherHotel,
            [401, 401, 404, 404, 404, 404],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/reservations/{r}/move",
            OwnReservation,
            [401, 401, 400, 400, 403, 400],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/reservations/{r}/move",
            OtherChannelsReservation,
            [401, 401, 400, 400, 403, 400],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/reservations/{r}/move",
            OtherHotelsReservation,
            [401, 401, 400, 404, 404, 404],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/reservations/{r}/move",
            OwnReservationUnderOtherHotel,
            [401, 401, 404, 404, 404, 404],
        ),
        (
            Method::GET,
            "/v1/hotels/{h}/payments/{p}",
            OwnReservation,
            [401, 401, 200, 200, 200, 200],
        ),
        (
            Method::GET,
            "/v1/hotels/{h}/payments/{p}",
            OtherChannelsReservation,
            [401, 401, 200, 200, 404, 200],
        ),
        (
            Method::GET,
            "/v1/hotels/{h}/payments/{p}",
            OtherHotelsReservation,
            [401, 401, 200, 404, 404, 404],
        ),
        (
            Method::GET,
            "/v1/hotels/{h}/payments/{p}",
            OwnReservationUnderOtherHotel,
            [401, 401, 404, 404, 404, 404],
        ),
        (
            Method::POST,
            "/v1/hotels/{h}/payments/notify",
            OwnHotel,
            [401, 401, 401, 401, 401, 401],
        ),
        (
            Method::GET,
            "/v1/payments/sandbox/ledger",
            None,
            [401, 401, 404, 403, 403, 403],
        ),
        // Webhooks: admin keys of any scope (the handlers check the webhook's hotels);
        // this router has none enabled (404 once past the guard), and `{}` is no
        // definition (400).
        (
            Method::GET,
            "/v1/webhooks",
            None,
            [401, 401, 404, 404, 403, 403],
        ),
        (
            Method::GET,
            "/v1/webhooks/crm",
            None,
            [401, 401, 404, 404, 403, 403],
        ),
        (
            Method::PUT,
            "/v1/webhooks/crm",
            None,
            [401, 401, 400, 400, 403, 403],
        ),
        (
            Method::DELETE,
            "/v1/webhooks/crm",
            None,
            [401, 401, 404, 404, 403, 403],
        ),
        (
            Method::GET,
            "/v1/webhooks/crm/deliveries",
            None,
            [401, 401, 404, 404, 403, 403],
        ),
        (
            Method::POST,
            "/v1/webhooks/crm/replay",
            None,
            [401, 401, 400, 400, 403, 403],
        ),
        // Public: the callback is authenticated by its signature (none here: 401
        // bad_signature for everyone); probes and the document need nothing.
        (
            Method::POST,
            "/v1/payments/notify",
            None,
            [401, 401, 401, 401, 401, 401],
        ),
        // The event stream: admin and front desk of the hotel.
        (
            Method::GET,
            "/v1/hotels/{h}/events",
            OwnHotel,
            [401, 401, 200, 200, 403, 200],
        ),
        (
            Method::GET,
            "/v1/hotels/{h}/events",
            OtherHotel,
            [401, 401, 200, 404, 404, 404],
        ),
        // The front desk's day: admin and front desk of the hotel.
        (
            Method::GET,
            "/v1/hotels/{h}/front-desk",
            OwnHotel,
            [401, 401, 200, 200, 403, 200],
        ),
        (
            Method::GET,
            "/v1/hotels/{h}/front-desk",
            OtherHotel,
            [401, 401, 200, 404, 404, 404],
        ),
        // The tape chart: like the front desk's day (it names every channel's guests).
        (
            Method::GET,
            "/v1/hotels/{h}/tape",
            OwnHotel,
            [401, 401, 200, 200, 403, 200],
        ),
        (
            Method::GET,
            "/v1/hotels/{h}/tape",
            OtherHotel,
            [401, 401, 200, 404, 404, 404],
        ),
        // The board's page is a public static shell; its data needs a key (rows above).
        (Method::GET, "/board/{h}", OwnHotel, [200; 6]),
        (Method::GET, "/board/{h}", OtherHotel, [200; 6]),
        (Method::GET, "/healthz", None, [200; 6]),
        (Method::GET, "/readyz", None, [200; 6]),
        // Every hotel's counters and the keys' names: admins of every hotel only.
        (
            Method::GET,
            "/metrics",
            None,
            [401, 401, 200, 403, 403, 403],
        ),
        (Method::GET, "/openapi.json", None, [200; 6]),
    ];

    // Every protected route of the API appears in the matrix.
    for (method, template, access) in crate::auth::ROUTES {
        let covered = rows.iter().any(|(m, t, _, _)| {
            m.as_str() == *method
                && t.replace("{h}", "{hotel_id}")
                    .replace("{r}", "{id}")
                    .replace("{b}", "{id}")
                    .replace("{p}", "{out_trade_no}")
                    .split('?')
                    .next()
                    .unwrap()
                    .replace("KING", "{code}")
                    .replace("101", "{number}")
                    .replace("bad-date", "{from}")
                    .replace("/crm", "/{name}")
                    == *template
        });
        assert!(
            covered,
            "{method} {template} ({access:?}) is not in the matrix"
        );
    }

    let mut failures = Vec::new();
    for (method, template, target, expected) in &rows {
        let uri = template.replace("{stay}", &stay).replace("{range}", &range);
        let uri = match target {
            OwnHotel => uri.replace("{h}", "H1"),
            OtherHotel => uri.replace("{h}", "H2"),
            OwnReservation => uri
                .replace("{h}", "H1")
                .replace("{r}", &own_res)
                .replace("{p}", &out_trade_no(&own_res)),
            OtherChannelsReservation => uri
                .replace("{h}", "H1")
                .replace("{r}", &other_chan_res)
                .replace("{p}", &out_trade_no(&other_chan_res)),
            OtherHotelsReservation => uri
                .replace("{h}", "H2")
                .replace("{r}", &other_hotel_res)
                .replace("{p}", &out_trade_no(&other_hotel_res)),
            OwnReservationUnderOtherHotel => uri
                .replace("{h}", "H2")
                .replace("{r}", &own_res)
                .replace("{p}", &out_trade_no(&own_res)),
            OwnBooking => uri.replace("{h}", "H1").replace("{b}", &own_booking),
            OtherChannelsBooking => uri.replace("{h}", "H1").replace("{b}", &other_chan_booking),
            OtherHotelsBooking => uri
                .replace("{h}", "H2")
                .replace("{b}", &other_hotel_booking),
            OwnBookingUnderOtherHotel => uri.replace("{h}", "H2").replace("{b}", &own_booking),
            None => uri,
        };
        let body = matches!(*method, Method::PUT)
            || (*method == Method::POST
                && (uri.ends_with("/reservations")
                    || uri.ends_with("/bookings")
                    || uri.ends_with("/move")
                    || uri.ends_with("/modify")
                    || uri.ends_with("/replay")
                    || uri.ends_with("/out-of-order")));
        for ((who, secret), want) in WHO.iter().zip(expected) {
            let r = h
                .call(
                    *secret,
                    method.clone(),
                    &uri,
                    &[("if-match", "\"999\"")],
                    body.then(|| json!({})),
                )
                .await;
            if r.status.as_u16() != *want {
                failures.push(format!(
                    "{method} {uri} as {who}: want {want}, got {} {}",
                    r.status, r.body
                ));
                continue;
            }
            let code_ok = match *want {
                401 if uri.ends_with("/payments/notify") => r.code() == "bad_signature",
                401 => {
                    r.code() == "unauthorized" && r.header("www-authenticate").starts_with("Bearer")
                }
                403 => r.code() == "forbidden",
                404 => r.code() == "not_found",
                412 => r.code() == "version_mismatch",
                400 => r.code() == "invalid_request",
                _ => true,
            };
            if !code_ok {
                failures.push(format!(
                    "{method} {uri} as {who}: {:?} {}",
                    r.headers, r.body
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn out_trade_no(reservation_id: &str) -> String {
    innkeep_engine::ReservationId::parse(reservation_id)
        .unwrap()
        .out_trade_no()
        .to_string()
}

/// What a key may not see answers exactly like what does not exist.
#[tokio::test(flavor = "multi_thread")]
async fn hidden_is_indistinguishable_from_missing() {
    let (_dir, config) = engine_config();
    let h = Harness::start(config, generous());
    h.setup().await;
    let theirs = h.reserve("H1", creator(CHAN_B)).await;
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("instance");
        v
    };
    let missing = h
        .call(Some(ADMIN_ALL), Method::GET, "/v1/hotels/NOPE", &[], None)
        .await;
    let hidden = h
        .call(Some(ADMIN_H1), Method::GET, "/v1/hotels/H2", &[], None)
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(strip(missing.body), strip(hidden.body));
    assert_eq!(
        missing.headers.get(header::CONTENT_TYPE).unwrap(),
        PROBLEM_JSON
    );

    let nobody = format!("/v1/reservations/{}", uuid::Uuid::now_v7());
    let missing = h.call(Some(CHAN_A), Method::GET, &nobody, &[], None).await;
    let hidden = h
        .call(
            Some(CHAN_A),
            Method::GET,
            &format!("/v1/reservations/{theirs}"),
            &[],
            None,
        )
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(strip(missing.body), strip(hidden.body));
}

/// A channel's booking records it as creator: it can read and cancel it, another channel
/// cannot see it, and reusing its idempotency key from another key is refused.
#[tokio::test(flavor = "multi_thread")]
async fn bookings_record_their_creator() {
    let (_dir, config) = engine_config();
    let h = Harness::start(config, generous());
    h.setup().await;
    let idem = [("idempotency-key", "order-1")];
    let r = h
        .call(
            Some(CHAN_A),
            Method::POST,
            "/v1/hotels/H1/reservations",
            &idem,
            Some(booking_body(2)),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let stored = h
        .engine
        .reservation(innkeep_engine::ReservationId::parse(&id).unwrap())
        .await
        .unwrap();
    assert_eq!(stored.created_by, creator(CHAN_A));
    // Replay by the same key: the same reservation.
    let again = h
        .call(
            Some(CHAN_A),
            Method::POST,
            "/v1/hotels/H1/reservations",
            &idem,
            Some(booking_body(2)),
        )
        .await;
    assert_eq!(
        (again.status.as_u16(), &again.body["id"]),
        (201, &r.body["id"])
    );
    // The same key and body from another channel is a reuse, never a replay.
    let other = h
        .call(
            Some(CHAN_B),
            Method::POST,
            "/v1/hotels/H1/reservations",
            &idem,
            Some(booking_body(2)),
        )
        .await;
    assert_eq!(other.status, 422, "{}", other.body);
    assert_eq!(other.code(), "idempotency_key_reused");

    let uri = format!("/v1/reservations/{id}");
    assert_eq!(
        h.call(Some(CHAN_B), Method::GET, &uri, &[], None)
            .await
            .status,
        404
    );
    assert_eq!(
        h.call(Some(DESK_H1), Method::GET, &uri, &[], None)
            .await
            .status,
        200
    );
    let cancel = format!("{uri}/cancel");
    assert_eq!(
        h.call(Some(CHAN_B), Method::POST, &cancel, &[], None)
            .await
            .status,
        404
    );
    let r = h.call(Some(CHAN_A), Method::POST, &cancel, &[], None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "cancelled");
}

/// A key past its token bucket gets 429 `rate_limited` with `Retry-After`; another key is
/// not affected, and probes are never limited.
#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_per_key() {
    let (_dir, config) = engine_config();
    let limits = HttpLimits {
        rate_per_second: 1,
        burst: 2,
        ..HttpLimits::default()
    };
    let h = Harness::start(config, limits);
    h.setup().await;
    let uri = "/v1/hotels/H1";
    for _ in 0..2 {
        let r = h.call(Some(ADMIN_H1), Method::GET, uri, &[], None).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // One token per second comes back; within a few fast requests the bucket is empty.
    let mut limited = None;
    for _ in 0..5 {
        let r = h.call(Some(ADMIN_H1), Method::GET, uri, &[], None).await;
        if r.status == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("a 429 within 7 requests at 1/s with a burst of 2");
    assert_eq!(r.code(), "rate_limited");
    assert_eq!(r.headers.get(header::CONTENT_TYPE).unwrap(), PROBLEM_JSON);
    let retry: u64 = r.header("retry-after").parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // Another key has its own bucket; health checks are not limited.
    let r = h.call(Some(ADMIN_ALL), Method::GET, uri, &[], None).await;
    assert_eq!(r.status, 200);
    for _ in 0..5 {
        assert_eq!(
            h.call(None, Method::GET, "/healthz", &[], None)
                .await
                .status,
            200
        );
    }
    // Anonymous requests share one bucket per client address (here: unknown).
    let mut anon = Vec::new();
    for _ in 0..5 {
        anon.push(
            h.call(None, Method::GET, uri, &[], None)
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(&anon[..2], &[401, 401]);
    assert!(anon.contains(&429), "{anon:?}");
}

/// The hold cap over HTTP: past it 429 `too_many_holds`; cancelling or paying a hold frees
/// a slot.
#[tokio::test(flavor = "multi_thread")]
async fn too_many_holds_and_freed_by_cancel_or_payment() {
    let (_dir, mut config) = engine_config();
    config.max_holds_per_creator = 2;
    let h = Harness::start(config, generous());
    h.setup().await;
    let book = |days: i64| {
        h.call(
            Some(CHAN_A),
            Method::POST,
            "/v1/hotels/H1/reservations",
            &[],
            Some(booking_body(days)),
        )
    };
    let first = book(1).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let second = book(2).await;
    assert_eq!(second.status, 201, "{}", second.body);
    let refused = book(3).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.code(), "too_many_holds");
    // Another channel is not affected.
    let b = h
        .call(
            Some(CHAN_B),
            Method::POST,
            "/v1/hotels/H1/reservations",
            &[],
            Some(booking_body(3)),
        )
        .await;
    assert_eq!(b.status, 201);

    // Cancel one: a slot is free (the room reports it to the supervisor right after the
    // change, so allow it a moment).
    let id = first.body["id"].as_str().unwrap();
    let c = h
        .call(
            Some(CHAN_A),
            Method::POST,
            &format!("/v1/reservations/{id}/cancel"),
            &[],
            None,
        )
        .await;
    assert_eq!(c.status, 200);
    let third = retry_booking(&h, 3).await;
    assert_eq!(third.status, 201, "{}", third.body);
    assert_eq!(book(4).await.status, 429);

    // Pay one: a slot is free.
    let paid = json!({
        "out_trade_no": second.body["payment"]["out_trade_no"],
        "trade_no": "T-1",
        "status": "succeeded",
        "amount": second.body["payment"]["amount"]["amount"],
        "currency": "CNY",
    });
    let bytes = paid.to_string().into_bytes();
    let sig = signature_header(
        SECRET,
        innkeep_engine::jiff::Timestamp::now().as_second(),
        &bytes,
    );
    let req = Request::post("/v1/payments/notify")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-signature", sig)
        .body(Body::from(bytes))
        .unwrap();
    assert_eq!(h.send(req).await.status, 200);
    let fourth = retry_booking(&h, 4).await;
    assert_eq!(fourth.status, 201, "{}", fourth.body);
}

async fn retry_booking(h: &Harness, days: i64) -> Reply {
    let mut last = None;
    for _ in 0..100 {
        let r = h
            .call(
                Some(CHAN_A),
                Method::POST,
                "/v1/hotels/H1/reservations",
                &[],
                Some(booking_body(days)),
            )
            .await;
        if r.status != 429 {
            return r;
        }
        last = Some(r);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    last.unwrap()
}

/// A handler that outlives the deadline is answered 503 `timeout` with `Retry-After`.
#[tokio::test]
async fn deadline_answers_503_timeout() {
    let app = Router::new()
        .route("/slow", get(std::future::pending::<&'static str>))
        .route("/fast", get(|| async { "ok" }))
        .route_layer(axum::middleware::from_fn_with_state(
            Duration::from_millis(20),
            crate::limits::deadline,
        ));
    let res = app
        .clone()
        .oneshot(Request::get("/slow").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()[header::RETRY_AFTER], "1");
    assert_eq!(res.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    let body: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["code"], "timeout");
    let res = app
        .oneshot(Request::get("/fast").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `/metrics` is Prometheus text, and its counters move with traffic.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_exported_and_move() {
    let (_dir, config) = engine_config();
    let h = Harness::start(config, generous());
    h.setup().await;
    let scrape = || async {
        let r = h
            .call(Some(ADMIN_ALL), Method::GET, "/metrics", &[], None)
            .await;
        assert_eq!(r.status, 200);
        assert!(r.header("content-type").starts_with("text/plain"));
        r.body.as_str().unwrap().to_owned()
    };
    let before = scrape().await;
    let route = "route=\"/v1/hotels/{hotel_id}/reservations\"";
    let created = ["outcome=\"created\""];
    let r = h
        .call(
            Some(CHAN_A),
            Method::POST,
            "/v1/hotels/H1/reservations",
            &[],
            Some(booking_body(5)),
        )
        .await;
    assert_eq!(r.status, 201);
    // An idempotent replay: the same key and body again.
    let idem = [("idempotency-key", "metrics-replay")];
    for _ in 0..2 {
        let r = h
            .call(
                Some(CHAN_A),
                Method::POST,
                "/v1/hotels/H1/reservations",
                &idem,
                Some(booking_body(6)),
            )
            .await;
        assert!(r.status.is_success(), "{}", r.body);
    }
    // Sold out: book every room of one night, then one more.
    for _ in 0..10 {
        h.call(
            Some(ADMIN_ALL),
            Method::POST,
            "/v1/hotels/H1/reservations",
            &[],
            Some(booking_body(9)),
        )
        .await;
    }
    let sold_out = h
        .call(
            Some(ADMIN_ALL),
            Method::POST,
            "/v1/hotels/H1/reservations",
            &[],
            Some(booking_body(9)),
        )
        .await;
    assert_eq!(sold_out.code(), "sold_out");
    let bad = h
        .call(
            None,
            Method::POST,
            "/v1/payments/notify",
            &[],
            Some(json!({})),
        )
        .await;
    assert_eq!(bad.status, 401);
    let after = scrape().await;

    let grew = |name: &str, labels: &[&str]| {
        let (a, b) = (sample(&before, name, labels), sample(&after, name, labels));
        assert!(b > a, "{name}{labels:?}: {a} → {b}\n{after}");
    };
    grew(
        "innkeep_http_requests_total",
        &[route, "status=\"201\"", "method=\"POST\""],
    );
    grew(
        "innkeep_http_request_duration_seconds_count",
        &[route, "status=\"201\""],
    );
    grew(
        "innkeep_http_requests_total",
        &["route=\"/metrics\"", "status=\"200\""],
    );
    grew("innkeep_bookings_total", &created);
    grew("innkeep_bookings_total", &["outcome=\"replayed\""]);
    grew("innkeep_bookings_total", &["outcome=\"sold_out\""]);
    grew(
        "innkeep_payment_callbacks_total",
        &["outcome=\"bad_signature\""],
    );
    grew("innkeep_journal_batch_records_count", &[]);
    grew("innkeep_booking_batch_size_count", &[]);
    grew("innkeep_journal_fsync_duration_seconds_count", &[]);
    grew("innkeep_http_requests_by_key_total", &[]);
    for gauge in [
        "innkeep_engine_in_flight",
        "innkeep_journal_queue_depth",
        "innkeep_holds_open",
        "innkeep_rooms_awake",
        "innkeep_http_request_duration_seconds_bucket",
    ] {
        assert!(after.contains(gauge), "{gauge} missing:\n{after}");
    }
    // Route labels are templates, never raw ids.
    let id = r.body["id"].as_str().unwrap();
    assert!(!after.contains(id));

    // Holds expiring and snapshots being taken move their metrics too: a second engine
    // (the recorder is per process) with one-second holds and a snapshot after every event.
    let (_dir2, mut config) = engine_config();
    config.hold_seconds = 1;
    config.snapshot_every_events = 1;
    let h2 = Harness::start(config, generous());
    h2.setup().await;
    let r = h2
        .call(
            Some(ADMIN_ALL),
            Method::POST,
            "/v1/hotels/H1/reservations",
            &[],
            Some(booking_body(3)),
        )
        .await;
    assert_eq!(r.status, 201);
    let moved = |text: &str| {
        sample(text, "innkeep_holds_expired_total", &[])
            > sample(&after, "innkeep_holds_expired_total", &[])
            && sample(text, "innkeep_snapshot_duration_seconds_count", &[])
                > sample(&after, "innkeep_snapshot_duration_seconds_count", &[])
    };
    // Bounded wait (up to 20 s on a loaded machine) for the hold's expiry: a second, plus
    // the 250 ms tick.
    let mut last = String::new();
    for _ in 0..400 {
        last = h2
            .call(Some(ADMIN_ALL), Method::GET, "/metrics", &[], None)
            .await
            .body
            .as_str()
            .unwrap()
            .to_owned();
        if moved(&last) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        moved(&last),
        "holds expired / snapshot metrics did not move:\n{last}"
    );
}

/// A saturated engine sheds an API request before it is authenticated: an overloaded
/// server spends no key check (and no 401) on a request it refuses anyway, while the
/// probes still answer.
#[tokio::test(flavor = "multi_thread")]
async fn a_saturated_engine_sheds_before_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        max_in_flight: 0,
        ..EngineConfig::new(dir.path())
    };
    let h = Harness::start(config, HttpLimits::default());
    let shed = h.call(None, Method::GET, "/v1/hotels/H1", &[], None).await;
    assert_eq!((shed.status.as_u16(), shed.code()), (503, "overloaded"));
    assert_eq!(shed.header("retry-after"), "1");
    let probe = h.call(None, Method::GET, "/healthz", &[], None).await;
    assert_eq!(probe.status.as_u16(), 200);
}
