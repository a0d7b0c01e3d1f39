//! `innkeep serve` configuration: a TOML file, then `INNKEEP_*` environment variables on
//! top. An unknown key, a bad value or an unusable data dir stops start-up with a message
//! that names it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use innkeep_actors::feed::{FEED_WINDOW_EVENTS, MAX_FEED_WINDOW_EVENTS};
use innkeep_actors::{
    EngineConfig, PaymentPolicy, RetryPolicy, SandboxConfig, SyncMode,
    DEFAULT_MAX_HOLDS_PER_CREATOR,
};
use innkeep_engine::{HotelId, StayLimits};
use innkeep_http::auth::parse_key_sha256;
use innkeep_http::limits::{DEFAULT_BURST, DEFAULT_RATE_PER_SECOND, DEFAULT_REQUEST_TIMEOUT_MS};
use innkeep_http::serve::{
    DEFAULT_HEADER_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
};
use innkeep_http::webhooks::policy::Reach;
use innkeep_http::webhooks::WebhookSettings;
use innkeep_http::{ApiKey, AuthConfig, ConnectionLimits, HotelScope, HttpLimits, Role};
use serde::{Deserialize, Serialize};

mod env;

/// Shortest payment secret we accept: an HMAC key much shorter than this is guessable.
pub const MIN_SECRET_BYTES: usize = 16;

/// Everything `innkeep serve` reads.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// A second address serving only `GET /metrics`, without a key, for a Prometheus
    /// scraper on a network the operator trusts. Unset: `/metrics` is served on `listen`
    /// only, to admin keys of every hotel once keys are configured.
    pub metrics_listen: Option<SocketAddr>,
    /// Address the gRPC API (`proto/innkeep/v1/`) listens on; `None` (the default): no
    /// gRPC. Same keys, roles and limits as HTTP.
    pub grpc_listen: Option<SocketAddr>,
    /// Journal and snapshots live here; created if missing.
    pub data_dir: PathBuf,
    /// Unpaid holds expire after this many seconds.
    pub hold_seconds: u64,
    /// Longest stay in nights.
    pub max_nights: u32,
    /// How far ahead a departure may be, in days.
    pub horizon_days: u32,
    /// Shards: threads hosting the room actors and serving HTTP; 0 = one per core.
    pub shards: usize,
    /// Most engine calls in flight per shard before answering 503 `overloaded`.
    pub max_in_flight: usize,
    /// Snapshot after this many events (or a quarter of the reservations held, when that
    /// is more)...
    pub snapshot_every_events: u64,
    /// ...or this many seconds.
    pub snapshot_every_seconds: u64,
    /// A room nobody reached for between this many seconds and twice that parks: its
    /// actor stops and its state waits until its next message (memory of idle rooms).
    pub room_idle_seconds: u64,
    /// Hotel-local time (`HH:MM`) of the night audit, which marks confirmed reservations
    /// whose guest never arrived as `no_show` on the day after arrival.
    pub night_audit_time: String,
    /// Newest events an event-stream client can resume from with `Last-Event-ID`, across
    /// restarts too (kept in memory and in the journal).
    pub resume_window_events: usize,
    /// Microseconds the journal may hold a batch for the callers of the previous one, so
    /// they share an `fdatasync` (a lone caller never waits).
    pub journal_commit_delay_us: u64,
    /// Payment provider settings.
    pub payment: PaymentSection,
    /// `[[api_keys]]`: who may call the API. None: the API is open, which is allowed only
    /// on a loopback `listen` address.
    pub api_keys: Vec<ApiKeySection>,
    /// `[limits]`: rate limit, hold cap, deadline, connections and their timeouts.
    pub limits: LimitsSection,
    /// `[telemetry]`: traces over OTLP.
    pub telemetry: TelemetrySection,
    /// `[webhooks]`: where outbound webhooks may send, how long they retry, how they wait.
    pub webhooks: WebhooksSection,
    /// `[cluster]`: this node's place among nodes that share the hotels by partition.
    pub cluster: ClusterSection,
}

/// `[cluster]`. Both keys or neither: without them a node serves every hotel.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// This node's id among the cluster file's nodes.
    pub node_id: Option<String>,
    /// The cluster file every node shares: the nodes, and the partitions with their
    /// hotels (README, "Cluster").
    pub file: Option<PathBuf>,
    /// NATS with JetStream (`nats://host:port`): each partition this node serves has its
    /// committed events published to a stream there. Unset: no streams.
    pub nats_url: Option<String>,
    /// With `nats_url`: when a change is acknowledged to its client.
    pub replication: Replication,
    /// With `replication = "sync"`: a change waiting this long for the streams means
    /// replication has stalled, and the node reports itself not ready until it moves.
    pub replication_stall_ms: u64,
}

impl Default for ClusterSection {
    fn default() -> Self {
        Self {
            node_id: None,
            file: None,
            nats_url: None,
            replication: Replication::default(),
            replication_stall_ms: 5_000,
        }
    }
}

/// `[cluster] replication`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Replication {
    /// Once the local journal has it and JetStream acknowledged its stream's message: a
    /// failover loses nothing acknowledged.
    #[default]
    Sync,
    /// Once the local journal has it; the publish follows (faster; the stream may lack
    /// the last moments).
    Async,
}

/// `[telemetry]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySection {
    /// An OpenTelemetry collector's OTLP/HTTP base URL (`http://collector:4318`): spans
    /// go to `<otlp_endpoint>/v1/traces` as JSON. Unset: no traces are exported.
    pub otlp_endpoint: Option<String>,
    /// The `service.name` the spans are reported under.
    pub service_name: String,
}

impl Default for TelemetrySection {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "innkeep".to_owned(),
        }
    }
}

/// `[webhooks]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksSection {
    /// Lets webhooks send over plain http to any host and to private addresses; off, a
    /// receiver must be https on a public address, or loopback (request forgery into the
    /// server's network is refused).
    pub allow_private: bool,
    /// How long a receiver may keep failing (no 2xx) before events are dead-lettered and
    /// the journal stops keeping records for it.
    pub max_age_seconds: u64,
    /// Time limit of one delivery attempt.
    pub timeout_ms: u64,
    /// First wait after a failed attempt; doubles per attempt, with jitter.
    pub backoff_base_ms: u64,
    /// Longest wait between two attempts.
    pub backoff_max_ms: u64,
}

impl Default for WebhooksSection {
    fn default() -> Self {
        Self {
            allow_private: false,
            max_age_seconds: innkeep_http::webhooks::DEFAULT_MAX_AGE_SECS,
            timeout_ms: innkeep_http::webhooks::DEFAULT_TIMEOUT_MS,
            backoff_base_ms: innkeep_http::webhooks::DEFAULT_BACKOFF_BASE_MS,
            backoff_max_ms: innkeep_http::webhooks::DEFAULT_BACKOFF_MAX_MS,
        }
    }
}

/// One `[[api_keys]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySection {
    /// A label for logs and metrics (letters, digits, `-`, `_`, `.`; at most 64).
    #[serde(default)]
    pub name: Option<String>,
    /// SHA-256 of the key, 64 hex digits, as printed by `innkeep keygen`. The key itself
    /// is never configured, so the file grants nothing if it leaks.
    pub key_sha256: String,
    /// `admin`, `channel` or `front_desk`.
    pub role: Role,
    /// Hotel ids the key may see, or `["*"]` for all.
    pub hotels: Vec<String>,
}

/// `[limits]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Requests per second per API key (token bucket refill).
    pub rate_per_second: u32,
    /// Requests a key may make in a burst (token bucket size).
    pub burst: u32,
    /// Most unpaid holds one API key may have open.
    pub max_holds_per_key: usize,
    /// A request still running after this many milliseconds is answered 503 `timeout`.
    pub request_timeout_ms: u64,
    /// Most HTTP connections open at once; past it a new connection is closed at once.
    pub max_connections: usize,
    /// Most HTTP connections open at once from one client IP address; past it a new
    /// connection from that address is closed at once.
    pub max_connections_per_client: usize,
    /// A request's headers must arrive within this many milliseconds (from the accept, or
    /// from the first byte of a later request on a keep-alive connection), or the
    /// connection is closed.
    pub header_timeout_ms: u64,
    /// A keep-alive connection with no request for this many milliseconds is closed.
    pub idle_timeout_ms: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            rate_per_second: DEFAULT_RATE_PER_SECOND,
            burst: DEFAULT_BURST,
            max_holds_per_key: DEFAULT_MAX_HOLDS_PER_CREATOR,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_client: DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
            header_timeout_ms: DEFAULT_HEADER_TIMEOUT_MS,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
        }
    }
}

/// Longest `[[api_keys]] name`.
pub const MAX_KEY_NAME_LEN: usize = 64;

/// `[payment]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentSection {
    /// HMAC key for `/v1/payments/notify`.
    pub secret: Option<String>,
    /// The key being rotated out; still accepted while set.
    pub previous_secret: Option<String>,
    /// Which payment provider charges guests: `none` (no charges are created and
    /// reconciliation is off) or `sandbox` (built in, for demos and tests). Unset: `none`,
    /// or `sandbox` with `--demo`.
    pub provider: Option<Provider>,
    /// How often payments pending too long are reconciled and owed refunds retried.
    pub reconcile_every_seconds: u64,
    /// A payment pending at least this long is asked about.
    pub pending_threshold_seconds: u64,
    /// Time limit of one provider call.
    pub call_timeout_ms: u64,
    /// Attempts per provider operation before waiting for the next reconciliation tick.
    pub max_attempts: u32,
    /// First backoff between attempts; it doubles per attempt, plus jitter.
    pub backoff_base_ms: u64,
    /// `[payment.sandbox]`: the sandbox provider's behaviour and fault rates.
    pub sandbox: SandboxSection,
}

impl Default for PaymentSection {
    fn default() -> Self {
        Self {
            secret: None,
            previous_secret: None,
            provider: None,
            reconcile_every_seconds: 30,
            pending_threshold_seconds: 60,
            call_timeout_ms: 5_000,
            max_attempts: 4,
            backoff_base_ms: 200,
            sandbox: SandboxSection::default(),
        }
    }
}

/// `payment.provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// No provider: payments arrive only through `/v1/payments/notify`.
    None,
    /// The built-in sandbox, which charges after a delay and calls back over HTTP.
    Sandbox,
}

/// `[payment.sandbox]`. Rates are probabilities from 0.0 to 1.0.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxSection {
    /// The guest "pays" this long after the charge is created.
    pub charge_delay_ms: u64,
    /// Share of charges that fail.
    pub fail_rate: f64,
    /// Share of callbacks dropped.
    pub drop_rate: f64,
    /// Share of callbacks sent twice.
    pub duplicate_rate: f64,
    /// Share of callbacks held back so later ones overtake them.
    pub reorder_rate: f64,
    /// Each callback waits a random 0..delay_ms.
    pub delay_ms: u64,
    /// Share of queries answered with an error.
    pub query_error_rate: f64,
    /// Share of refunds answered with an error.
    pub refund_error_rate: f64,
    /// Seed of the fault dice (unset: from the clock).
    pub seed: Option<u64>,
}

impl Default for SandboxSection {
    fn default() -> Self {
        Self {
            charge_delay_ms: 1_000,
            fail_rate: 0.0,
            drop_rate: 0.0,
            duplicate_rate: 0.0,
            reorder_rate: 0.0,
            delay_ms: 0,
            query_error_rate: 0.0,
            refund_error_rate: 0.0,
            seed: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_listen: None,
            grpc_listen: None,
            data_dir: PathBuf::from("./innkeep-data"),
            hold_seconds: 900,
            max_nights: 90,
            horizon_days: 730,
            shards: 0,
            max_in_flight: innkeep_actors::DEFAULT_MAX_IN_FLIGHT,
            snapshot_every_events: 100_000,
            snapshot_every_seconds: 300,
            room_idle_seconds: innkeep_actors::config::DEFAULT_ROOM_IDLE.as_secs(),
            night_audit_time: "04:00".to_owned(),
            resume_window_events: FEED_WINDOW_EVENTS,
            journal_commit_delay_us: innkeep_actors::DEFAULT_JOURNAL_COMMIT_DELAY.as_micros()
                as u64,
            payment: PaymentSection::default(),
            api_keys: Vec::new(),
            limits: LimitsSection::default(),
            telemetry: TelemetrySection::default(),
            webhooks: WebhooksSection::default(),
            cluster: ClusterSection::default(),
        }
    }
}

/// A configuration problem, naming the key or file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config file {path}: {source}")]
    Read {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown key, wrong type).
    #[error("config file {path}: {message}")]
    Parse {
        /// Which file.
        path: PathBuf,
        /// The parser's message, which names the key.
        message: String,
    },
    /// An `INNKEEP_*` variable is unknown or has a bad value.
    #[error("environment variable {name}: {message}")]
    Env {
        /// Which variable.
        name: String,
        /// Why.
        message: String,
    },
    /// The cluster file is not a valid one, or does not name this node.
    #[error("cluster file {path}: {source}")]
    Cluster {
        /// Which file.
        path: PathBuf,
        /// What is wrong in it.
        source: innkeep_http::cluster::ClusterError,
    },
    /// A value is out of range.
    #[error("config key `{key}`: {message}")]
    Value {
        /// Which key.
        key: &'static str,
        /// Why.
        message: String,
    },
}

/// Variables with the prefix that are not configuration keys but are still allowed:
/// the log filter, and the config file's path (read by the binary).
const ENV_ALLOWED: &[&str] = &["INNKEEP_LOG", "INNKEEP_CONFIG"];

impl Config {
    /// Reads `path` (if given), then the environment `vars`, then validates. The variables
    /// are the keys of the same definition ([`env`]): `INNKEEP_` and the dotted path in
    /// capitals, `_` for the dots.
    pub fn load(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let file = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                let parse_error = |message: String| ConfigError::Parse {
                    path: path.to_owned(),
                    message,
                };
                // The file alone first: its errors name the key and the line.
                toml::from_str::<Config>(&text).map_err(|e| parse_error(e.to_string()))?;
                toml::from_str::<toml::Table>(&text).map_err(|e| parse_error(e.to_string()))?
            }
            None => toml::Table::new(),
        };
        let shape = match toml::Value::try_from(Config::default()) {
            Ok(toml::Value::Table(shape)) => shape,
            _ => unreachable!("the default configuration serializes to a TOML table"),
        };
        let mut tree = env::Node::from_file(file);
        for (name, value) in vars {
            let Some(rest) = name.strip_prefix("INNKEEP_") else {
                continue;
            };
            if ENV_ALLOWED.contains(&name.as_str()) {
                continue;
            }
            tree.set_env(&shape, &name, rest, &value);
        }
        let config = Config::deserialize(tree).map_err(|e| ConfigError::Env {
            name: e.name.unwrap_or_else(|| "INNKEEP_*".to_owned()),
            message: e.message,
        })?;
        config.validate()?;
        Ok(config)
    }

    /// This node's cluster, read from `[cluster] file` and validated (a clear error names
    /// what is wrong in the file); `None` without `[cluster]`.
    pub fn cluster(&self) -> Result<Option<innkeep_http::cluster::Cluster>, ConfigError> {
        let (Some(node_id), Some(path)) = (&self.cluster.node_id, &self.cluster.file) else {
            return Ok(None);
        };
        let file = read_cluster_file(path)?;
        innkeep_http::cluster::Cluster::new(file, node_id)
            .map(Some)
            .map_err(|source| ConfigError::Cluster {
                path: path.clone(),
                source,
            })
    }

    /// `[telemetry]`: an endpoint is an `http` or `https` URL with no query or fragment
    /// (the exporter appends the signal's path), and the service has a name.
    fn validate_telemetry(&self) -> Result<(), ConfigError> {
        let t = &self.telemetry;
        if t.service_name.trim().is_empty() || t.service_name.len() > 128 {
            return Err(ConfigError::Value {
                key: "telemetry.service_name",
                message: "must be 1 to 128 characters".to_owned(),
            });
        }
        let Some(endpoint) = &t.otlp_endpoint else {
            return Ok(());
        };
        let bad = |why: &str| ConfigError::Value {
            key: "telemetry.otlp_endpoint",
            message: format!("{endpoint:?} {why}"),
        };
        let url = reqwest::Url::parse(endpoint).map_err(|e| bad(&format!("is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(bad("must be an http:// or https:// URL with a host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad(
                "must have no query or fragment (/v1/traces is appended)",
            ));
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.validate_telemetry()?;
        if self.cluster.node_id.is_some() != self.cluster.file.is_some() {
            return Err(ConfigError::Value {
                key: "cluster",
                message: "set both node_id and file, or neither".to_owned(),
            });
        }
        range(
            "cluster.replication_stall_ms",
            self.cluster.replication_stall_ms,
            100,
            600_000,
        )?;
        if let Some(url) = &self.cluster.nats_url {
            let bad = |why: &str| ConfigError::Value {
                key: "cluster.nats_url",
                message: format!("{url:?} {why}"),
            };
            if self.cluster.node_id.is_none() {
                return Err(bad(
                    "needs [cluster] node_id and file (a node of a cluster)",
                ));
            }
            let parsed =
                reqwest::Url::parse(url).map_err(|e| bad(&format!("is not a URL: {e}")))?;
            let plain = parsed.scheme() == "nats"
                && parsed.host_str().is_some_and(|h| !h.is_empty())
                && matches!(parsed.path(), "" | "/")
                && parsed.query().is_none()
                && parsed.fragment().is_none();
            if !plain {
                return Err(bad("must be nats://host:port"));
            }
        }
        fn range<T: PartialOrd + std::fmt::Display>(
            key: &'static str,
            v: T,
            lo: T,
            hi: T,
        ) -> Result<(), ConfigError> {
            if v < lo || v > hi {
                return Err(ConfigError::Value {
                    key,
                    message: format!("{v} is outside {lo}..={hi}"),
                });
            }
            Ok(())
        }
        range("hold_seconds", self.hold_seconds, 1, 7 * 24 * 3600)?;
        range(
            "room_idle_seconds",
            self.room_idle_seconds,
            innkeep_actors::config::MIN_ROOM_IDLE.as_secs(),
            24 * 3600,
        )?;
        self.night_audit()?;
        range("max_nights", self.max_nights, 1, 730)?;
        range("horizon_days", self.horizon_days, 1, 3650)?;
        range("shards", self.shards, 0, innkeep_actors::shards::MAX_SHARDS)?;
        // Per shard. Above the mailbox capacity a busy actor could park a `send` instead of
        // the engine answering `overloaded` at once (the engine also caps all shards'
        // allowances together at that capacity).
        range(
            "max_in_flight",
            self.max_in_flight,
            1,
            innkeep_actors::room::ROOM_MAILBOX,
        )?;
        range(
            "snapshot_every_events",
            self.snapshot_every_events,
            1,
            u64::MAX,
        )?;
        range(
            "snapshot_every_seconds",
            self.snapshot_every_seconds,
            1,
            86_400,
        )?;
        // Held in memory and re-read from the journal at every start-up.
        range(
            "resume_window_events",
            self.resume_window_events,
            1,
            MAX_FEED_WINDOW_EVENTS,
        )?;
        // Every acknowledgement may wait this long.
        range(
            "journal_commit_delay_us",
            self.journal_commit_delay_us,
            0,
            innkeep_persistence::journal::MAX_COMMIT_DELAY.as_micros() as u64,
        )?;
        range(
            "limits.rate_per_second",
            self.limits.rate_per_second,
            1,
            1_000_000,
        )?;
        range("limits.burst", self.limits.burst, 1, 1_000_000)?;
        range(
            "limits.max_holds_per_key",
            self.limits.max_holds_per_key,
            1,
            1_000_000,
        )?;
        range(
            "limits.request_timeout_ms",
            self.limits.request_timeout_ms,
            1,
            600_000,
        )?;
        range(
            "limits.max_connections",
            self.limits.max_connections,
            1,
            1_000_000,
        )?;
        range(
            "limits.max_connections_per_client",
            self.limits.max_connections_per_client,
            1,
            1_000_000,
        )?;
        range(
            "limits.header_timeout_ms",
            self.limits.header_timeout_ms,
            1,
            600_000,
        )?;
        range(
            "limits.idle_timeout_ms",
            self.limits.idle_timeout_ms,
            1,
            3_600_000,
        )?;
        let w = &self.webhooks;
        // Up to 30 days: the journal keeps what a failing webhook still needs that long.
        range(
            "webhooks.max_age_seconds",
            w.max_age_seconds,
            1,
            30 * 86_400,
        )?;
        range("webhooks.timeout_ms", w.timeout_ms, 1, 600_000)?;
        range("webhooks.backoff_base_ms", w.backoff_base_ms, 1, 3_600_000)?;
        range("webhooks.backoff_max_ms", w.backoff_max_ms, 1, 86_400_000)?;
        if w.backoff_max_ms < w.backoff_base_ms {
            return Err(ConfigError::Value {
                key: "webhooks.backoff_max_ms",
                message: format!(
                    "{} is below webhooks.backoff_base_ms ({})",
                    w.backoff_max_ms, w.backoff_base_ms
                ),
            });
        }
        let p = &self.payment;
        range(
            "payment.reconcile_every_seconds",
            p.reconcile_every_seconds,
            1,
            86_400,
        )?;
        range(
            "payment.pending_threshold_seconds",
            p.pending_threshold_seconds,
            0,
            86_400,
        )?;
        range("payment.call_timeout_ms", p.call_timeout_ms, 1, 600_000)?;
        range("payment.max_attempts", p.max_attempts, 1, 100)?;
        range("payment.backoff_base_ms", p.backoff_base_ms, 1, 600_000)?;
        let sb = &p.sandbox;
        range(
            "payment.sandbox.charge_delay_ms",
            sb.charge_delay_ms,
            0,
            3_600_000,
        )?;
        range("payment.sandbox.delay_ms", sb.delay_ms, 0, 3_600_000)?;
        for (key, rate) in [
            ("payment.sandbox.fail_rate", sb.fail_rate),
            ("payment.sandbox.drop_rate", sb.drop_rate),
            ("payment.sandbox.duplicate_rate", sb.duplicate_rate),
            ("payment.sandbox.reorder_rate", sb.reorder_rate),
            ("payment.sandbox.query_error_rate", sb.query_error_rate),
            ("payment.sandbox.refund_error_rate", sb.refund_error_rate),
        ] {
            // `range` would let NaN through (every comparison with NaN is false).
            if !(0.0..=1.0).contains(&rate) {
                return Err(ConfigError::Value {
                    key,
                    message: format!("{rate} is not a probability in 0.0..=1.0"),
                });
            }
        }
        self.api_key_list()?;
        self.check_exposure()?;
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::Value {
                key: "data_dir",
                message: "must not be empty".into(),
            });
        }
        for (key, secret) in [
            ("payment.secret", &self.payment.secret),
            ("payment.previous_secret", &self.payment.previous_secret),
        ] {
            if let Some(s) = secret {
                if s.len() < MIN_SECRET_BYTES {
                    return Err(ConfigError::Value {
                        key,
                        message: format!("must be at least {MIN_SECRET_BYTES} bytes"),
                    });
                }
            }
        }
        Ok(())
    }

    /// Refuses to serve an open API (no `[[api_keys]]`) on an address other hosts can
    /// reach. Checked when the configuration is loaded and again before binding.
    pub fn check_exposure(&self) -> Result<(), ConfigError> {
        let listeners = [
            ("listen", Some(self.listen)),
            ("grpc_listen", self.grpc_listen),
        ];
        for (key, addr) in listeners {
            let Some(addr) = addr else { continue };
            if self.api_keys.is_empty() && !addr.ip().is_loopback() {
                return Err(ConfigError::Value {
                    key: "api_keys",
                    message: format!(
                        "none are configured, so anyone could use the API, but `{key}` = {addr} \
                         is not a loopback address; add [[api_keys]] (see `innkeep keygen`) or \
                         listen on 127.0.0.1",
                    ),
                });
            }
        }
        Ok(())
    }

    /// The `[[api_keys]]`, validated: 64-hex-digit hashes, known roles, hotel ids or
    /// `["*"]`, no key or name twice.
    pub fn api_key_list(&self) -> Result<Vec<ApiKey>, ConfigError> {
        let mut keys: Vec<ApiKey> = Vec::new();
        for (i, entry) in self.api_keys.iter().enumerate() {
            let label = entry
                .name
                .as_deref()
                .map_or_else(|| format!("#{}", i + 1), |n| format!("#{} ({n})", i + 1));
            let bad = |message: String| ConfigError::Value {
                key: "api_keys",
                message: format!("entry {label}: {message}"),
            };
            let hash = parse_key_sha256(entry.key_sha256.trim()).ok_or_else(|| {
                bad("key_sha256 must be 64 hex digits (the SHA-256 `innkeep keygen` prints)".into())
            })?;
            if let Some(name) = &entry.name {
                let ok = !name.is_empty()
                    && name.len() <= MAX_KEY_NAME_LEN
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
                if !ok {
                    return Err(bad(format!(
                        "name must be 1 to {MAX_KEY_NAME_LEN} letters, digits, '-', '_' or '.'"
                    )));
                }
                if keys
                    .iter()
                    .any(|k| k.name.as_deref() == Some(name.as_str()))
                {
                    return Err(bad(format!("name {name:?} is used by another key")));
                }
            }
            if keys.iter().any(|k| k.key_sha256 == hash) {
                return Err(bad("key_sha256 is configured twice".into()));
            }
            let hotels = match entry.hotels.as_slice() {
                [] => return Err(bad("hotels must list hotel ids, or be [\"*\"]".into())),
                [all] if all == "*" => HotelScope::All,
                list => {
                    let mut set = std::collections::BTreeSet::new();
                    for h in list {
                        let id = HotelId::parse(h).map_err(|e| {
                            bad(format!(
                                "hotels: {h:?} is not a hotel id ({}); \"*\" must stand alone",
                                e.reason
                            ))
                        })?;
                        set.insert(id.as_str().to_owned());
                    }
                    HotelScope::Only(set)
                }
            };
            keys.push(ApiKey {
                name: entry.name.clone(),
                key_sha256: hash,
                role: entry.role,
                hotels,
            });
        }
        Ok(keys)
    }

    /// The HTTP layer's keys (none: open mode).
    pub fn auth(&self) -> Result<AuthConfig, ConfigError> {
        Ok(AuthConfig::new(self.api_key_list()?))
    }

    /// The HTTP layer's limits.
    pub fn http_limits(&self) -> HttpLimits {
        HttpLimits {
            rate_per_second: self.limits.rate_per_second,
            burst: self.limits.burst,
            request_timeout: Duration::from_millis(self.limits.request_timeout_ms),
        }
    }

    /// The connection limits and timeouts of the HTTP listener.
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.limits.max_connections,
            max_connections_per_client: self.limits.max_connections_per_client,
            header_timeout: Duration::from_millis(self.limits.header_timeout_ms),
            idle_timeout: Duration::from_millis(self.limits.idle_timeout_ms),
        }
    }

    /// `night_audit_time` parsed: exactly `HH:MM`, 00:00 to 23:59.
    pub fn night_audit(&self) -> Result<innkeep_actors::engine::jiff::civil::Time, ConfigError> {
        let bad = || ConfigError::Value {
            key: "night_audit_time",
            message: format!(
                "{:?} is not a time of day like \"04:00\" (HH:MM, 24-hour)",
                self.night_audit_time
            ),
        };
        let raw = self.night_audit_time.as_str();
        let (h, m) = raw.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(bad());
        }
        let h: i8 = h.parse().map_err(|_| bad())?;
        let m: i8 = m.parse().map_err(|_| bad())?;
        innkeep_actors::engine::jiff::civil::Time::new(h, m, 0, 0).map_err(|_| bad())
    }

    /// The engine's share of the configuration.
    pub fn engine(&self, sync: SyncMode) -> EngineConfig {
        EngineConfig {
            // Checked by `validate`; a config built by hand falls back to the default.
            night_audit_time: self
                .night_audit()
                .unwrap_or(innkeep_actors::DEFAULT_NIGHT_AUDIT_TIME),
            hold_seconds: self.hold_seconds,
            limits: StayLimits {
                max_nights: self.max_nights,
                horizon_days: self.horizon_days,
            },
            shards: self.shards,
            max_in_flight: self.max_in_flight,
            sync,
            snapshot_every_events: self.snapshot_every_events,
            snapshot_every: Duration::from_secs(self.snapshot_every_seconds),
            room_idle: Duration::from_secs(self.room_idle_seconds),
            resume_window_events: self.resume_window_events,
            journal_commit_delay: Duration::from_micros(self.journal_commit_delay_us),
            max_holds_per_creator: self.limits.max_holds_per_key,
            payment: PaymentPolicy {
                gateway: None,
                retry: RetryPolicy {
                    call_timeout: Duration::from_millis(self.payment.call_timeout_ms),
                    max_attempts: self.payment.max_attempts,
                    backoff_base: Duration::from_millis(self.payment.backoff_base_ms),
                    backoff_max: Duration::from_secs(30),
                },
                reconcile_every: Duration::from_secs(self.payment.reconcile_every_seconds),
                pending_threshold: Duration::from_secs(self.payment.pending_threshold_seconds),
                ..PaymentPolicy::default()
            },
            ..EngineConfig::new(&self.data_dir)
        }
    }

    /// How outbound webhooks deliver.
    pub fn webhook_settings(&self) -> WebhookSettings {
        let w = &self.webhooks;
        WebhookSettings {
            reach: if w.allow_private {
                Reach::Private
            } else {
                Reach::PublicOnly
            },
            max_age: Duration::from_secs(w.max_age_seconds),
            timeout: Duration::from_millis(w.timeout_ms),
            backoff_base: Duration::from_millis(w.backoff_base_ms),
            backoff_max: Duration::from_millis(w.backoff_max_ms),
        }
    }

    /// The provider in effect: `payment.provider`, or by default `sandbox` with `--demo`
    /// and `none` otherwise.
    pub fn provider(&self, demo: bool) -> Provider {
        self.payment.provider.unwrap_or(if demo {
            Provider::Sandbox
        } else {
            Provider::None
        })
    }

    /// The sandbox provider's settings, calling back to `notify_url` signed with `secret`.
    pub fn sandbox(&self, notify_url: String, secret: &[u8]) -> SandboxConfig {
        let sb = &self.payment.sandbox;
        SandboxConfig {
            charge_delay: Duration::from_millis(sb.charge_delay_ms),
            fail_rate: sb.fail_rate,
            drop_rate: sb.drop_rate,
            duplicate_rate: sb.duplicate_rate,
            reorder_rate: sb.reorder_rate,
            delay: Duration::from_millis(sb.delay_ms),
            query_error_rate: sb.query_error_rate,
            refund_error_rate: sb.refund_error_rate,
            seed: sb.seed,
            ..SandboxConfig::new(notify_url, secret.to_vec())
        }
    }
}

/// Reads and validates the cluster file at `path`.
pub fn read_cluster_file(path: &Path) -> Result<innkeep_http::cluster::ClusterFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    innkeep_http::cluster::ClusterFile::parse(&text).map_err(|source| ConfigError::Cluster {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("innkeep.toml");
        std::fs::write(&path, toml).unwrap();
        Config::load(
            Some(&path),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn defaults_match_the_design() {
        let c = Config::load(None, Vec::new()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./innkeep-data"));
        assert_eq!(c.hold_seconds, 900);
    }

    #[test]
    fn file_then_environment() {
        let c = load(
            "listen = \"127.0.0.1:9000\"\nhold_seconds = 60\n[payment]\nsecret = \"0123456789abcdef\"\n",
            &[("INNKEEP_HOLD_SECONDS", "30"), ("PATH", "/bin")],
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.hold_seconds, 30);
        assert_eq!(c.payment.secret.as_deref(), Some("0123456789abcdef"));
    }

    #[test]
    fn errors_name_the_key() {
        let e = load("listen = \"127.0.0.1:9000\"\nbogus = 1\n", &[]).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = load("[payment]\nsecrett = \"x\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("secrett"), "{e}");
        for bad in ["4:00", "24:00", "04:60", "0400", "noon"] {
            let e = load(&format!("night_audit_time = \"{bad}\"\n"), &[]).unwrap_err();
            assert!(e.to_string().contains("night_audit_time"), "{bad}: {e}");
        }
        for bad in ["0", "86401"] {
            let e = load(&format!("room_idle_seconds = {bad}\n"), &[]).unwrap_err();
            assert!(e.to_string().contains("room_idle_seconds"), "{bad}: {e}");
        }
        let c = load("", &[("INNKEEP_ROOM_IDLE_SECONDS", "30")]).unwrap();
        assert_eq!(
            c.engine(SyncMode::Fdatasync).room_idle,
            Duration::from_secs(30)
        );
        let c = load("", &[("INNKEEP_NIGHT_AUDIT_TIME", "03:30")]).unwrap();
        assert_eq!(
            c.engine(SyncMode::Fdatasync).night_audit_time,
            innkeep_actors::engine::jiff::civil::time(3, 30, 0, 0)
        );
        let e = load("hold_seconds = \"soon\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("hold_seconds"), "{e}");
        let e = load("hold_seconds = 0\n", &[]).unwrap_err();
        assert!(e.to_string().contains("hold_seconds"), "{e}");
        let e = load("", &[("INNKEEP_HOLD_SECONDS", "abc")]).unwrap_err();
        assert!(e.to_string().contains("INNKEEP_HOLD_SECONDS"), "{e}");
        let e = load("", &[("INNKEEP_NOPE", "1")]).unwrap_err();
        assert!(e.to_string().contains("INNKEEP_NOPE"), "{e}");
        let e = load("", &[("INNKEEP_LISTEN", "localhost")]).unwrap_err();
        assert!(e.to_string().contains("INNKEEP_LISTEN"), "{e}");
        let e = load("[payment]\nsecret = \"short\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("payment.secret"), "{e}");
    }

    /// Every key of the definition is reachable from the environment under its derived
    /// name, and a variable's text takes its key's type.
    #[test]
    fn every_key_has_its_variable() {
        let Ok(toml::Value::Table(shape)) = toml::Value::try_from(Config::default()) else {
            panic!("the default configuration is a table");
        };
        fn leaves(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
            for (k, v) in table {
                let path = format!("{prefix}{k}");
                match v {
                    toml::Value::Table(t) => leaves(t, &format!("{path}."), out),
                    toml::Value::Array(_) => {}
                    _ => out.push(path),
                }
            }
        }
        let mut paths = Vec::new();
        leaves(&shape, "", &mut paths);
        assert!(paths.len() >= 30, "{paths:?}");
        assert!(paths.contains(&"payment.sandbox.fail_rate".to_owned()));
        for path in &paths {
            let name = format!("INNKEEP_{}", path.to_ascii_uppercase().replace('.', "_"));
            let mut tree = env::Node::from_file(toml::Table::new());
            tree.set_env(&shape, &name, &name["INNKEEP_".len()..], "1");
            let mut node = &tree;
            for part in path.split('.') {
                let env::Node::Table(map) = node else {
                    panic!("{name} did not reach {path}: {tree:?}");
                };
                node = map
                    .get(part)
                    .unwrap_or_else(|| panic!("{name} did not reach {path}: {tree:?}"));
            }
            assert!(matches!(node, env::Node::Env { .. }), "{name}: {tree:?}");
        }
        // Keys that are unset by default (options) are reachable too; a numeric secret
        // stays text, a number is parsed, an enum is read by name.
        let c = load(
            "",
            &[
                ("INNKEEP_PAYMENT_SECRET", "1234567890123456"),
                ("INNKEEP_PAYMENT_PREVIOUS_SECRET", "abcdefghijklmnop"),
                ("INNKEEP_PAYMENT_SANDBOX_SEED", "7"),
                ("INNKEEP_PAYMENT_PROVIDER", "sandbox"),
                ("INNKEEP_LIMITS_IDLE_TIMEOUT_MS", " 2500 "),
                ("INNKEEP_DATA_DIR", "/tmp/x y"),
            ],
        )
        .unwrap();
        assert_eq!(c.payment.secret.as_deref(), Some("1234567890123456"));
        assert_eq!(
            c.payment.previous_secret.as_deref(),
            Some("abcdefghijklmnop")
        );
        assert_eq!(c.payment.sandbox.seed, Some(7));
        assert_eq!(c.payment.provider, Some(Provider::Sandbox));
        assert_eq!(c.limits.idle_timeout_ms, 2500);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x y"));
        // A variable beats the file; an unknown one inside a section is named.
        let c = load("[limits]\nburst = 5\n", &[("INNKEEP_LIMITS_BURST", "9")]).unwrap();
        assert_eq!(c.limits.burst, 9);
        let e = load("", &[("INNKEEP_LIMITS_BOGUS", "1")]).unwrap_err();
        assert!(e.to_string().contains("INNKEEP_LIMITS_BOGUS"), "{e}");
        let e = load("", &[("INNKEEP_PAYMENT_SANDBOX_SEED", "-1")]).unwrap_err();
        assert!(
            e.to_string().contains("INNKEEP_PAYMENT_SANDBOX_SEED"),
            "{e}"
        );
        let e = load("", &[("INNKEEP_PAYMENT", "1")]).unwrap_err();
        assert!(e.to_string().contains("INNKEEP_PAYMENT"), "{e}");
    }

    #[test]
    fn telemetry_endpoint_is_an_http_url() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.telemetry.otlp_endpoint, None);
        let c = load(
            "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\n",
            &[("INNKEEP_TELEMETRY_SERVICE_NAME", "inn-1")],
        )
        .unwrap();
        assert_eq!(
            c.telemetry.otlp_endpoint.as_deref(),
            Some("http://127.0.0.1:4318")
        );
        assert_eq!(c.telemetry.service_name, "inn-1");
        for bad in [
            "collector:4318",
            "ftp://x",
            "http://x/?a=1",
            "http://x/#f",
            "not a url",
        ] {
            let e = load("", &[("INNKEEP_TELEMETRY_OTLP_ENDPOINT", bad)]).unwrap_err();
            assert!(
                e.to_string().contains("telemetry.otlp_endpoint"),
                "{bad}: {e}"
            );
        }
        let e = load("[telemetry]\nservice_name = \"\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("telemetry.service_name"), "{e}");
    }

    #[test]
    fn resume_window_is_bounded_and_reaches_the_engine() {
        let c = Config::load(None, Vec::new()).unwrap();
        assert_eq!(c.resume_window_events, 65_536);
        assert_eq!(c.engine(SyncMode::Fdatasync).resume_window_events, 65_536);
        let c = load(
            "resume_window_events = 100\n",
            &[("INNKEEP_RESUME_WINDOW_EVENTS", "8")],
        )
        .unwrap();
        assert_eq!(c.engine(SyncMode::Fdatasync).resume_window_events, 8);
        for bad in [
            "resume_window_events = 0\n",
            "resume_window_events = 1048577\n",
        ] {
            let e = load(bad, &[]).unwrap_err();
            assert!(e.to_string().contains("resume_window_events"), "{e}");
        }
    }

    #[test]
    fn journal_commit_delay_is_bounded_and_reaches_the_engine() {
        let c = Config::load(None, Vec::new()).unwrap();
        assert_eq!(
            c.engine(SyncMode::Fdatasync).journal_commit_delay,
            innkeep_actors::DEFAULT_JOURNAL_COMMIT_DELAY
        );
        let c = load(
            "journal_commit_delay_us = 100\n",
            &[("INNKEEP_JOURNAL_COMMIT_DELAY_US", "0")],
        )
        .unwrap();
        assert_eq!(
            c.engine(SyncMode::Fdatasync).journal_commit_delay,
            Duration::ZERO
        );
        let c = load("journal_commit_delay_us = 750\n", &[]).unwrap();
        assert_eq!(
            c.engine(SyncMode::Fdatasync).journal_commit_delay,
            Duration::from_micros(750)
        );
        let e = load("journal_commit_delay_us = 1000001\n", &[]).unwrap_err();
        assert!(e.to_string().contains("journal_commit_delay_us"), "{e}");
    }

    #[test]
    fn payment_provider_and_sandbox_keys() {
        let c = Config::load(None, Vec::new()).unwrap();
        assert_eq!(c.provider(false), Provider::None);
        assert_eq!(c.provider(true), Provider::Sandbox);
        let c = load(
            "[payment]\nprovider = \"sandbox\"\nreconcile_every_seconds = 2\n[payment.sandbox]\ndrop_rate = 0.3\ncharge_delay_ms = 50\n",
            &[
                ("INNKEEP_PAYMENT_SANDBOX_DUPLICATE_RATE", "0.25"),
                ("INNKEEP_PAYMENT_PENDING_THRESHOLD_SECONDS", "1"),
            ],
        )
        .unwrap();
        assert_eq!(c.provider(false), Provider::Sandbox);
        assert_eq!(c.payment.sandbox.drop_rate, 0.3);
        assert_eq!(c.payment.sandbox.duplicate_rate, 0.25);
        assert_eq!(c.payment.pending_threshold_seconds, 1);
        let e = load("", &[("INNKEEP_PAYMENT_PROVIDER", "paypal")]).unwrap_err();
        assert!(e.to_string().contains("INNKEEP_PAYMENT_PROVIDER"), "{e}");
        let e = load("[payment]\nprovider = \"paypal\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("provider"), "{e}");
        let e = load("[payment.sandbox]\ndrop_rate = 1.5\n", &[]).unwrap_err();
        assert!(e.to_string().contains("payment.sandbox.drop_rate"), "{e}");
        let e = load("", &[("INNKEEP_PAYMENT_SANDBOX_REFUND_ERROR_RATE", "NaN")]).unwrap_err();
        assert!(e.to_string().contains("refund_error_rate"), "{e}");
        let e = load("[payment.sandbox]\ndrop = 0.1\n", &[]).unwrap_err();
        assert!(e.to_string().contains("drop"), "{e}");
        let e = load("[payment]\nreconcile_every_seconds = 0\n", &[]).unwrap_err();
        assert!(e.to_string().contains("reconcile_every_seconds"), "{e}");
    }

    #[test]
    fn webhooks_section_from_file_and_environment() {
        let d = Config::load(None, Vec::new()).unwrap();
        assert_eq!(d.webhooks, WebhooksSection::default());
        let s = d.webhook_settings();
        assert_eq!(s.reach, Reach::PublicOnly);
        assert_eq!(s.max_age, Duration::from_secs(86_400));
        let c = load(
            "[webhooks]\nallow_private = true\nmax_age_seconds = 60\ntimeout_ms = 500\nbackoff_base_ms = 10\nbackoff_max_ms = 100\n",
            &[("INNKEEP_WEBHOOKS_TIMEOUT_MS", "700")],
        )
        .unwrap();
        let s = c.webhook_settings();
        assert_eq!(s.reach, Reach::Private);
        assert_eq!(
            (s.max_age, s.timeout, s.backoff_base, s.backoff_max),
            (
                Duration::from_secs(60),
                Duration::from_millis(700),
                Duration::from_millis(10),
                Duration::from_millis(100)
            )
        );
        let c = load(
            "",
            &[
                ("INNKEEP_WEBHOOKS_ALLOW_PRIVATE", "true"),
                ("INNKEEP_WEBHOOKS_MAX_AGE_SECONDS", "5"),
                ("INNKEEP_WEBHOOKS_BACKOFF_BASE_MS", "3"),
                ("INNKEEP_WEBHOOKS_BACKOFF_MAX_MS", "4"),
            ],
        )
        .unwrap();
        assert!(c.webhooks.allow_private);
        assert_eq!(
            (
                c.webhooks.max_age_seconds,
                c.webhooks.backoff_base_ms,
                c.webhooks.backoff_max_ms
            ),
            (5, 3, 4)
        );
        for (toml, env, names) in [
            (
                "[webhooks]\nmax_age_seconds = 0\n",
                None,
                "webhooks.max_age_seconds",
            ),
            (
                "[webhooks]\nbackoff_base_ms = 50\nbackoff_max_ms = 10\n",
                None,
                "webhooks.backoff_max_ms",
            ),
            ("[webhooks]\nretries = 3\n", None, "retries"),
            (
                "",
                Some(("INNKEEP_WEBHOOKS_ALLOW_PRIVATE", "yes")),
                "INNKEEP_WEBHOOKS_ALLOW_PRIVATE",
            ),
            (
                "",
                Some(("INNKEEP_WEBHOOKS_TIMEOUT_MS", "0")),
                "webhooks.timeout_ms",
            ),
        ] {
            let e = load(toml, &env.into_iter().collect::<Vec<_>>()).unwrap_err();
            assert!(e.to_string().contains(names), "{toml} {env:?}: {e}");
        }
    }

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const HASH2: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

    #[test]
    fn api_keys_and_limits() {
        let c = load(
            &format!(
                "listen = \"0.0.0.0:8080\"\n\
                 [[api_keys]]\nname = \"ota-1\"\nkey_sha256 = \"{HASH}\"\nrole = \"channel\"\nhotels = [\"H1\", \"H2\"]\n\
                 [[api_keys]]\nkey_sha256 = \"{}\"\nrole = \"front_desk\"\nhotels = [\"*\"]\n\
                 [limits]\nrate_per_second = 5\nburst = 10\nmax_holds_per_key = 3\nrequest_timeout_ms = 250\nmax_connections = 7\n\
                 max_connections_per_client = 3\nheader_timeout_ms = 1500\nidle_timeout_ms = 9000\n",
                HASH2.to_uppercase()
            ),
            &[
                ("INNKEEP_LIMITS_BURST", "12"),
                ("INNKEEP_LIMITS_MAX_CONNECTIONS", "8"),
                ("INNKEEP_LIMITS_IDLE_TIMEOUT_MS", "20000"),
            ],
        )
        .unwrap();
        let keys = c.api_key_list().unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].role, Role::Channel);
        assert_eq!(keys[0].name.as_deref(), Some("ota-1"));
        assert!(keys[0].hotels.contains("H2") && !keys[0].hotels.contains("H3"));
        assert_eq!(keys[1].role, Role::FrontDesk);
        assert_eq!(keys[1].hotels, HotelScope::All);
        assert_eq!(hex::encode(keys[1].key_sha256), HASH2);
        assert!(!c.auth().unwrap().is_open());
        assert_eq!(
            (
                c.limits.rate_per_second,
                c.limits.burst,
                c.limits.max_connections
            ),
            (5, 12, 8)
        );
        assert_eq!(c.http_limits().request_timeout, Duration::from_millis(250));
        assert_eq!(
            c.connection_limits(),
            ConnectionLimits {
                max_connections: 8,
                max_connections_per_client: 3,
                header_timeout: Duration::from_millis(1500),
                idle_timeout: Duration::from_millis(20_000),
            }
        );
        assert_eq!(c.engine(SyncMode::Fdatasync).max_holds_per_creator, 3);

        let d = Config::load(None, Vec::new()).unwrap();
        assert_eq!(d.limits, LimitsSection::default());
        assert_eq!(d.limits.max_holds_per_key, 50);
        assert_eq!(d.limits.request_timeout_ms, 5000);
        assert_eq!(d.limits.max_connections, 10_000);
        assert_eq!(d.limits.max_connections_per_client, 4_096);
        assert_eq!(d.limits.header_timeout_ms, 10_000);
        assert_eq!(d.limits.idle_timeout_ms, 60_000);
        assert_eq!(d.connection_limits(), ConnectionLimits::default());
        assert!(d.auth().unwrap().is_open());
        for (var, key) in [
            ("INNKEEP_LIMITS_RATE_PER_SECOND", "rate_per_second"),
            ("INNKEEP_LIMITS_MAX_HOLDS_PER_KEY", "max_holds_per_key"),
            ("INNKEEP_LIMITS_REQUEST_TIMEOUT_MS", "request_timeout_ms"),
            (
                "INNKEEP_LIMITS_MAX_CONNECTIONS_PER_CLIENT",
                "max_connections_per_client",
            ),
            ("INNKEEP_LIMITS_HEADER_TIMEOUT_MS", "header_timeout_ms"),
            ("INNKEEP_LIMITS_IDLE_TIMEOUT_MS", "idle_timeout_ms"),
        ] {
            let c = load("", &[(var, "9")]).unwrap();
            let got = match key {
                "rate_per_second" => u64::from(c.limits.rate_per_second),
                "max_holds_per_key" => c.limits.max_holds_per_key as u64,
                "max_connections_per_client" => c.limits.max_connections_per_client as u64,
                "header_timeout_ms" => c.limits.header_timeout_ms,
                "idle_timeout_ms" => c.limits.idle_timeout_ms,
                _ => c.limits.request_timeout_ms,
            };
            assert_eq!(got, 9, "{var}");
        }
    }

    #[test]
    fn bad_api_keys_and_limits_name_the_key() {
        let entry = |body: &str| format!("[[api_keys]]\n{body}\n");
        let cases = [
            (entry(&format!("key_sha256 = \"{HASH}\"\nrole = \"owner\"\nhotels = [\"*\"]")), "role"),
            (entry("key_sha256 = \"abc\"\nrole = \"admin\"\nhotels = [\"*\"]"), "key_sha256"),
            (entry(&format!("key_sha256 = \"{HASH}\"\nrole = \"admin\"\nhotels = []")), "hotels"),
            (entry(&format!("key_sha256 = \"{HASH}\"\nrole = \"admin\"\nhotels = [\"*\", \"H1\"]")), "hotels"),
            (entry(&format!("key_sha256 = \"{HASH}\"\nrole = \"admin\"\nhotels = [\"bad id\"]")), "hotels"),
            (entry(&format!("key_sha256 = \"{HASH}\"\nrole = \"admin\"")), "hotels"),
            (entry(&format!("key_sha256 = \"{HASH}\"\nrole = \"admin\"\nhotels = [\"*\"]\nsecret = \"x\"")), "secret"),
            (entry(&format!("name = \"has space\"\nkey_sha256 = \"{HASH}\"\nrole = \"admin\"\nhotels = [\"*\"]")), "name"),
            (
                entry(&format!("key_sha256 = \"{HASH}\"\nrole = \"admin\"\nhotels = [\"*\"]"))
                    + &entry(&format!("key_sha256 = \"{HASH}\"\nrole = \"channel\"\nhotels = [\"*\"]")),
                "twice",
            ),
            ("[limits]\nburst = 0\n".to_owned(), "limits.burst"),
            ("[limits]\nrate_per_second = 0\n".to_owned(), "limits.rate_per_second"),
            ("[limits]\nmax_holds_per_key = 0\n".to_owned(), "limits.max_holds_per_key"),
            ("[limits]\nrequest_timeout_ms = 0\n".to_owned(), "limits.request_timeout_ms"),
            ("[limits]\nmax_connections = 0\n".to_owned(), "limits.max_connections"),
            (
                "[limits]\nmax_connections_per_client = 0\n".to_owned(),
                "limits.max_connections_per_client",
            ),
            ("[limits]\nheader_timeout_ms = 0\n".to_owned(), "limits.header_timeout_ms"),
            ("[limits]\nidle_timeout_ms = 0\n".to_owned(), "limits.idle_timeout_ms"),
            ("[limits]\nidle_timeout_ms = 3600001\n".to_owned(), "limits.idle_timeout_ms"),
            ("[limits]\nrate = 1\n".to_owned(), "rate"),
        ];
        for (toml, needle) in cases {
            let e = load(&toml, &[]).unwrap_err().to_string();
            assert!(e.contains(needle), "{toml:?}: {e}");
        }
        let e = load("", &[("INNKEEP_LIMITS_BURST", "many")]).unwrap_err();
        assert!(e.to_string().contains("INNKEEP_LIMITS_BURST"), "{e}");
        let e = load("", &[("INNKEEP_LIMITS_HEADER_TIMEOUT_MS", "10s")]).unwrap_err();
        assert!(
            e.to_string().contains("INNKEEP_LIMITS_HEADER_TIMEOUT_MS"),
            "{e}"
        );
        let e = load("", &[("INNKEEP_LIMITS_MAX_CONNECTIONS_PER_CLIENT", "0")]).unwrap_err();
        assert!(
            e.to_string().contains("limits.max_connections_per_client"),
            "{e}"
        );
        // INNKEEP_CONFIG names the file; it is not a key.
        assert!(load("", &[("INNKEEP_CONFIG", "/x.toml")]).is_ok());
    }

    #[test]
    fn no_keys_on_a_non_loopback_address_refuses_to_start() {
        for listen in ["0.0.0.0:8080", "192.0.2.1:8080", "[::]:8080"] {
            let e = load(&format!("listen = \"{listen}\"\n"), &[]).unwrap_err();
            let text = e.to_string();
            assert!(
                text.contains("api_keys") && text.contains("listen"),
                "{text}"
            );
            let e = load("", &[("INNKEEP_LISTEN", listen)]).unwrap_err();
            assert!(e.to_string().contains("api_keys"), "{e}");
        }
        for listen in ["127.0.0.1:8080", "127.0.0.2:0", "[::1]:8080"] {
            assert!(
                load(&format!("listen = \"{listen}\"\n"), &[]).is_ok(),
                "{listen}"
            );
        }
        let keyed = format!(
            "listen = \"0.0.0.0:8080\"\n[[api_keys]]\nkey_sha256 = \"{HASH}\"\nrole = \"admin\"\nhotels = [\"*\"]\n"
        );
        assert!(load(&keyed, &[]).is_ok());
    }

    #[test]
    fn cluster_section_reads_and_checks_its_file() {
        let c = load("", &[]).unwrap();
        assert!(c.cluster().unwrap().is_none());
        let e = load("[cluster]\nnode_id = \"a\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("set both node_id and file"), "{e}");
        let e = load("", &[("INNKEEP_CLUSTER_NATS_URL", "nats://127.0.0.1:4222")]).unwrap_err();
        assert!(e.to_string().contains("needs [cluster] node_id"), "{e}");
        let node = [
            ("INNKEEP_CLUSTER_NODE_ID", "a"),
            ("INNKEEP_CLUSTER_FILE", "c.toml"),
        ];
        for bad in [
            "http://127.0.0.1:4222",
            "nats://",
            "nats://h:4222/path",
            "127.0.0.1:4222",
        ] {
            let vars = [node[0], node[1], ("INNKEEP_CLUSTER_NATS_URL", bad)];
            let e = load("", &vars).unwrap_err().to_string();
            assert!(e.contains("cluster.nats_url"), "{bad}: {e}");
        }
        let vars = [
            node[0],
            node[1],
            ("INNKEEP_CLUSTER_NATS_URL", "nats://10.0.0.9:4222"),
        ];
        let c = load("", &vars).unwrap();
        assert_eq!(c.cluster.nats_url.as_deref(), Some("nats://10.0.0.9:4222"));
        assert_eq!(c.cluster.replication, Replication::Sync);
        assert_eq!(c.cluster.replication_stall_ms, 5_000);
        let e = load("[cluster]\nreplication = \"eventually\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("replication"), "{e}");
        let e = load("", &[("INNKEEP_CLUSTER_REPLICATION_STALL_MS", "50")]).unwrap_err();
        assert!(
            e.to_string().contains("cluster.replication_stall_ms"),
            "{e}"
        );
        let c = load("", &[("INNKEEP_CLUSTER_REPLICATION", "async")]).unwrap();
        assert_eq!(c.cluster.replication, Replication::Async);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.toml");
        std::fs::write(
            &path,
            "[[nodes]]\nid = \"a\"\naddress = \"127.0.0.1:8081\"\n\
             [[partitions]]\nid = \"p1\"\nprimary = \"a\"\nhotels = [\"H1\"]\n",
        )
        .unwrap();
        let file = path.to_str().unwrap();
        // From the environment, like every key.
        let c = load(
            "",
            &[
                ("INNKEEP_CLUSTER_NODE_ID", "a"),
                ("INNKEEP_CLUSTER_FILE", file),
            ],
        )
        .unwrap();
        let cluster = c.cluster().unwrap().unwrap();
        assert_eq!(cluster.this_node().id, "a");
        assert_eq!(cluster.owns("p1"), Some(true));
        // A node the file does not name, a file that is not there, and a bad file are
        // start-up errors naming the file.
        let c = load(
            &format!("[cluster]\nnode_id = \"z\"\nfile = {file:?}\n"),
            &[],
        )
        .unwrap();
        let e = c.cluster().unwrap_err().to_string();
        assert!(e.contains(file) && e.contains("\"z\" is not one of"), "{e}");
        let missing = dir.path().join("missing.toml");
        let c = load(
            "",
            &[
                ("INNKEEP_CLUSTER_NODE_ID", "a"),
                ("INNKEEP_CLUSTER_FILE", missing.to_str().unwrap()),
            ],
        )
        .unwrap();
        let e = c.cluster().unwrap_err().to_string();
        assert!(e.contains("missing.toml"), "{e}");
        std::fs::write(&path, "[[nodes]]\nid = \"a\"\n").unwrap();
        let e = c_with(file).cluster().unwrap_err().to_string();
        assert!(e.contains(file) && e.contains("address"), "{e}");

        fn c_with(file: &str) -> Config {
            load(
                "",
                &[
                    ("INNKEEP_CLUSTER_NODE_ID", "a"),
                    ("INNKEEP_CLUSTER_FILE", file),
                ],
            )
            .unwrap()
        }
    }

    #[test]
    fn grpc_is_off_by_default_and_set_like_listen() {
        assert_eq!(load("", &[]).unwrap().grpc_listen, None);
        let c = load("grpc_listen = \"127.0.0.1:50051\"\n", &[]).unwrap();
        assert_eq!(c.grpc_listen, Some("127.0.0.1:50051".parse().unwrap()));
        let c = load("", &[("INNKEEP_GRPC_LISTEN", "127.0.0.1:0")]).unwrap();
        assert_eq!(c.grpc_listen, Some("127.0.0.1:0".parse().unwrap()));
        // The environment can switch off what the file turned on.
        let c = load(
            "grpc_listen = \"127.0.0.1:50051\"\n",
            &[("INNKEEP_GRPC_LISTEN", "")],
        )
        .unwrap();
        assert_eq!(c.grpc_listen, None);
        let e = load("", &[("INNKEEP_GRPC_LISTEN", "50051")]).unwrap_err();
        assert!(e.to_string().contains("INNKEEP_GRPC_LISTEN"), "{e}");
        // An open API is refused on a reachable gRPC address too.
        let e = load("grpc_listen = \"0.0.0.0:50051\"\n", &[]).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("api_keys") && text.contains("grpc_listen"),
            "{text}"
        );
        let keyed = format!(
            "grpc_listen = \"0.0.0.0:50051\"\n[[api_keys]]\nkey_sha256 = \"{HASH}\"\nrole = \"admin\"\nhotels = [\"*\"]\n"
        );
        assert!(load(&keyed, &[]).is_ok());
    }
}
