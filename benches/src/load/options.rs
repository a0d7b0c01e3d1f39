//! What a load run does: [`LoadOptions`] and the small spec languages of its flags
//! (`--mix`, `--stay-nights`, `--duration`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use super::LoadError;

/// A flag value that does not parse; the message names what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OptionError(pub String);

fn bad(msg: impl Into<String>) -> OptionError {
    OptionError(msg.into())
}

/// One kind of request the generator sends. Statistics are kept per operation, because
/// a cheap read and a journalled booking have very different latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `GET /v1/hotels/{id}/availability` for the workload's stay.
    Availability,
    /// `POST /v1/hotels/{id}/reservations` for the workload's room type and stay.
    Book,
    /// A signed `POST /v1/payments/notify` for one of the generator's pending reservations.
    Pay,
    /// `POST /v1/reservations/{id}/cancel` of one of the generator's live reservations.
    Cancel,
    /// `GET /healthz`: no engine work at all, so a health-only run measures the HTTP
    /// stack's own limit, the yardstick for the other operations.
    Health,
}

impl Op {
    /// Every operation, in report order.
    pub const ALL: [Op; 5] = [Op::Availability, Op::Book, Op::Pay, Op::Cancel, Op::Health];

    /// The name used in `--mix`, the report and the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Op::Availability => "availability",
            Op::Book => "book",
            Op::Pay => "pay",
            Op::Cancel => "cancel",
            Op::Health => "health",
        }
    }

    /// Position in [`Op::ALL`], for per-operation arrays.
    pub fn index(self) -> usize {
        match self {
            Op::Availability => 0,
            Op::Book => 1,
            Op::Pay => 2,
            Op::Cancel => 3,
            Op::Health => 4,
        }
    }

    fn parse(name: &str) -> Option<Op> {
        match name {
            "availability" | "avail" => Some(Op::Availability),
            "book" => Some(Op::Book),
            "pay" => Some(Op::Pay),
            "cancel" => Some(Op::Cancel),
            "health" => Some(Op::Health),
            _ => None,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Relative weights of the operations (`availability=60,book=30,pay=5,cancel=5`): the
/// share of requests each gets. Weights need not add up to 100.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; 5],
}

impl Mix {
    /// A mix from explicit weights; fails if all are zero.
    pub fn new(availability: u32, book: u32, pay: u32, cancel: u32) -> Result<Mix, OptionError> {
        let weights = [availability, book, pay, cancel, 0];
        if weights.iter().map(|w| u64::from(*w)).sum::<u64>() == 0 {
            return Err(bad("--mix: at least one weight must be above 0"));
        }
        Ok(Mix { weights })
    }

    /// The weight of `op`.
    pub fn weight(&self, op: Op) -> u32 {
        self.weights[op.index()]
    }

    /// Sum of all weights (never 0).
    pub fn total(&self) -> u64 {
        self.weights.iter().map(|w| u64::from(*w)).sum()
    }

    /// The operation a uniform draw `r` in `0..total()` falls on.
    pub fn pick(&self, mut r: u64) -> Op {
        for op in Op::ALL {
            let w = u64::from(self.weight(op));
            if r < w {
                return op;
            }
            r -= w;
        }
        // Only reached for r >= total(); the heaviest op is as good as any.
        Op::Availability
    }
}

impl Default for Mix {
    /// A read-heavy front end: 60 % availability, 30 % book, 5 % pay, 5 % cancel.
    fn default() -> Self {
        Mix {
            weights: [60, 30, 5, 5, 0],
        }
    }
}

impl FromStr for Mix {
    type Err = OptionError;

    /// `name=weight` pairs separated by commas; names are `availability` (or `avail`),
    /// `book`, `pay`, `cancel`; an operation not named gets weight 0.
    fn from_str(s: &str) -> Result<Mix, OptionError> {
        let mut weights = [0u32; 5];
        let mut seen = [false; 5];
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("--mix: {part:?} is not name=weight (e.g. book=30)")))?;
            let op = Op::parse(name.trim()).ok_or_else(|| {
                bad(format!(
                    "--mix: unknown operation {:?} (availability, book, pay, cancel, health)",
                    name.trim()
                ))
            })?;
            if seen[op.index()] {
                return Err(bad(format!("--mix: {op} is named twice")));
            }
            seen[op.index()] = true;
            weights[op.index()] = weight.trim().parse().map_err(|_| {
                bad(format!(
                    "--mix: weight of {op} must be a whole number, not {:?}",
                    weight.trim()
                ))
            })?;
        }
        if weights.iter().map(|w| u64::from(*w)).sum::<u64>() == 0 {
            return Err(bad("--mix: at least one weight must be above 0".to_owned()));
        }
        Ok(Mix { weights })
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = Op::ALL
            .iter()
            .filter(|op| **op != Op::Health || self.weight(**op) > 0)
            .map(|op| format!("{op}={}", self.weight(*op)))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// How many nights each booked stay has: uniform over a range (`1-3`, `2`) or weighted
/// (`1:50,2:30,3:20`), so a run can mimic a real length-of-stay distribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StayNights {
    /// Every length in `min..=max` equally likely.
    Uniform {
        /// Shortest stay (≥ 1).
        min: u32,
        /// Longest stay (≥ min).
        max: u32,
    },
    /// `(nights, weight)` pairs; a length is drawn with probability weight / sum.
    Weighted(Vec<(u32, u32)>),
}

impl StayNights {
    /// The longest stay the spec can produce.
    pub fn max_nights(&self) -> u32 {
        match self {
            StayNights::Uniform { max, .. } => *max,
            StayNights::Weighted(pairs) => pairs.iter().map(|(n, _)| *n).max().unwrap_or(1),
        }
    }
}

impl Default for StayNights {
    /// One to three nights, uniform.
    fn default() -> Self {
        StayNights::Uniform { min: 1, max: 3 }
    }
}

fn parse_nights(raw: &str) -> Result<u32, OptionError> {
    match raw.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(bad(format!(
            "--stay-nights: {:?} is not a number of nights ≥ 1",
            raw.trim()
        ))),
    }
}

impl FromStr for StayNights {
    type Err = OptionError;

    fn from_str(s: &str) -> Result<StayNights, OptionError> {
        let s = s.trim();
        if s.contains(':') {
            let mut pairs = Vec::new();
            for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (nights, weight) = part.split_once(':').ok_or_else(|| {
                    bad(format!(
                        "--stay-nights: {part:?} is not nights:weight (e.g. 2:30)"
                    ))
                })?;
                let nights = parse_nights(nights)?;
                let weight: u32 = weight.trim().parse().map_err(|_| {
                    bad(format!(
                        "--stay-nights: weight {:?} is not a whole number",
                        weight.trim()
                    ))
                })?;
                if pairs.iter().any(|(n, _)| *n == nights) {
                    return Err(bad(format!("--stay-nights: {nights} is named twice")));
                }
                pairs.push((nights, weight));
            }
            if pairs.iter().all(|(_, w)| *w == 0) {
                return Err(bad("--stay-nights: at least one weight must be above 0"));
            }
            return Ok(StayNights::Weighted(pairs));
        }
        let (min, max) = match s.split_once('-') {
            Some((a, b)) => (parse_nights(a)?, parse_nights(b)?),
            None => {
                let n = parse_nights(s)?;
                (n, n)
            }
        };
        if min > max {
            return Err(bad(format!(
                "--stay-nights: {min}-{max} is empty (min above max)"
            )));
        }
        Ok(StayNights::Uniform { min, max })
    }
}

impl fmt::Display for StayNights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StayNights::Uniform { min, max } if min == max => write!(f, "{min}"),
            StayNights::Uniform { min, max } => write!(f, "{min}-{max}"),
            StayNights::Weighted(pairs) => {
                let parts: Vec<String> = pairs.iter().map(|(n, w)| format!("{n}:{w}")).collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

/// When a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAt {
    /// After this long (no new request starts later; in-flight ones finish).
    Duration(Duration),
    /// After this many requests.
    Requests(u64),
}

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Each connection sends its next request as soon as the previous answer arrives:
    /// measures the throughput the server sustains at this concurrency.
    Closed,
    /// Requests are due at fixed intervals whatever the server does; latency runs from
    /// the time a request was due, so a stalled server cannot hide its stall
    /// (no coordinated omission).
    Open {
        /// Requests per second over all connections.
        rate_per_sec: f64,
    },
}

impl Mode {
    /// `closed` or `open`, as the report names it.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Closed => "closed",
            Mode::Open { .. } => "open",
        }
    }
}

/// Parses a `--header` value, `name: value`.
pub fn parse_header(raw: &str) -> Result<(String, String), OptionError> {
    let (name, value) = raw
        .split_once(':')
        .ok_or_else(|| bad(format!("--header {raw:?}: expected \"name: value\"")))?;
    let name = name.trim();
    let ok_name = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !ok_name {
        return Err(bad(format!(
            "--header {raw:?}: {name:?} is not a header name"
        )));
    }
    let value = value.trim();
    if value.bytes().any(|b| b.is_ascii_control()) {
        return Err(bad(format!(
            "--header {raw:?}: control characters in the value"
        )));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// Parses `30s`, `500ms`, `2m`, `1h` or a bare number of seconds (fractions allowed).
pub fn parse_duration(raw: &str) -> Result<Duration, OptionError> {
    let s = raw.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| bad(format!("duration {raw:?}: expected e.g. 30s, 500ms, 2m")))?;
    let scale_secs = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(bad(format!(
                "duration {raw:?}: unknown unit {other:?} (ms, s, m, h)"
            )))
        }
    };
    let secs = value * scale_secs;
    if !secs.is_finite() || secs <= 0.0 || secs > 7.0 * 86_400.0 {
        return Err(bad(format!(
            "duration {raw:?}: must be above 0 and at most a week"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Everything a load run needs. `Default` is a closed-loop run of 10 s against
/// `http://127.0.0.1:8080` that sets nothing up (its mix has `pay`, so it needs a
/// `payment_secret` to validate). `Debug` leaves out the secret, the API key and header
/// values.
#[derive(Clone)]
pub struct LoadOptions {
    /// Base URL of the running server, e.g. `http://127.0.0.1:8080`. The only address the
    /// generator sends traffic to.
    pub target: String,
    /// Keep-alive HTTP/1.1 connections, one per worker; also the concurrency in closed loop.
    pub connections: usize,
    /// When the run ends: a duration or a request count.
    pub stop: StopAt,
    /// Number of hotels, with ids `<hotel_prefix>-0`, `<hotel_prefix>-1`, ….
    pub hotels: usize,
    /// Prefix of the hotel ids, so runs against one server can use fresh hotels.
    pub hotel_prefix: String,
    /// Rooms per hotel that `--setup` creates (numbered 1..=rooms).
    pub rooms_per_hotel: usize,
    /// Room types per hotel that `--setup` creates (`T0`, `T1`, …; rooms dealt round-robin).
    pub room_types: usize,
    /// How many nights ahead (from hotel-local tomorrow) stays are drawn from.
    pub horizon_days: u32,
    /// Length-of-stay distribution.
    pub stay_nights: StayNights,
    /// Share (0..=1) of availability and book requests aimed at the hot spot.
    pub hot_share: f64,
    /// Number of hot nights (drawn from the horizon by the seed) when the hot spot is dates.
    pub hot_dates: usize,
    /// The hot spot is one room type (`T0`, the first) instead of a few dates.
    pub hot_room_type: bool,
    /// Relative weights of availability / book / pay / cancel.
    pub mix: Mix,
    /// Closed or open loop.
    pub mode: Mode,
    /// The server's payment secret, needed to sign `pay` callbacks.
    pub payment_secret: Option<String>,
    /// Create the hotels, room types and rooms with `PUT` before the run.
    pub setup: bool,
    /// Seed of the workload's random choices: the same seed draws the same requests.
    pub seed: u64,
    /// Run the invariant check after the run.
    pub check: bool,
    /// Print a progress line to stderr about once a second.
    pub progress: bool,
    /// Most time one request may take before it counts as a transport error.
    pub request_timeout: Duration,
    /// API key sent as `Authorization: Bearer <key>` with every request, for a server
    /// that has keys configured (setup needs an admin key).
    pub api_key: Option<String>,
    /// Extra headers sent with every request (`--header "name: value"`), e.g. the
    /// server's API-key header when it requires one.
    pub headers: Vec<(String, String)>,
    /// Closed loop: after a `503 overloaded`, a worker waits before its next request for
    /// the answer's `Retry-After` (capped at [`MAX_RETRY_AFTER_WAIT`]) times a seeded
    /// random jitter in [0.5, 1.0]. The refused request is still not retried, and still
    /// counted. No effect in open loop, whose arrivals follow the schedule.
    pub honor_retry_after: bool,
}

/// Longest wait `--honor-retry-after` makes, whatever `Retry-After` says.
pub const MAX_RETRY_AFTER_WAIT: Duration = Duration::from_secs(1);

/// How long a worker honouring `Retry-After` waits after a `503 overloaded` that carried
/// `retry_after_secs`: that many seconds capped at [`MAX_RETRY_AFTER_WAIT`], times a
/// jitter of `0.5 + 0.5 * unit` (`unit` uniform in [0, 1), so the jitter is in
/// [0.5, 1.0]), which spreads out the workers a burst of refusals would otherwise send
/// back at the same instant. No `Retry-After` (or one that is not a number of seconds)
/// means no wait: there is nothing to honour.
pub fn retry_after_wait(retry_after_secs: Option<u64>, unit: f64) -> Duration {
    let Some(secs) = retry_after_secs else {
        return Duration::ZERO;
    };
    let base = Duration::from_secs(secs).min(MAX_RETRY_AFTER_WAIT);
    base.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            target: "http://127.0.0.1:8080".to_owned(),
            connections: 16,
            stop: StopAt::Duration(Duration::from_secs(10)),
            hotels: 1,
            hotel_prefix: "LOAD".to_owned(),
            rooms_per_hotel: 100,
            room_types: 2,
            horizon_days: 60,
            stay_nights: StayNights::default(),
            hot_share: 0.0,
            hot_dates: 3,
            hot_room_type: false,
            mix: Mix::default(),
            mode: Mode::Closed,
            payment_secret: None,
            setup: false,
            seed: 1,
            check: true,
            progress: false,
            request_timeout: Duration::from_secs(30),
            api_key: None,
            headers: Vec::new(),
            honor_retry_after: false,
        }
    }
}

impl fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |set: bool| if set { "<set>" } else { "<none>" };
        let header_names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("LoadOptions")
            .field("target", &self.target)
            .field("connections", &self.connections)
            .field("stop", &self.stop)
            .field("hotels", &self.hotels)
            .field("hotel_prefix", &self.hotel_prefix)
            .field("rooms_per_hotel", &self.rooms_per_hotel)
            .field("room_types", &self.room_types)
            .field("horizon_days", &self.horizon_days)
            .field("stay_nights", &self.stay_nights)
            .field("hot_share", &self.hot_share)
            .field("hot_dates", &self.hot_dates)
            .field("hot_room_type", &self.hot_room_type)
            .field("mix", &self.mix)
            .field("mode", &self.mode)
            .field("payment_secret", &redacted(self.payment_secret.is_some()))
            .field("setup", &self.setup)
            .field("seed", &self.seed)
            .field("check", &self.check)
            .field("progress", &self.progress)
            .field("request_timeout", &self.request_timeout)
            .field("api_key", &redacted(self.api_key.is_some()))
            .field("headers", &header_names)
            .field("honor_retry_after", &self.honor_retry_after)
            .finish()
    }
}

/// Most connections a run may open; beyond it the client, not the server, is measured.
pub const MAX_CONNECTIONS: usize = 4096;

/// Longest horizon; the server refuses departures more than 730 days out by default.
pub const MAX_HORIZON_DAYS: u32 = 700;

impl LoadOptions {
    /// Checks the options hang together, naming the first flag that does not.
    pub fn validate(&self) -> Result<(), LoadError> {
        let fail = |m: String| Err(LoadError::InvalidOption(m));
        let url = self.target.trim_end_matches('/');
        if !url.starts_with("http://") || url.len() <= "http://".len() {
            return fail(format!(
                "--target {:?}: expected http://host:port",
                self.target
            ));
        }
        if self.connections == 0 || self.connections > MAX_CONNECTIONS {
            return fail(format!("--connections must be 1 to {MAX_CONNECTIONS}"));
        }
        match self.stop {
            StopAt::Requests(0) => return fail("--requests must be above 0".to_owned()),
            StopAt::Duration(d) if d.is_zero() => {
                return fail("--duration must be above 0".to_owned())
            }
            _ => {}
        }
        if self.hotels == 0 || self.hotels > 10_000 {
            return fail("--hotels must be 1 to 10000".to_owned());
        }
        if self.setup && (self.rooms_per_hotel == 0 || self.rooms_per_hotel > 100_000) {
            return fail("--rooms must be 1 to 100000".to_owned());
        }
        if self.setup && (self.room_types == 0 || self.room_types > self.rooms_per_hotel) {
            return fail("--room-types must be 1 to --rooms".to_owned());
        }
        if self.horizon_days == 0 || self.horizon_days > MAX_HORIZON_DAYS {
            return fail(format!("--horizon-days must be 1 to {MAX_HORIZON_DAYS}"));
        }
        if self.stay_nights.max_nights() > self.horizon_days {
            return fail(format!(
                "--stay-nights {} does not fit in --horizon-days {}",
                self.stay_nights, self.horizon_days
            ));
        }
        if !(0.0..=1.0).contains(&self.hot_share) {
            return fail("--hot-share must be between 0.0 and 1.0".to_owned());
        }
        if !self.hot_room_type
            && self.hot_share > 0.0
            && (self.hot_dates == 0 || self.hot_dates > self.horizon_days as usize)
        {
            return fail("--hot-dates must be 1 to --horizon-days".to_owned());
        }
        if self.mix.weight(Op::Pay) > 0 && self.payment_secret.as_deref().unwrap_or("").is_empty() {
            return fail(
                "--mix has pay but no --payment-secret: payment callbacks must be signed"
                    .to_owned(),
            );
        }
        if let Mode::Open { rate_per_sec } = self.mode {
            if !(rate_per_sec.is_finite() && rate_per_sec > 0.0 && rate_per_sec <= 10_000_000.0) {
                return fail("--rate must be above 0 (requests per second)".to_owned());
            }
        }
        if self.request_timeout.is_zero() {
            return fail("request timeout must be above 0".to_owned());
        }
        Ok(())
    }

    /// Every header sent with each request: `authorization` from the API key, then the
    /// extra headers.
    pub fn all_headers(&self) -> Vec<(String, String)> {
        let mut all = Vec::with_capacity(self.headers.len() + 1);
        if let Some(key) = &self.api_key {
            all.push(("authorization".to_owned(), format!("Bearer {key}")));
        }
        all.extend(self.headers.iter().cloned());
        all
    }

    /// The hotel ids the run uses.
    pub fn hotel_ids(&self) -> Vec<String> {
        (0..self.hotels)
            .map(|i| format!("{}-{i}", self.hotel_prefix))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_names_and_weights() {
        let m: Mix = "availability=60,book=30,pay=5,cancel=5".parse().unwrap();
        assert_eq!(m, Mix::default());
        let m: Mix = " book = 1 , avail=3 ".parse().unwrap();
        assert_eq!(m.weight(Op::Book), 1);
        assert_eq!(m.weight(Op::Availability), 3);
        assert_eq!(m.weight(Op::Pay), 0);
        assert_eq!(m.total(), 4);
        assert_eq!(m.to_string(), "availability=3,book=1,pay=0,cancel=0");
        assert_eq!(m.to_string().parse::<Mix>().unwrap(), m);
        for bad in [
            "",
            "book",
            "book=x",
            "book=-1",
            "sell=3",
            "book=0,pay=0",
            "book=1,book=2",
        ] {
            assert!(bad.parse::<Mix>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn mix_picks_by_weight() {
        let m: Mix = "availability=2,book=1,cancel=1".parse().unwrap();
        let picks: Vec<Op> = (0..4).map(|r| m.pick(r)).collect();
        assert_eq!(
            picks,
            [Op::Availability, Op::Availability, Op::Book, Op::Cancel]
        );
    }

    #[test]
    fn stay_nights_specs() {
        assert_eq!(
            "1-3".parse::<StayNights>().unwrap(),
            StayNights::Uniform { min: 1, max: 3 }
        );
        assert_eq!(
            "2".parse::<StayNights>().unwrap(),
            StayNights::Uniform { min: 2, max: 2 }
        );
        let w: StayNights = "1:50,2:30,3:20".parse().unwrap();
        assert_eq!(w, StayNights::Weighted(vec![(1, 50), (2, 30), (3, 20)]));
        assert_eq!(w.max_nights(), 3);
        assert_eq!(w.to_string(), "1:50,2:30,3:20");
        for bad in [
            "",
            "0",
            "3-1",
            "1-x",
            "1:50,1:20",
            "1:0",
            "0:5",
            "a:1",
            "1:2:3",
        ] {
            assert!(bad.parse::<StayNights>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn headers() {
        assert_eq!(
            parse_header("Authorization: Bearer k1").unwrap(),
            ("Authorization".to_owned(), "Bearer k1".to_owned())
        );
        assert_eq!(
            parse_header("x-api-key:abc").unwrap(),
            ("x-api-key".to_owned(), "abc".to_owned())
        );
        for bad in ["", "no colon", ": v", "a b: c"] {
            assert!(parse_header(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        for bad in ["", "s", "0s", "-1s", "3d", "10 parsecs"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn retry_after_wait_is_capped_and_jittered() {
        // Nothing to honour, or "retry now".
        assert_eq!(retry_after_wait(None, 0.3), Duration::ZERO);
        assert_eq!(retry_after_wait(Some(0), 0.9), Duration::ZERO);
        // The jitter's ends: half the wait at 0, all of it near 1.
        assert_eq!(retry_after_wait(Some(1), 0.0), Duration::from_millis(500));
        assert_eq!(retry_after_wait(Some(1), 0.5), Duration::from_millis(750));
        let top = retry_after_wait(Some(1), 1.0 - f64::EPSILON);
        assert!(top <= MAX_RETRY_AFTER_WAIT && top > Duration::from_millis(999));
        // Capped at 1 s, whatever the server asks.
        for secs in [2, 5, 3600, u64::MAX] {
            assert_eq!(
                retry_after_wait(Some(secs), 0.0),
                Duration::from_millis(500)
            );
            assert!(retry_after_wait(Some(secs), 0.999_999) <= MAX_RETRY_AFTER_WAIT);
        }
        // Out-of-range units are clamped, never beyond the cap or below half of it.
        assert_eq!(retry_after_wait(Some(9), 7.0), MAX_RETRY_AFTER_WAIT);
        assert_eq!(retry_after_wait(Some(9), -1.0), Duration::from_millis(500));
        // Over the generator's own RNG: every wait lies in [0.5, 1.0] s and both ends
        // of the range are reached.
        let mut rng = super::super::workload::Rng::new(7);
        let waits: Vec<Duration> = (0..10_000)
            .map(|_| retry_after_wait(Some(1), rng.unit()))
            .collect();
        assert!(waits
            .iter()
            .all(|w| *w >= Duration::from_millis(500) && *w <= MAX_RETRY_AFTER_WAIT));
        assert!(waits.iter().any(|w| *w < Duration::from_millis(550)));
        assert!(waits.iter().any(|w| *w > Duration::from_millis(950)));
    }

    #[test]
    fn validation_names_the_flag() {
        assert!(
            LoadOptions::default().validate().is_err(),
            "pay needs a secret"
        );
        let ok = LoadOptions {
            payment_secret: Some("s".repeat(16)),
            ..LoadOptions::default()
        };
        ok.validate().unwrap();
        let shown = format!("{ok:?}");
        assert!(shown.contains("payment_secret: \"<set>\"") && !shown.contains("ssss"));
        let cases = [
            LoadOptions {
                connections: 0,
                ..ok.clone()
            },
            LoadOptions {
                target: "127.0.0.1:8080".to_owned(),
                ..ok.clone()
            },
            LoadOptions {
                hot_share: 1.5,
                ..ok.clone()
            },
            LoadOptions {
                horizon_days: 2,
                ..ok.clone()
            },
            LoadOptions {
                mode: Mode::Open { rate_per_sec: 0.0 },
                ..ok.clone()
            },
            LoadOptions {
                stop: StopAt::Requests(0),
                ..ok.clone()
            },
        ];
        for case in cases {
            assert!(case.validate().is_err(), "{case:?} validated");
        }
    }
}
