//! HoldKeeper: one per shard, keeping the unpaid holds of that shard's rooms. A room tells
//! its own shard's keeper when a hold starts (durable, before the booking is answered) and
//! when it ends (paid, cancelled, expired); the keeper expires due holds and asks the
//! payment supervisor for each new hold's charge when a payment provider is configured.
//!
//! Per shard, not in the order supervisor: a booking's hold is then reported on the thread
//! that booked it, with no wake of another thread, so the booking path touches only the
//! shards and the journal writer. A hold never leaves its room while it is unpaid (moves
//! are for confirmed and checked-in reservations), so its room's keeper is its keeper for
//! life.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use innkeep_engine::jiff::Timestamp;
use innkeep_engine::{Action, DomainError, ReservationId, RoomKey};

use innkeep_engine::Event;
use innkeep_persistence::Journal;

use crate::bookings::GroupAction;
use crate::directory::{read, Directory};
use crate::protocol::{
    Adopt, ChangeReservation, EngineError, HoldEnded, HoldStarted, PaymentCreated,
};
use crate::room::{Rooms, ROOM_MAILBOX};

/// Name of the counter of holds the keepers expired.
pub const METRIC_HOLDS_EXPIRED: &str = "innkeep_holds_expired_total";

/// Name of the gauge of unpaid holds currently open.
pub const METRIC_HOLDS_OPEN: &str = "innkeep_holds_open";

/// Expirations a keeper has asked for and not yet heard back from; the rest of the due
/// holds wait in its queue until an answer (or the next tick) makes room. A restart after
/// a long outage can find hundreds of thousands of lapsed holds. Asked for all at once
/// (measured with 1M lapsed at start), every request waited behind them (`/healthz` took
/// 0.2–0.5 s), the expiries themselves crawled (16 000 in the first 5 s) and the process
/// doubled its memory (1.9 GB). With 256 at a time: 1–6 ms, 440 000, 0.9 GB.
const MAX_EXPIRING: usize = 256;

/// The holds of one shard's rooms.
#[derive(Debug)]
pub(crate) struct HoldKeeper {
    /// The locator and the catalog (to expire a hold), and the hold slots (given back
    /// when a hold ends).
    directory: Arc<Directory>,
    /// The rooms, asked to expire their due holds.
    rooms: Arc<Rooms>,
    /// Where a multi-room booking's expiry is journaled (its rooms decide together, see
    /// `crate::bookings`).
    journal: Journal<Event>,
    /// Every unpaid hold by its expiry, so the tick finds the due ones without a scan.
    /// The only per-hold state here: a hold's room reports its end ([`HoldEnded`]) with
    /// the expiry and creator, exactly once, so nothing else needs remembering.
    holds: HoldQueue,
    /// The payment supervisor, asked for each new hold's charge; `None` without a payment
    /// provider (nothing would be charged, so nothing is sent).
    payments: Option<Recipient<PaymentCreated>>,
    /// How often due holds are looked for.
    expiry_tick: Duration,
    /// This keeper's shard, whose idle rooms it parks.
    shard: usize,
    /// How often this shard's rooms are swept for idle ones ([`Rooms::sweep`]).
    room_idle: Duration,
    /// Expirations asked for and not yet answered (at most [`MAX_EXPIRING`]).
    expiring: usize,
}

impl HoldKeeper {
    pub(crate) fn new(
        directory: Arc<Directory>,
        rooms: Arc<Rooms>,
        journal: Journal<Event>,
        payments: Option<Recipient<PaymentCreated>>,
        (expiry_tick, room_idle): (Duration, Duration),
        shard: usize,
    ) -> Self {
        Self {
            directory,
            rooms,
            journal,
            holds: HoldQueue::default(),
            payments,
            expiry_tick,
            shard,
            room_idle,
            expiring: 0,
        }
    }

    /// Queues a new hold's expiry. Called once per hold (its start, or its adoption at
    /// start-up), as its end is reported once: the gauge counts both.
    fn track(&mut self, id: ReservationId, expires_at: Timestamp) {
        self.holds.push(due_millis(expires_at), id);
        metrics::gauge!(METRIC_HOLDS_OPEN).increment(1.0);
    }

    /// Asks the room of every hold that is due to expire it, at most [`MAX_EXPIRING`] at a
    /// time: each answer asks for the next. A room that could not decide (journal full or
    /// failing, engine stopping) leaves the hold queued for a later tick.
    fn expire_due(&mut self, ctx: &mut Context<Self>) {
        let now = self.directory.clock.now();
        let now_millis = now.as_millisecond();
        while self.expiring < MAX_EXPIRING {
            let Some((at, id)) = self.holds.pop_due(now_millis) else {
                break;
            };
            // A multi-room booking's holds lapse together, as one change (the first of its
            // keepers to get there expires them all; the others find nothing left to do).
            if let Some(booking) = self.directory.booking_of(&id) {
                let (directory, rooms, journal) = (
                    self.directory.clone(),
                    self.rooms.clone(),
                    self.journal.clone(),
                );
                let expire = async move {
                    let action = GroupAction::Change(Action::Expire);
                    crate::bookings::change(
                        &directory, &rooms, &journal, booking, action, None, now,
                    )
                    .await
                };
                self.expiring += 1;
                ctx.spawn(expire.into_actor(self).map(move |res, act, ctx| {
                    match res {
                        Ok((expired, _)) => {
                            metrics::counter!(METRIC_HOLDS_EXPIRED).increment(expired as u64);
                        }
                        // Refused for good (a reservation being moved is retried).
                        Err(EngineError::Domain(e))
                            if !matches!(e, DomainError::MoveInProgress) => {}
                        Err(_) => return act.requeue(at, id),
                    }
                    act.answered(ctx);
                }));
                continue;
            }
            let Some((asked, today)) = self.room_of(&id, now) else {
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
            let Some(sent) = self.rooms.send(&asked, msg) else {
                continue;
            };
            self.expiring += 1;
            ctx.spawn(sent.into_actor(self).map(move |res, act, ctx| {
                let retry = match res {
                    Ok(Ok(_)) => {
                        metrics::counter!(METRIC_HOLDS_EXPIRED).increment(1);
                        false
                    }
                    // A rearrangement moved it between the locator's answer and the old
                    // room's: due still, asked again where it is now on the next tick.
                    Ok(Err(EngineError::Domain(DomainError::NotFound("reservation")))) => act
                        .directory
                        .locate(&id)
                        .is_some_and(|now_at| now_at != asked),
                    Ok(Err(EngineError::Domain(_))) => false,
                    Ok(Err(_)) | Err(_) => true,
                };
                if retry {
                    act.requeue(at, id);
                } else {
                    act.answered(ctx);
                }
            }));
        }
    }

    /// One expiration asked for was decided: its place goes to the next due hold.
    fn answered(&mut self, ctx: &mut Context<Self>) {
        self.expiring -= 1;
        self.expire_due(ctx);
    }

    /// One expiration asked for could not be decided: the hold goes back in the queue, and
    /// its place is refilled by the next tick, not now (the hold is due, so it would be
    /// asked again at once, and a journal that refuses would be asked over and over).
    fn requeue(&mut self, at: i64, id: ReservationId) {
        self.expiring -= 1;
        self.holds.push(at, id);
    }

    fn room_of(
        &self,
        id: &ReservationId,
        now: Timestamp,
    ) -> Option<(RoomKey, innkeep_engine::jiff::civil::Date)> {
        let key = self.directory.locate(id)?;
        let today = read(&self.directory.catalog)
            .hotel(&key.hotel_id)
            .ok()?
            .time_zone
            .today(now);
        Some((key, today))
    }
}

impl Actor for HoldKeeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(ROOM_MAILBOX);
        ctx.run_interval(self.expiry_tick, |act, ctx| act.expire_due(ctx));
        ctx.run_interval(self.room_idle, |act, _ctx| {
            act.rooms.sweep(act.shard);
        });
    }
}

impl Handler<Adopt> for HoldKeeper {
    type Result = ();

    fn handle(&mut self, msg: Adopt, ctx: &mut Self::Context) {
        let adopted = msg.0.len();
        self.holds.extend(
            msg.0
                .into_iter()
                .map(|(id, hold)| (due_millis(hold.expires_at), id)),
        );
        metrics::gauge!(METRIC_HOLDS_OPEN).increment(adopted as f64);
        self.expire_due(ctx);
    }
}

impl Handler<HoldStarted> for HoldKeeper {
    type Result = ();

    /// A new hold is durable: its expiry is queued, its creator's slot (taken when the
    /// booking started) now belongs to it, and its charge is created.
    fn handle(&mut self, msg: HoldStarted, _ctx: &mut Self::Context) {
        let HoldStarted {
            id,
            expires_at,
            charge,
            created_at,
        } = msg;
        // The creator's slot was taken when the booking started; it is given back with
        // the hold's end, which names the creator again.
        self.track(id, expires_at);
        // Best effort: the hold timer governs whether it is ever paid. A multi-room
        // booking's charge is created once, by its first reservation's keeper.
        if let (Some(payments), Some(charge)) = (&self.payments, charge) {
            payments.do_send(PaymentCreated {
                out_trade_no: charge.out_trade_no,
                amount: charge.amount,
                created_at,
            });
        }
    }
}

impl Handler<HoldEnded> for HoldKeeper {
    type Result = ();

    fn handle(&mut self, msg: HoldEnded, _ctx: &mut Self::Context) {
        // Gone already when its expiry is being asked for right now.
        self.holds.remove(due_millis(msg.expires_at), msg.id);
        metrics::gauge!(METRIC_HOLDS_OPEN).decrement(1.0);
        if let Some(c) = &msg.created_by {
            self.directory.release_slot(c);
        }
    }
}

/// The whole millisecond at or after `at`: a hold is asked to expire no earlier than it
/// lapses (the room decides by the exact instant).
fn due_millis(at: Timestamp) -> i64 {
    let ms = at.as_millisecond();
    if Timestamp::from_millisecond(ms).is_ok_and(|t| t < at) {
        ms.saturating_add(1)
    } else {
        ms
    }
}

/// Holds by expiry: a ring buffer sorted by (expiry, id), 24 bytes an entry. Holds are
/// made with one time-to-live by a clock that moves forward, so a new one almost always
/// goes at the back, and the due ones leave from the front. A hold that ends early (paid,
/// cancelled) is marked dead in place (found by binary search) and leaves when it reaches
/// an end; so the queue holds at most the holds made within one time-to-live. A B-tree
/// filled in order keeps its nodes half empty: twice the memory for the same entries.
#[derive(Debug, Default)]
struct HoldQueue {
    /// `(packed expiry, id)`, sorted by (expiry, id); see [`pack`].
    entries: VecDeque<(u64, ReservationId)>,
}

/// Offset making every expiry this keeper can see (jiff's instants span ±10 000 years,
/// ±3.2·10^14 ms) non-negative below 2^62.
const EXPIRY_OFFSET_MS: i64 = 1 << 61;

/// An expiry in milliseconds packed with a live bit (the lowest) that does not change
/// the order of expiries.
fn pack(due_ms: i64) -> u64 {
    let shifted = due_ms.clamp(-EXPIRY_OFFSET_MS, EXPIRY_OFFSET_MS - 1) + EXPIRY_OFFSET_MS;
    (shifted as u64) << 1 | 1
}

fn unpack(packed: u64) -> i64 {
    (packed >> 1) as i64 - EXPIRY_OFFSET_MS
}

fn is_live(packed: u64) -> bool {
    packed & 1 == 1
}

impl HoldQueue {
    /// Where `(due_ms, id)` is or would go.
    fn search(&self, due_ms: i64, id: &ReservationId) -> Result<usize, usize> {
        let key = (pack(due_ms) >> 1, *id);
        self.entries
            .binary_search_by(|(packed, other)| (packed >> 1, *other).cmp(&key))
    }

    /// Queues a hold (again, for a retried expiry).
    fn push(&mut self, due_ms: i64, id: ReservationId) {
        let entry = (pack(due_ms), id);
        let at_back = self
            .entries
            .back()
            .is_none_or(|(packed, other)| (packed >> 1, *other) < (entry.0 >> 1, id));
        if at_back {
            self.entries.push_back(entry);
            return;
        }
        match self.search(due_ms, &id) {
            Ok(i) => self.entries[i].0 |= 1,
            Err(i) => self.entries.insert(i, entry),
        }
    }

    /// Queues many holds at once (a start-up's adopted holds): sorted once. They come room
    /// by room, so pushed one by one each went into the middle and moved half the queue
    /// (measured: with 1M holds adopted at start, `/readyz` went unanswered for 22–25 s).
    fn extend(&mut self, holds: impl IntoIterator<Item = (i64, ReservationId)>) {
        let mut all: Vec<(u64, ReservationId)> = self.entries.drain(..).collect();
        all.extend(holds.into_iter().map(|(due_ms, id)| (pack(due_ms), id)));
        // By (expiry, id), a live entry before a dead one of the same hold: `dedup` keeps
        // the first, so a hold queued again is live, as `push` makes it.
        all.sort_unstable_by_key(|&(packed, id)| (packed >> 1, id, !packed & 1));
        all.dedup_by_key(|&mut (packed, id)| (packed >> 1, id));
        self.entries = all.into();
        self.drop_dead_front();
        while self.entries.back().is_some_and(|(p, _)| !is_live(*p)) {
            self.entries.pop_back();
        }
    }

    /// Marks the hold ended; it leaves the queue when it reaches an end.
    fn remove(&mut self, due_ms: i64, id: ReservationId) {
        if let Ok(i) = self.search(due_ms, &id) {
            self.entries[i].0 &= !1;
        }
        while self.entries.back().is_some_and(|(p, _)| !is_live(*p)) {
            self.entries.pop_back();
        }
        self.drop_dead_front();
    }

    /// The next live hold due at `now_ms` or before, taken out of the queue.
    fn pop_due(&mut self, now_ms: i64) -> Option<(i64, ReservationId)> {
        self.drop_dead_front();
        let (packed, id) = *self.entries.front()?;
        if unpack(packed) > now_ms {
            return None;
        }
        self.entries.pop_front();
        self.drop_dead_front();
        Some((unpack(packed), id))
    }

    fn drop_dead_front(&mut self) {
        while self.entries.front().is_some_and(|(p, _)| !is_live(*p)) {
            self.entries.pop_front();
        }
        // Give back what a burst of holds left behind.
        if self.entries.capacity() > 1024 && self.entries.len() < self.entries.capacity() / 4 {
            self.entries.shrink_to(self.entries.len() * 2);
        }
    }

    #[cfg(test)]
    fn live(&self) -> Vec<(i64, ReservationId)> {
        self.entries
            .iter()
            .filter(|(p, _)| is_live(*p))
            .map(|(p, id)| (unpack(*p), *id))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> ReservationId {
        ReservationId(uuid::Uuid::from_u128(n))
    }

    /// The queue against a sorted set: holds pushed mostly in order, some out of order,
    /// some twice (a retried expiry), some in batches (adopted), ended ones removed, due
    /// ones popped.
    #[test]
    fn the_hold_queue_pops_what_a_sorted_set_would() {
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut queue = HoldQueue::default();
        let mut model = std::collections::BTreeSet::new();
        let mut clock = -5_000i64;
        for step in 0..20_000u128 {
            match next(10) {
                0..=4 => {
                    clock += next(3) as i64;
                    let early = if next(8) == 0 { next(2_000) as i64 } else { 0 };
                    let due = clock + 1_000 - early;
                    let hold = id(u128::from(next(500)));
                    queue.push(due, hold);
                    model.insert((due, hold));
                }
                5 if next(4) == 0 => {
                    // A batch at once (adopted at start-up), in no particular order and
                    // with repeats of queued holds.
                    let batch: Vec<(i64, ReservationId)> = (0..next(40))
                        .map(|_| (clock + next(2_000) as i64 - 500, id(u128::from(next(500)))))
                        .collect();
                    queue.extend(batch.iter().copied());
                    model.extend(batch);
                }
                5..=7 => {
                    let pick = next(model.len() as u64 + 1) as usize;
                    if let Some((due, hold)) = model.iter().nth(pick).copied() {
                        queue.remove(due, hold);
                        model.remove(&(due, hold));
                    } else {
                        // A hold the queue does not have: nothing changes.
                        queue.remove(clock, id(10_000 + step));
                    }
                }
                _ => {
                    let now = clock + next(1_200) as i64 - 200;
                    let got = queue.pop_due(now);
                    let want = model.first().copied().filter(|(due, _)| *due <= now);
                    assert_eq!(got, want, "step {step}");
                    if let Some(w) = want {
                        model.remove(&w);
                    }
                }
            }
            let live = queue.live();
            assert_eq!(
                live,
                model.iter().copied().collect::<Vec<_>>(),
                "step {step}"
            );
        }
    }

    #[test]
    fn expiries_pack_in_order_and_round_up_to_the_millisecond() {
        let order = [
            -EXPIRY_OFFSET_MS,
            -1,
            0,
            1,
            1_900_000_000_000,
            EXPIRY_OFFSET_MS - 1,
        ];
        for w in order.windows(2) {
            assert!(pack(w[0]) < pack(w[1]));
            assert_eq!(unpack(pack(w[0])), w[0]);
        }
        let t = |s, ns| Timestamp::new(s, ns).unwrap();
        assert_eq!(due_millis(t(1, 0)), 1_000);
        assert_eq!(due_millis(t(1, 1)), 1_001);
        assert_eq!(due_millis(t(1, 999_000_001)), 2_000);
        assert_eq!(due_millis(t(-1, -500_000_000)), -1_500);
        assert_eq!(due_millis(t(-1, -500_000_001)), -1_500);
    }
}
