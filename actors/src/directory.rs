//! The directory: what bookings and the facade's read paths share besides the rooms, split
//! so that nothing on the booking path takes a process-wide write lock.
//!
//! - The catalog is one `RwLock`, written only by the order supervisor once a setup event
//!   is durable: rare, and never by a booking.
//! - The availability index is one per shard and holds the sold nights of the rooms that
//!   shard hosts. Only those rooms write it, so its write lock is only ever taken on its
//!   own shard's thread (readers elsewhere share it); a booking reads its own shard's index
//!   first ([`crate::booking`]), and only a stay its shard cannot take reads the others.
//! - The locator, the idempotency keys and the per-creator hold slots are split over
//!   [`STRIPES`] mutexes by key, so two bookings meet on a lock only when they share a
//!   stripe, and then for a few map operations.
//!
//! Locks here are held for microseconds and never across an await or a journal write; the
//! room actors stay the authority that decides a booking.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use innkeep_engine::ids::IdMap;
use innkeep_engine::state::IdempotencyMap;
use innkeep_engine::{
    AvailabilityIndex, BookingId, Catalog, DomainError, HotelId, IdempotencyEntry, IdempotencyKey,
    ReservationId, RoomKey, RoomState, RoomTypeCode, Stay,
};
use tokio::sync::oneshot;

use crate::clock::Clock;
use crate::config::Faults;
use crate::protocol::{BookResult, EngineError};

/// Times a call follows a reservation that moved while the call was on its way
/// ([`Directory::at_its_room`]): each time the locator named a new room.
const MAX_RELOCATIONS: usize = 4;

/// Stripes of each striped map: enough that bookings on two to a few dozen shards rarely
/// share one, few enough that a scan of all of them (pruning keys) stays cheap.
pub(crate) const STRIPES: usize = 64;

/// Everything shared; see the module docs for who writes what.
#[derive(Debug)]
pub(crate) struct Directory {
    /// Hotels, room types, rooms, rates.
    pub catalog: RwLock<Catalog>,
    /// Per shard, the sold nights of the rooms it hosts.
    index: Box<[ShardIndex]>,
    /// Reservation → the number of the room holding it (see `rooms`). Written by a room
    /// once a booking is durable and by the order supervisor once a move is. A number, not
    /// the room's key: one entry per reservation the node holds, so 20 bytes, not 48.
    locator: Striped<IdMap<u32>>,
    /// Every room's key by its number in the locator (its place here). Rooms are never
    /// removed, so a number stays valid; written when a room is created, read to resolve
    /// a location. A room's number is its actor's to give (see [`Directory::add_room`]),
    /// so no map from key to number is kept.
    rooms: RwLock<Vec<RoomKey>>,
    /// Idempotency keys, finished and in flight.
    keys: Striped<Keys>,
    /// Open holds per creator (API key), bookings still running included, so
    /// `max_holds_per_creator` is exact even under concurrent bookings by one key. A slot
    /// is taken when a booking starts, kept by the hold it made, and given back when the
    /// booking fails or the hold ends.
    hold_slots: Striped<HashMap<String, usize>>,
    /// Multi-room bookings: each one's reservations, and each such reservation's booking.
    /// Derived from the reservations (each one's payment reference names its booking), so
    /// rebuilt at start-up rather than stored; written once per booking, when its creation
    /// is durable; read by every payment report and hold expiry (is it a booking's?), so a
    /// read-write lock, held for one map operation.
    bookings: RwLock<Bookings>,
    /// Held (shared) by every change that touches more than one room or the catalog (setup,
    /// moves) from its decision until it is applied everywhere, and (exclusive) by a
    /// snapshot while it collects the rooms' parts: so such a change lies wholly before or
    /// wholly after every part's cut, and recovery never has to replay half of one
    /// ([`crate::snapshot`]). Async: waiters are tasks, never a shard thread.
    pub gate: std::sync::Arc<tokio::sync::RwLock<()>>,
    /// Where every actor reads "now".
    pub clock: Clock,
    /// Faults to inject (tests only; none by default).
    pub faults: Faults,
}

/// The multi-room bookings (see [`Directory::booking_members`]).
#[derive(Debug, Default)]
struct Bookings {
    /// Each booking's reservations, sorted by id (ids are made in the order the request
    /// listed the rooms, and sort by creation).
    members: HashMap<BookingId, Box<[ReservationId]>>,
    /// Each booking's reservations' booking.
    of: IdMap<BookingId>,
}

/// One shard's availability index on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(64))]
struct ShardIndex(RwLock<AvailabilityIndex>);

/// An idempotency key's stripe.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    /// Finished keys (replays within 24 h answer with their reservation). Lapsed ones are
    /// dropped by the order supervisor's tick.
    pub finished: IdempotencyMap,
    /// Keys whose first booking is running.
    pub in_flight: HashMap<(HotelId, IdempotencyKey), InFlight>,
}

/// An idempotency key whose first booking is still running.
#[derive(Debug)]
pub(crate) struct InFlight {
    /// The request's fingerprint: a different one is `idempotency_key_reused`.
    pub fingerprint: u64,
    /// Retries that arrived meanwhile; they get the first request's outcome.
    pub waiters: Vec<oneshot::Sender<BookResult>>,
}

impl Directory {
    /// A directory for `shards` shards (at least one) over a recovered catalog, rooms and
    /// idempotency keys: room `rooms[n]` gets number `n`, and the locator holds each of
    /// its reservations. The index starts empty: rooms are entered as they are placed on a
    /// shard ([`Directory::index_room`]).
    pub(crate) fn new(
        shards: usize,
        catalog: Catalog,
        rooms: &[RoomState],
        idempotency: IdempotencyMap,
        clock: Clock,
        faults: Faults,
    ) -> Self {
        let directory = Self {
            catalog: RwLock::new(catalog),
            index: (0..shards.max(1)).map(|_| ShardIndex::default()).collect(),
            locator: locator_of(rooms),
            rooms: RwLock::new(rooms.iter().map(|r| r.key.clone()).collect()),
            keys: Striped::default(),
            hold_slots: Striped::default(),
            bookings: RwLock::default(),
            gate: std::sync::Arc::default(),
            clock,
            faults,
        };
        let mut groups: HashMap<BookingId, Vec<ReservationId>> = HashMap::new();
        for room in rooms {
            for r in room.ledger.iter() {
                if let Some(b) = r.booking() {
                    groups.entry(b).or_default().push(r.id());
                }
            }
        }
        for (b, mut members) in groups {
            members.sort();
            directory.add_booking(b, &members);
        }
        for (slot, entry) in idempotency {
            directory.keys.lock(&slot).finished.insert(slot, entry);
        }
        directory
    }

    /// Records multi-room booking `booking`'s reservations (sorted by id).
    pub(crate) fn add_booking(&self, booking: BookingId, members: &[ReservationId]) {
        let mut bookings = write(&self.bookings);
        for id in members {
            bookings.of.insert(*id, booking);
        }
        bookings.members.insert(booking, members.into());
    }

    /// Multi-room booking `booking`'s reservations, in the order the request listed them.
    pub(crate) fn booking_members(&self, booking: &BookingId) -> Option<Box<[ReservationId]>> {
        read(&self.bookings).members.get(booking).cloned()
    }

    /// The multi-room booking reservation `id` belongs to, if any.
    pub(crate) fn booking_of(&self, id: &ReservationId) -> Option<BookingId> {
        read(&self.bookings).of.get(id).copied()
    }

    /// The availability index of `shard`: only the rooms it hosts write it.
    pub(crate) fn index(&self, shard: usize) -> &RwLock<AvailabilityIndex> {
        &self.index[shard].0
    }

    /// How many shard indexes there are.
    pub(crate) fn shards(&self) -> usize {
        self.index.len()
    }

    /// Enters a room placed on `shard`, with its `sold` nights, in that shard's index (or
    /// moves it to another type there).
    pub(crate) fn index_room(
        &self,
        shard: usize,
        key: &RoomKey,
        room_type: &RoomTypeCode,
        sold: &[innkeep_engine::jiff::civil::Date],
    ) {
        let mut index = write(self.index(shard));
        index.put_room(key, room_type);
        index.apply_delta(key, sold, &[]);
    }

    /// How many stays of `stay`'s nights the type can still sell, rearranging rooms as
    /// needed: the fewest rooms it has free on any one night, over every shard. At least the
    /// number of rooms free for the whole stay; more when the free nights are spread over
    /// rooms ([`crate::rearranging`]).
    pub(crate) fn sellable_count(
        &self,
        hotel_id: &HotelId,
        room_type: &RoomTypeCode,
        stay: &Stay,
    ) -> usize {
        // One shard's index locked at a time.
        let mut free: Vec<usize> = vec![0; stay.each_night().count()];
        for i in self.index.iter() {
            let index = read(&i.0);
            for (n, night) in free.iter_mut().zip(stay.each_night()) {
                *n += index.free_on(hotel_id, room_type, night);
            }
        }
        free.into_iter().min().unwrap_or(0)
    }

    /// At most `limit` rooms of the type, those with the most free nights of `stay`
    /// first (then in room-number order), over every shard.
    pub(crate) fn rooms_with_most_free_nights(
        &self,
        hotel_id: &HotelId,
        room_type: &RoomTypeCode,
        stay: &Stay,
        limit: usize,
    ) -> Vec<innkeep_engine::RoomNumber> {
        let mut rooms: Vec<(usize, innkeep_engine::RoomNumber)> = self
            .index
            .iter()
            .flat_map(|i| read(&i.0).free_nights_by_room(hotel_id, room_type, stay))
            .collect();
        rooms.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        rooms.truncate(limit);
        rooms.into_iter().map(|(_, number)| number).collect()
    }

    /// Numbers a new room for the locator (called once per room, when it is created).
    pub(crate) fn add_room(&self, key: &RoomKey) -> u32 {
        let mut rooms = write(&self.rooms);
        // A node with 2^32 rooms would need terabytes for their actors alone.
        let number = u32::try_from(rooms.len()).unwrap_or(u32::MAX);
        rooms.push(key.clone());
        number
    }

    /// The room holding reservation `id`.
    pub(crate) fn locate(&self, id: &ReservationId) -> Option<RoomKey> {
        let number = *self.locator.lock(id).get(id)?;
        read(&self.rooms).get(number as usize).cloned()
    }

    /// Runs `call` against the room holding reservation `id`. A room move (the staff's,
    /// or a rearrangement for another booking) can take the reservation away between
    /// reading the locator and the room answering; then the room says `not_found` while the
    /// locator already names the new room (a rearrangement points it there before any room
    /// applies its part), and the call is made again there: [`MAX_RELOCATIONS`] times at
    /// most, as rearrangements can move one reservation again and again.
    pub(crate) async fn at_its_room<T, F, Fut>(
        &self,
        id: ReservationId,
        call: F,
    ) -> Result<T, EngineError>
    where
        F: Fn(RoomKey) -> Fut,
        Fut: std::future::Future<Output = Result<T, EngineError>>,
    {
        let locate = || {
            self.locate(&id)
                .ok_or(EngineError::Domain(DomainError::NotFound("reservation")))
        };
        let mut key = locate()?;
        let mut relocations = 0;
        loop {
            let result = call(key.clone()).await;
            match result {
                Err(EngineError::Domain(DomainError::NotFound("reservation")))
                    if relocations < MAX_RELOCATIONS =>
                {
                    let now_at = locate()?;
                    if now_at == key {
                        return result;
                    }
                    key = now_at;
                    relocations += 1;
                }
                other => return other,
            }
        }
    }

    /// How many reservations the locator knows: every one the rooms hold.
    pub(crate) fn located(&self) -> usize {
        let mut located = 0;
        self.locator.for_each(|stripe| located += stripe.len());
        located
    }

    /// Records that reservation `id` is in the room numbered `room` (given by [`Directory::add_room`] or [`Directory::new`]).
    pub(crate) fn set_location(&self, id: ReservationId, room: u32) {
        self.locator.lock(&id).insert(id, room);
    }

    /// The stripe of the key `slot`.
    pub(crate) fn keys(&self, slot: &(HotelId, IdempotencyKey)) -> MutexGuard<'_, Keys> {
        self.keys.lock(slot)
    }

    /// Every finished idempotency key, for a snapshot.
    pub(crate) fn finished_keys(&self) -> Vec<((HotelId, IdempotencyKey), IdempotencyEntry)> {
        let mut all = Vec::new();
        self.keys.for_each(|keys| {
            all.extend(keys.finished.iter().map(|(k, e)| (k.clone(), *e)));
        });
        all
    }

    /// Drops finished keys `keep` says no to (lapsed ones).
    pub(crate) fn prune_keys(
        &self,
        mut keep: impl FnMut(&innkeep_engine::IdempotencyEntry) -> bool,
    ) {
        self.keys.for_each(|k| k.finished.retain(|_, e| keep(e)));
    }

    /// Open holds of `creator` (running bookings included).
    pub(crate) fn holds_of(&self, creator: &str) -> usize {
        self.hold_slots
            .lock(creator)
            .get(creator)
            .copied()
            .unwrap_or(0)
    }

    /// Takes one of `creator`'s hold slots if fewer than `limit` are taken.
    pub(crate) fn take_slot(&self, creator: &str, limit: usize) -> bool {
        let mut slots = self.hold_slots.lock(creator);
        let n = slots.get(creator).copied().unwrap_or(0);
        if n >= limit {
            return false;
        }
        slots.insert(creator.to_owned(), n + 1);
        true
    }

    /// Counts a recovered open hold of `creator`.
    pub(crate) fn adopt_slot(&self, creator: &str) {
        *self
            .hold_slots
            .lock(creator)
            .entry(creator.to_owned())
            .or_default() += 1;
    }

    /// Gives back one of `creator`'s hold slots.
    pub(crate) fn release_slot(&self, creator: &str) {
        let mut slots = self.hold_slots.lock(creator);
        if let Some(n) = slots.get_mut(creator) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                slots.remove(creator);
            }
        }
    }
}

/// The locator of recovered `rooms` (room `rooms[n]` numbered `n`), built without locks:
/// one thread per core fills its share of the stripes, each sized for its share of the
/// reservations first (a restart locates millions; growing the maps as they fill would
/// copy each of them several times).
fn locator_of(rooms: &[RoomState]) -> Striped<IdMap<u32>> {
    let reservations: usize = rooms.iter().map(|room| room.ledger.len()).sum();
    // A stripe's share, with room for the spread of a hash over the stripes.
    let per_stripe = reservations / STRIPES + reservations / STRIPES / 8 + 16;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, STRIPES);
    let mut stripes: Vec<Option<IdMap<u32>>> = (0..STRIPES).map(|_| None).collect();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    // This thread's stripes are those whose index is `t` modulo `threads`.
                    let mut mine: Vec<IdMap<u32>> = (t..STRIPES)
                        .step_by(threads)
                        .map(|_| IdMap::with_capacity_and_hasher(per_stripe, Default::default()))
                        .collect();
                    for (number, room) in (0u32..).zip(rooms) {
                        for r in room.ledger.iter() {
                            let id = r.id();
                            let stripe = stripe_of(&id);
                            if stripe % threads == t {
                                mine[stripe / threads].insert(id, number);
                            }
                        }
                    }
                    mine
                })
            })
            .collect();
        for (t, worker) in workers.into_iter().enumerate() {
            let mine = worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            for (k, map) in mine.into_iter().enumerate() {
                stripes[t + k * threads] = Some(map);
            }
        }
    });
    Striped {
        stripes: stripes
            .into_iter()
            .map(|m| Stripe(Mutex::new(m.unwrap_or_default())))
            .collect(),
    }
}

/// The stripe a key is kept in. A fixed hasher: the stripe of a key is the same in every
/// call (and process), whatever `std`'s random seeds.
fn stripe_of<K: Hash + ?Sized>(key: &K) -> usize {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % STRIPES as u64) as usize
}

/// A value split over [`STRIPES`] mutexes, each on its own cache line; a key always
/// finds its part in the same stripe.
#[derive(Debug)]
pub(crate) struct Striped<T> {
    stripes: Box<[Stripe<T>]>,
}

#[derive(Debug, Default)]
#[repr(align(64))]
struct Stripe<T>(Mutex<T>);

impl<T: Default> Default for Striped<T> {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
        }
    }
}

impl<T> Striped<T> {
    /// Locks the stripe of `key` ([`stripe_of`]).
    pub(crate) fn lock<K: Hash + ?Sized>(&self, key: &K) -> MutexGuard<'_, T> {
        self.stripes[stripe_of(key)]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on every stripe, one at a time.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&mut T)) {
        for s in self.stripes.iter() {
            f(&mut s.0.lock().unwrap_or_else(PoisonError::into_inner));
        }
    }
}

/// Read lock that survives poisoning: a panicking writer never leaves these views
/// half-updated (each write is a single map operation), so the data is still good. (A
/// panic on an engine thread aborts the process anyway; see `crate::crash`.)
pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// Write lock; see [`read`].
pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of two shards with no hotel, room or key yet.
    fn empty() -> Directory {
        Directory::new(
            2,
            Catalog::default(),
            &[],
            IdempotencyMap::default(),
            Clock::system(),
            Faults::default(),
        )
    }

    /// A key finds the same stripe every time, and different keys spread over stripes.
    #[test]
    fn a_key_always_finds_its_stripe() {
        let striped: Striped<HashMap<String, usize>> = Striped::default();
        for i in 0..1000 {
            striped.lock(&format!("k{i}")).insert(format!("k{i}"), i);
        }
        for i in 0..1000 {
            assert_eq!(
                striped.lock(&format!("k{i}")).get(&format!("k{i}")),
                Some(&i)
            );
        }
        let mut used = 0;
        striped.for_each(|m| used += usize::from(!m.is_empty()));
        assert!(used > STRIPES / 2, "1000 keys used only {used} stripes");
    }

    /// A directory over recovered rooms locates every reservation they keep, in the room
    /// numbered by its place, and nothing else.
    #[test]
    fn recovered_rooms_locate_their_reservations() {
        use innkeep_engine::{
            BookRequest, Currency, Event, Guest, Money, RatePlanCode, RoomNumber, Stay,
        };
        let hotel = HotelId::parse("H").unwrap();
        let room_type = RoomTypeCode::parse("STD").unwrap();
        let guest = Guest::parse("Li Lei", "+86 138 0000 0000", "li@example.com").unwrap();
        let mut rooms: Vec<RoomState> = (0..5)
            .map(|n| {
                let key = RoomKey {
                    hotel_id: hotel.clone(),
                    number: RoomNumber::parse(&n.to_string()).unwrap(),
                };
                RoomState::new(key, room_type.clone())
            })
            .collect();
        let mut expected = Vec::new();
        for k in 0..1000u32 {
            let n = (k % 5) as usize;
            let arrival = innkeep_engine::jiff::civil::date(2030, 1, 1)
                .checked_add(innkeep_engine::jiff::Span::new().days(i64::from(k / 5)))
                .unwrap();
            let req = BookRequest {
                hotel_id: hotel.clone(),
                room_type: room_type.clone(),
                stay: Stay::between(arrival, arrival.tomorrow().unwrap()).unwrap(),
                guests: 1,
                guest: guest.clone(),
                room: None,
                rate_plan: RatePlanCode::bar(),
            };
            let id = ReservationId(uuid::Uuid::from_u128(u128::from(k) + 1));
            let reservation = innkeep_engine::state::new_reservation(
                &req,
                rooms[n].key.number.clone(),
                Money {
                    amount_minor: 100,
                    currency: Currency::parse("CNY").unwrap(),
                },
                id,
                innkeep_engine::jiff::Timestamp::from_second(1_900_000_000).unwrap(),
                innkeep_engine::jiff::SignedDuration::from_mins(15),
            );
            rooms[n].apply(&Event::ReservationCreated {
                reservation: reservation.into(),
                idempotency: None,
            });
            expected.push((id, n));
        }
        let d = Directory::new(
            2,
            Catalog::default(),
            &rooms,
            IdempotencyMap::default(),
            Clock::system(),
            Faults::default(),
        );
        for (id, n) in expected {
            assert_eq!(d.locate(&id), Some(rooms[n].key.clone()));
        }
        assert_eq!(d.locate(&ReservationId(uuid::Uuid::from_u128(5000))), None);
        assert_eq!(d.located(), 1000);
    }

    /// A call that finds the reservation gone from its room follows the locator to the room
    /// it names now; when the locator still names the same room, or the reservation keeps
    /// moving past [`MAX_RELOCATIONS`], the room's `not_found` is the answer.
    #[tokio::test]
    async fn a_call_follows_a_reservation_that_moved_on_its_way() {
        use innkeep_engine::RoomNumber;
        let d = empty();
        let keys: Vec<RoomKey> = (0..8)
            .map(|n| RoomKey {
                hotel_id: HotelId::parse("H").unwrap(),
                number: RoomNumber::parse(&n.to_string()).unwrap(),
            })
            .collect();
        for k in &keys {
            d.add_room(k);
        }
        let id = ReservationId(uuid::Uuid::from_u128(7));
        fn not_found() -> Result<RoomKey, EngineError> {
            Err(EngineError::Domain(DomainError::NotFound("reservation")))
        }
        let calls = std::cell::Cell::new(0u32);
        // Moves `moves` times, each time just before the call reaches the room it left.
        let (calls, d) = (&calls, &d);
        let moving = |moves: u32| {
            calls.set(0);
            d.set_location(id, 0);
            move |key: RoomKey| {
                let call = calls.get();
                calls.set(call + 1);
                let answer = if call < moves {
                    d.set_location(id, call + 1);
                    not_found()
                } else {
                    Ok(key)
                };
                async move { answer }
            }
        };

        let answer = d.at_its_room(id, moving(1)).await;
        assert_eq!(answer.ok(), Some(keys[1].clone()));
        assert_eq!(calls.get(), 2);

        let limit = MAX_RELOCATIONS as u32;
        let answer = d.at_its_room(id, moving(limit)).await;
        assert_eq!(answer.ok(), Some(keys[MAX_RELOCATIONS].clone()));
        assert_eq!(calls.get(), limit + 1);

        let answer = d.at_its_room(id, moving(limit + 1)).await;
        assert!(matches!(
            answer,
            Err(EngineError::Domain(DomainError::NotFound(_)))
        ));
        assert_eq!(calls.get(), limit + 1);

        // Gone for good: the locator still names the room that said `not_found`.
        calls.set(0);
        let answer = d
            .at_its_room(id, |_: RoomKey| {
                calls.set(calls.get() + 1);
                async { not_found() }
            })
            .await;
        assert!(matches!(
            answer,
            Err(EngineError::Domain(DomainError::NotFound(_)))
        ));
        assert_eq!(calls.get(), 1);

        // Never located: no room is asked.
        let unknown = ReservationId(uuid::Uuid::from_u128(8));
        let answer = d
            .at_its_room(unknown, |_: RoomKey| {
                calls.set(calls.get() + 1);
                async { not_found() }
            })
            .await;
        assert!(answer.is_err());
        assert_eq!(calls.get(), 1);
    }

    /// Hold slots stop at the limit and come back when released.
    #[test]
    fn hold_slots_stop_at_the_limit() {
        let d = empty();
        assert!(d.take_slot("key", 2));
        assert!(d.take_slot("key", 2));
        assert!(!d.take_slot("key", 2));
        assert_eq!(d.holds_of("key"), 2);
        d.release_slot("key");
        assert_eq!(d.holds_of("key"), 1);
        assert!(d.take_slot("key", 2));
        d.adopt_slot("other");
        assert_eq!(d.holds_of("other"), 1);
    }
}
