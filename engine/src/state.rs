//! The whole engine state, one `apply` for every event. Recovery replays the journal into
//! this; the actors hold its parts (the catalog, and one [`RoomState`] per room actor).

use std::collections::HashMap;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::availability::AvailabilityIndex;
use crate::catalog::Catalog;
use crate::error::DomainError;
use crate::event::{Event, IdempotencyRecord};
use crate::ids::{CodeMap, HotelId, IdMap, IdempotencyKey, ReservationId, RoomKey, RoomKeyParts};
use crate::reservation::{BookRequest, HistoryEntry, Payment, PaymentStatus, Reservation, Status};
use crate::room::RoomState;

/// How long an `Idempotency-Key` answers with its first result.
pub const IDEMPOTENCY_WINDOW: SignedDuration = SignedDuration::from_hours(24);

/// What an `Idempotency-Key` led to.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct IdempotencyEntry {
    /// Fingerprint of the request that first used the key.
    pub fingerprint: u64,
    /// The reservation it created.
    pub reservation_id: ReservationId,
    /// When, so the 24 h window can be enforced.
    #[serde(with = "crate::codec::timestamp")]
    pub created_at: Timestamp,
}

/// Idempotency keys per hotel.
pub type IdempotencyMap = HashMap<(HotelId, IdempotencyKey), IdempotencyEntry>;

/// Looks up a key: `Ok(Some(id))` for a replay, `Ok(None)` for a fresh (or lapsed) key,
/// `Err(IdempotencyKeyReused)` for the same key with another request.
pub fn check_idempotency(
    map: &IdempotencyMap,
    hotel_id: &HotelId,
    key: &IdempotencyKey,
    fingerprint: u64,
    now: Timestamp,
) -> Result<Option<ReservationId>, DomainError> {
    match map.get(&(hotel_id.clone(), key.clone())) {
        Some(e) if now.duration_since(e.created_at) < IDEMPOTENCY_WINDOW => {
            if e.fingerprint == fingerprint {
                Ok(Some(e.reservation_id))
            } else {
                Err(DomainError::IdempotencyKeyReused)
            }
        }
        _ => Ok(None),
    }
}

/// Refuses a room type too small for `guests` (a move or a retype that would not fit).
pub fn check_capacity(
    catalog: &Catalog,
    hotel_id: &HotelId,
    room_type: &crate::ids::RoomTypeCode,
    guests: u16,
) -> Result<(), DomainError> {
    let (_, rt) = catalog.room_type(hotel_id, room_type)?;
    if guests > rt.capacity {
        return Err(crate::error::ValidationError::new(
            "room",
            format!(
                "sleeps {} guests; the reservation has {guests}",
                rt.capacity
            ),
        )
        .into());
    }
    Ok(())
}

/// Builds a new pending reservation for `req` in `room`, with no recorded creator (set
/// [`Reservation::created_by`] on the result to record one).
pub fn new_reservation(
    req: &BookRequest,
    room: crate::ids::RoomNumber,
    total: crate::money::Money,
    id: ReservationId,
    now: Timestamp,
    hold: SignedDuration,
) -> Reservation {
    reservation_of(req.clone(), room, total, id, now, hold)
}

/// [`new_reservation`] taking the request's codes and contact rather than copying them
/// (a room that owns its booking's request: each copy of a shared code is a count in a
/// cache line every shard touches).
pub fn reservation_of(
    req: BookRequest,
    room: crate::ids::RoomNumber,
    total: crate::money::Money,
    id: ReservationId,
    now: Timestamp,
    hold: SignedDuration,
) -> Reservation {
    // A room the client chose stays chosen.
    let pinned = req.room.is_some();
    Reservation {
        id,
        hotel_id: req.hotel_id,
        room_type: req.room_type,
        room,
        stay: req.stay,
        guests: req.guests,
        guest: req.guest,
        total,
        status: Status::PendingPayment,
        version: 1,
        created_at: now,
        hold_expires_at: now.checked_add(hold).unwrap_or(Timestamp::MAX),
        payment: Payment {
            out_trade_no: id.out_trade_no(),
            amount: total,
            status: PaymentStatus::Pending,
            trade_no: None,
            refund_owed: false,
            history: vec![crate::reservation::PaymentHistoryEntry {
                at: now,
                kind: crate::reservation::PaymentEventKind::Created,
                status: PaymentStatus::Pending,
                trade_no: None,
            }],
            fee_minor: 0,
            refund_minor: 0,
        },
        history: vec![HistoryEntry {
            at: now,
            from: None,
            to: Status::PendingPayment,
            version: 1,
        }],
        created_by: None,
        moves: Vec::new(),
        terms: crate::selling::Terms::bar(),
        modifications: Vec::new(),
        pinned,
        adjustment: None,
    }
}

/// What `event` changes in a locator (reservation id to room): the locator is derived
/// from the events alone, as [`State::apply`] keeps it.
pub fn locate(locator: &mut IdMap<RoomKey>, event: &Event) {
    let key = |hotel_id: &HotelId, number: &crate::ids::RoomNumber| RoomKey {
        hotel_id: hotel_id.clone(),
        number: number.clone(),
    };
    let moved =
        |locator: &mut IdMap<RoomKey>, hotel_id: &HotelId, moves: &[crate::event::Relocation]| {
            for m in moves {
                locator.insert(m.id, key(hotel_id, &m.to));
            }
        };
    match event {
        Event::ReservationCreated { reservation, .. } => {
            locator.insert(
                reservation.id,
                key(&reservation.hotel_id, &reservation.room),
            );
        }
        Event::ReservationModified {
            room,
            id,
            to: Some(number),
            ..
        } => {
            locator.insert(*id, key(&room.hotel_id, number));
        }
        Event::ReservationMoved { id, to, .. } => {
            locator.insert(*id, to.clone());
        }
        Event::Rearranged {
            moves, reservation, ..
        } => {
            moved(locator, &reservation.hotel_id, moves);
            locator.insert(
                reservation.id,
                key(&reservation.hotel_id, &reservation.room),
            );
        }
        Event::BookingCreated {
            moves,
            reservations,
            ..
        } => {
            if let Some(first) = reservations.first() {
                moved(locator, &first.hotel_id, moves);
            }
            for r in reservations {
                locator.insert(r.id, key(&r.hotel_id, &r.room));
            }
        }
        Event::BookingChanged { parts, .. } => {
            for part in parts {
                locate(locator, part);
            }
        }
        Event::ModifyRearranged { moves, modified } => {
            locate(locator, modified);
            moved(locator, modified.hotel_id(), moves);
        }
        Event::HotelPut { .. }
        | Event::RoomTypePut { .. }
        | Event::RoomPut { .. }
        | Event::RatePut { .. }
        | Event::RatePlanPut { .. }
        | Event::RestrictionsSet { .. }
        | Event::ReservationModified { to: None, .. }
        | Event::ReservationChanged { .. }
        | Event::PaymentChanged { .. }
        | Event::OutOfOrderSet { .. }
        | Event::OutOfOrderCleared { .. }
        | Event::HousekeepingSet { .. } => {}
    }
}

/// The serialized form of [`State`]: only what cannot be derived.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct Snapshot {
    /// Hotels and their setup.
    pub catalog: Catalog,
    /// Every room.
    pub rooms: Vec<RoomState>,
    /// Idempotency keys.
    pub idempotency: Vec<((HotelId, IdempotencyKey), IdempotencyEntry)>,
}

/// Everything, in one place.
#[derive(Clone, Default, Debug)]
pub struct State {
    /// Hotels, room types, rooms, rates.
    pub catalog: Catalog,
    /// Each room's state.
    pub rooms: CodeMap<RoomKey, RoomState>,
    /// Reservation → its room (derived).
    pub locator: IdMap<RoomKey>,
    /// Idempotency keys.
    pub idempotency: IdempotencyMap,
}

impl State {
    /// Applies any event. Events come from the decide functions, so they fit the state.
    pub fn apply(&mut self, event: &Event) {
        self.apply_to_rooms(event);
        locate(&mut self.locator, event);
    }

    /// [`State::apply`] without the locator, which is derived: recovery replays millions
    /// of events this way and builds the locator once at the end
    /// ([`State::rebuild_locator`]), or not at all when the engine keeps its own.
    pub fn apply_to_rooms(&mut self, event: &Event) {
        match event {
            Event::HotelPut { .. }
            | Event::RoomTypePut { .. }
            | Event::RatePut { .. }
            | Event::RatePlanPut { .. }
            | Event::RestrictionsSet { .. } => self.catalog.apply(event),
            Event::RoomPut {
                hotel_id,
                number,
                room_type,
            } => {
                self.catalog.apply(event);
                let key = RoomKey {
                    hotel_id: hotel_id.clone(),
                    number: number.clone(),
                };
                self.rooms
                    .entry(key.clone())
                    .or_insert_with(|| RoomState::new(key, room_type.clone()))
                    .apply(event);
            }
            Event::ReservationCreated {
                reservation,
                idempotency,
            } => {
                if let Some(record) = idempotency {
                    self.record_key(reservation, record);
                }
                // The room keeps its own compact copy. Found by the reservation's codes,
                // not a key cloned from them (see `RoomKeyParts`).
                let key = (&reservation.hotel_id, &reservation.room);
                if let Some(room) = self.rooms.get_mut(&key as &dyn RoomKeyParts) {
                    room.apply(event);
                }
            }
            Event::ReservationChanged { room, .. }
            | Event::PaymentChanged { room, .. }
            | Event::HousekeepingSet { room, .. }
            | Event::OutOfOrderSet { room, .. }
            | Event::OutOfOrderCleared { room, .. } => {
                let room = room.clone();
                self.apply_to_room(&room, event);
            }
            Event::ReservationModified {
                room,
                id,
                to: Some(number),
                ..
            } => {
                let Some(source) = self.rooms.get_mut(room) else {
                    return;
                };
                let (reservation, _) = source.move_out(id);
                let to = RoomKey {
                    hotel_id: room.hotel_id.clone(),
                    number: number.clone(),
                };
                let (Some(reservation), Some(target)) = (reservation, self.rooms.get_mut(&to))
                else {
                    return;
                };
                target.modify_in(reservation, event);
            }
            Event::ReservationModified { room, .. } => {
                let room = room.clone();
                self.apply_to_room(&room, event);
            }
            Event::Rearranged {
                moves,
                reservation,
                idempotency,
            } => self.apply_rearranged(
                event,
                moves,
                std::slice::from_ref(reservation),
                idempotency.as_ref(),
            ),
            Event::BookingCreated {
                moves,
                reservations,
                idempotency,
                ..
            } => self.apply_rearranged(event, moves, reservations, idempotency.as_ref()),
            Event::BookingChanged { parts, .. } => {
                for part in parts {
                    self.apply_to_rooms(part);
                }
            }
            Event::ModifyRearranged { moves, modified } => {
                // The modification takes its nights (in its room, or moving to another)
                // once the leavers left, before they arrive.
                let hotel_id = modified.hotel_id().clone();
                self.apply_moves(event, &hotel_id, moves, &[], |state| {
                    state.apply_to_rooms(modified);
                });
            }
            Event::ReservationMoved { id, from, to, .. } => {
                let Some(source) = self.rooms.get_mut(from) else {
                    return;
                };
                let (reservation, _) = source.move_out(id);
                let (Some(reservation), Some(target)) = (reservation, self.rooms.get_mut(to))
                else {
                    return;
                };
                target.move_in(reservation, event);
            }
        }
    }

    /// Applies an event that moves reservations and books new ones ([`Event::Rearranged`],
    /// [`Event::BookingCreated`]): every room lets its leavers go first, then each takes
    /// its arrivals and its new reservations: after all the moves no two reservations of a
    /// room overlap, whatever their order. The key, if any, leads to the first new one.
    fn apply_rearranged(
        &mut self,
        event: &Event,
        moves: &[crate::event::Relocation],
        created: &[std::sync::Arc<Reservation>],
        idempotency: Option<&IdempotencyRecord>,
    ) {
        let Some(hotel_id) = created.first().map(|r| r.hotel_id.clone()) else {
            return;
        };
        let rooms: Vec<_> = created.iter().map(|r| r.room.clone()).collect();
        self.apply_moves(event, &hotel_id, moves, &rooms, |_| {});
        if let (Some(first), Some(record)) = (created.first(), idempotency) {
            self.record_key(first, record);
        }
    }

    /// The moves of `event` (in hotel `hotel_id`): every room they touch (and every one of
    /// `also`) lets its leavers go, then `between` runs, then each room takes its arrivals
    /// and whatever else `event` brings it ([`RoomState::rearranged_in`]). After all of it
    /// no two reservations of a room overlap, whatever the order within each step.
    fn apply_moves(
        &mut self,
        event: &Event,
        hotel_id: &HotelId,
        moves: &[crate::event::Relocation],
        also: &[crate::ids::RoomNumber],
        between: impl FnOnce(&mut Self),
    ) {
        let key = |number: &crate::ids::RoomNumber| RoomKey {
            hotel_id: hotel_id.clone(),
            number: number.clone(),
        };
        let mut rooms: Vec<RoomKey> = moves
            .iter()
            .flat_map(|m| [key(&m.from), key(&m.to)])
            .chain(also.iter().map(key))
            .collect();
        rooms.sort();
        rooms.dedup();
        let mut arriving = Vec::new();
        for k in &rooms {
            if let Some(room) = self.rooms.get_mut(k) {
                arriving.extend(room.rearranged_out(event).0);
            }
        }
        between(self);
        for k in &rooms {
            if let Some(room) = self.rooms.get_mut(k) {
                room.rearranged_in(arriving.clone(), event);
            }
        }
    }

    /// Records the idempotency key that made `reservation`.
    fn record_key(&mut self, reservation: &Reservation, record: &IdempotencyRecord) {
        self.idempotency.insert(
            (reservation.hotel_id.clone(), record.key.clone()),
            IdempotencyEntry {
                fingerprint: record.fingerprint,
                reservation_id: reservation.id,
                created_at: reservation.created_at,
            },
        );
    }

    /// Derives the locator from the rooms, replacing it.
    pub fn rebuild_locator(&mut self) {
        let reservations = self.rooms.values().map(|room| room.ledger.len()).sum();
        let mut locator = IdMap::with_capacity_and_hasher(reservations, Default::default());
        for room in self.rooms.values() {
            for r in room.ledger.iter() {
                locator.insert(r.id(), room.key.clone());
            }
        }
        self.locator = locator;
    }

    fn apply_to_room(&mut self, key: &RoomKey, event: &Event) {
        if let Some(room) = self.rooms.get_mut(key) {
            room.apply(event);
        }
    }

    /// The availability index of every room, built from their calendars and out-of-order
    /// ranges (the engine keeps none of its own: the actors keep one per shard, fed by
    /// each room's changes). For tests and tools.
    pub fn availability_index(&self) -> AvailabilityIndex {
        let mut index = AvailabilityIndex::default();
        for room in self.rooms.values() {
            index.put_room(&room.key, &room.room_type);
            index.apply_delta(&room.key, &room.unavailable_nights(), &[]);
        }
        index
    }

    /// A reservation by id.
    pub fn reservation(&self, id: &ReservationId) -> Result<Reservation, DomainError> {
        let key = self
            .locator
            .get(id)
            .ok_or(DomainError::NotFound("reservation"))?;
        self.rooms
            .get(key)
            .ok_or(DomainError::NotFound("reservation"))?
            .reservation(id)
    }

    /// The serializable part.
    pub fn to_snapshot(&self) -> Snapshot {
        let mut rooms: Vec<RoomState> = self.rooms.values().cloned().collect();
        rooms.sort_by(|a, b| a.key.cmp(&b.key));
        Snapshot {
            catalog: self.catalog.clone(),
            rooms,
            idempotency: {
                // Sorted, so equal states give equal (and byte-identical) snapshots.
                let mut keys: Vec<_> = self
                    .idempotency
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect();
                keys.sort_by(|a, b| a.0.cmp(&b.0));
                keys
            },
        }
    }

    /// Rebuilds the derived part (the locator) from a snapshot.
    pub fn from_snapshot(snapshot: Snapshot) -> Self {
        let mut state = State {
            catalog: snapshot.catalog,
            idempotency: snapshot.idempotency.into_iter().collect(),
            ..State::default()
        };
        for room in snapshot.rooms {
            state.rooms.insert(room.key.clone(), room);
        }
        state.rebuild_locator();
        state
    }

    /// Checks the promises that must hold in any reachable state, from the reservations
    /// themselves rather than the calendars:
    /// - each room's calendar is well formed (sorted, disjoint spans of its reservations);
    /// - no two reservations holding nights in one room share a night;
    /// - every night a live reservation holds is in its room's calendar, pointing at it;
    /// - every calendar span is of a reservation of that room that holds nights;
    /// - the locator agrees with the rooms;
    /// - no night is both sold and out of order.
    ///
    /// Returns a description of each violation (empty when all is well).
    pub fn check_invariants(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for room in self.rooms.values() {
            if let Err(e) = room.ledger.check() {
                problems.push(format!("{:?} calendar: {e}", room.key));
            }
            let mut owner: HashMap<Date, ReservationId> = HashMap::new();
            for r in room.ledger.iter() {
                let id = r.id();
                if self.locator.get(&id) != Some(&room.key) {
                    problems.push(format!("{id}: locator does not point at {:?}", room.key));
                }
                if !r.status().holds_nights() {
                    continue;
                }
                // Live statuses keep every night from the first night in this room (a guest
                // moved mid-stay slept the earlier ones elsewhere).
                let first = r.first_night_here();
                for night in r.stay().each_night().filter(|d| *d >= first) {
                    if let Some(other) = owner.insert(night, id) {
                        problems.push(format!(
                            "{:?} night {night} sold to both {other} and {id}",
                            room.key
                        ));
                    }
                    if room.ledger.holder(night) != Some(id) {
                        problems.push(format!(
                            "{:?} night {night} of {id} missing from the calendar",
                            room.key
                        ));
                    }
                }
            }
            for span in room.ledger.spans() {
                let live = room
                    .ledger
                    .get(&span.id)
                    .is_some_and(|r| r.status().holds_nights() || r.status() == Status::CheckedOut);
                if !live {
                    problems.push(format!(
                        "{:?} night {} held by {}, which holds no nights",
                        room.key, span.from, span.id
                    ));
                }
            }
            for (from, range) in &room.out_of_order {
                for night in from
                    .series(jiff::ToSpan::day(1))
                    .take_while(|d| *d < range.to)
                {
                    if room.ledger.holder(night).is_some() {
                        problems.push(format!(
                            "{:?} night {night} is both sold and out of order",
                            room.key
                        ));
                    }
                }
            }
        }
        problems.extend(self.booking_problems());
        problems
    }

    /// The reservations of one multi-room booking share what the booking made them with:
    /// its hotel, creator, creation and hold instants.
    fn booking_problems(&self) -> Vec<String> {
        let mut first: HashMap<crate::ids::BookingId, (&HotelId, &crate::ledger::Kept)> =
            HashMap::new();
        let mut problems = Vec::new();
        for room in self.rooms.values() {
            for r in room.ledger.iter() {
                let Some(b) = r.booking() else { continue };
                let hotel = &room.key.hotel_id;
                let (h0, r0) = *first.entry(b).or_insert((hotel, r));
                let same = h0 == hotel
                    && r0.created_by() == r.created_by()
                    && r0.created_at() == r.created_at()
                    && r0.hold_expires_at() == r.hold_expires_at();
                if !same {
                    problems.push(format!(
                        "{} and {} of booking {b} disagree on what it made them with",
                        r0.id(),
                        r.id()
                    ));
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;

    use super::*;
    use crate::ids::{RoomNumber, RoomTypeCode};
    use crate::reservation::Guest;
    use crate::room::OutOfOrder;
    use crate::time::Stay;
    use crate::time::StayLimits;

    /// One hotel, one room "1", and a 3-night pending reservation in it (Nov 24–27).
    /// A move's capacity rule: a room type sleeps up to its capacity, no more.
    #[test]
    fn check_capacity_refuses_only_more_guests_than_the_type_sleeps() {
        let (s, key, _) = booked();
        let code = RoomTypeCode::parse("STD").unwrap();
        let fits = |guests| check_capacity(&s.catalog, &key.hotel_id, &code, guests);
        assert!(fits(1).is_ok());
        assert!(fits(2).is_ok());
        match fits(3) {
            Err(DomainError::Invalid(v)) => assert_eq!(v.field, "room"),
            other => panic!("three guests in a double: {other:?}"),
        }
        let unknown = RoomTypeCode::parse("NOPE").unwrap();
        assert_eq!(
            check_capacity(&s.catalog, &key.hotel_id, &unknown, 1).unwrap_err(),
            DomainError::NotFound("room type")
        );
    }

    fn booked() -> (State, RoomKey, ReservationId) {
        let mut s = State::default();
        let hotel = HotelId::parse("H").unwrap();
        let code = RoomTypeCode::parse("STD").unwrap();
        let (e, _) = s
            .catalog
            .put_hotel(hotel.clone(), "Hotel", "Asia/Shanghai", "CNY")
            .unwrap();
        s.apply(&e);
        let (e, _) = s
            .catalog
            .put_room_type(&hotel, code.clone(), "Standard", 2, 10_000)
            .unwrap();
        s.apply(&e);
        let number = RoomNumber::parse("1").unwrap();
        let (e, _) = s
            .catalog
            .put_room(&hotel, number.clone(), code.clone())
            .unwrap();
        s.apply(&e);
        let today = date(2026, 11, 23);
        let req = BookRequest {
            hotel_id: hotel.clone(),
            room_type: code,
            stay: Stay::parse(
                date(2026, 11, 24),
                date(2026, 11, 27),
                today,
                StayLimits::default(),
            )
            .unwrap(),
            guests: 1,
            guest: Guest::parse("A Guest", "+86 138 0000 0000", "a@example.com").unwrap(),
            room: Some(number.clone()),
            rate_plan: crate::ids::RatePlanCode::bar(),
        };
        let id = ReservationId(uuid::Uuid::from_u128(7));
        let now: Timestamp = "2026-11-23T02:00:00Z".parse().unwrap();
        let total = crate::money::Money {
            amount_minor: 30_000,
            currency: crate::money::Currency::parse("CNY").unwrap(),
        };
        let r = new_reservation(
            &req,
            number.clone(),
            total,
            id,
            now,
            SignedDuration::from_mins(15),
        );
        s.apply(&Event::ReservationCreated {
            reservation: r.into(),
            idempotency: None,
        });
        let key = RoomKey {
            hotel_id: hotel,
            number,
        };
        assert_eq!(s.check_invariants(), Vec::<String>::new());
        (s, key, id)
    }

    fn reported(s: &State, what: &str) -> bool {
        s.check_invariants().iter().any(|p| p.contains(what))
    }

    /// `check_invariants` is what the model tests and the crash tests trust to find a
    /// broken state, so each promise it checks must be reported when broken.
    #[test]
    fn check_invariants_reports_each_broken_promise() {
        let night = date(2026, 11, 25);

        let (mut s, key, id) = booked();
        s.rooms.get_mut(&key).unwrap().ledger.release(&id, night);
        assert!(
            reported(&s, "missing from the calendar"),
            "{:?}",
            s.check_invariants()
        );

        let (mut s, key, id) = booked();
        let room = s.rooms.get_mut(&key).unwrap();
        room.ledger
            .get_mut(&id)
            .unwrap()
            .set_status(Status::Cancelled);
        assert!(
            reported(&s, "which holds no nights"),
            "{:?}",
            s.check_invariants()
        );

        // A second reservation of the same nights, which the calendar does not know.
        let (mut s, key, id) = booked();
        let mut twin = s.reservation(&id).unwrap();
        twin.id = ReservationId(uuid::Uuid::from_u128(8));
        let room = s.rooms.get_mut(&key).unwrap();
        let kept = crate::ledger::Kept::new(&twin, &room.room_type);
        room.ledger.insert(kept, night, night);
        assert!(reported(&s, "sold to both"), "{:?}", s.check_invariants());

        // A range whose *second* night is sold, so the range must be walked night by night.
        let (mut s, key, _) = booked();
        s.rooms.get_mut(&key).unwrap().out_of_order.insert(
            date(2026, 11, 23),
            OutOfOrder {
                to: date(2026, 11, 28),
                reason: "repairs".into(),
            },
        );
        let problems = s.check_invariants();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("night 2026-11-24 is both sold and out of order")),
            "{problems:?}"
        );
        let (mut s, _, id) = booked();
        s.locator.remove(&id);
        assert!(
            reported(&s, "locator does not point"),
            "{:?}",
            s.check_invariants()
        );
    }
}
