//! A booking, or a modification ([`modify`]), that other reservations make room for
//! (issue #16: no sellable stay refused).
//!
//! When no room of the type is free for the whole stay but the type has a free room on
//! every night of it, booking ([`crate::booking`]) hands the booking here:
//!
//! 1. **Read.** Every room of the type answers what it holds around the stay
//!    ([`GetHoldings`]), unlocked: rooms keep serving meanwhile.
//! 2. **Plan.** [`innkeep_engine::rearrange::plan`] finds the fewest moves of future,
//!    unpinned reservations that free one room (at most
//!    [`innkeep_engine::rearrange::MAX_MOVES`]).
//! 3. **Lock.** The rooms the plan touches are locked one at a time in room-key order
//!    ([`LockForRearrangement`]): each answers its holdings again and takes no other
//!    message until the decision, so the plan is checked
//!    ([`innkeep_engine::rearrange::fits`]) against rooms that cannot change under it.
//!    A plan that no longer fits (another booking came first) is given up and planned
//!    again, at most [`ATTEMPTS`] times.
//! 4. **Journal.** One [`Event::Rearranged`] holds the moves and the new reservation;
//!    once it is durable each locked room applies its part ([`Commit`]) and is unlocked.
//!    Dropping the decisions instead unlocks them with nothing changed.
//!
//! The whole runs under a shared hold on [`Directory::gate`], like a move, from the first
//! reading until every room applied its part, so a snapshot sees all of it or none of it.
//! The booking is answered after that too: by then the new reservation and every moved one
//! are where the locator says, and the new hold is queued for expiry.

use std::sync::Arc;

use futures_util::future::join_all;
use innkeep_engine::jiff::Timestamp;
use innkeep_engine::jiff::{civil::Date, ToSpan};
use innkeep_engine::rearrange::{fits, plan, Held};
use innkeep_engine::room::modified_into;
use innkeep_engine::{
    DomainError, Event, IdempotencyEntry, IdempotencyRecord, Modification, Relocation, Reservation,
};
use innkeep_engine::{HotelId, ReservationId, RoomKey};
use innkeep_persistence::Journal;
use tokio::sync::oneshot;

use crate::directory::{read, Directory};
use crate::protocol::{
    BookResult, Commit, Draft, EngineError, GetHoldings, GetReservation, LockForRearrangement,
    Locked,
};
use crate::room::{journal_error, Rooms};

/// Times a plan is made again after the rooms changed between reading and locking them.
const ATTEMPTS: usize = 3;

/// Nights read on each side of the stay. A reservation in the way may move only when the
/// reading shows all of its nights (and those of any it displaces in turn), so the window
/// is wider than the stay; one longer than this stays put.
pub(crate) const WINDOW_MARGIN_NIGHTS: i32 = 31;

/// Most rooms of a type one rearrangement reads: reading costs a message per room, and a
/// plan touches at most `2 × MAX_MOVES + 1` rooms. A type with more rooms is planned over
/// those with the most free nights of the stay (a room to free needs few moves; a room to
/// move into needs free nights).
pub(crate) const MAX_ROOMS_READ: usize = 64;

/// Counts bookings that needed a rearrangement, by outcome.
pub const METRIC_REARRANGEMENTS: &str = "innkeep_rearrangements_total";

/// Books `draft` in a room freed by moving other reservations, or answers `sold_out`.
/// The caller admitted the booking (its key is in flight, its hold slot taken) and found
/// no room free for the whole stay.
pub(crate) async fn book(
    directory: &Arc<Directory>,
    rooms: &Rooms,
    journal: &Journal<Event>,
    draft: &Draft,
    idempotency: Option<IdempotencyRecord>,
) -> BookResult {
    let req = &draft.request;
    let (arrival, departure) = (req.stay.arrival(), req.stay.departure());
    // Most refusals end here: some night has no free room of the type at all.
    if directory.sellable_count(&req.hotel_id, &req.room_type, &req.stay) == 0 {
        return Err(DomainError::SoldOut.into());
    }
    let _gate = directory.gate.clone().read_owned().await;
    let today = read(&directory.catalog)
        .hotel(&req.hotel_id)?
        .time_zone
        .today(draft.now);
    let window = Window::around(arrival, departure, today);
    let numbers = directory.rooms_with_most_free_nights(
        &req.hotel_id,
        &req.room_type,
        &req.stay,
        MAX_ROOMS_READ,
    );
    let keys: Vec<RoomKey> = numbers
        .into_iter()
        .map(|number| RoomKey {
            hotel_id: req.hotel_id.clone(),
            number,
        })
        .collect();
    for _ in 0..ATTEMPTS {
        let held = read_rooms(rooms, &keys, window).await?;
        let Some(plan) = plan(&held, arrival, departure) else {
            metrics::counter!(METRIC_REARRANGEMENTS, "outcome" => "no_plan").increment(1);
            return Err(DomainError::SoldOut.into());
        };
        let touched = plan
            .moves
            .iter()
            .flat_map(|m| [m.from_room, m.to_room])
            .chain([plan.room])
            .collect();
        let leaving: Vec<(ReservationId, usize)> =
            plan.moves.iter().map(|m| (m.id, m.from_room)).collect();
        let locked = lock(rooms, &keys, touched, &leaving, window).await?;
        let mut now_held = held;
        for room in &locked {
            now_held[room.index()].clone_from(&room.answer.holdings);
        }
        if !fits(&now_held, &plan, arrival, departure) {
            // Unlocked by dropping the decisions; plan again from a new reading.
            metrics::counter!(METRIC_REARRANGEMENTS, "outcome" => "replanned").increment(1);
            continue;
        }
        let mut moves: Vec<Relocation> = Vec::with_capacity(plan.moves.len());
        for m in &plan.moves {
            // Every leaver is in its locked room's answer (the plan fits).
            let stay = locked
                .iter()
                .flat_map(|room| &room.answer.leaving)
                .find(|r| r.id == m.id)
                .map(|r| r.stay)
                .ok_or(DomainError::NotFound("reservation"))?;
            moves.push(Relocation {
                id: m.id,
                from: keys[m.from_room].number.clone(),
                to: keys[m.to_room].number.clone(),
                stay,
            });
        }
        let created = Arc::new(draft.reservation_in(keys[plan.room].number.clone()));
        let event = Arc::new(Event::Rearranged {
            moves,
            reservation: created.clone(),
            idempotency: idempotency.clone(),
        });
        durable_with_key(
            directory,
            journal,
            &event,
            &req.hotel_id,
            idempotency.as_ref(),
            &created,
        )
        .await?;
        // Durable. The locator names the new rooms before any room applies its part: a
        // call routed by an old entry finds the reservation gone from the room it left
        // and asks again where the locator now points (`Directory::at_its_room`); a call
        // routed to a new room waits there behind the room's decision.
        if let Event::Rearranged { moves, .. } = &*event {
            let hosted = rooms.read();
            let number_of = |number: &innkeep_engine::RoomNumber| {
                hosted
                    .get(&RoomKey {
                        hotel_id: req.hotel_id.clone(),
                        number: number.clone(),
                    })
                    .map(|h| h.number)
            };
            for m in moves {
                if let Some(n) = number_of(&m.to) {
                    directory.set_location(m.id, n);
                }
            }
            if let Some(n) = number_of(&created.room) {
                directory.set_location(created.id, n);
            }
        }
        // Every locked room applies its part; answered (and the gate released) once every
        // room did: then the new reservation and each moved one are where the locator says.
        let moved_to: Vec<(ReservationId, usize)> =
            plan.moves.iter().map(|m| (m.id, m.to_room)).collect();
        commit(locked, &keys, &moved_to, &event).await?;
        metrics::counter!(METRIC_REARRANGEMENTS, "outcome" => "booked").increment(1);
        tracing::debug!(
            reservation = %created.id,
            room = %created.room,
            moves = plan.moves.len(),
            "booked by rearranging"
        );
        return Ok(created);
    }
    metrics::counter!(METRIC_REARRANGEMENTS, "outcome" => "gave_up").increment(1);
    Err(DomainError::SoldOut.into())
}

/// The nights read around the stay, and the hotel's today.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    pub from: Date,
    pub to: Date,
    pub today: Date,
}

impl Window {
    /// The nights [`WINDOW_MARGIN_NIGHTS`] either side of `[arrival, departure)`.
    pub(crate) fn around(arrival: Date, departure: Date, today: Date) -> Self {
        Self {
            from: arrival
                .checked_sub(WINDOW_MARGIN_NIGHTS.days())
                .unwrap_or(arrival),
            to: departure
                .checked_add(WINDOW_MARGIN_NIGHTS.days())
                .unwrap_or(departure),
            today,
        }
    }
}

/// Every room's holdings in the window, in the order of `keys`.
pub(crate) async fn read_rooms(
    rooms: &Rooms,
    keys: &[RoomKey],
    window: Window,
) -> Result<Vec<Vec<Held>>, EngineError> {
    let asks = keys.iter().map(|key| {
        let holdings = GetHoldings {
            from: window.from,
            to: window.to,
            today: window.today,
        };
        let asked = rooms
            .read()
            .contains_key(key)
            .then(|| rooms.query(key, holdings));
        async move {
            let Some(asked) = asked else {
                // Not a room (any more): it holds nothing a plan could use.
                return Ok(vec![Held {
                    id: innkeep_engine::ReservationId(uuid::Uuid::nil()),
                    from: window.from,
                    to: window.to,
                    movable: false,
                }]);
            };
            asked.await.map_err(|_| EngineError::ShuttingDown)
        }
    });
    join_all(asks).await.into_iter().collect()
}

/// A room locked for a rearrangement: its place in `keys`, its answer, and its decision.
pub(crate) struct LockedRoom {
    index: usize,
    /// What it holds now, and the reservations that leave it.
    pub answer: Locked,
    decision: oneshot::Sender<Commit>,
}

impl LockedRoom {
    /// Its place in the keys it was locked by.
    pub(crate) fn index(&self) -> usize {
        self.index
    }
}

/// Locks the rooms `touched` (places in `keys`), one at a time in key order; each answers
/// as it is now, with the reservations of `leaving` (each with the place of the room it
/// leaves) that it holds. On failure the rooms locked so far are unlocked (their decisions
/// dropped).
pub(crate) async fn lock(
    rooms: &Rooms,
    keys: &[RoomKey],
    mut touched: Vec<usize>,
    leaving: &[(ReservationId, usize)],
    window: Window,
) -> Result<Vec<LockedRoom>, EngineError> {
    touched.sort_by(|a, b| keys[*a].cmp(&keys[*b]));
    touched.dedup();
    let mut locked = Vec::with_capacity(touched.len());
    for index in touched {
        let (decision, decided) = oneshot::channel();
        let (answer_to, answered) = oneshot::channel();
        let leaving = leaving
            .iter()
            .filter(|(_, from)| *from == index)
            .map(|(id, _)| *id)
            .collect();
        let lock = LockForRearrangement {
            from: window.from,
            to: window.to,
            today: window.today,
            leaving,
            locked: answer_to,
            decision: decided,
        };
        rooms
            .try_send(&keys[index], lock)
            .ok_or(DomainError::NotFound("room"))?
            .map_err(|e| match e {
                actix::dev::SendError::Full(_) => EngineError::Overloaded,
                actix::dev::SendError::Closed(_) => EngineError::ShuttingDown,
            })?;
        let answer = answered.await.map_err(|_| EngineError::ShuttingDown)?;
        locked.push(LockedRoom {
            index,
            answer,
            decision,
        });
    }
    Ok(locked)
}

/// Hands the durable `event` to every locked room, with the reservations moving into it
/// (`moved_to`: each moved reservation with the place of the room it goes to), and waits
/// until each applied its part.
pub(crate) async fn commit(
    mut locked: Vec<LockedRoom>,
    keys: &[RoomKey],
    moved_to: &[(ReservationId, usize)],
    event: &Arc<Event>,
) -> Result<(), EngineError> {
    let mut leavers: Vec<_> = locked
        .iter_mut()
        .flat_map(|room| std::mem::take(&mut room.answer.leaving))
        .collect();
    let mut applied = Vec::with_capacity(locked.len());
    for room in locked {
        let number = &keys[room.index].number;
        let (arriving, rest) = leavers.into_iter().partition(|r| {
            moved_to
                .iter()
                .any(|(id, to)| *id == r.id && keys[*to].number == *number)
        });
        leavers = rest;
        let (done, done_rx) = oneshot::channel();
        let _ = room.decision.send(Commit {
            event: event.clone(),
            arriving,
            applied: done,
        });
        applied.push(done_rx);
    }
    for done in applied {
        done.await.map_err(|_| EngineError::ShuttingDown)?;
    }
    Ok(())
}

/// Journals `event`, which creates `created` under `idempotency` (a key of `hotel_id`),
/// and waits until it is durable. The key is recorded before the event is queued, as a
/// booking's room does (`crate::room`), so a snapshot that sees the reservation sees its
/// key; and dropped again if the journal refuses the event.
pub(crate) async fn durable_with_key(
    directory: &Directory,
    journal: &Journal<Event>,
    event: &Arc<Event>,
    hotel_id: &HotelId,
    idempotency: Option<&IdempotencyRecord>,
    created: &Reservation,
) -> Result<(), EngineError> {
    let slot = idempotency.map(|i| (hotel_id.clone(), i.key.clone()));
    if let (Some(slot), Some(i)) = (&slot, idempotency) {
        let entry = IdempotencyEntry {
            fingerprint: i.fingerprint,
            reservation_id: created.id,
            created_at: created.created_at,
        };
        directory.keys(slot).finished.insert(slot.clone(), entry);
    }
    let result = durable(journal, event).await;
    if let (Err(_), Some(slot)) = (&result, &slot) {
        let mut keys = directory.keys(slot);
        if keys.finished.get(slot).map(|e| e.reservation_id) == Some(created.id) {
            keys.finished.remove(slot);
        }
    }
    result
}

/// Journals `event` and waits until it is durable.
pub(crate) async fn durable(
    journal: &Journal<Event>,
    event: &Arc<Event>,
) -> Result<(), EngineError> {
    let acked = match journal.append(Event::clone(event)) {
        Ok(ack) => ack
            .await
            .unwrap_or(Err(innkeep_persistence::JournalError::Closed)),
        Err(e) => Err(e),
    };
    acked.map(drop).map_err(journal_error)
}

/// What a modification to rearrange for: the reservation, where it is, what it becomes
/// (priced from its version `priced_version`), the caller's `If-Match`, and the instant.
pub(crate) struct ModifyJob<'a> {
    pub id: ReservationId,
    pub from: &'a RoomKey,
    pub modification: &'a Modification,
    pub priced_version: u64,
    pub if_match: Option<u64>,
    pub now: Timestamp,
}

/// Modifies a reservation into a room of its new type that other reservations of the type
/// leave for it (no sellable stay refused), in one [`Event::ModifyRearranged`]; or answers
/// `sold_out` (every night of the new stay has a free room, so with no nights listed) when
/// no plan of at most [`innkeep_engine::rearrange::MAX_MOVES`] moves frees one.
///
/// The caller is the modification saga: it holds [`Directory::gate`] (shared) and found no
/// room with the whole new stay free. The reservation's old nights count as free for it:
/// it leaves them. Its room is locked with the others, so it cannot change meanwhile; a
/// version other than the priced one is `version_mismatch`.
pub(crate) async fn modify(
    directory: &Arc<Directory>,
    rooms: &Rooms,
    journal: &Journal<Event>,
    job: ModifyJob<'_>,
) -> Result<Reservation, EngineError> {
    let ModifyJob {
        id,
        from,
        modification: m,
        priced_version,
        if_match,
        now,
    } = job;
    let (arrival, departure) = (m.stay.arrival(), m.stay.departure());
    let hotel_id = &from.hotel_id;
    let today = read(&directory.catalog)
        .hotel(hotel_id)?
        .time_zone
        .today(now);
    let window = Window::around(arrival, departure, today);
    // The new type's rooms to plan over, and the reservation's own room (among them when of
    // that type; else only to take the reservation out of).
    let mut keys: Vec<RoomKey> = directory
        .rooms_with_most_free_nights(hotel_id, &m.room_type, &m.stay, MAX_ROOMS_READ)
        .into_iter()
        .map(|number| RoomKey {
            hotel_id: hotel_id.clone(),
            number,
        })
        .collect();
    let candidates = keys.len();
    let source = match keys.iter().position(|k| k == from) {
        Some(i) => i,
        None => {
            keys.push(from.clone());
            keys.len() - 1
        }
    };
    let without_it = |held: &mut Vec<Vec<Held>>| {
        for room in held.iter_mut() {
            room.retain(|h| h.id != id);
        }
    };
    for _ in 0..ATTEMPTS {
        let mut held = read_rooms(rooms, &keys, window).await?;
        without_it(&mut held);
        let Some(plan) = plan(&held[..candidates], arrival, departure) else {
            metrics::counter!(METRIC_REARRANGEMENTS, "outcome" => "modify_no_plan").increment(1);
            return Err(DomainError::SoldOutOn(Vec::new()).into());
        };
        let touched = plan
            .moves
            .iter()
            .flat_map(|mv| [mv.from_room, mv.to_room])
            .chain([plan.room, source])
            .collect();
        // The reservation itself is answered by its room too (its version is checked), and
        // handed to the room it goes to.
        let leaving: Vec<(ReservationId, usize)> = plan
            .moves
            .iter()
            .map(|mv| (mv.id, mv.from_room))
            .chain([(id, source)])
            .collect();
        let locked = lock(rooms, &keys, touched, &leaving, window).await?;
        let mut now_held = held;
        for room in &locked {
            now_held[room.index()].clone_from(&room.answer.holdings);
        }
        without_it(&mut now_held);
        if !fits(&now_held[..candidates], &plan, arrival, departure) {
            metrics::counter!(METRIC_REARRANGEMENTS, "outcome" => "modify_replanned").increment(1);
            continue;
        }
        let current = locked
            .iter()
            .flat_map(|room| &room.answer.leaving)
            .find(|r| r.id == id)
            .ok_or(DomainError::NotFound("reservation"))?;
        current.check_version(if_match)?;
        current.check_version(Some(priced_version))?;
        let mut relocations = Vec::with_capacity(plan.moves.len());
        for mv in &plan.moves {
            let stay = locked
                .iter()
                .flat_map(|room| &room.answer.leaving)
                .find(|r| r.id == mv.id)
                .map(|r| r.stay)
                .ok_or(DomainError::NotFound("reservation"))?;
            relocations.push(Relocation {
                id: mv.id,
                from: keys[mv.from_room].number.clone(),
                to: keys[mv.to_room].number.clone(),
                stay,
            });
        }
        let to = keys[plan.room].number.clone();
        let modified = modified_into(id, from, &to, m, now);
        let event = Arc::new(Event::ModifyRearranged {
            moves: relocations,
            modified: Box::new(modified),
        });
        durable(journal, &event).await?;
        // Durable: the locator names the new rooms, then every locked room applies its part.
        let mut moved_to: Vec<(ReservationId, usize)> =
            plan.moves.iter().map(|mv| (mv.id, mv.to_room)).collect();
        if plan.room != source {
            moved_to.push((id, plan.room));
        }
        {
            let hosted = rooms.read();
            for (moved, room) in &moved_to {
                if let Some(h) = hosted.get(&keys[*room]) {
                    directory.set_location(*moved, h.number);
                }
            }
        }
        commit(locked, &keys, &moved_to, &event).await?;
        metrics::counter!(METRIC_REARRANGEMENTS, "outcome" => "modified").increment(1);
        let after = rooms
            .ask(&keys[plan.room], GetReservation(id))?
            .await
            .map_err(|_| EngineError::ShuttingDown)??;
        return Ok(Reservation::clone(&after));
    }
    metrics::counter!(METRIC_REARRANGEMENTS, "outcome" => "modify_gave_up").increment(1);
    Err(DomainError::SoldOutOn(Vec::new()).into())
}
