//! Events: every state change, in the one total order the journal keeps.
//!
//! Events record decisions, not requests: everything `apply` needs (ids, instants, which
//! nights to release) is inside, so replaying them reproduces the state exactly.

use jiff::civil::Date;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::RatePlanCode;
use crate::ids::{
    BookingId, HotelId, IdempotencyKey, ReservationId, RoomKey, RoomNumber, RoomTypeCode,
};
use crate::money::Currency;
use crate::reservation::{Action, FieldChange, Guest, PaymentChange, Reservation};
use crate::room::Housekeeping;
use crate::selling::{RatePlan, RestrictionPatch, Terms, Weekdays};
use crate::time::{HotelTz, Stay};

/// The `Idempotency-Key` a reservation was created with, and what it was created from.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct IdempotencyRecord {
    /// The client's key.
    pub key: IdempotencyKey,
    /// [`crate::BookRequest::fingerprint`] of the request.
    pub fingerprint: u64,
}

/// A decided change to one reservation.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct Change {
    /// What happened.
    pub action: Action,
    /// When (UTC).
    #[serde(with = "crate::codec::timestamp")]
    pub at: Timestamp,
    /// Nights on or after this date are given back. `None` keeps them all (pay, check-in);
    /// the arrival date releases every night (cancel, expire, no-show); an early check-out
    /// releases the nights still ahead.
    #[serde(with = "crate::codec::opt_date")]
    pub release_from: Option<Date>,
    /// What cancelling or marking a no-show a paid reservation came to, decided from the
    /// terms it was sold under; `None` for every other change, and for an unpaid one.
    /// (A paid cancellation or no-show journaled before fees existed has `None` too, and
    /// replays as it was decided then: a cancellation gave the whole total back, a
    /// no-show kept it.)
    pub settlement: Option<Settlement>,
}

/// The money side of cancelling or marking a no-show a paid reservation.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct Settlement {
    /// What the hotel keeps as the fee, minor units.
    pub fee_minor: i64,
    /// What is owed back, minor units (the total less the fee).
    pub refund_minor: i64,
}

/// One state change.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub enum Event {
    /// A hotel was created or updated.
    HotelPut {
        /// Which hotel.
        hotel_id: HotelId,
        /// Display name.
        name: String,
        /// Its time zone.
        time_zone: HotelTz,
        /// Its currency.
        currency: Currency,
    },
    /// A room type was created or updated.
    RoomTypePut {
        /// Which hotel.
        hotel_id: HotelId,
        /// Which type.
        code: RoomTypeCode,
        /// Display name.
        name: String,
        /// Most guests.
        capacity: u16,
        /// Nightly base rate, minor units.
        base_rate_minor: i64,
    },
    /// A room was created or given another type.
    RoomPut {
        /// Which hotel.
        hotel_id: HotelId,
        /// Which room.
        number: RoomNumber,
        /// Its type.
        room_type: RoomTypeCode,
    },
    /// A nightly rate override for `[from, to)`.
    RatePut {
        /// Which hotel.
        hotel_id: HotelId,
        /// Which type.
        room_type: RoomTypeCode,
        /// First night.
        #[serde(with = "crate::codec::date")]
        from: Date,
        /// First night not covered.
        #[serde(with = "crate::codec::date")]
        to: Date,
        /// Nightly rate, minor units.
        amount_minor: i64,
    },
    /// A reservation took its room's nights.
    ReservationCreated {
        /// The whole reservation as created (status `pending_payment`, version 1). Shared,
        /// not copied, by the journal, the live event stream and the booking's answer (the
        /// room keeps a compact copy). Encoded without its (empty) modifications.
        #[serde(with = "crate::reservation::created_codec")]
        reservation: std::sync::Arc<Reservation>,
        /// The key it was created under, if any.
        idempotency: Option<IdempotencyRecord>,
    },
    /// A reservation moved in its state machine.
    ReservationChanged {
        /// The room holding it.
        room: RoomKey,
        /// Which reservation.
        id: ReservationId,
        /// The decided change.
        change: Change,
    },
    /// A reservation's payment changed without moving its state machine (a failed
    /// attempt, a refund owed, a refund done). Journaled by the reservation's room, so
    /// payment changes are serialized with the reservation's own transitions.
    PaymentChanged {
        /// The room holding the reservation.
        room: RoomKey,
        /// Which reservation.
        id: ReservationId,
        /// What changed.
        change: PaymentChange,
        /// When (UTC).
        #[serde(with = "crate::codec::timestamp")]
        at: Timestamp,
    },
    /// A room was taken out of order for `[from, to)`: those nights cannot be sold.
    OutOfOrderSet {
        /// Which room.
        room: RoomKey,
        /// First night out of order.
        #[serde(with = "crate::codec::date")]
        from: Date,
        /// First night back in order.
        #[serde(with = "crate::codec::date")]
        to: Date,
        /// Why, for the staff.
        reason: String,
        /// The hotel-local date it was decided on: ranges that ended before it are dropped.
        #[serde(with = "crate::codec::date")]
        today: Date,
        /// When (UTC).
        #[serde(with = "crate::codec::timestamp")]
        at: Timestamp,
    },
    /// A room's out-of-order range starting at `from` was lifted.
    OutOfOrderCleared {
        /// Which room.
        room: RoomKey,
        /// First night of the range.
        #[serde(with = "crate::codec::date")]
        from: Date,
        /// When (UTC).
        #[serde(with = "crate::codec::timestamp")]
        at: Timestamp,
    },
    /// A reservation moved to another room of the hotel: `to` holds its nights from
    /// `first_night` on, `from` no longer holds any. One event, so a replay applies both
    /// halves or neither.
    ReservationMoved {
        /// Which reservation.
        id: ReservationId,
        /// The room it left.
        from: RoomKey,
        /// The room it went to.
        to: RoomKey,
        /// The new room's type (the reservation's type from now on; the price stays).
        room_type: RoomTypeCode,
        /// The first night the new room holds.
        #[serde(with = "crate::codec::date")]
        first_night: Date,
        /// When (UTC).
        #[serde(with = "crate::codec::timestamp")]
        at: Timestamp,
        /// Whether the move pins the reservation to its new room
        /// ([`Reservation::pinned`]): every staff move since pins exist does; one journaled
        /// before them reads as `false`, so replaying an old journal gives what its own
        /// snapshots hold.
        #[serde(with = "crate::codec::pinned")]
        pins: bool,
    },
    /// A room's housekeeping status changed.
    HousekeepingSet {
        /// Which room.
        room: RoomKey,
        /// The new status.
        status: Housekeeping,
        /// When (UTC).
        #[serde(with = "crate::codec::timestamp")]
        at: Timestamp,
    },
    /// A rate plan was created or replaced.
    RatePlanPut {
        /// Which hotel.
        hotel_id: HotelId,
        /// Its code.
        code: RatePlanCode,
        /// The plan.
        plan: RatePlan,
    },
    /// Restrictions changed on the dates of `[from, to)` that fall on `weekdays`, for
    /// each listed room type and plan (listed explicitly, as decided).
    RestrictionsSet {
        /// Which hotel.
        hotel_id: HotelId,
        /// First date.
        #[serde(with = "crate::codec::date")]
        from: Date,
        /// First date not covered.
        #[serde(with = "crate::codec::date")]
        to: Date,
        /// Which days of the week.
        weekdays: Weekdays,
        /// The room types, sorted.
        room_types: Vec<RoomTypeCode>,
        /// The plans, sorted.
        rate_plans: Vec<RatePlanCode>,
        /// What changes on each.
        patch: RestrictionPatch,
    },
    /// A reservation was modified: its stay, type, guests, guest or plan changed and it was
    /// re-priced, in its room or, when the new stay did not fit there (or the type
    /// changed), in another room of the hotel. One event either way, so a replay applies
    /// the whole change or none of it.
    ReservationModified {
        /// The room holding it before.
        room: RoomKey,
        /// Which reservation.
        id: ReservationId,
        /// The room holding it after, when not `room`.
        to: Option<RoomNumber>,
        /// What it became.
        modification: Box<Modification>,
        /// When (UTC).
        #[serde(with = "crate::codec::timestamp")]
        at: Timestamp,
    },
    /// A reservation was created in a room that other reservations of its type left for it
    /// (no sellable stay refused, [`crate::rearrange`]): each of `moves` went, whole, to
    /// another room of the same type, then `reservation` took the room freed. One event,
    /// so a replay applies the moves and the booking together or not at all.
    Rearranged {
        /// The moves, applied together (no two reservations of a room overlap after all
        /// of them, whatever their order).
        moves: Vec<Relocation>,
        /// The new reservation, as [`Event::ReservationCreated`] holds it.
        #[serde(with = "crate::reservation::created_codec")]
        reservation: std::sync::Arc<Reservation>,
        /// The key it was created under, if any.
        idempotency: Option<IdempotencyRecord>,
    },
    /// A multi-room booking took one room for each of its reservations (each holds the
    /// booking's id, and its share of the booking's one payment), after `moves` (when a
    /// type had too few rooms free for the stay, [`crate::rearrange::plan_many`]) made
    /// room, as [`Event::Rearranged`] does for one. One event, so a replay books all of
    /// them, with their moves, or none.
    BookingCreated {
        /// The hotel.
        hotel_id: HotelId,
        /// Which booking.
        booking: BookingId,
        /// Reservations moved to make room, each whole to another room of its type; applied
        /// together, before the new ones take their rooms.
        moves: Vec<Relocation>,
        /// Its reservations, in the order the request listed the rooms, as
        /// [`Event::ReservationCreated`] holds one (each in its own room).
        #[serde(with = "crate::reservation::created_list")]
        reservations: Vec<std::sync::Arc<Reservation>>,
        /// The key the booking was created under, if any (recorded for its first
        /// reservation, which leads to the booking).
        idempotency: Option<IdempotencyRecord>,
    },
    /// Changes to several reservations of one multi-room booking, decided together: the
    /// booking's payment confirmed them, its hold expired them, or cancelling it cancelled
    /// them. Each part is the [`Event::ReservationChanged`] or [`Event::PaymentChanged`]
    /// its reservation's room decided; one event, so a replay applies all or none.
    BookingChanged {
        /// The hotel.
        hotel_id: HotelId,
        /// Which booking.
        booking: BookingId,
        /// One change per reservation, in room-key order.
        parts: Vec<Event>,
    },
    /// A reservation was modified into a room that other reservations of its new type left
    /// for it (no sellable stay refused, [`crate::rearrange`]): each of `moves` went, whole,
    /// to another room of its type, then `modified` (an [`Event::ReservationModified`])
    /// took the nights freed. One event, so a replay applies all of it or none.
    ModifyRearranged {
        /// The moves, applied together before the modification.
        moves: Vec<Relocation>,
        /// The modification, as [`Event::ReservationModified`] holds one.
        modified: Box<Event>,
    },
}

impl Event {
    /// The room an event about one reservation or room is decided by, if it is one.
    pub fn room(&self) -> Option<&RoomKey> {
        match self {
            Event::ReservationChanged { room, .. }
            | Event::PaymentChanged { room, .. }
            | Event::HousekeepingSet { room, .. }
            | Event::OutOfOrderSet { room, .. }
            | Event::OutOfOrderCleared { room, .. }
            | Event::ReservationModified { room, .. } => Some(room),
            _ => None,
        }
    }
}

/// One reservation moved by a rearrangement: its whole stay, from one room to another of
/// its type. Only future, unpinned reservations move, so the first night the new room
/// holds is the arrival and the price stays.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct Relocation {
    /// Which reservation.
    pub id: ReservationId,
    /// The room it left.
    pub from: RoomNumber,
    /// The room it went to.
    pub to: RoomNumber,
    /// Its stay: every night of it moved.
    pub stay: Stay,
}

/// A decided modification: the reservation's fields after it, and what changed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct Modification {
    /// The stay after.
    pub stay: Stay,
    /// The booked room type after.
    pub room_type: RoomTypeCode,
    /// The number of guests after.
    pub guests: u16,
    /// The contact details after.
    pub guest: Guest,
    /// The total after, minor units (see [`Modification::settling`] for the payment).
    pub total_minor: i64,
    /// The terms after (re-fixed for the new stay when it was re-priced).
    pub terms: Terms,
    /// What changed (the room too, when it moved).
    pub changes: Vec<FieldChange>,
    /// What a new total does to money already asked for or paid.
    pub settling: Settling,
}

/// What a modification's new total does to money already asked for or paid.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub enum Settling {
    /// Decided before differences were settled (journal segment format 5): an unpaid
    /// hold's charge asked the new total, and a paid total never changed.
    ChargeFollowsTotal,
    /// A charge keeps the amount it was made with: an unpaid hold's difference is settled
    /// once it is paid, a paid reservation's at once (a difference charge, or a refund).
    DifferenceSettled,
}

impl Event {
    /// The hotel the event belongs to (for per-hotel streams and access checks).
    pub fn hotel_id(&self) -> &HotelId {
        match self {
            Event::HotelPut { hotel_id, .. }
            | Event::RoomTypePut { hotel_id, .. }
            | Event::RoomPut { hotel_id, .. }
            | Event::RatePut { hotel_id, .. }
            | Event::RatePlanPut { hotel_id, .. }
            | Event::RestrictionsSet { hotel_id, .. }
            | Event::BookingCreated { hotel_id, .. }
            | Event::BookingChanged { hotel_id, .. } => hotel_id,
            Event::ReservationCreated { reservation, .. }
            | Event::Rearranged { reservation, .. } => &reservation.hotel_id,
            Event::ReservationChanged { room, .. }
            | Event::PaymentChanged { room, .. }
            | Event::HousekeepingSet { room, .. }
            | Event::OutOfOrderSet { room, .. }
            | Event::OutOfOrderCleared { room, .. } => &room.hotel_id,
            Event::ReservationMoved { from, .. } => &from.hotel_id,
            Event::ReservationModified { room, .. } => &room.hotel_id,
            Event::ModifyRearranged { modified, .. } => modified.hotel_id(),
        }
    }
}
