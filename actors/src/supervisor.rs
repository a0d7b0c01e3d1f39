//! OrderSupervisor: setup commands, the booking saga, idempotency keys and hold expiry.

use std::collections::{BTreeSet, HashMap};
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
use crate::room::{journal_error, ChangeReservation, Reserve, Retype, RoomActor, ROOM_MAILBOX};
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
    /// Hold length, expiry tick, stay rules.
    policy: BookingPolicy,
}

/// The supervisor's rules for bookings and holds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BookingPolicy {
    /// How long an unpaid reservation holds its nights.
    pub hold: SignedDuration,
    /// How often to look for due holds.
    pub expiry_tick: Duration,
    /// Stay rules.
    pub limits: StayLimits,
}

impl OrderSupervisor {
    pub(crate) fn new(
        shared: Arc<Shared>,
        journal: Journal<Event>,
        arbiters: Vec<ArbiterHandle>,
        idempotency: IdempotencyMap,
        holds: BTreeSet<(Timestamp, ReservationId)>,
        policy: BookingPolicy,
    ) -> Self {
        Self {
            shared,
            journal,
            arbiters,
            next_arbiter: 0,
            idempotency,
            in_flight: HashMap::new(),
            holds,
            policy,
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
        let now = Timestamp::now();
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
            };
            ctx.spawn(addr.send(msg).into_actor(self).map(move |res, act, _| {
                // Anything but a decision (the journal was full or failing, or the room is
                // stopping) leaves the hold live: try again on a later tick.
                let retry = match res {
                    Ok(Ok(_)) | Ok(Err(EngineError::Domain(_))) => false,
                    Ok(Err(_)) | Err(_) => true,
                };
                if retry {
                    act.holds.insert((at, id));
                }
            }));
        }
        let now = Timestamp::now();
        self.idempotency.retain(|_, e| {
            now.duration_since(e.created_at) < innkeep_engine::state::IDEMPOTENCY_WINDOW
        });
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

    fn finish_booking(&mut self, slot: Option<(HotelId, IdempotencyKey)>, result: &BookResult) {
        if let Ok(r) = result {
            write(&self.shared.locator).insert(
                r.id,
                RoomKey {
                    hotel_id: r.hotel_id.clone(),
                    number: r.room.clone(),
                },
            );
            self.holds.insert((r.hold_expires_at, r.id));
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
) -> Addr<RoomActor> {
    let arbiter = &arbiters[*next % arbiters.len()];
    *next = next.wrapping_add(1);
    RoomActor::start_in_arbiter(arbiter, move |_ctx| RoomActor::new(state, journal, shared))
}

impl Actor for OrderSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(ROOM_MAILBOX);
        // Holds that lapsed while the server was down expire now, not a tick later.
        self.expire_due(ctx);
        ctx.run_interval(self.policy.expiry_tick, |act, ctx| act.expire_due(ctx));
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
}

impl Handler<Book> for OrderSupervisor {
    type Result = ResponseActFuture<Self, BookResult>;

    fn handle(&mut self, msg: Book, _ctx: &mut Self::Context) -> Self::Result {
        let Book {
            input,
            idempotency_key,
            id,
            now,
        } = msg;
        // 1. Validate and price against the catalog.
        let priced = {
            let catalog = read(&self.shared.catalog);
            price_request(&catalog, input, now, self.policy.limits)
        };
        let (req, total) = match priced {
            Ok(p) => p,
            Err(e) => return Box::pin(fut::ready(Err(e.into()))),
        };
        let fingerprint = req.fingerprint();
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
            self.in_flight.insert(
                slot.clone(),
                InFlight {
                    fingerprint,
                    waiters: Vec::new(),
                },
            );
        }
        // 3. Candidates from the index; each room decides for itself.
        let candidates: Vec<(Addr<RoomActor>, RoomNumber)> = {
            let numbers = match &req.room {
                Some(n) => vec![n.clone()],
                None => {
                    read(&self.shared.index).candidates(&req.hotel_id, &req.room_type, &req.stay)
                }
            };
            let rooms = read(&self.shared.rooms);
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
        let idempotency = slot.as_ref().map(|(_, key)| IdempotencyRecord {
            key: key.clone(),
            fingerprint,
        });
        let hold = self.policy.hold;
        let saga = async move {
            for (addr, number) in candidates {
                let reservation = new_reservation(&req, number, total, id, now, hold);
                let answer = addr
                    .send(Reserve {
                        reservation,
                        idempotency: idempotency.clone(),
                    })
                    .await
                    .map_err(|_| EngineError::ShuttingDown)?;
                match answer {
                    // Lost the race for this room (or it changed type): try the next one.
                    Err(EngineError::Domain(DomainError::SoldOut)) => continue,
                    other => return other,
                }
            }
            Err(DomainError::SoldOut.into())
        };
        Box::pin(saga.into_actor(self).map(move |result, act, _| {
            act.finish_booking(slot, &result);
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
