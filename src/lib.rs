//! Innkeep: an actor-based, in-memory hotel reservation engine.
//!
//! Embed it with [`Engine`]: start it from an [`EngineConfig`] and call the same operations
//! the HTTP API offers as typed async calls. Or run the `innkeep` binary, whose server is
//! [`server::run`].

pub mod callbacks;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod keygen;
pub mod lease;
pub mod server;
pub mod standby;
pub mod stream;
pub mod telemetry;

pub use innkeep_actors::{
    Availability, BookInput, Engine, EngineConfig, EngineError, RoomView, StartError, SyncMode,
    TypeAvailability,
};
pub use innkeep_engine as domain;
