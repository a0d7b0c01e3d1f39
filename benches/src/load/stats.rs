//! Recording a run (per-worker [`Recorder`]s, merged at the end) and the report it
//! produces ([`LoadReport`], as text or JSON).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::client::refused;
use super::options::Op;

/// Highest latency the histograms resolve (60 s); longer ones are recorded as 60 s.
const MAX_LATENCY_US: u64 = 60_000_000;

/// A send that starts more than this after its due time counts as late (open loop).
/// Above tokio's 1 ms timer resolution, so a late send means every connection was busy
/// (or the generator was short of CPU), not that the timer rounded up.
pub const LATE_AFTER_US: u64 = 2_000;

/// True when a request was admitted: every request except one answered with a refusal
/// before the engine ([`refused`]: 503 `overloaded`, `not_ready`, `shutting_down`). A
/// request without an answer (transport error) counts as admitted: it may have reached the
/// engine, and leaving it out would hide a server that admits and then stalls. A `429` is
/// admitted too (the server's rate or hold policy answered it, not its load shedding).
pub(crate) fn admitted(status: Option<u16>, code: Option<&str>) -> bool {
    status.is_none_or(|s| !refused(s, code))
}

/// True when an answer counts toward goodput: a success (any 2xx) or `409 sold_out`, the
/// definite "no" to a booking (for a booking: 201 + 409 `sold_out`). Every other answer
/// (refusals, 429, other 4xx, 5xx including 503 `timeout`) and transport errors do not.
pub(crate) fn good(status: Option<u16>, code: Option<&str>) -> bool {
    match status {
        Some(s) if (200..300).contains(&s) => true,
        Some(409) => code == Some("sold_out"),
        _ => false,
    }
}

fn histogram() -> Histogram<u64> {
    // Three significant digits over 1 µs..60 s.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant bounds are valid")
}

/// Counters shared with the progress line while the run goes on.
#[derive(Debug, Default)]
pub struct Live {
    /// Requests answered (or failed) so far.
    pub done: AtomicU64,
    /// Unexpected outcomes so far.
    pub errors: AtomicU64,
    /// `409 sold_out` answers so far.
    pub sold_out: AtomicU64,
    /// `503 overloaded` answers so far.
    pub overloaded: AtomicU64,
    /// `429` answers so far.
    pub throttled: AtomicU64,
}

/// How a request ended, as far as statistics care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The answer the operation hopes for (200/201).
    Ok,
    /// `409 sold_out` on a booking: an expected answer under load, not an error.
    SoldOut,
    /// `503 overloaded`: the server's backpressure; counted by code, not an error.
    Overloaded,
    /// `429` (`rate_limited`, `too_many_holds`): the server's policy refused the request;
    /// counted by code, not an error.
    Throttled,
    /// Any other answer: an error, keyed by `"<status> <code>"`.
    Unexpected(String),
    /// No answer: connection error or timeout.
    Transport(String),
}

/// One worker's statistics. Workers record without sharing; [`Recorder::merge`] adds
/// them up at the end.
#[derive(Debug)]
pub struct Recorder {
    per_op: Vec<Histogram<u64>>,
    all: Histogram<u64>,
    /// Latency of admitted requests (see [`admitted`]), per operation.
    per_op_admitted: Vec<Histogram<u64>>,
    all_admitted: Histogram<u64>,
    /// Answers that count toward goodput (see [`good`]), per operation.
    per_op_good: Vec<u64>,
    statuses: BTreeMap<u16, u64>,
    codes: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    transport_errors: u64,
    sold_out: u64,
    overloaded: u64,
    throttled: u64,
    /// Reservations created (201).
    pub booked: u64,
    /// Payment callbacks acknowledged (200).
    pub paid: u64,
    /// Cancellations acknowledged (200).
    pub cancelled: u64,
    /// Pay or cancel draws that found no reservation to act on and booked instead.
    pub fallbacks: u64,
    /// Open loop: sends that started more than [`LATE_AFTER_US`] after their due time.
    pub late_sends: u64,
    /// Open loop: the largest delay between a due time and the actual send.
    pub max_send_lag_us: u64,
    /// Open loop: requests due before the end of the run that were never sent because
    /// every connection was busy until the end.
    pub unsent: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            per_op: Op::ALL.iter().map(|_| histogram()).collect(),
            all: histogram(),
            per_op_admitted: Op::ALL.iter().map(|_| histogram()).collect(),
            all_admitted: histogram(),
            per_op_good: vec![0; Op::ALL.len()],
            statuses: BTreeMap::new(),
            codes: BTreeMap::new(),
            errors: BTreeMap::new(),
            transport_errors: 0,
            sold_out: 0,
            overloaded: 0,
            throttled: 0,
            booked: 0,
            paid: 0,
            cancelled: 0,
            fallbacks: 0,
            late_sends: 0,
            max_send_lag_us: 0,
            unsent: 0,
        }
    }
}

impl Recorder {
    /// Records one finished request: its latency, status, problem code and outcome.
    pub fn record(
        &mut self,
        live: &Live,
        op: Op,
        latency: Duration,
        status: Option<u16>,
        code: Option<&str>,
        outcome: &Outcome,
    ) {
        let us = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        self.per_op[op.index()].saturating_record(us);
        self.all.saturating_record(us);
        if admitted(status, code) {
            self.per_op_admitted[op.index()].saturating_record(us);
            self.all_admitted.saturating_record(us);
        }
        if good(status, code) {
            self.per_op_good[op.index()] += 1;
        }
        if let Some(s) = status {
            *self.statuses.entry(s).or_default() += 1;
        }
        if let Some(c) = code {
            *self.codes.entry(c.to_owned()).or_default() += 1;
        }
        match outcome {
            Outcome::Ok => {}
            Outcome::SoldOut => {
                self.sold_out += 1;
                live.sold_out.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Overloaded => {
                self.overloaded += 1;
                live.overloaded.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Throttled => {
                self.throttled += 1;
                live.throttled.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Unexpected(key) => {
                *self.errors.entry(format!("{op}: {key}")).or_default() += 1;
                live.errors.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Transport(what) => {
                self.transport_errors += 1;
                *self
                    .errors
                    .entry(format!("{op}: transport {what}"))
                    .or_default() += 1;
                live.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        live.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Records how late an open-loop send started.
    pub fn record_lag(&mut self, lag: Duration) {
        let us = lag.as_micros() as u64;
        if us > LATE_AFTER_US {
            self.late_sends += 1;
        }
        self.max_send_lag_us = self.max_send_lag_us.max(us);
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: Recorder) {
        for (mine, theirs) in self.per_op.iter_mut().zip(&other.per_op) {
            // Same bounds on both sides; a failed add would only lose statistics.
            let _ = mine.add(theirs);
        }
        let _ = self.all.add(&other.all);
        for (mine, theirs) in self.per_op_admitted.iter_mut().zip(&other.per_op_admitted) {
            let _ = mine.add(theirs);
        }
        let _ = self.all_admitted.add(&other.all_admitted);
        for (mine, theirs) in self.per_op_good.iter_mut().zip(&other.per_op_good) {
            *mine += theirs;
        }
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in other.codes {
            *self.codes.entry(k).or_default() += v;
        }
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.transport_errors += other.transport_errors;
        self.sold_out += other.sold_out;
        self.overloaded += other.overloaded;
        self.throttled += other.throttled;
        self.booked += other.booked;
        self.paid += other.paid;
        self.cancelled += other.cancelled;
        self.fallbacks += other.fallbacks;
        self.late_sends += other.late_sends;
        self.max_send_lag_us = self.max_send_lag_us.max(other.max_send_lag_us);
        self.unsent += other.unsent;
    }

    /// The report's statistics part, for a run that lasted `elapsed`.
    pub(crate) fn summarize(&self, elapsed: Duration) -> Summary {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let stats = |h: &Histogram<u64>, a: &Histogram<u64>, good: u64| OpStats {
            requests: h.len(),
            throughput_rps: h.len() as f64 / secs,
            latency: LatencySummary::of(h),
            admitted: AdmittedStats {
                requests: a.len(),
                throughput_rps: a.len() as f64 / secs,
                latency: LatencySummary::of(a),
                goodput: good,
                goodput_rps: good as f64 / secs,
            },
        };
        let goodput: u64 = self.per_op_good.iter().sum();
        Summary {
            duration_secs: elapsed.as_secs_f64(),
            requests: self.all.len(),
            throughput_rps: self.all.len() as f64 / secs,
            goodput,
            goodput_rps: goodput as f64 / secs,
            overall: stats(&self.all, &self.all_admitted, goodput),
            operations: Op::ALL
                .iter()
                .map(|op| {
                    let i = op.index();
                    let s = stats(
                        &self.per_op[i],
                        &self.per_op_admitted[i],
                        self.per_op_good[i],
                    );
                    (op.name().to_owned(), s)
                })
                .collect(),
            statuses: self
                .statuses
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            codes: self.codes.clone(),
            errors: self.errors.values().sum(),
            errors_by_kind: self.errors.clone(),
            transport_errors: self.transport_errors,
            bookings: BookingCounts {
                made: self.booked,
                sold_out: self.sold_out,
                paid: self.paid,
                cancelled: self.cancelled,
                fallbacks: self.fallbacks,
            },
            overloaded: self.overloaded,
            throttled: self.throttled,
        }
    }
}

/// The statistics part of a report; the fields mean what [`LoadReport`]'s namesakes mean.
pub(crate) struct Summary {
    /// See [`LoadReport::duration_secs`].
    pub duration_secs: f64,
    /// See [`LoadReport::requests`].
    pub requests: u64,
    /// See [`LoadReport::throughput_rps`].
    pub throughput_rps: f64,
    /// See [`LoadReport::goodput`].
    pub goodput: u64,
    /// See [`LoadReport::goodput_rps`].
    pub goodput_rps: f64,
    /// See [`LoadReport::overall`].
    pub overall: OpStats,
    /// See [`LoadReport::operations`].
    pub operations: BTreeMap<String, OpStats>,
    /// See [`LoadReport::statuses`].
    pub statuses: BTreeMap<String, u64>,
    /// See [`LoadReport::codes`].
    pub codes: BTreeMap<String, u64>,
    /// See [`LoadReport::errors`].
    pub errors: u64,
    /// See [`LoadReport::errors_by_kind`].
    pub errors_by_kind: BTreeMap<String, u64>,
    /// See [`LoadReport::transport_errors`].
    pub transport_errors: u64,
    /// See [`LoadReport::bookings`].
    pub bookings: BookingCounts,
    /// See [`LoadReport::overloaded`].
    pub overloaded: u64,
    /// See [`LoadReport::throttled`].
    pub throttled: u64,
}

/// Latency percentiles of one operation (or all), in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile: the tail a busy front end feels.
    pub p999_us: u64,
    /// Slowest request.
    pub max_us: u64,
    /// Arithmetic mean.
    pub mean_us: f64,
}

impl LatencySummary {
    fn of(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary {
                p50_us: 0,
                p90_us: 0,
                p99_us: 0,
                p999_us: 0,
                max_us: 0,
                mean_us: 0.0,
            };
        }
        LatencySummary {
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: h.mean(),
        }
    }
}

/// Count, rate and latency of one operation (or all).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpStats {
    /// Requests finished (every answer, refusals included, and transport errors).
    pub requests: u64,
    /// Requests per second over the run.
    pub throughput_rps: f64,
    /// Latency percentiles of all those requests.
    pub latency: LatencySummary,
    /// The same for the admitted requests only, with goodput.
    pub admitted: AdmittedStats,
}

/// Count, rate and latency of the admitted requests of one operation (or all): every
/// request except those the server refused before the engine (503 `overloaded`,
/// `not_ready`, `shutting_down`). Transport errors, 429s and every other answer count as
/// admitted. Under load shedding this is the latency of the work the server took on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdmittedStats {
    /// Admitted requests.
    pub requests: u64,
    /// Admitted requests per second over the run.
    pub throughput_rps: f64,
    /// Latency percentiles of the admitted requests.
    pub latency: LatencySummary,
    /// Admitted answers that count toward goodput: a 2xx, or `409 sold_out` (for a
    /// booking: 201 + 409 `sold_out`).
    pub goodput: u64,
    /// `goodput` per second over the run.
    pub goodput_rps: f64,
}

/// What happened to bookings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BookingCounts {
    /// Reservations created (201).
    pub made: u64,
    /// Bookings answered `409 sold_out` (expected, not errors).
    pub sold_out: u64,
    /// Payment callbacks acknowledged.
    pub paid: u64,
    /// Cancellations acknowledged.
    pub cancelled: u64,
    /// Pay/cancel draws that had no reservation to act on and booked instead.
    pub fallbacks: u64,
}

/// Open-loop pacing: whether the generator kept to its schedule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenLoopReport {
    /// The asked-for arrival rate.
    pub target_rate_per_sec: f64,
    /// Requests actually sent per second.
    pub achieved_rate_per_sec: f64,
    /// Sends that started more than 2 ms after their due time (all connections busy):
    /// their latency includes the wait.
    pub late_sends: u64,
    /// The largest due-to-send delay.
    pub max_send_lag_us: u64,
    /// Requests due before the end of a `--duration` run that were never sent because
    /// every connection stayed busy: the server (or the generator) could not keep up.
    pub unsent: u64,
}

/// Result of the invariant check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// True when no problem was found.
    pub ok: bool,
    /// What is wrong, one line each (at most 100, then a count of the rest).
    pub problems: Vec<String>,
    /// Parts of the check that were skipped, and why.
    pub notes: Vec<String>,
    /// Reservations read back with `GET /v1/reservations/{id}`.
    pub reservations_checked: usize,
    /// (hotel, night) pairs whose availability was compared with the live count.
    pub nights_checked: usize,
    /// Bookings whose answer was lost (transport error, 5xx) and were resolved by
    /// replaying their `Idempotency-Key`.
    pub uncertain_resolved: usize,
}

/// Everything a run measured. Serializes to the `--json` output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadReport {
    /// The server it ran against.
    pub target: String,
    /// `closed` or `open`.
    pub mode: String,
    /// Connections (workers).
    pub connections: usize,
    /// Workload seed, to reproduce the run.
    pub seed: u64,
    /// `--mix` as used.
    pub mix: String,
    /// Hotels the run used.
    pub hotels: Vec<String>,
    /// Wall time of the load phase (setup and check excluded).
    pub duration_secs: f64,
    /// Requests finished in the load phase.
    pub requests: u64,
    /// Requests per second over the load phase.
    pub throughput_rps: f64,
    /// Answers that count toward goodput, all operations: a 2xx, or `409 sold_out` (a
    /// booking's definite "no"). Refusals, 429s, other error answers and transport
    /// errors do not count. Same as `overall.admitted.goodput`.
    pub goodput: u64,
    /// `goodput` per second over the load phase.
    pub goodput_rps: f64,
    /// All operations together.
    pub overall: OpStats,
    /// Per operation (`availability`, `book`, `pay`, `cancel`).
    pub operations: BTreeMap<String, OpStats>,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<String, u64>,
    /// Problem answers by their `code` (expected ones like `sold_out` included).
    pub codes: BTreeMap<String, u64>,
    /// Unexpected outcomes: error answers other than `sold_out`, `503 overloaded` and
    /// `429`, and transport errors.
    pub errors: u64,
    /// Unexpected outcomes keyed by `"<op>: <status> <code>"` or `"<op>: transport …"`.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Requests that got no answer (connection error, timeout).
    pub transport_errors: u64,
    /// `503 overloaded` answers: backpressure, counted but not an error.
    pub overloaded: u64,
    /// `429` answers (`rate_limited`, `too_many_holds`): the server's policy, counted
    /// but not an error.
    pub throttled: u64,
    /// Booking, payment and cancellation counts.
    pub bookings: BookingCounts,
    /// This generator's own CPU (user + system, all its threads) per finished request
    /// over the load phase, in µs; absent where `/proc/self/stat` cannot be read. On a
    /// machine the server shares, it is CPU the server did not get.
    pub own_cpu_us_per_request: Option<f64>,
    /// Pacing of an open-loop run; absent in closed loop.
    pub open_loop: Option<OpenLoopReport>,
    /// The invariant check; absent with `--no-check`.
    pub check: Option<CheckReport>,
}

impl LoadReport {
    /// False when the invariant check ran and found a problem.
    pub fn check_passed(&self) -> bool {
        self.check.as_ref().is_none_or(|c| c.ok)
    }

    /// The human-readable report.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "innkeep-load: {} loop, {} connections, {:.2} s against {} (seed {}, mix {})",
            self.mode, self.connections, self.duration_secs, self.target, self.seed, self.mix
        );
        let _ = writeln!(
            s,
            "requests {} ({:.1} req/s), errors {}, transport errors {}, overloaded (503) {}, throttled (429) {}",
            self.requests,
            self.throughput_rps,
            self.errors,
            self.transport_errors,
            self.overloaded,
            self.throttled
        );
        let _ = writeln!(
            s,
            "admitted {} ({:.1} req/s), goodput {} ({:.1} req/s; 2xx and 409 sold_out)",
            self.overall.admitted.requests,
            self.overall.admitted.throughput_rps,
            self.goodput,
            self.goodput_rps
        );
        if let Some(us) = self.own_cpu_us_per_request {
            let _ = writeln!(s, "this generator's own CPU: {us:.1} µs per request");
        }
        let _ = writeln!(
            s,
            "\n{:<13}{:>9}{:>10}{:>9}{:>9}{:>9}{:>10}{:>9}",
            "latency µs", "requests", "req/s", "p50", "p90", "p99", "p99.9", "max"
        );
        let row = |s: &mut String, name: &str, requests: u64, rps: f64, l: &LatencySummary| {
            let _ = writeln!(
                s,
                "{name:<13}{requests:>9}{rps:>10.1}{:>9}{:>9}{:>9}{:>10}{:>9}",
                l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us
            );
        };
        for op in Op::ALL {
            if let Some(o) = self.operations.get(op.name()) {
                row(&mut s, op.name(), o.requests, o.throughput_rps, &o.latency);
            }
        }
        let o = &self.overall;
        row(&mut s, "all", o.requests, o.throughput_rps, &o.latency);
        // Only when something was refused: otherwise it is the table above.
        if self.overall.admitted.requests != self.overall.requests {
            let _ = writeln!(
                s,
                "\n{:<13}{:>9}{:>10}{:>9}{:>9}{:>9}{:>10}{:>9}",
                "admitted µs", "requests", "req/s", "p50", "p90", "p99", "p99.9", "max"
            );
            for op in Op::ALL {
                if let Some(o) = self.operations.get(op.name()) {
                    let a = &o.admitted;
                    row(&mut s, op.name(), a.requests, a.throughput_rps, &a.latency);
                }
            }
            let a = &self.overall.admitted;
            row(&mut s, "all", a.requests, a.throughput_rps, &a.latency);
        }
        let join = |m: &BTreeMap<String, u64>| {
            if m.is_empty() {
                return "none".to_owned();
            }
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let _ = writeln!(s, "\nstatuses: {}", join(&self.statuses));
        let _ = writeln!(s, "codes:    {}", join(&self.codes));
        if !self.errors_by_kind.is_empty() {
            let _ = writeln!(s, "errors:");
            for (k, v) in &self.errors_by_kind {
                let _ = writeln!(s, "  {v:>8}  {k}");
            }
        }
        let b = &self.bookings;
        let _ = writeln!(
            s,
            "bookings: made {}, sold out {}, paid {}, cancelled {} (pay/cancel with nothing to act on → book: {})",
            b.made, b.sold_out, b.paid, b.cancelled, b.fallbacks
        );
        if let Some(o) = &self.open_loop {
            let _ = writeln!(
                s,
                "open loop: target {:.1} req/s, achieved {:.1} req/s, late sends (>2 ms) {}, max send lag {} µs, due but never sent {}",
                o.target_rate_per_sec, o.achieved_rate_per_sec, o.late_sends, o.max_send_lag_us, o.unsent
            );
        }
        match &self.check {
            None => {
                let _ = writeln!(s, "check: skipped (--no-check)");
            }
            Some(c) => {
                let _ = writeln!(
                    s,
                    "check: {} — {} reservations read back, {} hotel-nights counted, {} lost answers resolved",
                    if c.ok { "ok" } else { "FAILED" },
                    c.reservations_checked,
                    c.nights_checked,
                    c.uncertain_resolved
                );
                for n in &c.notes {
                    let _ = writeln!(s, "  note: {n}");
                }
                for p in &c.problems {
                    let _ = writeln!(s, "  problem: {p}");
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorders_merge_and_summarize() {
        let live = Live::default();
        let mut a = Recorder::default();
        let mut b = Recorder::default();
        for i in 1..=100u64 {
            a.record(
                &live,
                Op::Availability,
                Duration::from_micros(i * 10),
                Some(200),
                None,
                &Outcome::Ok,
            );
        }
        b.record(
            &live,
            Op::Book,
            Duration::from_millis(5),
            Some(409),
            Some("sold_out"),
            &Outcome::SoldOut,
        );
        b.record(
            &live,
            Op::Pay,
            Duration::from_millis(1),
            Some(401),
            Some("bad_signature"),
            &Outcome::Unexpected("401 bad_signature".to_owned()),
        );
        b.record_lag(Duration::from_millis(3));
        b.record_lag(Duration::from_micros(1_500));
        a.merge(b);
        let s = a.summarize(Duration::from_secs(2));
        assert_eq!(s.requests, 102);
        assert_eq!(s.operations["availability"].requests, 100);
        assert!((s.throughput_rps - 51.0).abs() < 1e-9);
        let l = &s.operations["availability"].latency;
        assert!((495..=505).contains(&l.p50_us), "{l:?}");
        assert!((995..=1005).contains(&l.max_us), "{l:?}");
        assert_eq!(s.codes["sold_out"], 1);
        assert_eq!(s.statuses["409"], 1);
        assert_eq!(s.errors, 1);
        assert_eq!(s.errors_by_kind["pay: 401 bad_signature"], 1);
        assert_eq!(s.bookings.sold_out, 1);
        assert_eq!(a.late_sends, 1);
        assert_eq!(live.done.load(Ordering::Relaxed), 102);
        assert_eq!(live.errors.load(Ordering::Relaxed), 1);
    }

    /// True when `v` is within 0.5% of `want` (the histograms keep 3 significant digits).
    fn near(v: u64, want: u64) -> bool {
        v.abs_diff(want) * 1000 <= want * 5
    }

    #[test]
    fn admitted_latency_and_goodput_leave_refusals_out() {
        let live = Live::default();
        let (mut a, mut b) = (Recorder::default(), Recorder::default());
        let rec = |r: &mut Recorder, op, us: u64, status, code, outcome: Outcome| {
            let latency = Duration::from_micros(us);
            r.record(&live, op, latency, status, code, &outcome);
        };
        // 100 admitted bookings at 1..=100 ms: every 10th sold out, every 10th from the
        // 5th a 500; the rest created.
        for i in 1..=100u64 {
            let r = if i % 2 == 0 { &mut a } else { &mut b };
            let (status, code, outcome) = match i % 10 {
                0 => (409, Some("sold_out"), Outcome::SoldOut),
                5 => (
                    500,
                    Some("internal"),
                    Outcome::Unexpected("500 internal".into()),
                ),
                _ => (201, None, Outcome::Ok),
            };
            rec(r, Op::Book, i * 1_000, Some(status), code, outcome);
        }
        // 300 fast refusals of bookings: they dominate the latency of all answers.
        for i in 0..300 {
            let r = if i % 2 == 0 { &mut a } else { &mut b };
            rec(
                r,
                Op::Book,
                20,
                Some(503),
                Some("overloaded"),
                Outcome::Overloaded,
            );
        }
        // Availability: 10 answered, 10 shed, 1 refused as not ready (an error, and not
        // admitted either).
        for _ in 0..10 {
            rec(&mut a, Op::Availability, 100, Some(200), None, Outcome::Ok);
            rec(
                &mut b,
                Op::Availability,
                10,
                Some(503),
                Some("overloaded"),
                Outcome::Overloaded,
            );
        }
        let not_ready = Outcome::Unexpected("503 not_ready".into());
        rec(
            &mut a,
            Op::Availability,
            10,
            Some(503),
            Some("not_ready"),
            not_ready,
        );
        // Admitted but not goodput: 429s, a 503 timeout (the engine had it), a lost answer.
        for _ in 0..2 {
            rec(
                &mut b,
                Op::Pay,
                30,
                Some(429),
                Some("rate_limited"),
                Outcome::Throttled,
            );
        }
        let timeout = Outcome::Unexpected("503 timeout".into());
        rec(
            &mut b,
            Op::Cancel,
            5_000,
            Some(503),
            Some("timeout"),
            timeout,
        );
        rec(
            &mut a,
            Op::Cancel,
            30_000_000,
            None,
            None,
            Outcome::Transport("timeout".into()),
        );
        a.merge(b);
        let s = a.summarize(Duration::from_secs(4));

        // The existing fields keep their meaning: every answer counts.
        assert_eq!(s.requests, 425);
        assert_eq!(s.overall.requests, 425);
        assert_eq!(s.overloaded, 310);
        assert_eq!(s.throttled, 2);
        assert_eq!(s.errors, 10 + 1 + 1 + 1);
        let book = &s.operations["book"];
        assert_eq!(book.requests, 400);
        assert_eq!(book.latency.p50_us, 20, "{book:?}");
        assert!(near(book.latency.p99_us, 96_000), "{book:?}");

        // Admitted bookings: 80 created, 10 sold out, 10 failed; refusals left out.
        let ab = &book.admitted;
        assert_eq!(ab.requests, 100);
        assert!((ab.throughput_rps - 25.0).abs() < 1e-9);
        assert_eq!(ab.goodput, 90);
        assert!((ab.goodput_rps - 22.5).abs() < 1e-9);
        assert!(near(ab.latency.p50_us, 50_000), "{ab:?}");
        assert!(near(ab.latency.p90_us, 90_000), "{ab:?}");
        assert!(near(ab.latency.p99_us, 99_000), "{ab:?}");
        assert!(near(ab.latency.max_us, 100_000), "{ab:?}");
        assert!(
            (ab.latency.mean_us - 50_500.0).abs() < 50_500.0 * 0.005,
            "{ab:?}"
        );

        let av = &s.operations["availability"];
        assert_eq!(
            (av.requests, av.admitted.requests, av.admitted.goodput),
            (21, 10, 10)
        );
        assert_eq!(av.admitted.latency.max_us, 100);
        let pay = &s.operations["pay"].admitted;
        assert_eq!((pay.requests, pay.goodput), (2, 0));
        let cancel = &s.operations["cancel"].admitted;
        assert_eq!((cancel.requests, cancel.goodput), (2, 0));
        assert!(near(cancel.latency.max_us, 30_000_000), "{cancel:?}");
        let health = &s.operations["health"].admitted;
        assert_eq!(
            (health.requests, health.goodput, health.latency.p99_us),
            (0, 0, 0)
        );

        // Overall: 100 + 10 + 2 + 2 admitted; goodput 90 bookings + 10 availability.
        let all = &s.overall.admitted;
        assert_eq!(all.requests, 114);
        assert_eq!((all.goodput, s.goodput), (100, 100));
        assert!((s.goodput_rps - 25.0).abs() < 1e-9);
        assert!((all.goodput_rps - s.goodput_rps).abs() < 1e-9);
        assert!(near(all.latency.max_us, 30_000_000), "{all:?}");

        // The JSON shape: `admitted` next to the old fields, same latency shape.
        let json = serde_json::to_value(&s.overall).unwrap();
        assert_eq!(json["requests"], 425);
        assert_eq!(json["admitted"]["requests"], 114);
        assert_eq!(json["admitted"]["goodput"], 100);
        assert!(json["admitted"]["goodput_rps"].is_f64());
        assert!(json["admitted"]["throughput_rps"].is_f64());
        for q in ["p50_us", "p90_us", "p99_us", "p999_us", "max_us"] {
            assert!(json["admitted"]["latency"][q].is_u64(), "{q}");
        }
    }

    #[test]
    fn admitted_and_good_classify_answers() {
        assert!(admitted(Some(201), None));
        assert!(admitted(Some(409), Some("sold_out")));
        assert!(admitted(Some(500), Some("internal")));
        assert!(admitted(Some(503), Some("timeout")));
        assert!(admitted(Some(503), None));
        assert!(admitted(Some(429), Some("rate_limited")));
        assert!(
            admitted(None, None),
            "a lost answer may have reached the engine"
        );
        for code in ["overloaded", "not_ready", "shutting_down"] {
            assert!(!admitted(Some(503), Some(code)), "{code}");
        }
        assert!(good(Some(200), None) && good(Some(201), None));
        assert!(good(Some(409), Some("sold_out")));
        assert!(!good(Some(409), Some("invalid_transition")));
        assert!(!good(Some(429), Some("rate_limited")));
        assert!(!good(Some(503), Some("overloaded")));
        assert!(!good(Some(500), None));
        assert!(!good(None, None));
    }
}
