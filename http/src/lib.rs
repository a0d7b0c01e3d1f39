//! `innkeep-http`: Innkeep's HTTP API v1 on axum.
//!
//! [`router`] builds the whole API over an [`innkeep_actors::Engine`]: the routes of the
//! design's "HTTP API v1" section, problem+json errors ([`ApiError`]), the signed payment
//! callback, `/healthz`, `/readyz`, `/metrics` and a generated `/openapi.json`, wrapped in
//! the request-id, tracing, metrics, authentication ([`auth`]), rate-limit and deadline
//! ([`limits`]) and body-limit middleware. The caller binds a listener and serves the
//! router on it with [`serve::serve`], which bounds connections and their timeouts.

use std::fmt;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use innkeep_actors::Engine;
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::{DefaultOnFailure, TraceLayer};

pub mod auth;
pub mod cluster;
pub mod constraints;
pub mod error;
pub mod extract;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod serve;
pub mod webhooks;
pub mod wire;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod auth_tests;

#[cfg(test)]
mod serve_tests;

pub use auth::{ApiKey, AuthConfig, HotelScope, Role};
pub use error::{ApiError, Problem, BODY_LIMIT_BYTES, PROBLEM_JSON};
pub use limits::HttpLimits;
pub use serve::{ClientAddr, ConnectionLimits, Connections};

/// Header carrying the request id, in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest client-supplied request id kept; longer ones are replaced by a fresh id so a
/// client cannot bloat every log line.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Default for [`PaymentConfig::tolerance_secs`]: how far a callback's timestamp may be
/// from our clock (the design's 300 s).
pub const DEFAULT_SIGNATURE_TOLERANCE_SECS: u64 = 300;

/// How payment-provider callbacks are authenticated.
#[derive(Clone)]
pub struct PaymentConfig {
    /// The HMAC-SHA256 key shared with the provider. An empty secret authenticates nothing,
    /// so with one every callback is refused.
    pub secret: Vec<u8>,
    /// The key before the last rotation, still accepted so callbacks signed while the
    /// provider switches over are not lost.
    pub previous_secret: Option<Vec<u8>>,
    /// Most seconds a callback's `t=` may differ from our clock; bounds replay of a
    /// captured callback.
    pub tolerance_secs: u64,
}

impl PaymentConfig {
    /// A config with one secret and the default tolerance.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self {
            secret: secret.into(),
            previous_secret: None,
            tolerance_secs: DEFAULT_SIGNATURE_TOLERANCE_SECS,
        }
    }

    /// Also accepts signatures made with `previous`, for key rotation.
    pub fn with_previous_secret(mut self, previous: impl Into<Vec<u8>>) -> Self {
        self.previous_secret = Some(previous.into());
        self
    }
}

impl fmt::Debug for PaymentConfig {
    // Secrets never reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaymentConfig")
            .field("secret", &"<redacted>")
            .field(
                "previous_secret",
                &self.previous_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("tolerance_secs", &self.tolerance_secs)
            .finish()
    }
}

/// What every handler can reach. One reference count to clone: axum clones it for every
/// request (each `State` extractor and middleware), and a count shared by every shard's
/// thread is a contended cache line, so it is one count, not one per field.
#[derive(Clone, Debug)]
pub struct AppState(Arc<StateParts>);

/// The parts of an [`AppState`], reached through it (`state.engine`).
#[derive(Clone, Debug)]
pub struct StateParts {
    /// The engine every route calls; readiness is `engine.is_ready()`.
    pub engine: Engine,
    /// Callback authentication.
    pub payment: Arc<PaymentConfig>,
    /// API keys, rate limiter and request deadline.
    pub security: Arc<limits::Security>,
    /// The built-in sandbox provider when it is the configured one, so
    /// `GET /v1/payments/sandbox/ledger` can show its books; `None` answers that route 404.
    pub sandbox: Option<innkeep_actors::Sandbox>,
    /// Cancelled when the server begins to shut down: every event stream ends then, or
    /// graceful shutdown would wait on them forever.
    pub streams: tokio_util::sync::CancellationToken,
    /// Outbound webhooks; `None` (an embedder's router without a data dir for them)
    /// answers the `/v1/webhooks` routes 404.
    pub webhooks: Option<webhooks::Webhooks>,
}

impl std::ops::Deref for AppState {
    type Target = StateParts;

    fn deref(&self) -> &StateParts {
        &self.0
    }
}

impl AppState {
    /// State for [`router`]: no API keys (open: every request may do everything, so serve
    /// it only on loopback) and the default [`HttpLimits`].
    pub fn new(engine: Engine, payment: PaymentConfig) -> Self {
        Self(Arc::new(StateParts {
            engine,
            payment: Arc::new(payment),
            security: Arc::new(limits::Security::new(
                AuthConfig::open(),
                HttpLimits::default(),
            )),
            sandbox: None,
            streams: tokio_util::sync::CancellationToken::new(),
            webhooks: None,
        }))
    }

    /// The same state serving `webhooks` at `/v1/webhooks`.
    pub fn with_webhooks(self, webhooks: webhooks::Webhooks) -> Self {
        let mut parts = Arc::unwrap_or_clone(self.0);
        parts.webhooks = Some(webhooks);
        Self(Arc::new(parts))
    }

    /// The same state showing `sandbox`'s ledger at `GET /v1/payments/sandbox/ledger`.
    pub fn with_sandbox(self, sandbox: innkeep_actors::Sandbox) -> Self {
        let mut parts = Arc::unwrap_or_clone(self.0);
        parts.sandbox = Some(sandbox);
        Self(Arc::new(parts))
    }

    /// The same state with these API keys and limits.
    pub fn with_security(self, auth: AuthConfig, limits: HttpLimits) -> Self {
        let mut parts = Arc::unwrap_or_clone(self.0);
        parts.security = Arc::new(limits::Security::new(auth, limits));
        Self(Arc::new(parts))
    }

    /// The same state on a node of `cluster`: only its own hotels are served, any other is
    /// 421 `misdirected`, and `/readyz?partition=` answers for its partitions. Keys and
    /// limits as set before (this starts fresh rate-limit buckets).
    pub fn in_cluster(self, cluster: cluster::Cluster) -> Self {
        let mut parts = Arc::unwrap_or_clone(self.0);
        let security = limits::Security::new(parts.security.auth.clone(), parts.security.limits);
        parts.security = Arc::new(security.in_cluster(cluster));
        Self(Arc::new(parts))
    }
}

/// The whole HTTP API v1 with its middleware, ready to serve.
pub fn router(state: AppState) -> Router {
    // Installed before the first request so the first scrape already sees everything.
    metrics::install();
    let (api, doc) = openapi::api_router().split_for_parts();
    let docs = openapi::doc_router(doc);
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
    let checks = limits::RouteChecks {
        engine: state.engine.clone(),
        security: state.security.clone(),
        timeout: state.security.limits.request_timeout,
    };
    // Each `route_layer` or `layer` call boxes every route once more, and every request
    // clones the boxes it passes through: so one route layer (shed, guard, deadline) and
    // one layer stack.
    api.with_state(state)
        .merge(docs)
        .route_layer(axum::middleware::from_fn_with_state(
            checks,
            limits::route_checks,
        ))
        .fallback(routes::ops::route_not_found)
        .method_not_allowed_fallback(routes::ops::method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .map_request(drop_unusable_request_id)
                .layer(SetRequestIdLayer::new(
                    request_id.clone(),
                    MakeRequestUuidV7,
                ))
                .layer(PropagateRequestIdLayer::new(request_id))
                // A 5xx is counted by `observe` (and a storage failure logged where it
                // happens); logging each at ERROR, tower-http's default, turned load shedding
                // into a log flood: thousands of 503 `overloaded` lines a second, written by
                // the shards themselves, which fell behind a slow log reader (BENCHMARKS.md,
                // ninth session).
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_span)
                        .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
                )
                .layer(axum::middleware::from_fn(observe))
                .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES)),
        )
}

/// Removes an incoming `x-request-id` that is empty, too long, repeated or not visible
/// ASCII, so [`SetRequestIdLayer`] replaces it with a fresh one.
fn drop_unusable_request_id(mut req: Request) -> Request {
    let mut values = req.headers().get_all(REQUEST_ID_HEADER).iter();
    let usable = match (values.next(), values.next()) {
        (None, _) => return req,
        (Some(v), None) => is_usable_request_id(v),
        (Some(_), Some(_)) => false,
    };
    if !usable {
        req.headers_mut().remove(REQUEST_ID_HEADER);
    }
    req
}

fn is_usable_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= MAX_REQUEST_ID_LEN && b.iter().all(|c| (0x21..=0x7e).contains(c))
}

/// Generates request ids: UUIDv7, so ids sort by time in logs.
#[derive(Clone, Copy, Debug, Default)]
struct MakeRequestUuidV7;

impl MakeRequestId for MakeRequestUuidV7 {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let id = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut text);
        HeaderValue::from_str(id).ok().map(RequestId::new)
    }
}

fn request_span(req: &axum::http::Request<Body>) -> tracing::Span {
    let request_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        request_id,
        method = %req.method(),
        path = %req.uri().path(),
        principal = tracing::field::Empty,
    )
}

/// Counts and times every request ([`metrics::record`]) and fills in a
/// problem's `instance` with the request path. Only error responses are touched (they
/// carry their [`Problem`] as an extension).
async fn observe(req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    // A `Uri` clone shares its bytes; the path is copied only for a problem.
    let uri = req.uri().clone();
    let mut res = next.run(req).await;
    metrics::record(&method, route.as_ref(), res.status(), started.elapsed());
    if let Some(mut problem) = res.extensions_mut().remove::<Problem>() {
        problem.instance = Some(uri.path().to_owned());
        if let Ok(body) = serde_json::to_vec(&problem) {
            res.headers_mut().remove(axum::http::header::CONTENT_LENGTH);
            *res.body_mut() = Body::from(body);
        }
    }
    res
}
