//! `innkeep-load`, the HTTP load generator, as a library: [`run`] drives a running
//! server over N keep-alive HTTP/1.1 connections with a configurable workload, then
//! checks the server's invariants through the API and returns a [`LoadReport`].
//!
//! The pieces: [`options`] (what to do), [`workload`] (what each request is about,
//! with hot-spot skew), a worker per connection (closed or open loop), [`stats`]
//! (hdrhistogram latencies, counts, the report) and the invariant check.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

mod check;
mod client;
pub mod options;
mod setup;
pub mod stats;
mod worker;
pub mod workload;

pub use options::{
    parse_duration, parse_header, LoadOptions, Mix, Mode, Op, OptionError, StayNights, StopAt,
};
pub use setup::{type_code, SETUP_CURRENCY, SETUP_TIME_ZONE};
pub use stats::{
    AdmittedStats, BookingCounts, CheckReport, LatencySummary, LoadReport, OpStats, OpenLoopReport,
};

use client::Conn;
use stats::{Live, Recorder};
use worker::{pace, run_worker, Shared};
use workload::Workload;

/// Connections setup and the invariant check use.
const ADMIN_CONNECTIONS: usize = 16;

/// Per-request timeout of setup and check requests.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a run could not be carried out (a failed invariant check is not an error: it is
/// in the report).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The options do not hang together; the message names the flag.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// Creating or finding the hotels failed; the message names the request.
    #[error("setup failed: {0}")]
    Setup(String),
    /// The target cannot be reached or is not ready.
    #[error("{0}")]
    Http(String),
}

/// Prints the progress line: elapsed time, requests, current rate, errors.
fn progress_line(start: Instant, live: &Live, last_done: &mut u64, last_at: &mut Instant) {
    let now = Instant::now();
    let done = live.done.load(Ordering::Relaxed);
    let window = now.duration_since(*last_at).as_secs_f64().max(1e-3);
    let rate = (done - *last_done) as f64 / window;
    *last_done = done;
    *last_at = now;
    let _ = writeln!(
        std::io::stderr().lock(),
        "innkeep-load: {:>6.1} s  {done:>9} requests  {rate:>9.0} req/s  errors {}  sold_out {}  overloaded {}  throttled {}",
        now.duration_since(start).as_secs_f64(),
        live.errors.load(Ordering::Relaxed),
        live.sold_out.load(Ordering::Relaxed),
        live.overloaded.load(Ordering::Relaxed),
        live.throttled.load(Ordering::Relaxed),
    );
}

/// Runs a load test against `opts.target`: optional setup, the load phase (closed or
/// open loop, for a duration or a request count), then the invariant check unless
/// `opts.check` is off. Errors only when the run cannot be carried out.
pub async fn run(opts: LoadOptions) -> Result<LoadReport, LoadError> {
    opts.validate()?;
    let headers = opts.all_headers();
    // Setup and the check use their own connections with a generous timeout: they must
    // get through even when the run measures with a tight one.
    let admin: Vec<Conn> = (0..opts.connections.min(ADMIN_CONNECTIONS))
        .map(|_| {
            Conn::new(
                &opts.target,
                opts.request_timeout.max(ADMIN_TIMEOUT),
                &headers,
            )
        })
        .collect::<Result<_, _>>()?;
    let conns: Vec<Conn> = (0..opts.connections)
        .map(|_| Conn::new(&opts.target, opts.request_timeout, &headers))
        .collect::<Result<_, _>>()?;
    setup::preflight(&admin[0], &opts.target).await?;
    let fresh = if opts.setup {
        Some(setup::setup(&opts, &admin).await?)
    } else {
        None
    };
    let hotels = setup::discover(&opts, &admin[0]).await?;
    let workload = Workload::new(hotels.clone(), &opts);
    // Open every connection before the clock starts, so no request's latency includes
    // a TCP handshake. A failure here is not fatal: the run will count it if it persists
    // (and a tight --timeout may well fail a warm-up request).
    let mut warm = JoinSet::new();
    for conn in &conns {
        let conn = conn.clone();
        warm.spawn(async move {
            let _ = conn.get("/healthz").await;
        });
    }
    while warm.join_next().await.is_some() {}
    // Each worker's histograms too (a dozen of ≈ 200 KiB each): allocated once the clock
    // ran, the 64 workers' allocations delayed the first requests by ≈ 40 ms.
    let recorders: Vec<Recorder> = conns.iter().map(|_| Recorder::default()).collect();

    let cpu_before = crate::proc_stat::own_cpu_secs();
    let start = Instant::now();
    let (deadline, max_requests) = match opts.stop {
        StopAt::Duration(d) => (Some(start + d), None),
        StopAt::Requests(n) => (None, Some(n)),
    };
    let run_tag = format!(
        "ld{:x}{:x}",
        opts.seed & 0xffff_ffff,
        jiff::Timestamp::now().as_millisecond()
    );
    let shared = Arc::new(Shared {
        workload,
        mode: opts.mode,
        live: Live::default(),
        next_ticket: AtomicU64::new(0),
        start,
        deadline,
        max_requests,
        run_tag,
        secret: opts.payment_secret.clone().unwrap_or_default().into_bytes(),
        seed: opts.seed,
        honor_retry_after: opts.honor_retry_after,
    });
    // Open loop: a thread of its own releases each request at its due time (see `pace`).
    let (tickets, pacer) = match opts.mode {
        Mode::Closed => (None, None),
        Mode::Open { .. } => {
            let (tx, rx) = tokio::sync::mpsc::channel(opts.connections);
            let pacing = shared.clone();
            let pacer = std::thread::Builder::new()
                .name("innkeep-load-pacer".into())
                .spawn(move || pace(&pacing, &tx))
                .map_err(|e| LoadError::Http(format!("pacer thread: {e}")))?;
            (Some(Arc::new(tokio::sync::Mutex::new(rx))), Some(pacer))
        }
    };
    let mut set = JoinSet::new();
    for ((i, conn), rec) in conns.iter().enumerate().zip(recorders) {
        set.spawn(run_worker(
            shared.clone(),
            conn.clone(),
            i,
            rec,
            tickets.clone(),
        ));
    }
    drop(tickets);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let (mut last_done, mut last_at) = (0, start);
    let mut recorder = Recorder::default();
    let mut owned = Vec::new();
    let mut lost = Vec::new();
    // Bounded: every worker ends at the deadline or the request count.
    while !set.is_empty() {
        tokio::select! {
            done = set.join_next() => {
                match done {
                    Some(Ok(r)) => {
                        recorder.merge(r.recorder);
                        owned.extend(r.owned);
                        lost.extend(r.lost);
                    }
                    Some(Err(e)) => return Err(LoadError::Http(format!("a worker failed: {e}"))),
                    None => break,
                }
            }
            _ = ticker.tick() => {
                if opts.progress {
                    progress_line(start, &shared.live, &mut last_done, &mut last_at);
                }
            }
        }
    }
    let elapsed = start.elapsed();
    let cpu_spent = crate::proc_stat::own_cpu_secs()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    if let Some(pacer) = pacer {
        // It ends at the deadline or the request count, or once every worker is gone.
        let _ = pacer.join();
    }
    let summary = recorder.summarize(elapsed);

    let check = if opts.check {
        Some(check::check(&admin, &hotels, fresh.as_deref(), owned, &lost).await)
    } else {
        None
    };
    let open_loop = match opts.mode {
        Mode::Closed => None,
        Mode::Open { rate_per_sec } => Some(OpenLoopReport {
            target_rate_per_sec: rate_per_sec,
            achieved_rate_per_sec: summary.throughput_rps,
            late_sends: recorder.late_sends,
            max_send_lag_us: recorder.max_send_lag_us,
            unsent: recorder.unsent,
        }),
    };
    Ok(LoadReport {
        target: opts.target.clone(),
        mode: opts.mode.name().to_owned(),
        connections: opts.connections,
        seed: opts.seed,
        mix: opts.mix.to_string(),
        hotels: opts.hotel_ids(),
        duration_secs: summary.duration_secs,
        requests: summary.requests,
        throughput_rps: summary.throughput_rps,
        goodput: summary.goodput,
        goodput_rps: summary.goodput_rps,
        overall: summary.overall,
        operations: summary.operations,
        statuses: summary.statuses,
        codes: summary.codes,
        errors: summary.errors,
        errors_by_kind: summary.errors_by_kind,
        transport_errors: summary.transport_errors,
        overloaded: summary.overloaded,
        throttled: summary.throttled,
        bookings: summary.bookings,
        own_cpu_us_per_request: cpu_spent
            .filter(|_| summary.requests > 0)
            .map(|secs| secs * 1e6 / summary.requests as f64),
        open_loop,
        check,
    })
}
