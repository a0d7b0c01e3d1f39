//! Snapshots taken from the rooms themselves: no second copy of the state.
//!
//! A snapshot is a set of parts, each as of its own journal sequence number (its cut):
//! every room encodes its own state on its own shard, between two of its messages, and
//! marks the journal ([`innkeep_persistence::Journal::mark`]) in the same breath, so the
//! mark's seq is exactly the last of the room's events the bytes reflect. Bookings pause
//! for one room's encoding at a time, never for the whole state. Around the rooms:
//!
//! - the catalog, copied while the snapshot holds [`Directory::gate`] exclusively. Setup
//!   commands and moves (the only events that touch the catalog or two rooms) hold the
//!   gate shared from decision to application, so each lies wholly before the snapshot's
//!   start or wholly after every cut: recovery replays none of them half.
//! - the idempotency keys, read after every room answered. A booking records its key
//!   before queuing its event ([`crate::room`]), so every key of an event a room part
//!   reflects is there; a key of a booking that then failed points at no reservation
//!   and recovery drops it.
//!
//! The catalog's cut (`setup_seq`) is the journal's durable seq when the gate was taken:
//! every setup event and move is at or before it, or after every room's cut. Replay
//! starts after the snapshot's seq: `setup_seq`, or lower if some room held a reservation
//! whose creation was queued before that and not yet acknowledged to it
//! ([`crate::protocol::RoomPart::pending`]): such a reservation survives recovery only if
//! the journal holds its creation, so the journal must keep it. Each room is given only
//! the events past its own cut, the catalog and moves only those past `setup_seq`.
//!
//! Encoding happens on the shards; writing (sled, fsync) on the snapshot writer thread,
//! which never touches actors.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::prelude::*;
use crossbeam_channel::{Receiver, Sender};
use innkeep_engine::{Catalog, Event, HotelId, IdempotencyEntry, IdempotencyKey, ReservationId};
use innkeep_persistence::{Blob, Journal, SnapshotStore};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::directory::{read, Directory};
use crate::room::Rooms;

/// Rooms asked for their part at once. Each shard encodes its share of them back to back,
/// and a booking that arrives meanwhile waits: fewer at once keep that wait short, more
/// finish the collection (and free the gate) sooner. Measured at 10 000 bookings/s with a
/// snapshot every 30 000 events (BENCHMARKS.md): 64 at once gave a client p99 of 31.9 ms,
/// 8 gave 13.7 / 10.9 ms, 2 gave 20.9 / 18.2 ms (the collection then spans more requests).
const ROOMS_AT_ONCE: usize = 8;

/// How often the trigger looks at whether a snapshot is due.
const TRIGGER_TICK: Duration = Duration::from_millis(50);

/// Histogram of seconds one snapshot took (collect, write, flush, sync), successful or
/// not.
pub const METRIC_SNAPSHOT_SECONDS: &str = "innkeep_snapshot_duration_seconds";

/// Why the last snapshot failed, or `None` when it succeeded (or none was due yet). While
/// it is `Some` the engine is not ready ([`crate::Engine::is_ready`]): a node that cannot
/// snapshot keeps every journal segment and will fill its disk.
pub(crate) type SnapshotStatus = Arc<watch::Sender<Option<String>>>;

/// The next snapshot waits for at least as many events as the state holds reservations
/// divided by this, whatever `every_events` says. Each snapshot re-encodes every
/// reservation (about 0.2 µs each, on the shards and the writer thread together), so a
/// fixed spacing makes each event's share of that work grow with the state: every 100 000
/// events, it is 2 µs per event with 1M reservations and 20 µs with 10M, over a third of a
/// booking's CPU over HTTP. Spaced by a quarter of the state, the share stays under
/// 0.8 µs at any size, and the journal a restart replays after the last snapshot stays
/// under a quarter of the state (0.19 s for 1M reservations at recovery's 1.3M events/s).
const SPACING_STATE_DIVISOR: u64 = 4;

/// When to take a snapshot.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SnapshotPolicy {
    /// After this many events since the last one (or more with a large state: see
    /// [`SnapshotPolicy::spacing_events`]).
    pub every_events: u64,
    /// Or this long, if anything happened.
    pub every: Duration,
}

impl SnapshotPolicy {
    /// Events after which a snapshot is due, for a state of `reservations`:
    /// `every_events`, or a quarter of the state when that is more
    /// ([`SPACING_STATE_DIVISOR`]).
    pub(crate) fn spacing_events(&self, reservations: usize) -> u64 {
        let share = u64::try_from(reservations).unwrap_or(u64::MAX) / SPACING_STATE_DIVISOR;
        self.every_events.max(share)
    }
}

/// The stored form: [`SnapshotStore::save`] writes this.
#[derive(Serialize, Deserialize, Debug, Default)]
pub(crate) struct Parts {
    /// Hotels, room types, rooms, rates.
    pub catalog: Catalog,
    /// The last seq `catalog` reflects; moves up to it are in the rooms too.
    pub setup_seq: u64,
    /// Every room.
    pub rooms: Vec<StoredRoom>,
    /// Finished idempotency keys (some may point at bookings that failed).
    pub idempotency: Vec<((HotelId, IdempotencyKey), IdempotencyEntry)>,
}

/// One room's part.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct StoredRoom {
    /// The last journal seq the state reflects for this room.
    pub cut_seq: u64,
    /// Reservations in the state whose creation was not yet acknowledged when it was
    /// encoded: kept by recovery only if the journal holds their creation.
    pub pending: Vec<ReservationId>,
    /// The room's [`innkeep_engine::RoomState`], encoded on its shard.
    pub state: Blob,
}

/// Told a snapshot's seq once it is durable, or why it failed.
pub(crate) type Waiter = tokio::sync::oneshot::Sender<Result<u64, String>>;

/// [`Parts`] as read back: each room's state borrowed from the stored bytes, to be decoded
/// on its own (in parallel) without being copied out first. Same layout as [`Parts`].
///
/// `C` is the catalog's type: today's, or an older format's (see [`innkeep_engine::legacy`]).
#[derive(Deserialize, Debug)]
pub(crate) struct PartsRef<'a, C = Catalog> {
    /// See [`Parts::catalog`].
    pub catalog: C,
    /// See [`Parts::setup_seq`].
    pub setup_seq: u64,
    /// See [`Parts::rooms`].
    #[serde(borrow)]
    pub rooms: Vec<StoredRoomRef<'a>>,
    /// See [`Parts::idempotency`].
    pub idempotency: Vec<((HotelId, IdempotencyKey), IdempotencyEntry)>,
}

/// [`StoredRoom`] as read back.
#[derive(Deserialize, Debug)]
pub(crate) struct StoredRoomRef<'a> {
    /// See [`StoredRoom::cut_seq`].
    pub cut_seq: u64,
    /// See [`StoredRoom::pending`].
    pub pending: Vec<ReservationId>,
    /// See [`StoredRoom::state`].
    pub state: &'a [u8],
}

/// A collected snapshot, ready to write.
#[derive(Debug)]
pub(crate) struct Taken {
    /// Replay starts after this seq, and the journal may drop what is up to it (see the
    /// module docs).
    pub seq: u64,
    /// The parts.
    pub parts: Parts,
    /// Callers of [`crate::Engine::snapshot_now`] waiting for this one.
    pub waiters: Vec<Waiter>,
}

/// Collects a snapshot from the live rooms (see the module docs). Runs on an actix
/// thread; waits for running setup commands and moves, and makes new ones wait, only
/// while the rooms encode.
pub(crate) async fn collect(
    directory: Arc<Directory>,
    rooms: Arc<Rooms>,
    journal: Journal<Event>,
) -> Result<Taken, String> {
    let gate = directory.gate.clone().write_owned().await;
    let setup_seq = journal.durable_seq();
    let mut seq = setup_seq;
    let catalog = read(&directory.catalog).clone();
    let keys: Vec<_> = rooms.read().keys().cloned().collect();
    let mut stored = Vec::with_capacity(keys.len());
    let mut cuts = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(ROOMS_AT_ONCE) {
        let answers =
            futures_util::future::join_all(chunk.iter().map(|k| rooms.part_of(k, &journal)));
        for answer in answers.await {
            let part = answer?;
            cuts.push(part.cut);
            seq = seq.min(part.pending_floor);
            stored.push(StoredRoom {
                cut_seq: 0,
                pending: part.pending,
                state: Blob(part.bytes),
            });
        }
    }
    let idempotency = directory.finished_keys();
    drop(gate);
    // Every cut durable before the snapshot is: a part never shows what the journal could
    // still lose.
    for (room, cut) in stored.iter_mut().zip(cuts) {
        room.cut_seq = cut
            .await
            .map_err(|_| "the journal stopped".to_owned())?
            .map_err(|e| format!("the journal failed: {e}"))?;
    }
    Ok(Taken {
        seq,
        parts: Parts {
            catalog,
            setup_seq,
            rooms: stored,
            idempotency,
        },
        waiters: Vec::new(),
    })
}

/// Asks for a last snapshot and lets the writer thread end after it (engine shutdown).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct Final;

/// Asks for a snapshot as soon as the one running (if any) is written.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct Now(pub Waiter);

/// Decides when to snapshot, collects, and hands the result to the writer thread. One
/// actor on the system thread; one snapshot at a time.
#[derive(Debug)]
pub(crate) struct Trigger {
    /// Where the rooms' shared bookkeeping and the gate are.
    directory: Arc<Directory>,
    /// Every room's actor.
    rooms: Arc<Rooms>,
    /// Marked by the rooms; its record count says how much happened.
    journal: Journal<Event>,
    /// When one is due.
    policy: SnapshotPolicy,
    /// The writer thread's queue; `None` once the final snapshot was handed over.
    writer: Option<Sender<Taken>>,
    /// Where a failure to collect is reported.
    status: SnapshotStatus,
    /// A collection is running.
    running: bool,
    /// Shutdown asked for the final snapshot while one was running: it follows.
    final_asked: bool,
    /// Callers waiting for the next snapshot to start ([`Now`]).
    asked: Vec<Waiter>,
    /// Set while the writer thread has a snapshot to write: no new one is collected
    /// meanwhile, so a slow disk never piles collected snapshots up in memory.
    writing: Arc<AtomicBool>,
    /// Durable records when the last snapshot started.
    records_then: u64,
    /// Events after `records_then` that make the next one due, from the state's size then
    /// ([`SnapshotPolicy::spacing_events`]).
    spacing_events: u64,
    /// When the last snapshot started.
    started_then: Instant,
}

impl Trigger {
    pub(crate) fn new(
        directory: Arc<Directory>,
        rooms: Arc<Rooms>,
        journal: Journal<Event>,
        policy: SnapshotPolicy,
        writer: Sender<Taken>,
        status: SnapshotStatus,
        writing: Arc<AtomicBool>,
    ) -> Self {
        let records_then = journal.stats().records;
        let spacing_events = policy.spacing_events(directory.located());
        Self {
            directory,
            rooms,
            journal,
            policy,
            writer: Some(writer),
            status,
            running: false,
            final_asked: false,
            asked: Vec::new(),
            writing,
            records_then,
            spacing_events,
            started_then: Instant::now(),
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.running || self.writer.is_none() || self.writing.load(Ordering::Acquire) {
            return;
        }
        let since = self.journal.stats().records - self.records_then;
        let due = !self.asked.is_empty()
            || since >= self.spacing_events
            || (since > 0 && self.started_then.elapsed() >= self.policy.every);
        if due {
            self.start(ctx, false);
        }
    }

    /// Starts collecting; `last` hands the writer its final snapshot.
    fn start(&mut self, ctx: &mut Context<Self>, last: bool) {
        self.running = true;
        self.records_then = self.journal.stats().records;
        self.spacing_events = self.policy.spacing_events(self.directory.located());
        self.started_then = Instant::now();
        let started = Instant::now();
        let mut waiters = std::mem::take(&mut self.asked);
        let work = collect(
            self.directory.clone(),
            self.rooms.clone(),
            self.journal.clone(),
        );
        ctx.spawn(work.into_actor(self).map(move |collected, act, ctx| {
            act.running = false;
            match collected {
                Ok(mut taken) => {
                    taken.waiters = std::mem::take(&mut waiters);
                    tracing::debug!(
                        seq = taken.seq,
                        rooms = taken.parts.rooms.len(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "snapshot collected"
                    );
                    if let Some(writer) = &act.writer {
                        act.writing.store(true, Ordering::Release);
                        // The writer thread ends only after this sender is dropped.
                        let _ = writer.send(taken);
                    }
                }
                Err(reason) => {
                    metrics::histogram!(METRIC_SNAPSHOT_SECONDS)
                        .record(started.elapsed().as_secs_f64());
                    tracing::error!(error = %reason, "snapshot failed; not ready until one succeeds");
                    act.status.send_replace(Some(reason.clone()));
                    for w in waiters.drain(..) {
                        let _ = w.send(Err(reason.clone()));
                    }
                }
            }
            if last {
                act.writer = None;
            } else if act.final_asked {
                act.start(ctx, true);
            }
        }));
    }
}

impl Actor for Trigger {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(TRIGGER_TICK, Self::tick);
    }
}

impl Handler<Now> for Trigger {
    type Result = ();

    fn handle(&mut self, msg: Now, ctx: &mut Self::Context) {
        if self.writer.is_none() {
            let _ = msg.0.send(Err("the engine is stopping".to_owned()));
            return;
        }
        self.asked.push(msg.0);
        self.tick(ctx);
    }
}

impl Handler<Final> for Trigger {
    type Result = ();

    fn handle(&mut self, _msg: Final, ctx: &mut Self::Context) {
        if self.writer.is_none() {
            return;
        }
        if self.running {
            self.final_asked = true;
        } else if self.journal.stats().records > self.records_then {
            self.start(ctx, true);
        } else {
            // Nothing happened since the last one.
            self.writer = None;
        }
    }
}

/// Starts the writer thread: it writes each collected snapshot and lets the journal drop
/// what it covers, and ends when the [`Trigger`] drops its sender.
pub(crate) fn spawn_writer(
    snapshots: Receiver<Taken>,
    mut writer: Writer,
) -> std::io::Result<JoinHandle<()>> {
    let (lowered, wait) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name(crate::crash::SNAPSHOT_THREAD.into())
        .spawn(move || {
            lower_priority();
            let _ = lowered.send(());
            for taken in snapshots {
                let outcome = writer.write(&taken);
                for w in taken.waiters {
                    let _ = w.send(outcome.clone());
                }
            }
            // The engine's shutdown joins this thread and then frees the data dir: dropping
            // the writer's store here returns once sled has let go of its files.
            drop(writer);
        })?;
    // At its own priority before the engine serves anything.
    let _ = wait.recv();
    Ok(handle)
}

/// Niceness of the snapshot writer thread (and of the threads sled starts from it, which
/// inherit it). Its work is in the background: a snapshot written a little later costs
/// nothing, while the shards and the journal writer at the default priority (0) answer
/// requests. Writing one takes a fifth of a second of CPU per 100 000 reservations; on
/// two cores, competing at equal weight with the shards, that was a stall in the open
/// loop's tail (BENCHMARKS.md, twenty-fourth session). At 10 the kernel gives it about a
/// tenth of a contended core.
pub(crate) const SNAPSHOT_NICE: i32 = 10;

/// Lowers the calling thread's CPU priority to [`SNAPSHOT_NICE`]. If the system refuses,
/// the thread runs at the default priority, as it did before.
fn lower_priority() {
    let thread = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(thread), SNAPSHOT_NICE) {
        tracing::debug!(error = %e, "snapshot writer keeps the default CPU priority");
    }
}

/// What writing a snapshot needs, and where its outcome is reported.
pub(crate) struct Writer {
    /// Where snapshots go.
    store: SnapshotStore,
    /// Told to drop the segments a durable snapshot covers.
    journal: Journal<Event>,
    /// Fault injection: how many more snapshots fail before writing.
    fail: u32,
    /// The last snapshot's outcome.
    status: SnapshotStatus,
    /// Cleared when a snapshot is written (see [`Trigger`]).
    writing: Arc<AtomicBool>,
}

impl Writer {
    /// A writer to `store`, failing the first `fail` snapshots (fault injection).
    pub(crate) fn new(
        store: SnapshotStore,
        journal: Journal<Event>,
        fail: u32,
        status: SnapshotStatus,
        writing: Arc<AtomicBool>,
    ) -> Self {
        Self {
            store,
            journal,
            fail,
            status,
            writing,
        }
    }

    fn write(&mut self, taken: &Taken) -> Result<u64, String> {
        let started = Instant::now();
        let seq = taken.seq;
        let saved = if self.fail > 0 {
            self.fail -= 1;
            Err("injected fault: snapshots fail".to_owned())
        } else {
            self.store
                .save(seq, &taken.parts)
                .map_err(|e| e.to_string())
        };
        metrics::histogram!(METRIC_SNAPSHOT_SECONDS).record(started.elapsed().as_secs_f64());
        let outcome = match &saved {
            Ok(()) => Ok(seq),
            Err(reason) => Err(reason.clone()),
        };
        match saved {
            Ok(()) => {
                self.journal.truncate_through(seq);
                self.status.send_replace(None);
                tracing::info!(
                    seq,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "snapshot written"
                );
            }
            // The journal still holds everything, so a failed snapshot loses nothing and
            // deletes nothing; the next one tries again. Until one succeeds the engine is
            // not ready: the journal only grows meanwhile.
            Err(reason) => {
                tracing::error!(seq, error = %reason, "snapshot failed; not ready until one succeeds");
                self.status.send_replace(Some(reason));
            }
        }
        self.writing.store(false, Ordering::Release);
        outcome
    }
}
