//! `innkeep-load`: drives a running Innkeep server over HTTP/1.1 keep-alive and reports
//! throughput, latency percentiles, outcomes and an invariant check. See the README's
//! "Load testing" section.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use innkeep_benches::load::{self, LoadOptions, Mix, Mode, StayNights, StopAt};

/// Pacing of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    /// Each connection sends its next request when the previous answer arrives.
    Closed,
    /// Requests are due at a fixed rate (--rate); latency counts from the due time.
    Open,
}

/// HTTP load generator for a running Innkeep server.
#[derive(Debug, Parser)]
#[command(name = "innkeep-load", version)]
struct Args {
    /// Base URL of the server (the only address traffic goes to).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// Keep-alive connections (one worker each).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// How long to run, e.g. 30s, 2m, 500ms (default 10s unless --requests is given).
    #[arg(long, value_parser = load::parse_duration, conflicts_with = "requests")]
    duration: Option<Duration>,
    /// Stop after this many requests instead of after a duration.
    #[arg(long)]
    requests: Option<u64>,
    /// Number of hotels (ids <prefix>-0, <prefix>-1, …).
    #[arg(long, default_value_t = 1)]
    hotels: usize,
    /// Prefix of the hotel ids.
    #[arg(long, default_value = "LOAD")]
    hotel_prefix: String,
    /// Rooms per hotel (with --setup).
    #[arg(long, default_value_t = 100)]
    rooms: usize,
    /// Room types per hotel, T0, T1, … (with --setup; rooms are dealt round-robin).
    #[arg(long, default_value_t = 2)]
    room_types: usize,
    /// Stays are drawn from this many nights, starting hotel-local tomorrow.
    #[arg(long, default_value_t = 60)]
    horizon_days: u32,
    /// Nights per stay: a range "1-3" (uniform), "2", or weights "1:50,2:30,3:20".
    #[arg(long, default_value = "1-3")]
    stay_nights: StayNights,
    /// Share (0.0..1.0) of availability and book requests aimed at the hot spot.
    #[arg(long, default_value_t = 0.0)]
    hot_share: f64,
    /// Number of hot nights (chosen from the horizon by the seed).
    #[arg(long, default_value_t = 3)]
    hot_dates: usize,
    /// The hot spot is one room type (T0) instead of a few dates.
    #[arg(long)]
    hot_room_type: bool,
    /// Operation weights: availability=60,book=30,pay=5,cancel=5.
    #[arg(long, default_value = "availability=60,book=30,pay=5,cancel=5")]
    mix: Mix,
    /// closed (as fast as answers come) or open (fixed --rate).
    #[arg(long, value_enum, default_value_t = ModeArg::Closed)]
    mode: ModeArg,
    /// Open loop: requests per second over all connections.
    #[arg(long)]
    rate: Option<f64>,
    /// The server's payment secret, to sign pay callbacks (default: $INNKEEP_PAYMENT_SECRET).
    #[arg(long)]
    payment_secret: Option<String>,
    /// Create the hotels, room types and rooms with PUT before the run.
    #[arg(long)]
    setup: bool,
    /// Seed of the workload's random choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Skip the invariant check after the run.
    #[arg(long)]
    no_check: bool,
    /// Per-request timeout, e.g. 30s.
    #[arg(long, value_parser = load::parse_duration, default_value = "30s")]
    timeout: Duration,
    /// API key, sent as "Authorization: Bearer KEY" (default: $INNKEEP_LOAD_API_KEY).
    #[arg(long)]
    api_key: Option<String>,
    /// Extra header for every request, "name: value" (repeatable), e.g. an API key.
    #[arg(long = "header", value_parser = load::parse_header)]
    headers: Vec<(String, String)>,
    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,
    /// Closed loop: after a 503 overloaded, a worker waits before its next request for the
    /// answer's Retry-After, capped at 1 s, times a seeded random jitter in [0.5, 1.0].
    /// The refused request is not retried and is still counted. No effect in open loop.
    #[arg(long)]
    honor_retry_after: bool,
}

impl Args {
    fn options(self) -> anyhow::Result<LoadOptions> {
        let mode = match (self.mode, self.rate) {
            (ModeArg::Closed, None) => Mode::Closed,
            (ModeArg::Closed, Some(_)) => anyhow::bail!("--rate needs --mode open"),
            (ModeArg::Open, Some(rate_per_sec)) => Mode::Open { rate_per_sec },
            (ModeArg::Open, None) => anyhow::bail!("--mode open needs --rate"),
        };
        let stop = match (self.duration, self.requests) {
            (_, Some(n)) => StopAt::Requests(n),
            (Some(d), None) => StopAt::Duration(d),
            (None, None) => StopAt::Duration(Duration::from_secs(10)),
        };
        Ok(LoadOptions {
            target: self.target,
            connections: self.connections,
            stop,
            hotels: self.hotels,
            hotel_prefix: self.hotel_prefix,
            rooms_per_hotel: self.rooms,
            room_types: self.room_types,
            horizon_days: self.horizon_days,
            stay_nights: self.stay_nights,
            hot_share: self.hot_share,
            hot_dates: self.hot_dates,
            hot_room_type: self.hot_room_type,
            mix: self.mix,
            mode,
            payment_secret: self
                .payment_secret
                .or_else(|| std::env::var("INNKEEP_PAYMENT_SECRET").ok()),
            setup: self.setup,
            seed: self.seed,
            check: !self.no_check,
            progress: !self.quiet,
            request_timeout: self.timeout,
            api_key: self
                .api_key
                .or_else(|| std::env::var("INNKEEP_LOAD_API_KEY").ok()),
            headers: self.headers,
            honor_retry_after: self.honor_retry_after,
        })
    }
}

async fn main_inner() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let json = args.json;
    let opts = args.options()?;
    let report = load::run(opts).await?;
    let mut out = std::io::stdout().lock();
    if json {
        let text = serde_json::to_string_pretty(&report).context("serialize the report")?;
        writeln!(out, "{text}")?;
    } else {
        write!(out, "{}", report.render_text())?;
    }
    out.flush()?;
    Ok(if report.check_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    match main_inner().await {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(std::io::stderr().lock(), "innkeep-load: {e:#}");
            ExitCode::from(2)
        }
    }
}
