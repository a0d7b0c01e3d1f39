//! One connection's request loop, and what it remembers about its own reservations.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use innkeep_http::wire::{ReservationStatus, ReservationView};
use jiff::civil::Date;
use jiff::Timestamp;
use serde_json::json;
use tokio::time::Instant;

use super::client::{Conn, Reply};
use super::options::{retry_after_wait, Mode, Op};
use super::stats::{Live, Outcome, Recorder};
use super::workload::{Rng, Workload};

/// A pending reservation is only paid or cancelled while its hold has at least this long
/// to run, so the generator never races the server's expiry timer.
const HOLD_MARGIN: jiff::SignedDuration = jiff::SignedDuration::from_secs(5);

/// What every worker shares.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Draws operations and stays.
    pub workload: Workload,
    /// Pacing.
    pub mode: Mode,
    /// Progress counters.
    pub live: Live,
    /// Next request ticket; a worker claims one per request.
    pub next_ticket: AtomicU64,
    /// When the load phase started (ticket 0 is due then in open loop).
    pub start: Instant,
    /// No request starts at or after this.
    pub deadline: Option<Instant>,
    /// No more than this many requests.
    pub max_requests: Option<u64>,
    /// Prefix of this run's `Idempotency-Key`s.
    pub run_tag: String,
    /// Payment secret for signing callbacks.
    pub secret: Vec<u8>,
    /// Workload seed; each worker derives its own stream from it.
    pub seed: u64,
    /// Closed loop: wait as `Retry-After` says after a `503 overloaded`.
    pub honor_retry_after: bool,
}

impl Shared {
    /// Claims the next request and returns when it is due, or `None` when the run is over.
    fn claim(&self) -> Option<Instant> {
        let k = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        if self.max_requests.is_some_and(|max| k >= max) {
            return None;
        }
        let due = match self.mode {
            Mode::Closed => Instant::now(),
            Mode::Open { rate_per_sec } => {
                self.start + Duration::from_secs_f64(k as f64 / rate_per_sec)
            }
        };
        if self.deadline.is_some_and(|d| due >= d) {
            return None;
        }
        Some(due)
    }
}

/// A reservation this generator created, as it last saw it acknowledged.
#[derive(Debug, Clone)]
pub(crate) struct Owned {
    /// Reservation id.
    pub id: String,
    /// Its hotel.
    pub hotel_id: String,
    /// Its room type.
    pub room_type: String,
    /// The room the server assigned.
    pub room: String,
    /// First night.
    pub arrival: Date,
    /// Leaving day.
    pub departure: Date,
    /// Payment reference for the callback.
    pub out_trade_no: String,
    /// What the payment must be (minor units).
    pub amount: i64,
    /// In this currency.
    pub currency: String,
    /// When the unpaid hold lapses.
    pub hold_expires_at: Timestamp,
    /// The status the server last acknowledged.
    pub acked: ReservationStatus,
    /// A change whose answer was lost (transport error, 5xx): it may or may not have
    /// happened, so the check accepts either.
    pub unsure: Option<ReservationStatus>,
    /// When a payment callback for it was acknowledged.
    pub paid_at: Option<Timestamp>,
}

impl Owned {
    /// From a booking answer.
    pub fn from_view(v: &ReservationView) -> Result<Owned, String> {
        let date = |s: &str| {
            s.parse::<Date>()
                .map_err(|e| format!("bad date {s:?}: {e}"))
        };
        Ok(Owned {
            id: v.id.clone(),
            hotel_id: v.hotel_id.clone(),
            room_type: v.room_type.clone(),
            room: v.room.clone(),
            arrival: date(&v.arrival)?,
            departure: date(&v.departure)?,
            out_trade_no: v.payment.out_trade_no.clone(),
            amount: v.total.amount,
            currency: v.total.currency.clone(),
            hold_expires_at: v
                .hold_expires_at
                .parse()
                .map_err(|e| format!("bad hold_expires_at {:?}: {e}", v.hold_expires_at))?,
            acked: v.status,
            unsure: None,
            paid_at: None,
        })
    }
}

/// A booking whose answer was lost; replaying its key at check time tells whether it
/// was created.
#[derive(Debug, Clone)]
pub(crate) struct LostBooking {
    /// The hotel it was for.
    pub hotel_id: String,
    /// Its `Idempotency-Key`.
    pub key: String,
    /// The exact body sent (a replay must match it).
    pub body: String,
}

/// What a worker hands back when the run ends.
#[derive(Debug)]
pub(crate) struct WorkerResult {
    /// Its statistics.
    pub recorder: Recorder,
    /// Every reservation it created.
    pub owned: Vec<Owned>,
    /// Bookings whose answer it never got.
    pub lost: Vec<LostBooking>,
}

struct Worker {
    shared: Arc<Shared>,
    conn: Conn,
    index: usize,
    rng: Rng,
    rec: Recorder,
    owned: Vec<Owned>,
    /// Indices into `owned` of reservations pending payment.
    pending: Vec<usize>,
    /// Indices into `owned` of confirmed reservations.
    confirmed: Vec<usize>,
    lost: Vec<LostBooking>,
    books: u64,
    /// Jitter of `Retry-After` waits: a stream of its own, so honouring `Retry-After`
    /// (whose refusals depend on timing) leaves the workload's draws as the seed made them.
    jitter: Rng,
    /// Set when the last answer was a `503 overloaded`: its `Retry-After` in seconds, if any.
    refused_retry_after: Option<Option<u64>>,
}

/// Open loop: the requests' due times, released by [`pace`], taken by whichever worker
/// is free first (tokio's mutex queues the waiting workers in order).
pub(crate) type Tickets = Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Instant>>>;

/// Open loop: hands each request to the workers at its due time, from a thread of its
/// own, until the run is over or every worker is gone. Workers sleeping on tokio's timer
/// instead woke at its next millisecond tick, which added up to a millisecond (half of one
/// on average) to every latency, since latency counts from the due time: `/healthz` at
/// 11 000/s measured a median of 1.3 ms that way. A request due while every connection is
/// busy waits in the channel (at most one per connection, then this thread waits too);
/// its latency still counts from its due time.
pub(crate) fn pace(shared: &Shared, tickets: &tokio::sync::mpsc::Sender<Instant>) {
    while let Some(due) = shared.claim() {
        let wait = due
            .into_std()
            .saturating_duration_since(std::time::Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        if tickets.blocking_send(due).is_err() {
            return;
        }
    }
}

/// Runs one connection's share of the load until the run is over, recording into `rec`;
/// in open loop, each request when `tickets` releases it.
pub(crate) async fn run_worker(
    shared: Arc<Shared>,
    conn: Conn,
    index: usize,
    rec: Recorder,
    tickets: Option<Tickets>,
) -> WorkerResult {
    let seed = shared
        .seed
        .wrapping_add((index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut w = Worker {
        shared,
        conn,
        index,
        rng: Rng::new(seed),
        rec,
        owned: Vec::new(),
        pending: Vec::new(),
        confirmed: Vec::new(),
        lost: Vec::new(),
        books: 0,
        jitter: Rng::new(seed ^ 0x5265_7472_792d_4166),
        refused_retry_after: None,
    };
    let honor = w.shared.honor_retry_after && matches!(w.shared.mode, Mode::Closed);
    // Bounded: `claim` stops at the request count or the deadline, and so does `pace`.
    loop {
        let next = match &tickets {
            None => w.shared.claim(),
            Some(tickets) => tickets.lock().await.recv().await,
        };
        let Some(due) = next else { break };
        if tickets.is_some() {
            let now = Instant::now();
            if w.shared.deadline.is_some_and(|d| now >= d) {
                // Due before the end but every connection was busy until then: the run
                // is over, so it is never sent (counted, so a backlog is visible).
                w.rec.unsent += 1;
                continue;
            }
            w.rec.record_lag(now.saturating_duration_since(due));
        }
        w.one(due).await;
        if let Some(retry_after) = w.refused_retry_after.take() {
            if honor {
                // Back off as the server asked (the refused request is not retried: the
                // next one is a fresh draw), but never past the end of the run, so a wait
                // does not stretch the measured duration.
                let mut until = Instant::now() + retry_after_wait(retry_after, w.jitter.unit());
                if let Some(deadline) = w.shared.deadline {
                    until = until.min(deadline);
                }
                tokio::time::sleep_until(until).await;
            }
        }
    }
    WorkerResult {
        recorder: w.rec,
        owned: w.owned,
        lost: w.lost,
    }
}

/// Removes `value` from `list` (order does not matter).
fn remove(list: &mut Vec<usize>, value: usize) {
    if let Some(pos) = list.iter().position(|v| *v == value) {
        list.swap_remove(pos);
    }
}

impl Worker {
    /// A pending reservation whose hold has time left, dropping ones about to lapse.
    fn pick_pending(&mut self) -> Option<usize> {
        let soon = Timestamp::now().checked_add(HOLD_MARGIN).ok()?;
        for _ in 0..self.pending.len() {
            let pos = self.rng.below(self.pending.len() as u64) as usize;
            let i = self.pending[pos];
            if self.owned[i].hold_expires_at > soon {
                return Some(i);
            }
            // It will expire; leave it to the server's timer.
            self.pending.swap_remove(pos);
        }
        None
    }

    /// A live reservation to cancel: pending (with time left) or confirmed.
    fn pick_live(&mut self) -> Option<usize> {
        let total = (self.pending.len() + self.confirmed.len()) as u64;
        if total == 0 {
            return None;
        }
        let r = self.rng.below(total) as usize;
        if r < self.confirmed.len() {
            return Some(self.confirmed[r]);
        }
        self.pick_pending()
            .or_else(|| self.confirmed.first().copied())
    }

    async fn one(&mut self, due: Instant) {
        let op = self.shared.workload.op(&mut self.rng);
        match op {
            Op::Availability => self.availability(due).await,
            Op::Health => self.health(due).await,
            Op::Book => self.book(due).await,
            Op::Pay => match self.pick_pending() {
                Some(i) => self.pay(due, i).await,
                None => {
                    self.rec.fallbacks += 1;
                    self.book(due).await
                }
            },
            Op::Cancel => match self.pick_live() {
                Some(i) => self.cancel(due, i).await,
                None => {
                    self.rec.fallbacks += 1;
                    self.book(due).await
                }
            },
        }
    }

    /// Latency base: the due time in open loop (no coordinated omission), the actual
    /// send in closed loop (where they are the same instant).
    fn record(&mut self, op: Op, due: Instant, reply: &Result<Reply, String>, outcome: Outcome) {
        let latency = Instant::now().saturating_duration_since(due);
        let (status, code) = match reply {
            Ok(r) => {
                let code = r.code();
                if r.status == 503 && code.as_deref() == Some("overloaded") {
                    self.refused_retry_after = Some(r.retry_after_secs);
                }
                (Some(r.status), code)
            }
            Err(_) => (None, None),
        };
        self.rec.record(
            &self.shared.live,
            op,
            latency,
            status,
            code.as_deref(),
            &outcome,
        );
    }

    async fn availability(&mut self, due: Instant) {
        let s = self.shared.workload.stay(&mut self.rng);
        let hotel = &self.shared.workload.hotels()[s.hotel];
        let path = format!(
            "/v1/hotels/{}/availability?arrival={}&departure={}&guests={}",
            hotel.id, s.arrival, s.departure, s.guests
        );
        let reply = self.conn.get(&path).await;
        let outcome = match &reply {
            Ok(r) if r.status == 200 => Outcome::Ok,
            Ok(r) if r.refused() && r.is(503, "overloaded") => Outcome::Overloaded,
            Ok(r) if r.throttled() => Outcome::Throttled,
            Ok(r) => Outcome::Unexpected(r.key()),
            Err(e) => Outcome::Transport(e.clone()),
        };
        self.record(Op::Availability, due, &reply, outcome);
    }

    async fn health(&mut self, due: Instant) {
        let reply = self.conn.get("/healthz").await;
        let outcome = match &reply {
            Ok(r) if r.status == 200 => Outcome::Ok,
            Ok(r) => Outcome::Unexpected(r.key()),
            Err(e) => Outcome::Transport(e.clone()),
        };
        self.record(Op::Health, due, &reply, outcome);
    }

    async fn book(&mut self, due: Instant) {
        let s = self.shared.workload.stay(&mut self.rng);
        let hotel = &self.shared.workload.hotels()[s.hotel];
        let hotel_id = hotel.id.clone();
        let body = json!({
            "room_type": hotel.types[s.room_type].code,
            "arrival": s.arrival.to_string(),
            "departure": s.departure.to_string(),
            "guests": s.guests,
            "guest": {
                "name": "Load Guest",
                "phone": "+86 138 0000 0000",
                "email": "load@example.com",
            },
        })
        .to_string();
        self.books += 1;
        let key = format!("{}-{}-{}", self.shared.run_tag, self.index, self.books);
        let reply = self
            .conn
            .post(
                &format!("/v1/hotels/{hotel_id}/reservations"),
                body.clone(),
                &[("idempotency-key", &key)],
            )
            .await;
        let outcome = match &reply {
            Ok(r) if r.status == 201 => {
                match r
                    .json::<ReservationView>()
                    .and_then(|v| Owned::from_view(&v))
                {
                    Ok(o) => {
                        self.pending.push(self.owned.len());
                        self.owned.push(o);
                        self.rec.booked += 1;
                        Outcome::Ok
                    }
                    Err(e) => {
                        // Created, but unreadable: replay the key at check time.
                        self.lost.push(LostBooking {
                            hotel_id,
                            key,
                            body,
                        });
                        Outcome::Unexpected(format!("201 {e}"))
                    }
                }
            }
            Ok(r) if r.is(409, "sold_out") => Outcome::SoldOut,
            Ok(r) if r.throttled() => Outcome::Throttled,
            Ok(r) if r.refused() => {
                if r.is(503, "overloaded") {
                    Outcome::Overloaded
                } else {
                    Outcome::Unexpected(r.key())
                }
            }
            Ok(r) => {
                if r.status >= 500 {
                    self.lost.push(LostBooking {
                        hotel_id,
                        key,
                        body,
                    });
                }
                Outcome::Unexpected(r.key())
            }
            Err(e) => {
                self.lost.push(LostBooking {
                    hotel_id,
                    key,
                    body,
                });
                Outcome::Transport(e.clone())
            }
        };
        self.record(Op::Book, due, &reply, outcome);
    }

    async fn pay(&mut self, due: Instant, i: usize) {
        let o = &self.owned[i];
        let body = json!({
            "out_trade_no": o.out_trade_no,
            "trade_no": format!("LT-{}", o.id),
            "status": "succeeded",
            "amount": o.amount,
            "currency": o.currency,
        })
        .to_string();
        let t = Timestamp::now().as_second();
        let sig = innkeep_http::routes::payments::signature_header(
            &self.shared.secret,
            t,
            body.as_bytes(),
        );
        let reply = self
            .conn
            .post("/v1/payments/notify", body, &[("x-signature", &sig)])
            .await;
        let outcome = match &reply {
            Ok(r) if r.status == 200 => {
                let o = &mut self.owned[i];
                o.acked = ReservationStatus::Confirmed;
                o.paid_at = Some(Timestamp::now());
                remove(&mut self.pending, i);
                self.confirmed.push(i);
                self.rec.paid += 1;
                Outcome::Ok
            }
            Ok(r) if r.refused() && r.is(503, "overloaded") => Outcome::Overloaded,
            Ok(r) if r.throttled() => Outcome::Throttled,
            Ok(r) if r.refused() => Outcome::Unexpected(r.key()),
            Ok(r) => {
                if r.status >= 500 {
                    self.unsure(i, ReservationStatus::Confirmed);
                }
                Outcome::Unexpected(r.key())
            }
            Err(e) => {
                self.unsure(i, ReservationStatus::Confirmed);
                Outcome::Transport(e.clone())
            }
        };
        self.record(Op::Pay, due, &reply, outcome);
    }

    async fn cancel(&mut self, due: Instant, i: usize) {
        let path = format!("/v1/reservations/{}/cancel", self.owned[i].id);
        let reply = self.conn.post(&path, String::new(), &[]).await;
        let outcome = match &reply {
            Ok(r) if r.status == 200 => {
                self.owned[i].acked = r
                    .json::<ReservationView>()
                    .map(|v| v.status)
                    .unwrap_or(ReservationStatus::Cancelled);
                remove(&mut self.pending, i);
                remove(&mut self.confirmed, i);
                self.rec.cancelled += 1;
                Outcome::Ok
            }
            Ok(r) if r.refused() && r.is(503, "overloaded") => Outcome::Overloaded,
            Ok(r) if r.throttled() => Outcome::Throttled,
            Ok(r) if r.refused() => Outcome::Unexpected(r.key()),
            Ok(r) => {
                if r.status >= 500 {
                    self.unsure(i, ReservationStatus::Cancelled);
                } else {
                    // Refused (e.g. invalid_transition): do not try this one again.
                    remove(&mut self.pending, i);
                    remove(&mut self.confirmed, i);
                }
                Outcome::Unexpected(r.key())
            }
            Err(e) => {
                self.unsure(i, ReservationStatus::Cancelled);
                Outcome::Transport(e.clone())
            }
        };
        self.record(Op::Cancel, due, &reply, outcome);
    }

    /// A change to reservation `i` may or may not have happened: remember both, and
    /// leave the reservation alone from now on.
    fn unsure(&mut self, i: usize, maybe: ReservationStatus) {
        self.owned[i].unsure = Some(maybe);
        remove(&mut self.pending, i);
        remove(&mut self.confirmed, i);
    }
}
