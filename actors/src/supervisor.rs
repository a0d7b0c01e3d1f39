//! OrderSupervisor: setup commands, the booking saga, idempotency keys and hold expiry.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use innkeep_engine::jiff::{SignedDuration, Timestamp};
use innkeep_engine::state::{check_idempotency, new_reservation, IdempotencyMap};
use innkeep_engine::{
    Action, BookRequest, DomainError, Event, HotelId, IdempotencyEntry, IdempotencyKey,
    IdempotencyRecord, Reservation, ReservationId, RoomKey, RoomNumber, RoomState, StayLimits,
    Upsert, ValidationError,
};
use innkeep_persistence::Journal;
use tokio::sync::oneshot;

use crate::api::{BookInput, EngineError};
use crate::payments::PaymentCreated;
use crate::room::{
    journal_error, BeginMove, ChangeReservation, FinishMove, GetReservation, HoldEnded, MoveIn,
    MoveOutcome, NightAudit, Reserve, Retype, RoomActor, ROOM_MAILBOX,
};
use crate::shared::{read, write, Shared};

/// Outcome handed to every caller waiting on one idempotency key.
type BookResult = Result<Reservation, EngineError>;

/// An idempotency key whose first booking is still running.
#[derive(Debug)]
struct InFlight {
    /// The request's fingerprint: a different one is `idempotency_key_reused`.
    fingerprint: u64,
    /// Retries that arrived meanwhile; they get the first request's outcome.
    waiters: Vec<oneshot::Sender<BookResult>>,
}

/// The supervisor.
#[derive(Debug)]
pub struct OrderSupervisor {
    /// Read model and room registry.
    shared: Arc<Shared>,
    /// Where setup events go.
    journal: Journal<Event>,
    /// Arbiters hosting room actors, used round-robin for new rooms.
    arbiters: Vec<ArbiterHandle>,
    /// Next arbiter for a new room.
    next_arbiter: usize,
    /// Finished keys (replays within 24 h answer with their reservation).
    idempotency: IdempotencyMap,
    /// Keys whose first booking is running.
    in_flight: HashMap<(HotelId, IdempotencyKey), InFlight>,
    /// Unpaid holds by expiry instant, so the tick finds the due ones without a scan.
    holds: BTreeSet<(Timestamp, ReservationId)>,
    /// Every unpaid hold: its expiry (to find it in `holds`) and its creator. An entry
    /// leaves when its room reports [`HoldEnded`].
    pending: HashMap<ReservationId, PendingHold>,
    /// Open holds per creator (API key), bookings still running included, so
    /// `max_holds_per_creator` is exact even under concurrent bookings by one key.
    holds_by_creator: HashMap<String, usize>,
    /// This actor's own address, handed to the rooms it starts so they can report
    /// [`HoldEnded`].
    me: Recipient<HoldEnded>,
    /// The payment supervisor: each new reservation's charge is created from here, once
    /// the booking is durable, so a caller that gave up cannot leave it uncharged.
    payments: Recipient<PaymentCreated>,
    /// Hold length, expiry tick, stay rules.
    policy: BookingPolicy,
    /// Where the next booking starts looking among its type's rooms.
    cursor: usize,
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
    /// Itself, handed to rooms so they report holds that ended.
    pub me: Recipient<HoldEnded>,
    /// The payment supervisor, told about each new reservation.
    pub payments: Recipient<PaymentCreated>,
}

/// How often lapsed idempotency keys are dropped from memory.
const IDEMPOTENCY_PRUNE_EVERY: Duration = Duration::from_secs(60);

/// How often a hotel's night audit runs again for the same audit date: a reservation
/// confirmed after the audit ran (a long hold paid late) becomes a no-show within this
/// instead of a day late.
const AUDIT_RECHECK_EVERY: Duration = Duration::from_secs(15 * 60);

/// Rooms one round of the saga asks at most before looking at the index again.
const CANDIDATES_PER_ROUND: usize = 16;

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
        arbiters: Vec<ArbiterHandle>,
        idempotency: IdempotencyMap,
        pending: HashMap<ReservationId, PendingHold>,
        policy: BookingPolicy,
        peers: Peers,
    ) -> Self {
        let Peers { me, payments } = peers;
        let holds = pending.iter().map(|(id, p)| (p.expires_at, *id)).collect();
        let mut holds_by_creator: HashMap<String, usize> = HashMap::new();
        for p in pending.values() {
            if let Some(c) = &p.created_by {
                *holds_by_creator.entry(c.clone()).or_default() += 1;
            }
        }
        metrics::gauge!(METRIC_HOLDS_OPEN).set(pending.len() as f64);
        Self {
            pending,
            holds_by_creator,
            me,
            payments,
            shared,
            journal,
            arbiters,
            next_arbiter: 0,
            idempotency,
            in_flight: HashMap::new(),
            holds,
            policy,
            cursor: 0,
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
                                .cloned()
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
    pub(crate) fn spawn_room(&mut self, state: RoomState) -> Addr<RoomActor> {
        spawn_room_on(
            &self.arbiters,
            &mut self.next_arbiter,
            state,
            self.journal.clone(),
            self.shared.clone(),
            self.me.clone(),
        )
    }

    /// Gives back one of `creator`'s hold slots.
    fn release_slot(&mut self, creator: &str) {
        if let Some(n) = self.holds_by_creator.get_mut(creator) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.holds_by_creator.remove(creator);
            }
        }
    }

    /// Open holds of `creator` (running bookings included).
    pub(crate) fn holds_of(&self, creator: &str) -> usize {
        self.holds_by_creator.get(creator).copied().unwrap_or(0)
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
            self.idempotency.retain(|_, e| {
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
        let addr = read(&self.shared.rooms).get(&key).cloned()?;
        Some((addr, today))
    }

    fn finish_booking(
        &mut self,
        slot: Option<(HotelId, IdempotencyKey)>,
        creator: Option<String>,
        result: &BookResult,
    ) {
        match result {
            Ok(r) => {
                write(&self.shared.locator).insert(
                    r.id,
                    RoomKey {
                        hotel_id: r.hotel_id.clone(),
                        number: r.room.clone(),
                    },
                );
                self.holds.insert((r.hold_expires_at, r.id));
                // The creator's slot, taken when the booking started, now belongs to
                // this hold until its room reports it ended.
                self.pending.insert(
                    r.id,
                    PendingHold {
                        expires_at: r.hold_expires_at,
                        created_by: creator,
                    },
                );
                metrics::gauge!(METRIC_HOLDS_OPEN).set(self.pending.len() as f64);
                // Best effort: the hold timer governs whether it is ever paid.
                self.payments.do_send(PaymentCreated {
                    id: r.id,
                    out_trade_no: r.payment.out_trade_no.to_string(),
                    amount: r.payment.amount,
                    created_at: r.created_at,
                });
            }
            Err(_) => {
                if let Some(c) = creator {
                    self.release_slot(&c);
                }
            }
        }
        let Some(slot) = slot else { return };
        if let Some(flight) = self.in_flight.remove(&slot) {
            if let Ok(r) = result {
                self.idempotency.insert(
                    slot,
                    IdempotencyEntry {
                        fingerprint: flight.fingerprint,
                        reservation_id: r.id,
                        created_at: r.created_at,
                    },
                );
            }
            for w in flight.waiters {
                let _ = w.send(result.clone());
            }
        }
    }
}

/// Starts a room actor on the next arbiter of `arbiters` (round-robin).
pub(crate) fn spawn_room_on(
    arbiters: &[ArbiterHandle],
    next: &mut usize,
    state: RoomState,
    journal: Journal<Event>,
    shared: Arc<Shared>,
    hold_ended: Recipient<HoldEnded>,
) -> Addr<RoomActor> {
    let arbiter = &arbiters[*next % arbiters.len()];
    *next = next.wrapping_add(1);
    RoomActor::start_in_arbiter(arbiter, move |_ctx| {
        RoomActor::new(state, journal, shared, hold_ended)
    })
}

impl Handler<HoldEnded> for OrderSupervisor {
    type Result = ();

    fn handle(&mut self, msg: HoldEnded, _ctx: &mut Self::Context) {
        let Some(hold) = self.pending.remove(&msg.id) else {
            return;
        };
        self.holds.remove(&(hold.expires_at, msg.id));
        if let Some(c) = &hold.created_by {
            self.release_slot(c);
        }
        metrics::gauge!(METRIC_HOLDS_OPEN).set(self.pending.len() as f64);
    }
}

/// How many open holds a creator has (for tests and operators).
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub(crate) struct HoldsOf(pub String);

impl Handler<HoldsOf> for OrderSupervisor {
    type Result = usize;

    fn handle(&mut self, msg: HoldsOf, _ctx: &mut Self::Context) -> usize {
        self.holds_of(&msg.0)
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
                    let addr = act.spawn_room(RoomState::new(key.clone(), room_type));
                    write(&act.shared.rooms).insert(key, addr);
                });
                Box::pin(async move { done.await.map(|()| upsert) })
            }
            Upsert::Updated => {
                // The room decides whether it may change type (it knows its reservations)
                // and journals the change itself, in order with its bookings.
                let Some(addr) = read(&self.shared.rooms).get(&key).cloned() else {
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

/// Book a room: the saga.
#[derive(Message, Debug)]
#[rtype(result = "Result<Reservation, EngineError>")]
pub(crate) struct Book {
    pub input: BookInput,
    pub idempotency_key: Option<IdempotencyKey>,
    pub id: ReservationId,
    pub now: Timestamp,
    /// The caller's span (carries the request id).
    pub span: tracing::Span,
}

impl Handler<Book> for OrderSupervisor {
    type Result = ResponseActFuture<Self, BookResult>;

    fn handle(&mut self, msg: Book, _ctx: &mut Self::Context) -> Self::Result {
        let Book {
            input,
            idempotency_key,
            id,
            now,
            span,
        } = msg;
        let span = tracing::debug_span!(parent: &span, "book", reservation = %id);
        let _entered = span.enter();
        let creator = input.created_by.clone();
        // 1. Validate and price against the catalog.
        let priced = {
            let catalog = read(&self.shared.catalog);
            price_request(&catalog, input, now, self.policy.limits)
        };
        let (req, total) = match priced {
            Ok(p) => p,
            Err(e) => return Box::pin(fut::ready(Err(e.into()))),
        };
        let fingerprint = req.fingerprint_by(creator.as_deref());
        // 2. Idempotency: replay, reuse, join a running first attempt, or start one.
        let slot = idempotency_key.map(|k| (req.hotel_id.clone(), k));
        if let Some(slot) = &slot {
            match check_idempotency(&self.idempotency, &slot.0, &slot.1, fingerprint, now) {
                Err(e) => return Box::pin(fut::ready(Err(e.into()))),
                Ok(Some(existing)) => {
                    let lookup = self.room_of(&existing, now).map(|(addr, _)| addr);
                    return Box::pin(
                        async move {
                            let addr = lookup.ok_or(DomainError::NotFound("reservation"))?;
                            addr.send(crate::room::GetReservation(existing))
                                .await
                                .map_err(|_| EngineError::ShuttingDown)?
                                .map_err(EngineError::from)
                        }
                        .into_actor(self),
                    );
                }
                Ok(None) => {}
            }
            if let Some(flight) = self.in_flight.get_mut(slot) {
                if flight.fingerprint != fingerprint {
                    return Box::pin(fut::ready(Err(DomainError::IdempotencyKeyReused.into())));
                }
                let (tx, rx) = oneshot::channel();
                flight.waiters.push(tx);
                return Box::pin(
                    async move { rx.await.unwrap_or(Err(EngineError::ShuttingDown)) }
                        .into_actor(self),
                );
            }
        }
        // The creator's hold cap: a slot is taken now (so concurrent bookings by one key
        // cannot overshoot) and given back if the booking fails.
        if let Some(c) = &creator {
            let limit = self.policy.max_holds_per_creator;
            if self.holds_of(c) >= limit {
                tracing::debug!(creator = %c, limit, "hold cap reached");
                return Box::pin(fut::ready(Err(EngineError::TooManyHolds { limit })));
            }
            *self.holds_by_creator.entry(c.clone()).or_default() += 1;
        }
        if let Some(slot) = &slot {
            self.in_flight.insert(
                slot.clone(),
                InFlight {
                    fingerprint,
                    waiters: Vec::new(),
                },
            );
        }
        // 3. Candidates from the index; each room decides for itself. Each booking starts
        // at the next position of a per-engine cursor, so concurrent bookings of one type
        // ask different rooms first instead of all racing for the lowest free number.
        let idempotency = slot.as_ref().map(|(_, key)| IdempotencyRecord {
            key: key.clone(),
            fingerprint,
        });
        let hold = self.policy.hold;
        let start = self.cursor;
        self.cursor = self.cursor.wrapping_add(1);
        let shared = self.shared.clone();
        let saga_creator = creator.clone();
        let saga_span = span.clone();
        let saga = async move {
            let mut tried: HashSet<RoomNumber> = HashSet::new();
            // Each round asks up to CANDIDATES_PER_ROUND rooms not yet tried; every round
            // that does not book adds at least one room to `tried`, so this ends.
            loop {
                let round: Vec<(Addr<RoomActor>, RoomNumber)> = {
                    let numbers = match &req.room {
                        Some(n) if tried.contains(n) => Vec::new(),
                        Some(n) => vec![n.clone()],
                        None => read(&shared.index).candidates_from(
                            &req.hotel_id,
                            &req.room_type,
                            &req.stay,
                            start,
                            CANDIDATES_PER_ROUND,
                            |n| tried.contains(n),
                        ),
                    };
                    let rooms = read(&shared.rooms);
                    numbers
                        .into_iter()
                        .filter_map(|n| {
                            let key = RoomKey {
                                hotel_id: req.hotel_id.clone(),
                                number: n.clone(),
                            };
                            rooms.get(&key).cloned().map(|a| (a, n))
                        })
                        .collect()
                };
                if round.is_empty() {
                    return Err(DomainError::SoldOut.into());
                }
                for (addr, number) in round {
                    let mut reservation =
                        new_reservation(&req, number.clone(), total, id, now, hold);
                    reservation.created_by = saga_creator.clone();
                    let answer = addr
                        .send(Reserve {
                            reservation,
                            idempotency: idempotency.clone(),
                            span: saga_span.clone(),
                        })
                        .await
                        .map_err(|_| EngineError::ShuttingDown)?;
                    match answer {
                        // Lost the race for this room (or it changed type): try another.
                        Err(EngineError::Domain(DomainError::SoldOut)) => {
                            tried.insert(number);
                        }
                        other => return other,
                    }
                }
            }
        };
        Box::pin(saga.into_actor(self).map(move |result, act, _| {
            act.finish_booking(slot, creator, &result);
            result
        }))
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
                (rooms.get(&from).cloned(), rooms.get(&to).cloned())
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
