//! Prometheus metrics: the process-wide recorder, per-request counting (for the router's
//! outer layer), and `GET /metrics`.
//!
//! Every crate records through the `metrics` facade (the journal its batch sizes and fsync
//! latency, the snapshot writer its durations, the engine its bookings and expired holds); this
//! module installs the one Prometheus recorder they all feed, once per process, and renders
//! it. Mailbox depth is not measured directly: calls into the engine are bounded by an
//! in-flight counter, not by mailbox length, so the honest equivalents exported are that
//! counter (`innkeep_engine_in_flight`) and the journal's queue (`innkeep_journal_queue_depth`),
//! both read at scrape time.

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::{MatchedPath, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::AppState;

/// Counter of HTTP requests by `method`, `route` (the matched path template, or
/// `unmatched`) and `status`.
pub const METRIC_REQUESTS: &str = "innkeep_http_requests_total";
/// Histogram of request latency in seconds, labelled like [`METRIC_REQUESTS`].
pub const METRIC_REQUEST_SECONDS: &str = "innkeep_http_request_duration_seconds";
/// Counter of authenticated requests by `key` (the key's name, else its id).
pub const METRIC_REQUESTS_BY_KEY: &str = "innkeep_http_requests_by_key_total";
/// Counter of payment callbacks by `outcome`.
pub const METRIC_PAYMENT_CALLBACKS: &str = "innkeep_payment_callbacks_total";
/// Gauge: engine calls in flight (bounded by `max_in_flight`).
pub const METRIC_ENGINE_IN_FLIGHT: &str = "innkeep_engine_in_flight";
/// Gauge: events waiting for the journal writer.
pub const METRIC_JOURNAL_QUEUE: &str = "innkeep_journal_queue_depth";

/// The media type of the Prometheus text format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Buckets for latencies in seconds: 50 µs to 10 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];
/// Buckets for batch sizes: the journal's, in records (the writer's cap is 4096), and the
/// shards' booking batches, in bookings.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// How often histograms are compacted when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder as the process's `metrics` recorder, once; later calls
/// return the same handle. `None` if another recorder was installed first (an embedder's);
/// then `/metrics` serves an empty document and the embedder's recorder gets the data.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(innkeep_actors::METRIC_BATCH_RECORDS.to_owned()),
                        BATCH_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(innkeep_actors::METRIC_BOOKING_BATCH.to_owned()),
                        BATCH_BUCKETS,
                    )
                });
            let handle = match builder.and_then(PrometheusBuilder::install_recorder) {
                Ok(handle) => handle,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed; /metrics stays empty");
                    return None;
                }
            };
            // Histogram samples pile up until rendered; compact them even if no one scrapes.
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("innkeep-metrics".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "metrics upkeep thread not started");
            }
            Some(handle)
        })
        .as_ref()
}

/// A request's counter and latency histogram, resolved once per label set.
struct RequestMetrics {
    count: metrics::Counter,
    seconds: metrics::Histogram,
}

/// Per route template, the handles resolved so far by method and status.
type RequestMetricsCache =
    std::collections::HashMap<String, Vec<(axum::http::Method, u16, RequestMetrics)>>;

thread_local! {
    /// This thread's request metric handles, by route template, then method and status.
    /// Resolving a handle builds its labels and looks them up in the recorder, several
    /// allocations per request; the label sets are few (routes × methods × statuses), so
    /// each thread resolves each once.
    static REQUEST_METRICS: std::cell::RefCell<RequestMetricsCache> =
        std::cell::RefCell::default();
}

/// Counts one request and records its latency, labelled with the matched route template
/// (never the raw URI, which would make one series per reservation id), the method and
/// the status.
pub(crate) fn record(
    method: &axum::http::Method,
    route: Option<&MatchedPath>,
    status: axum::http::StatusCode,
    elapsed: Duration,
) {
    let route = route.map_or("unmatched", MatchedPath::as_str);
    let status = status.as_u16();
    REQUEST_METRICS.with_borrow_mut(|cache| {
        let by_route = match cache.get_mut(route) {
            Some(by_route) => by_route,
            None => cache.entry(route.to_owned()).or_default(),
        };
        let at = match by_route
            .iter()
            .position(|(m, s, _)| m == method && *s == status)
        {
            Some(at) => at,
            None => {
                let labels = [
                    ("method", method.as_str().to_owned()),
                    ("route", route.to_owned()),
                    ("status", status.to_string()),
                ];
                let resolved = RequestMetrics {
                    count: metrics::counter!(METRIC_REQUESTS, &labels),
                    seconds: metrics::histogram!(METRIC_REQUEST_SECONDS, &labels),
                };
                by_route.push((method.clone(), status, resolved));
                by_route.len() - 1
            }
        };
        let handles = &by_route[at].2;
        handles.count.increment(1);
        handles.seconds.record(elapsed.as_secs_f64());
    });
}

/// The router of a separate metrics address (`metrics_listen`): `GET /metrics` without a
/// key, for a scraper on a network the operator trusts, and nothing else (every other path
/// is 404), so the address exposes no API.
pub fn metrics_router(state: AppState) -> axum::Router {
    install();
    axum::Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .with_state(state)
}

/// Prometheus text exposition of every metric this process records.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    metrics::gauge!(METRIC_ENGINE_IN_FLIGHT).set(state.engine.in_flight() as f64);
    metrics::gauge!(METRIC_JOURNAL_QUEUE).set(state.engine.journal_queue_len() as f64);
    let body = match install() {
        Some(handle) => {
            handle.run_upkeep();
            handle.render()
        }
        None => String::new(),
    };
    let mut res = body.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROMETHEUS_TEXT),
    );
    res
}
