//! A room's reservations as the room keeps them: compact, in two sorted vectors.
//!
//! A room holds every reservation ever assigned to it, so their resident size decides how
//! many hotels a node carries. A [`Reservation`] as the API shows it is ~320 bytes plus a
//! dozen heap allocations (codes, two histories, the payment record); most of that is
//! implied by where it is kept or by its creation:
//!
//! - the hotel and the room number are the room's own; the room type is the room's unless
//!   the reservation was moved from another type or the room was retyped since;
//! - the first history entry (created, version 1) and the first payment entry (created,
//!   pending) follow from `created_at`; the payment's reference follows from the id and its
//!   amount is the total;
//! - instants are kept as seconds and nanoseconds, dates as jiff's 4-byte dates.
//!
//! So a [`Kept`] reservation is 120 bytes with no allocation of its own until it changes
//! (a payment, a cancellation, a move) or unless it was sold under terms other than the
//! built-in plan's: then its history and terms live in one boxed [`Extra`].
//! The calendar is one [`Span`] per reservation holding nights here (the nights a
//! reservation holds in a room are always one range), not one map entry per night.
//! [`Kept::to_reservation`] rebuilds the full reservation exactly, so the API's answers do
//! not change.

use std::sync::Arc;

use jiff::civil::Date;
use jiff::Timestamp;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use crate::ids::{BookingId, ReservationId, RoomKey, RoomTypeCode};
use crate::money::{Currency, Money};
use crate::reservation::{
    status_keeps_money, Adjustment, Guest, HistoryEntry, Modified, Payment, PaymentEventKind,
    PaymentHistoryEntry, PaymentStatus, Reservation, RoomMove, Status, MAX_HISTORY,
};
use crate::selling::Terms;
use crate::time::Stay;

/// One reservation as its room keeps it (see the module docs for what is left out and why).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct Kept {
    /// The id (also what the vector is sorted by).
    id: ReservationId,
    /// Who is coming (one shared allocation).
    guest: Guest,
    /// Who booked it ([`Reservation::created_by`]); shared with the booking's copy.
    created_by: Option<Arc<str>>,
    /// Everything that exists only once the reservation changed; `None` for most.
    extra: Option<Box<Extra>>,
    /// [`Reservation::version`].
    version: u64,
    /// [`Reservation::total`]'s minor units (the payment's amount is the same).
    total_minor: i64,
    /// [`Reservation::created_at`], seconds since the Unix epoch.
    created_secs: i64,
    /// [`Reservation::hold_expires_at`], seconds since the Unix epoch.
    hold_secs: i64,
    /// Nanoseconds of `created_secs` (jiff's sign convention: negative before the epoch).
    created_nanos: i32,
    /// Nanoseconds of `hold_secs`.
    hold_nanos: i32,
    /// The nights.
    stay: Stay,
    /// Number of guests.
    guests: u16,
    /// [`Reservation::total`]'s currency.
    currency: Currency,
    /// Where it is in the state machine.
    status: Status,
    /// Where its payment stands.
    payment_status: PaymentStatus,
    /// [`Payment::refund_owed`].
    refund_owed: bool,
    /// [`Reservation::pinned`] (in what were padding bytes: it costs no size).
    #[serde(with = "crate::codec::pinned")]
    pinned: bool,
}

/// What [`Kept::from_parts`] reads of a reservation, borrowed: from a [`Reservation`]
/// ([`Kept::new`]), or from a journaled creation decoded without building one
/// ([`crate::replay`]).
pub(crate) struct KeptParts<'a> {
    pub id: ReservationId,
    /// The type it was booked as.
    pub room_type: &'a RoomTypeCode,
    pub stay: Stay,
    pub guests: u16,
    pub guest: &'a Guest,
    pub total: Money,
    pub status: Status,
    pub version: u64,
    pub created_at: Timestamp,
    pub hold_expires_at: Timestamp,
    pub payment_status: PaymentStatus,
    pub trade_no: Option<&'a str>,
    pub refund_owed: bool,
    pub payment_history: &'a [PaymentHistoryEntry],
    pub fee_minor: i64,
    pub refund_minor: i64,
    pub booking: Option<BookingId>,
    pub history: &'a [HistoryEntry],
    pub created_by: Option<&'a str>,
    pub moves: &'a [RoomMove],
    pub modifications: &'a [Modified],
    pub terms: &'a Terms,
    pub pinned: bool,
    pub adjustment: Option<Adjustment>,
}

/// What a reservation gains once it changes after creation: boxed, so a reservation that
/// never changed pays 8 bytes for it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, Debug)]
struct Extra {
    /// The whole history once it is more than the creation entry.
    history: Option<Vec<HistoryEntry>>,
    /// The whole payment history once it is more than the creation entry.
    payment_history: Option<Vec<PaymentStep>>,
    /// The provider's reference once it reported.
    trade_no: Option<Arc<str>>,
    /// Where it has been, for the few reservations that moved or whose room changed type
    /// (boxed again: a paid reservation, the common change, pays 8 bytes for it).
    moved: Option<Box<Moved>>,
    /// What it was sold under and what that came to, unless it is what the built-in plan
    /// implies (see [`Sold`]).
    sold: Option<Box<Sold>>,
    /// [`Reservation::adjustment`]: only for the few re-priced after their first charge.
    adjustment: Option<Box<Adjustment>>,
}

/// A reservation's selling terms and the fee and refund they led to, kept only when they
/// are not the built-in plan's: free cancellation, no fee, and a refund (when one is owed
/// or done) of the whole total.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
struct Sold {
    /// [`Reservation::terms`].
    terms: Terms,
    /// [`Payment::fee_minor`].
    fee_minor: i64,
    /// [`Payment::refund_minor`].
    refund_minor: i64,
}

/// What a reservation that moved, was modified, whose room was retyped, or that a
/// multi-room booking made, keeps: the few that need any of it pay one box for all of it,
/// and a paid reservation's `Extra` stays as small as it was.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, Debug)]
struct Moved {
    /// The booked room type when it is not the room's (moved from another type, modified
    /// to another type, or the room was retyped later).
    room_type: Option<RoomTypeCode>,
    /// [`Reservation::moves`].
    moves: Vec<RoomMove>,
    /// [`Reservation::modifications`].
    modifications: Vec<Modified>,
    /// [`Reservation::booking`].
    #[serde(with = "crate::codec::booking")]
    booking: Option<BookingId>,
}

/// A payment history entry as kept: its reference shares the reservation's text when it
/// is the same (it nearly always is), instead of a string of its own.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
struct PaymentStep {
    /// When (UTC).
    #[serde(with = "crate::codec::timestamp")]
    at: Timestamp,
    /// What happened.
    kind: PaymentEventKind,
    /// The payment status after it.
    status: PaymentStatus,
    /// The provider's reference the entry concerns.
    trade_no: Option<Arc<str>>,
}

impl PaymentStep {
    /// Keeps `entry`, sharing `current`'s text when the references are equal.
    fn keep(entry: &PaymentHistoryEntry, current: Option<&Arc<str>>) -> Self {
        let trade_no = entry.trade_no.as_deref().map(|t| match current {
            Some(c) if **c == *t => c.clone(),
            _ => Arc::from(t),
        });
        Self {
            at: entry.at,
            kind: entry.kind,
            status: entry.status,
            trade_no,
        }
    }

    fn entry(&self) -> PaymentHistoryEntry {
        PaymentHistoryEntry {
            at: self.at,
            kind: self.kind,
            status: self.status,
            trade_no: self.trade_no.as_deref().map(str::to_owned),
        }
    }
}

/// The refund a reservation without [`Sold`] terms has: the whole total once a refund is
/// owed or done, else nothing. A reservation whose stay goes on (`reservation_status`
/// keeps the money) is only ever owed a difference, which is always kept explicitly.
fn implied_refund_minor(
    total_minor: i64,
    refund_owed: bool,
    status: PaymentStatus,
    reservation_status: Status,
) -> i64 {
    if status_keeps_money(reservation_status) {
        0
    } else if refund_owed || status == PaymentStatus::Refunded {
        total_minor
    } else {
        0
    }
}

fn split(t: Timestamp) -> (i64, i32) {
    (t.as_second(), t.subsec_nanosecond())
}

fn join(secs: i64, nanos: i32) -> Result<Timestamp, jiff::Error> {
    Timestamp::new(secs, nanos)
}

fn creation_entry(at: Timestamp) -> HistoryEntry {
    HistoryEntry {
        at,
        from: None,
        to: Status::PendingPayment,
        version: 1,
    }
}

fn payment_creation_entry(at: Timestamp) -> PaymentHistoryEntry {
    PaymentHistoryEntry {
        at,
        kind: PaymentEventKind::Created,
        status: PaymentStatus::Pending,
        trade_no: None,
    }
}

impl Kept {
    /// Keeps `r` in a room of type `room_type`. Everything the reservation says is kept
    /// (what matches the implied form is left out, anything else goes to its extra part),
    /// so [`Kept::to_reservation`] gives it back exactly.
    pub fn new(r: &Reservation, room_type: &RoomTypeCode) -> Self {
        Self::from_parts(
            &KeptParts {
                id: r.id,
                room_type: &r.room_type,
                stay: r.stay,
                guests: r.guests,
                guest: &r.guest,
                total: r.total,
                status: r.status,
                version: r.version,
                created_at: r.created_at,
                hold_expires_at: r.hold_expires_at,
                payment_status: r.payment.status,
                trade_no: r.payment.trade_no.as_deref(),
                refund_owed: r.payment.refund_owed,
                payment_history: &r.payment.history,
                fee_minor: r.payment.fee_minor,
                refund_minor: r.payment.refund_minor,
                booking: r.booking(),
                history: &r.history,
                created_by: r.created_by.as_deref(),
                moves: &r.moves,
                modifications: &r.modifications,
                terms: &r.terms,
                pinned: r.pinned,
                adjustment: r.adjustment,
            },
            room_type,
        )
    }

    /// [`Kept::new`] from what it reads of a reservation, however that was obtained.
    pub(crate) fn from_parts(r: &KeptParts<'_>, room_type: &RoomTypeCode) -> Self {
        let (created_secs, created_nanos) = split(r.created_at);
        let (hold_secs, hold_nanos) = split(r.hold_expires_at);
        let moved = Moved {
            room_type: (r.room_type != room_type).then(|| r.room_type.clone()),
            moves: r.moves.to_vec(),
            modifications: r.modifications.to_vec(),
            booking: r.booking,
        };
        let implied_refund = implied_refund_minor(
            r.total.amount_minor,
            r.refund_owed,
            r.payment_status,
            r.status,
        );
        let implied = r.terms.is_bar() && r.fee_minor == 0 && r.refund_minor == implied_refund;
        let mut extra = Extra {
            history: (r.history != [creation_entry(r.created_at)]).then(|| r.history.to_vec()),
            payment_history: None,
            trade_no: r.trade_no.map(Arc::from),
            moved: (moved != Moved::default()).then(|| Box::new(moved)),
            // Cloned only when kept: the plan's code is shared (recovery decodes it once for
            // every event), and a clone touches its reference count.
            sold: (!implied).then(|| {
                Box::new(Sold {
                    terms: r.terms.clone(),
                    fee_minor: r.fee_minor,
                    refund_minor: r.refund_minor,
                })
            }),
            adjustment: r.adjustment.map(Box::new),
        };
        if r.payment_history != [payment_creation_entry(r.created_at)] {
            let current = extra.trade_no.as_ref();
            let steps = r.payment_history.iter();
            extra.payment_history = Some(steps.map(|e| PaymentStep::keep(e, current)).collect());
        }
        Self {
            id: r.id,
            guest: r.guest.clone(),
            created_by: r.created_by.map(Arc::from),
            extra: (extra != Extra::default()).then(|| Box::new(extra)),
            version: r.version,
            total_minor: r.total.amount_minor,
            created_secs,
            hold_secs,
            created_nanos,
            hold_nanos,
            stay: r.stay,
            guests: r.guests,
            currency: r.total.currency,
            status: r.status,
            payment_status: r.payment_status,
            refund_owed: r.refund_owed,
            pinned: r.pinned,
        }
    }

    /// The reservation as the API shows it, in room `room` of type `room_type`.
    pub fn to_reservation(&self, room: &RoomKey, room_type: &RoomTypeCode) -> Reservation {
        let created_at = self.created_at();
        let extra = self.extra.as_deref();
        let total = self.total();
        Reservation {
            id: self.id,
            hotel_id: room.hotel_id.clone(),
            room_type: self.room_type_in(room_type).clone(),
            room: room.number.clone(),
            stay: self.stay,
            guests: self.guests,
            guest: self.guest.clone(),
            total,
            status: self.status,
            version: self.version,
            created_at,
            hold_expires_at: self.hold_expires_at(),
            payment: Payment {
                out_trade_no: self
                    .booking()
                    .map_or(self.id.out_trade_no(), |b| b.out_trade_no()),
                amount: self.adjustment().map_or(total, |a| Money {
                    amount_minor: a.first_charge_minor,
                    currency: self.currency,
                }),
                status: self.payment_status,
                trade_no: self.trade_no().map(str::to_owned),
                refund_owed: self.refund_owed,
                history: extra
                    .and_then(|e| e.payment_history.as_ref())
                    .map(|steps| steps.iter().map(PaymentStep::entry).collect())
                    .unwrap_or_else(|| vec![payment_creation_entry(created_at)]),
                fee_minor: self.fee_minor(),
                refund_minor: self.refund_minor(),
            },
            history: extra
                .and_then(|e| e.history.clone())
                .unwrap_or_else(|| vec![creation_entry(created_at)]),
            created_by: self.created_by.as_deref().map(str::to_owned),
            moves: self.moved().map(|m| m.moves.clone()).unwrap_or_default(),
            terms: self.sold().map_or_else(Terms::bar, |s| s.terms.clone()),
            modifications: self
                .moved()
                .map(|m| m.modifications.clone())
                .unwrap_or_default(),
            pinned: self.pinned,
            adjustment: self.adjustment(),
        }
    }

    /// [`Reservation::booking`].
    pub fn booking(&self) -> Option<BookingId> {
        self.moved().and_then(|m| m.booking)
    }

    /// [`Reservation::adjustment`].
    pub fn adjustment(&self) -> Option<Adjustment> {
        self.extra
            .as_deref()
            .and_then(|e| e.adjustment.as_deref())
            .copied()
    }

    /// Sets [`Reservation::adjustment`].
    pub(crate) fn set_adjustment(&mut self, adjustment: Adjustment) {
        self.extra().adjustment = Some(Box::new(adjustment));
    }

    /// The money captured and kept for it: the total once paid, unless it was re-priced
    /// after its first charge ([`Adjustment::held_minor`]).
    pub fn held_minor(&self) -> i64 {
        self.adjustment().map_or(self.total_minor, |a| a.held_minor)
    }

    /// See [`Reservation::owes_difference`].
    pub fn owes_difference(&self) -> bool {
        self.refund_owed && status_keeps_money(self.status)
    }

    /// A difference charge or refund is still open: the total may not change again.
    pub fn difference_unsettled(&self) -> bool {
        self.owes_difference() || self.adjustment().is_some_and(|a| a.balance_due_minor > 0)
    }

    fn sold(&self) -> Option<&Sold> {
        self.extra.as_deref().and_then(|e| e.sold.as_deref())
    }

    /// What it was sold under, when that is not the built-in plan's terms.
    pub fn terms(&self) -> Option<&Terms> {
        self.sold().map(|s| &s.terms)
    }

    /// What the hotel keeps as a fee ([`Payment::fee_minor`]).
    pub fn fee_minor(&self) -> i64 {
        self.sold().map_or(0, |s| s.fee_minor)
    }

    /// What is (to be) given back ([`Payment::refund_minor`]).
    pub fn refund_minor(&self) -> i64 {
        self.sold().map_or_else(
            || {
                implied_refund_minor(
                    self.total_minor,
                    self.refund_owed,
                    self.payment_status,
                    self.status,
                )
            },
            |s| s.refund_minor,
        )
    }

    /// Records the fee the hotel keeps and the refund owed with it (set before the refund
    /// flag and status move). The two always add up to the total (or a refund is owed for
    /// all of captured money, with no fee), so without a fee the refund is what a
    /// reservation without [`Sold`] terms implies, and nothing is allocated.
    pub(crate) fn set_money(&mut self, fee_minor: i64, refund_minor: i64) {
        if let Some(sold) = self
            .extra
            .as_deref_mut()
            .and_then(|e| e.sold.as_deref_mut())
        {
            sold.fee_minor = fee_minor;
            sold.refund_minor = refund_minor;
            return;
        }
        // Implied: no fee, and the refund is the whole total (or nothing); a difference
        // owed to a stay that goes on is never implied.
        let whole = refund_minor == self.total_minor && !status_keeps_money(self.status);
        if fee_minor == 0 && (whole || refund_minor == 0) {
            return;
        }
        self.extra().sold = Some(Box::new(Sold {
            terms: Terms::bar(),
            fee_minor,
            refund_minor,
        }));
    }

    /// The id.
    pub fn id(&self) -> ReservationId {
        self.id
    }

    /// Where it is in the state machine.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The nights.
    pub fn stay(&self) -> Stay {
        self.stay
    }

    /// Number of guests.
    pub fn guests(&self) -> u16 {
        self.guests
    }

    /// Who is coming.
    pub fn guest(&self) -> &Guest {
        &self.guest
    }

    /// +1 on every change; the ETag.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The price.
    pub fn total(&self) -> Money {
        Money {
            amount_minor: self.total_minor,
            currency: self.currency,
        }
    }

    /// When it was created.
    pub fn created_at(&self) -> Timestamp {
        // Both parts came from a valid instant, or decoding checked them ([`Ledger::check`]).
        join(self.created_secs, self.created_nanos).unwrap_or(Timestamp::MIN)
    }

    /// When an unpaid hold lapses.
    pub fn hold_expires_at(&self) -> Timestamp {
        join(self.hold_secs, self.hold_nanos).unwrap_or(Timestamp::MIN)
    }

    /// Who booked it.
    pub fn created_by(&self) -> Option<&Arc<str>> {
        self.created_by.as_ref()
    }

    /// Where its payment stands.
    pub fn payment_status(&self) -> PaymentStatus {
        self.payment_status
    }

    /// Whether money was captured that must be given back.
    pub fn refund_owed(&self) -> bool {
        self.refund_owed
    }

    /// [`Reservation::pinned`].
    pub fn pinned(&self) -> bool {
        self.pinned
    }

    /// The provider's reference, once it reported.
    pub fn trade_no(&self) -> Option<&str> {
        self.extra.as_deref().and_then(|e| e.trade_no.as_deref())
    }

    /// Its booked room type, in a room of type `room_type`.
    pub fn room_type_in<'a>(&'a self, room_type: &'a RoomTypeCode) -> &'a RoomTypeCode {
        self.moved()
            .and_then(|m| m.room_type.as_ref())
            .unwrap_or(room_type)
    }

    /// The instant of its latest transition to `status`, if any.
    pub fn last_reached(&self, status: Status) -> Option<Timestamp> {
        match self.extra.as_deref().and_then(|e| e.history.as_ref()) {
            Some(history) => history.iter().rev().find(|h| h.to == status).map(|h| h.at),
            None => (status == Status::PendingPayment).then(|| self.created_at()),
        }
    }

    /// The first night its current room holds: the arrival, unless it was moved mid-stay.
    pub fn first_night_here(&self) -> Date {
        let last_move = self.moved().and_then(|m| m.moves.last());
        last_move.map_or(self.stay.arrival(), |m| {
            m.first_night.max(self.stay.arrival())
        })
    }

    fn moved(&self) -> Option<&Moved> {
        self.extra.as_deref().and_then(|e| e.moved.as_deref())
    }

    fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// Records a transition from `from` to `to` at `at` (version already moved).
    pub(crate) fn push_history(&mut self, at: Timestamp, from: Status, to: Status) {
        let (created_at, version) = (self.created_at(), self.version);
        let history = self
            .extra()
            .history
            .get_or_insert_with(|| vec![creation_entry(created_at)]);
        if history.len() < MAX_HISTORY {
            // One entry more, not a doubling: these vectors are resident for the life of
            // the reservation (a pushed vector of one grows to four).
            history.reserve_exact(1);
            history.push(HistoryEntry {
                at,
                from: Some(from),
                to,
                version,
            });
        }
    }

    /// Records a payment-side change (its status already set).
    pub(crate) fn push_payment_history(&mut self, at: Timestamp, kind: PaymentEventKind) {
        let trade_no = self.extra.as_deref().and_then(|e| e.trade_no.clone());
        self.push_payment_step(at, kind, trade_no);
    }

    /// Records a payment-side change concerning another provider reference than the
    /// payment's own (a difference charge's).
    pub(crate) fn push_payment_history_of(
        &mut self,
        at: Timestamp,
        kind: PaymentEventKind,
        trade_no: &str,
    ) {
        self.push_payment_step(at, kind, Some(Arc::from(trade_no)));
    }

    fn push_payment_step(
        &mut self,
        at: Timestamp,
        kind: PaymentEventKind,
        trade_no: Option<Arc<str>>,
    ) {
        let (created_at, status) = (self.created_at(), self.payment_status);
        let history = self.extra().payment_history.get_or_insert_with(|| {
            vec![PaymentStep::keep(&payment_creation_entry(created_at), None)]
        });
        if history.len() < MAX_HISTORY {
            history.reserve_exact(1);
            history.push(PaymentStep {
                at,
                kind,
                status,
                trade_no,
            });
        }
    }

    /// Sets the state-machine status and moves the version.
    pub(crate) fn set_status(&mut self, status: Status) {
        self.status = status;
        self.version += 1;
    }

    /// Moves the version for a change that keeps the status.
    pub(crate) fn bump_version(&mut self) {
        self.version += 1;
    }

    /// Sets the payment's status, reference and refund flag.
    pub(crate) fn set_payment(
        &mut self,
        status: PaymentStatus,
        trade_no: Option<&str>,
        refund_owed: bool,
    ) {
        self.payment_status = status;
        self.refund_owed = refund_owed;
        if let Some(t) = trade_no {
            self.extra().trade_no = Some(Arc::from(t));
        }
    }

    /// Keeps the booked type explicitly before its room changes type to another.
    pub(crate) fn pin_room_type(&mut self, old_room_type: &RoomTypeCode) {
        if self.moved().is_none_or(|m| m.room_type.is_none()) {
            let moved = self.extra().moved.get_or_insert_with(Box::default);
            moved.room_type = Some(old_room_type.clone());
        }
    }
}

/// The nights `[from, to)` a reservation holds in its room.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct Span {
    /// First night held.
    #[serde(with = "crate::codec::date")]
    pub from: Date,
    /// First night not held.
    #[serde(with = "crate::codec::date")]
    pub to: Date,
    /// The reservation holding them.
    pub id: ReservationId,
}

/// A room's reservations by id and its calendar by night, both sorted vectors: a room has
/// tens to hundreds of reservations, so a binary search is as fast as a hash table here
/// and wastes no slots. New ids are UUIDv7 (time-ordered), so a new reservation almost
/// always goes at the end.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Debug)]
pub struct Ledger {
    /// Every reservation of the room, sorted by id.
    kept: Vec<Kept>,
    /// The nights held, sorted by first night; spans never overlap. One per reservation
    /// holding nights here (live, or checked out with the nights it slept).
    spans: Vec<Span>,
}

/// How a ledger's vectors grow when full.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Growth {
    /// By a quarter rather than doubling: these vectors live as long as the room, so their
    /// spare capacity is resident memory (a doubled vector is a quarter empty on average).
    Quarter,
    /// Doubling, for recovery, which grows every room's vectors from empty: a quarter at a
    /// time copies each record about five times over, doubling about twice.
    /// [`Ledger::fit`] gives the spare capacity back afterwards.
    Double,
}

impl Growth {
    fn grow<T>(self, v: &mut Vec<T>) {
        if v.len() == v.capacity() {
            let extra = match self {
                Growth::Quarter => (v.len() / 4).max(2),
                Growth::Double => v.len().max(4),
            };
            v.reserve_exact(extra);
        }
    }
}

impl Ledger {
    fn position(&self, id: &ReservationId) -> Result<usize, usize> {
        // A new id is usually the largest (UUIDv7), and the reservation a room asks about
        // right after booking it is its last: one comparison instead of a search that
        // misses the cache at every step (measured: the booking's own check after the
        // journal's ack was 3 % of a shard's time in-process when it searched).
        let Some(last) = self.kept.last() else {
            return Err(0);
        };
        match last.id.cmp(id) {
            std::cmp::Ordering::Less => Err(self.kept.len()),
            std::cmp::Ordering::Equal => Ok(self.kept.len() - 1),
            std::cmp::Ordering::Greater => self.kept.binary_search_by(|k| k.id.cmp(id)),
        }
    }

    /// The reservation `id`, if this room keeps it.
    pub fn get(&self, id: &ReservationId) -> Option<&Kept> {
        self.position(id).ok().map(|i| &self.kept[i])
    }

    pub(crate) fn get_mut(&mut self, id: &ReservationId) -> Option<&mut Kept> {
        self.position(id).ok().map(|i| &mut self.kept[i])
    }

    /// Whether this room keeps `id`.
    pub fn contains(&self, id: &ReservationId) -> bool {
        self.position(id).is_ok()
    }

    /// Every reservation, in id order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Kept> + '_ {
        self.kept.iter()
    }

    /// How many reservations the room keeps.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// Whether the room keeps none.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// The calendar: every span of nights held, by first night.
    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    /// The reservation holding `night`, if any.
    pub fn holder(&self, night: Date) -> Option<ReservationId> {
        let i = self.spans.partition_point(|s| s.from <= night);
        let s = self.spans.get(i.checked_sub(1)?)?;
        (night < s.to).then_some(s.id)
    }

    /// The spans holding any night of `[from, to)`, by first night.
    pub fn overlapping(&self, from: Date, to: Date) -> &[Span] {
        // Spans are disjoint and sorted, so their ends are sorted too.
        let start = self.spans.partition_point(|s| s.to <= from);
        let end = self.spans.partition_point(|s| s.from < to);
        &self.spans[start..end.max(start)]
    }

    /// Keeps `kept`, holding `[from, to)` here (nothing when empty); replaces a reservation
    /// with the same id. Returns the nights newly held.
    pub(crate) fn insert(&mut self, kept: Kept, from: Date, to: Date) -> Vec<Date> {
        self.keep(kept, from, to, Growth::Quarter);
        if from >= to {
            return Vec::new();
        }
        nights(from, to).collect()
    }

    /// Records and spans there is room for beyond those held.
    #[cfg(test)]
    pub(crate) fn spare(&self) -> usize {
        self.kept.capacity() - self.kept.len() + self.spans.capacity() - self.spans.len()
    }

    /// Gives back the spare capacity (after recovery's [`Growth::Double`]).
    pub(crate) fn fit(&mut self) {
        self.kept.shrink_to_fit();
        self.spans.shrink_to_fit();
    }

    /// [`Ledger::insert`] without listing the nights (recovery, which keeps no index),
    /// growing the vectors by `growth`.
    pub(crate) fn keep(&mut self, kept: Kept, from: Date, to: Date, growth: Growth) {
        let id = kept.id;
        match self.position(&id) {
            Ok(i) => {
                // A creation replayed twice: the later one stands, nights included.
                self.kept[i] = kept;
                self.release(&id, Date::MIN);
            }
            Err(i) => {
                growth.grow(&mut self.kept);
                self.kept.insert(i, kept);
            }
        }
        if from >= to {
            return;
        }
        growth.grow(&mut self.spans);
        // Nights are mostly sold in order: append without a search.
        let at = match self.spans.last() {
            Some(last) if last.from < from => self.spans.len(),
            _ => self.spans.partition_point(|s| s.from < from),
        };
        self.spans.insert(at, Span { from, to, id });
    }

    /// Drops reservation `id` and its nights; returns it and the nights given back.
    pub(crate) fn remove(&mut self, id: &ReservationId) -> Option<(Kept, Vec<Date>)> {
        let i = self.position(id).ok()?;
        let released = self.release(id, Date::MIN);
        Some((self.kept.remove(i), released))
    }

    /// Gives back the nights on or after `from` that `id` holds; returns them.
    pub(crate) fn release(&mut self, id: &ReservationId, from: Date) -> Vec<Date> {
        let Some(i) = self.span_of(id) else {
            return Vec::new();
        };
        let span = &mut self.spans[i];
        let keep_to = from.max(span.from);
        if keep_to >= span.to {
            return Vec::new();
        }
        let released = nights(keep_to, span.to).collect();
        span.to = keep_to;
        if span.from >= span.to {
            self.spans.remove(i);
        }
        released
    }

    /// Where `id`'s span is: it starts at the reservation's first night here, so a binary
    /// search finds it (a scan is the fallback for a span replaced by a replayed creation).
    fn span_of(&self, id: &ReservationId) -> Option<usize> {
        let first = self.get(id)?.first_night_here();
        let i = self.spans.partition_point(|s| s.from < first);
        if self.spans.get(i).is_some_and(|s| s.id == *id) {
            return Some(i);
        }
        self.spans.iter().position(|s| s.id == *id)
    }

    /// Pins the booked type of every reservation before the room becomes another type.
    pub(crate) fn pin_room_types(&mut self, old_room_type: &RoomTypeCode) {
        for k in &mut self.kept {
            k.pin_room_type(old_room_type);
        }
    }

    /// Refuses a decoded ledger that breaks its invariants (ids sorted and unique; spans
    /// non-empty, sorted, disjoint, each of a kept reservation, one per reservation).
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.kept.windows(2).any(|w| w[0].id >= w[1].id) {
            return Err("reservations not sorted by id".into());
        }
        for k in &self.kept {
            join(k.created_secs, k.created_nanos)
                .and(join(k.hold_secs, k.hold_nanos))
                .map_err(|e| format!("reservation {}: {e}", k.id))?;
        }
        for s in &self.spans {
            if s.from >= s.to {
                return Err(format!("empty span of {}", s.id));
            }
            if !self.contains(&s.id) {
                return Err(format!("span of unknown reservation {}", s.id));
            }
        }
        if self.spans.windows(2).any(|w| w[0].to > w[1].from) {
            return Err("spans overlap or are not sorted".into());
        }
        let mut ids: Vec<ReservationId> = self.spans.iter().map(|s| s.id).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err("two spans of one reservation".into());
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Ledger {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename = "Ledger")]
        struct Fields {
            kept: Vec<Kept>,
            spans: Vec<Span>,
        }
        let Fields { kept, spans } = Fields::deserialize(d)?;
        let ledger = Ledger { kept, spans };
        ledger.check().map_err(D::Error::custom)?;
        Ok(ledger)
    }
}

/// Snapshot format 5's encoding of a ledger: the same as today's, but a reservation's
/// extra part had no [`Sold`] terms (there were no rate plans).
pub(crate) mod v5 {
    use super::*;

    /// [`Kept`] as format 5 encoded it.
    #[derive(Deserialize, Debug)]
    #[serde(rename = "Kept")]
    struct KeptV5 {
        id: ReservationId,
        guest: Guest,
        created_by: Option<Arc<str>>,
        extra: Option<Box<ExtraV5>>,
        version: u64,
        total_minor: i64,
        created_secs: i64,
        hold_secs: i64,
        created_nanos: i32,
        hold_nanos: i32,
        stay: Stay,
        guests: u16,
        currency: Currency,
        status: Status,
        payment_status: PaymentStatus,
        refund_owed: bool,
    }

    /// [`Extra`] as format 5 encoded it.
    #[derive(Deserialize, Debug)]
    #[serde(rename = "Extra")]
    struct ExtraV5 {
        history: Option<Vec<HistoryEntry>>,
        payment_history: Option<Vec<PaymentStep>>,
        trade_no: Option<Arc<str>>,
        moved: Option<Box<v6::MovedV6>>,
    }

    /// A format-5 ledger, decoded and checked as today's.
    #[derive(Debug)]
    pub(crate) struct LedgerV5(pub(crate) Ledger);

    impl<'de> Deserialize<'de> for LedgerV5 {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            #[derive(Deserialize)]
            #[serde(rename = "Ledger")]
            struct Fields {
                kept: Vec<KeptV5>,
                spans: Vec<Span>,
            }
            let Fields { kept, spans } = Fields::deserialize(d)?;
            let kept = kept
                .into_iter()
                .map(|k| Kept {
                    id: k.id,
                    guest: k.guest,
                    created_by: k.created_by,
                    extra: k.extra.map(|e| {
                        Box::new(Extra {
                            history: e.history,
                            payment_history: e.payment_history,
                            trade_no: e.trade_no,
                            moved: e.moved.map(|m| {
                                Box::new(Moved {
                                    room_type: m.room_type,
                                    moves: m.moves,
                                    modifications: Vec::new(),
                                    booking: None,
                                })
                            }),
                            sold: None,
                            adjustment: None,
                        })
                    }),
                    version: k.version,
                    total_minor: k.total_minor,
                    created_secs: k.created_secs,
                    hold_secs: k.hold_secs,
                    created_nanos: k.created_nanos,
                    hold_nanos: k.hold_nanos,
                    stay: k.stay,
                    guests: k.guests,
                    currency: k.currency,
                    status: k.status,
                    payment_status: k.payment_status,
                    refund_owed: k.refund_owed,
                    pinned: false,
                })
                .collect();
            let ledger = Ledger { kept, spans };
            ledger.check().map_err(D::Error::custom)?;
            Ok(LedgerV5(ledger))
        }
    }
}

/// Snapshot format 6's encoding of a ledger: the same as today's, but a moved
/// reservation's [`Moved`] part had no modifications (there were none).
pub(crate) mod v6 {
    use super::*;

    /// [`Kept`] as format 6 encoded it.
    #[derive(Deserialize, Debug)]
    #[serde(rename = "Kept")]
    struct KeptV6 {
        id: ReservationId,
        guest: Guest,
        created_by: Option<Arc<str>>,
        extra: Option<Box<ExtraV6>>,
        version: u64,
        total_minor: i64,
        created_secs: i64,
        hold_secs: i64,
        created_nanos: i32,
        hold_nanos: i32,
        stay: Stay,
        guests: u16,
        currency: Currency,
        status: Status,
        payment_status: PaymentStatus,
        refund_owed: bool,
    }

    /// [`Extra`] as format 6 encoded it.
    #[derive(Deserialize, Debug)]
    #[serde(rename = "Extra")]
    struct ExtraV6 {
        history: Option<Vec<HistoryEntry>>,
        payment_history: Option<Vec<PaymentStep>>,
        trade_no: Option<Arc<str>>,
        moved: Option<Box<MovedV6>>,
        sold: Option<Box<Sold>>,
    }

    /// [`Moved`] as format 6 encoded it.
    #[derive(Deserialize, Debug)]
    #[serde(rename = "Moved")]
    pub(super) struct MovedV6 {
        pub(super) room_type: Option<RoomTypeCode>,
        pub(super) moves: Vec<RoomMove>,
    }

    /// A format-6 ledger, decoded and checked as today's.
    #[derive(Debug)]
    pub(crate) struct LedgerV6(pub(crate) Ledger);

    impl<'de> Deserialize<'de> for LedgerV6 {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            #[derive(Deserialize)]
            #[serde(rename = "Ledger")]
            struct Fields {
                kept: Vec<KeptV6>,
                spans: Vec<Span>,
            }
            let Fields { kept, spans } = Fields::deserialize(d)?;
            let kept = kept
                .into_iter()
                .map(|k| Kept {
                    id: k.id,
                    guest: k.guest,
                    created_by: k.created_by,
                    extra: k.extra.map(|e| {
                        Box::new(Extra {
                            history: e.history,
                            payment_history: e.payment_history,
                            trade_no: e.trade_no,
                            moved: e.moved.map(|m| {
                                Box::new(Moved {
                                    room_type: m.room_type,
                                    moves: m.moves,
                                    modifications: Vec::new(),
                                    booking: None,
                                })
                            }),
                            sold: e.sold,
                            adjustment: None,
                        })
                    }),
                    version: k.version,
                    total_minor: k.total_minor,
                    created_secs: k.created_secs,
                    hold_secs: k.hold_secs,
                    created_nanos: k.created_nanos,
                    hold_nanos: k.hold_nanos,
                    stay: k.stay,
                    guests: k.guests,
                    currency: k.currency,
                    status: k.status,
                    payment_status: k.payment_status,
                    refund_owed: k.refund_owed,
                    pinned: false,
                })
                .collect();
            let ledger = Ledger { kept, spans };
            ledger.check().map_err(D::Error::custom)?;
            Ok(LedgerV6(ledger))
        }
    }
}

pub(crate) mod v7 {
    use super::*;

    /// [`Kept`] as format 7 encoded it.
    #[derive(Deserialize, Debug)]
    #[serde(rename = "Kept")]
    struct KeptV7 {
        id: ReservationId,
        guest: Guest,
        created_by: Option<Arc<str>>,
        extra: Option<Box<ExtraV7>>,
        version: u64,
        total_minor: i64,
        created_secs: i64,
        hold_secs: i64,
        created_nanos: i32,
        hold_nanos: i32,
        stay: Stay,
        guests: u16,
        currency: Currency,
        status: Status,
        payment_status: PaymentStatus,
        refund_owed: bool,
    }

    /// [`Extra`] as format 7 encoded it: no reservation was re-priced after its charge.
    #[derive(Deserialize, Debug)]
    #[serde(rename = "Extra")]
    struct ExtraV7 {
        history: Option<Vec<HistoryEntry>>,
        payment_history: Option<Vec<PaymentStep>>,
        trade_no: Option<Arc<str>>,
        moved: Option<Box<Moved>>,
        sold: Option<Box<Sold>>,
    }

    /// A format-7 ledger, decoded and checked as today's.
    #[derive(Debug)]
    pub(crate) struct LedgerV7(pub(crate) Ledger);

    impl<'de> Deserialize<'de> for LedgerV7 {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            #[derive(Deserialize)]
            #[serde(rename = "Ledger")]
            struct Fields {
                kept: Vec<KeptV7>,
                spans: Vec<Span>,
            }
            // Today's `Moved`, without the booking it gained in format 9.
            let Fields { kept, spans } =
                crate::codec::decoding_before(crate::codec::Added::Bookings, || {
                    Fields::deserialize(d)
                })?;
            let kept = kept
                .into_iter()
                .map(|k| Kept {
                    id: k.id,
                    guest: k.guest,
                    created_by: k.created_by,
                    extra: k.extra.map(|e| {
                        Box::new(Extra {
                            history: e.history,
                            payment_history: e.payment_history,
                            trade_no: e.trade_no,
                            moved: e.moved,
                            sold: e.sold,
                            adjustment: None,
                        })
                    }),
                    version: k.version,
                    total_minor: k.total_minor,
                    created_secs: k.created_secs,
                    hold_secs: k.hold_secs,
                    created_nanos: k.created_nanos,
                    hold_nanos: k.hold_nanos,
                    stay: k.stay,
                    guests: k.guests,
                    currency: k.currency,
                    status: k.status,
                    payment_status: k.payment_status,
                    refund_owed: k.refund_owed,
                    // Format 7 predates pins: nothing was pinned.
                    pinned: false,
                })
                .collect();
            let ledger = Ledger { kept, spans };
            ledger.check().map_err(D::Error::custom)?;
            Ok(LedgerV7(ledger))
        }
    }
}

/// Each night of `[from, to)`.
pub(crate) fn nights(from: Date, to: Date) -> impl Iterator<Item = Date> {
    std::iter::successors(Some(from), |d| d.tomorrow().ok()).take_while(move |d| *d < to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{HotelId, RoomNumber};
    use crate::reservation::BookRequest;

    /// Recovery grows a room's vectors by doubling and gives the spare back at its end;
    /// serving grows them by a quarter. Either way the records are all kept, in order.
    #[test]
    fn recovery_growth_is_given_back_and_serving_growth_is_a_quarter() {
        let (_, room_type) = room();
        let fill = |growth: Growth| {
            let mut ledger = Ledger::default();
            for n in 0..29u128 {
                let r = reservation(n + 1, 1 + n as i8, 1);
                let kept = Kept::new(&r, &room_type);
                ledger.keep(kept, r.stay.arrival(), r.stay.departure(), growth);
            }
            ledger
        };
        let mut recovered = fill(Growth::Double);
        assert!(recovered.kept.capacity() >= 32, "doubled: 4, 8, 16, 32");
        recovered.fit();
        assert_eq!(recovered.kept.capacity(), 29);
        assert_eq!(recovered.spans.capacity(), 29);
        let served = fill(Growth::Quarter);
        // 2, 4, 6, 8, 10, 12, 15, 18, 22, 27, 33: a quarter at a time (two at least).
        assert_eq!(served.kept.capacity(), 33);
        assert_eq!(served.kept, recovered.kept);
        assert_eq!(served.spans, recovered.spans);
        let ids: Vec<u128> = served.kept.iter().map(|k| k.id.0.as_u128()).collect();
        assert_eq!(ids, (1..=29).collect::<Vec<_>>());
    }

    /// `get` and `contains` find every kept id (the last one too, which the fast path
    /// answers) and none that is not kept, before, between or after them.
    #[test]
    fn lookups_find_exactly_the_kept_ids() {
        let (_, room_type) = room();
        let mut ledger = Ledger::default();
        let id = |n: u128| ReservationId(uuid::Uuid::from_u128(n));
        assert!(!ledger.contains(&id(1)));
        for n in [2u128, 4, 6] {
            let r = reservation(n, n as i8, 1);
            let kept = Kept::new(&r, &room_type);
            ledger.keep(kept, r.stay.arrival(), r.stay.departure(), Growth::Quarter);
        }
        for n in [2u128, 4, 6] {
            assert!(ledger.contains(&id(n)), "{n} is kept");
            assert_eq!(ledger.get(&id(n)).map(|k| k.id), Some(id(n)));
        }
        for n in [1u128, 3, 5, 7] {
            assert!(!ledger.contains(&id(n)), "{n} is not kept");
            assert!(ledger.get(&id(n)).is_none());
        }
    }

    fn room() -> (RoomKey, RoomTypeCode) {
        let key = RoomKey {
            hotel_id: HotelId::parse("H1").unwrap(),
            number: RoomNumber::parse("101").unwrap(),
        };
        (key, RoomTypeCode::parse("KING").unwrap())
    }

    /// A pending reservation `n` for `[arrival, arrival + nights)` of January 2030.
    fn reservation(n: u128, arrival: i8, nights: i8) -> Reservation {
        let (key, room_type) = room();
        let day = |d: i8| jiff::civil::date(2030, 1, d);
        let req = BookRequest {
            hotel_id: key.hotel_id.clone(),
            room_type,
            stay: Stay::between(day(arrival), day(arrival + nights)).unwrap(),
            guests: 2,
            guest: Guest::parse("Li Lei", "+86 138-0000-0000", "li@example.com").unwrap(),
            room: None,
            rate_plan: crate::ids::RatePlanCode::bar(),
        };
        let total = Money {
            amount_minor: 12_345,
            currency: Currency::parse("CNY").unwrap(),
        };
        let mut r = crate::state::new_reservation(
            &req,
            key.number.clone(),
            total,
            ReservationId(uuid::Uuid::from_u128(n)),
            Timestamp::new(1_900_000_000, 123).unwrap(),
            jiff::SignedDuration::from_mins(15),
        );
        r.created_by = Some("key-9".into());
        r
    }

    /// Every accessor says what the rebuilt reservation says.
    #[test]
    fn accessors_agree_with_the_rebuilt_reservation() {
        let (key, room_type) = room();
        let mut r = reservation(1, 3, 2);
        r.payment.trade_no = Some("T-1".into());
        r.payment.status = PaymentStatus::Failed;
        r.version = 3;
        let kept = Kept::new(&r, &room_type);
        let back = kept.to_reservation(&key, &room_type);
        assert_eq!(back, r);
        assert_eq!(kept.id(), r.id);
        assert_eq!(kept.guests(), 2);
        assert_eq!(kept.guest(), &r.guest);
        assert_eq!(kept.created_by().map(|c| &**c), Some("key-9"));
        assert_eq!(kept.total(), r.total);
        assert_eq!(kept.version(), 3);
        assert_eq!(kept.stay(), r.stay);
        assert_eq!(kept.status(), Status::PendingPayment);
        assert_eq!(kept.payment_status(), PaymentStatus::Failed);
        assert!(!kept.refund_owed());
        assert_eq!(kept.trade_no(), Some("T-1"));
        assert_eq!(kept.created_at(), r.created_at);
        assert_eq!(kept.hold_expires_at(), r.hold_expires_at);
        assert_eq!(kept.room_type_in(&room_type), &room_type);
    }

    /// A paid reservation's payment history shares the provider's reference with the
    /// payment (one text, not one per entry), and its vectors hold exactly their entries.
    #[test]
    fn a_paid_reservation_keeps_one_reference_and_exact_histories() {
        let (key, room_type) = room();
        let mut kept = Kept::new(&reservation(1, 3, 2), &room_type);
        let at = Timestamp::new(1_900_000_100, 0).unwrap();
        kept.set_status(Status::Confirmed);
        kept.push_history(at, Status::PendingPayment, Status::Confirmed);
        kept.set_payment(PaymentStatus::Succeeded, Some("T-77"), false);
        kept.push_payment_history(at, PaymentEventKind::Succeeded);
        let extra = kept.extra.as_deref().unwrap();
        let steps = extra.payment_history.as_ref().unwrap();
        let shared = steps[1].trade_no.as_ref().unwrap();
        assert!(Arc::ptr_eq(shared, extra.trade_no.as_ref().unwrap()));
        assert_eq!(steps.capacity(), 2);
        assert_eq!(extra.history.as_ref().unwrap().capacity(), 2);
        let r = kept.to_reservation(&key, &room_type);
        assert_eq!(r.payment.history[1].trade_no.as_deref(), Some("T-77"));
        assert_eq!(r.payment.trade_no.as_deref(), Some("T-77"));
        assert_eq!(r.history[1].version, 2);
        // Kept again from what it shows: the same record.
        assert_eq!(Kept::new(&r, &room_type), kept);
    }

    /// A payment history entry keeps its own provider reference when it is not the
    /// payment's current one (a failed attempt before the one that succeeded).
    #[test]
    fn an_earlier_attempts_reference_is_kept_apart_from_the_current_one() {
        let (key, room_type) = room();
        let mut r = reservation(1, 3, 2);
        let at = Timestamp::new(1_900_000_100, 0).unwrap();
        let entry = |kind, status, trade_no: &str| PaymentHistoryEntry {
            at,
            kind,
            status,
            trade_no: Some(trade_no.to_owned()),
        };
        r.payment.history.push(entry(
            PaymentEventKind::Failed,
            PaymentStatus::Failed,
            "T-1",
        ));
        r.payment.history.push(entry(
            PaymentEventKind::Succeeded,
            PaymentStatus::Succeeded,
            "T-2",
        ));
        r.payment.trade_no = Some("T-2".into());
        r.payment.status = PaymentStatus::Succeeded;
        let kept = Kept::new(&r, &room_type);
        let extra = kept.extra.as_deref().unwrap();
        let steps = extra.payment_history.as_ref().unwrap();
        let current = extra.trade_no.as_ref().unwrap();
        // The current reference's entry shares its text; the earlier one has its own.
        assert!(Arc::ptr_eq(steps[2].trade_no.as_ref().unwrap(), current));
        assert!(!Arc::ptr_eq(steps[1].trade_no.as_ref().unwrap(), current));
        let back = kept.to_reservation(&key, &room_type);
        let refs: Vec<_> = back
            .payment
            .history
            .iter()
            .map(|e| e.trade_no.as_deref())
            .collect();
        assert_eq!(refs, [None, Some("T-1"), Some("T-2")]);
        assert_eq!(back, r);
    }

    /// Both histories stop at `MAX_HISTORY` entries, the creation entry included.
    #[test]
    fn histories_stop_at_their_bound() {
        let (key, room_type) = room();
        let mut kept = Kept::new(&reservation(1, 3, 2), &room_type);
        let at = Timestamp::new(1_900_000_100, 0).unwrap();
        for _ in 0..MAX_HISTORY + 5 {
            kept.bump_version();
            kept.push_history(at, Status::PendingPayment, Status::PendingPayment);
            kept.push_payment_history(at, PaymentEventKind::Failed);
        }
        let r = kept.to_reservation(&key, &room_type);
        assert_eq!(r.history.len(), MAX_HISTORY);
        assert_eq!(r.payment.history.len(), MAX_HISTORY);
        assert_eq!(r.history[1].version, 2, "the first change after creation");
    }

    /// A ledger finds, releases and removes what it holds; its vectors grow by a quarter,
    /// not by doubling; its calendar stays sorted and disjoint whatever order the stays
    /// come in.
    #[test]
    fn a_ledger_holds_sorted_disjoint_spans_and_grows_by_a_quarter() {
        let (_, room_type) = room();
        let mut ledger = Ledger::default();
        assert!(ledger.is_empty());
        // Ids in a shuffled order, stays of two nights on every third night.
        let order: Vec<u128> = (0..60u128).map(|i| (i * 37) % 60).collect();
        for (n, i) in order.iter().enumerate() {
            let arrival = 1 + (*i % 10) as i8 * 3;
            let r = reservation(*i, arrival, 2);
            let night = r.stay.arrival();
            let nights = if *i < 10 {
                ledger.insert(Kept::new(&r, &room_type), night, r.stay.departure())
            } else {
                // The rest keep no nights (as if checked out long ago).
                ledger.insert(Kept::new(&r, &room_type), night, night)
            };
            assert_eq!(nights.len(), if *i < 10 { 2 } else { 0 });
            assert_eq!(ledger.len(), n + 1);
            let bound = |len: usize| len + (len / 4).max(2);
            assert!(ledger.kept.capacity() <= bound(ledger.kept.len()), "{n}");
            assert!(ledger.spans.capacity() <= bound(ledger.spans.len()), "{n}");
        }
        assert!(!ledger.is_empty());
        assert_eq!(ledger.check(), Ok(()));
        let ids: Vec<u128> = ledger.iter().map(|k| k.id().0.as_u128()).collect();
        assert_eq!(ids, (0..60).collect::<Vec<_>>());
        let day = |d: i8| jiff::civil::date(2030, 1, d);
        let first = ReservationId(uuid::Uuid::from_u128(0));
        assert_eq!(ledger.holder(day(1)), Some(first));
        assert_eq!(ledger.holder(day(2)), Some(first));
        assert_eq!(ledger.holder(day(3)), None);
        assert_eq!(ledger.overlapping(day(2), day(5)).len(), 2);
        assert_eq!(ledger.release(&first, day(2)), vec![day(2)]);
        assert_eq!(ledger.holder(day(2)), None);
        let (gone, released) = ledger.remove(&first).unwrap();
        assert_eq!((gone.id(), released), (first, vec![day(1)]));
        assert!(ledger.get(&first).is_none());
        assert_eq!(ledger.check(), Ok(()));
    }

    /// A creation replayed twice with other nights: the later one stands, and the nights
    /// of the first are given back (found though the span no longer starts at the
    /// reservation's first night).
    #[test]
    fn a_second_creation_of_one_id_replaces_the_first_with_its_nights() {
        let (_, room_type) = room();
        let mut ledger = Ledger::default();
        let other = reservation(5, 1, 2);
        ledger.insert(
            Kept::new(&other, &room_type),
            other.stay.arrival(),
            other.stay.departure(),
        );
        let first = reservation(7, 10, 3);
        ledger.insert(
            Kept::new(&first, &room_type),
            first.stay.arrival(),
            first.stay.departure(),
        );
        let again = reservation(7, 20, 2);
        let booked = ledger.insert(
            Kept::new(&again, &room_type),
            again.stay.arrival(),
            again.stay.departure(),
        );
        assert_eq!(booked.len(), 2);
        assert_eq!(ledger.len(), 2);
        let day = |d: i8| jiff::civil::date(2030, 1, d);
        assert_eq!(
            ledger.holder(day(10)),
            None,
            "the first creation's nights are gone"
        );
        assert_eq!(ledger.holder(day(20)), Some(again.id));
        assert_eq!(
            ledger.holder(day(1)),
            Some(other.id),
            "another reservation's stay"
        );
        assert_eq!(ledger.spans().len(), 2);
        assert_eq!(ledger.check(), Ok(()));
        // Releasing finds the span by the reservation's first night.
        assert_eq!(ledger.release(&again.id, day(21)), vec![day(21)]);
        assert_eq!(ledger.release(&other.id, day(1)), vec![day(1), day(2)]);
        assert!(ledger
            .overlapping(day(1), day(30))
            .iter()
            .all(|s| s.id == again.id));
    }

    /// A decoded ledger that breaks its invariants is refused, not trusted.
    #[test]
    fn a_ledger_that_breaks_its_invariants_does_not_decode() {
        let (_, room_type) = room();
        let mut ledger = Ledger::default();
        let (a, b) = (reservation(1, 3, 2), reservation(2, 6, 2));
        for r in [&a, &b] {
            ledger.insert(
                Kept::new(r, &room_type),
                r.stay.arrival(),
                r.stay.departure(),
            );
        }
        let cfg = bincode::config::standard();
        let decode = |l: &Ledger| {
            let bytes = bincode::serde::encode_to_vec(l, cfg).unwrap();
            bincode::serde::decode_from_slice::<Ledger, _>(&bytes, cfg).map(|(l, _)| l)
        };
        assert_eq!(decode(&ledger).unwrap(), ledger);
        let mut overlapping = ledger.clone();
        overlapping.spans[0].to = overlapping.spans[1].from.tomorrow().unwrap();
        assert!(decode(&overlapping).is_err());
        let mut unsorted = ledger.clone();
        unsorted.kept.swap(0, 1);
        assert!(decode(&unsorted).is_err());
        let mut stray = ledger.clone();
        stray.spans[1].id = ReservationId(uuid::Uuid::from_u128(9));
        assert!(decode(&stray).is_err());
        let mut empty = ledger.clone();
        empty.spans[0].to = empty.spans[0].from;
        assert!(decode(&empty).is_err());
        let mut twice = ledger;
        twice.spans[1].id = twice.spans[0].id;
        assert!(decode(&twice).is_err());
    }
}
