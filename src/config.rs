//! `innkeep serve` configuration: a TOML file, then `INNKEEP_*` environment variables on
//! top. An unknown key, a bad value or an unusable data dir stops start-up with a message
//! that names it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use innkeep_actors::{EngineConfig, SyncMode};
use innkeep_engine::StayLimits;
use serde::Deserialize;

/// Shortest payment secret we accept: an HMAC key much shorter than this is guessable.
pub const MIN_SECRET_BYTES: usize = 16;

/// Everything `innkeep serve` reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Journal and snapshots live here; created if missing.
    pub data_dir: PathBuf,
    /// Unpaid holds expire after this many seconds.
    pub hold_seconds: u64,
    /// Longest stay in nights.
    pub max_nights: u32,
    /// How far ahead a departure may be, in days.
    pub horizon_days: u32,
    /// Threads hosting room actors; 0 = one per core.
    pub arbiters: usize,
    /// Most engine calls in flight before answering 503 `overloaded`.
    pub max_in_flight: usize,
    /// Snapshot after this many events...
    pub snapshot_every_events: u64,
    /// ...or this many seconds.
    pub snapshot_every_seconds: u64,
    /// Payment provider settings.
    pub payment: PaymentSection,
}

/// `[payment]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentSection {
    /// HMAC key for `/v1/payments/notify`.
    pub secret: Option<String>,
    /// The key being rotated out; still accepted while set.
    pub previous_secret: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./innkeep-data"),
            hold_seconds: 900,
            max_nights: 90,
            horizon_days: 730,
            arbiters: 0,
            max_in_flight: 16_384,
            snapshot_every_events: 100_000,
            snapshot_every_seconds: 300,
            payment: PaymentSection::default(),
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
    /// A value is out of range.
    #[error("config key `{key}`: {message}")]
    Value {
        /// Which key.
        key: &'static str,
        /// Why.
        message: String,
    },
}

/// The environment variables read, and the key each sets.
pub const ENV_KEYS: &[(&str, &str)] = &[
    ("INNKEEP_LISTEN", "listen"),
    ("INNKEEP_DATA_DIR", "data_dir"),
    ("INNKEEP_HOLD_SECONDS", "hold_seconds"),
    ("INNKEEP_MAX_NIGHTS", "max_nights"),
    ("INNKEEP_HORIZON_DAYS", "horizon_days"),
    ("INNKEEP_ARBITERS", "arbiters"),
    ("INNKEEP_MAX_IN_FLIGHT", "max_in_flight"),
    ("INNKEEP_SNAPSHOT_EVERY_EVENTS", "snapshot_every_events"),
    ("INNKEEP_SNAPSHOT_EVERY_SECONDS", "snapshot_every_seconds"),
    ("INNKEEP_PAYMENT_SECRET", "payment.secret"),
    ("INNKEEP_PAYMENT_PREVIOUS_SECRET", "payment.previous_secret"),
];

/// Variables with the prefix that are not configuration keys but are still allowed.
const ENV_ALLOWED: &[&str] = &["INNKEEP_LOG"];

impl Config {
    /// Reads `path` (if given), then the environment `vars`, then validates.
    pub fn load(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?
            }
            None => Config::default(),
        };
        for (name, value) in vars {
            if !name.starts_with("INNKEEP_") || ENV_ALLOWED.contains(&name.as_str()) {
                continue;
            }
            config.set_env(&name, &value)?;
        }
        config.validate()?;
        Ok(config)
    }

    fn set_env(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        fn num<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError> {
            value.trim().parse().map_err(|_| ConfigError::Env {
                name: name.to_owned(),
                message: format!("{value:?} is not a valid number"),
            })
        }
        match name {
            "INNKEEP_LISTEN" => {
                self.listen = value.trim().parse().map_err(|_| ConfigError::Env {
                    name: name.to_owned(),
                    message: format!("{value:?} is not an address like 127.0.0.1:8080"),
                })?
            }
            "INNKEEP_DATA_DIR" => self.data_dir = PathBuf::from(value),
            "INNKEEP_HOLD_SECONDS" => self.hold_seconds = num(name, value)?,
            "INNKEEP_MAX_NIGHTS" => self.max_nights = num(name, value)?,
            "INNKEEP_HORIZON_DAYS" => self.horizon_days = num(name, value)?,
            "INNKEEP_ARBITERS" => self.arbiters = num(name, value)?,
            "INNKEEP_MAX_IN_FLIGHT" => self.max_in_flight = num(name, value)?,
            "INNKEEP_SNAPSHOT_EVERY_EVENTS" => self.snapshot_every_events = num(name, value)?,
            "INNKEEP_SNAPSHOT_EVERY_SECONDS" => self.snapshot_every_seconds = num(name, value)?,
            "INNKEEP_PAYMENT_SECRET" => self.payment.secret = Some(value.to_owned()),
            "INNKEEP_PAYMENT_PREVIOUS_SECRET" => {
                self.payment.previous_secret = Some(value.to_owned())
            }
            _ => {
                let known: Vec<&str> = ENV_KEYS.iter().map(|(n, _)| *n).collect();
                return Err(ConfigError::Env {
                    name: name.to_owned(),
                    message: format!("unknown variable; known: {}", known.join(", ")),
                });
            }
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
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
        range("max_nights", self.max_nights, 1, 730)?;
        range("horizon_days", self.horizon_days, 1, 3650)?;
        range("arbiters", self.arbiters, 0, 256)?;
        range("max_in_flight", self.max_in_flight, 1, 1_000_000)?;
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

    /// The engine's share of the configuration.
    pub fn engine(&self, sync: SyncMode) -> EngineConfig {
        EngineConfig {
            hold_seconds: self.hold_seconds,
            limits: StayLimits {
                max_nights: self.max_nights,
                horizon_days: self.horizon_days,
            },
            arbiters: self.arbiters,
            max_in_flight: self.max_in_flight,
            sync,
            snapshot_every_events: self.snapshot_every_events,
            snapshot_every: Duration::from_secs(self.snapshot_every_seconds),
            ..EngineConfig::new(&self.data_dir)
        }
    }
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
}
