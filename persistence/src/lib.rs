//! Innkeep's persistence: the journal (append-only segment files written by one thread
//! with group commit and `fdatasync`), snapshots in sled, and recovery.
//!
//! Generic over the event type `E` and the state type `S`; the engine's types are
//! plugged in by the caller. Start-up is:
//!
//! 1. [`SnapshotStore::load`] → `(after_seq, state)` (or `(0, empty state)`),
//! 2. [`recover`]`(dir, after_seq, |seq, event| apply)` → [`RecoveryReport`] (the event
//!    type implements [`Record`], which also decodes records of older segment formats),
//! 3. [`Journal::start`]`(options, report.last_seq + 1, on_commit)`.
//!
//! After [`SnapshotStore::save`]`(seq, …)` returns, call
//! [`Journal::truncate_through`]`(seq)` to delete journal segments the snapshot covers
//! (except those holding the newest [`JournalOptions::retain_records`] records, which
//! [`journal::recover_keeping_last`], a step 2 that also hands back the newest records,
//! returns after a restart).

pub mod journal;
pub mod snapshot;
pub mod storage;

pub use journal::{
    read_after, recover, recover_keeping_last, Ack, AckGate, AckReceiver, AckSink, Committed,
    Journal, JournalError, JournalOptions, JournalStats, OnCommit, Record, RecoveryReport,
    SyncMode, MAX_RETAIN_RECORDS,
};
pub use snapshot::{
    decode_part, decode_part_borrowed, encode_part, encode_part_sized, Blob, SnapshotError,
    SnapshotStore, OLDEST_READABLE_SNAPSHOT_FORMAT, SNAPSHOT_FORMAT_VERSION,
};
pub use storage::{FaultPlan, FaultyStorage, FsStorage, SegmentFile, Storage};
