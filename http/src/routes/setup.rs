//! Setup: hotels, room types, rooms and rate overrides.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use innkeep_engine::{HotelId, RoomNumber, RoomTypeCode};

use super::upsert_status;
use crate::constraints::Code;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::wire::{
    parse_date, HotelView, MoneyView, PutHotelRequest, PutRateRequest, PutRoomRequest,
    PutRoomTypeRequest, RateView, RoomPutView, RoomTypeView,
};
use crate::AppState;

/// Creates or updates a hotel.
#[utoipa::path(
    put,
    path = "/v1/hotels/{hotel_id}",
    tag = "setup",
    params(("hotel_id" = Code, Path, description = "Client-chosen hotel code", example = "DEMO")),
    request_body = PutHotelRequest,
    responses(
        (status = 201, description = "Hotel created", body = HotelView),
        (status = 200, description = "Hotel updated", body = HotelView),
        (status = 400, description = "invalid_request: bad JSON, name, time zone or currency", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "currency_locked or limit_reached", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "invalid_request: body not sent as JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded, storage_unavailable or shutting_down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_hotel(
    State(state): State<AppState>,
    ApiPath(hotel_id): ApiPath<String>,
    ApiJson(body): ApiJson<PutHotelRequest>,
) -> Result<(StatusCode, Json<HotelView>), ApiError> {
    let id = HotelId::parse(&hotel_id)?;
    let upsert = state
        .engine
        .put_hotel(id.clone(), &body.name, &body.time_zone, &body.currency)
        .await?;
    let hotel = state.engine.hotel(&id)?;
    Ok((upsert_status(upsert), Json(HotelView::from(&hotel))))
}

/// A hotel with its room types and room counts.
#[utoipa::path(
    get,
    path = "/v1/hotels/{hotel_id}",
    tag = "setup",
    params(("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO")),
    responses(
        (status = 200, description = "The hotel", body = HotelView),
        (status = 400, description = "invalid_request: bad hotel code", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_hotel(
    State(state): State<AppState>,
    ApiPath(hotel_id): ApiPath<String>,
) -> Result<Json<HotelView>, ApiError> {
    let id = HotelId::parse(&hotel_id)?;
    let hotel = state.engine.hotel(&id)?;
    Ok(Json(HotelView::from(&hotel)))
}

/// Creates or updates a room type.
#[utoipa::path(
    put,
    path = "/v1/hotels/{hotel_id}/room-types/{code}",
    tag = "setup",
    params(
        ("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO"),
        ("code" = Code, Path, description = "Room type code", example = "KING"),
    ),
    request_body = PutRoomTypeRequest,
    responses(
        (status = 201, description = "Room type created", body = RoomTypeView),
        (status = 200, description = "Room type updated", body = RoomTypeView),
        (status = 400, description = "invalid_request: bad JSON, name, capacity, rate or currency", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: no such hotel", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "limit_reached", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "invalid_request: body not sent as JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded, storage_unavailable or shutting_down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_room_type(
    State(state): State<AppState>,
    ApiPath((hotel_id, code)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<PutRoomTypeRequest>,
) -> Result<(StatusCode, Json<RoomTypeView>), ApiError> {
    let hotel_id = HotelId::parse(&hotel_id)?;
    let code = RoomTypeCode::parse(&code)?;
    let currency = state.engine.hotel(&hotel_id)?.currency;
    let base_rate_minor = body.base_rate.minor_in("base_rate", currency)?;
    let upsert = state
        .engine
        .put_room_type(
            &hotel_id,
            code.clone(),
            &body.name,
            body.capacity,
            base_rate_minor,
        )
        .await?;
    let hotel = state.engine.hotel(&hotel_id)?;
    let rt = hotel
        .room_types
        .get(&code)
        .ok_or(innkeep_engine::DomainError::NotFound("room type"))?;
    let rooms = hotel.rooms.values().filter(|t| **t == code).count();
    Ok((
        upsert_status(upsert),
        Json(RoomTypeView::new(&hotel, &code, rt, rooms)),
    ))
}

/// Creates a room or changes its type.
#[utoipa::path(
    put,
    path = "/v1/hotels/{hotel_id}/rooms/{number}",
    tag = "setup",
    params(
        ("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO"),
        ("number" = Code, Path, description = "Room number", example = "101"),
    ),
    request_body = PutRoomRequest,
    responses(
        (status = 201, description = "Room created", body = RoomPutView),
        (status = 200, description = "Room updated", body = RoomPutView),
        (status = 400, description = "invalid_request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: no such hotel or room type", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "room_in_use (live reservations block a type change) or limit_reached", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "invalid_request: body not sent as JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded, storage_unavailable or shutting_down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_room(
    State(state): State<AppState>,
    ApiPath((hotel_id, number)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<PutRoomRequest>,
) -> Result<(StatusCode, Json<RoomPutView>), ApiError> {
    let hotel_id = HotelId::parse(&hotel_id)?;
    let number = RoomNumber::parse(&number)?;
    let room_type = RoomTypeCode::parse(&body.room_type)?;
    let upsert = state
        .engine
        .put_room(&hotel_id, number.clone(), room_type.clone())
        .await?;
    Ok((
        upsert_status(upsert),
        Json(RoomPutView {
            hotel_id: hotel_id.as_str().to_owned(),
            number: number.as_str().to_owned(),
            room_type: room_type.as_str().to_owned(),
        }),
    ))
}

/// Sets a nightly rate override for the nights `[from, to)`.
#[utoipa::path(
    put,
    path = "/v1/hotels/{hotel_id}/room-types/{code}/rates",
    tag = "setup",
    params(
        ("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO"),
        ("code" = Code, Path, description = "Room type code", example = "KING"),
    ),
    request_body = PutRateRequest,
    responses(
        (status = 200, description = "Override stored", body = RateView),
        (status = 400, description = "invalid_request: bad dates, range or amount", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: no such hotel or room type", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "limit_reached", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "invalid_request: body not sent as JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded, storage_unavailable or shutting_down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_rate(
    State(state): State<AppState>,
    ApiPath((hotel_id, code)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<PutRateRequest>,
) -> Result<Json<RateView>, ApiError> {
    let hotel_id = HotelId::parse(&hotel_id)?;
    let code = RoomTypeCode::parse(&code)?;
    let from = parse_date("from", &body.from)?;
    let to = parse_date("to", &body.to)?;
    let currency = state.engine.hotel(&hotel_id)?.currency;
    let amount_minor = body.amount.minor_in("amount", currency)?;
    state
        .engine
        .put_rate(&hotel_id, &code, from, to, amount_minor)
        .await?;
    Ok(Json(RateView {
        room_type: code.as_str().to_owned(),
        from: from.to_string(),
        to: to.to_string(),
        amount: MoneyView {
            amount: amount_minor,
            currency: currency.as_str().to_owned(),
        },
    }))
}
