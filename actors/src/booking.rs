//! Booking: validate and price, admit (idempotency key, hold cap), then place the stay in
//! a room that takes it.
//!
//! Bookings run in batches, one task per batch on a shard, not inside an actor: each
//! shard gathers the bookings that reach it into an inbox (`crate::facade`), and a batch
//! is whatever arrived since the shard's last one (one booking when it is quiet, several
//! under load, a whole `book_many` share). [`run_many`] prices and admits each, places
//! the batch in the shard's own rooms in one pass over its index, and sends each room its
//! share in one message; the rooms decide (each is the authority for its nights) and the
//! [`Directory`] holds the little shared bookkeeping a booking needs before and after, in
//! stripes, so bookings of different keys and creators take no common lock. In the
//! server a booking goes shard → room (the same shard's whenever one is free) → journal →
//! room → shard.
//!
//! A task, not the caller's future: a caller that gives up (a dropped HTTP request) must
//! not stop a booking half-way, or its idempotency key would stay "in flight" and its
//! creator's hold slot taken. And a task on a *shard*, never on a caller's own runtime:
//! the shards live as long as the engine, so a batch cannot die half-way while the engine
//! runs (an embedder stopping its runtime stops only its wait), and the directory needs
//! no guard to settle a batch that vanished.

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::Arc;

use innkeep_engine::availability::Packing;
use innkeep_engine::jiff::Timestamp;
use innkeep_engine::state::check_idempotency;
use innkeep_engine::Event;
use innkeep_engine::{
    BookInput, DomainError, HotelId, IdempotencyKey, IdempotencyRecord, ReservationId, RoomNumber,
};
use innkeep_persistence::Journal;
use tokio::sync::oneshot;

use crate::config::BookingPolicy;
use crate::directory::{read, Directory, InFlight};
use crate::protocol::{
    BookResult, Draft, EngineError, GetReservation, Reserve, ReserveReply, RoomBooking,
    MAX_BOOKINGS_PER_RESERVE,
};
use crate::room::{Rooms, Unsent};

/// Rooms one round of `place` asks at most before looking at the index again. Few: the
/// first room asked almost always takes the stay (a booking comes to `place` when its
/// shard had no room for it, or after losing one race), and each candidate costs a clone
/// of its shared number, whose count sits in a cache line the other shards touch too
/// (measured: 16 per round were 2–3 % of a shard's time). A round that loses every race
/// reads the index again, fresher.
const CANDIDATES_PER_ROUND: usize = 4;

thread_local! {
    /// Where this thread's next batch starts looking among its type's rooms, so
    /// consecutive batches of one type ask different rooms first. Per thread: a shard's
    /// batches spread over its rooms without a counter every shard writes.
    static CURSOR: Cell<usize> = const { Cell::new(0) };
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

/// Runs a batch of bookings to its end: the bookings a shard's inbox gathered (the
/// requests that reached the shard since its last batch, one or many `Engine::book`
/// calls and `Engine::book_many` shares), handing each outcome to `deliver` with the
/// booking's index in `jobs` as soon as it is known.
///
/// Each booking is priced and admitted on its own ([`prepare`]). Then the batch is placed
/// in this shard's rooms in one pass over its index, packed: a booking goes to the first
/// room (from one start for the whole batch) that is free for its stay and holds no
/// overlapping stay of the batch already, so bookings of different nights share rooms and
/// each room gets its share in one [`Reserve`]. A booking no room here can take, that
/// names its room, or that lost its room to another booking meanwhile, goes [`place`]'s
/// way: every shard's rooms, then a rearrangement.
pub(crate) async fn run_many(
    directory: &Arc<Directory>,
    rooms: &Arc<Rooms>,
    journal: &Journal<Event>,
    policy: BookingPolicy,
    jobs: Vec<BookingJob>,
    mut deliver: impl FnMut(usize, Answer),
) {
    let mut ready: Vec<(usize, Ready)> = Vec::with_capacity(jobs.len());
    let mut replays = Vec::new();
    let mut waits = Vec::new();
    for (i, job) in jobs.into_iter().enumerate() {
        match prepare(directory, policy, job) {
            Prepared::Answered(result) => deliver(i, Answer::Own(result)),
            Prepared::Replay(existing) => replays.push((i, existing)),
            Prepared::Wait(rx) => waits.push((i, rx)),
            Prepared::Go(r) => ready.push((i, r)),
        }
    }
    // From here on the directory holds each ready booking's key and slot until its
    // `finish`. The batch runs as a task on a shard, so it is only dropped half-way when
    // the engine stops, and then the directory goes with it.
    let start = next_start();
    let (groups, mut elsewhere) = pack(directory, &ready, start);
    // Every room's message goes out before any answer is awaited, so the rooms decide
    // side by side with the journal's batch filling.
    let mut answers: Vec<(usize, oneshot::Receiver<ReserveReply>)> =
        Vec::with_capacity(groups.len());
    for (g, (number, members)) in groups.iter().enumerate() {
        let Some(hotel_id) = members
            .first()
            .and_then(|&k| ready[k].1.draft.as_ref())
            .map(|d| d.request.hotel_id.clone())
        else {
            continue;
        };
        // Each booking's draft goes to the room: it moves the draft's parts into the
        // reservation, or gives the draft back with its refusal.
        let mut bookings = members.iter().filter_map(|&k| ready[k].1.take_for_room());
        let Some(first) = bookings.next() else {
            continue;
        };
        let (reply, answer) = oneshot::channel();
        let msg = Reserve {
            first,
            more: bookings.collect(),
            reply,
        };
        match rooms.try_send_to(&(&hotel_id, number), msg) {
            Ok(()) => answers.push((g, answer)),
            // Not a room any more, or its mailbox is full: `place` finds another room or
            // answers why not, with the drafts the message carried.
            Err(unsent) => {
                let msg = unsent.into_message();
                let drafts = std::iter::once(msg.first).chain(msg.more).map(|b| b.draft);
                for (&k, draft) in members.iter().zip(drafts) {
                    ready[k].1.draft = Some(draft);
                }
                elsewhere.extend(
                    members
                        .iter()
                        .map(|&k| (k, HashSet::from([number.clone()]))),
                );
            }
        }
    }
    // The room already wrote the locator and the key and queued the new hold for expiry
    // before answering (so the hold is known before anyone can act on it); `finish`
    // settles the rest before the caller hears.
    for (g, answer) in answers {
        let (number, members) = &groups[g];
        let ReserveReply {
            answers: mut results,
            refused,
        } = answer.await.unwrap_or_default();
        for (place, draft) in refused {
            if let Some(&k) = members.get(place) {
                ready[k].1.draft = Some(draft);
            }
        }
        // One answer per booking; a room that went away answered none.
        results.resize_with(members.len(), || Err(EngineError::ShuttingDown));
        for (&k, result) in members.iter().zip(results) {
            match result {
                // Another booking took the room since the index was read: `place`,
                // without that room.
                Err(EngineError::Domain(DomainError::SoldOut)) => {
                    elsewhere.push((k, HashSet::from([number.clone()])));
                }
                result => {
                    let (i, r) = &mut ready[k];
                    r.finish(directory, &result);
                    deliver(*i, Answer::Own(result));
                }
            }
        }
    }
    // Each booking left for `place` takes its draft along from room to room.
    let leaving: Vec<_> = elsewhere
        .into_iter()
        .map(|(k, tried)| (k, tried, ready[k].1.draft.take()))
        .collect();
    let others = leaving.into_iter().map(|(k, tried, draft)| {
        let ready = &ready[k].1;
        async move {
            let result = match draft {
                Some(draft) => place(directory, rooms, journal, ready, draft, start, tried).await,
                // Every booking's draft is back from its room before it comes here.
                None => Err(EngineError::ShuttingDown),
            };
            (k, result)
        }
    });
    let placed = futures_util::future::join_all(others).await;
    for (k, result) in placed {
        let (i, r) = &mut ready[k];
        r.finish(directory, &result);
        deliver(*i, Answer::Own(result));
    }
    for (i, existing) in replays {
        // Boxed, as `place`'s rearrangement: rare, and inlined it would enlarge every
        // batch's future.
        deliver(
            i,
            Answer::Earlier(Box::pin(replay(directory, rooms, existing)).await),
        );
    }
    for (i, rx) in waits {
        deliver(
            i,
            Answer::Earlier(rx.await.unwrap_or(Err(EngineError::ShuttingDown))),
        );
    }
}

/// A booking's outcome as [`run_many`] hands it over: whose reservation it is tells a
/// made one from a replayed one without reading the reservation (its id, compared with
/// the booking's, was a cache miss per booking: 2.6 % of a shard's time in-process).
#[derive(Debug)]
pub(crate) enum Answer {
    /// The booking's own: the reservation it made, or why it made none.
    Own(BookResult),
    /// What its idempotency key's earlier attempt made: a replay, or a retry that joined
    /// the first attempt while it ran.
    Earlier(BookResult),
}

impl Answer {
    /// Its outcome as [`crate::METRIC_BOOKINGS`] counts it.
    pub(crate) fn outcome(&self) -> &'static str {
        match self {
            Answer::Own(Ok(_)) => "created",
            Answer::Earlier(Ok(_)) => "replayed",
            Answer::Own(Err(e)) | Answer::Earlier(Err(e)) => e.code(),
        }
    }

    /// The reservation, or why there is none.
    pub(crate) fn into_result(self) -> BookResult {
        match self {
            Answer::Own(result) | Answer::Earlier(result) => result,
        }
    }
}

/// Where this thread's next booking (or batch) starts looking among its type's rooms.
fn next_start() -> usize {
    CURSOR.with(|c| {
        let start = c.get();
        c.set(start.wrapping_add(1));
        start
    })
}

/// A booking priced and admitted: the directory holds its key (in flight) and its
/// creator's hold slot until [`Ready::finish`].
pub(crate) struct Ready {
    /// The reservation to make; `None` while a room has it (a room that refuses it gives
    /// it back).
    draft: Option<Box<Draft>>,
    /// Who books it, whose hold slot [`Ready::finish`] gives back if it fails.
    creator: Option<String>,
    /// The key it is made under, with the request's fingerprint.
    idempotency: Option<IdempotencyRecord>,
    /// The key's place in the directory (taken by [`Ready::finish`]).
    slot: Option<(HotelId, IdempotencyKey)>,
    /// The booking's span, under its request's.
    span: tracing::Span,
}

impl Ready {
    /// Settles the directory with the booking's outcome ([`finish`]); once.
    fn finish(&mut self, directory: &Directory, result: &BookResult) {
        finish(
            directory,
            self.slot.take(),
            self.creator.as_deref(),
            1,
            result,
        );
    }

    /// The booking for a room's message, its draft with it.
    fn take_for_room(&mut self) -> Option<RoomBooking> {
        Some(RoomBooking {
            draft: self.draft.take()?,
            idempotency: self.idempotency.clone(),
            span: self.span.clone(),
        })
    }
}

/// A job after pricing and admission.
enum Prepared {
    /// Answered already: invalid, priced out, or refused at admission.
    Answered(BookResult),
    /// The key already made this reservation: answer with it as it is now.
    Replay(ReservationId),
    /// A retry that joined the running first attempt of its key.
    Wait(oneshot::Receiver<BookResult>),
    /// To be placed in a room.
    Go(Ready),
}

/// Prices `job` against the catalog and admits it: idempotency (replay, reuse, join a
/// running first attempt, or start one) and the creator's hold cap, decided together
/// under the key's stripe lock.
fn prepare(directory: &Directory, policy: BookingPolicy, job: BookingJob) -> Prepared {
    let BookingJob {
        input,
        idempotency_key,
        id,
        now,
        span,
    } = job;
    let creator = input.created_by.clone();
    let priced = read(&directory.catalog).price_booking(input, now, policy.limits);
    let (request, total, terms) = match priced {
        Ok(priced) => priced,
        Err(e) => return Prepared::Answered(Err(e.into())),
    };
    // Only a key's retries are compared with their first attempt: without a key the
    // fingerprint is never read, so it is not computed (it hashes the whole request).
    let fingerprint = match &idempotency_key {
        Some(_) => request.fingerprint_by(creator.as_deref()),
        None => 0,
    };
    let slot = idempotency_key.map(|k| (request.hotel_id.clone(), k));
    match admit(
        directory,
        slot.as_ref(),
        fingerprint,
        creator.as_deref(),
        1,
        policy,
        now,
    ) {
        Admitted::Replay(existing) => return Prepared::Replay(existing),
        Admitted::Refused(e) => return Prepared::Answered(Err(e)),
        Admitted::Wait(rx) => return Prepared::Wait(rx),
        Admitted::Go => {}
    }
    let idempotency = slot.as_ref().map(|(_, key)| IdempotencyRecord {
        key: key.clone(),
        fingerprint,
    });
    let span = tracing::debug_span!(parent: &span, "book", reservation = %id);
    Prepared::Go(Ready {
        span,
        draft: Some(Box::new(Draft {
            request,
            total,
            id,
            now,
            hold: policy.hold,
            created_by: creator.clone(),
            terms,
        })),
        creator,
        idempotency,
        slot,
    })
}

/// Asks the type's free rooms (or the one asked for), one after another, until one takes
/// the stay; when none is free for the whole stay, tries a rearrangement (issue #16).
/// `tried`: rooms already known not to take it.
async fn place(
    directory: &Arc<Directory>,
    rooms: &Rooms,
    journal: &Journal<Event>,
    ready: &Ready,
    mut draft: Box<Draft>,
    start: usize,
    mut tried: HashSet<RoomNumber>,
) -> BookResult {
    // Each round asks up to CANDIDATES_PER_ROUND rooms not yet tried; every round that
    // does not book adds at least one room to `tried`, so this ends.
    loop {
        let round = candidates(directory, &draft.request, start, &tried);
        if round.is_empty() {
            // No room is free for the whole stay: unless the client chose the room,
            // one may be freed by moving others (issue #16).
            if draft.request.room.is_some() {
                return Err(DomainError::SoldOut.into());
            }
            // Boxed: see `run`'s replay.
            return Box::pin(crate::rearranging::book(
                directory,
                rooms,
                journal,
                &draft,
                ready.idempotency.clone(),
            ))
            .await;
        }
        for number in round {
            let (reply, answer) = oneshot::channel();
            let hotel_id = draft.request.hotel_id.clone();
            let msg = Reserve {
                first: RoomBooking {
                    draft,
                    idempotency: ready.idempotency.clone(),
                    span: ready.span.clone(),
                },
                more: Vec::new(),
                reply,
            };
            // The engine's in-flight bound is below the mailbox capacity, so a full
            // mailbox means the engine is past its limit: answer overloaded.
            match rooms.try_send_to(&(&hotel_id, &number), msg) {
                Ok(()) => {}
                // Not a room (any more): nothing to ask.
                Err(Unsent::NoRoom(msg)) => {
                    draft = msg.first.draft;
                    tried.insert(number);
                    continue;
                }
                Err(Unsent::Full(_)) => return Err(EngineError::Overloaded),
                Err(Unsent::Closed(_)) => return Err(EngineError::ShuttingDown),
            }
            let ReserveReply {
                mut answers,
                mut refused,
            } = answer.await.unwrap_or_default();
            match answers.pop().unwrap_or(Err(EngineError::ShuttingDown)) {
                // Lost the race for this room (or it changed type): try another, with
                // the draft the room gave back.
                Err(EngineError::Domain(DomainError::SoldOut)) => {
                    let Some((_, back)) = refused.pop() else {
                        return Err(DomainError::SoldOut.into());
                    };
                    draft = back;
                    tried.insert(number);
                }
                other => return other,
            }
        }
    }
}

/// Rooms, each with the bookings of a batch placed in it (indices into the batch's ready
/// bookings, in order).
type Groups = Vec<(RoomNumber, Vec<usize>)>;

/// Bookings of a batch left for [`place`], each with the rooms it need not ask.
type Elsewhere = Vec<(usize, HashSet<RoomNumber>)>;

/// Rooms on this shard (its own index) for the bookings of `ready` that name no room,
/// packed ([`AvailabilityIndex::pack`]): each goes to the first room from `start` that
/// the index shows free for its whole stay and that holds no overlapping stay of this
/// batch yet (nor [`MAX_BOOKINGS_PER_RESERVE`] of them). Returns each room with its
/// bookings (indices into `ready`, in order), and the bookings left for [`place`], each
/// with the rooms it need not ask.
///
/// [`AvailabilityIndex::pack`]: innkeep_engine::availability::AvailabilityIndex::pack
fn pack(directory: &Directory, ready: &[(usize, Ready)], start: usize) -> (Groups, Elsewhere) {
    let mut groups: Groups = Vec::new();
    let mut elsewhere: Elsewhere = Vec::new();
    let mut packing = Packing::default();
    let here = crate::shards::current().unwrap_or(start) % directory.shards();
    let index = read(directory.index(here));
    for (k, (_, r)) in ready.iter().enumerate() {
        let Some(draft) = &r.draft else {
            elsewhere.push((k, HashSet::new()));
            continue;
        };
        let req = &draft.request;
        if req.room.is_some() {
            elsewhere.push((k, HashSet::new()));
            continue;
        }
        let packed = index.pack(
            &mut packing,
            &req.hotel_id,
            &req.room_type,
            &req.stay,
            start,
            MAX_BOOKINGS_PER_RESERVE,
        );
        match packed {
            None => elsewhere.push((k, HashSet::new())),
            // Rooms are numbered in the order they were first claimed: a new one is next.
            Some(p) if p.room == groups.len() => groups.push((p.number, vec![k])),
            Some(p) => groups[p.room].1.push(k),
        }
    }
    (groups, elsewhere)
}

/// How admission went.
pub(crate) enum Admitted {
    /// Refused (key reused with another request, hold cap reached).
    Refused(EngineError),
    /// The key already made this reservation: answer with it as it is now.
    Replay(ReservationId),
    /// A retry joined the running first attempt of its key.
    Wait(oneshot::Receiver<BookResult>),
    /// Go ahead: the key (if any) is in flight and the creator's slot (if any) taken.
    Go,
}

/// Decides whether a booking of `holds` rooms may start. Locks the key's stripe (when
/// there is a key) and, inside it, the creator's stripe: always in that order, so two
/// admissions cannot wait on each other.
pub(crate) fn admit(
    directory: &Directory,
    slot: Option<&(HotelId, IdempotencyKey)>,
    fingerprint: u64,
    creator: Option<&str>,
    holds: usize,
    policy: BookingPolicy,
    now: Timestamp,
) -> Admitted {
    let mut keys = slot.map(|slot| directory.keys(slot));
    if let (Some(slot), Some(keys)) = (slot, keys.as_mut()) {
        // In flight first: a running booking records its key as finished before it is
        // durable (for snapshots), and its retries must wait for its answer, not replay it.
        if let Some(flight) = keys.in_flight.get_mut(slot) {
            if flight.fingerprint != fingerprint {
                return Admitted::Refused(DomainError::IdempotencyKeyReused.into());
            }
            let (tx, rx) = oneshot::channel();
            flight.waiters.push(tx);
            return Admitted::Wait(rx);
        }
        match check_idempotency(&keys.finished, &slot.0, &slot.1, fingerprint, now) {
            Err(e) => return Admitted::Refused(e.into()),
            Ok(Some(existing)) => return Admitted::Replay(existing),
            Ok(None) => {}
        }
    }
    // The creator's hold cap: a slot per room is taken now (so concurrent bookings by one
    // key cannot overshoot) and given back if the booking fails.
    if let Some(c) = creator {
        let limit = policy.max_holds_per_creator;
        for taken in 0..holds {
            if !directory.take_slot(c, limit) {
                for _ in 0..taken {
                    directory.release_slot(c);
                }
                tracing::debug!(creator = %c, limit, "hold cap reached");
                return Admitted::Refused(EngineError::TooManyHolds { limit });
            }
        }
    }
    if let (Some(slot), Some(keys)) = (slot, keys.as_mut()) {
        keys.in_flight.insert(
            slot.clone(),
            InFlight {
                fingerprint,
                waiters: Vec::new(),
            },
        );
    }
    Admitted::Go
}

/// Up to [`CANDIDATES_PER_ROUND`] rooms not yet tried that the index shows free for the
/// whole stay (or the one room asked for). Local first: on a shard, its own index (the
/// rooms it hosts) is searched before any other, so the booking crosses to another
/// shard's thread only when none of its own can take the stay.
fn candidates(
    directory: &Directory,
    req: &innkeep_engine::BookRequest,
    start: usize,
    tried: &HashSet<RoomNumber>,
) -> Vec<RoomNumber> {
    if let Some(n) = &req.room {
        return if tried.contains(n) {
            Vec::new()
        } else {
            vec![n.clone()]
        };
    }
    let shards = directory.shards();
    let here = crate::shards::current().unwrap_or(start) % shards;
    for shard in (here..shards).chain(0..here) {
        let found = read(directory.index(shard)).candidates_from(
            &req.hotel_id,
            &req.room_type,
            &req.stay,
            start,
            CANDIDATES_PER_ROUND,
            |n| tried.contains(n),
        );
        if !found.is_empty() {
            return found;
        }
    }
    Vec::new()
}

/// An idempotent replay: the reservation the key made, as it is now.
pub(crate) async fn replay(
    directory: &Directory,
    rooms: &Rooms,
    existing: ReservationId,
) -> BookResult {
    // Another booking's rearrangement may move the reservation while this asks.
    directory
        .at_its_room(existing, |key| {
            let asked = rooms.query(&key, GetReservation(existing));
            async move {
                asked
                    .await
                    .map_err(|_| EngineError::ShuttingDown)?
                    .map_err(EngineError::from)
            }
        })
        .await
}

/// Settles the directory after a booking of `holds` rooms: a failed one gives its
/// creator's slots back; a key's outcome is handed to the retries that waited for it (a
/// success was recorded under the key already).
pub(crate) fn finish(
    directory: &Directory,
    slot: Option<(HotelId, IdempotencyKey)>,
    creator: Option<&str>,
    holds: usize,
    result: &BookResult,
) {
    if result.is_err() {
        if let Some(c) = creator {
            for _ in 0..holds {
                directory.release_slot(c);
            }
        }
    }
    let Some(slot) = slot else { return };
    let flight = directory.keys(&slot).in_flight.remove(&slot);
    if let Some(flight) = flight {
        for w in flight.waiters {
            let _ = w.send(result.clone());
        }
    }
}
