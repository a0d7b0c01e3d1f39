//! The front desk's day (arrivals, departures and guests in house) and its tape chart.

use axum::extract::State;
use axum::Json;
use innkeep_actors::TAPE_DEFAULT_NIGHTS;
use innkeep_engine::HotelId;

use crate::constraints::Code;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiPath, ApiQuery};
use crate::wire::{parse_date, FrontDeskQuery, FrontDeskView, TapeQuery, TapeView};
use crate::AppState;

/// The day's arrivals and departures and the guests in house, for the hotel-local `date`
/// (default: today in the hotel's time zone). Each list is sorted by room, then id.
#[utoipa::path(
    get,
    path = "/v1/hotels/{hotel_id}/front-desk",
    tag = "rooms",
    params(("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO"), FrontDeskQuery),
    responses(
        (status = 200, description = "The day's lists", body = FrontDeskView),
        (status = 400, description = "invalid_request: bad hotel code, a date that is not YYYY-MM-DD, or an unknown query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: no such hotel", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded or shutting_down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn front_desk(
    State(state): State<AppState>,
    ApiPath(hotel_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<FrontDeskQuery>,
) -> Result<Json<FrontDeskView>, ApiError> {
    let hotel_id = HotelId::parse(&hotel_id)?;
    let date = query
        .date
        .as_deref()
        .map(|raw| parse_date("date", raw))
        .transpose()?;
    let day = state.engine.front_desk(&hotel_id, date).await?;
    Ok(Json(FrontDeskView::from(&day)))
}

/// The tape chart the front desk plans with: every room (by number) with the reservations
/// holding its nights in `[from, from + nights)` — whole stays, each with the nights its
/// room holds, its status and whether it is pinned — and its out-of-order ranges there.
/// `from` defaults to today in the hotel's time zone, `nights` to 14 (at most 31).
#[utoipa::path(
    get,
    path = "/v1/hotels/{hotel_id}/tape",
    tag = "rooms",
    params(("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO"), TapeQuery),
    responses(
        (status = 200, description = "The tape chart", body = TapeView),
        (status = 400, description = "invalid_request: bad hotel code, a date that is not YYYY-MM-DD, a window ending after 9999-12-31, nights not 1 to 31, or an unknown query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: no such hotel", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded or shutting_down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn tape(
    State(state): State<AppState>,
    ApiPath(hotel_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<TapeQuery>,
) -> Result<Json<TapeView>, ApiError> {
    let hotel_id = HotelId::parse(&hotel_id)?;
    let from = query
        .from
        .as_deref()
        .map(|raw| parse_date("from", raw))
        .transpose()?;
    let nights = query.nights.unwrap_or(TAPE_DEFAULT_NIGHTS);
    let chart = state.engine.tape(&hotel_id, from, nights).await?;
    Ok(Json(TapeView::from(&chart)))
}
