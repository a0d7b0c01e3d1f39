//! Multi-room bookings: several rooms for one stay, booked, paid, expired and cancelled
//! together (issue #16).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use innkeep_engine::group::{GroupInput, GroupRoom};
use innkeep_engine::{BookingId, Guest, HotelId, RatePlanCode, RoomTypeCode};

use super::etag;
use crate::auth::Caller;
use crate::constraints::{Code, EmptyObject, IfMatch, ReservationId};
use crate::error::{ApiError, Problem};
use crate::extract::{
    idempotency_key_value, if_match_values, ApiJson, ApiPath, EmptyBody, IdempotencyKeyHeader,
    IfMatchHeader,
};
use crate::wire::{parse_date, BookingView, GroupBookingBody};
use crate::AppState;

/// Books one room for each entry of `rooms`, all for the same stay and under one rate plan,
/// in one step: every room is taken, or none is and the answer is 409 sold_out naming the
/// `room_types` that have too few rooms free. Each room is a reservation of its own
/// (`pending_payment`, each readable, modifiable and cancellable on its own); together they
/// have one payment, `payment.out_trade_no`, for the sum of their totals: its callback
/// confirms every one, and when the hold lapses unpaid they all expire together. Each room
/// counts against the key's hold cap. With an `Idempotency-Key`, a retry of the same
/// request answers with the same booking.
#[utoipa::path(
    post,
    path = "/v1/hotels/{hotel_id}/bookings",
    tag = "reservations",
    params(
        ("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO"),
        ("Idempotency-Key" = Option<Code>, Header, nullable = false, description = "Makes retries safe: same key and body → the same booking; same key, other body → 422"),
    ),
    request_body = GroupBookingBody,
    responses(
        (status = 201, description = "Booked (or the replay of an earlier booking with this key)", body = BookingView,
            headers(
                ("Location" = String, description = "/v1/bookings/{id}"),
                ("ETag" = String, description = "The booking's version, quoted"),
            )),
        (status = 400, description = "invalid_request: bad JSON, dates, guests, guest contact, rate_plan code or Idempotency-Key, or not 1 to 20 rooms", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: no such hotel or room type", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "sold_out, with the `room_types` short of free rooms; nothing is held", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "invalid_request: body not sent as JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_stay, idempotency_key_reused, restricted (with `reasons`) or invalid_request (a rate plan the hotel lacks or that does not sell a type)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "too_many_holds: the booking's rooms would take the key's unpaid holds past `max_holds_per_key`; or rate_limited (with Retry-After)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded, storage_unavailable or shutting_down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn book_group(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(hotel_id): ApiPath<String>,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    ApiJson(body): ApiJson<GroupBookingBody>,
) -> Result<Response, ApiError> {
    let hotel_id = HotelId::parse(&hotel_id)?;
    let key = idempotency_key_value(key.as_ref())?;
    let guest = |g: &crate::wire::GuestContact| Guest::parse(&g.name, &g.phone, &g.email);
    let rooms = body
        .rooms
        .iter()
        .map(|room| {
            Ok(GroupRoom {
                room_type: RoomTypeCode::parse(&room.room_type)?,
                guests: room.guests,
                guest: room.guest.as_ref().map(guest).transpose()?,
            })
        })
        .collect::<Result<Vec<_>, innkeep_engine::ValidationError>>()?;
    let input = GroupInput {
        hotel_id,
        arrival: parse_date("arrival", &body.arrival)?,
        departure: parse_date("departure", &body.departure)?,
        guest: guest(&body.guest)?,
        rooms,
        rate_plan: body
            .rate_plan
            .as_deref()
            .map(RatePlanCode::parse)
            .transpose()?,
        // The guard checked the hotel and the role; the booking records who made it.
        created_by: caller.principal.creator(),
    };
    let booking = state.engine.book_group(input, key).await?;
    let mut res = booking_response(StatusCode::CREATED, &booking);
    let location = format!("/v1/bookings/{}", booking.summary.id);
    if let Ok(location) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, location);
    }
    Ok(res)
}

/// A multi-room booking with every reservation of it.
#[utoipa::path(
    get,
    path = "/v1/bookings/{id}",
    tag = "reservations",
    params(("id" = ReservationId, Path, description = "Booking id (UUID)")),
    responses(
        (status = 200, description = "The booking", body = BookingView,
            headers(("ETag" = String, description = "The booking's version, quoted"))),
        (status = 400, description = "invalid_request: not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_booking(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let booking = load(&state, &caller, None, &id).await?;
    Ok(booking_response(StatusCode::OK, &booking))
}

/// `GET /v1/bookings/{id}` with the hotel in the path, so a proxy can route it: the same,
/// and 404 unless the booking is of `hotel_id`.
#[utoipa::path(
    get,
    path = "/v1/hotels/{hotel_id}/bookings/{id}",
    tag = "reservations",
    params(
        ("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO"),
        ("id" = ReservationId, Path, description = "Booking id (UUID)"),
    ),
    responses(
        (status = 200, description = "The booking", body = BookingView,
            headers(("ETag" = String, description = "The booking's version, quoted"))),
        (status = 400, description = "invalid_request: not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found (also a booking of another hotel)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_hotel_booking(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((hotel_id, id)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let booking = load(&state, &caller, Some(&hotel_id), &id).await?;
    Ok(booking_response(StatusCode::OK, &booking))
}

/// Loads booking `id` for `caller`: 404, as if it did not exist, when it is not of
/// `hotel` (the path's, in the hotel-scoped forms) or the caller may not see it.
async fn load(
    state: &AppState,
    caller: &Caller,
    hotel: Option<&str>,
    id: &str,
) -> Result<innkeep_actors::Booking, ApiError> {
    let booking = state.engine.booking(BookingId::parse(id)?).await?;
    if hotel.is_some_and(|hotel| booking.hotel_id.as_str() != hotel) {
        return Err(innkeep_engine::DomainError::NotFound("booking").into());
    }
    caller.check_booking(&booking)?;
    Ok(booking)
}

/// Cancels every reservation of the booking that can still be cancelled
/// (`pending_payment` or `confirmed`), in one step, each as `POST
/// /v1/reservations/{id}/cancel` would (a paid one keeps its cancellation fee and is owed
/// the rest back). Reservations already ended stay as they are; a booking whose
/// reservations all ended is answered as it is (a retry is safe); one with none
/// cancellable but some not ended (a guest checked in) is 409 invalid_transition.
#[utoipa::path(
    post,
    path = "/v1/bookings/{id}/cancel",
    tag = "reservations",
    params(
        ("id" = ReservationId, Path, description = "Booking id (UUID)"),
        ("If-Match" = Option<IfMatch>, Header, nullable = false, description = "The booking's version the client saw (its ETag); `*` or absent: no check; another version is 412 version_mismatch"),
    ),
    request_body(content = EmptyObject, description = "Empty, or `{}`"),
    responses(
        (status = 200, description = "Cancelled", body = BookingView,
            headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 400, description = "invalid_request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid_transition, payment_in_progress or move_in_progress", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "version_mismatch", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded, storage_unavailable or shutting_down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn cancel_booking(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    IfMatchHeader(if_match): IfMatchHeader,
    _body: EmptyBody,
) -> Result<Response, ApiError> {
    cancel(&state, &caller, (None, &id), &if_match).await
}

/// `POST /v1/bookings/{id}/cancel` with the hotel in the path, so a proxy can route it:
/// the same, and 404 unless the booking is of `hotel_id`.
#[utoipa::path(
    post,
    path = "/v1/hotels/{hotel_id}/bookings/{id}/cancel",
    tag = "reservations",
    params(
        ("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO"),
        ("id" = ReservationId, Path, description = "Booking id (UUID)"),
        ("If-Match" = Option<IfMatch>, Header, nullable = false, description = "The booking's version the client saw (its ETag); `*` or absent: no check; another version is 412 version_mismatch"),
    ),
    request_body(content = EmptyObject, description = "Empty, or `{}`"),
    responses(
        (status = 200, description = "Cancelled", body = BookingView,
            headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 400, description = "invalid_request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found (also a booking of another hotel)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid_transition, payment_in_progress or move_in_progress", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "version_mismatch", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded, storage_unavailable or shutting_down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn cancel_hotel_booking(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((hotel_id, id)): ApiPath<(String, String)>,
    IfMatchHeader(if_match): IfMatchHeader,
    _body: EmptyBody,
) -> Result<Response, ApiError> {
    cancel(&state, &caller, (Some(&hotel_id), &id), &if_match).await
}

/// A cancellation of the booking at `(hotel, id)` (see [`cancel_booking`]).
async fn cancel(
    state: &AppState,
    caller: &Caller,
    (hotel, id): (Option<&str>, &str),
    if_match: &[HeaderValue],
) -> Result<Response, ApiError> {
    let expected = if_match_values(if_match)?;
    let current = load(state, caller, hotel, id).await?;
    let booking = state
        .engine
        .cancel_booking(current.summary.id, expected)
        .await?;
    Ok(booking_response(StatusCode::OK, &booking))
}

/// A booking response: the JSON view with its `ETag`.
fn booking_response(status: StatusCode, b: &innkeep_actors::Booking) -> Response {
    let mut res = (status, Json(BookingView::from(b))).into_response();
    res.headers_mut()
        .insert(header::ETAG, etag(b.summary.version));
    res
}
