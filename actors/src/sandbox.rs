//! The built-in sandbox payment provider (`payment.provider = "sandbox"`).
//!
//! It behaves like a real provider seen from outside: `create` registers a charge; after
//! `charge_delay` the "guest pays" and the sandbox POSTs a signed callback (the same
//! `X-Signature` format as a real provider) to our own `/v1/payments/notify`; `query`
//! answers what it charged; `refund` gives money back. Faults are injected at configured
//! rates: dropped, duplicated and reordered (held back) callbacks, extra delay, failed
//! charges, and errors on query and refund. It keeps a ledger, so tests and operators can
//! compare the money it captured with what the engine thinks.
//!
//! The callbacks travel through a [`CallbackTransport`] the caller supplies (the `innkeep`
//! binary's is an HTTP client): this crate is embedded, and an embedder that never runs the
//! sandbox should not pull an HTTP client.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use innkeep_engine::Money;
use serde::Serialize;

use crate::gateway::{
    xorshift, ChargeIntent, GatewayError, GatewayFuture, GatewayStatus, PaymentGateway,
    RefundRequest,
};

/// How the sandbox behaves. Rates are probabilities in `0.0..=1.0`.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxConfig {
    /// Where callbacks go: our own `/v1/payments/notify` URL.
    pub notify_url: String,
    /// The HMAC key callbacks are signed with (the server's `payment.secret`).
    pub secret: Vec<u8>,
    /// How long after `create` the guest "pays".
    pub charge_delay: Duration,
    /// Share of charges that fail (a `failed` callback, no money).
    pub fail_rate: f64,
    /// Share of callbacks never sent (lost); reconciliation must find these.
    pub drop_rate: f64,
    /// Share of callbacks sent twice.
    pub duplicate_rate: f64,
    /// Share of callbacks held back by an extra `2 × delay + charge_delay`, so later
    /// callbacks overtake them.
    pub reorder_rate: f64,
    /// Every callback waits a random 0..delay before it is sent.
    pub delay: Duration,
    /// Share of `query` calls answered with an error (a 5xx).
    pub query_error_rate: f64,
    /// Share of `refund` calls answered with an error (a 5xx).
    pub refund_error_rate: f64,
    /// Seed for the fault dice; `None` seeds from the clock.
    pub seed: Option<u64>,
}

impl SandboxConfig {
    /// No faults, a 1 s charge delay.
    pub fn new(notify_url: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        Self {
            notify_url: notify_url.into(),
            secret: secret.into(),
            charge_delay: Duration::from_secs(1),
            fail_rate: 0.0,
            drop_rate: 0.0,
            duplicate_rate: 0.0,
            reorder_rate: 0.0,
            delay: Duration::ZERO,
            query_error_rate: 0.0,
            refund_error_rate: 0.0,
            seed: None,
        }
    }
}

/// Where one sandbox charge stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChargeState {
    /// Created; the guest has not paid yet.
    Created,
    /// Paid: money captured.
    Captured,
    /// The payment attempt failed.
    Failed,
    /// Captured, then given back, in whole or in part (see `refunded_minor`).
    Refunded,
}

/// One charge in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerCharge {
    /// Our reference.
    pub out_trade_no: String,
    /// The sandbox's reference, once paid or failed.
    pub trade_no: Option<String>,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// Currency code.
    pub currency: String,
    /// Where it stands.
    pub state: ChargeState,
    /// Minor units given back (all of `amount_minor`, or less for a partial refund).
    pub refunded_minor: i64,
}

/// The sandbox's books: every charge and what happened to the callbacks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Ledger {
    /// Every charge, by `out_trade_no`, in creation order.
    pub charges: Vec<LedgerCharge>,
    /// Minor units ever captured (refunded ones included).
    pub captured_minor: i64,
    /// Minor units given back.
    pub refunded_minor: i64,
    /// `captured_minor - refunded_minor`: money the hotel keeps.
    pub net_captured_minor: i64,
    /// Callbacks delivered (any answer), duplicates included.
    pub callbacks_sent: u64,
    /// Callbacks dropped on purpose.
    pub callbacks_dropped: u64,
    /// Callbacks sent twice on purpose.
    pub callbacks_duplicated: u64,
    /// Callbacks held back so later ones overtake them.
    pub callbacks_reordered: u64,
    /// Callbacks our endpoint did not answer 2xx (after the sandbox's own retries).
    pub callbacks_rejected: u64,
    /// `query` calls answered with an injected error.
    pub query_errors: u64,
    /// `refund` calls answered with an injected error.
    pub refund_errors: u64,
    /// Refund calls that gave money back (a repeat of the same refund, by its
    /// `out_refund_no`, is not counted twice).
    pub refunds: u64,
    /// Charges not yet paid plus callbacks not yet delivered: zero when the sandbox has
    /// nothing more to say on its own.
    pub in_flight: u64,
}

#[derive(Debug, Default)]
struct Books {
    order: Vec<String>,
    charges: HashMap<String, LedgerCharge>,
    ledger: Ledger,
    rng: u64,
    next_trade: u64,
    /// `out_refund_no` of every refund made.
    refunds_done: HashSet<String>,
}

impl Books {
    fn roll(&mut self, rate: f64) -> bool {
        if rate <= 0.0 {
            return false;
        }
        self.rng = xorshift(self.rng);
        ((self.rng >> 11) as f64 / (1u64 << 53) as f64) < rate
    }

    fn random_below(&mut self, bound_ms: u64) -> u64 {
        if bound_ms == 0 {
            return 0;
        }
        self.rng = xorshift(self.rng);
        self.rng % bound_ms
    }
}

/// A callback that got no HTTP answer (connection refused, timed out, ...).
#[derive(Debug, thiserror::Error)]
#[error("callback not delivered: {reason}")]
pub struct TransportError {
    /// What went wrong, for the log.
    pub reason: String,
}

/// What a [`CallbackTransport`] sends: the answer's HTTP status, or why there was none.
pub type DeliveryFuture = Pin<Box<dyn Future<Output = Result<u16, TransportError>> + Send>>;

/// How the sandbox's signed callbacks reach the server: a POST of a JSON `body` to `url`
/// with the `X-Signature` header `signature`.
pub trait CallbackTransport: Send + Sync + std::fmt::Debug + 'static {
    /// Sends one callback and answers the HTTP status it got back.
    fn post(&self, url: &str, signature: String, body: String) -> DeliveryFuture;
}

/// The sandbox provider. Cheap to share (`Arc`); its tasks run on the tokio runtime that
/// polls its futures (the actor system's).
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// Its behaviour and fault rates.
    config: Arc<SandboxConfig>,
    /// The charges and the ledger, shared by its tasks.
    books: Arc<Mutex<Books>>,
    /// Where its callbacks go out.
    transport: Arc<dyn CallbackTransport>,
}

impl Sandbox {
    /// A sandbox with no charges yet, calling back through `transport`.
    pub fn new(config: SandboxConfig, transport: Arc<dyn CallbackTransport>) -> Self {
        let seed = config.seed.unwrap_or_else(crate::gateway::clock_random) | 1;
        let books = Books {
            rng: seed,
            ..Books::default()
        };
        Self {
            config: Arc::new(config),
            books: Arc::new(Mutex::new(books)),
            transport,
        }
    }

    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of the ledger.
    pub fn ledger(&self) -> Ledger {
        let books = self.books();
        let mut ledger = books.ledger.clone();
        ledger.charges = books
            .order
            .iter()
            .filter_map(|o| books.charges.get(o).cloned())
            .collect();
        ledger.net_captured_minor = ledger.captured_minor - ledger.refunded_minor;
        ledger
    }

    /// The guest pays (or fails to), then the callback goes out with the faults applied.
    async fn charge_later(self, out_trade_no: String) {
        tokio::time::sleep(self.config.charge_delay).await;
        let (body, sends) = {
            let mut books = self.books();
            let failed = books.roll(self.config.fail_rate);
            books.next_trade += 1;
            let trade_no = format!("sbx{:010}", books.next_trade);
            let Some(charge) = books.charges.get(&out_trade_no).cloned() else {
                books.ledger.in_flight -= 1;
                return;
            };
            let state = if failed {
                ChargeState::Failed
            } else {
                ChargeState::Captured
            };
            if !failed {
                books.ledger.captured_minor += charge.amount_minor;
            }
            if let Some(c) = books.charges.get_mut(&out_trade_no) {
                c.state = state;
                c.trade_no = Some(trade_no.clone());
            }
            let body = serde_json::json!({
                "out_trade_no": out_trade_no,
                "trade_no": trade_no,
                "status": if failed { "failed" } else { "succeeded" },
                "amount": charge.amount_minor,
                "currency": charge.currency,
            })
            .to_string();
            // The charge is done; what remains in flight is its callbacks.
            books.ledger.in_flight -= 1;
            if books.roll(self.config.drop_rate) {
                books.ledger.callbacks_dropped += 1;
                return;
            }
            let mut sends = vec![];
            let copies = if books.roll(self.config.duplicate_rate) {
                books.ledger.callbacks_duplicated += 1;
                2
            } else {
                1
            };
            let delay_ms = self.config.delay.as_millis() as u64;
            for _ in 0..copies {
                let mut wait = books.random_below(delay_ms + 1);
                if books.roll(self.config.reorder_rate) {
                    books.ledger.callbacks_reordered += 1;
                    wait += 2 * delay_ms + self.config.charge_delay.as_millis() as u64;
                }
                sends.push(Duration::from_millis(wait));
            }
            books.ledger.in_flight += sends.len() as u64;
            (body, sends)
        };
        for wait in sends {
            let me = self.clone();
            let body = body.clone();
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                let delivered = me.deliver(&body).await;
                let mut books = me.books();
                books.ledger.callbacks_sent += 1;
                if !delivered {
                    books.ledger.callbacks_rejected += 1;
                }
                books.ledger.in_flight -= 1;
            });
        }
    }

    /// POSTs a signed callback; retries a 5xx or a connection error a few times, as a
    /// provider does. Answers whether it got a 2xx.
    async fn deliver(&self, body: &str) -> bool {
        for attempt in 0..3u32 {
            let t = jiff::Timestamp::now().as_second();
            let header = signature_header(&self.config.secret, t, body.as_bytes());
            let sent = self
                .transport
                .post(&self.config.notify_url, header, body.to_owned())
                .await;
            match sent {
                Ok(status) if (200..300).contains(&status) => return true,
                Ok(status) if (400..500).contains(&status) => {
                    tracing::warn!(status, "sandbox callback refused");
                    return false;
                }
                Ok(_) | Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
        false
    }
}

/// `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, as a provider signs callbacks
/// ([`crate::signature::header`], the scheme our webhooks use too).
pub fn signature_header(secret: &[u8], t: i64, body: &[u8]) -> String {
    crate::signature::header(secret, t, body)
}

impl PaymentGateway for Sandbox {
    fn create(&self, intent: ChargeIntent) -> GatewayFuture<()> {
        let me = self.clone();
        Box::pin(async move {
            {
                let mut books = me.books();
                if books.charges.contains_key(&intent.out_trade_no) {
                    return Ok(());
                }
                books.order.push(intent.out_trade_no.clone());
                books.charges.insert(
                    intent.out_trade_no.clone(),
                    LedgerCharge {
                        out_trade_no: intent.out_trade_no.clone(),
                        trade_no: None,
                        amount_minor: intent.amount.amount_minor,
                        currency: intent.amount.currency.as_str().to_owned(),
                        state: ChargeState::Created,
                        refunded_minor: 0,
                    },
                );
                books.ledger.in_flight += 1;
            }
            tokio::spawn(me.clone().charge_later(intent.out_trade_no));
            Ok(())
        })
    }

    fn query(&self, out_trade_no: String) -> GatewayFuture<GatewayStatus> {
        let me = self.clone();
        Box::pin(async move {
            let mut books = me.books();
            if books.roll(me.config.query_error_rate) {
                books.ledger.query_errors += 1;
                return Err(GatewayError::Unavailable("sandbox: 503 on query".into()));
            }
            let Some(c) = books.charges.get(&out_trade_no) else {
                return Ok(GatewayStatus::Unknown);
            };
            let money = || {
                innkeep_engine::Currency::parse(&c.currency).map(|currency| Money {
                    amount_minor: c.amount_minor,
                    currency,
                })
            };
            let trade_no = c.trade_no.clone().unwrap_or_default();
            Ok(match c.state {
                ChargeState::Created => GatewayStatus::Pending,
                ChargeState::Failed => GatewayStatus::Failed { trade_no },
                ChargeState::Captured => GatewayStatus::Succeeded {
                    trade_no,
                    amount: money().map_err(|e| GatewayError::Unavailable(e.to_string()))?,
                },
                ChargeState::Refunded => GatewayStatus::Refunded {
                    trade_no,
                    amount: money().map_err(|e| GatewayError::Unavailable(e.to_string()))?,
                },
            })
        })
    }

    fn refund(&self, refund: RefundRequest) -> GatewayFuture<()> {
        let me = self.clone();
        Box::pin(async move {
            let mut books = me.books();
            if books.roll(me.config.refund_error_rate) {
                books.ledger.refund_errors += 1;
                return Err(GatewayError::Unavailable("sandbox: 503 on refund".into()));
            }
            // A repeat of a refund already made is answered as done.
            if books.refunds_done.contains(&refund.out_refund_no) {
                return Ok(());
            }
            let Some(first) = books.charges.get(&refund.out_trade_no) else {
                return Err(GatewayError::Unavailable(format!(
                    "sandbox: no charge {}",
                    refund.out_trade_no
                )));
            };
            let currency = first.currency.clone();
            // The payment's charges, oldest first: its first and its difference charges; a
            // multi-room booking's reservation's own difference charges before the
            // booking's charge.
            let prefix = format!("{}-", refund.out_trade_no);
            let own = refund.difference_charges.as_ref().map(|r| format!("{r}-"));
            let mut charges: Vec<String> = own
                .iter()
                .flat_map(|own| {
                    books
                        .order
                        .iter()
                        .filter(move |o| o.starts_with(own.as_str()))
                })
                .cloned()
                .collect();
            charges.extend(
                books
                    .order
                    .iter()
                    .filter(|o| **o == refund.out_trade_no || o.starts_with(&prefix))
                    .cloned(),
            );
            let refundable = |c: &LedgerCharge| match c.state {
                ChargeState::Captured | ChargeState::Refunded => c.amount_minor - c.refunded_minor,
                ChargeState::Created | ChargeState::Failed => 0,
            };
            let left: i64 = charges
                .iter()
                .filter_map(|o| books.charges.get(o))
                .map(refundable)
                .sum();
            if left == 0 && refund.amount.amount_minor > 0 {
                return Err(GatewayError::Unavailable(
                    "sandbox: nothing captured to refund".into(),
                ));
            }
            // Never more than is still captured for the payment (a partial refund keeps a
            // fee, or gives back a difference).
            let amount = refund.amount.amount_minor;
            if amount <= 0 || amount > left || refund.amount.currency.as_str() != currency {
                return Err(GatewayError::Unavailable(format!(
                    "sandbox: cannot refund {} {} of {} {} still captured",
                    amount, refund.amount.currency, left, currency
                )));
            }
            let mut rest = amount;
            for o in &charges {
                let Some(c) = books.charges.get_mut(o) else {
                    continue;
                };
                let take = refundable(c).min(rest);
                if take > 0 {
                    c.refunded_minor += take;
                    c.state = ChargeState::Refunded;
                    rest -= take;
                }
            }
            books.refunds_done.insert(refund.out_refund_no);
            books.ledger.refunded_minor += amount;
            books.ledger.refunds += 1;
            Ok(())
        })
    }
}
