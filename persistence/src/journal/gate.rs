//! The acknowledgement gate: acks of durable records held until something beyond the
//! local disk has them too (a replicated log), then handed to their callers in order.
//!
//! The writer makes a batch durable, shows it to `on_commit` (so a replicator sees it),
//! and hands its acks to the gate instead of to the callers ([`AckGate::hold`]). Whoever
//! replicates calls [`AckGate::release_through`] as records are replicated; the acks of
//! every batch wholly at or below that seq are delivered then. [`AckGate::fail`] says
//! replication stopped for good: nothing more may be acknowledged. The acks held then
//! stay held (their records are durable here, and their callers keep them as made: an
//! error would make a caller undo a change the journal has), the writer makes no further
//! batch durable (each is refused, so its callers undo it), and the journal reports
//! itself unhealthy. So does a gate whose oldest held batch has waited longer than its
//! stall limit, until replication moves again.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::writer::{deliver, Reply};

/// Acks held until their records are replicated (see the module docs). Held acks are
/// bounded by what callers have in flight: each waits for its own.
pub struct AckGate {
    /// Under one lock, so a batch held while a release runs is never left behind.
    state: Mutex<GateState>,
    /// A batch held longer than this means replication has stalled: the journal reports
    /// itself unhealthy (the node not ready) until it moves again.
    stall_limit: Duration,
}

#[derive(Default)]
struct GateState {
    /// Every record up to this seq is replicated.
    released: u64,
    /// Batches waiting, oldest first.
    held: VecDeque<Held>,
    /// Why replication stopped for good, once it did.
    failed: Option<String>,
}

/// A durable batch whose acks wait.
struct Held {
    /// Its last record's seq.
    last_seq: u64,
    /// When it began to wait.
    since: Instant,
    /// Its acks: each record's seq and reply.
    acks: Vec<(u64, Reply)>,
}

impl std::fmt::Debug for AckGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("AckGate")
            .field("released", &state.released)
            .field("held_batches", &state.held.len())
            .field("failed", &state.failed)
            .finish()
    }
}

impl AckGate {
    /// A gate that has released nothing yet; replication counts as stalled once a batch
    /// has waited `stall_limit`.
    pub fn new(stall_limit: Duration) -> Self {
        Self {
            state: Mutex::default(),
            stall_limit,
        }
    }

    /// Every record up to `seq` is replicated: deliver the acks of the batches it covers.
    /// A smaller `seq` than before changes nothing.
    pub fn release_through(&self, seq: u64) {
        let ready = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if seq <= state.released {
                return;
            }
            state.released = seq;
            let mut ready = Vec::new();
            while state.held.front().is_some_and(|h| h.last_seq <= seq) {
                if let Some(held) = state.held.pop_front() {
                    ready.extend(held.acks);
                }
            }
            ready
        };
        deliver(ready);
    }

    /// Replication stopped for good (`reason`): nothing more is acknowledged (see the
    /// module docs).
    pub fn fail(&self, reason: String) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.failed.get_or_insert(reason);
    }

    /// Why replication stopped for good, if it did.
    pub fn failure(&self) -> Option<String> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failed
            .clone()
    }

    /// Whether the oldest batch still waiting has waited longer than the stall limit.
    pub fn stalled(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .held
            .front()
            .is_some_and(|h| h.since.elapsed() > self.stall_limit)
    }

    /// Up to which seq records are replicated.
    pub fn released(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .released
    }

    /// Takes the acks of a durable batch whose last record is `last_seq`: delivered now if
    /// that is replicated already, else when it is.
    pub(super) fn hold(&self, last_seq: u64, acks: Vec<(u64, Reply)>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if last_seq <= state.released {
            drop(state);
            deliver(acks);
            return;
        }
        state.held.push_back(Held {
            last_seq,
            since: Instant::now(),
            acks,
        });
    }
}
