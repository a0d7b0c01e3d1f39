//! OrderSupervisor: setup commands, hold expiry and charges, room moves, the night audit.
//! Bookings do not pass through it ([`crate::booking`]); rooms tell it about holds.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use innkeep_engine::jiff::{SignedDuration, Timestamp};
use innkeep_engine::state::IdempotencyMap;
use innkeep_engine::{
    Action, BookRequest, DomainError, Event, HotelId, Reservation, ReservationId, RoomKey,
    RoomNumber, RoomState, RoomTypeCode, StayLimits, Upsert, ValidationError,
};
use innkeep_persistence::Journal;
use tokio::sync::oneshot;

use crate::api::{BookInput, EngineError};
use crate::booking::{desk, Desk};
use crate::payments::PaymentCreated;
use crate::room::{
    journal_error, BeginMove, ChangeReservation, FinishMove, GetReservation, HoldEnded, HoldPeers,
    HoldStarted, MoveIn, MoveOutcome, NightAudit, Retype, RoomActor, ROOM_MAILBOX,
};
use crate::shared::{read, write, Hosted, Shared};

/// The supervisor.
#[derive(Debug)]
pub struct OrderSupervisor {
    /// Read model and room registry.
    shared: Arc<Shared>,
    /// Where setup events go.
    journal: Journal<Event>,
    /// The arbiters hosting room actors, and which one a new room goes to.
    placement: Placement,
    /// Unpaid holds by expiry instant, so the tick finds the due ones without a scan.
    holds: BTreeSet<(Timestamp, ReservationId)>,
    /// Every unpaid hold: its expiry (to find it in `holds`) and its creator. An entry
    /// leaves when its room reports [`HoldEnded`].
    pending: HashMap<ReservationId, PendingHold>,
    /// This actor's own address, handed to the rooms it starts so they can report
    /// [`HoldStarted`] and [`HoldEnded`].
    me: HoldPeers,
    /// The payment supervisor: each new reservation's charge is created from here, once
    /// the booking is durable, so a caller that gave up cannot leave it uncharged.
    payments: Recipient<PaymentCreated>,
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

/// Who the supervisor tells about what it decided.
#[derive(Debug)]
pub(crate) struct Peers {
    /// Itself, handed to rooms so they report holds that started and ended.
    pub me: HoldPeers,
    /// The payment supervisor, told about each new reservation.
    pub payments: Recipient<PaymentCreated>,
}

/// How often lapsed idempotency keys are dropped from memory.
const IDEMPOTENCY_PRUNE_EVERY: Duration = Duration::from_secs(60);

/// How often a hotel's night audit runs again for the same audit date: a reservation
/// confirmed after the audit ran (a long hold paid late) becomes a no-show within this
/// instead of a day late.
const AUDIT_RECHECK_EVERY: Duration = Duration::from_secs(15 * 60);

/// One unpaid hold, as the supervisor tracks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PendingHold {
    /// When it lapses.
    pub expires_at: Timestamp,
    /// Who created it (counted against their cap).
    pub created_by: Option<String>,
}

/// Name of the counter of holds the supervisor expired.
pub const METRIC_HOLDS_EXPIRED: &str = "innkeep_holds_expired_total";

/// Name of the gauge of unpaid holds currently open.
pub const METRIC_HOLDS_OPEN: &str = "innkeep_holds_open";

/// The supervisor's rules for bookings and holds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BookingPolicy {
    /// How long an unpaid reservation holds its nights.
    pub hold: SignedDuration,
    /// How often to look for due holds.
    pub expiry_tick: Duration,
    /// Stay rules.
    pub limits: StayLimits,
    /// Most open (unpaid) holds one creator may have.
    pub max_holds_per_creator: usize,
    /// Hotel-local time of the night audit.
    pub night_audit_time: innkeep_engine::jiff::civil::Time,
}

/// Name of the counter of reservations the night audit marked `no_show`.
pub const METRIC_NO_SHOWS: &str = "innkeep_no_shows_total";

impl OrderSupervisor {
    /// `pending` is every unpaid hold in the recovered state; the per-creator counts and
    /// the expiry queue are rebuilt from it, so the hold cap survives restarts.
    pub(crate) fn new(
        shared: Arc<Shared>,
        journal: Journal<Event>,
        placement: Placement,
        idempotency: IdempotencyMap,
        pending: HashMap<ReservationId, PendingHold>,
        policy: BookingPolicy,
        peers: Peers,
    ) -> Self {
        let Peers { me, payments } = peers;
        let holds = pending.iter().map(|(id, p)| (p.expires_at, *id)).collect();
        *desk(&shared) = Desk::new(
            idempotency,
            pending.values().filter_map(|p| p.created_by.as_ref()),
        );
        metrics::gauge!(METRIC_HOLDS_OPEN).set(pending.len() as f64);
        Self {
            pending,
            me,
            payments,
            shared,
            journal,
            placement,
            holds,
            policy,
            next_prune: std::time::Instant::now(),
            audited: HashMap::new(),
            auditing: HashSet::new(),
        }
    }

    /// Starts the night audit of every hotel whose audit date moved on since its last
    /// finished audit (or whose last audit is [`AUDIT_RECHECK_EVERY`] old): each room
    /// marks its due no-shows. An audit that did not finish everywhere (the journal
    /// refused, the engine is stopping) runs again next tick; rooms skip what they already
    /// marked.
    fn audit_due(&mut self, ctx: &mut Context<Self>) {
        let now = self.shared.clock.now();
        let due: Vec<(
            HotelId,
            innkeep_engine::jiff::civil::Date,
            Vec<Addr<RoomActor>>,
        )> = {
            let catalog = read(&self.shared.catalog);
            let rooms = read(&self.shared.rooms);
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
                    let addrs = hotel
                        .rooms
                        .keys()
                        .filter_map(|n| {
                            rooms
                                .get(&RoomKey {
                                    hotel_id: id.clone(),
                                    number: n.clone(),
                                })
                                .map(|h| h.addr.clone())
                        })
                        .collect();
                    Some((id.clone(), date, addrs))
                })
                .collect()
        };
        for (hotel, audit_date, addrs) in due {
            self.auditing.insert(hotel.clone());
            let work = futures_util::future::join_all(
                addrs.iter().map(|a| a.send(NightAudit { audit_date, now })),
            );
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

    /// Starts a room actor on the next arbiter.
    pub(crate) fn spawn_room(&mut self, state: RoomState) -> Hosted {
        self.placement.spawn_room(
            state,
            self.journal.clone(),
            self.shared.clone(),
            self.me.clone(),
        )
    }

    /// Journals a catalog event, blocking the supervisor until it is durable, then applies
    /// it to the catalog. Setup is rare; blocking keeps decide → persist → apply atomic.
    fn persist_setup(
        &mut self,
        event: Event,
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
                    write(&act.shared.catalog).apply(&event);
                    after(act);
                    Ok(())
                }
                Ok(Err(e)) => Err(journal_error(e)),
                Err(_) => Err(EngineError::ShuttingDown),
            };
            let _ = tx.send(result);
        }));
        Box::pin(async move { rx.await.unwrap_or(Err(EngineError::ShuttingDown)) })
    }

    fn expire_due(&mut self, ctx: &mut Context<Self>) {
        let now = self.shared.clock.now();
        while let Some(&(at, id)) = self.holds.first() {
            if at > now {
                break;
            }
            self.holds.pop_first();
            let Some((addr, today)) = self.room_of(&id, now) else {
                continue;
            };
            let msg = ChangeReservation {
                id,
                action: Action::Expire,
                if_match: None,
                now,
                today,
                span: tracing::debug_span!("expire_hold", reservation = %id),
            };
            ctx.spawn(addr.send(msg).into_actor(self).map(move |res, act, _| {
                // Anything but a decision (the journal was full or failing, or the room is
                // stopping) leaves the hold live: try again on a later tick.
                let retry = match res {
                    Ok(Ok(_)) => {
                        metrics::counter!(METRIC_HOLDS_EXPIRED).increment(1);
                        false
                    }
                    Ok(Err(EngineError::Domain(_))) => false,
                    Ok(Err(_)) | Err(_) => true,
                };
                if retry {
                    act.holds.insert((at, id));
                }
            }));
        }
        // Lapsed idempotency keys are dropped now and then, not every tick: it is a scan
        // of every key, and a lapsed key answers as absent anyway (`check_idempotency`).
        if self.next_prune <= std::time::Instant::now() {
            self.next_prune = std::time::Instant::now() + IDEMPOTENCY_PRUNE_EVERY;
            desk(&self.shared).idempotency.retain(|_, e| {
                now.duration_since(e.created_at) < innkeep_engine::state::IDEMPOTENCY_WINDOW
            });
        }
    }

    fn room_of(
        &self,
        id: &ReservationId,
        now: Timestamp,
    ) -> Option<(Addr<RoomActor>, innkeep_engine::jiff::civil::Date)> {
        let key = read(&self.shared.locator).get(id).cloned()?;
        let today = read(&self.shared.catalog)
            .hotel(&key.hotel_id)
            .ok()?
            .time_zone
            .today(now);
        let addr = read(&self.shared.rooms).get(&key)?.addr.clone();
        Some((addr, today))
    }
}

/// Where new room actors go: round-robin over the arbiters *per room type*, each type
/// starting one arbiter further on, so every type's rooms are spread over every arbiter.
/// Plain round-robin over all rooms puts all of a type's rooms on one arbiter whenever a
/// hotel is set up room by room with types alternating in a period that shares a factor
/// with the number of arbiters (T0, T1, T2, T3, T0, … on two arbiters): traffic on that
/// type would then run on one core. A room keeps its arbiter when it changes type.
#[derive(Debug)]
pub(crate) struct Placement {
    /// The room arbiters (at least one).
    arbiters: Vec<ArbiterHandle>,
    /// Per hotel and room type, the arbiter its next room goes to (mod their number).
    next: HashMap<(HotelId, RoomTypeCode), usize>,
}

impl Placement {
    /// Placement over `arbiters`, which must not be empty.
    pub(crate) fn new(arbiters: Vec<ArbiterHandle>) -> Self {
        assert!(!arbiters.is_empty(), "rooms need at least one arbiter");
        Self {
            arbiters,
            next: HashMap::new(),
        }
    }

    /// The index of the arbiter for a new room of type `room_type` in `hotel_id`.
    fn pick(&mut self, hotel_id: &HotelId, room_type: &RoomTypeCode) -> usize {
        let types_seen = self.next.len();
        let next = self
            .next
            .entry((hotel_id.clone(), room_type.clone()))
            .or_insert(types_seen);
        let pick = *next % self.arbiters.len();
        *next = next.wrapping_add(1);
        pick
    }

    /// Starts a room actor on the arbiter picked for its type.
    pub(crate) fn spawn_room(
        &mut self,
        state: RoomState,
        journal: Journal<Event>,
        shared: Arc<Shared>,
        holds: HoldPeers,
    ) -> Hosted {
        let shard = self.pick(&state.key.hotel_id, &state.room_type);
        let addr = RoomActor::start_in_arbiter(&self.arbiters[shard], move |_ctx| {
            RoomActor::new(state, journal, shared, holds)
        });
        Hosted { addr, shard }
    }
}

impl Handler<HoldEnded> for OrderSupervisor {
    type Result = ();

    fn handle(&mut self, msg: HoldEnded, _ctx: &mut Self::Context) {
        let Some(hold) = self.pending.remove(&msg.id) else {
            return;
        };
        self.holds.remove(&(hold.expires_at, msg.id));
        if let Some(c) = &hold.created_by {
            desk(&self.shared).release_slot(c);
        }
        metrics::gauge!(METRIC_HOLDS_OPEN).set(self.pending.len() as f64);
    }
}

impl Handler<HoldStarted> for OrderSupervisor {
    type Result = ();

    /// A new hold is durable: its expiry is queued, its creator's slot (taken when the
    /// booking started) now belongs to it, and its charge is created.
    fn handle(&mut self, msg: HoldStarted, _ctx: &mut Self::Context) {
        let HoldStarted {
            id,
            expires_at,
            created_by,
            amount,
            created_at,
        } = msg;
        self.holds.insert((expires_at, id));
        self.pending.insert(
            id,
            PendingHold {
                expires_at,
                created_by,
            },
        );
        metrics::gauge!(METRIC_HOLDS_OPEN).set(self.pending.len() as f64);
        // Best effort: the hold timer governs whether it is ever paid.
        self.payments.do_send(PaymentCreated {
            id,
            out_trade_no: id.out_trade_no().to_string(),
            amount,
            created_at,
        });
    }
}

/// How many open holds a creator has (for tests and operators).
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub(crate) struct HoldsOf(pub String);

impl Handler<HoldsOf> for OrderSupervisor {
    type Result = usize;

    fn handle(&mut self, msg: HoldsOf, _ctx: &mut Self::Context) -> usize {
        desk(&self.shared).holds_of(&msg.0)
    }
}

impl Actor for OrderSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(ROOM_MAILBOX);
        // Holds that lapsed while the server was down expire now, not a tick later; the
        // same goes for night audits missed meanwhile.
        self.expire_due(ctx);
        self.audit_due(ctx);
        ctx.run_interval(self.policy.expiry_tick, |act, ctx| {
            act.expire_due(ctx);
            act.audit_due(ctx);
        });
    }
}

/// Create or update a hotel.
#[derive(Message, Debug)]
#[rtype(result = "Result<Upsert, EngineError>")]
pub(crate) struct PutHotel {
    pub id: HotelId,
    pub name: String,
    pub time_zone: String,
    pub currency: String,
}

impl Handler<PutHotel> for OrderSupervisor {
    type Result = ResponseFuture<Result<Upsert, EngineError>>;

    fn handle(&mut self, msg: PutHotel, ctx: &mut Self::Context) -> Self::Result {
        let decided =
            read(&self.shared.catalog).put_hotel(msg.id, &msg.name, &msg.time_zone, &msg.currency);
        match decided {
            Err(e) => Box::pin(async move { Err(e.into()) }),
            Ok((event, upsert)) => {
                let done = self.persist_setup(event, ctx, |_| {});
                Box::pin(async move { done.await.map(|()| upsert) })
            }
        }
    }
}

/// Create or update a room type.
#[derive(Message, Debug)]
#[rtype(result = "Result<Upsert, EngineError>")]
pub(crate) struct PutRoomType {
    pub hotel_id: HotelId,
    pub code: innkeep_engine::RoomTypeCode,
    pub name: String,
    pub capacity: u16,
    pub base_rate_minor: i64,
}

impl Handler<PutRoomType> for OrderSupervisor {
    type Result = ResponseFuture<Result<Upsert, EngineError>>;

    fn handle(&mut self, msg: PutRoomType, ctx: &mut Self::Context) -> Self::Result {
        let decided = read(&self.shared.catalog).put_room_type(
            &msg.hotel_id,
            msg.code,
            &msg.name,
            msg.capacity,
            msg.base_rate_minor,
        );
        match decided {
            Err(e) => Box::pin(async move { Err(e.into()) }),
            Ok((event, upsert)) => {
                let done = self.persist_setup(event, ctx, |_| {});
                Box::pin(async move { done.await.map(|()| upsert) })
            }
        }
    }
}

/// Set a nightly rate override.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), EngineError>")]
pub(crate) struct PutRate {
    pub hotel_id: HotelId,
    pub code: innkeep_engine::RoomTypeCode,
    pub from: innkeep_engine::jiff::civil::Date,
    pub to: innkeep_engine::jiff::civil::Date,
    pub amount_minor: i64,
}

impl Handler<PutRate> for OrderSupervisor {
    type Result = ResponseFuture<Result<(), EngineError>>;

    fn handle(&mut self, msg: PutRate, ctx: &mut Self::Context) -> Self::Result {
        let decided = read(&self.shared.catalog).put_rate(
            &msg.hotel_id,
            &msg.code,
            msg.from,
            msg.to,
            msg.amount_minor,
        );
        match decided {
            Err(e) => Box::pin(async move { Err(e.into()) }),
            Ok(event) => self.persist_setup(event, ctx, |_| {}),
        }
    }
}

/// Create a room or change its type.
#[derive(Message, Debug)]
#[rtype(result = "Result<Upsert, EngineError>")]
pub(crate) struct PutRoom {
    pub hotel_id: HotelId,
    pub number: RoomNumber,
    pub room_type: innkeep_engine::RoomTypeCode,
}

impl Handler<PutRoom> for OrderSupervisor {
    type Result = ResponseFuture<Result<Upsert, EngineError>>;

    fn handle(&mut self, msg: PutRoom, ctx: &mut Self::Context) -> Self::Result {
        let decided = read(&self.shared.catalog).put_room(
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
                let done = self.persist_setup(event, ctx, move |act| {
                    write(&act.shared.index).put_room(&key, &room_type);
                    let hosted = act.spawn_room(RoomState::new(key.clone(), room_type));
                    write(&act.shared.rooms).insert(key, hosted);
                });
                Box::pin(async move { done.await.map(|()| upsert) })
            }
            Upsert::Updated => {
                // The room decides whether it may change type (it knows its reservations)
                // and journals the change itself, in order with its bookings.
                let Some(addr) = read(&self.shared.rooms).get(&key).map(|h| h.addr.clone()) else {
                    return Box::pin(async move { Err(DomainError::NotFound("room").into()) });
                };
                let shared = self.shared.clone();
                let room_type = msg.room_type;
                Box::pin(async move {
                    addr.send(Retype {
                        event: event.clone(),
                        room_type,
                    })
                    .await
                    .map_err(|_| EngineError::ShuttingDown)??;
                    write(&shared.catalog).apply(&event);
                    Ok(upsert)
                })
            }
        }
    }
}

/// Validates a booking against the catalog and prices it.
pub(crate) fn price_request(
    catalog: &innkeep_engine::Catalog,
    input: BookInput,
    now: Timestamp,
    limits: innkeep_engine::StayLimits,
) -> Result<(BookRequest, innkeep_engine::Money), DomainError> {
    let (hotel, rt) = catalog.room_type(&input.hotel_id, &input.room_type)?;
    let stay = innkeep_engine::Stay::parse(
        input.arrival,
        input.departure,
        hotel.time_zone.today(now),
        limits,
    )?;
    if input.guests == 0 || input.guests > rt.capacity {
        return Err(ValidationError::new(
            "guests",
            format!("must be 1 to {} for this room type", rt.capacity),
        )
        .into());
    }
    if let Some(n) = &input.room {
        match hotel.rooms.get(n) {
            None => return Err(DomainError::NotFound("room")),
            Some(t) if *t != input.room_type => {
                return Err(ValidationError::new(
                    "room",
                    format!("room {n} is not of type {}", input.room_type),
                )
                .into())
            }
            Some(_) => {}
        }
    }
    let quote = innkeep_engine::catalog::price(hotel, rt, &stay);
    Ok((
        BookRequest {
            hotel_id: input.hotel_id,
            room_type: input.room_type,
            stay,
            guests: input.guests,
            guest: input.guest,
            room: input.room,
        },
        quote.total,
    ))
}

/// Move a reservation to another room of its hotel.
#[derive(Message, Debug)]
#[rtype(result = "Result<Reservation, EngineError>")]
pub(crate) struct MoveReservation {
    /// Which reservation.
    pub id: ReservationId,
    /// The room it goes to.
    pub to: RoomNumber,
    /// `If-Match` version.
    pub if_match: Option<u64>,
    /// The request's span.
    pub span: tracing::Span,
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
        let shared = self.shared.clone();
        Box::pin(async move {
            let now = shared.clock.now();
            let from = read(&shared.locator)
                .get(&msg.id)
                .cloned()
                .ok_or(DomainError::NotFound("reservation"))?;
            let today = read(&shared.catalog)
                .hotel(&from.hotel_id)?
                .time_zone
                .today(now);
            let to = RoomKey {
                hotel_id: from.hotel_id.clone(),
                number: msg.to,
            };
            let (source, target) = {
                let rooms = read(&shared.rooms);
                let addr = |key: &RoomKey| rooms.get(key).map(|h| h.addr.clone());
                (addr(&from), addr(&to))
            };
            let source = source.ok_or(DomainError::NotFound("reservation"))?;
            let target = target.ok_or(DomainError::NotFound("room"))?;
            if to == from {
                // Already there (a retried move): answer as a move would, changing nothing.
                let r = source
                    .send(GetReservation(msg.id))
                    .await
                    .map_err(|_| EngineError::ShuttingDown)??;
                r.check_version(msg.if_match)?;
                return Ok(r);
            }
            let (reservation, first_night) = source
                .send(BeginMove {
                    id: msg.id,
                    to: to.clone(),
                    if_match: msg.if_match,
                    today,
                })
                .await
                .map_err(|_| EngineError::ShuttingDown)??;
            let moved = target
                .send(MoveIn {
                    reservation,
                    from,
                    first_night,
                    now,
                    span: msg.span,
                })
                .await
                .map_err(|_| EngineError::ShuttingDown)
                .and_then(|r| r);
            let outcome = match &moved {
                Ok((_, event)) => {
                    write(&shared.locator).insert(msg.id, to);
                    MoveOutcome::Committed(event.clone())
                }
                Err(_) => MoveOutcome::Aborted,
            };
            // Awaited, so the old room's nights are free by the time the caller hears of the
            // move. The engine's in-flight bound keeps mailboxes below capacity, so this
            // send never parks; it fails only when the engine is stopping, and then the
            // journal, not this lock, says where the reservation is.
            let _ = source
                .send(FinishMove {
                    id: msg.id,
                    outcome,
                })
                .await;
            moved.map(|(r, _)| r)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use innkeep_engine::{HotelId, RoomTypeCode};

    use super::Placement;

    /// Rooms set up in type order T0, T1, T2, T3, T0, … over two arbiters: every type gets
    /// half its rooms on each arbiter (plain round-robin put all of T0 and T2 on one).
    #[test]
    fn every_room_type_is_spread_over_every_arbiter() {
        let _system = actix::System::new();
        let arbiters: Vec<_> = (0..2).map(|_| actix::Arbiter::new()).collect();
        let mut placement = Placement::new(arbiters.iter().map(|a| a.handle()).collect());
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
        for a in arbiters {
            a.stop();
        }
    }
}
