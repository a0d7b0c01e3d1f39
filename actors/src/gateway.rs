//! The payment provider, behind a trait: create a charge, ask about it, refund it.
//!
//! Calls are async and return boxed futures, so the payment supervisor holds any gateway
//! as `Arc<dyn PaymentGateway>` (the built-in [`crate::sandbox::Sandbox`], or an
//! embedder's adapter for a real provider). The supervisor wraps every call in a timeout
//! and retries with exponential backoff ([`RetryPolicy`]).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use innkeep_engine::Money;

/// What a gateway call returns: a boxed, sendable future.
pub type GatewayFuture<T> = Pin<Box<dyn Future<Output = Result<T, GatewayError>> + Send>>;

/// Why a gateway call failed. All are worth retrying later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// The provider answered with an error (a 5xx, a refusal to refund now).
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
    /// The call took longer than [`RetryPolicy::call_timeout`].
    #[error("payment provider call timed out")]
    Timeout,
}

/// A charge to create: what the guest is asked to pay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeIntent {
    /// Our reference; the provider echoes it in callbacks and answers queries by it.
    pub out_trade_no: String,
    /// How much.
    pub amount: Money,
}

/// What the provider knows about one payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayStatus {
    /// It never heard of it (the create call was lost).
    Unknown,
    /// Created, not (yet) paid.
    Pending,
    /// Money captured.
    Succeeded {
        /// The provider's reference.
        trade_no: String,
        /// What was captured.
        amount: Money,
    },
    /// The attempt failed.
    Failed {
        /// The provider's reference.
        trade_no: String,
    },
    /// Captured, then refunded.
    Refunded {
        /// The provider's reference of the captured payment.
        trade_no: String,
        /// What was captured (and given back).
        amount: Money,
    },
}

/// A refund to issue. Providers deduplicate refunds by `out_refund_no`, so retrying after
/// a lost answer is safe. A payment may be refunded more than once in parts (a difference
/// after a re-pricing, then what a cancellation fee leaves), each under its own
/// `out_refund_no`; together they never exceed what was captured for the reservation
/// (its first charge and its difference charges, `<out_trade_no>-<n>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    /// Our reference of the payment.
    pub out_trade_no: String,
    /// Our reference of this refund: `out_trade_no` for the first (and, before any
    /// re-pricing, only) one, `<out_trade_no>-<n>` for later ones.
    pub out_refund_no: String,
    /// The provider's reference of the captured payment.
    pub trade_no: Option<String>,
    /// How much to give back: the captured amount less the fee the hotel keeps.
    pub amount: Money,
    /// For a reservation of a multi-room booking (whose `out_trade_no` is the booking's
    /// one charge): its own reference, under which its difference charges were made
    /// (`<reference>-<n>`). The refund draws on those first, then on the booking's charge,
    /// so what each reservation paid comes back from where it was paid, and one whose
    /// total rose is refunded its difference even once the booking's charge is spent.
    /// `None` for a reservation booked alone (its difference charges are its payment's).
    pub difference_charges: Option<String>,
}

/// A payment provider.
pub trait PaymentGateway: Send + Sync + std::fmt::Debug {
    /// Registers a charge the guest can pay. Best effort: a lost create only means the
    /// guest cannot pay, and the hold expires.
    fn create(&self, intent: ChargeIntent) -> GatewayFuture<()>;
    /// What the provider knows about `out_trade_no` (reconciliation).
    fn query(&self, out_trade_no: String) -> GatewayFuture<GatewayStatus>;
    /// Gives captured money back. Idempotent by `out_refund_no`.
    fn refund(&self, refund: RefundRequest) -> GatewayFuture<()>;
}

/// How outbound gateway calls are bounded and retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// One call's time limit.
    pub call_timeout: Duration,
    /// Attempts per operation before giving up until the next reconciliation tick.
    pub max_attempts: u32,
    /// First backoff; doubles per attempt (plus up to half of it again as jitter).
    pub backoff_base: Duration,
    /// Longest single backoff.
    pub backoff_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(5),
            max_attempts: 4,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The pause before retry number `attempt` (1-based): `base * 2^(attempt-1)`, capped at
    /// `backoff_max`, plus a random jitter of up to half of that, so many callers that
    /// failed together do not retry together.
    pub fn backoff(&self, attempt: u32, random: u64) -> Duration {
        let exp = self
            .backoff_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.backoff_max);
        let half_ms = (exp.as_millis() as u64 / 2).max(1);
        exp + Duration::from_millis(random % half_ms)
    }

    /// Runs `call` with a timeout per attempt and backoff between attempts, up to
    /// `max_attempts`; answers the last error if every attempt failed.
    pub async fn run<T>(
        &self,
        mut call: impl FnMut() -> GatewayFuture<T>,
    ) -> Result<T, GatewayError> {
        let mut attempt = 0;
        loop {
            let result = match tokio::time::timeout(self.call_timeout, call()).await {
                Ok(r) => r,
                Err(_) => Err(GatewayError::Timeout),
            };
            match result {
                Ok(v) => return Ok(v),
                Err(e) => {
                    attempt += 1;
                    if attempt >= self.max_attempts {
                        return Err(e);
                    }
                    tokio::time::sleep(self.backoff(attempt, clock_random())).await;
                }
            }
        }
    }
}

/// A cheap random number for jitter: the clock's nanoseconds through a xorshift step.
/// Not for anything secret.
pub fn clock_random() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0x9e37_79b9, |d| d.as_nanos() as u64);
    xorshift(nanos | 1)
}

/// One xorshift64 step.
pub fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let p = RetryPolicy {
            call_timeout: Duration::from_millis(50),
            max_attempts: 3,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(400),
        };
        assert_eq!(p.backoff(1, 0), Duration::from_millis(100));
        assert_eq!(p.backoff(2, 0), Duration::from_millis(200));
        assert_eq!(p.backoff(3, 0), Duration::from_millis(400));
        assert_eq!(p.backoff(9, 0), Duration::from_millis(400));
        let j = p.backoff(2, 77);
        assert!(j >= Duration::from_millis(200) && j < Duration::from_millis(300));
    }

    #[tokio::test]
    async fn run_times_out_retries_and_gives_up() {
        let p = RetryPolicy {
            call_timeout: Duration::from_millis(20),
            max_attempts: 3,
            backoff_base: Duration::from_millis(1),
            backoff_max: Duration::from_millis(2),
        };
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let r: Result<(), _> = p
            .run(move || {
                c.fetch_add(1, Ordering::SeqCst);
                Box::pin(async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Ok(())
                })
            })
            .await;
        assert_eq!(r, Err(GatewayError::Timeout));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let c = Arc::new(AtomicU32::new(0));
        let c2 = c.clone();
        let r = p
            .run(move || {
                let n = c2.fetch_add(1, Ordering::SeqCst);
                Box::pin(async move {
                    if n == 0 {
                        Err(GatewayError::Unavailable("503".into()))
                    } else {
                        Ok(n)
                    }
                })
            })
            .await;
        assert_eq!(r, Ok(1));
    }
}
