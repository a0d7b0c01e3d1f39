//! One room: its calendar (which reservation holds which night), its status, and the
//! reservations assigned to it. A RoomActor owns exactly one of these.

use std::collections::BTreeMap;
use std::fmt;

use jiff::civil::Date;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{DomainError, NightConflict, ValidationError};
use crate::event::{Change, Event, Modification, Settlement};
use crate::ids::{ReservationId, RoomKey, RoomTypeCode};
use crate::ledger::{nights, Kept, Ledger};
use crate::rearrange::Held;
use crate::reservation::Settle;
use crate::reservation::{
    Action, FieldChange, HistoryEntry, PaymentChange, PaymentEventKind, PaymentOutcome,
    PaymentReport, PaymentStatus, Reservation, RoomMove, Status, MAX_HISTORY, MAX_MOVES,
};

/// Longest out-of-order range, in nights (a year). A room closed for longer is better
/// retyped or removed from sale another way; the bound keeps one command's work small.
pub const MAX_OUT_OF_ORDER_NIGHTS: i64 = 366;

/// Most out-of-order ranges a room keeps that have not ended yet. Ranges that ended are
/// dropped when a new one is set, so a room's list stays small.
pub const MAX_OUT_OF_ORDER_RANGES: usize = 32;

/// Longest out-of-order reason, in characters.
pub const MAX_OUT_OF_ORDER_REASON_CHARS: usize = 200;

/// A date range during which a room cannot be sold (repairs, renovation).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct OutOfOrder {
    /// First night back in order (the range is `[from, to)`; `from` is the map key).
    #[serde(with = "crate::codec::date")]
    pub to: Date,
    /// Why, for the staff.
    pub reason: String,
}

/// A room's cleanliness and usability.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Debug)]
#[serde(rename_all = "snake_case")]
pub enum Housekeeping {
    /// Ready for a guest.
    Clean,
    /// Needs cleaning (after check-out).
    Dirty,
    /// Being cleaned.
    Cleaning,
    /// Cleaned and checked by a supervisor.
    Inspected,
    /// Not usable.
    OutOfOrder,
}

impl Housekeeping {
    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Housekeeping::Clean => "clean",
            Housekeeping::Dirty => "dirty",
            Housekeeping::Cleaning => "cleaning",
            Housekeeping::Inspected => "inspected",
            Housekeeping::OutOfOrder => "out_of_order",
        }
    }

    /// Parses the wire name.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        Ok(match raw {
            "clean" => Housekeeping::Clean,
            "dirty" => Housekeeping::Dirty,
            "cleaning" => Housekeeping::Cleaning,
            "inspected" => Housekeeping::Inspected,
            "out_of_order" => Housekeeping::OutOfOrder,
            _ => {
                return Err(ValidationError::new(
                    "status",
                    "must be one of clean, dirty, cleaning, inspected, out_of_order",
                ))
            }
        })
    }

    /// Housekeeping's workflow: dirty → cleaning → clean → inspected. Any room can be
    /// marked dirty or out of order; an out-of-order room comes back as dirty.
    pub fn can_move_to(&self, to: Housekeeping) -> bool {
        use Housekeeping::*;
        match (self, to) {
            (_, Dirty | OutOfOrder) => true,
            (OutOfOrder, _) => false,
            (from, to) => matches!(
                (from, to),
                (Dirty, Cleaning) | (Cleaning, Clean) | (Clean, Inspected)
            ),
        }
    }

    /// Whether a guest may be checked in.
    pub fn ready_for_guest(&self) -> bool {
        matches!(self, Housekeeping::Clean | Housekeeping::Inspected)
    }
}

impl fmt::Display for Housekeeping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a guest is in the room (derived from the checked-in reservation).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Occupancy {
    /// No guest.
    Vacant,
    /// A guest is checked in.
    Occupied,
}

impl Occupancy {
    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Occupancy::Vacant => "vacant",
            Occupancy::Occupied => "occupied",
        }
    }
}

/// Nights a change booked or released; the availability index follows these.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct NightsDelta {
    /// Nights newly held.
    pub booked: Vec<Date>,
    /// Nights given back.
    pub released: Vec<Date>,
}

impl NightsDelta {
    /// Adds `other`'s nights to these (the changes of one event's parts, in order).
    pub fn merge(&mut self, other: NightsDelta) {
        self.booked.extend(other.booked);
        self.released.extend(other.released);
    }
}

/// One room's whole state.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct RoomState {
    /// Which room.
    pub key: RoomKey,
    /// Its type (decides which bookings may land here).
    pub room_type: RoomTypeCode,
    /// Cleanliness.
    pub housekeeping: Housekeeping,
    /// The reservation whose guest is in the room, if any; occupancy derives from it.
    pub occupant: Option<ReservationId>,
    /// Every reservation ever assigned to this room (and not moved away), compact, and
    /// the calendar of the nights they hold: the authority against double-selling.
    pub ledger: Ledger,
    /// Out-of-order ranges by first night; disjoint, and disjoint from `calendar`.
    #[serde(with = "crate::codec::date_map")]
    pub out_of_order: BTreeMap<Date, OutOfOrder>,
}

impl RoomState {
    /// A new, clean, empty room.
    pub fn new(key: RoomKey, room_type: RoomTypeCode) -> Self {
        Self {
            key,
            room_type,
            housekeeping: Housekeeping::Clean,
            occupant: None,
            ledger: Ledger::default(),
            out_of_order: BTreeMap::new(),
        }
    }

    /// Out-of-order ranges overlapping `[from, to)`, as `(from, range)`.
    pub fn out_of_order_overlapping(
        &self,
        from: Date,
        to: Date,
    ) -> impl Iterator<Item = (&Date, &OutOfOrder)> + '_ {
        self.out_of_order
            .range(..to)
            .filter(move |(_, range)| range.to > from)
    }

    /// Everything holding nights in `[from, to)`: live reservations (each once) and
    /// out-of-order ranges, sorted by first night.
    pub fn conflicts(&self, from: Date, to: Date) -> Vec<NightConflict> {
        let mut out = Vec::new();
        for span in self.ledger.overlapping(from, to) {
            if let Some(r) = self.ledger.get(&span.id) {
                out.push(NightConflict::Reservation {
                    id: span.id,
                    first_night: r.first_night_here(),
                    departure: r.stay().departure(),
                    status: r.status(),
                });
            }
        }
        out.extend(self.out_of_order_overlapping(from, to).map(|(f, range)| {
            NightConflict::OutOfOrder {
                from: *f,
                to: range.to,
            }
        }));
        out.sort_by_key(|c| match c {
            NightConflict::Reservation { first_night, .. } => *first_night,
            NightConflict::OutOfOrder { from, .. } => *from,
        });
        out
    }

    /// Decides taking the room out of order for `[from, to)`. `Ok(None)` when exactly that
    /// range is already set (a retried request). Refused with every conflicting
    /// reservation listed while any night in the range is sold; ranges may not overlap.
    pub fn decide_out_of_order(
        &self,
        from: Date,
        to: Date,
        reason: &str,
        today: Date,
        now: Timestamp,
    ) -> Result<Option<Event>, DomainError> {
        if from < today {
            return Err(
                ValidationError::new("from", "must not be before the hotel's today").into(),
            );
        }
        if to <= from {
            return Err(ValidationError::new("to", "must be after from").into());
        }
        let nights = i64::from((to - from).get_days());
        if nights > MAX_OUT_OF_ORDER_NIGHTS {
            return Err(ValidationError::new(
                "to",
                format!("a range may be at most {MAX_OUT_OF_ORDER_NIGHTS} nights"),
            )
            .into());
        }
        let reason = reason.trim();
        if reason.chars().count() > MAX_OUT_OF_ORDER_REASON_CHARS
            || reason.chars().any(char::is_control)
        {
            return Err(ValidationError::new(
                "reason",
                format!("must be at most {MAX_OUT_OF_ORDER_REASON_CHARS} printable characters"),
            )
            .into());
        }
        if let Some(existing) = self.out_of_order.get(&from) {
            if existing.to == to && existing.reason == reason {
                return Ok(None);
            }
        }
        let conflicts = self.conflicts(from, to);
        if !conflicts.is_empty() {
            return Err(DomainError::NightsSold(conflicts));
        }
        let open = self.out_of_order.values().filter(|r| r.to > today).count();
        if open >= MAX_OUT_OF_ORDER_RANGES {
            return Err(DomainError::LimitReached("out-of-order ranges per room"));
        }
        Ok(Some(Event::OutOfOrderSet {
            room: self.key.clone(),
            from,
            to,
            reason: reason.to_owned(),
            today,
            at: now,
        }))
    }

    /// Decides putting the room back in order for the range starting at `from`.
    pub fn decide_back_in_order(&self, from: Date, now: Timestamp) -> Result<Event, DomainError> {
        if !self.out_of_order.contains_key(&from) {
            return Err(DomainError::NotFound("out-of-order range"));
        }
        Ok(Event::OutOfOrderCleared {
            room: self.key.clone(),
            from,
            at: now,
        })
    }

    /// Decides moving reservation `id` out of this room to `to` (the first half of a room
    /// move; [`RoomState::decide_move_in`] is the other). Returns the first night the new
    /// room must hold: the stay's first night here, or `today` for a guest already in.
    pub fn decide_move_out(
        &self,
        id: &ReservationId,
        to: &RoomKey,
        expected_version: Option<u64>,
        today: Date,
    ) -> Result<Date, DomainError> {
        let r = self.kept(id)?;
        check_version(r, expected_version)?;
        if to.hotel_id != self.key.hotel_id {
            return Err(DomainError::NotFound("room"));
        }
        let refused = DomainError::InvalidTransition {
            action: "move",
            from: r.status(),
        };
        let first_night = match r.status() {
            Status::Confirmed => r.first_night_here(),
            // The nights already slept stay where they were slept.
            Status::CheckedIn if today < r.stay().departure() => today.max(r.first_night_here()),
            _ => return Err(refused),
        };
        Ok(first_night)
    }

    /// Whether this room can take `reservation` from `first_night` on: every night free and
    /// in order, and for a guest already checked in, the room vacant and ready.
    pub fn decide_move_in(
        &self,
        reservation: &Reservation,
        first_night: Date,
    ) -> Result<(), DomainError> {
        if self.ledger.contains(&reservation.id) {
            return Err(DomainError::InvalidTransition {
                action: "move",
                from: reservation.status,
            });
        }
        let conflicts = self.conflicts(first_night, reservation.stay.departure());
        if !conflicts.is_empty() {
            return Err(DomainError::NightsSold(conflicts));
        }
        if reservation.status == Status::CheckedIn {
            let blocker = if self.occupant.is_some() {
                Some("occupied")
            } else if !self.housekeeping.ready_for_guest() {
                Some(self.housekeeping.as_str())
            } else {
                None
            };
            if let Some(housekeeping) = blocker {
                return Err(DomainError::RoomNotReady {
                    room: self.key.number.clone(),
                    housekeeping,
                });
            }
        }
        Ok(())
    }

    /// The moving half of [`Event::ReservationMoved`] for the room it leaves: the
    /// reservation and every night it held here go; a guest who was in the room leaves it
    /// vacant and dirty. Returns the reservation for the room it goes to.
    pub fn move_out(&mut self, id: &ReservationId) -> (Option<Reservation>, NightsDelta) {
        let mut delta = NightsDelta::default();
        let Some((kept, released)) = self.ledger.remove(id) else {
            return (None, delta);
        };
        delta.released = released;
        if self.occupant == Some(*id) {
            self.occupant = None;
            self.housekeeping = Housekeeping::Dirty;
        }
        (Some(kept.to_reservation(&self.key, &self.room_type)), delta)
    }

    /// The arriving half of [`Event::ReservationMoved`]: takes `reservation` (from the
    /// room it left) with its nights from the move's first night on. A reservation the
    /// staff moved stays where they put it: it is pinned from now on (see the event's
    /// `pins`).
    pub fn move_in(&mut self, mut reservation: Reservation, event: &Event) -> NightsDelta {
        let Event::ReservationMoved {
            from,
            room_type,
            first_night,
            at,
            pins,
            ..
        } = event
        else {
            return NightsDelta::default();
        };
        reservation.room_type = room_type.clone();
        reservation.pinned |= *pins;
        self.arrive(
            reservation,
            RoomMove {
                at: *at,
                from_room: from.number.clone(),
                to_room: self.key.number.clone(),
                first_night: *first_night,
            },
        )
    }

    /// Takes `reservation`, moved here by `step`: a new version, a history entry (the
    /// status stays; the details are in `moves`), and its nights from the step's first
    /// night on.
    fn arrive(&mut self, mut reservation: Reservation, step: RoomMove) -> NightsDelta {
        reservation.room = self.key.number.clone();
        reservation.version += 1;
        if reservation.history.len() < MAX_HISTORY {
            reservation.history.push(HistoryEntry {
                at: step.at,
                from: Some(reservation.status),
                to: reservation.status,
                version: reservation.version,
            });
        }
        if reservation.moves.len() >= MAX_MOVES {
            reservation.moves.remove(0);
        }
        reservation.moves.push(step);
        if reservation.status == Status::CheckedIn {
            self.occupant = Some(reservation.id);
        }
        let (first, departure) = (reservation.first_night_here(), reservation.stay.departure());
        let kept = Kept::new(&reservation, &self.room_type);
        NightsDelta {
            booked: self.ledger.insert(kept, first, departure),
            released: Vec::new(),
        }
    }

    /// What this room holds on the nights of `[from, to)`, for planning a rearrangement
    /// ([`crate::rearrange::plan`]). A reservation may move when it is wholly inside the
    /// window (so the plan sees every night it needs elsewhere), is `pending_payment` or
    /// `confirmed`, arrives `today` or later, holds its whole stay here, is of this room's
    /// type, is not pinned, and `busy` does not name it (a change of it is under way).
    /// Out-of-order ranges never move.
    pub fn holdings(
        &self,
        from: Date,
        to: Date,
        today: Date,
        busy: impl Fn(&ReservationId) -> bool,
    ) -> Vec<Held> {
        let mut held: Vec<Held> = self
            .ledger
            .overlapping(from, to)
            .iter()
            .map(|span| {
                let movable = self.ledger.get(&span.id).is_some_and(|r| {
                    matches!(r.status(), Status::PendingPayment | Status::Confirmed)
                        && !r.pinned()
                        && r.stay().arrival() >= today
                        && span.from == r.stay().arrival()
                        && *r.room_type_in(&self.room_type) == self.room_type
                }) && span.from >= from
                    && span.to <= to
                    && !busy(&span.id);
                Held {
                    id: span.id,
                    from: span.from,
                    to: span.to,
                    movable,
                }
            })
            .collect();
        held.extend(
            self.out_of_order_overlapping(from, to)
                .map(|(start, range)| Held {
                    id: ReservationId(uuid::Uuid::nil()),
                    from: *start,
                    to: range.to,
                    movable: false,
                }),
        );
        held
    }

    /// The first part of applying an [`Event::Rearranged`] (or an [`Event::BookingCreated`],
    /// which may move reservations too) in this room: the reservations it moves away from
    /// here go, and are returned for the rooms they go to ([`RoomState::rearranged_in`]).
    pub fn rearranged_out(&mut self, event: &Event) -> (Vec<Reservation>, NightsDelta) {
        let mut delta = NightsDelta::default();
        let mut leaving = Vec::new();
        let (Event::Rearranged { moves, .. }
        | Event::BookingCreated { moves, .. }
        | Event::ModifyRearranged { moves, .. }) = event
        else {
            return (leaving, delta);
        };
        let here = self.key.number.clone();
        for m in moves.iter().filter(|m| m.from == here) {
            let (r, d) = self.move_out(&m.id);
            delta.released.extend(d.released);
            leaving.extend(r);
        }
        (leaving, delta)
    }

    /// The second part: the reservations the event moves here (given by the rooms they
    /// left, in any order; others are ignored) arrive, and the new reservations that are
    /// this room's take their nights. Moved reservations keep their price and their pin
    /// (none: pinned ones never move).
    pub fn rearranged_in(&mut self, arriving: Vec<Reservation>, event: &Event) -> NightsDelta {
        let mut delta = NightsDelta::default();
        let (moves, created): (&[crate::event::Relocation], &[std::sync::Arc<Reservation>]) =
            match event {
                Event::Rearranged {
                    moves, reservation, ..
                } => (moves, std::slice::from_ref(reservation)),
                Event::BookingCreated {
                    moves,
                    reservations,
                    ..
                } => (moves, reservations),
                Event::ModifyRearranged { moves, .. } => (moves, &[]),
                _ => return delta,
            };
        let at = match event {
            Event::ModifyRearranged { modified, .. } => match &**modified {
                Event::ReservationModified { at, .. } => *at,
                _ => return delta,
            },
            _ => match created.first() {
                Some(r) => r.created_at,
                None => return delta,
            },
        };
        for r in arriving {
            let Some(m) = moves
                .iter()
                .find(|m| m.id == r.id && m.to == self.key.number)
            else {
                continue;
            };
            let step = RoomMove {
                at,
                from_room: m.from.clone(),
                to_room: m.to.clone(),
                first_night: m.stay.arrival(),
            };
            delta.booked.extend(self.arrive(r, step).booked);
        }
        for r in created {
            if r.room == self.key.number {
                delta.booked.extend(self.insert_reservation(r).booked);
            }
        }
        delta
    }

    /// Decides modifying reservation `id` as `m` (priced by
    /// [`crate::Catalog::price_modification`] from its version `priced_version`; an
    /// `If-Match` is checked too). In this room when the (unchanged or this room's) type
    /// allows and every new night is free here; otherwise [`ModifyPlan::Elsewhere`], and
    /// another room of the type must take it ([`RoomState::decide_modify_in`]) — except
    /// for a guest in house, who stays: `sold_out` with the nights that are short.
    ///
    /// Refused: a status other than `pending_payment` (hold not lapsed), `confirmed` or
    /// `checked_in`; a version other than the priced one (`version_mismatch`: price again);
    /// a total change while an earlier difference is still being charged or refunded
    /// (`payment_in_progress`).
    pub fn decide_modify(
        &self,
        id: &ReservationId,
        m: &Modification,
        priced_version: u64,
        if_match: Option<u64>,
        now: Timestamp,
    ) -> Result<ModifyPlan, DomainError> {
        let r = self.kept(id)?;
        check_version(r, if_match)?;
        check_version(r, Some(priced_version))?;
        let lapsed = now >= r.hold_expires_at();
        match r.status() {
            Status::PendingPayment if !lapsed => {}
            Status::Confirmed | Status::CheckedIn => {}
            status => {
                return Err(DomainError::InvalidTransition {
                    action: "modify",
                    from: if status == Status::PendingPayment {
                        Status::Expired
                    } else {
                        status
                    },
                })
            }
        }
        // A paid reservation re-priced owes a difference charge or is owed a refund
        // ([`Reservation::apply_modification`]); one difference is settled at a time, so
        // each charge and refund has one amount and one reference.
        if m.total_minor != r.total().amount_minor && r.difference_unsettled() {
            return Err(DomainError::PaymentInProgress);
        }
        if m.changes.is_empty() {
            return Ok(ModifyPlan::Unchanged);
        }
        // A live reservation is of its room's type (a room with live reservations cannot be
        // retyped, and a move takes the new room's type).
        let type_fits = m.room_type == self.room_type;
        // A guest in house keeps the nights already slept: only those from tonight on are
        // asked for (here, the room's first night for this stay).
        let first = m.stay.arrival().max(if r.status() == Status::CheckedIn {
            r.first_night_here()
        } else {
            m.stay.arrival()
        });
        let short: Vec<Date> = self
            .conflicts(first, m.stay.departure())
            .iter()
            .filter(|c| !matches!(c, NightConflict::Reservation { id: other, .. } if other == id))
            .flat_map(|c| match c {
                NightConflict::Reservation {
                    first_night,
                    departure,
                    ..
                } => nights(*first_night, *departure).collect::<Vec<_>>(),
                NightConflict::OutOfOrder { from, to } => nights(*from, *to).collect(),
            })
            .filter(|d| *d >= first && *d < m.stay.departure())
            .collect();
        if type_fits && short.is_empty() {
            return Ok(ModifyPlan::Here(Event::ReservationModified {
                room: self.key.clone(),
                id: *id,
                to: None,
                modification: Box::new(m.clone()),
                at: now,
            }));
        }
        if r.status() == Status::CheckedIn {
            let mut short = short;
            short.sort();
            short.dedup();
            return Err(DomainError::SoldOutOn(short));
        }
        Ok(ModifyPlan::Elsewhere)
    }

    /// Whether this room can take reservation `r` (now in room `from`) as modified by `m`:
    /// of the new type, and every night of the new stay free. The event it returns moves
    /// the reservation here and modifies it, in one.
    pub fn decide_modify_in(
        &self,
        r: &Reservation,
        from: &RoomKey,
        m: &Modification,
        now: Timestamp,
    ) -> Result<Event, DomainError> {
        if self.ledger.contains(&r.id) || r.status == Status::CheckedIn {
            return Err(DomainError::InvalidTransition {
                action: "modify",
                from: r.status,
            });
        }
        if m.room_type != self.room_type || from.hotel_id != self.key.hotel_id {
            return Err(DomainError::SoldOut);
        }
        let conflicts = self.conflicts(m.stay.arrival(), m.stay.departure());
        if !conflicts.is_empty() {
            return Err(DomainError::NightsSold(conflicts));
        }
        Ok(modified_into(r.id, from, &self.key.number, m, now))
    }

    /// The arriving half of a [`Event::ReservationModified`] that changed rooms: takes
    /// `reservation` (from the room it left), modified.
    pub fn modify_in(&mut self, mut reservation: Reservation, event: &Event) -> NightsDelta {
        let Event::ReservationModified {
            modification, at, ..
        } = event
        else {
            return NightsDelta::default();
        };
        reservation.apply_modification(modification, &self.key.number, *at);
        let (first, departure) = (reservation.first_night_here(), reservation.stay.departure());
        let kept = Kept::new(&reservation, &self.room_type);
        NightsDelta {
            booked: self.ledger.insert(kept, first, departure),
            released: Vec::new(),
        }
    }

    /// A [`Event::ReservationModified`] that stays in this room: the reservation takes its
    /// new form and nights; the delta is what changed.
    fn modify_here(&mut self, id: &ReservationId, m: &Modification, at: Timestamp) -> NightsDelta {
        let Some((kept, released)) = self.ledger.remove(id) else {
            return NightsDelta::default();
        };
        let mut r = kept.to_reservation(&self.key, &self.room_type);
        r.apply_modification(m, &self.key.number, at);
        let (first, departure) = (r.first_night_here(), r.stay.departure());
        let booked = self
            .ledger
            .insert(Kept::new(&r, &self.room_type), first, departure);
        NightsDelta {
            booked: booked
                .iter()
                .filter(|d| !released.contains(d))
                .copied()
                .collect(),
            released: released
                .iter()
                .filter(|d| !booked.contains(d))
                .copied()
                .collect(),
        }
    }

    /// Confirmed reservations whose guest has not come by the night audit of
    /// `audit_date` (arrival before it), in id order. One still owed a difference back is
    /// left for a later audit run, once that refund is confirmed (each refund has one
    /// amount under one reference).
    pub fn due_no_shows(&self, audit_date: Date) -> Vec<ReservationId> {
        self.ledger
            .iter()
            .filter(|r| {
                r.status() == Status::Confirmed
                    && r.stay().arrival() < audit_date
                    && !r.owes_difference()
            })
            .map(Kept::id)
            .collect()
    }

    /// Decides the night audit marking `id` a no-show: only a confirmed reservation whose
    /// arrival is before `audit_date` (see [`crate::HotelTz::audit_date`]).
    pub fn decide_no_show(
        &self,
        id: &ReservationId,
        audit_date: Date,
        now: Timestamp,
    ) -> Result<Event, DomainError> {
        self.decide_change(id, Action::NoShow, None, now, audit_date)
    }

    /// Every night this room cannot sell: sold nights and out-of-order nights, in order
    /// of kind (what an availability index needs to enter the room).
    pub fn unavailable_nights(&self) -> Vec<Date> {
        let mut out: Vec<Date> = self
            .ledger
            .spans()
            .iter()
            .flat_map(|s| nights(s.from, s.to))
            .collect();
        for (from, range) in &self.out_of_order {
            out.extend(nights(*from, range.to));
        }
        out
    }

    /// Night → the reservation holding it, as a map (derived from the ledger's spans; for
    /// tests and tools).
    pub fn calendar(&self) -> BTreeMap<Date, ReservationId> {
        self.ledger
            .spans()
            .iter()
            .flat_map(|s| nights(s.from, s.to).map(move |d| (d, s.id)))
            .collect()
    }

    /// Vacant or occupied.
    pub fn occupancy(&self) -> Occupancy {
        if self.occupant.is_some() {
            Occupancy::Occupied
        } else {
            Occupancy::Vacant
        }
    }

    /// Whether reservation `id`, of `room_type`, can take every night of `stay` in this
    /// room. Decided before the reservation is built, so a refused booking goes on to the
    /// next room whole.
    pub fn decide_stay(
        &self,
        id: &ReservationId,
        room_type: &RoomTypeCode,
        stay: &crate::time::Stay,
    ) -> Result<(), DomainError> {
        if *room_type != self.room_type {
            return Err(DomainError::SoldOut);
        }
        if let Some(existing) = self.ledger.get(id) {
            return Err(DomainError::InvalidTransition {
                action: "create",
                from: existing.status(),
            });
        }
        let taken = !self
            .ledger
            .overlapping(stay.arrival(), stay.departure())
            .is_empty();
        let out_of_order = self
            .out_of_order_overlapping(stay.arrival(), stay.departure())
            .next()
            .is_some();
        if taken || out_of_order {
            return Err(DomainError::SoldOut);
        }
        Ok(())
    }

    /// The reservation as the room keeps it, if it holds it.
    pub fn kept(&self, id: &ReservationId) -> Result<&Kept, DomainError> {
        self.ledger
            .get(id)
            .ok_or(DomainError::NotFound("reservation"))
    }

    /// The reservation as the API shows it (rebuilt from the compact form), if this room
    /// holds it.
    pub fn reservation(&self, id: &ReservationId) -> Result<Reservation, DomainError> {
        self.kept(id)
            .map(|k| k.to_reservation(&self.key, &self.room_type))
    }

    /// Decides a state-machine action on one of this room's reservations. `today` is the
    /// hotel-local date at `now`; for [`Action::NoShow`] it is the night audit's date, and
    /// only a stay that arrived before it can be a no-show.
    pub fn decide_change(
        &self,
        id: &ReservationId,
        action: Action,
        expected_version: Option<u64>,
        now: Timestamp,
        today: Date,
    ) -> Result<Event, DomainError> {
        let r = self.kept(id)?;
        check_version(r, expected_version)?;
        let (status, stay) = (r.status(), r.stay());
        let Some(_) = action.next_status(status) else {
            return Err(DomainError::InvalidTransition {
                action: action.name(),
                from: status,
            });
        };
        let release_from = match &action {
            Action::Pay { .. } => None,
            Action::Cancel | Action::Expire => Some(stay.arrival()),
            Action::NoShow => {
                if today <= stay.arrival() {
                    return Err(DomainError::InvalidTransition {
                        action: "no_show",
                        from: status,
                    });
                }
                Some(stay.arrival())
            }
            Action::CheckIn => {
                if !stay.contains(today) {
                    return Err(DomainError::NotWithinStay);
                }
                if self.occupant.is_some() {
                    return Err(DomainError::RoomNotReady {
                        room: self.key.number.clone(),
                        housekeeping: "occupied",
                    });
                }
                if !self.housekeeping.ready_for_guest() {
                    return Err(DomainError::RoomNotReady {
                        room: self.key.number.clone(),
                        housekeeping: self.housekeeping.as_str(),
                    });
                }
                None
            }
            // Leaving early gives back the nights not yet slept (tonight included).
            Action::CheckOut => (today < stay.departure()).then(|| today.max(stay.arrival())),
        };
        // The hold's instant decides, not whether the expiry timer has run yet: a lapsed
        // hold can be expired but not paid (a late payment is refunded instead).
        let lapsed = now >= r.hold_expires_at();
        match action {
            Action::Expire if !lapsed => {
                return Err(DomainError::InvalidTransition {
                    action: "expire",
                    from: status,
                })
            }
            Action::Pay { .. } if lapsed => {
                return Err(DomainError::InvalidTransition {
                    action: "pay",
                    from: Status::Expired,
                })
            }
            _ => {}
        }
        // A difference owed back goes out (and is confirmed) before the rest: each refund
        // has one amount under one reference.
        if matches!(action, Action::Cancel | Action::NoShow) && r.owes_difference() {
            return Err(DomainError::PaymentInProgress);
        }
        // A paid reservation cancelled or marked a no-show keeps the fee its terms set and
        // is owed the rest of what was paid back.
        let paid = r.payment_status() == PaymentStatus::Succeeded && !r.refund_owed();
        let settlement = match action {
            Action::Cancel | Action::NoShow if paid => {
                let held = r.held_minor();
                let fee = match (&action, r.terms()) {
                    (_, None) => 0,
                    (Action::Cancel, Some(t)) => t.cancellation_fee_at(now),
                    (_, Some(t)) => t.no_show_fee_minor,
                }
                .clamp(0, held.max(0));
                Some(Settlement {
                    fee_minor: fee,
                    refund_minor: held - fee,
                })
            }
            _ => None,
        };
        Ok(Event::ReservationChanged {
            room: self.key.clone(),
            id: *id,
            change: Change {
                action,
                at: now,
                release_from,
                settlement,
            },
        })
    }

    /// Decides what a provider's report about a reservation's payment changes (a callback
    /// or a reconciliation answer). `Ok((None, Duplicate))` when it changes nothing.
    ///
    /// - A success for a `pending_payment` reservation whose hold has not lapsed confirms
    ///   it (an [`Action::Pay`] change), even after an earlier failure report.
    /// - A success the reservation cannot take (expired, cancelled, or a lapsed hold) is
    ///   recorded with a refund owed; the reservation stays as it is and gets no nights back.
    /// - A success or failure for a payment already settled (succeeded, owed, refunded) is
    ///   a duplicate or arrived out of order: nothing changes.
    /// - A failure for a pending payment is recorded; the hold runs on until it expires.
    /// - A success of the difference charge due now ([`PaymentReport::BalanceSucceeded`]
    ///   of the latest `seq`, while the stay keeps its money) pays it; any other is a
    ///   duplicate (already paid, superseded, or no longer asked for).
    pub fn decide_payment(
        &self,
        id: &ReservationId,
        report: &PaymentReport,
        now: Timestamp,
    ) -> Result<(Option<Event>, PaymentOutcome), DomainError> {
        let r = self.kept(id)?;
        let payment_change = |change| Event::PaymentChanged {
            room: self.key.clone(),
            id: *id,
            change,
            at: now,
        };
        if let PaymentReport::BalanceSucceeded { seq, trade_no } = report {
            // Only the difference charge due now is taken; its repeats, and one superseded
            // or dropped (the reservation was cancelled first), change nothing.
            let due = r
                .adjustment()
                .is_some_and(|a| a.seq == *seq && a.balance_due_minor > 0);
            if !due || !crate::reservation::status_keeps_money(r.status()) {
                return Ok((None, PaymentOutcome::Duplicate));
            }
            let event = payment_change(PaymentChange::BalancePaid {
                seq: *seq,
                trade_no: trade_no.clone(),
            });
            return Ok((Some(event), PaymentOutcome::BalancePaid));
        }
        let open = matches!(
            r.payment_status(),
            PaymentStatus::Pending | PaymentStatus::Failed
        );
        if !open {
            return Ok((None, PaymentOutcome::Duplicate));
        }
        match report {
            PaymentReport::BalanceSucceeded { .. } => Ok((None, PaymentOutcome::Duplicate)),
            PaymentReport::Failed { trade_no } => {
                if r.payment_status() == PaymentStatus::Failed
                    && r.trade_no() == Some(trade_no.as_str())
                {
                    return Ok((None, PaymentOutcome::Duplicate));
                }
                let event = payment_change(PaymentChange::Failed {
                    trade_no: trade_no.clone(),
                });
                Ok((Some(event), PaymentOutcome::FailedRecorded))
            }
            PaymentReport::Succeeded { trade_no } => {
                let can_take = r.status() == Status::PendingPayment && now < r.hold_expires_at();
                if can_take {
                    let event = Event::ReservationChanged {
                        room: self.key.clone(),
                        id: *id,
                        change: Change {
                            action: Action::Pay {
                                trade_no: trade_no.clone(),
                            },
                            at: now,
                            release_from: None,
                            settlement: None,
                        },
                    };
                    return Ok((Some(event), PaymentOutcome::Confirmed));
                }
                let event = payment_change(PaymentChange::RefundOwed {
                    trade_no: trade_no.clone(),
                });
                Ok((Some(event), PaymentOutcome::RefundOwed))
            }
        }
    }

    /// Decides recording that the provider refunded a reservation's payment; `Ok(None)`
    /// when no refund is owed (already recorded).
    pub fn decide_refunded(
        &self,
        id: &ReservationId,
        now: Timestamp,
    ) -> Result<Option<Event>, DomainError> {
        if !self.kept(id)?.refund_owed() {
            return Ok(None);
        }
        let amount_minor = self.kept(id)?.refund_minor();
        Ok(Some(Event::PaymentChanged {
            room: self.key.clone(),
            id: *id,
            change: PaymentChange::Refunded { amount_minor },
            at: now,
        }))
    }

    /// Decides a housekeeping change; `Ok(None)` when it is already in that status.
    pub fn decide_housekeeping(
        &self,
        to: Housekeeping,
        now: Timestamp,
    ) -> Result<Option<Event>, DomainError> {
        if self.housekeeping == to {
            return Ok(None);
        }
        if !self.housekeeping.can_move_to(to) {
            return Err(DomainError::Invalid(ValidationError::new(
                "status",
                format!(
                    "housekeeping cannot go from {} to {}",
                    self.housekeeping, to
                ),
            )));
        }
        Ok(Some(Event::HousekeepingSet {
            room: self.key.clone(),
            status: to,
            at: now,
        }))
    }

    /// Whether the room may change to `room_type`: only while no reservation holds nights.
    pub fn decide_retype(&self, room_type: &RoomTypeCode) -> Result<(), DomainError> {
        if *room_type == self.room_type {
            return Ok(());
        }
        // In id order, so the error is the same on every run and replica.
        let live: Vec<ReservationId> = self
            .ledger
            .iter()
            .filter(|r| r.status().holds_nights())
            .map(Kept::id)
            .collect();
        if live.is_empty() {
            Ok(())
        } else {
            Err(DomainError::RoomInUse(live))
        }
    }

    /// Undoes [`RoomState::apply`] of a `ReservationCreated` whose journal write failed:
    /// the reservation never happened, so its nights go back. The room actor applies a
    /// creation before it is durable (so no other booking can take the nights meanwhile)
    /// and calls this when the journal refuses it.
    pub fn revert_created(&mut self, id: &ReservationId) -> NightsDelta {
        NightsDelta {
            booked: Vec::new(),
            released: self
                .ledger
                .remove(id)
                .map(|(_, released)| released)
                .unwrap_or_default(),
        }
    }

    fn insert_reservation(&mut self, reservation: &Reservation) -> NightsDelta {
        let kept = Kept::new(reservation, &self.room_type);
        let stay = reservation.stay;
        NightsDelta {
            booked: self
                .ledger
                .insert(kept, reservation.first_night_here(), stay.departure()),
            released: Vec::new(),
        }
    }

    /// Keeps a replayed creation's record, holding `[first_night, departure)`: what
    /// [`RoomState::apply`] of its event does (see [`crate::replay`]).
    pub(crate) fn keep_replayed(&mut self, kept: Kept, first_night: Date, departure: Date) {
        self.ledger
            .keep(kept, first_night, departure, crate::ledger::Growth::Double);
    }

    /// Applies an event decided for this room. Returns the nights it booked or released.
    pub fn apply(&mut self, event: &Event) -> NightsDelta {
        let mut delta = NightsDelta::default();
        match event {
            Event::ReservationCreated { reservation, .. } => {
                return self.insert_reservation(reservation);
            }
            Event::ReservationChanged { id, change, .. } => {
                let Some(r) = self.ledger.get_mut(id) else {
                    return delta;
                };
                let Some(to) = change.action.next_status(r.status()) else {
                    return delta;
                };
                let from = r.status();
                r.set_status(to);
                r.push_history(change.at, from, to);
                match &change.action {
                    Action::Pay { trade_no } => {
                        r.set_payment(PaymentStatus::Succeeded, Some(trade_no), r.refund_owed());
                        r.push_payment_history(change.at, PaymentEventKind::Succeeded);
                        // A hold re-priced after its charge was made is paid by that charge:
                        // what the total differs from it is charged or refunded now.
                        if let Some(mut a) = r.adjustment() {
                            a.held_minor = a.first_charge_minor;
                            let settled = a.settle(r.total().amount_minor);
                            r.set_adjustment(a);
                            match settled {
                                Settle::Nothing => {}
                                Settle::Charge => {
                                    r.push_payment_history(change.at, PaymentEventKind::BalanceDue)
                                }
                                Settle::Refund { refund_minor } => {
                                    r.set_payment(PaymentStatus::Succeeded, None, true);
                                    r.set_money(0, refund_minor);
                                    r.push_payment_history(
                                        change.at,
                                        PaymentEventKind::DifferenceRefundOwed,
                                    );
                                }
                            }
                        }
                    }
                    // A paid reservation cancelled, or a no-show, keeps its fee and is owed
                    // the rest back: the payment supervisor issues the refund.
                    Action::Cancel | Action::NoShow
                        if r.payment_status() == PaymentStatus::Succeeded && !r.refund_owed() =>
                    {
                        let settlement = match (change.settlement, &change.action) {
                            (Some(s), _) => Some(s),
                            // Journaled before fees existed: a cancellation gave everything
                            // back, a no-show kept everything (and recorded nothing).
                            (None, Action::Cancel) => Some(Settlement {
                                fee_minor: 0,
                                refund_minor: r.total().amount_minor,
                            }),
                            (None, _) => None,
                        };
                        if let Some(mut a) = r.adjustment() {
                            // A difference charge not paid by now is no longer asked for;
                            // the refund gets a reference of its own.
                            a.balance_due_minor = 0;
                            if settlement.is_some_and(|s| s.refund_minor > 0) {
                                a.seq += 1;
                            }
                            r.set_adjustment(a);
                        }
                        if let Some(Settlement {
                            fee_minor,
                            refund_minor,
                        }) = settlement
                        {
                            r.set_money(fee_minor, refund_minor);
                            let kind = match change.action {
                                _ if refund_minor == 0 => PaymentEventKind::FeeKept,
                                Action::Cancel => PaymentEventKind::CancelledAfterPayment,
                                _ => PaymentEventKind::NoShowAfterPayment,
                            };
                            r.set_payment(PaymentStatus::Succeeded, None, refund_minor > 0);
                            r.push_payment_history(change.at, kind);
                        }
                    }
                    Action::CheckIn => self.occupant = Some(*id),
                    Action::CheckOut => {
                        if self.occupant == Some(*id) {
                            self.occupant = None;
                        }
                        self.housekeeping = Housekeeping::Dirty;
                    }
                    Action::Cancel | Action::Expire | Action::NoShow => {}
                }
                if let Some(from_date) = change.release_from {
                    delta.released = self.ledger.release(id, from_date);
                }
            }
            Event::PaymentChanged { id, change, at, .. } => {
                let Some(r) = self.ledger.get_mut(id) else {
                    return delta;
                };
                r.bump_version();
                let kind = match change {
                    PaymentChange::Failed { trade_no } => {
                        r.set_payment(PaymentStatus::Failed, Some(trade_no), r.refund_owed());
                        PaymentEventKind::Failed
                    }
                    PaymentChange::RefundOwed { trade_no } => {
                        // Money the reservation cannot take goes back whole: what the first
                        // charge captured.
                        let captured = r
                            .adjustment()
                            .map_or(r.total().amount_minor, |a| a.first_charge_minor);
                        r.set_money(0, captured);
                        r.set_payment(PaymentStatus::Succeeded, Some(trade_no), true);
                        PaymentEventKind::RefundOwed
                    }
                    // A difference given back: the stay goes on, paid.
                    PaymentChange::Refunded { .. } if r.owes_difference() => {
                        r.set_payment(PaymentStatus::Succeeded, None, false);
                        PaymentEventKind::DifferenceRefunded
                    }
                    PaymentChange::Refunded { .. } => {
                        r.set_payment(PaymentStatus::Refunded, None, false);
                        PaymentEventKind::Refunded
                    }
                    PaymentChange::BalancePaid { trade_no, .. } => {
                        if let Some(mut a) = r.adjustment() {
                            a.held_minor += a.balance_due_minor;
                            a.balance_due_minor = 0;
                            r.set_adjustment(a);
                        }
                        // The entry names the difference charge's own reference.
                        r.push_payment_history_of(*at, PaymentEventKind::BalancePaid, trade_no);
                        return delta;
                    }
                };
                r.push_payment_history(*at, kind);
            }
            Event::HousekeepingSet { status, .. } => self.housekeeping = *status,
            Event::OutOfOrderSet {
                from,
                to,
                reason,
                today,
                ..
            } => {
                // Ranges that ended before today are history: drop them (all their nights
                // are past) so the list stays bounded.
                let ended: Vec<Date> = self
                    .out_of_order
                    .iter()
                    .filter(|(_, r)| r.to <= *today)
                    .map(|(f, _)| *f)
                    .collect();
                for f in ended {
                    if let Some(r) = self.out_of_order.remove(&f) {
                        delta.released.extend(nights(f, r.to));
                    }
                }
                self.out_of_order.insert(
                    *from,
                    OutOfOrder {
                        to: *to,
                        reason: reason.clone(),
                    },
                );
                delta.booked.extend(nights(*from, *to));
            }
            Event::OutOfOrderCleared { from, .. } => {
                if let Some(r) = self.out_of_order.remove(from) {
                    delta.released.extend(nights(*from, r.to));
                }
            }
            Event::ReservationMoved { from, id, .. } => {
                // Only the room it leaves can apply this alone; the room it goes to takes
                // the reservation with [`RoomState::move_in`].
                if *from == self.key {
                    return self.move_out(id).1;
                }
            }
            Event::ReservationModified {
                room,
                id,
                to,
                modification,
                at,
            } => {
                // In this room: the whole change. To another room: this room lets it go,
                // and the other takes it with [`RoomState::modify_in`].
                if *room == self.key {
                    return match to {
                        None => self.modify_here(id, modification, *at),
                        Some(_) => self.move_out(id).1,
                    };
                }
            }
            Event::Rearranged { .. } => {
                // Only the moves away from here can be applied alone; the rooms the moved
                // reservations go to take them with [`RoomState::rearranged_in`], which
                // also books the new one.
                return self.rearranged_out(event).1;
            }
            Event::BookingCreated { .. } => {
                // As for a rearrangement: only the moves away from here can be applied
                // alone; [`RoomState::rearranged_in`] takes the arrivals and books this
                // room's reservations of the booking.
                return self.rearranged_out(event).1;
            }
            Event::ModifyRearranged { modified, .. } => {
                // The moves away from here, then the modification's part for the room it
                // leaves (or the whole modification, when it stays); the rooms things go
                // to take them with [`RoomState::rearranged_in`] and
                // [`RoomState::modify_in`].
                let mut delta = self.rearranged_out(event).1;
                delta.merge(self.apply(modified));
                return delta;
            }
            Event::BookingChanged { parts, .. } => {
                for part in parts {
                    if part.room() == Some(&self.key) {
                        delta.merge(self.apply(part));
                    }
                }
            }
            Event::RoomPut { room_type, .. } => {
                // Its reservations keep the type they were booked as.
                if *room_type != self.room_type {
                    self.ledger.pin_room_types(&self.room_type);
                    self.room_type = room_type.clone();
                }
            }
            Event::HotelPut { .. }
            | Event::RoomTypePut { .. }
            | Event::RatePut { .. }
            | Event::RatePlanPut { .. }
            | Event::RestrictionsSet { .. } => {}
        }
        delta
    }
}

/// The event of modifying reservation `id` (now in room `from`) as `m` into room `to`: in
/// its room when `to` is `from`'s number, else moved there (the room change listed with
/// the others, in their documented order). The caller checked that `to` can take it.
pub fn modified_into(
    id: ReservationId,
    from: &RoomKey,
    to: &crate::ids::RoomNumber,
    m: &Modification,
    now: Timestamp,
) -> Event {
    let mut m = m.clone();
    let moved = *to != from.number;
    if moved {
        m.changes.push(FieldChange::Room {
            from: from.number.clone(),
            to: to.clone(),
        });
        // Keep the documented order: the room before guests, plan and total.
        m.changes.sort_by_key(change_order);
    }
    Event::ReservationModified {
        room: from.clone(),
        id,
        to: moved.then(|| to.clone()),
        modification: Box::new(m),
        at: now,
    }
}

/// What [`RoomState::decide_modify`] decided.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ModifyPlan {
    /// Nothing would change: the reservation stays as it is (a retried request).
    Unchanged,
    /// The room keeps it: journal this event.
    Here(Event),
    /// Another room must take it.
    Elsewhere,
}

/// Where a change sits in a modification's list (the order [`crate::FieldChange`] states).
fn change_order(c: &FieldChange) -> u8 {
    match c {
        FieldChange::Arrival { .. } => 0,
        FieldChange::Departure { .. } => 1,
        FieldChange::RoomType { .. } => 2,
        FieldChange::Room { .. } => 3,
        FieldChange::Guests { .. } => 4,
        FieldChange::Guest => 5,
        FieldChange::RatePlan { .. } => 6,
        FieldChange::Total { .. } => 7,
    }
}

/// Checks `If-Match` against a kept reservation.
fn check_version(r: &Kept, expected: Option<u64>) -> Result<(), DomainError> {
    match expected {
        Some(v) if v != r.version() => Err(DomainError::VersionMismatch {
            expected: v,
            current: r.version(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn housekeeping_workflow() {
        use Housekeeping::*;
        assert!(Dirty.can_move_to(Cleaning));
        assert!(Cleaning.can_move_to(Clean));
        assert!(Clean.can_move_to(Inspected));
        assert!(Inspected.can_move_to(Dirty));
        assert!(Clean.can_move_to(OutOfOrder));
        assert!(OutOfOrder.can_move_to(Dirty));
        assert!(!Dirty.can_move_to(Inspected));
        assert!(!Dirty.can_move_to(Clean));
        assert!(!OutOfOrder.can_move_to(Clean));
    }

    /// The limits on an out-of-order range, each at its edge: length, reason length,
    /// control characters in the reason.
    #[test]
    fn out_of_order_limits() {
        let key = RoomKey {
            hotel_id: crate::ids::HotelId::parse("H1").unwrap(),
            number: crate::ids::RoomNumber::parse("101").unwrap(),
        };
        let room = RoomState::new(key, RoomTypeCode::parse("KING").unwrap());
        let today = jiff::civil::date(2030, 1, 1);
        let now = Timestamp::from_second(1_900_000_000).unwrap();
        let to = |nights: i64| today.checked_add(jiff::ToSpan::days(nights)).unwrap();
        let decide = |nights: i64, reason: &str| {
            room.decide_out_of_order(today, to(nights), reason, today, now)
        };
        assert!(matches!(
            decide(MAX_OUT_OF_ORDER_NIGHTS, "repairs"),
            Ok(Some(_))
        ));
        let too_long = decide(MAX_OUT_OF_ORDER_NIGHTS + 1, "repairs").unwrap_err();
        assert!(
            matches!(&too_long, DomainError::Invalid(v) if v.field == "to"),
            "{too_long:?}"
        );
        let longest = "r".repeat(MAX_OUT_OF_ORDER_REASON_CHARS);
        assert!(matches!(decide(1, &longest), Ok(Some(_))));
        let reason_err = |r: &str| match decide(1, r) {
            Err(DomainError::Invalid(v)) => v.field == "reason",
            _ => false,
        };
        assert!(reason_err(&format!("{longest}r")), "one character too many");
        assert!(reason_err("broken\u{7}bell"), "a control character");
        assert!(!reason_err("  padded  "), "surrounding spaces are trimmed");
    }

    /// At most `MAX_OUT_OF_ORDER_RANGES` ranges that have not ended; an ended one (its last
    /// night before today) does not count.
    #[test]
    fn out_of_order_ranges_per_room_are_capped_by_the_open_ones() {
        let key = RoomKey {
            hotel_id: crate::ids::HotelId::parse("H1").unwrap(),
            number: crate::ids::RoomNumber::parse("101").unwrap(),
        };
        let mut room = RoomState::new(key, RoomTypeCode::parse("KING").unwrap());
        let day0 = jiff::civil::date(2030, 1, 1);
        let day = |n: usize| day0.checked_add(jiff::ToSpan::days(n as i64)).unwrap();
        let now = Timestamp::from_second(1_900_000_000).unwrap();
        // One-night ranges on nights 0, 2, 4, …: the first ends before day 1.
        for i in 0..MAX_OUT_OF_ORDER_RANGES {
            let e = room
                .decide_out_of_order(day(2 * i), day(2 * i + 1), "repairs", day0, now)
                .unwrap()
                .unwrap();
            room.apply(&e);
        }
        let n = 2 * MAX_OUT_OF_ORDER_RANGES;
        let refused = room.decide_out_of_order(day(n), day(n + 1), "repairs", day0, now);
        assert!(
            matches!(refused, Err(DomainError::LimitReached(_))),
            "{refused:?}"
        );
        // A day later the first range has ended: room for one more.
        let allowed = room.decide_out_of_order(day(n), day(n + 1), "repairs", day(1), now);
        assert!(matches!(allowed, Ok(Some(_))), "{allowed:?}");
    }
}

#[cfg(test)]
mod payment_tests {
    use super::*;
    use crate::ids::{HotelId, RoomNumber};
    use crate::money::{Currency, Money};
    use crate::reservation::{BookRequest, Guest};
    use crate::time::Stay;
    use jiff::SignedDuration;

    const T0: i64 = 1_900_000_000;

    fn room_with_hold() -> (RoomState, ReservationId) {
        let key = RoomKey {
            hotel_id: HotelId::parse("H1").unwrap(),
            number: RoomNumber::parse("101").unwrap(),
        };
        let rt = RoomTypeCode::parse("KING").unwrap();
        let mut room = RoomState::new(key.clone(), rt.clone());
        let req = BookRequest {
            hotel_id: key.hotel_id.clone(),
            room_type: rt,
            stay: Stay::between(jiff::civil::date(2030, 1, 1), jiff::civil::date(2030, 1, 3))
                .unwrap(),
            guests: 1,
            guest: Guest::parse("Li Lei", "+86 138-0000-0000", "li@example.com").unwrap(),
            room: None,
            rate_plan: crate::ids::RatePlanCode::bar(),
        };
        let id = ReservationId(uuid::Uuid::from_u128(7));
        let total = Money {
            amount_minor: 1000,
            currency: Currency::parse("CNY").unwrap(),
        };
        let r = crate::state::new_reservation(
            &req,
            key.number.clone(),
            total,
            id,
            Timestamp::from_second(T0).unwrap(),
            SignedDuration::from_secs(60),
        );
        room.apply(&Event::ReservationCreated {
            reservation: r.into(),
            idempotency: None,
        });
        (room, id)
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(T0 + s).unwrap()
    }

    fn report(
        room: &mut RoomState,
        id: &ReservationId,
        rep: PaymentReport,
        s: i64,
    ) -> PaymentOutcome {
        let (event, outcome) = room.decide_payment(id, &rep, at(s)).unwrap();
        if let Some(e) = event {
            room.apply(&e);
        }
        outcome
    }

    fn ok(t: &str) -> PaymentReport {
        PaymentReport::Succeeded { trade_no: t.into() }
    }

    /// A room's unsellable nights are its sold nights and every out-of-order night.
    #[test]
    fn unavailable_nights_are_sold_and_out_of_order_nights() {
        let (mut room, _) = room_with_hold();
        let d = |day| jiff::civil::date(2030, 1, day);
        let event = room
            .decide_out_of_order(d(5), d(7), "paint", d(1), at(0))
            .unwrap()
            .unwrap();
        room.apply(&event);
        let mut nights = room.unavailable_nights();
        nights.sort();
        assert_eq!(nights, vec![d(1), d(2), d(5), d(6)]);
    }

    /// A room keeps a reservation in 128 bytes with no allocation of its own until it
    /// changes, and gives back exactly what it was given: a fresh one, and one with every
    /// optional part set (history, payment history, reference, moves, another type, a
    /// creator, instants before the epoch).
    #[test]
    fn a_kept_reservation_is_compact_and_gives_back_exactly_what_it_was_given() {
        assert!(
            std::mem::size_of::<Kept>() <= 128,
            "{}",
            std::mem::size_of::<Kept>()
        );
        let (room, id) = room_with_hold();
        let fresh = room.reservation(&id).unwrap();
        let kept = Kept::new(&fresh, &room.room_type);
        assert_eq!(kept, *room.kept(&id).unwrap());
        assert_eq!(kept.to_reservation(&room.key, &room.room_type), fresh);
        assert_eq!(kept.trade_no(), None);
        assert_eq!(
            kept.last_reached(Status::PendingPayment),
            Some(fresh.created_at)
        );
        assert_eq!(kept.last_reached(Status::Confirmed), None);
        let bytes = bincode::serde::encode_to_vec(&kept, bincode::config::standard()).unwrap();
        assert!(bytes.len() < 120, "{} bytes", bytes.len());

        let mut odd = fresh.clone();
        odd.created_at = Timestamp::new(-1_000, -250).unwrap();
        odd.hold_expires_at = Timestamp::new(-900, -1).unwrap();
        odd.room_type = RoomTypeCode::parse("TWIN").unwrap();
        odd.created_by = Some("key-7".into());
        odd.status = Status::CheckedIn;
        odd.version = 9;
        odd.history.push(HistoryEntry {
            at: at(5),
            from: Some(Status::PendingPayment),
            to: Status::Confirmed,
            version: 2,
        });
        odd.payment.status = PaymentStatus::Succeeded;
        odd.payment.trade_no = Some("T-9".into());
        odd.payment.refund_owed = true;
        odd.payment.history.clear();
        odd.moves.push(RoomMove {
            at: at(6),
            from_room: RoomNumber::parse("100").unwrap(),
            to_room: room.key.number.clone(),
            first_night: jiff::civil::date(2030, 1, 2),
        });
        let kept = Kept::new(&odd, &room.room_type);
        assert_eq!(kept.to_reservation(&room.key, &room.room_type), odd);
        assert_eq!(kept.first_night_here(), jiff::civil::date(2030, 1, 2));
        assert_eq!(kept.trade_no(), Some("T-9"));
        assert_eq!(kept.last_reached(Status::Confirmed), Some(at(5)));
        let bytes = bincode::serde::encode_to_vec(&kept, bincode::config::standard()).unwrap();
        let (back, _): (Kept, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        assert_eq!(back, kept);
    }

    /// A room given another type keeps its reservations' booked type (retyping is allowed
    /// once none of them holds nights).
    #[test]
    fn a_retyped_room_keeps_the_booked_type_of_its_reservations() {
        let (mut room, id) = room_with_hold();
        let cancel = room
            .decide_change(
                &id,
                Action::Cancel,
                None,
                at(1),
                jiff::civil::date(2029, 12, 1),
            )
            .unwrap();
        room.apply(&cancel);
        let twin = RoomTypeCode::parse("TWIN").unwrap();
        assert!(room.decide_retype(&twin).is_ok());
        room.apply(&Event::RoomPut {
            hotel_id: room.key.hotel_id.clone(),
            number: room.key.number.clone(),
            room_type: twin.clone(),
        });
        assert_eq!(room.room_type, twin);
        assert_eq!(room.reservation(&id).unwrap().room_type.as_str(), "KING");
        // Back to the booked type: it still says KING.
        room.apply(&Event::RoomPut {
            hotel_id: room.key.hotel_id.clone(),
            number: room.key.number.clone(),
            room_type: RoomTypeCode::parse("KING").unwrap(),
        });
        assert_eq!(room.reservation(&id).unwrap().room_type.as_str(), "KING");
    }

    /// A reservation moved back and forth keeps at most `MAX_HISTORY` history entries and
    /// the last `MAX_MOVES` moves; its version counts every move.
    #[test]
    fn history_and_moves_stay_bounded_over_many_moves() {
        let (mut a, id) = room_with_hold();
        assert_eq!(report(&mut a, &id, ok("T1"), 1), PaymentOutcome::Confirmed);
        let mut b = RoomState::new(
            RoomKey {
                hotel_id: a.key.hotel_id.clone(),
                number: RoomNumber::parse("102").unwrap(),
            },
            a.room_type.clone(),
        );
        let today = jiff::civil::date(2029, 12, 31);
        let moves = 40;
        for i in 0..moves {
            let (from, to) = if i % 2 == 0 {
                (&mut a, &mut b)
            } else {
                (&mut b, &mut a)
            };
            let first_night = from.decide_move_out(&id, &to.key, None, today).unwrap();
            to.decide_move_in(&from.reservation(&id).unwrap(), first_night)
                .unwrap();
            let event = Event::ReservationMoved {
                id,
                from: from.key.clone(),
                to: to.key.clone(),
                room_type: to.room_type.clone(),
                first_night,
                at: at(10 + i),
                pins: true,
            };
            // As the actors do it: the room it goes to takes the reservation the room it
            // leaves handed out, then the room it leaves applies the event (to it alone a
            // move is a departure; to the other room, nothing).
            let r = from.reservation(&id).unwrap().clone();
            assert_eq!(to.apply(&event), NightsDelta::default());
            to.move_in(r, &event);
            let gone = from.apply(&event);
            assert_eq!(gone.released.len(), 2);
            assert!(from.reservation(&id).is_err());
        }
        let r = a.reservation(&id).unwrap();
        assert_eq!(r.version, 2 + moves as u64);
        assert_eq!(r.history.len(), crate::reservation::MAX_HISTORY);
        assert_eq!(r.moves.len(), crate::reservation::MAX_MOVES);
        assert_eq!(
            r.moves.last().unwrap().at,
            at(10 + moves - 1),
            "the newest are kept"
        );
        assert!(b.ledger.is_empty() && b.ledger.spans().is_empty());
        assert_eq!(a.unavailable_nights().len(), 2);
        // A state change at the cap adds no entry either.
        let check_in = a
            .decide_change(
                &id,
                Action::CheckIn,
                None,
                at(100),
                jiff::civil::date(2030, 1, 1),
            )
            .unwrap();
        a.apply(&check_in);
        let r = a.reservation(&id).unwrap();
        assert_eq!(r.status, Status::CheckedIn);
        assert_eq!(r.history.len(), crate::reservation::MAX_HISTORY);
    }

    /// A failure report is a duplicate only for the same failed attempt; a success exactly
    /// at the hold's expiry instant is too late.
    #[test]
    fn failures_and_the_expiry_instant() {
        let fail = |t: &str| PaymentReport::Failed { trade_no: t.into() };
        let (mut room, id) = room_with_hold();
        assert_eq!(
            report(&mut room, &id, fail("F1"), 1),
            PaymentOutcome::FailedRecorded
        );
        assert_eq!(
            report(&mut room, &id, fail("F1"), 2),
            PaymentOutcome::Duplicate
        );
        assert_eq!(
            report(&mut room, &id, fail("F2"), 3),
            PaymentOutcome::FailedRecorded
        );
        let r = room.reservation(&id).unwrap();
        assert_eq!(r.payment.trade_no.as_deref(), Some("F2"));
        assert_eq!(r.version, 3);
        // The hold lasts 60 s: at exactly 60 s it has lapsed.
        assert_eq!(
            report(&mut room, &id, ok("T1"), 60),
            PaymentOutcome::RefundOwed
        );
        assert_eq!(
            room.reservation(&id).unwrap().status,
            Status::PendingPayment
        );
        let (mut room, id) = room_with_hold();
        assert_eq!(
            report(&mut room, &id, ok("T1"), 59),
            PaymentOutcome::Confirmed
        );
    }

    /// Checking out on the departure day releases nothing (the event says so); a day early
    /// releases from today.
    #[test]
    fn check_out_releases_from_today_only_when_early() {
        let (mut room, id) = room_with_hold();
        assert_eq!(
            report(&mut room, &id, ok("T1"), 1),
            PaymentOutcome::Confirmed
        );
        let arrival = jiff::civil::date(2030, 1, 1);
        let e = room
            .decide_change(&id, Action::CheckIn, None, at(2), arrival)
            .unwrap();
        room.apply(&e);
        let release = |day: Date| match room.decide_change(&id, Action::CheckOut, None, at(3), day)
        {
            Ok(Event::ReservationChanged { change, .. }) => change.release_from,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            release(jiff::civil::date(2030, 1, 3)),
            None,
            "on the departure day"
        );
        assert_eq!(
            release(jiff::civil::date(2030, 1, 2)),
            Some(jiff::civil::date(2030, 1, 2)),
            "a day early"
        );
    }

    /// Cancelling owes a refund only when money was captured: not for an unpaid hold, nor
    /// after a failed payment.
    #[test]
    fn cancelling_an_unpaid_reservation_owes_nothing() {
        let cancel = |room: &mut RoomState, id: &ReservationId| {
            let e = room
                .decide_change(
                    id,
                    Action::Cancel,
                    None,
                    at(5),
                    jiff::civil::date(2029, 12, 31),
                )
                .unwrap();
            room.apply(&e);
            room.reservation(id).unwrap().clone()
        };
        let (mut room, id) = room_with_hold();
        let r = cancel(&mut room, &id);
        assert_eq!(r.status, Status::Cancelled);
        assert!(!r.payment.refund_owed);
        assert_eq!(r.payment.status, PaymentStatus::Pending);
        let (mut room, id) = room_with_hold();
        let failed = PaymentReport::Failed {
            trade_no: "F1".into(),
        };
        assert_eq!(
            report(&mut room, &id, failed, 1),
            PaymentOutcome::FailedRecorded
        );
        let r = cancel(&mut room, &id);
        assert!(!r.payment.refund_owed);
        assert_eq!(r.payment.status, PaymentStatus::Failed);
    }

    /// Reverting a creation the journal refused gives back exactly its nights.
    #[test]
    fn revert_created_gives_back_the_nights() {
        let (mut room, id) = room_with_hold();
        let delta = room.revert_created(&id);
        assert_eq!(
            delta.released,
            vec![jiff::civil::date(2030, 1, 1), jiff::civil::date(2030, 1, 2)]
        );
        assert!(room.ledger.spans().is_empty() && room.ledger.is_empty());
        assert_eq!(room.revert_created(&id), NightsDelta::default(), "once");
    }

    /// A reservation taken in shares the room's copies of its hotel, room and type codes.
    #[test]
    fn a_reservation_shares_the_rooms_codes() {
        let (held, id) = room_with_hold();
        // The same reservation, with codes parsed on their own (as decoded from a journal).
        let mut r = held.reservation(&id).unwrap().clone();
        r.hotel_id = HotelId::parse(held.key.hotel_id.as_str()).unwrap();
        r.room = RoomNumber::parse(held.key.number.as_str()).unwrap();
        r.room_type = RoomTypeCode::parse(held.room_type.as_str()).unwrap();
        assert!(!std::ptr::eq(
            r.hotel_id.as_str(),
            held.key.hotel_id.as_str()
        ));
        let mut room = RoomState::new(held.key.clone(), held.room_type.clone());
        room.apply(&Event::ReservationCreated {
            reservation: r.into(),
            idempotency: None,
        });
        let r = room.reservation(&id).unwrap();
        assert!(std::ptr::eq(
            r.hotel_id.as_str(),
            room.key.hotel_id.as_str()
        ));
        assert!(std::ptr::eq(r.room.as_str(), room.key.number.as_str()));
        assert!(std::ptr::eq(r.room_type.as_str(), room.room_type.as_str()));
    }

    #[test]
    fn success_confirms_once_and_duplicates_change_nothing() {
        let (mut room, id) = room_with_hold();
        let failed = PaymentReport::Failed {
            trade_no: "f1".into(),
        };
        assert_eq!(
            report(&mut room, &id, failed.clone(), 1),
            PaymentOutcome::FailedRecorded
        );
        assert_eq!(report(&mut room, &id, failed, 1), PaymentOutcome::Duplicate);
        let r = room.reservation(&id).unwrap();
        assert_eq!(
            (r.status, r.payment.status),
            (Status::PendingPayment, PaymentStatus::Failed)
        );
        assert_eq!(
            report(&mut room, &id, ok("t1"), 2),
            PaymentOutcome::Confirmed
        );
        let before = room.clone();
        assert_eq!(
            report(&mut room, &id, ok("t1"), 3),
            PaymentOutcome::Duplicate
        );
        // A late failure (reordered) does not undo a success.
        let late = PaymentReport::Failed {
            trade_no: "f1".into(),
        };
        assert_eq!(report(&mut room, &id, late, 4), PaymentOutcome::Duplicate);
        assert_eq!(room, before);
        let r = room.reservation(&id).unwrap();
        assert_eq!(r.status, Status::Confirmed);
        assert_eq!(r.payment.status, PaymentStatus::Succeeded);
        assert!(!r.payment.refund_owed);
    }

    #[test]
    fn success_after_lapse_or_cancel_owes_a_refund_and_keeps_nights_released() {
        // Lapsed hold, not yet expired by the timer.
        let (mut room, id) = room_with_hold();
        assert_eq!(
            report(&mut room, &id, ok("t1"), 61),
            PaymentOutcome::RefundOwed
        );
        let r = room.reservation(&id).unwrap();
        assert_eq!(r.status, Status::PendingPayment);
        assert!(r.payment.refund_owed);
        let e = room
            .decide_change(
                &id,
                Action::Expire,
                None,
                at(62),
                jiff::civil::date(2029, 1, 1),
            )
            .unwrap();
        room.apply(&e);
        assert!(room.ledger.spans().is_empty());
        assert_eq!(
            report(&mut room, &id, ok("t1"), 63),
            PaymentOutcome::Duplicate
        );
        let e = room.decide_refunded(&id, at(64)).unwrap().unwrap();
        room.apply(&e);
        let r = room.reservation(&id).unwrap().clone();
        assert_eq!(
            (r.status, r.payment.status),
            (Status::Expired, PaymentStatus::Refunded)
        );
        assert!(!r.payment.refund_owed);
        assert!(room.decide_refunded(&id, at(65)).unwrap().is_none());
        assert_eq!(
            report(&mut room, &id, ok("t1"), 66),
            PaymentOutcome::Duplicate
        );
        let kinds: Vec<_> = r.payment.history.iter().map(|h| h.kind).collect();
        assert_eq!(
            kinds,
            vec![
                PaymentEventKind::Created,
                PaymentEventKind::RefundOwed,
                PaymentEventKind::Refunded
            ]
        );

        // Cancelled first, then paid.
        let (mut room, id) = room_with_hold();
        let e = room
            .decide_change(
                &id,
                Action::Cancel,
                None,
                at(1),
                jiff::civil::date(2029, 1, 1),
            )
            .unwrap();
        room.apply(&e);
        assert_eq!(
            report(&mut room, &id, ok("t2"), 2),
            PaymentOutcome::RefundOwed
        );
        let r = room.reservation(&id).unwrap();
        assert_eq!(r.status, Status::Cancelled);
        assert!(r.payment.refund_owed && room.ledger.spans().is_empty());
    }

    #[test]
    fn cancelling_a_paid_reservation_owes_a_refund() {
        let (mut room, id) = room_with_hold();
        assert_eq!(
            report(&mut room, &id, ok("t1"), 1),
            PaymentOutcome::Confirmed
        );
        let e = room
            .decide_change(
                &id,
                Action::Cancel,
                None,
                at(2),
                jiff::civil::date(2029, 1, 1),
            )
            .unwrap();
        room.apply(&e);
        let r = room.reservation(&id).unwrap();
        assert_eq!(r.status, Status::Cancelled);
        assert_eq!(r.payment.status, PaymentStatus::Succeeded);
        assert!(r.payment.refund_owed);
        assert!(room.decide_refunded(&id, at(3)).unwrap().is_some());
    }
}

/// Fees and refunds decided from the terms a reservation was sold under.
#[cfg(test)]
mod fee_tests {
    use jiff::civil::date;
    use jiff::SignedDuration;

    use super::*;
    use crate::catalog::Quote;
    use crate::ids::{HotelId, RatePlanCode, RoomNumber};
    use crate::money::{Currency, Money};
    use crate::reservation::{BookRequest, Guest};
    use crate::selling::{CancellationPolicy, Fee, RatePlan, Terms};
    use crate::time::{HotelTz, Stay};

    const T0: i64 = 1_900_000_000;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(T0 + s).unwrap()
    }

    /// Three nights from 2030-01-10 in Shanghai at 1 000, 1 200 and 1 000 under `terms`.
    fn stay() -> Stay {
        Stay::between(date(2030, 1, 10), date(2030, 1, 13)).unwrap()
    }

    fn terms(free_until_hours: i64, late: Fee, no_show: Fee) -> Terms {
        let code = RatePlanCode::parse("FLEX").unwrap();
        let plan = RatePlan::parse(
            "Flexible",
            vec![RoomTypeCode::parse("KING").unwrap()],
            0,
            CancellationPolicy::parse(free_until_hours, late).unwrap(),
            no_show,
            None,
            None,
        )
        .unwrap();
        let cny = Currency::parse("CNY").unwrap();
        let nightly: Vec<(Date, i64)> = stay().each_night().zip([1000, 1200, 1000]).collect();
        let quote = Quote {
            nightly,
            total: Money {
                amount_minor: 3200,
                currency: cny,
            },
        };
        let tz = HotelTz::parse("Asia/Shanghai").unwrap();
        Terms::of(code, &plan, stay().arrival(), &tz, &quote)
    }

    /// A room with one paid reservation sold under `terms`.
    fn paid_under(terms: Terms) -> (RoomState, ReservationId) {
        let key = RoomKey {
            hotel_id: HotelId::parse("H1").unwrap(),
            number: RoomNumber::parse("101").unwrap(),
        };
        let king = RoomTypeCode::parse("KING").unwrap();
        let mut room = RoomState::new(key.clone(), king.clone());
        let req = BookRequest {
            hotel_id: key.hotel_id.clone(),
            room_type: king,
            stay: stay(),
            guests: 1,
            guest: Guest::parse("Li Lei", "+86 138-0000-0000", "li@example.com").unwrap(),
            room: None,
            rate_plan: terms.rate_plan.clone(),
        };
        let id = ReservationId(uuid::Uuid::from_u128(7));
        let total = Money {
            amount_minor: 3200,
            currency: Currency::parse("CNY").unwrap(),
        };
        let mut r = crate::state::new_reservation(
            &req,
            key.number.clone(),
            total,
            id,
            at(0),
            SignedDuration::from_mins(15),
        );
        r.terms = terms;
        room.apply(&Event::ReservationCreated {
            reservation: r.into(),
            idempotency: None,
        });
        let (e, _) = room
            .decide_payment(
                &id,
                &PaymentReport::Succeeded {
                    trade_no: "T1".into(),
                },
                at(1),
            )
            .unwrap();
        room.apply(&e.unwrap());
        (room, id)
    }

    /// Decides and applies `action` at `now`; the settlement it decided.
    fn act(
        room: &mut RoomState,
        id: &ReservationId,
        action: Action,
        now: Timestamp,
    ) -> Option<Settlement> {
        let e = room
            .decide_change(id, action, None, now, date(2030, 1, 11))
            .unwrap();
        room.apply(&e);
        match e {
            Event::ReservationChanged { change, .. } => change.settlement,
            other => panic!("{other:?}"),
        }
    }

    /// Adds to `room` a new, unpaid one-night reservation `n` arriving on `arrival`, sold
    /// under the same terms as `like`; returns its id.
    fn unpaid_like(
        room: &mut RoomState,
        like: &ReservationId,
        n: u128,
        arrival: Date,
    ) -> ReservationId {
        let mut r = room.reservation(like).unwrap();
        r.id = ReservationId(uuid::Uuid::from_u128(n));
        r.stay = Stay::between(arrival, arrival.tomorrow().unwrap()).unwrap();
        r.status = Status::PendingPayment;
        r.version = 1;
        r.history.truncate(1);
        r.payment.status = PaymentStatus::Pending;
        r.payment.trade_no = None;
        r.payment.history.truncate(1);
        let id = r.id;
        room.apply(&Event::ReservationCreated {
            reservation: r.into(),
            idempotency: None,
        });
        id
    }

    fn last_kind(room: &RoomState, id: &ReservationId) -> PaymentEventKind {
        room.reservation(id)
            .unwrap()
            .payment
            .history
            .last()
            .unwrap()
            .kind
    }

    /// Free until 48 hours before the arrival date starts in Shanghai (2030-01-10 00:00
    /// +08:00 = 2030-01-09T16:00Z, so 2030-01-07T16:00Z), then the first night.
    #[test]
    fn a_cancellation_is_free_until_its_instant_then_costs_the_fee() {
        let flex = terms(48, Fee::Nights(1), Fee::Percent(50));
        let free_until: Timestamp = "2030-01-07T16:00:00Z".parse().unwrap();
        assert_eq!(flex.free_until, Some(free_until));
        assert_eq!(
            (flex.late_cancel_fee_minor, flex.no_show_fee_minor),
            (1000, 1600)
        );

        let (mut room, id) = paid_under(flex.clone());
        let settled = act(&mut room, &id, Action::Cancel, free_until);
        assert_eq!(
            settled,
            Some(Settlement {
                fee_minor: 0,
                refund_minor: 3200
            })
        );
        let r = room.reservation(&id).unwrap();
        assert!(r.payment.refund_owed);
        assert_eq!((r.payment.fee_minor, r.payment.refund_minor), (0, 3200));
        assert_eq!(
            last_kind(&room, &id),
            PaymentEventKind::CancelledAfterPayment
        );

        let (mut room, id) = paid_under(flex.clone());
        let late = free_until
            .checked_add(SignedDuration::from_secs(1))
            .unwrap();
        let settled = act(&mut room, &id, Action::Cancel, late);
        assert_eq!(
            settled,
            Some(Settlement {
                fee_minor: 1000,
                refund_minor: 2200
            })
        );
        let r = room.reservation(&id).unwrap();
        assert_eq!((r.payment.fee_minor, r.payment.refund_minor), (1000, 2200));
        assert_eq!(r.terms, flex);
        // The provider refunds what the fee leaves; the record keeps both amounts.
        let e = room.decide_refunded(&id, late).unwrap().unwrap();
        assert!(matches!(
            e,
            Event::PaymentChanged {
                change: PaymentChange::Refunded { amount_minor: 2200 },
                ..
            }
        ));
        room.apply(&e);
        let r = room.reservation(&id).unwrap();
        assert_eq!(r.payment.status, PaymentStatus::Refunded);
        assert_eq!((r.payment.fee_minor, r.payment.refund_minor), (1000, 2200));
        assert!(room.decide_refunded(&id, late).unwrap().is_none());
        // The compact form gives back exactly what it was given, through its encoding.
        let kept = room.kept(&id).unwrap();
        let bytes = bincode::serde::encode_to_vec(kept, bincode::config::standard()).unwrap();
        let (back, _): (crate::ledger::Kept, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        assert_eq!(back.to_reservation(&room.key, &room.room_type), r);
    }

    #[test]
    fn a_non_refundable_cancellation_keeps_everything_and_owes_nothing() {
        let (mut room, id) = paid_under(terms(0, Fee::Percent(100), Fee::Percent(100)));
        let settled = act(&mut room, &id, Action::Cancel, at(2));
        assert_eq!(
            settled,
            Some(Settlement {
                fee_minor: 3200,
                refund_minor: 0
            })
        );
        let r = room.reservation(&id).unwrap();
        assert!(!r.payment.refund_owed);
        assert_eq!(r.payment.status, PaymentStatus::Succeeded);
        assert_eq!((r.payment.fee_minor, r.payment.refund_minor), (3200, 0));
        assert_eq!(last_kind(&room, &id), PaymentEventKind::FeeKept);
        assert!(room.decide_refunded(&id, at(3)).unwrap().is_none());
    }

    #[test]
    fn an_unpaid_hold_cancels_with_no_charge() {
        let (mut room, id) = paid_under(terms(0, Fee::Percent(100), Fee::Percent(100)));
        let unpaid = unpaid_like(&mut room, &id, 8, date(2030, 2, 1));
        assert_eq!(act(&mut room, &unpaid, Action::Cancel, at(2)), None);
        let r = room.reservation(&unpaid).unwrap();
        assert_eq!(r.status, Status::Cancelled);
        assert!(!r.payment.refund_owed);
        assert_eq!((r.payment.fee_minor, r.payment.refund_minor), (0, 0));
    }

    #[test]
    fn a_no_show_keeps_its_fee_and_owes_the_rest() {
        let (mut room, id) = paid_under(terms(48, Fee::Nights(1), Fee::Percent(50)));
        let settled = act(&mut room, &id, Action::NoShow, at(2));
        assert_eq!(
            settled,
            Some(Settlement {
                fee_minor: 1600,
                refund_minor: 1600
            })
        );
        let r = room.reservation(&id).unwrap();
        assert!(r.payment.refund_owed);
        assert_eq!(last_kind(&room, &id), PaymentEventKind::NoShowAfterPayment);
        assert_eq!(
            room.decide_refunded(&id, at(3)).unwrap().map(|e| match e {
                Event::PaymentChanged { change, .. } => change,
                other => panic!("{other:?}"),
            }),
            Some(PaymentChange::Refunded { amount_minor: 1600 })
        );
    }

    /// The built-in plan has no no-show fee: a paid no-show is owed everything back, and
    /// its reservation stays without an allocation for its terms.
    #[test]
    fn a_bar_no_show_is_refunded_whole() {
        let (mut room, id) = paid_under(Terms::bar());
        let settled = act(&mut room, &id, Action::NoShow, at(2));
        assert_eq!(
            settled,
            Some(Settlement {
                fee_minor: 0,
                refund_minor: 3200
            })
        );
        let r = room.reservation(&id).unwrap();
        assert!(r.payment.refund_owed);
        assert_eq!((r.payment.fee_minor, r.payment.refund_minor), (0, 3200));
        assert!(room.kept(&id).unwrap().terms().is_none());
    }

    /// A paid cancellation or no-show journaled before fees existed carries no settlement
    /// and replays as it was decided then.
    #[test]
    fn changes_journaled_before_fees_replay_as_they_were_decided() {
        for (action, owed) in [(Action::Cancel, true), (Action::NoShow, false)] {
            let (mut room, id) = paid_under(Terms::bar());
            let mut e = room
                .decide_change(&id, action, None, at(2), date(2030, 1, 11))
                .unwrap();
            if let Event::ReservationChanged { change, .. } = &mut e {
                change.settlement = None;
            }
            room.apply(&e);
            let r = room.reservation(&id).unwrap();
            assert_eq!(r.payment.refund_owed, owed);
            assert_eq!(r.payment.refund_minor, if owed { 3200 } else { 0 });
            assert_eq!(r.payment.fee_minor, 0);
        }
    }

    /// Money captured after an unpaid cancellation goes back whole, whatever the plan.
    #[test]
    fn a_late_capture_is_refunded_whole() {
        let (mut room, id) = paid_under(terms(0, Fee::Percent(100), Fee::Percent(100)));
        let late = unpaid_like(&mut room, &id, 9, date(2030, 3, 1));
        act(&mut room, &late, Action::Cancel, at(2));
        let (e, outcome) = room
            .decide_payment(
                &late,
                &PaymentReport::Succeeded {
                    trade_no: "T9".into(),
                },
                at(3),
            )
            .unwrap();
        assert_eq!(outcome, PaymentOutcome::RefundOwed);
        room.apply(&e.unwrap());
        let r = room.reservation(&late).unwrap();
        assert_eq!((r.payment.fee_minor, r.payment.refund_minor), (0, 3200));
    }
}
