//! Operations: liveness, readiness, and the answers for unknown routes and methods.

use axum::extract::State;
use axum::Json;

use crate::error::{ApiError, Problem};
use crate::wire::HealthView;
use crate::AppState;

/// Liveness: 200 whenever the process can answer at all.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process is up", body = HealthView))
)]
pub async fn healthz() -> Json<HealthView> {
    Json(HealthView {
        status: "ok".to_owned(),
    })
}

/// Readiness: 200 once recovery is done and the journal is healthy, else 503 `not_ready`,
/// so a load balancer sends traffic only to an engine that can take it.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Recovered and accepting work", body = HealthView),
        (status = 503, description = "not_ready", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<HealthView>, ApiError> {
    if state.engine.is_ready() {
        Ok(Json(HealthView {
            status: "ok".to_owned(),
        }))
    } else {
        Err(ApiError::NotReady)
    }
}

/// The answer for a path no route matches: 404 `not_found` as problem+json.
pub async fn route_not_found() -> ApiError {
    ApiError::NotFound("no such route".to_owned())
}

/// The answer for a known path with a method it does not support: 405 `method_not_allowed`.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
