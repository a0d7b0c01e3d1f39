//! `innkeep-engine`: Innkeep's pure domain.
//!
//! Hotels, room types, rooms, stays and reservations, with their rules. Every change is an
//! [`Event`] decided by a `decide_*`/`put_*` function that takes `&self` (so a refused
//! command changes nothing) and applied by one `apply`. The engine does no IO, spawns no
//! threads, reads no clock and generates no ids: instants and ids are passed in, which keeps
//! it deterministic, so recovery is "load snapshot, replay journal" and tests need no runtime.

pub mod availability;
pub mod catalog;
pub mod codec;
pub mod error;
pub mod event;
pub mod group;
pub mod ids;
pub mod ledger;
pub mod legacy;
pub mod money;
pub mod rearrange;
pub mod replay;
pub mod reservation;
pub mod room;
pub mod selling;
pub mod state;
pub mod time;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod modify_tests;
#[cfg(test)]
mod rearrange_tests;

pub use availability::AvailabilityIndex;
pub use catalog::{Catalog, Hotel, Quote, RoomType, Upsert};
pub use error::{DomainError, NightConflict, ValidationError};
pub use event::{Change, Event, IdempotencyRecord, Modification, Relocation, Settling};
pub use ids::{
    BookingId, HotelId, IdempotencyKey, OutTradeNo, RatePlanCode, ReservationId, RoomKey,
    RoomNumber, RoomTypeCode,
};
pub use money::{Currency, Money};
pub use reservation::{
    Action, Adjustment, BookInput, BookRequest, FieldChange, Guest, Modified, ModifyInput, Payment,
    PaymentChange, PaymentEventKind, PaymentHistoryEntry, PaymentOutcome, PaymentReport,
    PaymentStatus, Reservation, RoomMove, Status,
};
pub use room::{Housekeeping, ModifyPlan, NightsDelta, Occupancy, OutOfOrder, RoomState};
pub use state::{IdempotencyEntry, Snapshot, State};
pub use time::{HotelTz, Stay, StayLimits};

/// Re-exported so users name the same date and instant types.
pub use jiff;
