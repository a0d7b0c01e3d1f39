//! Availability: free rooms and prices per room type for a stay.

use axum::extract::State;
use axum::Json;
use innkeep_engine::{HotelId, ValidationError};

use crate::constraints::Code;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiPath, ApiQuery};
use crate::wire::{parse_date, AvailabilityQuery, AvailabilityView};
use crate::AppState;

/// Rooms free on every night of the stay, with nightly rates and totals, per room type
/// that sleeps at least `guests`; and for each rate plan selling the type its price and
/// why the hotel's restrictions or the plan's booking window forbid the stay, if they do
/// (`rate_plans`).
#[utoipa::path(
    get,
    path = "/v1/hotels/{hotel_id}/availability",
    tag = "availability",
    params(("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO"), AvailabilityQuery),
    responses(
        (status = 200, description = "Availability per room type", body = AvailabilityView),
        (status = 400, description = "invalid_request: missing or malformed dates, guests < 1", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: no such hotel", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_stay: departure not after arrival, arrival before the hotel's today, too long or too far ahead", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_availability(
    State(state): State<AppState>,
    ApiPath(hotel_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<AvailabilityQuery>,
) -> Result<Json<AvailabilityView>, ApiError> {
    let hotel_id = HotelId::parse(&hotel_id)?;
    let arrival = query
        .arrival
        .as_deref()
        .ok_or_else(|| ValidationError::new("arrival", "is required"))?;
    let departure = query
        .departure
        .as_deref()
        .ok_or_else(|| ValidationError::new("departure", "is required"))?;
    let arrival = parse_date("arrival", arrival)?;
    let departure = parse_date("departure", departure)?;
    let guests = guests_or_one(query.guests)?;
    let availability = state
        .engine
        .availability(&hotel_id, arrival, departure, guests)?;
    Ok(Json(AvailabilityView::from(&availability)))
}

/// The guests an availability query asks for: 1 when not given, never 0.
pub fn guests_or_one(guests: Option<u16>) -> Result<u16, ApiError> {
    match guests.unwrap_or(1) {
        0 => Err(ValidationError::new("guests", "must be at least 1").into()),
        n => Ok(n),
    }
}
