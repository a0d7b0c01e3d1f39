//! Route handlers, one module per area of the API. Each handler is annotated with
//! `#[utoipa::path]`, so `/openapi.json` is generated from the same code that serves.

use axum::body::Bytes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

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

/// Bytes of scratch space a thread keeps for writing reservations' JSON (a new booking's is
/// about 950 bytes): a rare longer one grows it, and one past this is given back.
const RESERVATION_JSON_SCRATCH_BYTES: usize = 16 * 1024;

thread_local! {
    /// Where this thread writes a reservation's JSON before copying it out at its exact
    /// size. A body allocated at a guess (or grown) is over a KiB, and glibc sorts its
    /// small free lists on every allocation that large (measured: malloc was a quarter of
    /// the answer's cost); an exact copy of a new booking's stays under it.
    static RESERVATION_JSON: std::cell::RefCell<Vec<u8>> =
        std::cell::RefCell::new(Vec::with_capacity(RESERVATION_JSON_SCRATCH_BYTES));
}

/// A reservation response: the JSON view with its `ETag`.
fn reservation_response(status: StatusCode, r: &Reservation) -> Response {
    // Written straight from the reservation: the same bytes as `ReservationView`'s JSON.
    let body = RESERVATION_JSON.with_borrow_mut(|scratch| {
        scratch.clear();
        ReservationJson(r).write_to(scratch);
        let body = Bytes::copy_from_slice(scratch);
        if scratch.capacity() > RESERVATION_JSON_SCRATCH_BYTES {
            *scratch = Vec::with_capacity(RESERVATION_JSON_SCRATCH_BYTES);
        }
        body
    });
    let mut res = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    res.headers_mut().insert(header::ETAG, etag(r.version));
    res
}

/// Parses a reservation id from a path segment.
fn reservation_id(raw: &str) -> Result<ReservationId, ApiError> {
    Ok(ReservationId::parse(raw)?)
}
