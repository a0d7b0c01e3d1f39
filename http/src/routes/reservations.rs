//! Reservations: booking (idempotent with a key), reading, and the state-machine actions.

use axum::extract::{FromRequest, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use innkeep_actors::BookInput;
use innkeep_engine::{
    Action, DomainError, Guest, HotelId, ModifyInput, RatePlanCode, RoomNumber, RoomTypeCode,
};

use super::{reservation_id, reservation_response};
use crate::auth::Caller;
use crate::constraints::{Code, EmptyObject, IfMatch, ReservationId};
use crate::error::{ApiError, Problem};
use crate::extract::{
    idempotency_key_value, if_match_values, ApiJson, ApiPath, EmptyBody, IdempotencyKeyHeader,
    IfMatchHeader,
};
use crate::wire::{parse_date, BookRequestBody, ModifyRequest, MoveRequest, ReservationView};
use crate::AppState;

/// Books a room of a type for a stay, under a rate plan (`rate_plan`, default `BAR`):
/// the plan's price, cancellation and no-show policies are the reservation's. The
/// reservation starts `pending_payment` and holds its nights until `hold_expires_at`. With
/// an `Idempotency-Key`, a retry of the same request answers with the same reservation.
#[utoipa::path(
    post,
    path = "/v1/hotels/{hotel_id}/reservations",
    tag = "reservations",
    params(
        ("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO"),
        ("Idempotency-Key" = Option<Code>, Header, nullable = false, description = "Makes retries safe: same key and body → the same reservation; same key, other body → 422"),
    ),
    request_body = BookRequestBody,
    responses(
        (status = 201, description = "Booked (or the replay of an earlier booking with this key)", body = ReservationView,
            headers(
                ("Location" = String, description = "/v1/reservations/{id}"),
                ("ETag" = String, description = "The reservation's version, quoted"),
            )),
        (status = 400, description = "invalid_request: bad JSON, dates, guests, guest contact, rate_plan code or Idempotency-Key, or a requested room of another type than room_type", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: no such hotel, room type or room", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "sold_out", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "invalid_request: body not sent as JSON", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "too_many_holds: the key's unpaid holds are at `max_holds_per_key`; or rate_limited (with Retry-After)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_stay, idempotency_key_reused, restricted (the hotel's restrictions or the plan's booking window forbid the stay; the problem lists `reasons`) or invalid_request (a rate_plan the hotel does not have, or one that does not sell room_type)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded, storage_unavailable or shutting_down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn book(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(hotel_id): ApiPath<String>,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    ApiJson(body): ApiJson<BookRequestBody>,
) -> Result<Response, ApiError> {
    let hotel_id = HotelId::parse(&hotel_id)?;
    let key = idempotency_key_value(key.as_ref())?;
    let input = BookInput {
        hotel_id,
        room_type: RoomTypeCode::parse(&body.room_type)?,
        arrival: parse_date("arrival", &body.arrival)?,
        departure: parse_date("departure", &body.departure)?,
        guests: body.guests,
        guest: Guest::parse(&body.guest.name, &body.guest.phone, &body.guest.email)?,
        room: body.room.as_deref().map(RoomNumber::parse).transpose()?,
        // The guard checked the hotel and the role; the booking records who made it.
        created_by: caller.principal.creator(),
        rate_plan: body
            .rate_plan
            .as_deref()
            .map(RatePlanCode::parse)
            .transpose()?,
    };
    let reservation = state.engine.book(input, key).await?;
    let mut res = reservation_response(StatusCode::CREATED, &reservation);
    let location = format!("/v1/reservations/{}", reservation.id);
    if let Ok(location) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, location);
    }
    Ok(res)
}

/// A reservation with its history.
#[utoipa::path(
    get,
    path = "/v1/reservations/{id}",
    tag = "reservations",
    params(("id" = ReservationId, Path, description = "Reservation id (UUID)")),
    responses(
        (status = 200, description = "The reservation", body = ReservationView,
            headers(("ETag" = String, description = "The reservation's version, quoted"))),
        (status = 400, description = "invalid_request: not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_reservation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let reservation = load(&state, &caller, None, &id).await?;
    Ok(reservation_response(StatusCode::OK, &reservation))
}

/// The same as `GET /v1/reservations/{id}`, routable by hotel: 404 unless the reservation
/// is of `hotel_id`.
#[utoipa::path(
    get,
    path = "/v1/hotels/{hotel_id}/reservations/{id}",
    tag = "reservations",
    params(
        ("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO"),
        ("id" = ReservationId, Path, description = "Reservation id (UUID)"),
    ),
    responses(
        (status = 200, description = "The reservation", body = ReservationView,
            headers(("ETag" = String, description = "The reservation's version, quoted"))),
        (status = 400, description = "invalid_request: not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found (also a reservation of another hotel)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_hotel_reservation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((hotel_id, id)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let reservation = load(&state, &caller, Some(&hotel_id), &id).await?;
    Ok(reservation_response(StatusCode::OK, &reservation))
}

/// Loads reservation `id` for `caller`: 404, as if it did not exist, when it is not of
/// `hotel` (the path's, in the hotel-scoped forms) or the caller may not see it.
async fn load(
    state: &AppState,
    caller: &Caller,
    hotel: Option<&str>,
    id: &str,
) -> Result<std::sync::Arc<innkeep_engine::Reservation>, ApiError> {
    let id = reservation_id(id)?;
    let reservation = state.engine.reservation(id).await?;
    if hotel.is_some_and(|hotel| reservation.hotel_id.as_str() != hotel) {
        return Err(DomainError::NotFound("reservation").into());
    }
    caller.check_reservation(&reservation)?;
    Ok(reservation)
}

/// Applies `action` to the reservation in the path, honouring `If-Match`: load it, check
/// the caller may see it and do this, then act. (A reservation never changes hotel or
/// creator, so the check stays true until the change is made.)
async fn act(
    state: &AppState,
    caller: &Caller,
    (hotel, id): (Option<&str>, &str),
    if_match: &[HeaderValue],
    action: Action,
) -> Result<Response, ApiError> {
    let expected = if_match_values(if_match)?;
    let current = load(state, caller, hotel, id).await?;
    let reservation = state.engine.change(current.id, action, expected).await?;
    Ok(reservation_response(StatusCode::OK, &reservation))
}

/// Cancels a `pending_payment` or `confirmed` reservation; its nights are released. A
/// paid one keeps the fee its cancellation policy sets (`cancellation_fee`; 0 before
/// `cancellation_policy.free_until`) and is owed the rest of what was paid back
/// (`payment.refunds`); a difference still due (`balance_due`) is no longer asked for.
/// While a difference a modification owes back is not yet refunded: 409
/// payment_in_progress (retry in a moment; nothing changes).
#[utoipa::path(
    post,
    path = "/v1/reservations/{id}/cancel",
    tag = "reservations",
    params(
        ("id" = ReservationId, Path, description = "Reservation id (UUID)"),
        ("If-Match" = Option<IfMatch>, Header, nullable = false, description = "The version the client saw, e.g. \"3\" (its ETag); `*` or absent: no check; another version is 412 version_mismatch"),
    ),
    request_body(content = EmptyObject, description = "Empty, or `{}`"),
    responses(
        (status = 200, description = "Cancelled", body = ReservationView,
            headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 400, description = "invalid_request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid_transition or payment_in_progress", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "version_mismatch", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded, storage_unavailable or shutting_down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    IfMatchHeader(if_match): IfMatchHeader,
    _body: EmptyBody,
) -> Result<Response, ApiError> {
    act(&state, &caller, (None, &id), &if_match, Action::Cancel).await
}

/// `POST /v1/reservations/{id}/cancel` with the hotel in the path, so a proxy can route
/// it: the same, and 404 unless the reservation is of `hotel_id`.
#[utoipa::path(
    post,
    path = "/v1/hotels/{hotel_id}/reservations/{id}/cancel",
    tag = "reservations",
    params(
        ("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO"),
        ("id" = ReservationId, Path, description = "Reservation id (UUID)"),
        ("If-Match" = Option<IfMatch>, Header, nullable = false, description = "The version the client saw, e.g. \"3\" (its ETag); `*` or absent: no check; another version is 412 version_mismatch"),
    ),
    request_body(content = EmptyObject, description = "Empty, or `{}`"),
    responses(
        (status = 200, description = "Cancelled", body = ReservationView,
            headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 400, description = "invalid_request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found (also a reservation of another hotel)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid_transition or payment_in_progress", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "version_mismatch", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded, storage_unavailable or shutting_down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn hotel_cancel(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((hotel_id, id)): ApiPath<(String, String)>,
    IfMatchHeader(if_match): IfMatchHeader,
    _body: EmptyBody,
) -> Result<Response, ApiError> {
    act(
        &state,
        &caller,
        (Some(&hotel_id), &id),
        &if_match,
        Action::Cancel,
    )
    .await
}

/// Checks a `confirmed` reservation in: today (hotel-local) must be a night of the stay
/// and the room clean or inspected.
#[utoipa::path(
    post,
    path = "/v1/reservations/{id}/check-in",
    tag = "reservations",
    params(
        ("id" = ReservationId, Path, description = "Reservation id (UUID)"),
        ("If-Match" = Option<IfMatch>, Header, nullable = false, description = "The version the client saw, e.g. \"3\" (its ETag); `*` or absent: no check; another version is 412 version_mismatch"),
    ),
    request_body(content = EmptyObject, description = "Empty, or `{}`"),
    responses(
        (status = 200, description = "Checked in", body = ReservationView,
            headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 400, description = "invalid_request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid_transition, not_within_stay or room_not_ready", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "version_mismatch", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded, storage_unavailable or shutting_down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn check_in(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    IfMatchHeader(if_match): IfMatchHeader,
    _body: EmptyBody,
) -> Result<Response, ApiError> {
    act(&state, &caller, (None, &id), &if_match, Action::CheckIn).await
}

/// `POST /v1/reservations/{id}/check-in` with the hotel in the path, so a proxy can route
/// it: the same, and 404 unless the reservation is of `hotel_id`.
#[utoipa::path(
    post,
    path = "/v1/hotels/{hotel_id}/reservations/{id}/check-in",
    tag = "reservations",
    params(
        ("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO"),
        ("id" = ReservationId, Path, description = "Reservation id (UUID)"),
        ("If-Match" = Option<IfMatch>, Header, nullable = false, description = "The version the client saw, e.g. \"3\" (its ETag); `*` or absent: no check; another version is 412 version_mismatch"),
    ),
    request_body(content = EmptyObject, description = "Empty, or `{}`"),
    responses(
        (status = 200, description = "Checked in", body = ReservationView,
            headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 400, description = "invalid_request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found (also a reservation of another hotel)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid_transition, not_within_stay or room_not_ready", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "version_mismatch", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded, storage_unavailable or shutting_down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn hotel_check_in(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((hotel_id, id)): ApiPath<(String, String)>,
    IfMatchHeader(if_match): IfMatchHeader,
    _body: EmptyBody,
) -> Result<Response, ApiError> {
    act(
        &state,
        &caller,
        (Some(&hotel_id), &id),
        &if_match,
        Action::CheckIn,
    )
    .await
}

/// Checks a `checked_in` reservation out; the room becomes dirty, and nights not yet slept
/// are released.
#[utoipa::path(
    post,
    path = "/v1/reservations/{id}/check-out",
    tag = "reservations",
    params(
        ("id" = ReservationId, Path, description = "Reservation id (UUID)"),
        ("If-Match" = Option<IfMatch>, Header, nullable = false, description = "The version the client saw, e.g. \"3\" (its ETag); `*` or absent: no check; another version is 412 version_mismatch"),
    ),
    request_body(content = EmptyObject, description = "Empty, or `{}`"),
    responses(
        (status = 200, description = "Checked out", body = ReservationView,
            headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 400, description = "invalid_request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid_transition", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "version_mismatch", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded, storage_unavailable or shutting_down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn check_out(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    IfMatchHeader(if_match): IfMatchHeader,
    _body: EmptyBody,
) -> Result<Response, ApiError> {
    act(&state, &caller, (None, &id), &if_match, Action::CheckOut).await
}

/// `POST /v1/reservations/{id}/check-out` with the hotel in the path, so a proxy can route
/// it: the same, and 404 unless the reservation is of `hotel_id`.
#[utoipa::path(
    post,
    path = "/v1/hotels/{hotel_id}/reservations/{id}/check-out",
    tag = "reservations",
    params(
        ("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO"),
        ("id" = ReservationId, Path, description = "Reservation id (UUID)"),
        ("If-Match" = Option<IfMatch>, Header, nullable = false, description = "The version the client saw, e.g. \"3\" (its ETag); `*` or absent: no check; another version is 412 version_mismatch"),
    ),
    request_body(content = EmptyObject, description = "Empty, or `{}`"),
    responses(
        (status = 200, description = "Checked out", body = ReservationView,
            headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 400, description = "invalid_request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found (also a reservation of another hotel)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid_transition", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "version_mismatch", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded, storage_unavailable or shutting_down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn hotel_check_out(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((hotel_id, id)): ApiPath<(String, String)>,
    IfMatchHeader(if_match): IfMatchHeader,
    _body: EmptyBody,
) -> Result<Response, ApiError> {
    act(
        &state,
        &caller,
        (Some(&hotel_id), &id),
        &if_match,
        Action::CheckOut,
    )
    .await
}

/// Modifies a reservation: its dates, room type, guests, guest or rate plan, re-priced for
/// what changed. `pending_payment` and `confirmed` reservations may change anything;
/// `checked_in` ones only `departure` (later, or earlier but after today: the nights slept
/// never move). The new nights are taken and the old ones released in one step, in the
/// same room when it is free for the new stay, else in another room of the (new) type —
/// or nothing changes: 409 sold_out with the `nights` no room of the type has free. A
/// pending hold keeps its deadline and is re-priced; its payment's amount stays what its
/// charge was made with, and once that is paid the difference is settled as for a paid
/// reservation. A paid reservation whose total rises stays `confirmed` and shows the
/// difference as `balance_due` until the charge for it (`<out_trade_no>-<n>`, created with
/// the provider by the payment supervisor) is paid; one whose total falls is refunded the
/// difference (the payment's `refunds`, through the provider with retries and
/// reconciliation). While an earlier difference is still being charged or refunded the
/// total may not change again (409 payment_in_progress; nothing changes). The history
/// gets a `modified` entry with the changes; `{}` changes nothing.
#[utoipa::path(
    post,
    path = "/v1/reservations/{id}/modify",
    tag = "reservations",
    params(
        ("id" = ReservationId, Path, description = "Reservation id (UUID)"),
        ("If-Match" = Option<IfMatch>, Header, nullable = false, description = "The version the client saw, e.g. \"3\" (its ETag); `*` or absent: no check; another version is 412 version_mismatch"),
    ),
    request_body = ModifyRequest,
    responses(
        (status = 200, description = "Modified (or nothing to change)", body = ReservationView,
            headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 400, description = "invalid_request: a malformed field, or more guests than the type holds", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: no such reservation or room type", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "sold_out (with `nights`), invalid_transition, payment_in_progress (an earlier difference is still being charged or refunded) or move_in_progress", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "version_mismatch", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_stay, restricted (with `reasons`) or invalid_request (a rate plan the hotel lacks or that does not sell the type)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded, storage_unavailable or shutting_down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn modify_reservation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    IfMatchHeader(if_match): IfMatchHeader,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    modify(&state, &caller, (None, &id), &if_match, request).await
}

/// `POST /v1/reservations/{id}/modify` with the hotel in the path, so a proxy can route
/// it: the same, and 404 unless the reservation is of `hotel_id`.
#[utoipa::path(
    post,
    path = "/v1/hotels/{hotel_id}/reservations/{id}/modify",
    tag = "reservations",
    params(
        ("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO"),
        ("id" = ReservationId, Path, description = "Reservation id (UUID)"),
        ("If-Match" = Option<IfMatch>, Header, nullable = false, description = "The version the client saw, e.g. \"3\" (its ETag); `*` or absent: no check; another version is 412 version_mismatch"),
    ),
    request_body = ModifyRequest,
    responses(
        (status = 200, description = "Modified (or nothing to change)", body = ReservationView,
            headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 400, description = "invalid_request: a malformed field, or more guests than the type holds", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: no such reservation (or one of another hotel) or room type", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "sold_out (with `nights`), invalid_transition, payment_in_progress (an earlier difference is still being charged or refunded) or move_in_progress", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "version_mismatch", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_stay, restricted (with `reasons`) or invalid_request (a rate plan the hotel lacks or that does not sell the type)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded, storage_unavailable or shutting_down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn modify_hotel_reservation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((hotel_id, id)): ApiPath<(String, String)>,
    IfMatchHeader(if_match): IfMatchHeader,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    modify(&state, &caller, (Some(&hotel_id), &id), &if_match, request).await
}

/// A modification of the reservation at `(hotel, id)` (see [`modify_reservation`]).
async fn modify(
    state: &AppState,
    caller: &Caller,
    (hotel, id): (Option<&str>, &str),
    if_match: &[HeaderValue],
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let expected = if_match_values(if_match)?;
    // Who may act on this reservation is decided before its body is read (as for a move).
    let current = load(state, caller, hotel, id).await?;
    let id = current.id;
    let ApiJson(body) = ApiJson::<ModifyRequest>::from_request(request, &()).await?;
    let input = ModifyInput {
        arrival: body
            .arrival
            .as_deref()
            .map(|d| parse_date("arrival", d))
            .transpose()?,
        departure: body
            .departure
            .as_deref()
            .map(|d| parse_date("departure", d))
            .transpose()?,
        room_type: body
            .room_type
            .as_deref()
            .map(RoomTypeCode::parse)
            .transpose()?,
        guests: body.guests,
        guest: body
            .guest
            .map(|g| Guest::parse(&g.name, &g.phone, &g.email))
            .transpose()?,
        rate_plan: body
            .rate_plan
            .as_deref()
            .map(RatePlanCode::parse)
            .transpose()?,
    };
    let reservation = state.engine.modify(id, input, expected).await?;
    Ok(reservation_response(StatusCode::OK, &reservation))
}

/// Moves a `confirmed` or `checked_in` reservation to another room of its hotel. The new
/// room takes the nights (from tonight on, for a guest already in) and the old room gives
/// them back in one step: never both, never neither. A guest moved out leaves the old room
/// vacant and dirty. The reservation takes the new room's type; its price stays. Moving to
/// the room it is in changes nothing (a retry is safe).
#[utoipa::path(
    post,
    path = "/v1/reservations/{id}/move",
    tag = "reservations",
    params(
        ("id" = ReservationId, Path, description = "Reservation id (UUID)"),
        ("If-Match" = Option<IfMatch>, Header, nullable = false, description = "The version the client saw, e.g. \"3\" (its ETag); `*` or absent: no check; another version is 412 version_mismatch"),
    ),
    request_body = MoveRequest,
    responses(
        (status = 200, description = "Moved (or already in that room)", body = ReservationView,
            headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 400, description = "invalid_request: bad room number, or the room sleeps fewer guests", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: no such reservation or room", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "nights_sold (with `conflicts`), invalid_transition, room_not_ready (a checked-in guest needs a vacant clean or inspected room) or move_in_progress", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "version_mismatch", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded, storage_unavailable or shutting_down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn move_reservation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    IfMatchHeader(if_match): IfMatchHeader,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    move_to(&state, &caller, (None, &id), &if_match, request).await
}

/// `POST /v1/reservations/{id}/move` with the hotel in the path, so a proxy can route
/// it: the same, and 404 unless the reservation is of `hotel_id`.
#[utoipa::path(
    post,
    path = "/v1/hotels/{hotel_id}/reservations/{id}/move",
    tag = "reservations",
    params(
        ("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO"),
        ("id" = ReservationId, Path, description = "Reservation id (UUID)"),
        ("If-Match" = Option<IfMatch>, Header, nullable = false, description = "The version the client saw, e.g. \"3\" (its ETag); `*` or absent: no check; another version is 412 version_mismatch"),
    ),
    request_body = MoveRequest,
    responses(
        (status = 200, description = "Moved (or already in that room)", body = ReservationView,
            headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 400, description = "invalid_request: bad room number, or the room sleeps fewer guests", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: no such reservation (or one of another hotel) or room", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "nights_sold (with `conflicts`), invalid_transition, room_not_ready (a checked-in guest needs a vacant clean or inspected room) or move_in_progress", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "version_mismatch", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded, storage_unavailable or shutting_down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn move_hotel_reservation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((hotel_id, id)): ApiPath<(String, String)>,
    IfMatchHeader(if_match): IfMatchHeader,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    move_to(&state, &caller, (Some(&hotel_id), &id), &if_match, request).await
}

/// A move of the reservation at `(hotel, id)` (see [`move_reservation`]).
async fn move_to(
    state: &AppState,
    caller: &Caller,
    (hotel, id): (Option<&str>, &str),
    if_match: &[HeaderValue],
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let expected = if_match_values(if_match)?;
    // Who may act on this reservation is decided before its body is read, so a caller
    // that may not see it learns nothing from how its body is judged.
    let current = load(state, caller, hotel, id).await?;
    let ApiJson(body) = ApiJson::<MoveRequest>::from_request(request, &()).await?;
    let to = RoomNumber::parse(&body.room)?;
    let reservation = state
        .engine
        .move_reservation(current.id, to, expected)
        .await?;
    Ok(reservation_response(StatusCode::OK, &reservation))
}
