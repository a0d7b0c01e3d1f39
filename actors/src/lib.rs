//! `innkeep-actors`: actix actors that own the engine state, and the [`Engine`] facade.
//!
//! - [`shards::Shards`]: one thread per core, an actix arbiter each, hosting the rooms (and,
//!   in the server, HTTP).
//! - [`room::RoomActor`]: one per room; owns its [`innkeep_engine::RoomState`] and journals
//!   its own events, so the journal's order is each room's decision order.
//! - `booking`: the booking saga, a task per booking on a shard; idempotency keys
//!   and hold counts in a shared desk.
//! - [`holds::HoldKeeper`]: one per shard; its rooms' unpaid holds, their expiry and charges.
//! - [`supervisor::OrderSupervisor`]: setup commands, room moves, the night audit.
//! - [`payments::PaymentSupervisor`]: charges, refunds and reconciliation with the
//!   payment provider ([`gateway::PaymentGateway`]; [`sandbox::Sandbox`] built in).
//! - The snapshot thread keeps a shadow state from committed journal batches.
//! - [`Engine`]: starts all of it from an [`EngineConfig`] and offers typed async calls.
//! - Supervision is crash-only: starting an engine installs a process-wide panic hook that
//!   aborts the process when a thread of the engine panics (see `crash`).

pub mod api;
mod booking;
pub mod clock;
mod crash;
mod facade;
pub mod feed;
pub mod gateway;
pub mod holds;
pub mod payments;
pub mod room;
pub mod sandbox;
pub mod shards;
mod shared;
mod snapshotter;
pub mod supervisor;

pub use api::{
    Availability, BookInput, DayReservation, EngineConfig, EngineError, Faults, FrontDeskDay,
    OutOfOrderView, RoomView, StartError, SyncMode, TypeAvailability,
    DEFAULT_MAX_HOLDS_PER_CREATOR, DEFAULT_MAX_IN_FLIGHT, DEFAULT_NIGHT_AUDIT_TIME,
};
pub use clock::{Clock, ManualTime};
pub use facade::{recover_state, recover_state_with_history, Engine, Recovered, METRIC_BOOKINGS};
pub use gateway::{
    ChargeIntent, GatewayError, GatewayFuture, GatewayStatus, PaymentGateway, RefundRequest,
    RetryPolicy,
};
pub use holds::{METRIC_HOLDS_EXPIRED, METRIC_HOLDS_OPEN};
pub use innkeep_engine as engine;
pub use innkeep_persistence::journal::{METRIC_BATCH_RECORDS, METRIC_FSYNC_SECONDS};
pub use payments::{PaymentPolicy, PaymentStatsView, METRIC_PAYMENT_ACTIONS};
pub use sandbox::{Ledger, Sandbox, SandboxConfig};
pub use shards::Shards;
pub use snapshotter::METRIC_SNAPSHOT_SECONDS;
pub use supervisor::METRIC_NO_SHOWS;

#[cfg(test)]
mod tests;

#[cfg(test)]
use tests as tests_support;

#[cfg(test)]
mod payment_tests;

#[cfg(test)]
mod hold_cap_tests;

#[cfg(test)]
mod front_desk_tests;

#[cfg(test)]
mod crash_tests;

#[cfg(test)]
mod model_tests;
