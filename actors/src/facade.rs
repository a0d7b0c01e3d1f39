//! The embeddable engine: start it from a config, call typed async operations.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use actix::dev::Request;
use actix::prelude::*;
use innkeep_engine::group::{BookingSummary, GroupInput};
use innkeep_engine::jiff::civil::Date;
use innkeep_engine::jiff::{Timestamp, ToSpan};
use innkeep_engine::{
    Action, BookingId, DomainError, Event, Hotel, HotelId, Housekeeping, IdempotencyKey,
    PaymentOutcome, PaymentReport, Reservation, ReservationId, RoomKey, RoomNumber, RoomTypeCode,
    Stay, Upsert, ValidationError,
};
use innkeep_persistence::{FsStorage, Journal, Storage};

use crate::booking::{self, BookingJob};
use crate::bookings::{self, GroupAction, GroupJob};
use crate::config::{BookingPolicy, EngineConfig};
use crate::directory::{read, Directory};
use crate::feed::{EventFeed, FeedEvent, FeedPage, FeedSubscription};
use crate::handles::ByLabel;
use crate::payments::PaymentSupervisor;
use crate::protocol::{
    ApplyPayment, Availability, BookResult, Booking, ChangeReservation, ClearOutOfOrder,
    DecideSetup, EngineError, FrontDeskDay, GetDay, GetReservation, GetStats, GetTape, GetView,
    MoveReservation, PaymentStatsView, PutHotel, PutRate, PutRoom, PutRoomType, RestrictionChange,
    RoomView, SetHousekeeping, SetOutOfOrder, StartError, TapeChart, TypeAvailability,
    TAPE_MAX_NIGHTS,
};
use crate::room::{RoomActor, Rooms};
use crate::shards::{self, Shards};
use crate::snapshot::{self, SnapshotStatus, Trigger};
use crate::startup::{self, Started};
use crate::supervisor::OrderSupervisor;
use innkeep_engine::selling::{RatePlan, Restriction};
use innkeep_engine::BookInput;
use innkeep_engine::RatePlanCode;
use tokio::sync::oneshot;

/// Counter of bookings by outcome: `created`, `replayed` (idempotent replay), or the
/// error code (`sold_out`, `too_many_holds`, `overloaded`, ...).
pub const METRIC_BOOKINGS: &str = "innkeep_bookings_total";

/// Histogram of the bookings in each batch a shard ran: the calls that reached it
/// together (a `book_many` share counts whole). Shows how much the batching saves.
pub const METRIC_BOOKING_BATCH: &str = "innkeep_booking_batch_size";

/// A running Innkeep engine: actors, journal, snapshots and timers. Cheap to clone; every
/// clone talks to the same engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    /// How it was started.
    config: EngineConfig,
    /// Durable events for live subscribers (SSE).
    feed: Arc<EventFeed>,
    /// Catalog, availability indexes, locator, idempotency keys, hold slots.
    directory: Arc<Directory>,
    /// Every room's actor and shard.
    rooms: Arc<Rooms>,
    /// The order supervisor.
    supervisor: Addr<OrderSupervisor>,
    /// The payment supervisor.
    payments: Addr<PaymentSupervisor>,
    /// The shards hosting the rooms (and, in the server, HTTP); every booking runs as a
    /// task on one: the calling shard's, or round-robin for callers on no shard.
    shards: Shards,
    /// The shard the next booking (or `book_many` share) from a caller on no shard runs on.
    next_shard: AtomicUsize,
    /// Hold length, stay rules and hold cap, for bookings.
    policy: BookingPolicy,
    /// The journal (to drain it on shutdown and report health).
    journal: Journal<Event>,
    /// Calls currently inside the engine, one counter per shard plus a last one for callers
    /// on no shard (an embedder's own threads); each bounded by [`Inner::admit_per_shard`].
    /// Per shard, so a shard flooded with requests sheds its own excess without touching a
    /// counter every other shard writes.
    in_flight: Box<[Counter]>,
    /// Per shard, the bookings waiting for its next batch (`Engine::queue`).
    inboxes: Box<[Inbox]>,
    /// What each counter of `in_flight` may reach: `config.max_in_flight`, capped so that
    /// all of them together stay below a room's mailbox capacity (every call may target one
    /// room), so a `send` never parks and a full shard answers `Overloaded` at once.
    admit_per_shard: usize,
    /// Set once shutdown began: new calls are refused.
    stopping: AtomicBool,
    /// Why the last snapshot failed (`None`: it did not); not ready while it did.
    snapshots: SnapshotStatus,
    /// Decides when to snapshot; asked for a last one on shutdown.
    trigger: Addr<Trigger>,
    /// Threads to join on shutdown: the snapshot writer's.
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// The data dir's lock: held until shutdown has drained the journal, so no second
    /// engine writes beside this one.
    data_dir_lock: Mutex<Option<crate::startup::DataDirLock>>,
    /// The oldest journal record each reader with a durable position of its own still
    /// needs (0: none), by reader; the journal keeps records from the smallest on.
    journal_floors: Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

/// An in-flight counter on a cache line of its own, so shards do not share one.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Counter(AtomicUsize);

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data_dir", &self.inner.config.data_dir)
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

/// A booking refused before it was queued (`Overloaded`, `ShuttingDown`), counted.
fn refused(e: EngineError) -> EngineError {
    count_outcome(e.code());
    e
}

/// Counts a finished booking by outcome ([`METRIC_BOOKINGS`]).
fn count_booking(answer: &booking::Answer) {
    count_outcome(answer.outcome());
}

thread_local! {
    /// This thread's [`METRIC_BOOKINGS`] handles by outcome ([`crate::handles`]).
    static BOOKINGS: std::cell::RefCell<ByLabel<metrics::Counter>> =
        const { std::cell::RefCell::new(ByLabel::new()) };
}

/// Counts a booking with `outcome` ([`METRIC_BOOKINGS`]).
fn count_outcome(outcome: &'static str) {
    BOOKINGS.with_borrow_mut(|handles| {
        handles
            .get(
                outcome,
                || metrics::counter!(METRIC_BOOKINGS, "outcome" => outcome),
            )
            .increment(1);
    });
}

/// A shard's bookings waiting for its next batch. Only that shard's batch task takes
/// them, and callers on the shard add to them, so the lock is nearly always free; other
/// threads add to it only for callers on no shard. On a cache line of its own.
#[derive(Default)]
#[repr(align(64))]
struct Inbox(Mutex<Vec<Queued>>);

/// A call's bookings in a shard's inbox. Each booking holds an in-flight slot of that
/// shard, released by the batch once it is answered (or by [`Engine::abandon`]).
enum Queued {
    /// An [`Engine::book`] call.
    One {
        /// The booking.
        job: BookingJob,
        /// Where its answer goes.
        reply: oneshot::Sender<BookResult>,
    },
    /// A shard's share of an [`Engine::book_many`] call, answered whole: one wake of the
    /// caller per share, not one per booking.
    Share {
        /// The bookings.
        jobs: Vec<BookingJob>,
        /// Where their answers go, in order.
        reply: oneshot::Sender<Vec<BookResult>>,
    },
}

impl Queued {
    /// How many bookings (and slots) it holds.
    fn len(&self) -> usize {
        match self {
            Queued::One { .. } => 1,
            Queued::Share { jobs, .. } => jobs.len(),
        }
    }
}

/// A caller of a batch's bookings, waiting.
enum Waiting {
    /// An [`Engine::book`] call.
    One(Option<oneshot::Sender<BookResult>>),
    /// A `book_many` share: the answers so far, sent when the last is in.
    Share {
        /// Where the share's answers go (taken when they are sent).
        reply: Option<oneshot::Sender<Vec<BookResult>>>,
        /// Each booking's answer, in the share's order, once known.
        results: Vec<Option<BookResult>>,
        /// Answers still to come.
        left: usize,
    },
}

impl Waiting {
    /// Hands over the outcome of the caller's booking at `place`.
    fn answer(&mut self, place: usize, result: BookResult) {
        match self {
            Waiting::One(reply) => {
                if let Some(reply) = reply.take() {
                    let _ = reply.send(result);
                }
            }
            Waiting::Share {
                reply,
                results,
                left,
            } => {
                if let Some(slot) = results.get_mut(place) {
                    *slot = Some(result);
                    *left -= 1;
                }
                if *left == 0 {
                    if let Some(reply) = reply.take() {
                        let all = std::mem::take(results)
                            .into_iter()
                            .map(|r| r.unwrap_or(Err(EngineError::ShuttingDown)))
                            .collect();
                        let _ = reply.send(all);
                    }
                }
            }
        }
    }
}

/// A batch task that has not taken its inbox yet: dropped unrun (its shard stopped first),
/// it empties the inbox, so the callers waiting there hear `ShuttingDown` instead of
/// waiting for an engine they keep alive themselves.
struct Unrun(Option<(Engine, usize)>);

impl Unrun {
    /// The engine and the shard, for the batch that now runs.
    fn run(mut self) -> Option<(Engine, usize)> {
        self.0.take()
    }
}

impl Drop for Unrun {
    fn drop(&mut self) {
        if let Some((engine, shard)) = self.0.take() {
            engine.abandon(shard);
        }
    }
}

/// Releases an in-flight slot when the call ends (or its future is dropped).
struct Slot<'a>(&'a AtomicUsize);

impl Slot<'_> {
    /// Keeps the slot taken past this call: a queued booking's is released by its batch.
    fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Locks an inbox; a panic while it was held aborts the process (crash-only), so a
/// poisoned lock is only seen on the way down.
fn lock(inbox: &Mutex<Vec<Queued>>) -> std::sync::MutexGuard<'_, Vec<Queued>> {
    inbox.lock().unwrap_or_else(PoisonError::into_inner)
}

fn mailbox(_: MailboxError) -> EngineError {
    EngineError::ShuttingDown
}

impl Engine {
    /// Recovers state from `config.data_dir` and starts everything. Blocks until recovery
    /// is done. Call it from a plain thread or `spawn_blocking`: it starts its own shards
    /// ([`Shards::start`], `config.shards`) and must not run on a tokio worker.
    pub fn start(config: EngineConfig) -> Result<Engine, StartError> {
        Engine::start_with_storage(config, Box::new(FsStorage::new()))
    }

    /// [`Engine::start`] with the journal's file operations going through `storage`, e.g.
    /// a [`innkeep_persistence::FaultyStorage`] that fails chosen writes or syncs.
    ///
    /// Supervision is crash-only: the first start in a process installs a process-wide
    /// panic hook, chained to the one before it. A panic on a thread of the engine (its
    /// shards, actix system thread, journal writer, snapshot writer, replay) is logged
    /// with `tracing::error!` and aborts the process; the next start recovers from the
    /// journal. Panics on every other thread go to the previous hook as before.
    pub fn start_with_storage(
        config: EngineConfig,
        storage: Box<dyn Storage>,
    ) -> Result<Engine, StartError> {
        let shards = Shards::start(config.shards).map_err(|e| StartError::Actors(e.to_string()))?;
        let started = Engine::start_on(shards.clone(), config, storage);
        if started.is_err() {
            shards.stop();
        }
        started
    }

    /// [`Engine::start_with_storage`] on shards the caller started already (the server
    /// starts them first, to answer HTTP on them while recovery runs). The engine takes
    /// them over: its shutdown stops them. On error the shards are left running.
    pub fn start_on(
        shards: Shards,
        config: EngineConfig,
        storage: Box<dyn Storage>,
    ) -> Result<Engine, StartError> {
        Engine::start_from(shards, config, storage, None)
    }

    /// [`Engine::start_on`] with the state already in memory: `state` is what recovery of
    /// `config.data_dir` would give, up to journal seq `last_seq`, and the data dir holds
    /// no snapshot. A standby that followed a partition's stream into its journal, and
    /// applied each event as it went, starts serving without replaying it. The event
    /// feed's resume window starts empty.
    pub fn start_followed(
        shards: Shards,
        config: EngineConfig,
        storage: Box<dyn Storage>,
        state: innkeep_engine::State,
        last_seq: u64,
    ) -> Result<Engine, StartError> {
        Engine::start_from(shards, config, storage, Some((state, last_seq)))
    }

    fn start_from(
        shards: Shards,
        config: EngineConfig,
        storage: Box<dyn Storage>,
        followed: Option<(innkeep_engine::State, u64)>,
    ) -> Result<Engine, StartError> {
        crate::crash::install();
        let Started {
            feed,
            directory,
            rooms,
            supervisor,
            payments,
            trigger,
            journal,
            policy,
            snapshot_status,
            snapshot_thread,
            admit_per_shard,
            data_dir_lock,
        } = startup::start(&shards, &config, storage, followed)?;
        Ok(Engine {
            inner: Arc::new(Inner {
                config,
                feed,
                directory,
                rooms,
                supervisor,
                payments,
                admit_per_shard,
                in_flight: (0..=shards.len()).map(|_| Counter::default()).collect(),
                inboxes: (0..shards.len()).map(|_| Inbox::default()).collect(),
                shards,
                next_shard: AtomicUsize::new(0),
                policy,
                journal,
                stopping: AtomicBool::new(false),
                snapshots: snapshot_status,
                trigger,
                threads: Mutex::new(vec![snapshot_thread]),
                data_dir_lock: Mutex::new(Some(data_dir_lock)),
                journal_floors: Mutex::default(),
            }),
        })
    }

    /// Subscribes to durable events after `after` (a client's `Last-Event-ID`), or to new
    /// events only. Every hotel's events come through; callers filter.
    pub fn events(&self, after: Option<u64>) -> FeedSubscription {
        self.inner.feed.subscribe(after)
    }

    /// At most `max_events` durable events after `after`, from the in-memory window, for a
    /// reader at its own pace (outbound webhooks); see [`EventFeed::page_after`].
    pub fn events_page(&self, after: u64, max_events: usize) -> FeedPage {
        self.inner.feed.page_after(after, max_events)
    }

    /// The sequence number the next durable event will have; `changed()` wakes a reader
    /// that has read everything so far.
    pub fn watch_next_event_seq(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.feed.watch_next_seq()
    }

    /// At most `max_events` durable events after `after` read from the journal's files,
    /// for a reader behind the in-memory window; the first may come later than `after + 1`
    /// when the journal no longer holds those (see [`innkeep_persistence::read_after`]).
    /// The files are read on tokio's blocking pool.
    pub async fn journal_events_after(
        &self,
        after: u64,
        max_events: usize,
    ) -> Result<Vec<FeedEvent>, EngineError> {
        let dir = self.inner.journal.dir().to_path_buf();
        let read = tokio::task::spawn_blocking(move || {
            innkeep_persistence::read_after::<crate::recovery::Journaled>(&dir, after, max_events)
        })
        .await
        .map_err(|e| EngineError::Unavailable(format!("journal reader stopped: {e}")))?;
        let records = read.map_err(|e| EngineError::Unavailable(e.to_string()))?;
        // Only durable records: the writer may be writing a batch past them.
        let durable = self.inner.journal.durable_seq();
        Ok(records
            .into_iter()
            .take_while(|(seq, _)| *seq <= durable)
            .map(|(seq, crate::recovery::Journaled(event))| FeedEvent {
                seq,
                event: Arc::new(event),
            })
            .collect())
    }

    /// Keeps every journal record from `seq` on in the files for `reader`, whatever
    /// snapshots cover, until that reader moves its floor again (0: it needs none): a
    /// reader that is behind (a webhook's durable cursor, a stream publisher) still needs
    /// them. The journal keeps what the reader furthest behind needs; the first call
    /// replaces the start-up floor (`EngineConfig::journal_retain_from`). See
    /// [`innkeep_persistence::Journal::retain_from`].
    pub fn retain_journal_from(&self, reader: &'static str, seq: u64) {
        let mut floors = self
            .inner
            .journal_floors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        floors.insert(reader, seq);
        let floor = floors
            .values()
            .copied()
            .filter(|&f| f > 0)
            .min()
            .unwrap_or(0);
        self.inner.journal.retain_from(floor);
    }

    /// The shards the engine runs its rooms on (to run work there, e.g. a server's
    /// connections, so that it shares a thread with the rooms it calls).
    pub fn shards(&self) -> &Shards {
        &self.inner.shards
    }

    /// The shard hosting room `key`, if there is such a room.
    pub fn shard_of(&self, key: &RoomKey) -> Option<usize> {
        self.inner.rooms.read().get(key).map(|h| h.shard)
    }

    /// The configuration the engine runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The engine's current instant ([`EngineConfig::clock`]).
    pub fn now(&self) -> Timestamp {
        self.inner.config.clock.now()
    }

    /// The directory, the room registry and the booking policy, for the crate's tests that
    /// talk to the rooms themselves.
    #[cfg(test)]
    pub(crate) fn internals(&self) -> (&Arc<Directory>, &Arc<Rooms>, BookingPolicy) {
        (&self.inner.directory, &self.inner.rooms, self.inner.policy)
    }

    /// Engine calls in flight right now, all shards together (the bound is `max_in_flight`
    /// per shard). Calls are bounded
    /// by this counter rather than by mailbox length, so it is the honest measure of how
    /// full the actors' mailboxes are; exported as a gauge.
    pub fn in_flight(&self) -> usize {
        self.inner
            .in_flight
            .iter()
            .map(|c| c.0.load(Ordering::Relaxed))
            .sum()
    }

    /// Events queued for the journal writer and not yet in a batch (see
    /// [`Journal::queue_len`]).
    pub fn journal_queue_len(&self) -> usize {
        self.inner.journal.queue_len()
    }

    /// Open (unpaid) holds created by `creator`, bookings still running included: what
    /// `max_holds_per_creator` is checked against.
    pub async fn holds_of(&self, creator: &str) -> Result<usize, EngineError> {
        let _slot = self.enter()?;
        Ok(self.inner.directory.holds_of(creator))
    }

    /// Whether the engine accepts work: recovered, not stopping, journal healthy, and the
    /// last snapshot (if any was due) written.
    pub fn is_ready(&self) -> bool {
        !self.inner.stopping.load(Ordering::Acquire)
            && self.inner.journal.is_healthy()
            && self.inner.snapshots.borrow().is_none()
    }

    /// Why the last snapshot failed, if it did; `None` once one succeeds again. The
    /// receiver sees every change, so a monitor (or a test) can wait for one.
    pub fn snapshot_failure(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.inner.snapshots.subscribe()
    }

    /// Takes a snapshot now (after the one being written, if any) and answers with the
    /// journal seq it covers once it is durable: before a backup, or to bound replay after
    /// a burst. Bookings go on meanwhile.
    pub async fn snapshot_now(&self) -> Result<u64, EngineError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner
            .trigger
            .send(snapshot::Now(tx))
            .await
            .map_err(mailbox)?;
        rx.await
            .map_err(|_| EngineError::ShuttingDown)?
            .map_err(EngineError::Unavailable)
    }

    /// Stops accepting work, writes a final snapshot (collected from the rooms, so before
    /// they stop), stops the actors and drains the journal. Idempotent; blocks until done.
    /// Call it after the HTTP server drained, from a thread that is not a shard (the rooms
    /// must run meanwhile): a plain thread or `spawn_blocking`.
    pub fn shutdown(&self) {
        if self.inner.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        // A last snapshot from the rooms while they still run (so the next start replays
        // little): the writer thread ends once it is written, or at once if the system
        // thread is gone (its trigger dropped). Then the actors (no new events), then the
        // journal (drains what is queued). On a shard the rooms of this thread could not
        // answer while it waits here, so there is no last snapshot then: the actors stop
        // first, which drops the trigger and ends the writer.
        let on_shard = shards::current().is_some();
        if on_shard {
            tracing::error!("Engine::shutdown called on a shard thread; no final snapshot");
            self.inner.shards.stop();
        } else {
            let trigger = self.inner.trigger.clone();
            self.inner
                .shards
                .on_system(move || trigger.do_send(snapshot::Final));
        }
        let threads: Vec<JoinHandle<()>> = std::mem::take(
            &mut *self
                .inner
                .threads
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for t in threads {
            let _ = t.join();
        }
        self.inner.shards.stop();
        self.inner.journal.shutdown();
        // Nothing of this engine writes to the data dir any more: another may take it.
        drop(
            self.inner
                .data_dir_lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        tracing::info!("engine stopped");
    }

    /// Whether a call made now from this thread would be refused `Overloaded`: the calls
    /// in flight of its shard (or of the callers on no shard) are at their bound. One
    /// load, so a server can shed a request before it parses or authenticates anything;
    /// the engine's own admission still decides each call.
    pub fn is_saturated(&self) -> bool {
        !self.inner.stopping.load(Ordering::Relaxed)
            && self.counter().load(Ordering::Relaxed) >= self.inner.admit_per_shard
    }

    /// This thread's in-flight counter: its shard's, or the one of callers on no shard.
    fn counter(&self) -> &AtomicUsize {
        let shard =
            shards::current().map_or(self.inner.shards.len(), |s| s.min(self.inner.shards.len()));
        &self.inner.in_flight[shard].0
    }

    /// A shared hold on the setup-and-moves gate, for a change the next snapshot must see
    /// wholly or not at all (see [`crate::directory::Directory::gate`]). Waits only while a
    /// snapshot collects its parts.
    async fn gate(&self) -> crate::protocol::GateGuard {
        self.inner.directory.gate.clone().read_owned().await
    }

    fn enter(&self) -> Result<Slot<'_>, EngineError> {
        self.take_slot(self.counter())
    }

    /// [`Engine::enter`] for a booking that will run on `shard`: a slot of that shard's
    /// bound.
    fn enter_at(&self, shard: usize) -> Result<Slot<'_>, EngineError> {
        self.take_slot(&self.inner.in_flight[shard].0)
    }

    fn take_slot<'a>(&'a self, counter: &'a AtomicUsize) -> Result<Slot<'a>, EngineError> {
        if self.inner.stopping.load(Ordering::Acquire) {
            return Err(EngineError::ShuttingDown);
        }
        let before = counter.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(counter);
        if before >= self.inner.admit_per_shard {
            return Err(EngineError::Overloaded);
        }
        Ok(slot)
    }

    /// Creates or updates a hotel.
    pub async fn put_hotel(
        &self,
        id: HotelId,
        name: &str,
        time_zone: &str,
        currency: &str,
    ) -> Result<Upsert, EngineError> {
        let _slot = self.enter()?;
        let msg = PutHotel {
            gate: self.gate().await,
            id,
            name: name.to_owned(),
            time_zone: time_zone.to_owned(),
            currency: currency.to_owned(),
        };
        self.inner.supervisor.send(msg).await.map_err(mailbox)?
    }

    /// Creates or updates a room type.
    pub async fn put_room_type(
        &self,
        hotel_id: &HotelId,
        code: RoomTypeCode,
        name: &str,
        capacity: u16,
        base_rate_minor: i64,
    ) -> Result<Upsert, EngineError> {
        let _slot = self.enter()?;
        let msg = PutRoomType {
            gate: self.gate().await,
            hotel_id: hotel_id.clone(),
            code,
            name: name.to_owned(),
            capacity,
            base_rate_minor,
        };
        self.inner.supervisor.send(msg).await.map_err(mailbox)?
    }

    /// Creates a room or changes its type.
    pub async fn put_room(
        &self,
        hotel_id: &HotelId,
        number: RoomNumber,
        room_type: RoomTypeCode,
    ) -> Result<Upsert, EngineError> {
        let _slot = self.enter()?;
        let msg = PutRoom {
            gate: self.gate().await,
            hotel_id: hotel_id.clone(),
            number,
            room_type,
        };
        self.inner.supervisor.send(msg).await.map_err(mailbox)?
    }

    /// Sets a nightly rate override for `[from, to)`.
    pub async fn put_rate(
        &self,
        hotel_id: &HotelId,
        code: &RoomTypeCode,
        from: Date,
        to: Date,
        amount_minor: i64,
    ) -> Result<(), EngineError> {
        let _slot = self.enter()?;
        let msg = PutRate {
            gate: self.gate().await,
            hotel_id: hotel_id.clone(),
            code: code.clone(),
            from,
            to,
            amount_minor,
        };
        self.inner.supervisor.send(msg).await.map_err(mailbox)?
    }

    /// Creates or replaces a rate plan.
    pub async fn put_rate_plan(
        &self,
        hotel_id: &HotelId,
        code: RatePlanCode,
        plan: RatePlan,
    ) -> Result<Upsert, EngineError> {
        let _slot = self.enter()?;
        let hotel_id = hotel_id.clone();
        let msg = DecideSetup {
            gate: self.gate().await,
            decide: Box::new(move |catalog| catalog.put_rate_plan(&hotel_id, code, plan)),
        };
        self.inner.supervisor.send(msg).await.map_err(mailbox)?
    }

    /// A hotel's rate plans, the built-in `BAR` included, by code.
    pub fn rate_plans(
        &self,
        hotel_id: &HotelId,
    ) -> Result<Vec<(RatePlanCode, RatePlan)>, EngineError> {
        let catalog = read(&self.inner.directory.catalog);
        Ok(catalog
            .hotel(hotel_id)?
            .all_rate_plans()
            .into_iter()
            .map(|(code, plan)| (code, plan.clone()))
            .collect())
    }

    /// Changes restrictions (see [`innkeep_engine::Catalog::set_restrictions`]).
    pub async fn set_restrictions(&self, change: RestrictionChange) -> Result<(), EngineError> {
        let _slot = self.enter()?;
        let msg = DecideSetup {
            gate: self.gate().await,
            decide: Box::new(move |catalog| {
                let RestrictionChange {
                    hotel_id,
                    from,
                    to,
                    room_types,
                    rate_plans,
                    weekdays,
                    patch,
                } = change;
                catalog
                    .set_restrictions(&hotel_id, from, to, room_types, rate_plans, weekdays, patch)
                    .map(|event| (event, Upsert::Updated))
            }),
        };
        self.inner
            .supervisor
            .send(msg)
            .await
            .map_err(mailbox)?
            .map(|_| ())
    }

    /// The restrictions set on `[from, to)`, by date, room type and plan.
    pub fn restrictions(
        &self,
        hotel_id: &HotelId,
        from: Date,
        to: Date,
    ) -> Result<Vec<(Date, RoomTypeCode, RatePlanCode, Restriction)>, EngineError> {
        Ok(read(&self.inner.directory.catalog).restrictions(hotel_id, from, to)?)
    }

    /// A hotel with its room types and rooms.
    pub fn hotel(&self, id: &HotelId) -> Result<Hotel, EngineError> {
        Ok(read(&self.inner.directory.catalog).hotel(id)?.clone())
    }

    /// The type of a room, if it exists (a read of the catalog; no actor is messaged).
    pub fn room_type_of(&self, key: &RoomKey) -> Option<RoomTypeCode> {
        read(&self.inner.directory.catalog)
            .hotel(&key.hotel_id)
            .ok()?
            .rooms
            .get(&key.number)
            .cloned()
    }

    /// Rooms whose actor runs now; the others are parked, their state waiting in the
    /// registry until their next message ([`EngineConfig::room_idle`]).
    pub fn rooms_awake(&self) -> usize {
        self.inner.rooms.awake()
    }

    /// Sweeps every shard's rooms for idle ones now, as the periodic sweep does
    /// ([`EngineConfig::room_idle`]): a room nobody reached since the previous sweep is
    /// asked to park, and parks once it has handled what was queued before, unless it has
    /// something in flight. Returns how many rooms were asked. (An embedder that just
    /// finished a burst can give the memory back without waiting for the sweeps.)
    pub fn sweep_idle_rooms(&self) -> usize {
        (0..self.inner.shards.len())
            .map(|shard| self.inner.rooms.sweep(shard))
            .sum()
    }

    /// The hotel-local date now.
    pub fn today(&self, hotel_id: &HotelId) -> Result<Date, EngineError> {
        Ok(read(&self.inner.directory.catalog)
            .hotel(hotel_id)?
            .time_zone
            .today(self.now()))
    }

    /// Free rooms and prices per room type for a stay. Reads the availability index; no
    /// room is messaged.
    pub fn availability(
        &self,
        hotel_id: &HotelId,
        arrival: Date,
        departure: Date,
        guests: u16,
    ) -> Result<Availability, EngineError> {
        if guests == 0 {
            return Err(
                DomainError::from(ValidationError::new("guests", "must be at least 1")).into(),
            );
        }
        let catalog = read(&self.inner.directory.catalog);
        let hotel = catalog.hotel(hotel_id)?;
        let today = hotel.time_zone.today(self.now());
        let stay = Stay::parse(arrival, departure, today, self.inner.config.limits)?;
        let directory = &self.inner.directory;
        let room_types = hotel
            .room_types
            .iter()
            .filter(|(_, rt)| rt.capacity >= guests)
            .map(|(code, rt)| {
                let offers = catalog.offers(hotel_id, code, &stay, today)?;
                // The type's own fields are the built-in plan's price (a hotel may have
                // replaced `BAR` with an adjusted one); the type's rate when `BAR` does
                // not sell it.
                let quote = offers
                    .iter()
                    .find(|o| o.rate_plan.is_bar())
                    .map(|o| o.quote.clone())
                    .unwrap_or_else(|| innkeep_engine::catalog::price(hotel, rt, &stay));
                Ok(TypeAvailability {
                    room_type: code.clone(),
                    available: directory.sellable_count(hotel_id, code, &stay),
                    nightly: quote.nightly,
                    total: quote.total,
                    offers,
                })
            })
            .collect::<Result<_, DomainError>>()?;
        Ok(Availability {
            hotel_id: hotel_id.clone(),
            stay,
            room_types,
        })
    }

    /// Books a room (status `pending_payment`). The answer shares the reservation its room
    /// keeps (and the journal wrote): a booking copies it nowhere. With a key, a retry with the same request
    /// returns the same reservation, and concurrent retries create exactly one. A booking
    /// with `input.created_by` set counts against that creator's hold cap
    /// ([`EngineConfig::max_holds_per_creator`]).
    ///
    /// The booking joins the next batch of its shard (the calling shard's, or the next in
    /// turn for callers on no shard) with the bookings that reach the shard meanwhile
    /// (`booking::run_many`): the rooms it gets may differ from those a booking alone would,
    /// never what it may book.
    pub async fn book(
        &self,
        input: BookInput,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Arc<Reservation>, EngineError> {
        let shard = self.booking_shard();
        let slot = match self.enter_at(shard) {
            Ok(slot) => slot,
            Err(e) => return Err(refused(e)),
        };
        slot.keep();
        let job = self.job(input, idempotency_key, self.now());
        let (reply, answer) = oneshot::channel();
        self.queue(shard, Queued::One { job, reply });
        answer.await.unwrap_or(Err(EngineError::ShuttingDown))
    }

    /// Books many rooms in one call: the answers come back in the order of `requests`,
    /// each what [`Engine::book`] would have answered. For embedders that book in bulk:
    /// the requests are dealt over the shards, one share each, and each shard's share
    /// joins its next batch whole, so the shard places it in its own rooms in one pass,
    /// packed (stays of different nights share a room), and each room gets its bookings
    /// in one message. Each booking takes an in-flight slot of its shard, so a batch
    /// larger than a shard admits ([`EngineConfig::max_in_flight`]) gets `Overloaded` for
    /// the excess instead of queuing.
    pub async fn book_many(
        &self,
        requests: Vec<(BookInput, Option<IdempotencyKey>)>,
    ) -> Vec<Result<Arc<Reservation>, EngineError>> {
        let total = requests.len();
        let shards = self.inner.shards.len();
        let per_shard = total.div_ceil(shards).max(1);
        let mut out: Vec<Option<BookResult>> = (0..total).map(|_| None).collect();
        let mut shares = Vec::with_capacity(shards);
        let mut requests = requests.into_iter().enumerate().peekable();
        let mut shard = self.inner.next_shard.fetch_add(1, Ordering::Relaxed);
        // One instant for the whole call.
        let now = self.now();
        while requests.peek().is_some() {
            shard %= shards;
            let mut jobs = Vec::with_capacity(per_shard);
            let mut places = Vec::with_capacity(per_shard);
            for (i, (input, idempotency_key)) in requests.by_ref().take(per_shard) {
                match self.enter_at(shard) {
                    Ok(slot) => {
                        slot.keep();
                        jobs.push(self.job(input, idempotency_key, now));
                        places.push(i);
                    }
                    Err(e) => out[i] = Some(Err(refused(e))),
                }
            }
            if !jobs.is_empty() {
                let (reply, answer) = oneshot::channel();
                self.queue(shard, Queued::Share { jobs, reply });
                shares.push((places, answer));
            }
            shard += 1;
        }
        for (places, answer) in shares {
            // A share whose answer never came (the engine stopped) stays `ShuttingDown`.
            if let Ok(results) = answer.await {
                for (i, result) in places.into_iter().zip(results) {
                    out[i] = Some(result);
                }
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or(Err(EngineError::ShuttingDown)))
            .collect()
    }

    /// The shard a booking from this thread joins: this one on a shard (the server's
    /// requests are), so the booking shares its thread with the rooms it asks first; else
    /// the next in turn.
    fn booking_shard(&self) -> usize {
        shards::current().unwrap_or_else(|| self.inner.next_shard.fetch_add(1, Ordering::Relaxed))
            % self.inner.shards.len()
    }

    /// A booking of `input` made at `now`, with the id a new reservation gets, under the
    /// caller's span.
    fn job(
        &self,
        input: BookInput,
        idempotency_key: Option<IdempotencyKey>,
        now: Timestamp,
    ) -> BookingJob {
        BookingJob {
            input,
            idempotency_key,
            id: ReservationId(uuid::Uuid::now_v7()),
            now,
            span: tracing::Span::current(),
        }
    }

    /// Adds a call's bookings (each holding a slot of `shard`) to `shard`'s inbox, and
    /// starts a batch task there if the inbox was empty. An inbox that holds bookings
    /// always has exactly one batch task started that has not taken them yet: it takes
    /// everything queued by the time it runs, and the next call starts the next.
    fn queue(&self, shard: usize, queued: Queued) {
        let was_empty = {
            let mut inbox = lock(&self.inner.inboxes[shard].0);
            inbox.push(queued);
            inbox.len() == 1
        };
        if !was_empty {
            return;
        }
        let unrun = Unrun(Some((self.clone(), shard)));
        // Boxed, so the spawn moves a pointer (a batch's state is large).
        let task = Box::pin(async move {
            if let Some((engine, shard)) = unrun.run() {
                engine.run_batch(shard).await;
            }
        });
        let spawned = if shards::current() == Some(shard) {
            drop(tokio::spawn(task));
            true
        } else {
            self.inner.shards.spawn(shard, task)
        };
        if !spawned {
            // The task was dropped unrun, which emptied the inbox.
            tracing::debug!(shard, "no shard to run a batch of bookings: shutting down");
        }
    }

    /// Runs `shard`'s inbox as one batch (on that shard): every booking queued so far.
    async fn run_batch(&self, shard: usize) {
        let queued = std::mem::take(&mut *lock(&self.inner.inboxes[shard].0));
        let counter = &self.inner.in_flight[shard].0;
        let bookings = queued.iter().map(Queued::len).sum();
        metrics::histogram!(METRIC_BOOKING_BATCH).record(bookings as f64);
        let mut jobs = Vec::with_capacity(bookings);
        // Per booking: its caller and place there, its slot.
        let mut owners = Vec::with_capacity(bookings);
        let mut waiting = Vec::with_capacity(queued.len());
        for (c, q) in queued.into_iter().enumerate() {
            match q {
                Queued::One { job, reply } => {
                    owners.push((c, 0, Some(Slot(counter))));
                    jobs.push(job);
                    waiting.push(Waiting::One(Some(reply)));
                }
                Queued::Share { jobs: share, reply } => {
                    let n = share.len();
                    for (p, job) in share.into_iter().enumerate() {
                        owners.push((c, p, Some(Slot(counter))));
                        jobs.push(job);
                    }
                    waiting.push(Waiting::Share {
                        reply: Some(reply),
                        results: (0..n).map(|_| None).collect(),
                        left: n,
                    });
                }
            }
        }
        let inner = &self.inner;
        booking::run_many(
            &inner.directory,
            &inner.rooms,
            &inner.journal,
            inner.policy,
            jobs,
            |i, answer| {
                let Some((c, p, slot)) = owners.get_mut(i) else {
                    return;
                };
                // Once per booking: its slot goes with its first answer, and before the
                // caller hears, so a caller that books again at once finds it free.
                if let Some(slot) = slot.take() {
                    drop(slot);
                    count_booking(&answer);
                    waiting[*c].answer(*p, answer.into_result());
                }
            },
        )
        .await;
    }

    /// Empties `shard`'s inbox without running it (its batch task could not run): the
    /// callers hear `ShuttingDown`, and the slots are released.
    fn abandon(&self, shard: usize) {
        let queued = std::mem::take(&mut *lock(&self.inner.inboxes[shard].0));
        let counter = &self.inner.in_flight[shard].0;
        for q in queued {
            for _ in 0..q.len() {
                drop(Slot(counter));
            }
            drop(q);
        }
    }

    /// Runs `work` to its end as a task of its own, so a caller that gives up does not stop
    /// it midway (a booking or a multi-room change must not stop half-way), and on a
    /// shard: on this one when called from one (the server's requests are), so the work
    /// shares its thread with the rooms it asks first; else on the next shard in turn,
    /// never on the caller's own runtime, which could stop with the work half-way.
    async fn on_a_shard<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = Result<T, EngineError>> + Send + 'static,
    ) -> Result<T, EngineError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Boxed here, so the spawn moves a pointer: unboxed, the work's whole state (a
        // booking's is large) was copied four more times on its way into the task, and its
        // cell came from an aligned allocation (measured: 2 % of a shard's time).
        let task = Box::pin(async move {
            let _ = tx.send(work.await);
        });
        let spawned = match shards::current() {
            Some(_) => {
                drop(tokio::spawn(task));
                true
            }
            None => {
                let n = self.inner.next_shard.fetch_add(1, Ordering::Relaxed);
                self.inner.shards.spawn(n, task)
            }
        };
        if !spawned {
            return Err(EngineError::ShuttingDown);
        }
        rx.await.unwrap_or(Err(EngineError::ShuttingDown))
    }

    /// Books one room for each line of `input`, all for the same stay, in one journal
    /// event: every room is taken or none is (409 `sold_out` naming the types short,
    /// [`DomainError::SoldOutTypes`]). The reservations share one payment, the booking's
    /// ([`BookingId::out_trade_no`], for the sum of their totals), and one hold: paying it
    /// confirms them all, its lapse expires them all. Each room counts against the
    /// creator's hold cap. With a key, a retry with the same request answers the same
    /// booking, and concurrent retries create exactly one.
    pub async fn book_group(
        &self,
        input: GroupInput,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Booking, EngineError> {
        let booking = BookingId(uuid::Uuid::now_v7());
        let engine = self.clone();
        let lead = self
            .on_a_shard(async move {
                let _slot = engine.enter()?;
                let job = GroupJob {
                    input,
                    idempotency_key,
                    booking,
                    now: engine.now(),
                };
                let inner = &engine.inner;
                bookings::book(
                    inner.directory.clone(),
                    inner.rooms.clone(),
                    inner.journal.clone(),
                    inner.policy,
                    job,
                )
                .await
            })
            .await?;
        // A key replayed answers the booking its first reservation leads to (a key of a
        // single booking has another fingerprint, so it is refused before this).
        let id = lead.booking().ok_or(DomainError::IdempotencyKeyReused)?;
        self.booking(id).await
    }

    /// A multi-room booking: its reservations as they are now, and what they sum up to.
    pub async fn booking(&self, id: BookingId) -> Result<Booking, EngineError> {
        let members = self
            .inner
            .directory
            .booking_members(&id)
            .ok_or(DomainError::NotFound("booking"))?;
        let reservations =
            futures_util::future::join_all(members.iter().map(|member| self.reservation(*member)))
                .await
                .into_iter()
                .collect::<Result<Vec<_>, _>>()?;
        let summary = {
            let all: Vec<&Reservation> = reservations.iter().map(|r| &**r).collect();
            BookingSummary::of(id, &all).ok_or(DomainError::NotFound("booking"))?
        };
        Ok(Booking {
            hotel_id: reservations[0].hotel_id.clone(),
            reservations,
            summary,
        })
    }

    /// Cancels every reservation of booking `id` that can still be cancelled, in one
    /// journal event (paid ones are owed back what their terms leave, as when each is
    /// cancelled alone). `if_match` is the booking's version the caller saw. A booking
    /// whose reservations all ended already is answered as it is; one with none
    /// cancellable but some not ended (checked in) is `invalid_transition`.
    pub async fn cancel_booking(
        &self,
        id: BookingId,
        if_match: Option<u64>,
    ) -> Result<Booking, EngineError> {
        let changed = self
            .change_booking(id, GroupAction::Change(Action::Cancel), if_match)
            .await?
            .0;
        let booking = self.booking(id).await?;
        if changed == 0 {
            // Ended: every terminal status (a checked-out or no-show stay too, not only a
            // cancelled or expired one); what is left holding nights is a guest in house.
            if let Some(live) = booking
                .reservations
                .iter()
                .find(|r| r.status.holds_nights())
            {
                return Err(DomainError::InvalidTransition {
                    action: "cancel",
                    from: live.status,
                }
                .into());
            }
        }
        Ok(booking)
    }

    /// Applies what the payment provider reports about booking `id`'s payment (its signed
    /// callback) to every reservation of it together, as [`Engine::apply_payment`] does to
    /// one reservation's: a success confirms them all (or, after the hold lapsed, is
    /// recorded with each one's share owed back), a failure is recorded and the hold runs
    /// on. Reports for a payment already settled change nothing.
    pub async fn pay_booking(
        &self,
        id: BookingId,
        report: PaymentReport,
    ) -> Result<(Booking, PaymentOutcome), EngineError> {
        let (_, outcome) = self
            .change_booking(id, GroupAction::Payment(report), None)
            .await?;
        let booking = self.booking(id).await?;
        Ok((booking, outcome.unwrap_or(PaymentOutcome::Duplicate)))
    }

    /// Runs a multi-room change on a shard; answers how many reservations changed, and
    /// for a payment what it did.
    async fn change_booking(
        &self,
        id: BookingId,
        what: GroupAction,
        if_match: Option<u64>,
    ) -> Result<(usize, Option<PaymentOutcome>), EngineError> {
        let engine = self.clone();
        self.on_a_shard(async move {
            let _slot = engine.enter()?;
            let inner = &engine.inner;
            bookings::change(
                &inner.directory,
                &inner.rooms,
                &inner.journal,
                id,
                what,
                if_match,
                engine.now(),
            )
            .await
        })
        .await
    }

    /// The hotel's time zone and its rooms' keys, in room-number order, for a view that
    /// asks every room of the hotel.
    fn zone_and_rooms(
        &self,
        hotel_id: &HotelId,
    ) -> Result<(innkeep_engine::HotelTz, Vec<RoomKey>), EngineError> {
        let catalog = read(&self.inner.directory.catalog);
        let hotel = catalog.hotel(hotel_id)?;
        let keys = hotel
            .rooms
            .keys()
            .map(|n| RoomKey {
                hotel_id: hotel_id.clone(),
                number: n.clone(),
            })
            .collect();
        Ok((hotel.time_zone.clone(), keys))
    }

    /// Sends `msg` to room `key` ([`Rooms::send`]); `not_found` if there is no such room.
    fn send<M>(&self, key: &RoomKey, msg: M) -> Result<Request<RoomActor, M>, EngineError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        RoomActor: Handler<M>,
    {
        self.inner
            .rooms
            .send(key, msg)
            .ok_or(EngineError::Domain(DomainError::NotFound("room")))
    }

    /// Asks each room of `keys` its query from `msg` ([`Rooms::query`]: parked rooms answer
    /// without waking), all asked before this awaits; their answers in the same order.
    async fn ask_all<M>(
        &self,
        keys: &[RoomKey],
        msg: impl Fn() -> M,
    ) -> Result<Vec<M::Result>, EngineError>
    where
        M: crate::room::Query,
        M::Result: Send,
        RoomActor: Handler<M>,
    {
        let asked: Vec<_> = keys
            .iter()
            .map(|k| self.inner.rooms.query(k, msg()))
            .collect();
        futures_util::future::join_all(asked)
            .await
            .into_iter()
            .map(|answer| answer.map_err(mailbox))
            .collect()
    }

    fn locate(&self, id: &ReservationId) -> Result<RoomKey, EngineError> {
        self.inner
            .directory
            .locate(id)
            .ok_or(EngineError::Domain(DomainError::NotFound("reservation")))
    }

    /// A reservation with its history: the one its room holds, shared, not copied.
    pub async fn reservation(&self, id: ReservationId) -> Result<Arc<Reservation>, EngineError> {
        let _slot = self.enter()?;
        self.inner
            .directory
            .at_its_room(id, |key| {
                let asked = self.inner.rooms.query(&key, GetReservation(id));
                async move { Ok(asked.await.map_err(mailbox)??) }
            })
            .await
    }

    /// Moves a reservation (confirmed, or checked in) to another room of its hotel: the new
    /// room takes its nights (from tonight on for a guest already in) and the old room
    /// gives them back, atomically — one journal event. The reservation takes the new
    /// room's type; its price stays. Moving to the room it is in changes nothing.
    pub async fn move_reservation(
        &self,
        id: ReservationId,
        to: RoomNumber,
        if_match: Option<u64>,
    ) -> Result<Reservation, EngineError> {
        let _slot = self.enter()?;
        let msg = MoveReservation {
            gate: self.gate().await,
            id,
            to,
            if_match,
            span: tracing::Span::current(),
        };
        self.inner.supervisor.send(msg).await.map_err(mailbox)?
    }

    /// Modifies a reservation (`pending_payment` or `confirmed`: dates, room type, guests,
    /// guest, rate plan; `checked_in`: the departure only), re-priced for what changed:
    /// in its room when that room can take the new stay, else in another room of the
    /// (new) type — one journal event either way, or nothing changes (`sold_out` with the
    /// nights no room of the type has free, `invalid_stay`, `restricted`, ...). A paid
    /// reservation re-priced owes a difference charge (`balance_due`, charged through the
    /// payment supervisor) or is refunded the difference; an unpaid hold keeps its first
    /// charge, and the difference is settled once that is paid. While an earlier
    /// difference is unsettled the total may not change (`payment_in_progress`).
    /// A request that changes nothing answers the reservation as it is.
    pub async fn modify(
        &self,
        id: ReservationId,
        input: innkeep_engine::ModifyInput,
        if_match: Option<u64>,
    ) -> Result<Reservation, EngineError> {
        let _slot = self.enter()?;
        let msg = crate::protocol::ModifyReservation {
            gate: self.gate().await,
            id,
            input,
            if_match,
            span: tracing::Span::current(),
        };
        self.inner.supervisor.send(msg).await.map_err(mailbox)?
    }

    /// Takes a room out of order for `[from, to)` (hotel-local dates, `from` not before
    /// today): those nights cannot be booked. Refused with every conflicting reservation
    /// listed ([`DomainError::NightsSold`]) while any of them is sold.
    pub async fn set_out_of_order(
        &self,
        hotel_id: &HotelId,
        number: &RoomNumber,
        from: Date,
        to: Date,
        reason: &str,
    ) -> Result<RoomView, EngineError> {
        let _slot = self.enter()?;
        let now = self.now();
        let today = read(&self.inner.directory.catalog)
            .hotel(hotel_id)?
            .time_zone
            .today(now);
        let msg = SetOutOfOrder {
            from,
            to,
            reason: reason.to_owned(),
            now,
            today,
            span: tracing::Span::current(),
        };
        self.send(&self.room_of_hotel(hotel_id, number)?, msg)?
            .await
            .map_err(mailbox)?
    }

    /// Puts a room back in order for its out-of-order range starting at `from`.
    pub async fn clear_out_of_order(
        &self,
        hotel_id: &HotelId,
        number: &RoomNumber,
        from: Date,
    ) -> Result<RoomView, EngineError> {
        let _slot = self.enter()?;
        let msg = ClearOutOfOrder {
            from,
            now: self.now(),
            span: tracing::Span::current(),
        };
        self.send(&self.room_of_hotel(hotel_id, number)?, msg)?
            .await
            .map_err(mailbox)?
    }

    /// The key of room `number` of hotel `hotel_id`: `not_found` for an unknown hotel
    /// first (then [`Engine::send`] answers `not_found` for an unknown room).
    fn room_of_hotel(
        &self,
        hotel_id: &HotelId,
        number: &RoomNumber,
    ) -> Result<RoomKey, EngineError> {
        read(&self.inner.directory.catalog).hotel(hotel_id)?;
        Ok(RoomKey {
            hotel_id: hotel_id.clone(),
            number: number.clone(),
        })
    }

    /// Applies a state-machine action (cancel, check-in, check-out, pay). `if_match` is the
    /// version the caller saw.
    pub async fn change(
        &self,
        id: ReservationId,
        action: Action,
        if_match: Option<u64>,
    ) -> Result<Reservation, EngineError> {
        let _slot = self.enter()?;
        let key = self.locate(&id)?;
        let now = self.now();
        let today = read(&self.inner.directory.catalog)
            .hotel(&key.hotel_id)?
            .time_zone
            .today(now);
        let span = tracing::Span::current();
        self.inner
            .directory
            .at_its_room(id, |key| {
                let msg = ChangeReservation {
                    id,
                    action: action.clone(),
                    if_match,
                    now,
                    today,
                    span: span.clone(),
                };
                let asked = self.send(&key, msg);
                async move { asked?.await.map_err(mailbox)? }
            })
            .await
    }

    /// Applies what the payment provider reports about reservation `id`'s payment (its
    /// signed callback): a success confirms a pending reservation, or — when it expired,
    /// was cancelled or its hold lapsed — is recorded with a refund owed, which the payment
    /// supervisor then issues; a failure is recorded and the hold runs on. Reports for a
    /// payment already settled change nothing ([`PaymentOutcome::Duplicate`]).
    ///
    /// The payment of a multi-room booking's reservation is the booking's: a report about
    /// it (not about a difference charge of its own) is applied to the whole booking
    /// ([`Engine::pay_booking`]), and the answer is this reservation as it is after.
    pub async fn apply_payment(
        &self,
        id: ReservationId,
        report: PaymentReport,
    ) -> Result<(Reservation, PaymentOutcome), EngineError> {
        let booking = self.inner.directory.booking_of(&id);
        if let (Some(booking), false) = (
            booking,
            matches!(report, PaymentReport::BalanceSucceeded { .. }),
        ) {
            let (after, outcome) = self.pay_booking(booking, report).await?;
            let r = after
                .reservations
                .iter()
                .find(|r| r.id == id)
                .ok_or(DomainError::NotFound("reservation"))?;
            return Ok((Reservation::clone(r), outcome));
        }
        let _slot = self.enter()?;
        let now = self.now();
        let span = tracing::Span::current();
        self.inner
            .directory
            .at_its_room(id, |key| {
                let msg = ApplyPayment {
                    id,
                    report: report.clone(),
                    now,
                    span: span.clone(),
                };
                let asked = self.send(&key, msg);
                async move { asked?.await.map_err(mailbox)? }
            })
            .await
    }

    /// What the payment supervisor has done so far, and what it still owes.
    pub async fn payment_stats(&self) -> Result<PaymentStatsView, EngineError> {
        let _slot = self.enter()?;
        self.inner.payments.send(GetStats).await.map_err(mailbox)
    }

    /// Every room of a hotel with its live status, in room-number order.
    pub async fn rooms(&self, hotel_id: &HotelId) -> Result<Vec<RoomView>, EngineError> {
        let _slot = self.enter()?;
        let keys: Vec<RoomKey> = read(&self.inner.directory.catalog)
            .hotel(hotel_id)?
            .rooms
            .keys()
            .map(|n| RoomKey {
                hotel_id: hotel_id.clone(),
                number: n.clone(),
            })
            .collect();
        self.ask_all(&keys, || GetView).await
    }

    /// The front desk's lists for the hotel-local `date` (today in the hotel's zone when
    /// `None`): arrivals, departures and the guests in house, each sorted by room, then
    /// reservation id. Asks every room of the hotel, like [`Engine::rooms`].
    pub async fn front_desk(
        &self,
        hotel_id: &HotelId,
        date: Option<Date>,
    ) -> Result<FrontDeskDay, EngineError> {
        let _slot = self.enter()?;
        let (tz, keys) = self.zone_and_rooms(hotel_id)?;
        let date = date.unwrap_or_else(|| tz.today(self.now()));
        let days = self
            .ask_all(&keys, || GetDay {
                date,
                tz: tz.clone(),
            })
            .await?;
        let mut out = FrontDeskDay {
            hotel_id: hotel_id.clone(),
            date,
            arrivals: Vec::new(),
            departures: Vec::new(),
            in_house: Vec::new(),
        };
        for day in days {
            out.arrivals.extend(day.arrivals);
            out.departures.extend(day.departures);
            out.in_house.extend(day.in_house);
        }
        for list in [&mut out.arrivals, &mut out.departures, &mut out.in_house] {
            list.sort_by(|a, b| (&a.room, a.id).cmp(&(&b.room, b.id)));
        }
        Ok(out)
    }

    /// The tape chart: every room of the hotel with what holds its nights `[from, from +
    /// nights)` (from today in the hotel's zone when `from` is `None`) and its out-of-order
    /// ranges there. `nights` is 1..=[`TAPE_MAX_NIGHTS`]. Asks every room of the hotel,
    /// like [`Engine::rooms`]; each room reads only its calendar's spans in the window.
    pub async fn tape(
        &self,
        hotel_id: &HotelId,
        from: Option<Date>,
        nights: u32,
    ) -> Result<TapeChart, EngineError> {
        if !(1..=TAPE_MAX_NIGHTS).contains(&nights) {
            return Err(DomainError::from(ValidationError::new(
                "nights",
                format!("must be 1 to {TAPE_MAX_NIGHTS}"),
            ))
            .into());
        }
        let _slot = self.enter()?;
        let (tz, keys) = self.zone_and_rooms(hotel_id)?;
        let from = from.unwrap_or_else(|| tz.today(self.now()));
        // The last civil date is 9999-12-31: a window past it has no end to ask for.
        let to = from.checked_add(i64::from(nights).days()).map_err(|_| {
            DomainError::from(ValidationError::new(
                "from",
                "is too late: the window would end after 9999-12-31",
            ))
        })?;
        // In the catalog's order: by room number.
        let rooms = self.ask_all(&keys, || GetTape { from, to }).await?;
        Ok(TapeChart {
            hotel_id: hotel_id.clone(),
            from,
            to,
            nights,
            rooms,
        })
    }

    /// Sets a room's housekeeping status.
    pub async fn set_housekeeping(
        &self,
        hotel_id: &HotelId,
        number: &RoomNumber,
        status: Housekeeping,
    ) -> Result<RoomView, EngineError> {
        let _slot = self.enter()?;
        let msg = SetHousekeeping {
            status,
            now: self.now(),
            span: tracing::Span::current(),
        };
        self.send(&self.room_of_hotel(hotel_id, number)?, msg)?
            .await
            .map_err(mailbox)?
    }
}
