//! The unpaid holds of one shard's rooms by expiry, written by the rooms themselves when a
//! hold starts or ends and read by the shard's hold keeper (`crate::holds`) when it looks
//! for due ones.
//!
//! Shared, not told by message: a room queues its new hold under a lock only its own
//! shard's thread takes (a shard's rooms and its keeper run there), where a message to the
//! keeper cost every booking an envelope, a mailbox node and a wake of the keeper. A room
//! reports a hold's start and its end itself, in that order, so an end never comes before
//! its start.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use actix::Recipient;
use innkeep_engine::jiff::Timestamp;
use innkeep_engine::ReservationId;

use crate::directory::Directory;
use crate::handles::ByLabel;
use crate::protocol::{Charge, PaymentCreated, PendingHold};

/// Name of the gauge of unpaid holds currently open.
pub const METRIC_HOLDS_OPEN: &str = "innkeep_holds_open";

thread_local! {
    /// This thread's [`METRIC_HOLDS_OPEN`] handle ([`crate::handles`]).
    static HOLDS_OPEN: std::cell::RefCell<ByLabel<metrics::Gauge>> =
        const { std::cell::RefCell::new(ByLabel::new()) };
}

/// Changes [`METRIC_HOLDS_OPEN`] through this thread's handle.
fn open_holds_gauge(change: impl FnOnce(&metrics::Gauge)) {
    HOLDS_OPEN
        .with_borrow_mut(|handles| change(handles.get("", || metrics::gauge!(METRIC_HOLDS_OPEN))));
}

/// The unpaid holds of one shard's rooms.
#[derive(Debug)]
pub(crate) struct OpenHolds {
    /// Every unpaid hold by its expiry, so the keeper finds the due ones without a scan.
    /// The only per-hold state kept: a hold's room reports its end with the expiry and
    /// creator, exactly once, so nothing else needs remembering.
    queue: Mutex<HoldQueue>,
    /// The payment supervisor, asked for each new hold's charge; `None` without a payment
    /// provider (nothing would be charged, so nothing is sent).
    payments: Option<Recipient<PaymentCreated>>,
    /// The creators' hold slots, given back when a hold ends.
    directory: Arc<Directory>,
}

impl OpenHolds {
    pub(crate) fn new(
        directory: Arc<Directory>,
        payments: Option<Recipient<PaymentCreated>>,
    ) -> Self {
        Self {
            queue: Mutex::default(),
            payments,
            directory,
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, HoldQueue> {
        // A panic on an engine thread aborts the process (crash-only), so a poisoned lock
        // is never seen by a live engine.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new hold is durable (its room calls this before answering the booking): its
    /// expiry is queued and its charge created. Its creator's slot, taken when the booking
    /// started, now belongs to it and is given back by [`OpenHolds::ended`].
    pub(crate) fn started(
        &self,
        id: ReservationId,
        expires_at: Timestamp,
        charge: Option<Charge>,
        created_at: Timestamp,
    ) {
        self.queue().push(due_millis(expires_at), id);
        open_holds_gauge(|g| g.increment(1.0));
        // Best effort: the hold timer governs whether it is ever paid. A multi-room
        // booking's charge is created once, by its first reservation's room.
        if let (Some(payments), Some(charge)) = (&self.payments, charge) {
            payments.do_send(PaymentCreated {
                out_trade_no: charge.out_trade_no,
                amount: charge.amount,
                created_at,
            });
        }
    }

    /// A hold ended (paid, cancelled, expired): it leaves the queue and its creator's slot
    /// is given back. Called once per hold, by its room.
    pub(crate) fn ended(&self, id: ReservationId, expires_at: Timestamp, created_by: Option<&str>) {
        // Gone already when its expiry is being asked for right now.
        self.queue().remove(due_millis(expires_at), id);
        open_holds_gauge(|g| g.decrement(1.0));
        if let Some(c) = created_by {
            self.directory.release_slot(c);
        }
    }

    /// Queues the holds recovered at start-up for this shard's rooms.
    pub(crate) fn adopt(&self, holds: &[(ReservationId, PendingHold)]) {
        self.queue().extend(
            holds
                .iter()
                .map(|(id, hold)| (due_millis(hold.expires_at), *id)),
        );
        metrics::gauge!(METRIC_HOLDS_OPEN).increment(holds.len() as f64);
    }

    /// The next hold due at `now_ms` or before (its due millisecond and id), taken out of
    /// the queue: its room is asked to expire it.
    pub(crate) fn pop_due(&self, now_ms: i64) -> Option<(i64, ReservationId)> {
        self.queue().pop_due(now_ms)
    }

    /// Queues again a hold taken by [`OpenHolds::pop_due`] whose room could not decide.
    pub(crate) fn requeue(&self, due_ms: i64, id: ReservationId) {
        self.queue().push(due_ms, id);
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

    /// [`HoldQueue::search`] for a place near the back, where a hold made a little out of
    /// order goes: steps back 1, 2, 4, … entries to the first not after it, then searches
    /// only what it stepped over. A search of the whole queue touched about twenty cache
    /// lines of a large queue for each such hold (measured: 1.3 % of a shard's time
    /// in-process).
    fn search_near_back(&self, due_ms: i64, id: &ReservationId) -> Result<usize, usize> {
        let key = (pack(due_ms) >> 1, *id);
        let at = |i: usize| {
            let (packed, other) = self.entries[i];
            (packed >> 1, other)
        };
        // Every entry from `hi` on is after the key; every one before `lo` is before it.
        let mut hi = self.entries.len();
        let mut lo = 0;
        let mut step = 1;
        while step <= hi {
            let probe = hi - step;
            if at(probe) <= key {
                lo = probe;
                break;
            }
            hi = probe;
            step *= 2;
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if at(mid) < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo < self.entries.len() && at(lo) == key {
            Ok(lo)
        } else {
            Err(lo)
        }
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
        match self.search_near_back(due_ms, &id) {
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

    /// The search from the back finds what the whole search finds, for keys before,
    /// among, between and after the entries, in queues of every length up to 40.
    #[test]
    fn the_search_near_the_back_agrees_with_the_whole_search() {
        for len in 0..40i64 {
            let mut queue = HoldQueue::default();
            for k in 0..len {
                queue.push(10 * k, id(u128::try_from(k).unwrap()));
            }
            for due in -5..10 * len + 5 {
                for n in [0, 3, 7] {
                    let hold = id(n);
                    assert_eq!(
                        queue.search_near_back(due, &hold),
                        queue.search(due, &hold),
                        "len {len}, due {due}, id {n}"
                    );
                }
            }
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
