//! The snapshot thread: keeps a shadow [`State`] by applying every durable batch the
//! journal hands it, and now and then writes that state to sled and lets the journal drop
//! the segments the snapshot covers (the journal keeps those holding the event feed's
//! resume window). Serializing happens here, off the actors, so taking a snapshot never
//! pauses bookings; the price is a second copy of the state in memory.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use innkeep_engine::{Event, State};
use innkeep_persistence::{Committed, Journal, SnapshotStore};
use tokio::sync::watch;

use crate::feed::EventFeed;

/// Why the last snapshot failed, or `None` when it succeeded (or none was due yet). While
/// it is `Some` the engine is not ready ([`crate::Engine::is_ready`]): a node that cannot
/// snapshot keeps every journal segment and will fill its disk.
pub(crate) type SnapshotStatus = Arc<watch::Sender<Option<String>>>;

/// When to take a snapshot.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SnapshotPolicy {
    /// After this many events since the last one.
    pub every_events: u64,
    /// Or this long, if anything happened.
    pub every: Duration,
}

/// Starts the thread. It ends (after a final snapshot) when the journal's writer thread
/// ends and drops the sending side of `batches`.
pub(crate) fn spawn(
    batches: Receiver<Vec<Committed<Event>>>,
    state: State,
    last_seq: u64,
    mut taker: Taker,
    policy: SnapshotPolicy,
    feed: Arc<EventFeed>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(crate::crash::SNAPSHOT_THREAD.into())
        .spawn(move || run(batches, state, last_seq, &mut taker, policy, feed))
}

fn run(
    batches: Receiver<Vec<Committed<Event>>>,
    mut state: State,
    mut last_seq: u64,
    taker: &mut Taker,
    policy: SnapshotPolicy,
    feed: Arc<EventFeed>,
) {
    let mut since: u64 = 0;
    let mut last_snapshot = Instant::now();
    loop {
        let wait = policy.every.saturating_sub(last_snapshot.elapsed());
        let closed = match batches.recv_timeout(wait.max(Duration::from_millis(1))) {
            Ok(batch) => {
                for c in batch {
                    // The feed shows only durable events, in journal order; this thread
                    // already receives exactly those, so it publishes them.
                    feed.publish(c.seq, Arc::new(c.event.clone()));
                    state.apply_owned(c.event);
                    last_seq = c.seq;
                    since += 1;
                }
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        let due = since >= policy.every_events
            || (since > 0 && last_snapshot.elapsed() >= policy.every)
            || (since > 0 && closed);
        if due {
            taker.take(&state, last_seq);
            since = 0;
            last_snapshot = Instant::now();
        } else if since == 0 && last_snapshot.elapsed() >= policy.every {
            last_snapshot = Instant::now();
        }
        if closed {
            return;
        }
    }
}

/// Histogram of seconds one snapshot took (serialize, write, flush, sync), successful or
/// not.
pub const METRIC_SNAPSHOT_SECONDS: &str = "innkeep_snapshot_duration_seconds";

/// What taking a snapshot needs, and where its outcome is reported.
pub(crate) struct Taker {
    /// Where snapshots go.
    store: SnapshotStore,
    /// Told to drop the segments a durable snapshot covers.
    journal: Journal<Event>,
    /// Fault injection: how many more snapshots fail before writing.
    fail: u32,
    /// The last snapshot's outcome.
    status: SnapshotStatus,
}

impl Taker {
    /// A taker writing to `store`, failing the first `fail` snapshots (fault injection).
    pub(crate) fn new(
        store: SnapshotStore,
        journal: Journal<Event>,
        fail: u32,
        status: SnapshotStatus,
    ) -> Self {
        Self {
            store,
            journal,
            fail,
            status,
        }
    }

    fn take(&mut self, state: &State, seq: u64) {
        let started = Instant::now();
        let saved = if self.fail > 0 {
            self.fail -= 1;
            Err("injected fault: snapshots fail".to_owned())
        } else {
            self.store
                .save(seq, &state.snapshot_view())
                .map_err(|e| e.to_string())
        };
        metrics::histogram!(METRIC_SNAPSHOT_SECONDS).record(started.elapsed().as_secs_f64());
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
    }
}
