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
//! itself unhealthy.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use super::writer::{deliver, Reply};

/// Acks held until their records are replicated (see the module docs). Held acks are
/// bounded by what callers have in flight: each waits for its own.
#[derive(Default)]
pub struct AckGate {
    /// Under one lock, so a batch held while a release runs is never left behind.
    state: Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    /// Every record up to this seq is replicated.
    released: u64,
    /// Batches waiting: the last seq of each, with its acks, oldest first.
    held: VecDeque<(u64, Vec<(u64, Reply)>)>,
    /// Why replication stopped for good, once it did.
    failed: Option<String>,
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
    /// A gate that has released nothing yet.
    pub fn new() -> Self {
        Self::default()
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
            while state.held.front().is_some_and(|(last, _)| *last <= seq) {
                if let Some((_, acks)) = state.held.pop_front() {
                    ready.extend(acks);
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
        state.held.push_back((last_seq, acks));
    }
}
