//! How an engine runs: [`EngineConfig`] and the policies it carries.

use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use innkeep_engine::{RoomKey, StayLimits};
pub use innkeep_persistence::SyncMode;

use crate::gateway::{PaymentGateway, RetryPolicy};

/// Default for [`EngineConfig::max_in_flight`] (per shard). Enough to keep a shard and
/// the journal busy (a 64-connection closed loop keeps ≈ 32 bookings in flight per shard
/// on two shards), small enough that an admitted booking waits milliseconds, not tens of
/// them, under overload. Measured with wrk at 2 000 connections honouring `Retry-After`
/// (BENCHMARKS.md, twenty-fourth session), alternating: 64 gave an admitted p99 of 30 and
/// 38 ms, 128 gave 56 and 77 ms, at the same goodput (23 700–24 200 bookings/s).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;

/// Default for [`EngineConfig::journal_commit_delay`]. Measured on this project's
/// two-core VM (BENCHMARKS.md, seventeenth session): against none, half the syncs at half
/// the peak, the open loop's p90 from 6–8 ms to 3–4 ms and its median down too, and more
/// bookings per second in closed loop. A lone caller never waits for it.
pub const DEFAULT_JOURNAL_COMMIT_DELAY: Duration = Duration::from_micros(300);

/// Default for [`EngineConfig::room_idle`].
pub const DEFAULT_ROOM_IDLE: Duration = Duration::from_secs(120);

/// Least [`EngineConfig::room_idle`]: a shorter one is raised to it (a sweep walks the
/// shard's rooms).
pub const MIN_ROOM_IDLE: Duration = Duration::from_secs(1);

/// Default for [`EngineConfig::max_holds_per_creator`].
pub const DEFAULT_MAX_HOLDS_PER_CREATOR: usize = 50;

/// Default for [`EngineConfig::night_audit_time`]: 04:00 hotel-local, after the last late
/// arrivals and before the first early departures.
pub const DEFAULT_NIGHT_AUDIT_TIME: innkeep_engine::jiff::civil::Time =
    innkeep_engine::jiff::civil::Time::constant(4, 0, 0, 0);

/// How an engine runs. Every field has a default fit for a small hotel on one machine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Where the journal and snapshots live; created if missing.
    pub data_dir: PathBuf,
    /// How long an unpaid reservation holds its nights.
    pub hold_seconds: u64,
    /// Stay rules (max nights, horizon).
    pub limits: StayLimits,
    /// Shards (threads, one actix arbiter each) hosting the room actors, and in the server
    /// the HTTP connections too; 0 means one per core. Ignored by [`crate::Engine::start_on`],
    /// which is given its shards.
    pub shards: usize,
    /// Most calls in flight inside the engine at once *per shard* (a booking counts on the
    /// shard it runs on; other calls made from threads that are not shards share one more
    /// such allowance); past it a call fails at once
    /// with `Overloaded` (503 + `Retry-After`) instead of queuing, so latency stays bounded
    /// under overload. All shards' allowances together are capped at
    /// [`crate::room::ROOM_MAILBOX`], so no actor mailbox can fill up.
    pub max_in_flight: usize,
    /// fdatasync per journal batch, or not (benchmarks only).
    pub sync: SyncMode,
    /// Take a snapshot after this many journaled events, or after a quarter of the
    /// reservations the state holds when that is more (each snapshot encodes them all:
    /// `crate::snapshot::SnapshotPolicy::spacing_events`).
    pub snapshot_every_events: u64,
    /// ... or after this long, whichever comes first (if any event happened).
    pub snapshot_every: Duration,
    /// How often due holds are looked for.
    pub expiry_tick: Duration,
    /// A room nobody reached for between this and twice this is parked: its actor stops
    /// and its state waits in the registry until its next message starts it again (an
    /// actor costs about 800 bytes, five times an idle room's state). Default
    /// [`DEFAULT_ROOM_IDLE`]; at least [`MIN_ROOM_IDLE`].
    pub room_idle: Duration,
    /// Most open (unpaid) holds one creator (API key) may have at once; past it a
    /// booking fails with [`crate::EngineError::TooManyHolds`]. Stops one client from holding
    /// every room of a hotel without paying. Bookings without a creator are not capped.
    pub max_holds_per_creator: usize,
    /// The payment provider and how the payment supervisor calls it (retries,
    /// reconciliation). Defaults to no provider.
    pub payment: PaymentPolicy,
    /// Hotel-local time of the night audit. From this time on the day after arrival, a
    /// confirmed reservation whose guest has not checked in becomes `no_show` and its
    /// nights are released.
    pub night_audit_time: innkeep_engine::jiff::civil::Time,
    /// Where the engine reads "now" (the system clock unless an embedder drives time).
    pub clock: crate::clock::Clock,
    /// How many of the newest events a reconnecting event-stream client can resume from
    /// (`Last-Event-ID`), across restarts too: the event feed keeps this many in memory and
    /// the journal keeps at least this many on disk after a snapshot covers them, to refill
    /// the feed at start-up. Default [`crate::feed::FEED_WINDOW_EVENTS`]; clamped to
    /// 1..=[`crate::feed::MAX_FEED_WINDOW_EVENTS`] (memory, disk and start-up time).
    pub resume_window_events: usize,
    /// Size at which the journal starts a new segment file (whole segments are what a
    /// snapshot lets it delete). Default 64 MiB; at least
    /// [`innkeep_persistence::journal::MIN_SEGMENT_BYTES`], or start-up fails.
    pub journal_segment_max_bytes: u64,
    /// How long the journal may hold a batch for the callers of the previous one
    /// ([`innkeep_persistence::JournalOptions::commit_delay`]). Default
    /// [`DEFAULT_JOURNAL_COMMIT_DELAY`]; at most
    /// [`innkeep_persistence::journal::MAX_COMMIT_DELAY`], or start-up fails.
    pub journal_commit_delay: Duration,
    /// Journal records from this seq on stay on disk from start-up on, whatever snapshots
    /// cover (0: no floor), until the first reader sets its own floor with
    /// [`crate::Engine::retain_journal_from`]: readers that resume from a durable position
    /// of their own (the server's outbound webhooks and partition-stream publishers) must
    /// find their records even if a snapshot runs before they start.
    pub journal_retain_from: u64,
    /// A change is acknowledged once durable here and, with a gate, once the gate
    /// releases its journal record too (a replicated log has it: the server's partition
    /// streams in `replication = "sync"`). Default `None`.
    pub ack_gate: Option<Arc<innkeep_persistence::AckGate>>,
    /// Fault injection for tests, like [`innkeep_persistence::FaultyStorage`] for the
    /// journal. Default: none. Never set it outside tests.
    pub faults: Faults,
}

/// Faults an engine injects on purpose, to test how it fails ([`EngineConfig::faults`]).
/// The default injects nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// This room's actor panics whenever it is asked to book, after taking the nights in
    /// memory and before journaling them — a room changed half-way. Supervision is
    /// crash-only, so this aborts the process.
    pub panic_in_room: Option<RoomKey>,
    /// This many snapshots (the first ones) fail before anything is written, as with a
    /// full disk or a broken store: the engine must say so (not ready) and keep every
    /// journal segment until one succeeds.
    pub fail_snapshots: u32,
}

impl EngineConfig {
    /// Defaults, with data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            hold_seconds: 900,
            limits: StayLimits::default(),
            shards: 0,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            sync: SyncMode::Fdatasync,
            snapshot_every_events: 100_000,
            snapshot_every: Duration::from_secs(300),
            expiry_tick: Duration::from_millis(250),
            room_idle: DEFAULT_ROOM_IDLE,
            max_holds_per_creator: DEFAULT_MAX_HOLDS_PER_CREATOR,
            payment: PaymentPolicy::default(),
            night_audit_time: DEFAULT_NIGHT_AUDIT_TIME,
            clock: crate::clock::Clock::system(),
            resume_window_events: crate::feed::FEED_WINDOW_EVENTS,
            journal_segment_max_bytes: innkeep_persistence::JournalOptions::default()
                .segment_max_bytes,
            journal_commit_delay: DEFAULT_JOURNAL_COMMIT_DELAY,
            journal_retain_from: 0,
            ack_gate: None,
            faults: Faults::default(),
        }
    }
}

/// How the payment supervisor talks to the provider.
#[derive(Debug, Clone)]
pub struct PaymentPolicy {
    /// The provider; `None` (provider "none"): no charges are created, reconciliation is
    /// off, and owed refunds stay owed (logged) until a provider is configured.
    pub gateway: Option<Arc<dyn PaymentGateway>>,
    /// Timeout, attempts and backoff of each provider call.
    pub retry: RetryPolicy,
    /// How often reconciliation runs (and owed refunds are retried).
    pub reconcile_every: Duration,
    /// A payment pending at least this long is asked about.
    pub pending_threshold: Duration,
    /// A payment older than this is no longer asked about (its reservation is long
    /// settled; a provider closes unpaid charges well before).
    pub reconcile_window: Duration,
}

impl Default for PaymentPolicy {
    fn default() -> Self {
        Self {
            gateway: None,
            retry: RetryPolicy::default(),
            reconcile_every: Duration::from_secs(30),
            pending_threshold: Duration::from_secs(60),
            reconcile_window: Duration::from_secs(2 * 24 * 3600),
        }
    }
}

/// The rules for bookings and holds, from the [`EngineConfig`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct BookingPolicy {
    /// How long an unpaid reservation holds its nights.
    pub hold: innkeep_engine::jiff::SignedDuration,
    /// How often to look for due holds and night audits.
    pub expiry_tick: Duration,
    /// Stay rules.
    pub limits: StayLimits,
    /// Most open (unpaid) holds one creator may have.
    pub max_holds_per_creator: usize,
    /// Hotel-local time of the night audit.
    pub night_audit_time: innkeep_engine::jiff::civil::Time,
}
