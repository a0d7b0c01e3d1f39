//! `innkeep-actors`: actix actors that own the engine state, and the [`Engine`] facade.
//!
//! Modules depend one way, lowest layer first (checked by `layering_tests`):
//! 0. `clock`, `crash` (crash-only supervision: a panic on an engine thread aborts the
//!    process), [`feed`] (durable events for live subscribers), [`gateway`] and
//!    [`sandbox`] (the payment provider), [`signature`] (the HMAC scheme of callbacks
//!    and webhooks), `handles` (metric handles kept per thread).
//! 1. [`protocol`]: every message the actors exchange and every type the facade takes and
//!    returns; [`config`]: [`EngineConfig`] and its policies.
//! 2. [`shards::Shards`]: one thread per core, an actix arbiter each, hosting the rooms (and,
//!    in the server, HTTP); `directory`: what bookings share besides the rooms (catalog,
//!    one availability index per shard, and striped locator, idempotency keys and hold
//!    slots), with no process-wide lock a booking writes.
//! 3. The runtime on the shards: [`room::RoomActor`], one per room, owning its
//!    [`innkeep_engine::RoomState`] and journaling its own events (so the journal's order is
//!    each room's decision order); `booking`, bookings in batches, one task per batch of
//!    whatever reached a shard together; `bookings`, multi-room bookings and their changes, decided by several rooms
//!    together; `open_holds`, per shard, its rooms' unpaid holds by expiry (the rooms
//!    queue them), and `holds::HoldKeeper`, which expires the due ones.
//! 4. The supervisors: [`supervisor::OrderSupervisor`] (setup, room moves, the night
//!    audit) and [`payments::PaymentSupervisor`] (charges, refunds, reconciliation);
//!    `snapshot`, snapshots collected from the rooms themselves (no second copy of the
//!    state) and written by a thread of their own.
//! 5. [`Engine`]; `startup`, which wires all of it; `recovery` (snapshot, then the
//!    journal after it) at start-up.

// Layer 0: no module of this crate below it.
pub mod clock;
mod crash;
pub mod feed;
pub mod gateway;
mod handles;
pub mod sandbox;
pub mod signature;
// Layer 1: the protocol and the configuration.
pub mod config;
pub mod protocol;
// Layer 2: the shards and what bookings share.
mod directory;
pub mod shards;
// Layer 3: the runtime on the shards.
mod booking;
mod bookings;
pub mod holds;
mod open_holds;
mod rearranging;
pub mod room;
// Layer 4: the supervisors and snapshots.
pub mod payments;
mod snapshot;
pub mod supervisor;
// Layer 5: the facade that wires them, and start-up recovery.
mod facade;
mod recovery;
mod startup;

pub use bookings::METRIC_GROUP_BOOKINGS;
pub use clock::{Clock, ManualTime};
pub use config::{
    EngineConfig, Faults, PaymentPolicy, SyncMode, DEFAULT_JOURNAL_COMMIT_DELAY,
    DEFAULT_MAX_HOLDS_PER_CREATOR, DEFAULT_MAX_IN_FLIGHT, DEFAULT_NIGHT_AUDIT_TIME,
};
pub use facade::{Engine, METRIC_BOOKINGS, METRIC_BOOKING_BATCH};
pub use gateway::{
    ChargeIntent, GatewayError, GatewayFuture, GatewayStatus, PaymentGateway, RefundRequest,
    RetryPolicy,
};
pub use holds::METRIC_HOLDS_EXPIRED;
pub use innkeep_engine as engine;
pub use innkeep_engine::BookInput;
pub use innkeep_persistence::journal::{METRIC_BATCH_RECORDS, METRIC_FSYNC_SECONDS};
pub use open_holds::METRIC_HOLDS_OPEN;
pub use payments::METRIC_PAYMENT_ACTIONS;
pub use protocol::{
    Availability, Booking, DayReservation, EngineError, FrontDeskDay, OutOfOrderView,
    PaymentStatsView, RestrictionChange, RoomView, StartError, TapeChart, TapeReservation,
    TapeRoom, TypeAvailability, TAPE_DEFAULT_NIGHTS, TAPE_MAX_NIGHTS,
};
pub use recovery::{recover_state, recover_state_with_history, write_snapshot, Recovered};
pub use room::METRIC_ROOMS_AWAKE;
pub use sandbox::{
    CallbackTransport, DeliveryFuture, Ledger, Sandbox, SandboxConfig, TransportError,
};
pub use shards::Shards;
pub use snapshot::METRIC_SNAPSHOT_SECONDS;
pub use supervisor::METRIC_NO_SHOWS;

#[cfg(test)]
mod tests;

#[cfg(test)]
use tests as tests_support;

#[cfg(test)]
mod payment_tests;

#[cfg(test)]
mod group_tests;

#[cfg(test)]
mod hold_cap_tests;

#[cfg(test)]
mod front_desk_tests;

#[cfg(test)]
mod crash_tests;

#[cfg(test)]
mod layering_tests;

#[cfg(test)]
mod model_tests;

#[cfg(test)]
mod snapshot_tests;
