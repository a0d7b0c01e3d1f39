//! The booking saga: validate and price, admit (idempotency key, hold cap), then ask the
//! type's free rooms one after another until one takes the stay.
//!
//! It runs as a task on a shard, not inside an actor: the rooms decide (each is the
//! authority for its nights) and the [`Desk`] holds the little shared bookkeeping a booking
//! needs before and after. In the server a booking goes shard → room (the same shard's
//! whenever one is free) → journal → room → shard.
//!
//! A spawned task, not the caller's future: a caller that gives up (a dropped HTTP
//! request) must not stop a booking half-way, or its idempotency key would stay "in
//! flight" and its creator's hold slot taken. And a task on a *shard*, never on a caller's
//! own runtime: the shards live as long as the engine, so a saga cannot die half-way
//! while the engine runs (an embedder stopping its runtime stops only its wait), and the
//! desk needs no guard to settle a saga that vanished.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, MutexGuard, PoisonError};

use actix::dev::SendError;
use innkeep_engine::jiff::{SignedDuration, Timestamp};
use innkeep_engine::state::{check_idempotency, new_reservation, IdempotencyMap};
use innkeep_engine::{
    BookRequest, DomainError, HotelId, IdempotencyKey, IdempotencyRecord, Money, Reservation,
    ReservationId, RoomKey, RoomNumber,
};
use tokio::sync::oneshot;

use crate::api::{BookInput, EngineError};
use crate::room::{GetReservation, Reserve};
use crate::shared::{read, Shared};
use crate::supervisor::{price_request, BookingPolicy};

/// Outcome handed to every caller waiting on one idempotency key.
pub(crate) type BookResult = Result<Reservation, EngineError>;

/// Rooms one round of the saga asks at most before looking at the index again.
const CANDIDATES_PER_ROUND: usize = 16;

/// An idempotency key whose first booking is still running.
#[derive(Debug)]
struct InFlight {
    /// The request's fingerprint: a different one is `idempotency_key_reused`.
    fingerprint: u64,
    /// Retries that arrived meanwhile; they get the first request's outcome.
    waiters: Vec<oneshot::Sender<BookResult>>,
}

/// What bookings share besides the rooms: idempotency keys and hold counts. Behind one
/// mutex in [`Shared`], held for a few map operations and never across an await.
#[derive(Debug, Default)]
pub(crate) struct Desk {
    /// Finished keys (replays within 24 h answer with their reservation). Lapsed ones are
    /// dropped by the supervisor's tick.
    pub idempotency: IdempotencyMap,
    /// Keys whose first booking is running.
    in_flight: HashMap<(HotelId, IdempotencyKey), InFlight>,
    /// Open holds per creator (API key), bookings still running included, so
    /// `max_holds_per_creator` is exact even under concurrent bookings by one key. A slot
    /// is taken when a booking starts, kept by the hold it made, and given back when the
    /// booking fails or the supervisor hears the hold ended.
    holds_by_creator: HashMap<String, usize>,
    /// Where the next booking starts looking among its type's rooms, so concurrent
    /// bookings of one type ask different rooms first.
    cursor: usize,
}

impl Desk {
    /// A desk for a recovered state: its idempotency keys, and every open hold's creator.
    pub(crate) fn new<'a>(
        idempotency: IdempotencyMap,
        hold_creators: impl Iterator<Item = &'a String>,
    ) -> Self {
        let mut holds_by_creator: HashMap<String, usize> = HashMap::new();
        for c in hold_creators {
            *holds_by_creator.entry(c.clone()).or_default() += 1;
        }
        Self {
            idempotency,
            in_flight: HashMap::new(),
            holds_by_creator,
            cursor: 0,
        }
    }

    /// Open holds of `creator` (running bookings included).
    pub(crate) fn holds_of(&self, creator: &str) -> usize {
        self.holds_by_creator.get(creator).copied().unwrap_or(0)
    }

    /// Gives back one of `creator`'s hold slots.
    pub(crate) fn release_slot(&mut self, creator: &str) {
        if let Some(n) = self.holds_by_creator.get_mut(creator) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.holds_by_creator.remove(creator);
            }
        }
    }
}

/// Locks the desk; see [`crate::shared::read`] on poisoning (each critical section is a
/// few map operations that leave the maps consistent).
pub(crate) fn desk(shared: &Shared) -> MutexGuard<'_, Desk> {
    shared.desk.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The reservation one booking would make, shared by every room it asks. The room that
/// takes it builds the [`Reservation`] itself ([`Draft::reservation_in`]), so the
/// reservation's long-lived allocations come from the thread that keeps them (the room's
/// arbiter) rather than the caller's, whose allocator arena churns with request buffers:
/// measured with `examples/memory`, building it in the caller's task cost ≈ 700 B of
/// resident memory per reservation in fragmentation.
#[derive(Debug)]
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
}

impl Draft {
    /// The reservation, assigned to `room`.
    pub(crate) fn reservation_in(&self, room: RoomNumber) -> Reservation {
        let mut r = new_reservation(
            &self.request,
            room,
            self.total,
            self.id,
            self.now,
            self.hold,
        );
        r.created_by = self.created_by.clone();
        r
    }
}

/// One booking to run.
#[derive(Debug)]
pub(crate) struct BookingJob {
    /// What the caller asked for.
    pub input: BookInput,
    /// Its `Idempotency-Key`, if any.
    pub idempotency_key: Option<IdempotencyKey>,
    /// The id a new reservation gets.
    pub id: ReservationId,
    /// The instant of the request.
    pub now: Timestamp,
    /// The caller's span (carries the request id).
    pub span: tracing::Span,
}

/// How admission went.
enum Admitted {
    /// Refused (key reused with another request, hold cap reached).
    Refused(EngineError),
    /// The key already made this reservation: answer with it as it is now.
    Replay(ReservationId),
    /// A retry joined the running first attempt of its key.
    Wait(oneshot::Receiver<BookResult>),
    /// Go ahead, starting at this cursor position.
    Go { start: usize },
}

/// Runs one booking to its end.
pub(crate) async fn run(shared: Arc<Shared>, policy: BookingPolicy, job: BookingJob) -> BookResult {
    let BookingJob {
        input,
        idempotency_key,
        id,
        now,
        span,
    } = job;
    let span = tracing::debug_span!(parent: &span, "book", reservation = %id);
    let creator = input.created_by.clone();
    // 1. Validate and price against the catalog.
    let priced = {
        let catalog = read(&shared.catalog);
        price_request(&catalog, input, now, policy.limits)
    };
    let (req, total) = priced?;
    let fingerprint = req.fingerprint_by(creator.as_deref());
    // 2. Idempotency (replay, reuse, join a running first attempt, or start one) and the
    // creator's hold cap, decided together under the desk's lock.
    let slot = idempotency_key.map(|k| (req.hotel_id.clone(), k));
    let admitted = {
        let mut desk = desk(&shared);
        admit(
            &mut desk,
            slot.as_ref(),
            fingerprint,
            creator.as_deref(),
            policy,
            now,
        )
    };
    let start = match admitted {
        Admitted::Replay(existing) => return replay(&shared, existing).await,
        Admitted::Refused(e) => return Err(e),
        Admitted::Wait(rx) => return rx.await.unwrap_or(Err(EngineError::ShuttingDown)),
        Admitted::Go { start } => start,
    };
    // From here on the desk holds this booking's key and slot until `finish` below. The
    // task runs on a shard, so it is only dropped half-way when the engine stops, and then
    // the desk goes with it.
    // 3. Candidates from the index; each room decides for itself.
    let idempotency = slot.as_ref().map(|(_, key)| IdempotencyRecord {
        key: key.clone(),
        fingerprint,
    });
    let draft = Arc::new(Draft {
        request: req,
        total,
        id,
        now,
        hold: policy.hold,
        created_by: creator.clone(),
    });
    let req = &draft.request;
    let result = async {
        let mut tried: HashSet<RoomNumber> = HashSet::new();
        // Each round asks up to CANDIDATES_PER_ROUND rooms not yet tried; every round that
        // does not book adds at least one room to `tried`, so this ends.
        loop {
            let round = candidates(&shared, req, start, &tried);
            if round.is_empty() {
                return Err(DomainError::SoldOut.into());
            }
            for number in round {
                let (reply, answer) = oneshot::channel();
                let msg = Reserve {
                    draft: draft.clone(),
                    idempotency: idempotency.clone(),
                    span: span.clone(),
                    reply,
                };
                // Sent from under the registry's read lock instead of cloning the address:
                // an `Addr` clone and drop are two contended atomic operations per room.
                // The engine's in-flight bound is below the mailbox capacity, so a full
                // mailbox means the engine is past its limit: answer overloaded.
                let sent = {
                    let key = RoomKey {
                        hotel_id: req.hotel_id.clone(),
                        number: number.clone(),
                    };
                    read(&shared.rooms)
                        .get(&key)
                        .map(|hosted| hosted.addr.try_send(msg))
                };
                match sent {
                    Some(Ok(())) => {}
                    // Not a room (any more): nothing to ask.
                    None => {
                        tried.insert(number);
                        continue;
                    }
                    Some(Err(SendError::Full(_))) => return Err(EngineError::Overloaded),
                    Some(Err(SendError::Closed(_))) => return Err(EngineError::ShuttingDown),
                }
                let answer = answer.await.unwrap_or(Err(EngineError::ShuttingDown));
                match answer {
                    // Lost the race for this room (or it changed type): try another.
                    Err(EngineError::Domain(DomainError::SoldOut)) => {
                        tried.insert(number);
                    }
                    other => return other,
                }
            }
        }
    }
    .await;
    // 4. The room already wrote the locator and the key and told the supervisor about the
    // new hold (before answering, so the hold is known before anyone can act on it).
    finish(&mut desk(&shared), slot, creator, &result);
    result
}

fn admit(
    desk: &mut Desk,
    slot: Option<&(HotelId, IdempotencyKey)>,
    fingerprint: u64,
    creator: Option<&str>,
    policy: BookingPolicy,
    now: Timestamp,
) -> Admitted {
    if let Some(slot) = slot {
        match check_idempotency(&desk.idempotency, &slot.0, &slot.1, fingerprint, now) {
            Err(e) => return Admitted::Refused(e.into()),
            Ok(Some(existing)) => return Admitted::Replay(existing),
            Ok(None) => {}
        }
        if let Some(flight) = desk.in_flight.get_mut(slot) {
            if flight.fingerprint != fingerprint {
                return Admitted::Refused(DomainError::IdempotencyKeyReused.into());
            }
            let (tx, rx) = oneshot::channel();
            flight.waiters.push(tx);
            return Admitted::Wait(rx);
        }
    }
    // The creator's hold cap: a slot is taken now (so concurrent bookings by one key
    // cannot overshoot) and given back if the booking fails.
    if let Some(c) = creator {
        let limit = policy.max_holds_per_creator;
        if desk.holds_of(c) >= limit {
            tracing::debug!(creator = %c, limit, "hold cap reached");
            return Admitted::Refused(EngineError::TooManyHolds { limit });
        }
        *desk.holds_by_creator.entry(c.to_owned()).or_default() += 1;
    }
    if let Some(slot) = slot {
        desk.in_flight.insert(
            slot.clone(),
            InFlight {
                fingerprint,
                waiters: Vec::new(),
            },
        );
    }
    let start = desk.cursor;
    desk.cursor = desk.cursor.wrapping_add(1);
    Admitted::Go { start }
}

/// Up to [`CANDIDATES_PER_ROUND`] rooms not yet tried that the index shows free for the
/// whole stay (or the one room asked for). Local first: on a shard, the rooms hosted by that
/// shard come before any other, so the booking crosses to another shard's thread only when
/// none of its own can take the stay.
fn candidates(
    shared: &Shared,
    req: &innkeep_engine::BookRequest,
    start: usize,
    tried: &HashSet<RoomNumber>,
) -> Vec<RoomNumber> {
    let find = |skip: &dyn Fn(&RoomNumber) -> bool| {
        read(&shared.index).candidates_from(
            &req.hotel_id,
            &req.room_type,
            &req.stay,
            start,
            CANDIDATES_PER_ROUND,
            skip,
        )
    };
    match &req.room {
        Some(n) if tried.contains(n) => Vec::new(),
        Some(n) => vec![n.clone()],
        None => {
            if let Some(here) = crate::shards::current() {
                let rooms = read(&shared.rooms);
                let elsewhere = |n: &RoomNumber| {
                    let key = RoomKey {
                        hotel_id: req.hotel_id.clone(),
                        number: n.clone(),
                    };
                    rooms.get(&key).is_none_or(|h| h.shard != here)
                };
                let local = find(&|n| tried.contains(n) || elsewhere(n));
                if !local.is_empty() {
                    return local;
                }
            }
            find(&|n| tried.contains(n))
        }
    }
}

/// An idempotent replay: the reservation the key made, as it is now.
async fn replay(shared: &Shared, existing: ReservationId) -> BookResult {
    let key = read(&shared.locator).get(&existing).cloned();
    let addr = key.and_then(|k| read(&shared.rooms).get(&k).map(|h| h.addr.clone()));
    let addr = addr.ok_or(DomainError::NotFound("reservation"))?;
    addr.send(GetReservation(existing))
        .await
        .map_err(|_| EngineError::ShuttingDown)?
        .map_err(EngineError::from)
}

/// Settles the desk after a booking: a failed one gives its creator's slot back; a key's
/// outcome is handed to the retries that waited for it (a success was recorded under the
/// key by its room already).
fn finish(
    desk: &mut Desk,
    slot: Option<(HotelId, IdempotencyKey)>,
    creator: Option<String>,
    result: &BookResult,
) {
    if result.is_err() {
        if let Some(c) = creator {
            desk.release_slot(&c);
        }
    }
    let Some(slot) = slot else { return };
    if let Some(flight) = desk.in_flight.remove(&slot) {
        for w in flight.waiters {
            let _ = w.send(result.clone());
        }
    }
}
