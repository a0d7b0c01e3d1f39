//! The read model shared between the actors and the facade's read paths.
//!
//! Writers are actors (the supervisor for the catalog and locator, each room actor for its
//! own rows of the index); readers are any thread. Locks are held for microseconds and never
//! across an await or a journal write, so they serialize nothing that matters: the room
//! actors stay the authority that decides a booking.

use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use actix::{Addr, Recipient};
use innkeep_engine::ids::IdMap;
use innkeep_engine::{AvailabilityIndex, Catalog, RoomKey};

use crate::room::RoomActor;

/// Read views plus the room actor registry.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Hotels, room types, rooms, rates. Written only by the supervisor, after the journal
    /// acknowledged the setup event.
    pub catalog: RwLock<Catalog>,
    /// Sold nights per room. Each room actor writes its own rows when it books or releases.
    pub index: RwLock<AvailabilityIndex>,
    /// Reservation → the room holding it. Written by the supervisor once a booking is durable.
    pub locator: RwLock<IdMap<RoomKey>>,
    /// Room → its actor and the shard it runs on.
    pub rooms: RwLock<HashMap<RoomKey, Hosted>>,
    /// The payment supervisor, told by rooms when a reservation newly owes a refund. Set
    /// once at start-up before any room runs.
    pub payments: OnceLock<Recipient<crate::payments::RefundDue>>,
    /// Idempotency keys and hold counts of running bookings ([`crate::booking`]).
    pub desk: std::sync::Mutex<crate::booking::Desk>,
    /// Where every actor reads "now".
    pub clock: crate::clock::Clock,
    /// Faults to inject (tests only; none by default).
    pub faults: crate::api::Faults,
}

/// A room actor and where it runs.
#[derive(Debug, Clone)]
pub(crate) struct Hosted {
    /// The actor.
    pub addr: Addr<RoomActor>,
    /// The index of the shard hosting it ([`crate::shards::current`] there), so a booking
    /// can ask the rooms of its own shard first.
    pub shard: usize,
}

/// Read lock that survives poisoning: a panicking writer never leaves these views
/// half-updated (each write is a single map operation), so the data is still good.
pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// Write lock; see [`read`].
pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
