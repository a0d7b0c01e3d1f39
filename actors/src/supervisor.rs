//! OrderSupervisor: setup commands, room moves, the night audit. Bookings do not pass
//! through it (`crate::booking`), and neither do holds: each shard's
//! `crate::holds::HoldKeeper` keeps its rooms' holds.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use innkeep_engine::{
    DomainError, Event, HotelId, Reservation, RoomKey, RoomState, RoomTypeCode, Upsert,
};
use innkeep_persistence::Journal;
use tokio::sync::oneshot;

use crate::config::BookingPolicy;
use crate::directory::{read, write, Directory};
use crate::protocol::{
    BeginModify, BeginMove, DecideSetup, EngineError, FinishMove, GateGuard, GetReservation,
    ModifyIn, ModifyReservation, ModifyStep, MoveIn, MoveOutcome, MoveReservation, NightAudit,
    NoShowsDue, PutHotel, PutRate, PutRoom, PutRoomType, Retype,
};
use crate::room::{journal_error, Hosted, RoomPeers, Rooms, ROOM_MAILBOX};

/// The supervisor.
#[derive(Debug)]
pub struct OrderSupervisor {
    /// The catalog it writes, the locator it updates on moves, the idempotency keys it
    /// prunes.
    directory: Arc<Directory>,
    /// The rooms: the audit and moves ask them.
    rooms: Arc<Rooms>,
    /// Where setup events go.
    journal: Journal<Event>,
    /// The arbiters hosting room actors, and which one a new room goes to.
    placement: Placement,
    /// Hold length, expiry tick, stay rules.
    policy: BookingPolicy,
    /// When lapsed idempotency keys are next dropped.
    next_prune: std::time::Instant,
    /// Per hotel, the last audit date whose night audit every room finished, and when.
    /// Empty at start-up, so audits missed while the server was down run at once.
    audited: HashMap<HotelId, (innkeep_engine::jiff::civil::Date, std::time::Instant)>,
    /// Hotels whose night audit is running (one at a time per hotel).
    auditing: HashSet<HotelId>,
}

/// How often lapsed idempotency keys are dropped from memory.
const IDEMPOTENCY_PRUNE_EVERY: Duration = Duration::from_secs(60);

/// How often a hotel's night audit runs again for the same audit date: a reservation
/// confirmed after the audit ran (a long hold paid late) becomes a no-show within this
/// instead of a day late.
const AUDIT_RECHECK_EVERY: Duration = Duration::from_secs(15 * 60);

/// Name of the counter of reservations the night audit marked `no_show`.
pub const METRIC_NO_SHOWS: &str = "innkeep_no_shows_total";

impl OrderSupervisor {
    pub(crate) fn new(
        directory: Arc<Directory>,
        rooms: Arc<Rooms>,
        journal: Journal<Event>,
        placement: Placement,
        policy: BookingPolicy,
    ) -> Self {
        Self {
            directory,
            rooms,
            journal,
            placement,
            policy,
            next_prune: std::time::Instant::now(),
            audited: HashMap::new(),
            auditing: HashSet::new(),
        }
    }

    /// Starts the night audit of every hotel whose audit date moved on since its last
    /// finished audit (or whose last audit is [`AUDIT_RECHECK_EVERY`] old): each room
    /// with a no-show due (asked with [`NoShowsDue`], which a parked room answers without
    /// waking) marks its due no-shows. An audit that did not finish everywhere (the journal
    /// refused, the engine is stopping) runs again next tick; rooms skip what they already
    /// marked.
    fn audit_due(&mut self, ctx: &mut Context<Self>) {
        let now = self.directory.clock.now();
        /// A hotel whose audit is due: its audit date, and its rooms.
        type Due = (HotelId, innkeep_engine::jiff::civil::Date, Vec<RoomKey>);
        let due: Vec<Due> = {
            let catalog = read(&self.directory.catalog);
            catalog
                .hotels
                .iter()
                .filter(|(id, _)| !self.auditing.contains(*id))
                .filter_map(|(id, hotel)| {
                    let date = hotel
                        .time_zone
                        .audit_date(now, self.policy.night_audit_time);
                    let fresh = |(done, at): &(_, std::time::Instant)| {
                        *done >= date && at.elapsed() < AUDIT_RECHECK_EVERY
                    };
                    if self.audited.get(id).is_some_and(fresh) {
                        return None;
                    }
                    let keys = hotel
                        .rooms
                        .keys()
                        .map(|n| RoomKey {
                            hotel_id: id.clone(),
                            number: n.clone(),
                        })
                        .collect();
                    Some((id.clone(), date, keys))
                })
                .collect()
        };
        for (hotel, audit_date, keys) in due {
            self.auditing.insert(hotel.clone());
            // Each room is asked whether it has a no-show due (a parked room answers
            // without waking), and only those that have are sent the audit.
            let rooms = self.rooms.clone();
            let work = async move {
                let asked = keys.iter().map(|key| {
                    let due = rooms.query(key, NoShowsDue { audit_date });
                    let rooms = &rooms;
                    async move {
                        match due.await {
                            Ok(false) => Ok(Ok(0)),
                            Ok(true) => match rooms.send(key, NightAudit { audit_date, now }) {
                                Some(audit) => audit.await,
                                None => Err(actix::MailboxError::Closed),
                            },
                            Err(e) => Err(e),
                        }
                    }
                });
                futures_util::future::join_all(asked).await
            };
            ctx.spawn(work.into_actor(self).map(move |answers, act, _| {
                act.auditing.remove(&hotel);
                let mut marked = 0;
                let mut finished = true;
                for a in answers {
                    match a {
                        Ok(Ok(n)) => marked += n,
                        _ => finished = false,
                    }
                }
                metrics::counter!(METRIC_NO_SHOWS).increment(marked as u64);
                if marked > 0 {
                    tracing::info!(hotel = %hotel, %audit_date, marked, "night audit: no-shows");
                }
                if finished {
                    act.audited
                        .insert(hotel, (audit_date, std::time::Instant::now()));
                }
            }));
        }
    }

    /// Journals a catalog event, blocking the supervisor until it is durable, then applies
    /// it to the catalog. Setup is rare; blocking keeps decide → persist → apply atomic.
    ///
    /// `gate` is the change's hold on the snapshot gate, released once it is applied.
    fn persist_setup(
        &mut self,
        event: Event,
        gate: GateGuard,
        ctx: &mut Context<Self>,
        after: impl FnOnce(&mut Self) + 'static,
    ) -> ResponseFuture<Result<(), EngineError>> {
        let ack = match self.journal.append(event.clone()) {
            Ok(ack) => ack,
            Err(e) => return Box::pin(async move { Err(journal_error(e)) }),
        };
        let (tx, rx) = oneshot::channel();
        ctx.wait(ack.into_actor(self).map(move |acked, act, _| {
            let result = match acked {
                Ok(Ok(_)) => {
                    write(&act.directory.catalog).apply(&event);
                    after(act);
                    Ok(())
                }
                Ok(Err(e)) => Err(journal_error(e)),
                Err(_) => Err(EngineError::ShuttingDown),
            };
            drop(gate);
            let _ = tx.send(result);
        }));
        Box::pin(async move { rx.await.unwrap_or(Err(EngineError::ShuttingDown)) })
    }

    /// Drops lapsed idempotency keys now and then.
    fn prune(&mut self) {
        let now = self.directory.clock.now();
        // Not every tick: it is a scan of every key, and a lapsed key answers as absent
        // anyway (`check_idempotency`).
        if self.next_prune <= std::time::Instant::now() {
            self.next_prune = std::time::Instant::now() + IDEMPOTENCY_PRUNE_EVERY;
            self.directory.prune_keys(|e| {
                now.duration_since(e.created_at) < innkeep_engine::state::IDEMPOTENCY_WINDOW
            });
        }
    }
}

/// Where new rooms go: round-robin over the shards *per room type*, each type starting
/// one shard further on, so every type's rooms are spread over every shard. Plain
/// round-robin over all rooms puts all of a type's rooms on one shard whenever a hotel is
/// set up room by room with types alternating in a period that shares a factor with the
/// number of shards (T0, T1, T2, T3, T0, … on two shards): traffic on that type would then
/// run on one core. A room keeps its shard when it changes type.
#[derive(Debug)]
pub(crate) struct Placement {
    /// Where a new room's nights are indexed (its shard's index).
    directory: Arc<Directory>,
    /// Where a new room is registered.
    rooms: Arc<Rooms>,
    /// Which shard the next room of each type goes to.
    spread: Spread,
}

/// Round-robin per room type over `count` shards.
#[derive(Debug)]
struct Spread {
    /// How many shards.
    count: usize,
    /// Per hotel and room type, the shard its next room goes to (mod `count`).
    next: HashMap<(HotelId, RoomTypeCode), usize>,
}

impl Spread {
    /// The index of the shard for a new room of type `room_type` in `hotel_id`.
    fn pick(&mut self, hotel_id: &HotelId, room_type: &RoomTypeCode) -> usize {
        let types_seen = self.next.len();
        let next = self
            .next
            .entry((hotel_id.clone(), room_type.clone()))
            .or_insert(types_seen);
        let pick = *next % self.count;
        *next = next.wrapping_add(1);
        pick
    }
}

impl Placement {
    /// Placement over `shards` (each an arbiter with its rooms' peers), which must not be
    /// empty; the registry learns them too (it starts parked rooms there).
    pub(crate) fn new(
        shards: Vec<(ArbiterHandle, Arc<RoomPeers>)>,
        directory: Arc<Directory>,
        rooms: Arc<Rooms>,
    ) -> Self {
        assert!(!shards.is_empty(), "rooms need at least one shard");
        let count = shards.len();
        rooms.set_hosts(shards);
        Self {
            spread: Spread {
                count,
                next: HashMap::new(),
            },
            directory,
            rooms,
        }
    }

    /// Places a room on the shard picked for its type, after entering its nights in that
    /// shard's index, and registers it, so a booking that starts once this returns finds
    /// it. The room is parked: its actor starts with its first message. Returns the shard.
    pub(crate) fn place_room(&mut self, state: RoomState, number: u32) -> usize {
        let key = state.key.clone();
        let shard = self.spread.pick(&key.hotel_id, &state.room_type);
        self.directory
            .index_room(shard, &key, &state.room_type, &state.unavailable_nights());
        self.rooms.insert(key, Hosted::parked(state, shard, number));
        shard
    }
}

impl Actor for OrderSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(ROOM_MAILBOX);
        // Night audits missed while the server was down run now, not a tick later.
        self.audit_due(ctx);
        ctx.run_interval(self.policy.expiry_tick, |act, ctx| {
            act.prune();
            act.audit_due(ctx);
        });
    }
}

impl Handler<PutHotel> for OrderSupervisor {
    type Result = ResponseFuture<Result<Upsert, EngineError>>;

    fn handle(&mut self, msg: PutHotel, ctx: &mut Self::Context) -> Self::Result {
        let decided = read(&self.directory.catalog).put_hotel(
            msg.id,
            &msg.name,
            &msg.time_zone,
            &msg.currency,
        );
        match decided {
            Err(e) => Box::pin(async move { Err(e.into()) }),
            Ok((event, upsert)) => {
                let done = self.persist_setup(event, msg.gate, ctx, |_| {});
                Box::pin(async move { done.await.map(|()| upsert) })
            }
        }
    }
}

impl Handler<PutRoomType> for OrderSupervisor {
    type Result = ResponseFuture<Result<Upsert, EngineError>>;

    fn handle(&mut self, msg: PutRoomType, ctx: &mut Self::Context) -> Self::Result {
        let decided = read(&self.directory.catalog).put_room_type(
            &msg.hotel_id,
            msg.code,
            &msg.name,
            msg.capacity,
            msg.base_rate_minor,
        );
        match decided {
            Err(e) => Box::pin(async move { Err(e.into()) }),
            Ok((event, upsert)) => {
                let done = self.persist_setup(event, msg.gate, ctx, |_| {});
                Box::pin(async move { done.await.map(|()| upsert) })
            }
        }
    }
}

impl Handler<PutRate> for OrderSupervisor {
    type Result = ResponseFuture<Result<(), EngineError>>;

    fn handle(&mut self, msg: PutRate, ctx: &mut Self::Context) -> Self::Result {
        let decided = read(&self.directory.catalog).put_rate(
            &msg.hotel_id,
            &msg.code,
            msg.from,
            msg.to,
            msg.amount_minor,
        );
        match decided {
            Err(e) => Box::pin(async move { Err(e.into()) }),
            Ok(event) => self.persist_setup(event, msg.gate, ctx, |_| {}),
        }
    }
}

impl Handler<DecideSetup> for OrderSupervisor {
    type Result = ResponseFuture<Result<Upsert, EngineError>>;

    fn handle(&mut self, msg: DecideSetup, ctx: &mut Self::Context) -> Self::Result {
        let decided = (msg.decide)(&read(&self.directory.catalog));
        match decided {
            Err(e) => Box::pin(async move { Err(e.into()) }),
            Ok((event, upsert)) => {
                let done = self.persist_setup(event, msg.gate, ctx, |_| {});
                Box::pin(async move { done.await.map(|()| upsert) })
            }
        }
    }
}

impl Handler<PutRoom> for OrderSupervisor {
    type Result = ResponseFuture<Result<Upsert, EngineError>>;

    fn handle(&mut self, msg: PutRoom, ctx: &mut Self::Context) -> Self::Result {
        let decided = read(&self.directory.catalog).put_room(
            &msg.hotel_id,
            msg.number.clone(),
            msg.room_type.clone(),
        );
        let (event, upsert) = match decided {
            Err(e) => return Box::pin(async move { Err(e.into()) }),
            Ok(d) => d,
        };
        let key = RoomKey {
            hotel_id: msg.hotel_id,
            number: msg.number,
        };
        match upsert {
            Upsert::Created => {
                let room_type = msg.room_type;
                let done = self.persist_setup(event, msg.gate, ctx, move |act| {
                    let number = act.directory.add_room(&key);
                    act.placement
                        .place_room(RoomState::new(key, room_type), number);
                });
                Box::pin(async move { done.await.map(|()| upsert) })
            }
            Upsert::Updated => {
                // The room decides whether it may change type (it knows its reservations)
                // and journals the change itself, in order with its bookings.
                let retype = Retype {
                    event: event.clone(),
                    room_type: msg.room_type,
                };
                let Some(asked) = self.rooms.send(&key, retype) else {
                    return Box::pin(async move { Err(DomainError::NotFound("room").into()) });
                };
                let directory = self.directory.clone();
                let gate = msg.gate;
                Box::pin(async move {
                    let _gate = gate;
                    asked.await.map_err(|_| EngineError::ShuttingDown)??;
                    write(&directory.catalog).apply(&event);
                    Ok(upsert)
                })
            }
        }
    }
}

impl Handler<MoveReservation> for OrderSupervisor {
    type Result = ResponseFuture<Result<Reservation, EngineError>>;

    /// The move saga. The room it leaves checks and locks the reservation; the room it
    /// goes to checks its nights, journals the one `ReservationMoved` event and takes the
    /// reservation once that is durable; then the locator points at the new room and the
    /// old room lets the reservation go. The journal holds the move or not, so after a
    /// crash both rooms agree. The saga runs here, not in the caller, so a caller that
    /// gives up cannot leave a reservation locked.
    fn handle(&mut self, msg: MoveReservation, _ctx: &mut Self::Context) -> Self::Result {
        let (directory, rooms) = (self.directory.clone(), self.rooms.clone());
        Box::pin(async move {
            // Until the old room let the reservation go, below.
            let _gate = &msg.gate;
            let mut relocated = false;
            loop {
                let before = directory.locate(&msg.id);
                let result: Result<Reservation, EngineError> = async {
                    let now = directory.clock.now();
                    let from = directory
                        .locate(&msg.id)
                        .ok_or(DomainError::NotFound("reservation"))?;
                    let today = read(&directory.catalog)
                        .hotel(&from.hotel_id)?
                        .time_zone
                        .today(now);
                    let to = RoomKey {
                        hotel_id: from.hotel_id.clone(),
                        number: msg.to.clone(),
                    };
                    rooms
                        .number(&from)
                        .ok_or(DomainError::NotFound("reservation"))?;
                    let target_number = rooms.number(&to).ok_or(DomainError::NotFound("room"))?;
                    if to == from {
                        // Already there (a retried move): answer as a move would, changing nothing.
                        let r = rooms
                            .ask(&from, GetReservation(msg.id))?
                            .await
                            .map_err(|_| EngineError::ShuttingDown)??;
                        r.check_version(msg.if_match)?;
                        return Ok(Arc::unwrap_or_clone(r));
                    }
                    let begin = BeginMove {
                        id: msg.id,
                        to: to.clone(),
                        if_match: msg.if_match,
                        today,
                    };
                    let (reservation, first_night) = rooms
                        .ask(&from, begin)?
                        .await
                        .map_err(|_| EngineError::ShuttingDown)??;
                    let move_in = MoveIn {
                        reservation,
                        from: from.clone(),
                        first_night,
                        now,
                        span: msg.span.clone(),
                    };
                    let moved = match rooms.ask(&to, move_in) {
                        Ok(asked) => asked
                            .await
                            .map_err(|_| EngineError::ShuttingDown)
                            .and_then(|r| r),
                        Err(e) => Err(e.into()),
                    };
                    let outcome = match &moved {
                        Ok((_, event)) => {
                            directory.set_location(msg.id, target_number);
                            MoveOutcome::Committed(event.clone())
                        }
                        Err(_) => MoveOutcome::Aborted,
                    };
                    // Awaited, so the old room's nights are free by the time the caller hears of the
                    // move. The engine's in-flight bound keeps mailboxes below capacity, so this
                    // send never parks; it fails only when the engine is stopping, and then the
                    // journal, not this lock, says where the reservation is. (The old room
                    // cannot have parked: it holds the reservation as moving.)
                    let finish = FinishMove {
                        id: msg.id,
                        outcome,
                    };
                    if let Ok(asked) = rooms.ask(&from, finish) {
                        let _ = asked.await;
                    }
                    moved.map(|(r, _)| r)
                }
                .await;
                match result {
                    // A rearrangement moved it between the locator's answer and its old
                    // room's: once more where the locator now points.
                    Err(EngineError::Domain(DomainError::NotFound("reservation")))
                        if !relocated && moved_since(&directory, &msg.id, before.as_ref()) =>
                    {
                        relocated = true;
                    }
                    other => return other,
                }
            }
        })
    }
}

/// Whether reservation `id` is now in another room than `before` (the locator's answer a
/// saga started from): a rearrangement moved it meanwhile.
fn moved_since(
    directory: &Directory,
    id: &innkeep_engine::ReservationId,
    before: Option<&RoomKey>,
) -> bool {
    directory.locate(id).is_some_and(|now| Some(&now) != before)
}

/// Times a modification is priced again when the reservation changed between its pricing
/// and the room's decision (a payment landing meanwhile); an `If-Match` never retries.
const MODIFY_ATTEMPTS: usize = 3;

impl Handler<ModifyReservation> for OrderSupervisor {
    type Result = ResponseFuture<Result<Reservation, EngineError>>;

    /// The modification saga. The catalog prices the change from the reservation as its
    /// room holds it; the room decides, and keeps it when the (same or its own) type and
    /// every new night allow — one event, done. Otherwise the room locks the reservation
    /// and the type's rooms with the whole new stay free are asked in turn; the first to
    /// take it journals the one event (modified and moved), then the old room lets it go,
    /// as in a move. When none can but every night has a room free, other reservations of
    /// the type may be moved to free one (`crate::rearranging::modify`, one event again).
    /// Nothing changes if no room can: `sold_out` with the nights no room of the type has
    /// free. Runs here, not in the caller, so a caller that gives up cannot leave a
    /// reservation locked.
    fn handle(&mut self, msg: ModifyReservation, _ctx: &mut Self::Context) -> Self::Result {
        let (directory, rooms) = (self.directory.clone(), self.rooms.clone());
        let journal = self.journal.clone();
        let limits = self.policy.limits;
        Box::pin(async move {
            let _gate = &msg.gate;
            let mut relocated = false;
            loop {
                let before = directory.locate(&msg.id);
                let span = msg.span.clone();
                let result: Result<Reservation, EngineError> = async {
                    let now = directory.clock.now();
                    let from = directory
                        .locate(&msg.id)
                        .ok_or(DomainError::NotFound("reservation"))?;
                    rooms
                        .number(&from)
                        .ok_or(DomainError::NotFound("reservation"))?;
                    let mut attempt = 0;
                    let (reservation, modification) = loop {
                        attempt += 1;
                        let current = rooms
                            .ask(&from, GetReservation(msg.id))?
                            .await
                            .map_err(|_| EngineError::ShuttingDown)??;
                        current.check_version(msg.if_match)?;
                        let modification = read(&directory.catalog)
                            .price_modification(&current, &msg.input, now, limits)?;
                        let begin = BeginModify {
                            id: msg.id,
                            modification: modification.clone(),
                            priced_version: current.version,
                            if_match: msg.if_match,
                            now,
                            span: span.clone(),
                        };
                        let step = rooms
                            .ask(&from, begin)?
                            .await
                            .map_err(|_| EngineError::ShuttingDown)?;
                        match step {
                            Ok(ModifyStep::Done(r)) => return Ok(r),
                            Ok(ModifyStep::Elsewhere(r)) => break (r, modification),
                            Err(EngineError::Domain(DomainError::VersionMismatch { .. }))
                                if msg.if_match.is_none() && attempt < MODIFY_ATTEMPTS =>
                            {
                                continue
                            }
                            Err(e) => return Err(e),
                        }
                    };
                    // Locked at `from`: ask the new type's rooms with the whole stay free, this
                    // shard's first, until one takes it.
                    let mut tried = HashSet::new();
                    tried.insert(from.number.clone());
                    let mut moved = Err(EngineError::from(DomainError::SoldOut));
                    'rounds: loop {
                        let round =
                            modify_candidates(&directory, &from.hotel_id, &modification, &tried);
                        if round.is_empty() {
                            break;
                        }
                        for number in round {
                            tried.insert(number.clone());
                            let key = RoomKey {
                                hotel_id: from.hotel_id.clone(),
                                number,
                            };
                            let Some(target_number) = rooms.number(&key) else {
                                continue;
                            };
                            let modify_in = ModifyIn {
                                reservation: reservation.clone(),
                                from: from.clone(),
                                modification: modification.clone(),
                                now,
                                span: span.clone(),
                            };
                            let answer = rooms
                                .ask(&key, modify_in)?
                                .await
                                .map_err(|_| EngineError::ShuttingDown)
                                .and_then(|r| r);
                            match answer {
                                Ok(done) => {
                                    directory.set_location(msg.id, target_number);
                                    moved = Ok(done);
                                    break 'rounds;
                                }
                                // Taken meanwhile: the next room.
                                Err(EngineError::Domain(
                                    DomainError::NightsSold(_) | DomainError::SoldOut,
                                )) => {}
                                Err(e) => {
                                    moved = Err(e);
                                    break 'rounds;
                                }
                            }
                        }
                    }
                    let outcome = match &moved {
                        Ok((_, event)) => MoveOutcome::Committed(event.clone()),
                        Err(_) => MoveOutcome::Aborted,
                    };
                    // Awaited, so the old room's nights are free by the time the caller hears.
                    let finish = FinishMove {
                        id: msg.id,
                        outcome,
                    };
                    if let Ok(asked) = rooms.ask(&from, finish) {
                        let _ = asked.await;
                    }
                    match moved {
                        Ok((r, _)) => Ok(r),
                        Err(EngineError::Domain(DomainError::SoldOut)) => {
                            // Its own nights would be free for it in its room, if of the new type.
                            let own_type = read(&directory.catalog)
                                .hotel(&from.hotel_id)
                                .ok()
                                .and_then(|h| h.rooms.get(&from.number).cloned());
                            let own: Vec<_> = if own_type.as_ref() == Some(&modification.room_type)
                            {
                                reservation.nights_here().collect()
                            } else {
                                Vec::new()
                            };
                            let short: Vec<_> =
                                short_nights(&directory, &from.hotel_id, &modification)
                                    .into_iter()
                                    .filter(|n| !own.contains(n))
                                    .collect();
                            if !short.is_empty()
                                || reservation.status == innkeep_engine::Status::CheckedIn
                            {
                                return Err(DomainError::SoldOutOn(short).into());
                            }
                            // Every night has a room free, no one room all of them: one
                            // may be freed by moving others (a guest in house stays put).
                            let job = crate::rearranging::ModifyJob {
                                id: msg.id,
                                from: &from,
                                modification: &modification,
                                priced_version: reservation.version,
                                if_match: msg.if_match,
                                now,
                            };
                            crate::rearranging::modify(&directory, &rooms, &journal, job).await
                        }
                        Err(e) => Err(e),
                    }
                }
                .await;
                match result {
                    // A rearrangement moved it between the locator's answer and its old
                    // room's: once more where the locator now points.
                    Err(EngineError::Domain(DomainError::NotFound("reservation")))
                        if !relocated && moved_since(&directory, &msg.id, before.as_ref()) =>
                    {
                        relocated = true;
                    }
                    other => return other,
                }
            }
        })
    }
}

/// Rooms of the modification's type, in `hotel_id`, free for its whole stay by the
/// indexes (this shard's first), not yet tried.
fn modify_candidates(
    directory: &Directory,
    hotel_id: &HotelId,
    m: &innkeep_engine::Modification,
    tried: &HashSet<innkeep_engine::RoomNumber>,
) -> Vec<innkeep_engine::RoomNumber> {
    let shards = directory.shards();
    let here = crate::shards::current().unwrap_or(0) % shards;
    for shard in (here..shards).chain(0..here) {
        let found = read(directory.index(shard)).candidates_from(
            hotel_id,
            &m.room_type,
            &m.stay,
            0,
            16,
            |n| tried.contains(n),
        );
        if !found.is_empty() {
            return found;
        }
    }
    Vec::new()
}

/// The nights of the modification's stay on which no room of its type is free, by the
/// indexes (empty when every night has a free room, but no one room has them all).
fn short_nights(
    directory: &Directory,
    hotel_id: &HotelId,
    m: &innkeep_engine::Modification,
) -> Vec<innkeep_engine::jiff::civil::Date> {
    m.stay
        .each_night()
        .filter(|night| {
            (0..directory.shards()).all(|shard| {
                read(directory.index(shard)).free_on(hotel_id, &m.room_type, *night) == 0
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use innkeep_engine::{HotelId, RoomTypeCode};

    use super::Spread;

    /// Rooms set up in type order T0, T1, T2, T3, T0, … over two shards: every type gets
    /// half its rooms on each shard (plain round-robin put all of T0 and T2 on one).
    #[test]
    fn every_room_type_is_spread_over_every_shard() {
        let mut placement = Spread {
            count: 2,
            next: HashMap::new(),
        };
        let hotels = [HotelId::parse("H1").unwrap(), HotelId::parse("H2").unwrap()];
        let types: Vec<RoomTypeCode> = (0..4)
            .map(|t| RoomTypeCode::parse(&format!("T{t}")).unwrap())
            .collect();
        let mut rooms: HashMap<(usize, usize, usize), usize> = HashMap::new();
        for (h, hotel) in hotels.iter().enumerate() {
            for n in 0..1000 {
                let t = n % types.len();
                let arbiter = placement.pick(hotel, &types[t]);
                *rooms.entry((h, t, arbiter)).or_default() += 1;
            }
        }
        for h in 0..hotels.len() {
            for t in 0..types.len() {
                for arbiter in 0..2 {
                    assert_eq!(
                        rooms.get(&(h, t, arbiter)),
                        Some(&125),
                        "{h} T{t} {arbiter}"
                    );
                }
            }
        }
    }
}
