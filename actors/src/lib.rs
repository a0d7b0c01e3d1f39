//! `innkeep-actors`: actix actors that own the engine state, and the [`Engine`] facade.
//!
//! - [`room::RoomActor`]: one per room; owns its [`innkeep_engine::RoomState`] and journals
//!   its own events, so the journal's order is each room's decision order.
//! - [`supervisor::OrderSupervisor`]: setup commands, the booking saga, idempotency keys
//!   and hold expiry.
//! - The snapshot thread keeps a shadow state from committed journal batches.
//! - [`Engine`]: starts all of it from an [`EngineConfig`] and offers typed async calls.

pub mod api;
mod facade;
pub mod room;
mod shared;
mod snapshotter;
pub mod supervisor;

pub use api::{
    Availability, BookInput, EngineConfig, EngineError, RoomView, StartError, SyncMode,
    TypeAvailability,
};
pub use facade::{recover_state, Engine, Recovered};
pub use innkeep_engine as engine;

#[cfg(test)]
mod tests;
