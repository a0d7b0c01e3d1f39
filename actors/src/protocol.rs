//! The protocol: every message the actors exchange and every type the [`crate::Engine`]
//! facade takes and returns, in one module that depends on nothing else in this crate
//! but the engine's types. Rust types for embedders and for the HTTP layer; the JSON wire
//! shapes live in `innkeep-http`.
//!
//! Messages are grouped by who handles them: a room ([`crate::room::RoomActor`]), a
//! shard's hold keeper (`crate::holds::HoldKeeper`, told only of the holds adopted at
//! start-up: the rooms queue their own), the order supervisor
//! ([`crate::supervisor::OrderSupervisor`]) and the payment supervisor
//! ([`crate::payments::PaymentSupervisor`]). A message whose caller gave up may still
//! run; every handler is written so that running it then is harmless.

use std::path::PathBuf;
use std::sync::Arc;

use actix::prelude::*;
use innkeep_engine::jiff::civil::Date;
use innkeep_engine::jiff::{SignedDuration, Timestamp};
use innkeep_engine::rearrange::Held;
use innkeep_engine::state::reservation_of;
use innkeep_engine::{
    Action, BookRequest, DomainError, Event, HotelId, HotelTz, Housekeeping, IdempotencyRecord,
    Money, Occupancy, PaymentOutcome, PaymentReport, Reservation, ReservationId, RoomNumber,
    RoomTypeCode, Stay, Upsert,
};
use tokio::sync::oneshot;

// ---- Facade types: errors, inputs and views

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
    /// This node may no longer acknowledge changes: the replicated log it must write to
    /// has another writer (503 `not_owner`); nothing was acknowledged.
    #[error("this node no longer owns what the change belongs to: {0}")]
    NotOwner(String),
    /// The booking's creator already has `limit` unpaid holds (429 `too_many_holds`);
    /// one frees when a hold is paid, cancelled or expires.
    #[error("this API key already has {limit} unpaid holds; pay, cancel or let one expire first")]
    TooManyHolds {
        /// The cap, so the client knows what it ran into.
        limit: usize,
    },
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
    /// Another process (or another engine in this one) is using the data directory: two
    /// writers would interleave their journals and snapshots.
    #[error("data dir {} is in use by another Innkeep (its LOCK file is locked); stop that one first", path.display())]
    DataDirInUse {
        /// Which directory.
        path: PathBuf,
    },
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
    /// What each plan selling the type offers for the stay (`BAR`'s price is the two
    /// fields above).
    pub offers: Vec<innkeep_engine::catalog::Offer>,
}

/// A change of restrictions: see [`innkeep_engine::Catalog::set_restrictions`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestrictionChange {
    /// The hotel.
    pub hotel_id: HotelId,
    /// First date.
    pub from: Date,
    /// First date not covered.
    pub to: Date,
    /// The room types; `None`: every one.
    pub room_types: Option<Vec<RoomTypeCode>>,
    /// The plans; `None`: every one.
    pub rate_plans: Option<Vec<innkeep_engine::RatePlanCode>>,
    /// Which days of the week.
    pub weekdays: innkeep_engine::selling::Weekdays,
    /// What to set.
    pub patch: innkeep_engine::selling::RestrictionPatch,
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
    /// The rate plan it was sold under.
    pub rate_plan: innkeep_engine::RatePlanCode,
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

/// Most nights one tape chart spans ([`crate::Engine::tape`]): a month, so one answer
/// stays small whatever the caller asks.
pub const TAPE_MAX_NIGHTS: u32 = 31;

/// The nights a tape chart spans when the caller does not say: the front desk's two weeks.
pub const TAPE_DEFAULT_NIGHTS: u32 = 14;

/// The tape chart of a hotel ([`crate::Engine::tape`]): every room, with what holds its
/// nights in the window `[from, from + nights)` and its out-of-order ranges there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TapeChart {
    /// The hotel.
    pub hotel_id: HotelId,
    /// The first night shown (hotel-local).
    pub from: Date,
    /// The first night not shown: `from` plus `nights`.
    pub to: Date,
    /// How many nights are shown.
    pub nights: u32,
    /// Every room of the hotel, by number.
    pub rooms: Vec<TapeRoom>,
}

/// One row of a [`TapeChart`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TapeRoom {
    /// Number.
    pub number: RoomNumber,
    /// Type.
    pub room_type: RoomTypeCode,
    /// Its out-of-order ranges that overlap the window, by first night (not clipped).
    pub out_of_order: Vec<OutOfOrderView>,
    /// The reservations holding any of its nights in the window, by first night here.
    pub reservations: Vec<TapeReservation>,
}

/// A reservation on a [`TapeRoom`]: one bar of the chart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TapeReservation {
    /// The reservation.
    pub id: ReservationId,
    /// Where it is in the state machine: `pending_payment`, `confirmed`, `checked_in`, or
    /// `checked_out` (the nights it slept); the others hold no nights, so no bar.
    pub status: innkeep_engine::Status,
    /// The booked stay.
    pub stay: Stay,
    /// First night this room holds: the arrival, unless the guest was moved here mid-stay.
    pub held_from: Date,
    /// First night this room does not hold: the departure, unless the guest left early.
    pub held_to: Date,
    /// The guest's name.
    pub guest_name: String,
    /// Whether it stays in this room when reservations are rearranged.
    pub pinned: bool,
}

// ---- Room messages (handled by `crate::room::RoomActor`)

/// Take every night of each booking's stay in this room, durably, deciding the bookings
/// in order. The outcomes go to `reply` together, in the bookings' order, once the last
/// is known: the batch ([`crate::booking::run_many`]) waits on it while it holds the
/// bookings' keys and hold slots at the directory, and settles them with the answers. A
/// batch sends the bookings it placed in this room together (at most
/// [`MAX_BOOKINGS_PER_RESERVE`]), so it costs the room one message, one wake and one
/// reply, not one per booking; `booking::place`, for a booking the batch could not place,
/// sends one.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct Reserve {
    /// The first booking.
    pub first: RoomBooking,
    /// The others, after it (empty for `place`'s: an empty vector allocates nothing).
    pub more: Vec<RoomBooking>,
    /// Where the outcomes go: one per booking, `first`'s first.
    pub reply: oneshot::Sender<ReserveReply>,
}

/// A room's answer to a [`Reserve`].
#[derive(Debug, Default)]
pub(crate) struct ReserveReply {
    /// One outcome per booking, in the message's order.
    pub answers: Vec<BookResult>,
    /// The drafts of the bookings the room refused, each with its place among the
    /// answers: the room took nothing of them, so they go on to another room whole.
    pub refused: Vec<(usize, Box<Draft>)>,
}

/// Most bookings one [`Reserve`] carries: a room decides a message's bookings in one go,
/// so this bounds how long one message holds its shard's thread.
pub(crate) const MAX_BOOKINGS_PER_RESERVE: usize = 64;

/// One booking of a [`Reserve`].
#[derive(Debug)]
pub(crate) struct RoomBooking {
    /// The reservation to make, priced: the room that takes it builds the reservation
    /// from its parts, and one that refuses it gives it back ([`ReserveReply::refused`]).
    pub draft: Box<Draft>,
    /// The idempotency key it is created under.
    pub idempotency: Option<IdempotencyRecord>,
    /// The booking's span (under its request's, which carries the request id): the
    /// bookings of one message may come from different requests.
    pub span: tracing::Span,
}

/// Apply a state-machine action to one of this room's reservations.
#[derive(Message, Debug)]
#[rtype(result = "Result<Reservation, EngineError>")]
pub(crate) struct ChangeReservation {
    /// Which reservation.
    pub id: ReservationId,
    /// What to do.
    pub action: Action,
    /// `If-Match` version.
    pub if_match: Option<u64>,
    /// The instant of the request.
    pub now: Timestamp,
    /// The hotel-local date at `now`.
    pub today: Date,
    /// The caller's span (a request's, or the supervisor's for expiry).
    pub span: tracing::Span,
}

/// Apply what the payment provider reports (a callback or a reconciliation answer) to
/// one of this room's reservations.
#[derive(Message, Debug)]
#[rtype(result = "Result<(Reservation, PaymentOutcome), EngineError>")]
pub(crate) struct ApplyPayment {
    /// Which reservation.
    pub id: ReservationId,
    /// What the provider says.
    pub report: PaymentReport,
    /// The instant it is applied (decides whether the hold has lapsed).
    pub now: Timestamp,
    /// The caller's span.
    pub span: tracing::Span,
}

/// Record that the provider refunded a reservation's payment.
#[derive(Message, Debug)]
#[rtype(result = "Result<Reservation, EngineError>")]
pub(crate) struct RecordRefund {
    /// Which reservation.
    pub id: ReservationId,
    /// When the refund was confirmed.
    pub now: Timestamp,
}

/// Set the room's housekeeping status.
#[derive(Message, Debug)]
#[rtype(result = "Result<RoomView, EngineError>")]
pub(crate) struct SetHousekeeping {
    /// The new status.
    pub status: Housekeeping,
    /// When.
    pub now: Timestamp,
    /// The request's span.
    pub span: tracing::Span,
}

/// Give the room another type (only while no reservation holds nights in it).
#[derive(Message, Debug)]
#[rtype(result = "Result<(), EngineError>")]
pub(crate) struct Retype {
    /// The `RoomPut` event the supervisor decided.
    pub event: Event,
    /// The new type.
    pub room_type: RoomTypeCode,
}

/// Read one reservation.
#[derive(Message, Debug)]
#[rtype(result = "Result<Arc<Reservation>, DomainError>")]
pub(crate) struct GetReservation(pub ReservationId);

/// The room's share of the front desk's day: its reservations arriving on `date`,
/// leaving on `date`, and in the house now (see [`FrontDeskDay`]).
#[derive(Message, Debug)]
#[rtype(result = "RoomDay")]
pub(crate) struct GetDay {
    /// The hotel-local date.
    pub date: Date,
    /// The hotel's zone, to tell on which local date a guest checked out.
    pub tz: HotelTz,
}

/// What [`GetDay`] answers: this room's entries of each list, by reservation id.
#[derive(Debug, Default)]
pub(crate) struct RoomDay {
    pub arrivals: Vec<DayReservation>,
    pub departures: Vec<DayReservation>,
    pub in_house: Vec<DayReservation>,
}

/// Read the room's live status.
#[derive(Message, Debug)]
#[rtype(result = "RoomView")]
pub(crate) struct GetView;

/// The room's row of the tape chart for the nights `[from, to)` (see [`TapeRoom`]).
#[derive(Message, Debug)]
#[rtype(result = "TapeRoom")]
pub(crate) struct GetTape {
    /// First night.
    pub from: Date,
    /// First night not shown.
    pub to: Date,
}

/// Take the room out of order for `[from, to)`.
#[derive(Message, Debug)]
#[rtype(result = "Result<RoomView, EngineError>")]
pub(crate) struct SetOutOfOrder {
    /// First night out of order.
    pub from: Date,
    /// First night back in order.
    pub to: Date,
    /// Why.
    pub reason: String,
    /// When.
    pub now: Timestamp,
    /// The hotel-local date at `now`.
    pub today: Date,
    /// The request's span.
    pub span: tracing::Span,
}

/// Put the room back in order for the range starting at `from`.
#[derive(Message, Debug)]
#[rtype(result = "Result<RoomView, EngineError>")]
pub(crate) struct ClearOutOfOrder {
    /// First night of the range.
    pub from: Date,
    /// When.
    pub now: Timestamp,
    /// The request's span.
    pub span: tracing::Span,
}

/// The first half of a room move, sent to the room the reservation leaves: check that it
/// may move and lock it against other changes until [`FinishMove`].
#[derive(Message, Debug)]
#[rtype(result = "Result<(Reservation, Date), EngineError>")]
pub(crate) struct BeginMove {
    /// Which reservation.
    pub id: ReservationId,
    /// The room it goes to.
    pub to: innkeep_engine::RoomKey,
    /// `If-Match` version.
    pub if_match: Option<u64>,
    /// The hotel-local date now.
    pub today: Date,
}

/// The second half of a room move, sent to the room the reservation goes to: check that
/// it can take the nights, journal the move, and take the reservation once durable.
#[derive(Message, Debug)]
#[rtype(result = "Result<(Reservation, Event), EngineError>")]
pub(crate) struct MoveIn {
    /// The reservation as the room it leaves holds it (locked there).
    pub reservation: Reservation,
    /// The room it leaves.
    pub from: innkeep_engine::RoomKey,
    /// The first night this room must hold.
    pub first_night: Date,
    /// When.
    pub now: Timestamp,
    /// The request's span.
    pub span: tracing::Span,
}

/// A modification, sent to the room holding the reservation: it decides, and either
/// journals and applies it there ([`ModifyStep::Done`]), or locks the reservation against
/// other changes until [`FinishMove`] and asks for another room ([`ModifyStep::Elsewhere`]).
#[derive(Message, Debug)]
#[rtype(result = "Result<ModifyStep, EngineError>")]
pub(crate) struct BeginModify {
    /// Which reservation.
    pub id: ReservationId,
    /// What it becomes, priced from its version `priced_version`.
    pub modification: innkeep_engine::Modification,
    /// The version it was priced from.
    pub priced_version: u64,
    /// `If-Match` version.
    pub if_match: Option<u64>,
    /// When.
    pub now: Timestamp,
    /// The request's span.
    pub span: tracing::Span,
}

/// What the room holding a reservation did with a [`BeginModify`].
#[derive(Debug)]
pub(crate) enum ModifyStep {
    /// Modified in place (or nothing to change): the reservation as it is now.
    Done(Reservation),
    /// Locked; another room of the new type must take it, modified.
    Elsewhere(Reservation),
}

/// The arriving half of a modification that changes rooms, sent to a room of the new
/// type: check that it can take the new stay, journal the one event, and take the
/// reservation modified once durable.
#[derive(Message, Debug)]
#[rtype(result = "Result<(Reservation, Event), EngineError>")]
pub(crate) struct ModifyIn {
    /// The reservation as the room it leaves holds it (locked there).
    pub reservation: Reservation,
    /// The room it leaves.
    pub from: innkeep_engine::RoomKey,
    /// What it becomes.
    pub modification: innkeep_engine::Modification,
    /// When.
    pub now: Timestamp,
    /// The request's span.
    pub span: tracing::Span,
}

/// How a room move ended, for the room the reservation left.
#[derive(Debug)]
pub(crate) enum MoveOutcome {
    /// The move is durable (this is its event): give the reservation and its nights up.
    Committed(Event),
    /// The move was refused or failed: the reservation stays, unlocked.
    Aborted,
}

/// Tells the room a reservation was leaving how its move ended.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct FinishMove {
    /// Which reservation.
    pub id: ReservationId,
    /// How it ended.
    pub outcome: MoveOutcome,
}

/// The night audit for this room: marks its confirmed reservations that arrived before
/// `audit_date` and were never checked in as no-shows, releasing their nights.
#[derive(Message, Debug)]
#[rtype(result = "Result<usize, EngineError>")]
pub(crate) struct NightAudit {
    /// The audit's date (see [`innkeep_engine::HotelTz::audit_date`]).
    pub audit_date: Date,
    /// When.
    pub now: Timestamp,
}

/// Whether the room has a no-show the night audit of `audit_date` would mark (a question:
/// a parked room answers without waking, see [`crate::room::Query`]).
#[derive(Message, Debug)]
#[rtype(result = "bool")]
pub(crate) struct NoShowsDue {
    /// The audit's date.
    pub audit_date: Date,
}

/// A room's part of a snapshot: its state encoded on its own thread, and where the
/// journal cut it reflects arrives (see [`crate::snapshot`]).
#[derive(Message, Debug)]
#[rtype(result = "Result<RoomPart, EngineError>")]
pub(crate) struct SnapshotRoom;

/// What a room answers [`SnapshotRoom`] with.
#[derive(Debug)]
pub(crate) struct RoomPart {
    /// [`innkeep_engine::RoomState`], encoded.
    pub bytes: Vec<u8>,
    /// Reservations in `bytes` whose creation was not yet acknowledged by the journal.
    pub pending: Vec<ReservationId>,
    /// Their creations all have seqs above this (`u64::MAX` when there are none).
    pub pending_floor: u64,
    /// Resolves to the seq of the room's last journaled event at encoding time (every
    /// event of the room up to it is in `bytes`, none after), once that seq is durable.
    pub cut: innkeep_persistence::AckReceiver,
}

/// A shared hold on [`crate::directory::Directory::gate`], moved into the message of a
/// change that must not straddle a snapshot's cuts.
pub(crate) type GateGuard = tokio::sync::OwnedRwLockReadGuard<()>;

// ---- Rearrangements: a booking that other reservations make room for

/// What a room holds on the nights of `[from, to)` ([`innkeep_engine::RoomState::holdings`]),
/// read without locking it: the first, optimistic reading a rearrangement plans from.
#[derive(Message, Debug)]
#[rtype(result = "Vec<Held>")]
pub(crate) struct GetHoldings {
    /// First night of the window.
    pub from: Date,
    /// First night after it.
    pub to: Date,
    /// The hotel-local date now: only stays from today on may move.
    pub today: Date,
}

/// Locks a room for one rearrangement: it answers its holdings as they are now and the
/// reservations the plan moves away from it, then takes no other message until the
/// decision arrives on `decision` (or its sender is dropped: nothing happened). Rooms are
/// locked one at a time in [`innkeep_engine::RoomKey`] order, so two rearrangements never
/// wait on each other's rooms.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct LockForRearrangement {
    /// The window, as in [`GetHoldings`].
    pub from: Date,
    /// First night after the window.
    pub to: Date,
    /// The hotel-local date now.
    pub today: Date,
    /// The reservations the plan moves away from this room: answered as they are, so the
    /// rooms they go to can take them.
    pub leaving: Vec<ReservationId>,
    /// Where the room answers once locked.
    pub locked: oneshot::Sender<Locked>,
    /// The decision: the journaled event and the reservations arriving here, or a dropped
    /// sender when the rearrangement was given up.
    pub decision: oneshot::Receiver<Commit>,
}

/// A locked room's answer.
#[derive(Debug)]
pub(crate) struct Locked {
    /// Its holdings now.
    pub holdings: Vec<Held>,
    /// The reservations of [`LockForRearrangement::leaving`] it holds, as it holds them.
    pub leaving: Vec<Reservation>,
}

/// A durable [`Event::Rearranged`], [`Event::BookingCreated`] or [`Event::ModifyRearranged`]
/// for a locked room to apply.
#[derive(Debug)]
pub(crate) struct Commit {
    /// The event, shared by every room of the rearrangement.
    pub event: Arc<Event>,
    /// The reservations it moves here (others' records are ignored).
    pub arriving: Vec<Reservation>,
    /// Told once the room applied it (the locator and the open holds updated), so the
    /// booking is answered only when the new reservation and every moved one can be found.
    pub applied: oneshot::Sender<()>,
}

// ---- Multi-room bookings: several rooms decide together

/// A multi-room booking as its reservations show it ([`innkeep_engine::group`]).
#[derive(Debug, Clone)]
pub struct Booking {
    /// The hotel.
    pub hotel_id: HotelId,
    /// Its reservations, in the order the request listed the rooms, as they are now.
    pub reservations: Vec<Arc<Reservation>>,
    /// What they sum up to: id, status, total, payment, hold, version.
    pub summary: innkeep_engine::group::BookingSummary,
}

/// What a multi-room booking's change asks one of its rooms to decide
/// ([`crate::bookings`]).
#[derive(Debug)]
pub(crate) enum PartAsk {
    /// Apply a state-machine action (cancel, expire) to reservation `id`.
    Change {
        /// Which reservation.
        id: ReservationId,
        /// The action.
        action: Action,
        /// The instant.
        now: Timestamp,
        /// The hotel-local date now.
        today: Date,
    },
    /// Apply reservation `id`'s share of what the provider reported about the booking's
    /// payment.
    Payment {
        /// Which reservation.
        id: ReservationId,
        /// The report.
        report: PaymentReport,
        /// The instant.
        now: Timestamp,
    },
}

/// Decide this room's parts of a multi-room booking's change and, when there is one, stay
/// locked (take no other message) until the coordinator's decision: the booking's rooms
/// are locked in room-key order by every coordinator (as a rearrangement's are), so no two
/// wait on each other. One message per room, with every part that room decides (two
/// reservations of a booking may share a room once one was modified).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct Prepare {
    /// What to decide.
    pub asks: Vec<PartAsk>,
    /// Where the room answers, one answer per ask.
    pub answer: oneshot::Sender<Vec<PartAnswer>>,
    /// The decision: the journaled event, or a dropped sender when the change was given
    /// up (then nothing changes). Waited for only when some answer decided a change.
    pub decision: oneshot::Receiver<Decided>,
}

/// A room's answer to one [`PartAsk`].
#[derive(Debug)]
pub(crate) struct PartAnswer {
    /// The reservation's version now.
    pub version: u64,
    /// The decided event (a [`Event::ReservationChanged`] or a
    /// [`Event::PaymentChanged`]); `None` when nothing changes for this reservation
    /// (already in the asked state, or one the action does not apply to).
    pub decided: Result<Option<Event>, EngineError>,
    /// For a payment: what the report did to this reservation.
    pub outcome: Option<innkeep_engine::PaymentOutcome>,
}

/// A durable multi-room change for a locked room to apply.
#[derive(Debug)]
pub(crate) struct Decided {
    /// The event, shared by every room of the booking.
    pub event: Arc<Event>,
    /// Told once the room applied its parts.
    pub applied: oneshot::Sender<()>,
}

/// A charge to create with the payment provider for a new hold.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Charge {
    /// Its reference.
    pub out_trade_no: innkeep_engine::OutTradeNo,
    /// What it asks.
    pub amount: Money,
}

// ---- Bookings: what a booking asks a room to take

/// Outcome handed to every caller waiting on one idempotency key.
pub(crate) type BookResult = Result<Arc<Reservation>, EngineError>;

/// The reservation one booking would make, handed from room to room until one takes it.
/// The room that takes it builds the [`Reservation`] itself ([`Draft::into_reservation`]),
/// so the reservation's long-lived allocations come from the thread that keeps them (the
/// room's arbiter) rather than the caller's, whose allocator arena churns with request
/// buffers: measured with `examples/memory`, building it in the caller's task cost ≈ 700 B
/// of resident memory per reservation in fragmentation. It moves the draft's codes and
/// contact into the reservation rather than copying them: each copy of a shared code is a
/// count in a cache line every shard touches.
#[derive(Debug, Clone)]
pub(crate) struct Draft {
    /// What was asked for, validated.
    pub request: BookRequest,
    /// Its price.
    pub total: Money,
    /// The id the reservation gets.
    pub id: ReservationId,
    /// The instant of the request.
    pub now: Timestamp,
    /// How long the hold lasts.
    pub hold: SignedDuration,
    /// Who books it.
    pub created_by: Option<String>,
    /// What it is sold under.
    pub terms: innkeep_engine::selling::Terms,
}

// ---- Payment supervisor messages

/// A snapshot of [`crate::payments::PaymentStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PaymentStatsView {
    /// See [`crate::payments::PaymentStats::charges_created`].
    pub charges_created: u64,
    /// See [`crate::payments::PaymentStats::refunds_recorded`].
    pub refunds_recorded: u64,
    /// See [`crate::payments::PaymentStats::reconciliation_fixes`].
    pub reconciliation_fixes: u64,
    /// See [`crate::payments::PaymentStats::gateway_failures`].
    pub gateway_failures: u64,
    /// Refunds owed right now and not yet confirmed.
    pub refunds_owed: u64,
    /// Payments still open (pending or failed) that reconciliation watches.
    pub open_payments: u64,
}

/// Sent by a room when a new hold is durable (with a payment provider): create its charge.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct PaymentCreated {
    /// Its payment reference (a reservation's own, or its multi-room booking's).
    pub out_trade_no: innkeep_engine::OutTradeNo,
    /// What it costs.
    pub amount: Money,
    /// When it was created.
    pub created_at: Timestamp,
}

/// Sent by a room when one of its reservations now owes a refund, or a difference charge
/// is due for it: the payment supervisor settles it with the provider.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct PaymentDue {
    /// The reservation.
    pub id: ReservationId,
}

/// Asks for the stats.
#[derive(Message, Debug)]
#[rtype(result = "PaymentStatsView")]
pub(crate) struct GetStats;

// ---- Order supervisor messages

/// Create or update a hotel.
#[derive(Message, Debug)]
#[rtype(result = "Result<Upsert, EngineError>")]
pub(crate) struct PutHotel {
    /// Held until the change is applied (see [`crate::directory::Directory::gate`]).
    pub gate: GateGuard,
    pub id: HotelId,
    pub name: String,
    pub time_zone: String,
    pub currency: String,
}

/// Create or update a room type.
#[derive(Message, Debug)]
#[rtype(result = "Result<Upsert, EngineError>")]
pub(crate) struct PutRoomType {
    /// Held until the change is applied (see [`crate::directory::Directory::gate`]).
    pub gate: GateGuard,
    pub hotel_id: HotelId,
    pub code: innkeep_engine::RoomTypeCode,
    pub name: String,
    pub capacity: u16,
    pub base_rate_minor: i64,
}

/// Set a nightly rate override.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), EngineError>")]
pub(crate) struct PutRate {
    /// Held until the change is applied (see [`crate::directory::Directory::gate`]).
    pub gate: GateGuard,
    pub hotel_id: HotelId,
    pub code: innkeep_engine::RoomTypeCode,
    pub from: innkeep_engine::jiff::civil::Date,
    pub to: innkeep_engine::jiff::civil::Date,
    pub amount_minor: i64,
}

/// A setup change of the selling rules (a rate plan, restrictions): decided by the order
/// supervisor against the catalog as it is then (setup changes are serialized there),
/// journaled, then applied to the catalog.
#[derive(Message)]
#[rtype(result = "Result<Upsert, EngineError>")]
pub(crate) struct DecideSetup {
    /// Held until the change is applied (see [`crate::directory::Directory::gate`]).
    pub gate: GateGuard,
    /// Decides the change from the catalog.
    #[allow(clippy::type_complexity)]
    pub decide:
        Box<dyn FnOnce(&innkeep_engine::Catalog) -> Result<(Event, Upsert), DomainError> + Send>,
}

impl std::fmt::Debug for DecideSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecideSetup").finish_non_exhaustive()
    }
}

/// Create a room or change its type.
#[derive(Message, Debug)]
#[rtype(result = "Result<Upsert, EngineError>")]
pub(crate) struct PutRoom {
    /// Held until the change is applied (see [`crate::directory::Directory::gate`]).
    pub gate: GateGuard,
    pub hotel_id: HotelId,
    pub number: RoomNumber,
    pub room_type: innkeep_engine::RoomTypeCode,
}

/// Move a reservation to another room of its hotel.
#[derive(Message, Debug)]
#[rtype(result = "Result<Reservation, EngineError>")]
pub(crate) struct MoveReservation {
    /// Held until both rooms applied the move (see [`crate::directory::Directory::gate`]).
    pub gate: GateGuard,
    /// Which reservation.
    pub id: ReservationId,
    /// The room it goes to.
    pub to: RoomNumber,
    /// `If-Match` version.
    pub if_match: Option<u64>,
    /// The request's span.
    pub span: tracing::Span,
}

/// Modify a reservation: its dates, type, guests, guest or plan.
#[derive(Message, Debug)]
#[rtype(result = "Result<Reservation, EngineError>")]
pub(crate) struct ModifyReservation {
    /// Held until the rooms involved applied the change (as for a move).
    pub gate: GateGuard,
    /// Which reservation.
    pub id: ReservationId,
    /// What to change.
    pub input: innkeep_engine::ModifyInput,
    /// `If-Match` version.
    pub if_match: Option<u64>,
    /// The request's span.
    pub span: tracing::Span,
}

// ---- Hold keeper messages

/// One unpaid hold, as its keeper tracks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PendingHold {
    /// When it lapses.
    pub expires_at: Timestamp,
    /// Who created it (counted against their cap).
    pub created_by: Option<String>,
}

/// The unpaid holds recovered at start-up for this keeper's rooms. Expired at once if
/// they lapsed while the server was down.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct Adopt(pub Vec<(ReservationId, PendingHold)>);

impl EngineError {
    /// The stable API code.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Domain(d) => d.code(),
            EngineError::Overloaded => "overloaded",
            EngineError::Unavailable(_) => "storage_unavailable",
            EngineError::ShuttingDown => "shutting_down",
            EngineError::NotOwner(_) => "not_owner",
            EngineError::TooManyHolds { .. } => "too_many_holds",
        }
    }
}

impl Draft {
    /// The reservation, assigned to `room`, from a copy of the draft (which its caller
    /// keeps: a multi-room booking's, a rearrangement's).
    pub(crate) fn reservation_in(&self, room: RoomNumber) -> Reservation {
        self.clone().into_reservation(room)
    }

    /// The reservation, assigned to `room`, made of the draft's own parts.
    pub(crate) fn into_reservation(self, room: RoomNumber) -> Reservation {
        let Draft {
            request,
            total,
            id,
            now,
            hold,
            created_by,
            terms,
        } = self;
        let mut r = reservation_of(request, room, total, id, now, hold);
        r.created_by = created_by;
        r.terms = terms;
        r
    }
}
