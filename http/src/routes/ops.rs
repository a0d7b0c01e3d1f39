//! Operations: liveness, readiness, and the answers for unknown routes and methods.

use axum::extract::State;
use axum::Json;

use crate::error::{ApiError, Problem};
use crate::extract::ApiQuery;
use crate::wire::{HealthView, ReadyQuery};
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

/// Readiness: 200 once recovery is done, the journal is healthy and (a node of a cluster
/// with NATS) each of its partitions' leases was tried for, else 503 `not_ready`, so a
/// load balancer sends traffic only to an engine that can take it. With `partition`
/// (a node of a cluster): 200 only on the node serving that partition now, else 503
/// `not_owner`, so a proxy's health check sends each partition's traffic to its owner.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    params(ReadyQuery),
    responses(
        (status = 200, description = "Recovered and accepting work (for `partition`: and serving it)", body = HealthView),
        (status = 400, description = "invalid_request: a malformed query", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: `partition` given on a node outside a cluster, or naming no partition of the cluster", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "not_ready, or not_owner: another node serves `partition`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn readyz(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ReadyQuery>,
) -> Result<Json<HealthView>, ApiError> {
    if let Some(partition) = &query.partition {
        let cluster =
            state.security.cluster.as_ref().ok_or_else(|| {
                ApiError::NotFound("this node is not part of a cluster".to_owned())
            })?;
        match cluster.owns(partition) {
            None => return Err(ApiError::NotFound(format!("no partition {partition:?}"))),
            Some(false) => {
                return Err(ApiError::NotOwner {
                    partition: partition.clone(),
                })
            }
            Some(true) => {}
        }
    }
    // With leases, not before each of this node's partitions has tried for its own.
    let leases_settled = state
        .security
        .cluster
        .as_ref()
        .and_then(|c| c.leases())
        .is_none_or(|l| l.settled());
    if state.engine.is_ready() && leases_settled {
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
