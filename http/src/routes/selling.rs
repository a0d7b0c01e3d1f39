//! Selling rules (issue #15): rate plans and stay restrictions.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use innkeep_actors::RestrictionChange;
use innkeep_engine::selling::Weekdays;
use innkeep_engine::{HotelId, RatePlanCode, RoomTypeCode, ValidationError};

use super::upsert_status;
use crate::constraints::Code;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::wire::{
    parse_date, PutRatePlanRequest, PutRestrictionsRequest, RatePlanView, RatePlansView,
    RestrictionView, RestrictionsPutView, RestrictionsQuery, RestrictionsView,
};
use crate::AppState;

/// Creates or replaces a rate plan: the room types it sells, its price adjustment, its
/// cancellation and no-show policies and its booking window. `BAR`, the built-in plan
/// every hotel has, may be replaced too. A reservation keeps the terms it was sold under.
#[utoipa::path(
    put,
    path = "/v1/hotels/{hotel_id}/rate-plans/{code}",
    tag = "setup",
    params(
        ("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO"),
        ("code" = Code, Path, description = "Rate plan code", example = "NONREF"),
    ),
    request_body = PutRatePlanRequest,
    responses(
        (status = 201, description = "Rate plan created", body = RatePlanView),
        (status = 200, description = "Rate plan replaced", body = RatePlanView),
        (status = 400, description = "invalid_request: bad JSON, name, room types (also one the hotel does not have), adjust_percent, fee, free_until_hours or advance days", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: no such hotel", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "limit_reached", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "invalid_request: body not sent as JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded, storage_unavailable or shutting_down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_rate_plan(
    State(state): State<AppState>,
    ApiPath((hotel_id, code)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<PutRatePlanRequest>,
) -> Result<(StatusCode, Json<RatePlanView>), ApiError> {
    let hotel_id = HotelId::parse(&hotel_id)?;
    let code = RatePlanCode::parse(&code)?;
    let plan = body.to_plan()?;
    let upsert = state
        .engine
        .put_rate_plan(&hotel_id, code.clone(), plan.clone())
        .await?;
    // A plan set up here names its types, so no list of the hotel's is needed.
    let view = RatePlanView::new(&code, &plan, std::iter::empty());
    Ok((upsert_status(upsert), Json(view)))
}

/// Every rate plan of the hotel, the built-in `BAR` included, by code.
#[utoipa::path(
    get,
    path = "/v1/hotels/{hotel_id}/rate-plans",
    tag = "setup",
    params(("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO")),
    responses(
        (status = 200, description = "The hotel's rate plans", body = RatePlansView),
        (status = 400, description = "invalid_request: bad hotel code", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_rate_plans(
    State(state): State<AppState>,
    ApiPath(hotel_id): ApiPath<String>,
) -> Result<Json<RatePlansView>, ApiError> {
    let hotel_id = HotelId::parse(&hotel_id)?;
    let plans = state.engine.rate_plans(&hotel_id)?;
    let hotel = state.engine.hotel(&hotel_id)?;
    let rate_plans = plans
        .iter()
        .map(|(code, plan)| RatePlanView::new(code, plan, hotel.room_types.keys()))
        .collect();
    Ok(Json(RatePlansView {
        hotel_id: hotel_id.as_str().to_owned(),
        rate_plans,
    }))
}

/// Sets stay restrictions on each date of `[from, to)` (only the listed `weekdays` when
/// given), for the listed room types and rate plans (every one the hotel has now when
/// left out). Only the fields in `set` change; a number set to `null` is cleared. Answers
/// how many cells of `[from, to)` restrict something afterwards; `GET …/restrictions`
/// lists them.
#[utoipa::path(
    put,
    path = "/v1/hotels/{hotel_id}/restrictions",
    tag = "setup",
    params(("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO")),
    request_body = PutRestrictionsRequest,
    responses(
        (status = 200, description = "Restrictions set", body = RestrictionsPutView),
        (status = 400, description = "invalid_request: bad JSON, dates or range, weekdays, an unknown room type or rate plan, a length of stay out of 1 to 730, an empty `set`, or too many cells in one change", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: no such hotel", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "limit_reached: the hotel would keep too many restriction cells", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "invalid_request: body not sent as JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded, storage_unavailable or shutting_down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_restrictions(
    State(state): State<AppState>,
    ApiPath(hotel_id): ApiPath<String>,
    ApiJson(body): ApiJson<PutRestrictionsRequest>,
) -> Result<Json<RestrictionsPutView>, ApiError> {
    let hotel_id = HotelId::parse(&hotel_id)?;
    let change = restriction_change(&hotel_id, &body)?;
    let (from, to) = (change.from, change.to);
    state.engine.set_restrictions(change).await?;
    let cells = state.engine.restrictions(&hotel_id, from, to)?.len();
    Ok(Json(RestrictionsPutView {
        hotel_id: hotel_id.as_str().to_owned(),
        from: from.to_string(),
        to: to.to_string(),
        cells,
    }))
}

/// The change a `PUT …/restrictions` body asks of `hotel_id`, every field judged (also
/// what the gRPC API's `SetRestrictions` is judged by).
pub fn restriction_change(
    hotel_id: &HotelId,
    body: &PutRestrictionsRequest,
) -> Result<RestrictionChange, ApiError> {
    let from = parse_date("from", &body.from)?;
    let to = parse_date("to", &body.to)?;
    let room_types = body
        .room_types
        .as_deref()
        .map(|list| codes(list, "room_types", RoomTypeCode::parse))
        .transpose()?;
    let rate_plans = body
        .rate_plans
        .as_deref()
        .map(|list| codes(list, "rate_plans", RatePlanCode::parse))
        .transpose()?;
    let weekdays = match &body.weekdays {
        Some(names) => Weekdays::parse(names)?,
        None => Weekdays::ALL,
    };
    let patch = body.set.to_patch()?;
    Ok(RestrictionChange {
        hotel_id: hotel_id.clone(),
        from,
        to,
        room_types,
        rate_plans,
        weekdays,
        patch,
    })
}

/// Parses each code of a list, a bad one naming the list.
fn codes<T>(
    list: &[String],
    field: &'static str,
    parse: fn(&str) -> Result<T, ValidationError>,
) -> Result<Vec<T>, ValidationError> {
    list.iter()
        .map(|raw| parse(raw).map_err(|e| ValidationError::new(field, e.reason)))
        .collect()
}

/// The restrictions on the dates of `[from, to)`: every date, room type and plan that
/// restricts something, sorted by date, room type, plan.
#[utoipa::path(
    get,
    path = "/v1/hotels/{hotel_id}/restrictions",
    tag = "setup",
    params(("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO"), RestrictionsQuery),
    responses(
        (status = 200, description = "The restrictions", body = RestrictionsView),
        (status = 400, description = "invalid_request: missing or malformed dates, a bad range, or an unknown query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: no such hotel", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_restrictions(
    State(state): State<AppState>,
    ApiPath(hotel_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<RestrictionsQuery>,
) -> Result<Json<RestrictionsView>, ApiError> {
    let hotel_id = HotelId::parse(&hotel_id)?;
    let from = query
        .from
        .as_deref()
        .ok_or_else(|| ValidationError::new("from", "is required"))?;
    let to = query
        .to
        .as_deref()
        .ok_or_else(|| ValidationError::new("to", "is required"))?;
    let from = parse_date("from", from)?;
    let to = parse_date("to", to)?;
    let cells = state.engine.restrictions(&hotel_id, from, to)?;
    Ok(Json(RestrictionsView {
        hotel_id: hotel_id.as_str().to_owned(),
        from: from.to_string(),
        to: to.to_string(),
        restrictions: cells
            .iter()
            .map(|(date, t, p, r)| RestrictionView::new(*date, t, p, r))
            .collect(),
    }))
}
