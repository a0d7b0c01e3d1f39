//! Types the [`crate::Engine`] facade takes and returns. These are Rust types for embedders
//! and for the HTTP layer; the JSON wire shapes live in `innkeep-http`.

use std::path::PathBuf;
use std::time::Duration;

use innkeep_engine::jiff::civil::Date;
use innkeep_engine::{
    DomainError, Guest, HotelId, Housekeeping, Money, Occupancy, ReservationId, RoomKey,
    RoomNumber, RoomTypeCode, Stay, StayLimits,
};
pub use innkeep_persistence::SyncMode;

/// Default for [`EngineConfig::max_in_flight`] (per shard). Enough to keep a shard and
/// the journal busy (a 64-connection closed loop keeps ≈ 32 bookings in flight per shard
/// on two shards), small enough that an admitted booking waits milliseconds, not tens of
/// them, under overload: measured at 2 000 connections (BENCHMARKS.md, (h)), 512 gave an
/// admitted median of 64 ms, 64 gave 9 ms.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 128;

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
    /// Take a snapshot after this many journaled events.
    pub snapshot_every_events: u64,
    /// ... or after this long, whichever comes first (if any event happened).
    pub snapshot_every: Duration,
    /// How often due holds are looked for.
    pub expiry_tick: Duration,
    /// Most open (unpaid) holds one creator (API key) may have at once; past it a
    /// booking fails with [`EngineError::TooManyHolds`]. Stops one client from holding
    /// every room of a hotel without paying. Bookings without a creator are not capped.
    pub max_holds_per_creator: usize,
    /// The payment provider and how the payment supervisor calls it (retries,
    /// reconciliation). Defaults to no provider.
    pub payment: crate::payments::PaymentPolicy,
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
            max_holds_per_creator: DEFAULT_MAX_HOLDS_PER_CREATOR,
            payment: crate::payments::PaymentPolicy::default(),
            night_audit_time: DEFAULT_NIGHT_AUDIT_TIME,
            clock: crate::clock::Clock::system(),
            resume_window_events: crate::feed::FEED_WINDOW_EVENTS,
            journal_segment_max_bytes: innkeep_persistence::JournalOptions::default()
                .segment_max_bytes,
            faults: Faults::default(),
        }
    }
}

/// Why an engine call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The domain refused the command; nothing changed.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Too much in flight; try again shortly (503 `overloaded`).
    #[error("engine overloaded; retry shortly")]
    Overloaded,
    /// The journal could not make the change durable; nothing was acknowledged (503).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The engine is stopping or stopped (503).
    #[error("engine is shutting down")]
    ShuttingDown,
    /// The booking's creator already has `limit` unpaid holds (429 `too_many_holds`);
    /// one frees when a hold is paid, cancelled or expires.
    #[error("this API key already has {limit} unpaid holds; pay, cancel or let one expire first")]
    TooManyHolds {
        /// The cap, so the client knows what it ran into.
        limit: usize,
    },
}

impl EngineError {
    /// The stable API code.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Domain(d) => d.code(),
            EngineError::Overloaded => "overloaded",
            EngineError::Unavailable(_) => "storage_unavailable",
            EngineError::ShuttingDown => "shutting_down",
            EngineError::TooManyHolds { .. } => "too_many_holds",
        }
    }
}

/// Error from [`crate::Engine::start`].
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory cannot be used.
    #[error("data dir {} is unusable", path.display())]
    DataDir {
        /// Which directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The snapshot could not be loaded.
    #[error(transparent)]
    Snapshot(#[from] innkeep_persistence::SnapshotError),
    /// The journal could not be recovered or opened.
    #[error(transparent)]
    Journal(#[from] innkeep_persistence::JournalError),
    /// The actor system did not come up.
    #[error("actor system: {0}")]
    Actors(String),
}

/// A booking request with raw dates; the engine validates them against the hotel's today.
#[derive(Clone, Debug)]
pub struct BookInput {
    /// The hotel.
    pub hotel_id: HotelId,
    /// The room type.
    pub room_type: RoomTypeCode,
    /// First night.
    pub arrival: Date,
    /// Leaving day.
    pub departure: Date,
    /// Guests.
    pub guests: u16,
    /// Contact.
    pub guest: Guest,
    /// A specific room, if asked for.
    pub room: Option<RoomNumber>,
    /// Who books: an identifier of the API key (the HTTP layer sets it from the
    /// authenticated caller), recorded on the reservation as
    /// [`innkeep_engine::Reservation::created_by`]. It scopes idempotency keys and the hold
    /// cap to the creator; `None` (no keys configured, or an embedder) is not capped.
    pub created_by: Option<String>,
}

/// One room type's availability for a stay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeAvailability {
    /// The type.
    pub room_type: RoomTypeCode,
    /// Rooms free on every night.
    pub available: usize,
    /// Each night's rate.
    pub nightly: Vec<(Date, i64)>,
    /// Sum of the rates.
    pub total: Money,
}

/// Availability of every room type sleeping enough guests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Availability {
    /// The hotel.
    pub hotel_id: HotelId,
    /// The stay asked about.
    pub stay: Stay,
    /// One entry per type with capacity ≥ guests.
    pub room_types: Vec<TypeAvailability>,
}

/// A room as the front desk sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomView {
    /// Number.
    pub number: RoomNumber,
    /// Type.
    pub room_type: RoomTypeCode,
    /// Vacant or occupied.
    pub occupancy: Occupancy,
    /// Cleanliness.
    pub housekeeping: Housekeeping,
    /// The checked-in reservation, if any.
    pub reservation: Option<ReservationId>,
    /// Its out-of-order ranges (those not yet ended are the ones that matter).
    pub out_of_order: Vec<OutOfOrderView>,
}

/// A date range during which a room cannot be sold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutOfOrderView {
    /// First night out of order.
    pub from: Date,
    /// First night back in order.
    pub to: Date,
    /// Why.
    pub reason: String,
}

/// One reservation on a front-desk list (arrivals, departures, in house): what the desk
/// needs to greet or see off the guest, without the payment and history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayReservation {
    /// The reservation.
    pub id: ReservationId,
    /// Its room.
    pub room: RoomNumber,
    /// Its room type.
    pub room_type: RoomTypeCode,
    /// The guest's name.
    pub guest_name: String,
    /// The booked stay.
    pub stay: Stay,
    /// Where it is in the state machine.
    pub status: innkeep_engine::Status,
}

/// The front desk's view of one hotel-local day ([`crate::Engine::front_desk`]). Each list
/// is sorted by room, then reservation id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrontDeskDay {
    /// The hotel.
    pub hotel_id: HotelId,
    /// The hotel-local date the lists are for.
    pub date: Date,
    /// Stays arriving on `date` that are still coming or came: `pending_payment`,
    /// `confirmed` or `checked_in`.
    pub arrivals: Vec<DayReservation>,
    /// Stays leaving on `date`: `confirmed` or `checked_in` ones whose departure is
    /// `date`, and `checked_out` ones that checked out on `date` (hotel-local), so a guest
    /// who left early is listed on the day they left, not on the day they had booked.
    pub departures: Vec<DayReservation>,
    /// Every reservation whose guest is in the house now (`checked_in`), whatever `date`.
    pub in_house: Vec<DayReservation>,
}
