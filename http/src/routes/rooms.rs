//! Rooms and their live status (occupancy, housekeeping).

use axum::extract::State;
use axum::Json;
use innkeep_engine::{HotelId, Housekeeping, RoomNumber};

use crate::constraints::{CivilDate, Code};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::wire::{parse_date, HousekeepingRequest, OutOfOrderRequest, RoomStatusView};
use crate::AppState;

/// Every room of a hotel with its occupancy, housekeeping and checked-in reservation.
#[utoipa::path(
    get,
    path = "/v1/hotels/{hotel_id}/rooms",
    tag = "rooms",
    params(("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO")),
    responses(
        (status = 200, description = "The rooms, by number", body = Vec<RoomStatusView>),
        (status = 400, description = "invalid_request: bad hotel code", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded or shutting_down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_rooms(
    State(state): State<AppState>,
    ApiPath(hotel_id): ApiPath<String>,
) -> Result<Json<Vec<RoomStatusView>>, ApiError> {
    let hotel_id = HotelId::parse(&hotel_id)?;
    let rooms = state.engine.rooms(&hotel_id).await?;
    Ok(Json(rooms.iter().map(RoomStatusView::from).collect()))
}

/// Sets a room's housekeeping status (dirty → cleaning → clean → inspected; any room may
/// become dirty or out_of_order).
#[utoipa::path(
    put,
    path = "/v1/hotels/{hotel_id}/rooms/{number}/housekeeping",
    tag = "rooms",
    params(
        ("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO"),
        ("number" = Code, Path, description = "Room number", example = "101"),
    ),
    request_body = HousekeepingRequest,
    responses(
        (status = 200, description = "The room with its new status", body = RoomStatusView),
        (status = 400, description = "invalid_request: unknown status or a step the workflow does not allow", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: no such hotel or room", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "invalid_request: body not sent as JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded, storage_unavailable or shutting_down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_housekeeping(
    State(state): State<AppState>,
    ApiPath((hotel_id, number)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<HousekeepingRequest>,
) -> Result<Json<RoomStatusView>, ApiError> {
    let hotel_id = HotelId::parse(&hotel_id)?;
    let number = RoomNumber::parse(&number)?;
    let status = Housekeeping::parse(&body.status)?;
    let room = state
        .engine
        .set_housekeeping(&hotel_id, &number, status)
        .await?;
    Ok(Json(RoomStatusView::from(&room)))
}

/// Takes a room out of order for the nights `[from, to)`: they cannot be booked or moved
/// into. Refused with 409 `nights_sold`, listing every conflicting reservation in
/// `conflicts`, while any night in the range is sold (or another range overlaps). Setting
/// exactly the same range again changes nothing.
#[utoipa::path(
    post,
    path = "/v1/hotels/{hotel_id}/rooms/{number}/out-of-order",
    tag = "rooms",
    params(
        ("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO"),
        ("number" = Code, Path, description = "Room number", example = "101"),
    ),
    request_body = OutOfOrderRequest,
    responses(
        (status = 200, description = "The room with its out-of-order ranges", body = RoomStatusView),
        (status = 400, description = "invalid_request: bad dates (from before today, to not after from, over 366 nights) or reason", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: no such hotel or room", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "nights_sold (with `conflicts`) or limit_reached", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "invalid_request: body not sent as JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded, storage_unavailable or shutting_down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn set_out_of_order(
    State(state): State<AppState>,
    ApiPath((hotel_id, number)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<OutOfOrderRequest>,
) -> Result<Json<RoomStatusView>, ApiError> {
    let hotel_id = HotelId::parse(&hotel_id)?;
    let number = RoomNumber::parse(&number)?;
    let from = parse_date("from", &body.from)?;
    let to = parse_date("to", &body.to)?;
    let room = state
        .engine
        .set_out_of_order(&hotel_id, &number, from, to, &body.reason)
        .await?;
    Ok(Json(RoomStatusView::from(&room)))
}

/// Puts a room back in order: lifts its out-of-order range starting at `from`.
#[utoipa::path(
    delete,
    path = "/v1/hotels/{hotel_id}/rooms/{number}/out-of-order/{from}",
    tag = "rooms",
    params(
        ("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO"),
        ("number" = Code, Path, description = "Room number", example = "101"),
        ("from" = CivilDate, Path, description = "First night of the range (`YYYY-MM-DD`)"),
    ),
    responses(
        (status = 200, description = "The room with its remaining out-of-order ranges", body = RoomStatusView),
        (status = 400, description = "invalid_request: bad date", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: no such hotel, room or range", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded, storage_unavailable or shutting_down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn clear_out_of_order(
    State(state): State<AppState>,
    ApiPath((hotel_id, number, from)): ApiPath<(String, String, String)>,
) -> Result<Json<RoomStatusView>, ApiError> {
    let hotel_id = HotelId::parse(&hotel_id)?;
    let number = RoomNumber::parse(&number)?;
    let from = parse_date("from", &from)?;
    let room = state
        .engine
        .clear_out_of_order(&hotel_id, &number, from)
        .await?;
    Ok(Json(RoomStatusView::from(&room)))
}
