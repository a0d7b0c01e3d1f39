//! `/v1/webhooks`: signed outbound webhooks (see [`crate::webhooks`]). Admin keys only;
//! a key sees and changes only webhooks whose hotels it covers (`"*"`: a key for every
//! hotel), others answer 404 as if they did not exist, and naming a hotel outside the key
//! is 403.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use crate::auth::Caller;
use crate::constraints::Code;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::webhooks::{
    DeliveriesView, PutWebhookRequest, ReplayRequest, WebhookList, WebhookView, Webhooks,
};
use crate::AppState;

fn webhooks(state: &AppState) -> Result<&Webhooks, ApiError> {
    state
        .webhooks
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("webhooks are not enabled on this server".into()))
}

/// Creates or replaces a webhook.
#[utoipa::path(
    put,
    path = "/v1/webhooks/{name}",
    tag = "webhooks",
    params(("name" = Code, Path, description = "The webhook's name", example = "crm")),
    request_body = PutWebhookRequest,
    responses(
        (status = 201, description = "Webhook created; it sends the events committed from now on", body = WebhookView),
        (status = 200, description = "Webhook replaced; delivery continues from its cursor under the new definition", body = WebhookView),
        (status = 400, description = "invalid_request: bad JSON or name; a URL that is not https (or http to a loopback host), has credentials or a fragment, or names a private address (unless allow_private); an unknown event type; a secret or list out of bounds", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden: a hotel (or \"*\") the key does not cover, or a key that is not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: webhooks are not enabled on this server", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "limit_reached: 64 webhooks exist", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "invalid_request: body not sent as JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "storage_unavailable: the webhook could not be written; nothing changed", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_webhook(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<PutWebhookRequest>,
) -> Result<(StatusCode, Json<WebhookView>), ApiError> {
    let (created, view) = webhooks(&state)?
        .put(&caller.principal, &name, body)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}

/// Every webhook the key may see (secrets are never shown).
#[utoipa::path(
    get,
    path = "/v1/webhooks",
    tag = "webhooks",
    responses(
        (status = 200, description = "The webhooks, by name", body = WebhookList),
        (status = 404, description = "not_found: webhooks are not enabled on this server", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<WebhookList>, ApiError> {
    Ok(Json(WebhookList {
        webhooks: webhooks(&state)?.list(&caller.principal),
    }))
}

/// One webhook (its secret is never shown).
#[utoipa::path(
    get,
    path = "/v1/webhooks/{name}",
    tag = "webhooks",
    params(("name" = Code, Path, description = "The webhook's name", example = "crm")),
    responses(
        (status = 200, description = "The webhook", body = WebhookView),
        (status = 400, description = "invalid_request: bad name", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: no such webhook, or one with hotels the key does not cover", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_webhook(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<WebhookView>, ApiError> {
    Ok(Json(webhooks(&state)?.show(&caller.principal, &name)?))
}

/// Deletes a webhook; its deliveries stop.
#[utoipa::path(
    delete,
    path = "/v1/webhooks/{name}",
    tag = "webhooks",
    params(("name" = Code, Path, description = "The webhook's name", example = "crm")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "invalid_request: bad name", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: no such webhook, or one with hotels the key does not cover", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "storage_unavailable: its file could not be deleted; nothing changed", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    webhooks(&state)?.delete(&caller.principal, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The delivery state: cursor, newest attempts, dead letters.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{name}/deliveries",
    tag = "webhooks",
    params(("name" = Code, Path, description = "The webhook's name", example = "crm")),
    responses(
        (status = 200, description = "Cursor, newest attempts (newest first) and dead letters", body = DeliveriesView),
        (status = 400, description = "invalid_request: bad name", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: no such webhook, or one with hotels the key does not cover", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn webhook_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<DeliveriesView>, ApiError> {
    Ok(Json(
        webhooks(&state)?.deliveries(&caller.principal, &name)?,
    ))
}

/// Sends the matching events again from `from_event_id` on.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{name}/replay",
    tag = "webhooks",
    params(("name" = Code, Path, description = "The webhook's name", example = "crm")),
    request_body = ReplayRequest,
    responses(
        (status = 200, description = "Delivery restarts after `from_event_id - 1`; the delivery state", body = DeliveriesView),
        (status = 400, description = "invalid_request: bad JSON or name", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: no such webhook, or one with hotels the key does not cover", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "event_unavailable: the journal no longer holds that event, or it does not exist yet", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "invalid_request: body not sent as JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "storage_unavailable: the cursor could not be written, or the journal could not be read; nothing changed", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn replay_webhook(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<ReplayRequest>,
) -> Result<Json<DeliveriesView>, ApiError> {
    Ok(Json(
        webhooks(&state)?
            .replay(&caller.principal, &name, body.from_event_id)
            .await?,
    ))
}
