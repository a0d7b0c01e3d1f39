//! Request limits: a token bucket per API key (or client IP), and a deadline per request.
//!
//! The other limits live elsewhere: the 1 MiB body limit in the router, the connection
//! limits and timeouts in [`crate::serve`], the engine's in-flight bound (503
//! `overloaded`) and the hold cap per key (429 `too_many_holds`) in `innkeep-actors`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::AuthConfig;
use crate::error::ApiError;

/// Default for [`HttpLimits::rate_per_second`].
pub const DEFAULT_RATE_PER_SECOND: u32 = 200;
/// Default for [`HttpLimits::burst`].
pub const DEFAULT_BURST: u32 = 400;
/// Default for [`HttpLimits::request_timeout`], in milliseconds.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 5_000;

/// Buckets kept before idle ones are dropped; bounds the limiter's memory when many
/// client addresses come and go.
const MAX_BUCKETS: usize = 100_000;

/// Name of the counter of requests refused by the rate limiter, by key label.
pub const METRIC_RATE_LIMITED: &str = "innkeep_http_rate_limited_total";

/// The HTTP layer's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Requests per second each key (or client IP) may make on average.
    pub rate_per_second: u32,
    /// Requests a key may make at once after being idle (the bucket's size).
    pub burst: u32,
    /// How long a request may take before it is answered 503 `timeout`.
    pub request_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            rate_per_second: DEFAULT_RATE_PER_SECOND,
            burst: DEFAULT_BURST,
            request_timeout: Duration::from_millis(DEFAULT_REQUEST_TIMEOUT_MS),
        }
    }
}

/// Whose bucket a request spends from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BucketKey {
    /// An API key, by its id.
    Key(String),
    /// A request without a usable key, by client IP.
    Ip(IpAddr),
    /// A request without a key whose client address is unknown (a router served without
    /// connect info, as in tests): all such share one bucket.
    Unknown,
}

impl BucketKey {
    /// The bucket of an anonymous client.
    pub fn from_ip(ip: Option<IpAddr>) -> Self {
        ip.map_or(BucketKey::Unknown, BucketKey::Ip)
    }
}

/// One token bucket.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Tokens left (fractional: refill is continuous).
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Instant,
}

/// Token buckets by [`BucketKey`]: each holds up to `burst` tokens and refills at
/// `rate_per_second`; a request takes one token or is refused with the time until one is
/// there.
#[derive(Debug)]
pub struct RateLimiter {
    /// Refill per second.
    rate: f64,
    /// Bucket size.
    burst: f64,
    /// The buckets; the lock is held for a few hundred nanoseconds per request.
    buckets: Mutex<HashMap<BucketKey, Bucket>>,
}

impl RateLimiter {
    /// A limiter refilling `rate_per_second` into buckets of `burst` (both at least 1).
    pub fn new(rate_per_second: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rate_per_second.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token from `key`'s bucket at `now`, or says how long until there is one.
    pub fn check(&self, key: &BucketKey, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(key) {
            // A bucket that has refilled completely is the same as no bucket.
            let full_after = Duration::from_secs_f64(self.burst / self.rate);
            buckets.retain(|_, b| now.saturating_duration_since(b.at) < full_after);
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now.max(bucket.at);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }
}

/// Everything the guard and the deadline need: the keys, the limiter, the limits.
#[derive(Debug)]
pub struct Security {
    /// The configured keys (none: open mode).
    pub auth: AuthConfig,
    /// The limits.
    pub limits: HttpLimits,
    /// The token buckets.
    pub limiter: RateLimiter,
    /// In a cluster, which hotels this node serves: a request for any other hotel is 421
    /// `misdirected`. `None` on a node of its own, which serves every hotel.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl Security {
    /// Keys and limits.
    pub fn new(auth: AuthConfig, limits: HttpLimits) -> Self {
        Self {
            auth,
            limiter: RateLimiter::new(limits.rate_per_second, limits.burst),
            limits,
            cluster: None,
        }
    }

    /// The same keys and limits on a node of `cluster`, serving only its own hotels.
    pub fn in_cluster(self, cluster: crate::cluster::Cluster) -> Self {
        Self {
            cluster: Some(Arc::new(cluster)),
            ..self
        }
    }

    /// Spends one request from `key`'s bucket; 429 `rate_limited` when it is empty.
    /// `label` names the caller in the metric.
    pub fn spend(&self, key: &BucketKey, label: &str) -> Result<(), ApiError> {
        self.limiter.check(key, Instant::now()).map_err(|wait| {
            metrics::counter!(METRIC_RATE_LIMITED, "key" => label.to_owned()).increment(1);
            ApiError::RateLimited {
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            }
        })
    }
}

/// What every matched route goes through before its handler, in one layer (see
/// [`route_checks`]).
#[derive(Clone, Debug)]
pub struct RouteChecks {
    /// Whose saturation sheds requests.
    pub engine: innkeep_actors::Engine,
    /// Keys, roles and rate limits.
    pub security: std::sync::Arc<Security>,
    /// The request deadline ([`HttpLimits::request_timeout`]).
    pub timeout: Duration,
}

/// In order: an overloaded shard sheds an API request at once (503 `overloaded` with
/// `Retry-After`) while the engine's calls in flight on this shard are at their bound,
/// before it is authenticated or its body parsed: under overload a refusal must cost
/// little, or refusing becomes the work (the engine's own admission still decides every
/// call that gets through; only `/v1/` routes are shed, never health, readiness, metrics
/// or the static pages); then the guard (authentication, rate limit,
/// hotel and role checks, [`crate::auth::authorize`]); then the [`deadline`] around the
/// handler. One layer rather than three: every layer boxes each route once more, and every
/// request clones the boxes it passes.
pub async fn route_checks(State(checks): State<RouteChecks>, req: Request, next: Next) -> Response {
    if checks.engine.is_saturated() && req.uri().path().starts_with("/v1/") {
        metrics::counter!(METRIC_SHED).increment(1);
        return ApiError::Engine(innkeep_actors::EngineError::Overloaded).into_response();
    }
    let req = match crate::auth::authorize(&checks.security, req).await {
        Ok(req) => req,
        Err(refused) => return refused,
    };
    with_deadline(checks.timeout, next.run(req)).await
}

/// Counter of API requests shed before reaching a handler ([`shed`]).
pub const METRIC_SHED: &str = "innkeep_http_requests_shed_total";

/// The request deadline: a handler still running after `request_timeout` is dropped and
/// the client gets 503 `timeout`. Dropping the handler does not undo an engine call
/// already sent: it may still complete (bookings are idempotent by key, so a retry with
/// the same `Idempotency-Key` learns its outcome).
pub async fn deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    with_deadline(limit, next.run(req)).await
}

/// `handler`'s response, or 503 `timeout` once `limit` has passed (see [`deadline`]).
async fn with_deadline(
    limit: Duration,
    handler: impl std::future::Future<Output = Response>,
) -> Response {
    within_deadline(limit, handler)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// What `work` comes to, or [`ApiError::Timeout`] once `limit` has passed (the request
/// deadline, for any transport): `work` is dropped then.
pub async fn within_deadline<T>(
    limit: Duration,
    work: impl std::future::Future<Output = T>,
) -> Result<T, ApiError> {
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| ApiError::Timeout {
            timeout_ms: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_past_the_deadline_is_a_timeout() {
        let e = within_deadline(Duration::from_millis(10), std::future::pending::<()>())
            .await
            .unwrap_err();
        assert_eq!(e.code(), "timeout");
        assert!(matches!(e, ApiError::Timeout { timeout_ms: 10 }), "{e:?}");
        assert_eq!(
            within_deadline(Duration::from_secs(60), async { 7 })
                .await
                .unwrap(),
            7
        );
    }

    #[test]
    fn token_bucket_refills_at_the_rate() {
        let limiter = RateLimiter::new(2, 3);
        let t0 = Instant::now();
        let k = BucketKey::Key("a".into());
        for _ in 0..3 {
            assert!(limiter.check(&k, t0).is_ok());
        }
        let wait = limiter.check(&k, t0).unwrap_err();
        assert!(wait <= Duration::from_millis(500) && wait > Duration::ZERO);
        // Another key has its own bucket.
        assert!(limiter.check(&BucketKey::Unknown, t0).is_ok());
        // Half a second later one token is back, not two.
        let t1 = t0 + Duration::from_millis(500);
        assert!(limiter.check(&k, t1).is_ok());
        assert!(limiter.check(&k, t1).is_err());
        // Long idle: full again, but never more than the burst.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(limiter.check(&k, t2).is_ok());
        }
        assert!(limiter.check(&k, t2).is_err());
    }
}
