//! Errors the engine decides. Each maps to one stable API `code` (see [`DomainError::code`]).

use jiff::civil::Date;

use crate::ids::{ReservationId, RoomNumber};
use crate::reservation::Status;

/// Something already holding nights a command wanted (an out-of-order range or a move
/// refused because of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NightConflict {
    /// A live reservation holds nights in the range.
    Reservation {
        /// Which.
        id: ReservationId,
        /// Its first night in the room.
        first_night: Date,
        /// Its departure.
        departure: Date,
        /// Its status.
        status: Status,
    },
    /// An out-of-order range covers nights in it.
    OutOfOrder {
        /// First night out of order.
        from: Date,
        /// First night back in order.
        to: Date,
    },
}

/// A field that failed validation, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    /// The offending field, as the API names it.
    pub field: &'static str,
    /// Human-readable reason.
    pub reason: String,
}

impl ValidationError {
    /// Builds an error for `field`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// What a command can be refused for. A refused command changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Bad field value.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The stay breaks a rule (order, length, past arrival, horizon).
    #[error("invalid stay: {0}")]
    InvalidStay(String),
    /// A named thing does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// No room of the type can take every night of the stay.
    #[error("no room of this type is free for every night of the stay")]
    SoldOut,
    /// The reservation is not in a state that allows this action.
    #[error("cannot {action} a reservation that is {from}")]
    InvalidTransition {
        /// The attempted action.
        action: &'static str,
        /// The reservation's current status.
        from: Status,
    },
    /// `If-Match` named another version.
    #[error("version mismatch: expected {expected}, current {current}")]
    VersionMismatch {
        /// What the client sent.
        expected: u64,
        /// What the reservation has.
        current: u64,
    },
    /// The room is not ready for a guest (check-in needs clean or inspected).
    #[error("room {room} is {housekeeping}, not clean or inspected")]
    RoomNotReady {
        /// The room.
        room: RoomNumber,
        /// Its housekeeping status.
        housekeeping: &'static str,
    },
    /// Check-in outside the stay's dates.
    #[error("check-in is allowed only on a date within the stay")]
    NotWithinStay,
    /// The room still has live reservations, so it cannot change type.
    #[error("room has live reservations: {0:?}")]
    RoomInUse(Vec<ReservationId>),
    /// The hotel's currency is fixed once it has room types.
    #[error("a hotel's currency cannot change")]
    CurrencyLocked,
    /// A limit on stored data was reached.
    #[error("limit reached: {0}")]
    LimitReached(&'static str),
    /// The `Idempotency-Key` was used before with a different request.
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    /// Nights the command needs are held by reservations or out of order; each is listed.
    #[error("{} reservation(s) or out-of-order range(s) hold nights in that range", .0.len())]
    NightsSold(Vec<NightConflict>),
    /// The reservation is being moved to another room; retry shortly.
    #[error("the reservation is being moved to another room; retry shortly")]
    MoveInProgress,
    /// The hotel's restrictions or the plan's booking window forbid the stay; each reason
    /// is listed (sorted).
    #[error("the stay is restricted: {}", .0.iter().map(|r| r.code()).collect::<Vec<_>>().join(", "))]
    Restricted(Vec<crate::selling::Reason>),
    /// The booking names a rate plan the hotel does not have, or one that does not sell
    /// the room type: a well-formed request that cannot be processed (code
    /// `invalid_request`, like any bad field, but 422 rather than 400).
    #[error(transparent)]
    RatePlan(ValidationError),
    /// A modification's new stay does not fit: no room of the type is free on these
    /// nights (sorted). Code `sold_out`, like a booking's, with the nights that are short.
    #[error("no room of this type is free on {} night(s) of the new stay", .0.len())]
    SoldOutOn(Vec<jiff::civil::Date>),
    /// A difference of an earlier re-pricing is still being settled (its charge unpaid or
    /// its refund not yet confirmed by the provider): the total may not change again, and a
    /// reservation owed a difference back is not cancelled, until it is. Nothing changes;
    /// retry once it is settled.
    #[error("a difference of an earlier re-pricing is still being charged or refunded")]
    PaymentInProgress,
    /// A multi-room booking asks more rooms of these types than are free for its stay
    /// (each listed once, in the order the request first names it). Code `sold_out`.
    #[error("not enough rooms free for the stay of type(s) {}", .0.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", "))]
    SoldOutTypes(Vec<crate::ids::RoomTypeCode>),
}

impl DomainError {
    /// The stable snake_case code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::Invalid(_) => "invalid_request",
            DomainError::InvalidStay(_) => "invalid_stay",
            DomainError::NotFound(_) => "not_found",
            DomainError::SoldOut => "sold_out",
            DomainError::InvalidTransition { .. } => "invalid_transition",
            DomainError::VersionMismatch { .. } => "version_mismatch",
            DomainError::RoomNotReady { .. } => "room_not_ready",
            DomainError::NotWithinStay => "not_within_stay",
            DomainError::RoomInUse(_) => "room_in_use",
            DomainError::CurrencyLocked => "currency_locked",
            DomainError::LimitReached(_) => "limit_reached",
            DomainError::IdempotencyKeyReused => "idempotency_key_reused",
            DomainError::NightsSold(_) => "nights_sold",
            DomainError::MoveInProgress => "move_in_progress",
            DomainError::Restricted(_) => "restricted",
            DomainError::RatePlan(_) => "invalid_request",
            DomainError::SoldOutOn(_) => "sold_out",
            DomainError::PaymentInProgress => "payment_in_progress",
            DomainError::SoldOutTypes(_) => "sold_out",
        }
    }
}
