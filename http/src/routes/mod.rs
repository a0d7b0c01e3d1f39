//! Route handlers, one module per area of the API. Each handler is annotated with
//! `#[utoipa::path]`, so `/openapi.json` is generated from the same code that serves.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use innkeep_engine::{Reservation, ReservationId, Upsert};

use crate::error::ApiError;
use crate::wire::ReservationJson;

pub mod availability;
pub mod board;
pub mod bookings;
pub mod events;
pub mod frontdesk;
pub mod ops;
pub mod payments;
pub mod reservations;
pub mod rooms;
pub mod selling;
pub mod setup;
pub mod webhooks;

/// 201 for something new, 200 for a replacement.
fn upsert_status(upsert: Upsert) -> StatusCode {
    match upsert {
        Upsert::Created => StatusCode::CREATED,
        Upsert::Updated => StatusCode::OK,
    }
}

/// The `ETag` of a reservation at `version`: a strong tag of the version number.
pub fn etag(version: u64) -> HeaderValue {
    // Digits and quotes are always a valid header value.
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// A reservation response: the JSON view with its `ETag`.
fn reservation_response(status: StatusCode, r: &Reservation) -> Response {
    // Written straight from the reservation: the same bytes as `ReservationView`'s JSON.
    let mut res = (status, Json(ReservationJson(r))).into_response();
    res.headers_mut().insert(header::ETAG, etag(r.version));
    res
}

/// Parses a reservation id from a path segment.
fn reservation_id(raw: &str) -> Result<ReservationId, ApiError> {
    Ok(ReservationId::parse(raw)?)
}
