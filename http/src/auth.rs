//! API keys, roles and who may do what.
//!
//! A request carries `Authorization: Bearer <key>`. Keys are configured only as SHA-256
//! hashes ([`ApiKey::key_sha256`]); a presented key is hashed and compared in constant time
//! with every configured hash. Each key has a [`Role`] and a set of hotels
//! ([`HotelScope`]).
//!
//! Authorization has two levels:
//! - **Routes** ([`ROUTES`]): each route is public (no key), a hotel route (the hotel is in
//!   the path) or a reservation route (the hotel is known only once the reservation is
//!   loaded). The [`guard`] middleware authenticates, rate-limits, and for hotel routes checks
//!   the hotel and the role before the handler runs.
//! - **Objects**: reservation handlers load the reservation, then call
//!   [`Caller::check_reservation`], then act.
//!
//! What a key cannot see answers exactly like something that does not exist (404
//! `not_found`, the same body as the engine's own), so a key learns nothing about other
//! hotels or other channels' reservations. What it can see but may not do is 403
//! `forbidden`. No key or an unknown key is 401 `unauthorized`.
//!
//! With no keys configured the API is open ([`AuthConfig::open`]): every request acts as
//! an admin for every hotel and bookings record no creator. The server allows that only on
//! a loopback address.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use innkeep_actors::EngineError;
use innkeep_engine::{DomainError, Reservation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::limits::{BucketKey, Security};
use crate::serve::ClientAddr;

/// Hex digits of a key's SHA-256 that identify it in reservations (`created_by`) and logs:
/// 64 bits, enough to never collide among one server's keys, and useless for recovering
/// the key.
pub const KEY_ID_HEX_LEN: usize = 16;

/// What a key may do, by kind of client.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The hotel's operator: setup and everything else.
    Admin,
    /// A sales channel (an OTA, the hotel's web site): availability, and booking, reading
    /// and cancelling the reservations it created.
    Channel,
    /// Reception: reservations (read, cancel, check-in/out), rooms and housekeeping, and
    /// the live views (events, the front-desk day, the board) of its hotels.
    FrontDesk,
}

impl Role {
    /// The configuration name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Channel => "channel",
            Role::FrontDesk => "front_desk",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operation a protected route performs: the rows of [`ROLE_TABLE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `PUT /v1/hotels/{hotel_id}`.
    PutHotel,
    /// `GET /v1/hotels/{hotel_id}`.
    GetHotel,
    /// `PUT /v1/hotels/{hotel_id}/room-types/{code}`.
    PutRoomType,
    /// `PUT /v1/hotels/{hotel_id}/rooms/{number}`.
    PutRoom,
    /// `PUT /v1/hotels/{hotel_id}/room-types/{code}/rates`.
    PutRate,
    /// `GET /v1/hotels/{hotel_id}/availability`.
    Availability,
    /// `POST /v1/hotels/{hotel_id}/reservations`.
    Book,
    /// `GET /v1/reservations/{id}`.
    GetReservation,
    /// `POST /v1/hotels/{hotel_id}/bookings`: several rooms in one booking.
    BookGroup,
    /// `GET /v1/bookings/{id}`.
    GetBooking,
    /// `POST /v1/bookings/{id}/cancel`.
    CancelBooking,
    /// `POST /v1/reservations/{id}/cancel`.
    Cancel,
    /// `POST /v1/reservations/{id}/check-in`.
    CheckIn,
    /// `POST /v1/reservations/{id}/check-out`.
    CheckOut,
    /// `GET /v1/hotels/{hotel_id}/rooms`.
    ListRooms,
    /// `PUT /v1/hotels/{hotel_id}/rooms/{number}/housekeeping`.
    SetHousekeeping,
    /// `GET /v1/payments/{out_trade_no}`: a payment and its history.
    GetPayment,
    /// `GET /v1/payments/sandbox/ledger`: the sandbox provider's books (every hotel's
    /// money, so admins of every hotel only).
    SandboxLedger,
    /// `GET /v1/hotels/{hotel_id}/events` (Server-Sent Events).
    Events,
    /// `POST /v1/reservations/{id}/move`.
    MoveReservation,
    /// `POST /v1/reservations/{id}/modify`.
    ModifyReservation,
    /// `POST /v1/hotels/{hotel_id}/rooms/{number}/out-of-order` and its `DELETE`.
    OutOfOrder,
    /// `GET /board/{hotel_id}`: the room board page. Its route is public (a browser
    /// navigation cannot send a Bearer header, and the page is a static shell without
    /// data); this row records who can use it, because every call the page makes
    /// ([`Op::ListRooms`], [`Op::FrontDeskDay`], [`Op::TapeChart`], [`Op::Events`]) is
    /// allowed to exactly these roles.
    Board,
    /// `GET /v1/hotels/{hotel_id}/front-desk`: the day's arrivals, departures and guests in
    /// house.
    FrontDeskDay,
    /// `GET /v1/hotels/{hotel_id}/tape`: the tape chart (every room's reservations over a
    /// few weeks, with guest names).
    TapeChart,
    /// `PUT /v1/hotels/{hotel_id}/rate-plans/{code}`.
    PutRatePlan,
    /// `GET /v1/hotels/{hotel_id}/rate-plans`.
    GetRatePlans,
    /// `PUT /v1/hotels/{hotel_id}/restrictions`.
    PutRestrictions,
    /// `GET /v1/hotels/{hotel_id}/restrictions`.
    GetRestrictions,
    /// `GET /metrics`: every hotel's counters (and the keys' names), so admins of every
    /// hotel only once keys are configured; a scraper without a key reads them on
    /// `metrics_listen` instead.
    Metrics,
    /// `/v1/webhooks` and everything under it: outbound webhooks (the handlers check the
    /// webhook's hotels against the key's).
    Webhooks,
}

const ADMIN: &[Role] = &[Role::Admin];
const ADMIN_CHANNEL: &[Role] = &[Role::Admin, Role::Channel];
const ADMIN_FRONT_DESK: &[Role] = &[Role::Admin, Role::FrontDesk];
const EVERYONE: &[Role] = &[Role::Admin, Role::Channel, Role::FrontDesk];

/// Which roles may perform each operation (within the hotels of their key). A channel is
/// further limited to the reservations it created ([`Caller::check_reservation`]).
/// Operations missing here are admin-only.
pub const ROLE_TABLE: &[(Op, &[Role])] = &[
    (Op::PutHotel, ADMIN),
    (Op::GetHotel, ADMIN),
    (Op::PutRoomType, ADMIN),
    (Op::PutRoom, ADMIN),
    (Op::PutRate, ADMIN),
    (Op::Availability, ADMIN_CHANNEL),
    (Op::Book, ADMIN_CHANNEL),
    (Op::GetReservation, EVERYONE),
    // A multi-room booking like a reservation: booked by channels, seen and cancelled by
    // the hotel's front desk and the channel that booked it.
    (Op::BookGroup, ADMIN_CHANNEL),
    (Op::GetBooking, EVERYONE),
    (Op::CancelBooking, EVERYONE),
    (Op::Cancel, EVERYONE),
    (Op::CheckIn, ADMIN_FRONT_DESK),
    (Op::CheckOut, ADMIN_FRONT_DESK),
    (Op::ListRooms, ADMIN_FRONT_DESK),
    (Op::SetHousekeeping, ADMIN_FRONT_DESK),
    // Front desk of the hotel, and the channel that created the reservation.
    (Op::GetPayment, EVERYONE),
    (Op::SandboxLedger, ADMIN),
    (Op::Metrics, ADMIN),
    (Op::Events, ADMIN_FRONT_DESK),
    (Op::MoveReservation, ADMIN_FRONT_DESK),
    // Like cancelling: the front desk of the hotel, and the channel that booked it.
    (Op::ModifyReservation, EVERYONE),
    (Op::OutOfOrder, ADMIN_FRONT_DESK),
    // The board's page is public (see `Op::Board`); the data it loads is not.
    (Op::Board, ADMIN_FRONT_DESK),
    (Op::FrontDeskDay, ADMIN_FRONT_DESK),
    // Like the front desk's day: it names every channel's guests, so no channel.
    (Op::TapeChart, ADMIN_FRONT_DESK),
    // Selling rules: set up and read like the hotel itself.
    (Op::PutRatePlan, ADMIN),
    (Op::GetRatePlans, ADMIN),
    (Op::PutRestrictions, ADMIN),
    (Op::GetRestrictions, ADMIN),
    // Webhooks send a hotel's events anywhere: its admins only.
    (Op::Webhooks, ADMIN),
];

/// Whether `role` may perform `op` at all (hotel and ownership checks come on top).
pub fn role_allows(role: Role, op: Op) -> bool {
    if role == Role::Admin {
        return true;
    }
    ROLE_TABLE
        .iter()
        .find(|(o, _)| *o == op)
        .is_some_and(|(_, roles)| roles.contains(&role))
}

/// How a route is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No key needed: probes, the API description, the payment callback
    /// (authenticated by its signature), and the room board's page (a static shell; its
    /// data comes from protected routes).
    Public,
    /// The `{hotel_id}` in the path names the hotel; checked before the handler runs.
    Hotel(Op),
    /// The hotel is known only after loading the reservation; the handler checks with
    /// [`Caller::check_reservation`] before acting.
    Reservation(Op),
    /// Not about one hotel: only an admin whose key covers every hotel.
    Global(Op),
    /// About the hotels the resource names (webhooks): an admin key of any scope; the
    /// handler checks the hotels before acting.
    Admin(Op),
}

/// Every route by method and path template, with its protection. A route the guard
/// meets that is not listed here is admin-only (deny by default).
pub const ROUTES: &[(&str, &str, Access)] = &[
    ("PUT", "/v1/hotels/{hotel_id}", Access::Hotel(Op::PutHotel)),
    ("GET", "/v1/hotels/{hotel_id}", Access::Hotel(Op::GetHotel)),
    (
        "PUT",
        "/v1/hotels/{hotel_id}/room-types/{code}",
        Access::Hotel(Op::PutRoomType),
    ),
    (
        "PUT",
        "/v1/hotels/{hotel_id}/rooms/{number}",
        Access::Hotel(Op::PutRoom),
    ),
    (
        "PUT",
        "/v1/hotels/{hotel_id}/room-types/{code}/rates",
        Access::Hotel(Op::PutRate),
    ),
    (
        "PUT",
        "/v1/hotels/{hotel_id}/rate-plans/{code}",
        Access::Hotel(Op::PutRatePlan),
    ),
    (
        "GET",
        "/v1/hotels/{hotel_id}/rate-plans",
        Access::Hotel(Op::GetRatePlans),
    ),
    (
        "PUT",
        "/v1/hotels/{hotel_id}/restrictions",
        Access::Hotel(Op::PutRestrictions),
    ),
    (
        "GET",
        "/v1/hotels/{hotel_id}/restrictions",
        Access::Hotel(Op::GetRestrictions),
    ),
    (
        "GET",
        "/v1/hotels/{hotel_id}/availability",
        Access::Hotel(Op::Availability),
    ),
    (
        "POST",
        "/v1/hotels/{hotel_id}/reservations",
        Access::Hotel(Op::Book),
    ),
    (
        "GET",
        "/v1/reservations/{id}",
        Access::Reservation(Op::GetReservation),
    ),
    (
        "POST",
        "/v1/hotels/{hotel_id}/bookings",
        Access::Hotel(Op::BookGroup),
    ),
    (
        "GET",
        "/v1/bookings/{id}",
        Access::Reservation(Op::GetBooking),
    ),
    (
        "POST",
        "/v1/bookings/{id}/cancel",
        Access::Reservation(Op::CancelBooking),
    ),
    (
        "POST",
        "/v1/reservations/{id}/cancel",
        Access::Reservation(Op::Cancel),
    ),
    (
        "POST",
        "/v1/reservations/{id}/check-in",
        Access::Reservation(Op::CheckIn),
    ),
    (
        "POST",
        "/v1/reservations/{id}/check-out",
        Access::Reservation(Op::CheckOut),
    ),
    (
        "GET",
        "/v1/hotels/{hotel_id}/rooms",
        Access::Hotel(Op::ListRooms),
    ),
    (
        "PUT",
        "/v1/hotels/{hotel_id}/rooms/{number}/housekeeping",
        Access::Hotel(Op::SetHousekeeping),
    ),
    (
        "GET",
        "/v1/hotels/{hotel_id}/events",
        Access::Hotel(Op::Events),
    ),
    (
        "POST",
        "/v1/reservations/{id}/move",
        Access::Reservation(Op::MoveReservation),
    ),
    (
        "POST",
        "/v1/reservations/{id}/modify",
        Access::Reservation(Op::ModifyReservation),
    ),
    (
        "POST",
        "/v1/hotels/{hotel_id}/rooms/{number}/out-of-order",
        Access::Hotel(Op::OutOfOrder),
    ),
    (
        "DELETE",
        "/v1/hotels/{hotel_id}/rooms/{number}/out-of-order/{from}",
        Access::Hotel(Op::OutOfOrder),
    ),
    // The hotel-scoped forms of the reservation and payment routes (for a proxy routing by
    // hotel): the guard checks the path's hotel, the handler the loaded reservation.
    (
        "GET",
        "/v1/hotels/{hotel_id}/reservations/{id}",
        Access::Hotel(Op::GetReservation),
    ),
    (
        "POST",
        "/v1/hotels/{hotel_id}/reservations/{id}/cancel",
        Access::Hotel(Op::Cancel),
    ),
    (
        "POST",
        "/v1/hotels/{hotel_id}/reservations/{id}/check-in",
        Access::Hotel(Op::CheckIn),
    ),
    (
        "POST",
        "/v1/hotels/{hotel_id}/reservations/{id}/check-out",
        Access::Hotel(Op::CheckOut),
    ),
    (
        "POST",
        "/v1/hotels/{hotel_id}/reservations/{id}/move",
        Access::Hotel(Op::MoveReservation),
    ),
    (
        "POST",
        "/v1/hotels/{hotel_id}/reservations/{id}/modify",
        Access::Hotel(Op::ModifyReservation),
    ),
    (
        "GET",
        "/v1/hotels/{hotel_id}/bookings/{id}",
        Access::Hotel(Op::GetBooking),
    ),
    (
        "POST",
        "/v1/hotels/{hotel_id}/bookings/{id}/cancel",
        Access::Hotel(Op::CancelBooking),
    ),
    (
        "GET",
        "/v1/hotels/{hotel_id}/payments/{out_trade_no}",
        Access::Hotel(Op::GetPayment),
    ),
    (
        "POST",
        "/v1/hotels/{hotel_id}/payments/notify",
        Access::Public,
    ),
    ("POST", "/v1/payments/notify", Access::Public),
    (
        "GET",
        "/v1/payments/{out_trade_no}",
        Access::Reservation(Op::GetPayment),
    ),
    (
        "GET",
        "/v1/payments/sandbox/ledger",
        Access::Global(Op::SandboxLedger),
    ),
    ("GET", "/healthz", Access::Public),
    ("GET", "/readyz", Access::Public),
    ("GET", "/metrics", Access::Global(Op::Metrics)),
    ("GET", "/openapi.json", Access::Public),
    (
        "GET",
        "/v1/hotels/{hotel_id}/front-desk",
        Access::Hotel(Op::FrontDeskDay),
    ),
    (
        "GET",
        "/v1/hotels/{hotel_id}/tape",
        Access::Hotel(Op::TapeChart),
    ),
    // Public on purpose: a static page without data (see `Op::Board`).
    ("GET", "/board/{hotel_id}", Access::Public),
    ("GET", "/v1/webhooks", Access::Admin(Op::Webhooks)),
    ("GET", "/v1/webhooks/{name}", Access::Admin(Op::Webhooks)),
    ("PUT", "/v1/webhooks/{name}", Access::Admin(Op::Webhooks)),
    ("DELETE", "/v1/webhooks/{name}", Access::Admin(Op::Webhooks)),
    (
        "GET",
        "/v1/webhooks/{name}/deliveries",
        Access::Admin(Op::Webhooks),
    ),
    (
        "POST",
        "/v1/webhooks/{name}/replay",
        Access::Admin(Op::Webhooks),
    ),
];

/// The protection of `method template`, if the route is listed.
pub fn route_access(method: &Method, template: &str) -> Option<Access> {
    ROUTES
        .iter()
        .find(|(m, t, _)| *t == template && method.as_str() == *m)
        .map(|(_, _, a)| *a)
}

/// Which hotels a key may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HotelScope {
    /// Every hotel, present and future (`hotels = ["*"]`).
    All,
    /// Just these hotel ids.
    Only(BTreeSet<String>),
}

impl HotelScope {
    /// Whether `hotel_id` is in scope.
    pub fn contains(&self, hotel_id: &str) -> bool {
        match self {
            HotelScope::All => true,
            HotelScope::Only(set) => set.contains(hotel_id),
        }
    }
}

/// One configured API key.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// A label for logs and metrics; defaults to the key id.
    pub name: Option<String>,
    /// SHA-256 of the key. The key itself is never stored, so a leaked configuration
    /// grants nothing.
    pub key_sha256: [u8; 32],
    /// What the key may do.
    pub role: Role,
    /// Where.
    pub hotels: HotelScope,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("id", &key_id(&self.key_sha256))
            .field("role", &self.role)
            .field("hotels", &self.hotels)
            .finish()
    }
}

/// The identifier of the key whose SHA-256 is `hash`: its first [`KEY_ID_HEX_LEN`] hex
/// digits. Recorded as the creator of the reservations a key books.
pub fn key_id(hash: &[u8; 32]) -> String {
    let mut id = hex::encode(hash);
    id.truncate(KEY_ID_HEX_LEN);
    id
}

/// SHA-256 of a presented key, as configured in `key_sha256`.
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Parses a `key_sha256` value: 64 hex digits (either case).
pub fn parse_key_sha256(hex_digits: &str) -> Option<[u8; 32]> {
    if hex_digits.len() != 64 {
        return None;
    }
    let bytes = hex::decode(hex_digits).ok()?;
    bytes.try_into().ok()
}

/// Who is calling: the authenticated key (or the open-mode stand-in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The key's id ([`key_id`]); `None` in open mode. Recorded as `created_by`.
    pub key_id: Option<String>,
    /// For logs and metrics: the key's name, else its id; `anonymous` in open mode.
    pub label: String,
    /// What it may do.
    pub role: Role,
    /// Where.
    pub hotels: HotelScope,
}

impl Principal {
    /// The stand-in for every request when no keys are configured: an admin of every
    /// hotel that records no creator.
    pub fn open() -> Self {
        Self {
            key_id: None,
            label: "anonymous".to_owned(),
            role: Role::Admin,
            hotels: HotelScope::All,
        }
    }

    /// What bookings by this caller record as their creator.
    pub fn creator(&self) -> Option<String> {
        self.key_id.clone()
    }
}

/// The configured keys.
#[derive(Clone, Debug, Default)]
pub struct AuthConfig {
    /// Each key with the principal it authenticates as.
    keys: Vec<([u8; 32], Arc<Principal>)>,
}

impl AuthConfig {
    /// No keys: the open mode (every request acts as [`Principal::open`]).
    pub fn open() -> Self {
        Self::default()
    }

    /// These keys; an empty list is the open mode.
    pub fn new(keys: Vec<ApiKey>) -> Self {
        let keys = keys
            .into_iter()
            .map(|k| {
                let id = key_id(&k.key_sha256);
                let principal = Principal {
                    label: k.name.clone().unwrap_or_else(|| id.clone()),
                    key_id: Some(id),
                    role: k.role,
                    hotels: k.hotels,
                };
                (k.key_sha256, Arc::new(principal))
            })
            .collect();
        Self { keys }
    }

    /// Whether no keys are configured.
    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// The principal a presented key authenticates as. The key's hash is compared with
    /// every configured hash in constant time, and all of them are always compared, so
    /// timing says nothing about how close a guess was or which key matched.
    pub fn authenticate(&self, presented: &str) -> Option<Arc<Principal>> {
        let hash = hash_key(presented);
        let mut found = None;
        for (configured, principal) in &self.keys {
            if bool::from(hash.ct_eq(configured)) {
                found = Some(principal.clone());
            }
        }
        found
    }
}

/// The authenticated caller of a protected route and the operation the route performs;
/// put into the request by [`guard`] for the handlers.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Who.
    pub principal: Arc<Principal>,
    /// What the route does.
    pub op: Op,
    /// In a cluster, which hotels this node serves: a loaded reservation of any other
    /// hotel is 421 `misdirected`, as its hotel's routes are.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl Caller {
    /// A caller with full access (open mode), for handlers reached without the guard.
    pub fn open(op: Op) -> Self {
        Self {
            principal: Arc::new(Principal::open()),
            op,
            cluster: None,
        }
    }

    /// Checks a loaded reservation: outside the key's hotels, or (for a channel) not
    /// created by this key → 404 exactly as if it did not exist; visible but the role may
    /// not do this → 403.
    pub fn check_reservation(&self, r: &Reservation) -> Result<(), ApiError> {
        self.check_owned(r, "reservation")
    }

    /// Checks a loaded multi-room booking as [`Caller::check_reservation`] checks a
    /// reservation: every reservation of it has the booking's hotel and creator.
    pub fn check_booking(&self, b: &innkeep_actors::Booking) -> Result<(), ApiError> {
        match b.reservations.first() {
            Some(r) => self.check_owned(r, "booking"),
            None => Err(not_found("booking")),
        }
    }

    fn check_owned(&self, r: &Reservation, what: &'static str) -> Result<(), ApiError> {
        let p = &self.principal;
        let visible = p.hotels.contains(r.hotel_id.as_str())
            && (p.role != Role::Channel || r.created_by.is_some() && r.created_by == p.key_id);
        if !visible {
            return Err(not_found(what));
        }
        if !role_allows(p.role, self.op) {
            return Err(ApiError::Forbidden);
        }
        match &self.cluster {
            Some(cluster) => cluster.check(r.hotel_id.as_str()),
            None => Ok(()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Set by the guard on every protected route; missing means the route was not
        // guarded, and then nothing is allowed.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(ApiError::Forbidden)
    }
}

/// The engine's own 404 for `what`, so hidden and missing look the same.
fn not_found(what: &'static str) -> ApiError {
    ApiError::Engine(EngineError::Domain(DomainError::NotFound(what)))
}

/// The bearer token of a request: `Ok(None)` without an `Authorization` header, `Err` for
/// one that is not `Bearer <token>`.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized("the Authorization header must be visible ASCII"))?;
    let (scheme, token) = text
        .trim()
        .split_once(' ')
        .ok_or(ApiError::Unauthorized("use Authorization: Bearer <key>"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Unauthorized("use Authorization: Bearer <key>"));
    }
    Ok(Some(token.trim()))
}

/// The client's IP, when the server was started with connect info.
fn client_ip(req: &Request) -> Option<IpAddr> {
    let ext = req.extensions();
    ext.get::<ConnectInfo<ClientAddr>>()
        .map(|c| c.0 .0.ip())
        .or_else(|| ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
}

/// What every API route passes before its handler ([`crate::limits::route_checks`]):
/// authenticate, rate-limit, and for hotel routes check the hotel (404) and the role
/// (403). Puts a [`Caller`] into the request for the handler, or answers the refusal.
///
/// Rate limits: with keys configured, an authenticated request spends from its key's
/// bucket and anything else (public routes, missing or bad keys) from its client IP's;
/// `/healthz` and `/readyz` are never limited. In open mode nothing is rate-limited (see
/// ARCHITECTURE.md).
pub async fn authorize(sec: &Security, req: Request) -> Result<Request, Response> {
    // The `{hotel_id}` capture, percent-decoded, read from what the router stored.
    let (mut parts, body) = req.into_parts();
    let hotel = RawPathParams::from_request_parts(&mut parts, &())
        .await
        .ok()
        .and_then(|p| {
            p.iter()
                .find(|(k, _)| *k == "hotel_id")
                .map(|(_, v)| v.to_owned())
        })
        .unwrap_or_default();
    let mut req = Request::from_parts(parts, body);
    match check(sec, &req, &hotel) {
        Ok(Some(caller)) => {
            req.extensions_mut().insert(caller);
            Ok(req)
        }
        Ok(None) => Ok(req),
        Err(e) => Err(e.into_response()),
    }
}

fn check(sec: &Security, req: &Request, hotel: &str) -> Result<Option<Caller>, ApiError> {
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("", MatchedPath::as_str);
    // Probes are never rate-limited, so an overloaded or attacked server still reports
    // its health.
    if matches!(template, "/healthz" | "/readyz") && !sec.auth.is_open() {
        return Ok(None);
    }
    let call = Call {
        access: route_access(req.method(), template),
        headers: req.headers(),
        client_ip: client_ip(req),
        hotel,
    };
    authorize_call(sec, &call)
}

/// One call to authorize, whatever the transport (an HTTP route, a gRPC method).
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// How the call is protected; `None` (an unlisted route) is admin-only.
    pub access: Option<Access>,
    /// Where the `Authorization: Bearer <key>` is (HTTP headers, gRPC metadata).
    pub headers: &'a HeaderMap,
    /// The client's address, whose bucket a call without a valid key spends from.
    pub client_ip: Option<IpAddr>,
    /// The hotel a [`Access::Hotel`] call names (`""` for others).
    pub hotel: &'a str,
}

/// Authenticates a call, spends a token, and for hotel calls checks the hotel (404, as if
/// it did not exist) and the role (403): the rules of [`authorize`] for any transport, so
/// the gRPC API enforces exactly what the HTTP API does. `Ok(None)`: a public call, no
/// caller; `Ok(Some)`: the caller the handler acts for (reservation calls still check the
/// loaded reservation with [`Caller::check_reservation`]). On a node of a cluster, a call
/// naming a hotel this node does not serve is then 421 `misdirected`.
pub fn authorize_call(sec: &Security, call: &Call<'_>) -> Result<Option<Caller>, ApiError> {
    let caller = authorize_key(sec, call)?;
    let Some(cluster) = &sec.cluster else {
        return Ok(caller);
    };
    if !call.hotel.is_empty() {
        cluster.check(call.hotel)?;
    }
    Ok(caller.map(|caller| Caller {
        cluster: Some(cluster.clone()),
        ..caller
    }))
}

/// [`authorize_call`] up to the cluster: the key, the rate limit, the hotel and the role.
fn authorize_key(sec: &Security, call: &Call<'_>) -> Result<Option<Caller>, ApiError> {
    let access = call.access;
    let span = tracing::Span::current();
    if sec.auth.is_open() {
        span.record("principal", "anonymous");
        return Ok(match access {
            Some(
                Access::Hotel(op)
                | Access::Reservation(op)
                | Access::Global(op)
                | Access::Admin(op),
            ) => Some(Caller::open(op)),
            Some(Access::Public) => None,
            None => Some(Caller::open(Op::PutHotel)),
        });
    }
    if access == Some(Access::Public) {
        sec.spend(&BucketKey::from_ip(call.client_ip), "anonymous")?;
        return Ok(None);
    }
    let principal = match bearer(call.headers) {
        Ok(Some(token)) => sec.auth.authenticate(token),
        Ok(None) => None,
        Err(e) => {
            sec.spend(&BucketKey::from_ip(call.client_ip), "anonymous")?;
            return Err(e);
        }
    };
    let Some(principal) = principal else {
        sec.spend(&BucketKey::from_ip(call.client_ip), "anonymous")?;
        return Err(if call.headers.contains_key(header::AUTHORIZATION) {
            ApiError::Unauthorized("unknown API key")
        } else {
            ApiError::Unauthorized("this route needs an API key: Authorization: Bearer <key>")
        });
    };
    span.record("principal", principal.label.as_str());
    let key = BucketKey::Key(principal.key_id.clone().unwrap_or_default());
    sec.spend(&key, &principal.label)?;
    metrics::counter!(crate::metrics::METRIC_REQUESTS_BY_KEY, "key" => principal.label.clone())
        .increment(1);
    let op = match access {
        Some(Access::Hotel(op)) => {
            if !principal.hotels.contains(call.hotel) {
                return Err(not_found("hotel"));
            }
            if !role_allows(principal.role, op) {
                return Err(ApiError::Forbidden);
            }
            op
        }
        Some(Access::Reservation(op)) => op,
        Some(Access::Public) => return Ok(None),
        Some(Access::Global(op)) => {
            if principal.role != Role::Admin || principal.hotels != HotelScope::All {
                return Err(ApiError::Forbidden);
            }
            op
        }
        Some(Access::Admin(op)) => {
            if principal.role != Role::Admin {
                return Err(ApiError::Forbidden);
            }
            op
        }
        // Not in the table: admin only, for every hotel the key has.
        None => {
            if principal.role != Role::Admin || principal.hotels != HotelScope::All {
                return Err(ApiError::Forbidden);
            }
            Op::PutHotel
        }
    };
    Ok(Some(Caller {
        principal,
        op,
        cluster: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hash_and_compare() {
        let hash = hash_key("secret-key");
        let auth = AuthConfig::new(vec![ApiKey {
            name: Some("ota".into()),
            key_sha256: hash,
            role: Role::Channel,
            hotels: HotelScope::All,
        }]);
        let p = auth.authenticate("secret-key").unwrap();
        assert_eq!(p.label, "ota");
        assert_eq!(p.key_id.as_deref(), Some(&hex::encode(hash)[..16]));
        assert!(auth.authenticate("secret-kez").is_none());
        assert!(auth.authenticate("").is_none());
        assert!(AuthConfig::open().is_open());
        assert_eq!(
            parse_key_sha256(&hex::encode(hash).to_uppercase()),
            Some(hash)
        );
        assert_eq!(parse_key_sha256("abc"), None);
        assert_eq!(parse_key_sha256(&"zz".repeat(32)), None);
    }

    #[test]
    fn bearer_forms() {
        let mut h = HeaderMap::new();
        assert!(bearer(&h).unwrap().is_none());
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h).unwrap(), Some("abc"));
        h.insert(header::AUTHORIZATION, "bearer  abc ".parse().unwrap());
        assert_eq!(bearer(&h).unwrap(), Some("abc"));
        for bad in ["Basic abc", "Bearer", "Bearer ", "abc"] {
            h.insert(header::AUTHORIZATION, bad.parse().unwrap());
            assert!(bearer(&h).is_err(), "{bad}");
        }
    }

    #[test]
    fn role_table_is_complete_and_admin_does_everything() {
        for (_, _, access) in ROUTES {
            if let Access::Hotel(op)
            | Access::Reservation(op)
            | Access::Global(op)
            | Access::Admin(op) = access
            {
                assert!(ROLE_TABLE.iter().any(|(o, _)| o == op), "{op:?}");
                assert!(role_allows(Role::Admin, *op));
            }
        }
        assert!(!role_allows(Role::Channel, Op::CheckIn));
        assert!(role_allows(Role::FrontDesk, Op::Events));
        assert!(!role_allows(Role::FrontDesk, Op::Book));
    }

    #[test]
    fn board_users_may_make_every_call_the_board_makes() {
        assert_eq!(
            route_access(&Method::GET, "/board/{hotel_id}"),
            Some(Access::Public)
        );
        for role in [Role::Admin, Role::Channel, Role::FrontDesk] {
            let uses = [Op::ListRooms, Op::FrontDeskDay, Op::TapeChart, Op::Events]
                .iter()
                .all(|op| role_allows(role, *op));
            assert_eq!(role_allows(role, Op::Board), uses, "{role}");
        }
    }
}
