//! The one error type every handler returns, rendered as RFC 9457 `application/problem+json`
//! with a stable snake_case `code` clients can switch on.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use innkeep_actors::EngineError;
use innkeep_engine::{DomainError, NightConflict, ValidationError};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use utoipa::ToSchema;

/// The media type of every error body (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Largest request body accepted, in bytes (1 MiB). Bounds memory per request; nothing in
/// the API needs more.
pub const BODY_LIMIT_BYTES: usize = 1 << 20;

/// Seconds a client should wait before retrying a 503 caused by load.
const RETRY_AFTER_OVERLOADED_SECS: u64 = 1;
/// Seconds a client should wait before retrying when storage or readiness is the problem;
/// longer than for load because a stuck disk or a recovery does not clear in a moment.
const RETRY_AFTER_UNAVAILABLE_SECS: u64 = 5;

/// Why a request failed. Each variant maps to one HTTP status and one stable `code`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The engine refused or could not do the work (domain rules, overload, storage,
    /// shutdown). Its own `code()` is the API code.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Malformed input the engine never saw: bad JSON, unknown fields, wrong types, bad
    /// path or query values, bad headers (400 `invalid_request`).
    #[error("{0}")]
    InvalidRequest(String),
    /// The body is not declared as JSON where JSON is required (415 `invalid_request`).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body is over [`BODY_LIMIT_BYTES`] (413 `payload_too_large`).
    #[error("request body is larger than {limit_bytes} bytes")]
    PayloadTooLarge {
        /// The limit that was exceeded, so the client knows what fits.
        limit_bytes: usize,
    },
    /// A payment callback's `X-Signature` is missing, malformed, wrong or stale
    /// (401 `bad_signature`). Deliberately carries no detail on which check failed.
    #[error("missing, malformed, wrong or expired X-Signature")]
    BadSignature,
    /// A payment callback's amount or currency differs from what the reservation owes
    /// (422 `amount_mismatch`).
    #[error("{0}")]
    AmountMismatch(String),
    /// Something the HTTP layer itself could not find: an unknown route or payment
    /// reference (404 `not_found`).
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not with this method (405 `method_not_allowed`).
    #[error("this method is not allowed on this resource")]
    MethodNotAllowed,
    /// A webhook replay from an event the journal no longer holds or that does not exist
    /// yet (409 `event_unavailable`).
    #[error("{0}")]
    EventUnavailable(String),
    /// Recovery is not done or the journal is unhealthy (503 `not_ready`).
    #[error("the engine is not ready to accept work")]
    NotReady,
    /// No API key, a malformed `Authorization` header, or a key that is not configured
    /// (401 `unauthorized`, with `WWW-Authenticate: Bearer`).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The key is valid and may see the resource, but its role may not do this
    /// (403 `forbidden`).
    #[error("this API key's role may not do this")]
    Forbidden,
    /// The caller's token bucket is empty (429 `rate_limited`, with `Retry-After`).
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited {
        /// Whole seconds until a request will be accepted again.
        retry_after_secs: u64,
    },
    /// In a cluster, a hotel this node does not serve (421 `misdirected`): its partition is
    /// served by `owner`, or by no node when no partition holds it. Nothing was done.
    #[error("{}", misdirected_detail(hotel, owner.as_ref()))]
    Misdirected {
        /// The hotel asked for.
        hotel: String,
        /// Where it is served, when some node serves it.
        owner: Option<crate::cluster::Owner>,
    },
    /// In a cluster, a partition this node does not serve now (503 `not_owner`).
    #[error("this node does not serve partition {partition}")]
    NotOwner {
        /// The partition asked about.
        partition: String,
    },
    /// The request did not finish within the configured deadline (503 `timeout`, with
    /// `Retry-After`). A change the engine was making may still complete; a retry of a
    /// booking with the same `Idempotency-Key` answers with its outcome.
    #[error("the request did not finish within {timeout_ms} ms; a change may still complete, retry with the same Idempotency-Key")]
    Timeout {
        /// The deadline that passed.
        timeout_ms: u64,
    },
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        ApiError::Engine(EngineError::Domain(e))
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::Engine(EngineError::Domain(DomainError::Invalid(e)))
    }
}

impl ApiError {
    /// The stable snake_case code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Engine(e) => e.code(),
            ApiError::InvalidRequest(_) | ApiError::UnsupportedMediaType(_) => "invalid_request",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::BadSignature => "bad_signature",
            ApiError::AmountMismatch(_) => "amount_mismatch",
            ApiError::NotFound(_) => "not_found",
            ApiError::EventUnavailable(_) => "event_unavailable",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::NotReady => "not_ready",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Timeout { .. } => "timeout",
            ApiError::Misdirected { .. } => "misdirected",
            ApiError::NotOwner { .. } => "not_owner",
        }
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Engine(EngineError::Domain(d)) => domain_status(d),
            ApiError::Engine(
                EngineError::Overloaded
                | EngineError::Unavailable(_)
                | EngineError::ShuttingDown
                | EngineError::NotOwner(_),
            )
            | ApiError::NotReady
            | ApiError::NotOwner { .. }
            | ApiError::Timeout { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Engine(EngineError::TooManyHolds { .. }) | ApiError::RateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BadSignature => StatusCode::UNAUTHORIZED,
            ApiError::AmountMismatch(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::EventUnavailable(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Misdirected { .. } => StatusCode::MISDIRECTED_REQUEST,
        }
    }

    /// Seconds to put in `Retry-After`, for errors a client should simply retry.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::Engine(EngineError::Overloaded) | ApiError::Timeout { .. } => {
                Some(RETRY_AFTER_OVERLOADED_SECS)
            }
            ApiError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            ApiError::Engine(
                EngineError::Unavailable(_) | EngineError::ShuttingDown | EngineError::NotOwner(_),
            )
            | ApiError::NotReady
            | ApiError::NotOwner { .. } => Some(RETRY_AFTER_UNAVAILABLE_SECS),
            _ => None,
        }
    }

    /// The problem document for this error, without `instance` (the router's middleware
    /// fills that in from the request path).
    pub fn problem(&self) -> Problem {
        let status = self.status();
        let code = self.code();
        let detail = match self {
            // Storage internals (paths, OS errors) are for the operator's log, not clients.
            ApiError::Engine(EngineError::Unavailable(_)) => {
                "storage is unavailable; the change was not made".to_owned()
            }
            other => other.to_string(),
        };
        let conflicts = match self {
            ApiError::Engine(EngineError::Domain(DomainError::NightsSold(list))) => {
                Some(list.iter().map(ConflictView::from).collect())
            }
            _ => None,
        };
        let reasons = match self {
            ApiError::Engine(EngineError::Domain(DomainError::Restricted(list))) => {
                Some(list.iter().map(|r| r.code().to_owned()).collect())
            }
            _ => None,
        };
        let nights = match self {
            ApiError::Engine(EngineError::Domain(DomainError::SoldOutOn(list))) => {
                Some(list.iter().map(ToString::to_string).collect())
            }
            _ => None,
        };
        let room_types = match self {
            ApiError::Engine(EngineError::Domain(DomainError::SoldOutTypes(list))) => {
                Some(list.iter().map(|t| t.as_str().to_owned()).collect())
            }
            _ => None,
        };
        let owner = match self {
            ApiError::Misdirected { owner, .. } => owner.clone(),
            _ => None,
        };
        Problem {
            type_uri: format!("urn:innkeep:problem:{code}"),
            title: title(code).to_owned(),
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
            instance: None,
            conflicts,
            reasons,
            nights,
            room_types,
            owner,
        }
    }
}

fn misdirected_detail(hotel: &str, owner: Option<&crate::cluster::Owner>) -> String {
    match owner {
        Some(owner) => format!("hotel {hotel} is not served by this node: {owner}"),
        None => format!("no partition of the cluster holds hotel {hotel}"),
    }
}

fn domain_status(d: &DomainError) -> StatusCode {
    match d {
        DomainError::Invalid(_) => StatusCode::BAD_REQUEST,
        DomainError::InvalidStay(_)
        | DomainError::IdempotencyKeyReused
        | DomainError::Restricted(_)
        | DomainError::RatePlan(_) => StatusCode::UNPROCESSABLE_ENTITY,
        DomainError::NotFound(_) => StatusCode::NOT_FOUND,
        DomainError::SoldOut
        | DomainError::InvalidTransition { .. }
        | DomainError::RoomNotReady { .. }
        | DomainError::NotWithinStay
        | DomainError::RoomInUse(_)
        | DomainError::CurrencyLocked
        | DomainError::LimitReached(_)
        | DomainError::NightsSold(_)
        | DomainError::MoveInProgress
        | DomainError::SoldOutOn(_)
        | DomainError::SoldOutTypes(_)
        | DomainError::PaymentInProgress => StatusCode::CONFLICT,
        DomainError::VersionMismatch { .. } => StatusCode::PRECONDITION_FAILED,
    }
}

/// A short, fixed, human-readable summary per code (RFC 9457 `title` must not vary between
/// occurrences of the same problem type).
fn title(code: &str) -> &'static str {
    match code {
        "invalid_request" => "Invalid request",
        "invalid_stay" => "Invalid stay",
        "not_found" => "Not found",
        "sold_out" => "Sold out",
        "invalid_transition" => "Invalid transition",
        "version_mismatch" => "Version mismatch",
        "room_not_ready" => "Room not ready",
        "not_within_stay" => "Not within the stay",
        "room_in_use" => "Room in use",
        "currency_locked" => "Currency locked",
        "limit_reached" => "Limit reached",
        "idempotency_key_reused" => "Idempotency key reused",
        "payload_too_large" => "Payload too large",
        "bad_signature" => "Bad signature",
        "amount_mismatch" => "Amount mismatch",
        "method_not_allowed" => "Method not allowed",
        "overloaded" => "Overloaded",
        "storage_unavailable" => "Storage unavailable",
        "shutting_down" => "Shutting down",
        "not_ready" => "Not ready",
        "unauthorized" => "Unauthorized",
        "forbidden" => "Forbidden",
        "rate_limited" => "Rate limited",
        "too_many_holds" => "Too many holds",
        "timeout" => "Timeout",
        "nights_sold" => "Nights sold",
        "move_in_progress" => "Move in progress",
        "restricted" => "Restricted",
        "payment_in_progress" => "Payment in progress",
        "event_unavailable" => "Event unavailable",
        "misdirected" => "Misdirected",
        "not_owner" => "Not owner",
        _ => "Error",
    }
}

/// An RFC 9457 problem document: the body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type, `urn:innkeep:problem:<code>`, so generic RFC 9457
    /// clients can tell problems apart.
    #[serde(rename = "type")]
    #[schema(rename = "type", example = "urn:innkeep:problem:sold_out")]
    pub type_uri: String,
    /// A short summary of the problem type; the same for every occurrence.
    #[schema(example = "Sold out")]
    pub title: String,
    /// The HTTP status, repeated so the body stands on its own (e.g. in logs).
    #[schema(example = 409)]
    pub status: u16,
    /// What went wrong this time, for humans.
    pub detail: String,
    /// The stable snake_case code programs switch on.
    #[schema(example = "sold_out")]
    pub code: String,
    /// The request path the problem occurred on.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "/v1/hotels/H1/reservations")]
    pub instance: Option<String>,
    /// For `nights_sold`: everything holding the nights asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflicts: Option<Vec<ConflictView>>,
    /// For `restricted`: why the stay cannot be sold under the plan, as stable codes
    /// (`closed`, `closed_to_arrival`, `closed_to_departure`, `min_stay_arrival`,
    /// `max_stay_arrival`, `min_stay_through`, `min_advance`, `max_advance`), sorted.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = json!(["closed_to_arrival"]))]
    pub reasons: Option<Vec<String>>,
    /// For a modification's `sold_out`: the nights of the new stay on which no room of
    /// the type is free (`YYYY-MM-DD`, sorted; empty when every night has a free room
    /// but no one room has them all).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<crate::constraints::CivilDate>>, example = json!(["2026-12-25"]))]
    pub nights: Option<Vec<String>>,
    /// For a multi-room booking's `sold_out`: the room types it asks more rooms of than
    /// are free for the stay, each once, in the order the request first names them.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = json!(["KING"]))]
    pub room_types: Option<Vec<String>>,
    /// For `misdirected`: the node serving the hotel's partition, when one does; send the
    /// request there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<crate::cluster::Owner>,
}

/// Something holding nights a request needed (in a `nights_sold` problem).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ConflictView {
    /// `reservation` or `out_of_order`.
    #[schema(example = "reservation")]
    pub kind: String,
    /// The reservation's id (for `reservation`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<String>,
    /// The reservation's status (for `reservation`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// First night it holds in the room (`YYYY-MM-DD`).
    pub from: String,
    /// First night it no longer holds (`YYYY-MM-DD`): the departure, or the end of the range.
    pub to: String,
}

impl From<&NightConflict> for ConflictView {
    fn from(c: &NightConflict) -> Self {
        match c {
            NightConflict::Reservation {
                id,
                first_night,
                departure,
                status,
            } => Self {
                kind: "reservation".into(),
                reservation_id: Some(id.to_string()),
                status: Some(status.as_str().into()),
                from: first_night.to_string(),
                to: departure.to_string(),
            },
            NightConflict::OutOfOrder { from, to } => Self {
                kind: "out_of_order".into(),
                reservation_id: None,
                status: None,
                from: from.to_string(),
                to: to.to_string(),
            },
        }
    }
}

impl Problem {
    /// Renders the problem as a complete response with the given status.
    pub fn into_response_with(self, status: StatusCode, retry_after_secs: Option<u64>) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut res = (status, body).into_response();
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = retry_after_secs {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        // Kept so the router's middleware can re-render it with `instance` set.
        res.extensions_mut().insert(self);
        res
    }
}

/// The requests refused with 503 `overloaded` since the last line about them.
static SHED: ShedLog = ShedLog::new();

/// Says at most once a second how many requests were shed. An overloaded server refuses
/// thousands of requests a second; a log line for each (formatted and written by the shard
/// that refused it) spent the CPU the server was short of, exactly when it was short of
/// it. Each is counted in `innkeep_http_requests_total` by status anyway.
#[derive(Debug)]
struct ShedLog {
    /// Refusals not yet reported.
    unreported: AtomicU64,
    /// The Unix second of the last report (0: none yet).
    reported_secs: AtomicU64,
}

impl ShedLog {
    const fn new() -> Self {
        Self {
            unreported: AtomicU64::new(0),
            reported_secs: AtomicU64::new(0),
        }
    }

    /// Counts one refusal at Unix second `now_secs`; returns how many to report (this one
    /// included) when no report was made yet in this second.
    fn refused(&self, now_secs: u64) -> Option<u64> {
        self.unreported.fetch_add(1, Ordering::Relaxed);
        let last = self.reported_secs.load(Ordering::Relaxed);
        (now_secs > last
            && self
                .reported_secs
                .compare_exchange(last, now_secs, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok())
        .then(|| self.unreported.swap(0, Ordering::Relaxed))
    }
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // A standby's `/readyz?partition=` is 503 `not_owner` at every health check of the
        // proxy: its normal state, not a failure to log.
        match &self {
            ApiError::NotOwner { .. } => {}
            ApiError::Engine(EngineError::Overloaded) => {
                if let Some(refused) = SHED.refused(unix_secs()) {
                    tracing::warn!(
                        code = self.code(),
                        refused,
                        "shedding load: requests refused since the last such line"
                    );
                }
            }
            _ if status.is_server_error() => {
                tracing::warn!(code = self.code(), error = %self, "request failed");
            }
            _ => {}
        }
        let retry = self.retry_after_secs();
        let challenge = match &self {
            ApiError::Unauthorized(_) => Some(HeaderValue::from_static("Bearer realm=\"innkeep\"")),
            _ => None,
        };
        let mut res = self.problem().into_response_with(status, retry);
        if let Some(challenge) = challenge {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::ShedLog;

    #[test]
    fn refusals_are_reported_at_most_once_a_second_with_their_count() {
        let log = ShedLog::new();
        // The first refusal is reported at once.
        assert_eq!(log.refused(100), Some(1));
        // The rest of that second only counts.
        assert_eq!(log.refused(100), None);
        assert_eq!(log.refused(100), None);
        // The next second reports them, with the one that reports.
        assert_eq!(log.refused(101), Some(3));
        assert_eq!(log.refused(101), None);
        // A clock stepping back reports nothing until it passes the last report.
        assert_eq!(log.refused(99), None);
        assert_eq!(log.refused(102), Some(3));
    }
}
