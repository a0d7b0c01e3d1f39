//! The journal: append-only segment files written by one thread with group commit.
//!
//! # On-disk format (version [`SEGMENT_FORMAT_VERSION`], reads back to [`OLDEST_READABLE_SEGMENT_FORMAT`])
//!
//! A journal directory holds segment files named `{first_seq:020}.seg`, where
//! `first_seq` is the sequence number of the first record the segment holds (or will
//! hold, while it is still empty). Zero-padding makes lexical order equal numeric order.
//!
//! Each segment starts with an 8-byte header: the magic bytes `INKJ` and the format
//! version as a little-endian `u32`. Records follow back to back:
//!
//! ```text
//! u32 LE payload length | u64 LE seq | u32 LE CRC32C(seq bytes ++ payload) | payload
//! ```
//!
//! The payload is the event encoded with bincode (`config::standard()`, via serde) and is
//! at most [`MAX_RECORD_BYTES`]. Sequence numbers start at 1 and are continuous across
//! segments.
//!
//! ## Versions
//!
//! The header's version says how a segment's payloads are to be read; the framing above
//! (header, record frame, CRC, naming) is the same in every readable version.
//!
//! - **6** (current): payloads encode the caller's event type as this build defines it,
//!   decoded with `serde::Deserialize`.
//! - **5**, **4**, **3**: payloads encode the event type of earlier releases. Only what
//!   the payloads encode differs from 6; they are decoded by the event type's
//!   [`Record::decode_older`].
//!
//! Recovery reads every version from [`OLDEST_READABLE_SEGMENT_FORMAT`] to
//! [`SEGMENT_FORMAT_VERSION`] and refuses anything else with
//! [`JournalError::UnknownFormat`]. The writer only ever appends to a segment of the
//! current version: when [`Journal::start`] finds a last segment of an older version, it
//! starts a new segment for the next record (or, if the old one holds no record yet,
//! rewrites its header), so a segment never mixes versions and older segments go with
//! retention like any other.
//!
//! # Writer
//!
//! [`Journal::start`] spawns one writer thread. It blocks for the first queued message,
//! drains up to `max_batch_records` more without blocking, encodes them, writes the whole
//! batch with one `write_all`, calls `fdatasync` once, hands the batch to `on_commit`,
//! and only then acknowledges every append in it. A failed write cuts the half-written
//! batch off and fails just that batch; a failed `fdatasync` poisons the journal for
//! good (after fsyncgate, the page cache can no longer be trusted to match the disk).
//!
//! # Recovery
//!
//! [`recover`] replays the records after a snapshot's sequence number, cutting a torn
//! tail off the last segment and refusing (with file and offset) anything else that is
//! wrong. Run it before [`Journal::start`], which refuses a last segment that is not
//! clean.
//!
//! # Retention
//!
//! [`Journal::truncate_through`] (called once a snapshot covering a seq is durable) deletes
//! whole segments, never the active one, and never one holding any of the newest
//! [`JournalOptions::retain_records`] records: a segment goes only when every record in it
//! is both covered by a snapshot and older than that window. After a restart,
//! [`recover_keeping_last`] hands the retained records back from the same pass that
//! recovers (Innkeep refills its event feed from them, so `Last-Event-ID` resumes across
//! restarts). Recovery still decodes and replays only records after the snapshot; the
//! retained ones before it are read and CRC-checked, as a partly covered segment always
//! was.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

mod format;
mod gate;
mod read;
mod recovery;
mod retention;
#[cfg(test)]
mod tests;
mod writer;

pub use self::format::segment_file_name;
pub use self::gate::AckGate;
pub use self::read::read_after;
pub use self::recovery::{recover, recover_keeping_last};
pub use self::writer::Journal;

/// A journal record type: decodes the payloads of current segments with
/// `serde::Deserialize`, and can also decode the payloads of older segment formats.
///
/// [`recover`] and [`recover_keeping_last`] decode a record in a segment of version
/// [`SEGMENT_FORMAT_VERSION`] as `Self` (bincode, as the writer encodes it), and one in a
/// segment of an older readable version (at least [`OLDEST_READABLE_SEGMENT_FORMAT`])
/// with [`Record::decode_older`]. A type that never had another encoding can use the
/// default, which refuses older payloads: `impl Record for MyEvent {}`.
pub trait Record: serde::de::DeserializeOwned {
    /// Decodes `payload`, one whole record's payload of this build's segment format. The
    /// default is serde's reading of `Self` (bincode, `config::standard()`), refusing a
    /// payload it does not read whole; a type may read some records another way (recovery
    /// reads a new reservation straight into its room's form). An `Err(reason)` makes
    /// recovery fail as [`Record::decode_older`]'s does.
    fn decode(payload: &[u8]) -> Result<Self, String> {
        format::decode_payload(payload)
    }

    /// Decodes `payload`, one whole record's payload written in a segment of format
    /// `version` (older than [`SEGMENT_FORMAT_VERSION`], at least
    /// [`OLDEST_READABLE_SEGMENT_FORMAT`]). The previous encoding was bincode with
    /// `config::standard()` too, so [`crate::decode_part`] into the old type and a
    /// conversion usually does it. An `Err(reason)` makes recovery fail with
    /// [`JournalError::Corrupt`] naming the file, offset and seq, with `reason`.
    ///
    /// The default refuses every older payload.
    fn decode_older(version: u32, payload: &[u8]) -> Result<Self, String> {
        let _ = payload;
        Err(format!(
            "records of segment format {version} are not readable by this type"
        ))
    }
}

/// Magic bytes at the start of every segment, so a stray file is never mistaken for one.
pub const SEGMENT_MAGIC: [u8; 4] = *b"INKJ";

/// Version of the segment format this build writes (every new segment, and the only
/// version it appends to). Versions 7, 6, 5, 4 and 3 differ only in what the records'
/// payloads encode: the caller's event type of each build (see the [module docs](self)).
pub const SEGMENT_FORMAT_VERSION: u32 = 7;

/// Oldest segment format this build still reads: recovery decodes the payloads of a
/// segment of a version from this up to (not including) [`SEGMENT_FORMAT_VERSION`] with
/// [`Record::decode_older`], so a journal written by the previous release still starts.
pub const OLDEST_READABLE_SEGMENT_FORMAT: u32 = 3;

/// Size of the segment header: magic (4) + format version (4).
pub const SEGMENT_HEADER_BYTES: u64 = 8;

/// Histogram of records per committed batch: how much group commit is grouping.
pub const METRIC_BATCH_RECORDS: &str = "innkeep_journal_batch_records";

/// Histogram of seconds one batch's `fdatasync` took: the floor under every write's
/// latency.
pub const METRIC_FSYNC_SECONDS: &str = "innkeep_journal_fsync_duration_seconds";

/// Size of a record's frame header: length (4) + seq (8) + CRC32C (4).
pub const RECORD_HEADER_BYTES: u64 = 16;

/// Largest payload one record may carry. Bigger events are refused at append time (via
/// the ack), and a larger length field on disk is treated as corruption, so a flipped
/// bit in a length can never make recovery allocate or skip gigabytes.
pub const MAX_RECORD_BYTES: u64 = 16 * 1024 * 1024;

/// Most encoded bytes the writer puts in one batch, on top of `max_batch_records`:
/// bounds the writer's buffer (4096 records of 16 MiB each would otherwise be 64 GiB).
pub const MAX_BATCH_BYTES: u64 = 64 * 1024 * 1024;

/// Smallest accepted `segment_max_bytes`: below this every record gets its own file,
/// which is only useful in tests and is still allowed down to this floor.
pub const MIN_SEGMENT_BYTES: u64 = SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES;

/// Largest accepted `max_batch_records`; more would only grow the writer's memory.
pub const MAX_BATCH_RECORDS_LIMIT: usize = 1 << 20;

/// The name of the journal's writer thread (an embedder's panic hook can tell it by this).
pub const WRITER_THREAD_NAME: &str = "innkeep-journal";

/// Largest accepted `queue_capacity`; the queue holds unencoded events in memory.
pub const MAX_QUEUE_CAPACITY: usize = 1 << 24;

/// Largest accepted `retain_records`: retained segments are read (CRC-checked) by every
/// recovery, so this bounds the disk they take and the start-up time they add.
pub const MAX_RETAIN_RECORDS: u64 = 1 << 24;

/// Longest [`JournalOptions::commit_delay`]: every acknowledgement may wait this long.
pub const MAX_COMMIT_DELAY: Duration = Duration::from_secs(1);

/// Durability policy for the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// `fdatasync` once per batch before acknowledging it (and `fsync` new segments
    /// and the directory). The default, and the only mode that keeps promise #2.
    #[default]
    Fdatasync,
    /// Never sync: acknowledgements mean "written to the page cache" only. Exists for
    /// benchmarks (`--unsafe-no-fsync`); a crash may lose acknowledged records.
    None,
}

/// Configuration of a [`Journal`].
#[derive(Debug, Clone)]
pub struct JournalOptions {
    /// Journal directory, created if missing; the segment files live here.
    pub dir: PathBuf,
    /// Roll to a new segment file once the active one holds records and the next batch
    /// would push it past this size, so old segments can be deleted after a snapshot.
    pub segment_max_bytes: u64,
    /// Most records written per group commit, bounding a batch's latency and memory.
    pub max_batch_records: usize,
    /// Capacity of the bounded queue in front of the writer; `append` fails with
    /// [`JournalError::Overloaded`] when it is full instead of letting memory grow.
    pub queue_capacity: usize,
    /// Durability policy.
    pub sync: SyncMode,
    /// When the previous batch held several records (several callers were waiting on
    /// one `fdatasync`), the writer waits up to this long for the next batch to hold as
    /// many before syncing it, instead of syncing the first arrival alone. Fewer, fuller
    /// syncs: on a virtual disk each sync costs the whole machine (measured in
    /// BENCHMARKS.md, seventeenth session), so at moderate load this shortens most waits
    /// rather than lengthening them. A lone caller (previous batch of one) never waits,
    /// nor does anyone with [`SyncMode::None`]. Zero: sync whatever has arrived. At most
    /// [`MAX_COMMIT_DELAY`].
    pub commit_delay: Duration,
    /// Keep at least this many of the newest records on disk even when a snapshot covers
    /// them (see [`Journal::truncate_through`]), so they can be read back with
    /// [`recover_keeping_last`] after a restart. 0 keeps only what no snapshot covers yet.
    /// At most [`MAX_RETAIN_RECORDS`].
    pub retain_records: u64,
    /// With a gate, a durable batch's acks wait in it until it releases them (a replicated
    /// log has the records too); `None`: acknowledged once durable here.
    pub gate: Option<Arc<AckGate>>,
}

impl Default for JournalOptions {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("./journal"),
            segment_max_bytes: 64 * 1024 * 1024,
            max_batch_records: 4096,
            queue_capacity: 65_536,
            sync: SyncMode::Fdatasync,
            commit_delay: Duration::ZERO,
            retain_records: 0,
            gate: None,
        }
    }
}

/// One record that reached disk, handed to the `on_commit` hook after its batch's
/// `fdatasync`, in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed<E> {
    /// The record's sequence number.
    pub seq: u64,
    /// The event, moved to the hook (e.g. to show durable events to subscribers).
    pub event: E,
    /// The record's payload as written: the event's bincode encoding (standard
    /// configuration, the same bytes `encode_part` gives), so the hook can keep the event
    /// encoded without encoding it again.
    pub payload: Vec<u8>,
}

/// Resolves with `Ok(seq)` once the appended event is durable, or with the reason it
/// is not. If the sender side is dropped without a value (only possible if the writer
/// thread died), treat it as [`JournalError::Unavailable`]: the event is not durable.
pub type AckReceiver = oneshot::Receiver<Result<u64, JournalError>>;

/// The hook that receives every durable batch (see [`Journal::start`]).
pub type OnCommit<E> = Box<dyn FnMut(Vec<Committed<E>>) + Send>;

/// Everything that can go wrong in the journal.
#[derive(thiserror::Error, Debug, Clone)]
pub enum JournalError {
    /// The writer's queue is full; the caller should shed load (HTTP 503 overloaded).
    #[error("journal queue is full (overloaded)")]
    Overloaded,
    /// A write or sync failed; nothing in the affected batch was acknowledged (HTTP 503).
    #[error("journal unavailable: {reason}")]
    Unavailable {
        /// What failed, naming the file.
        reason: String,
    },
    /// The journal has been shut down.
    #[error("journal is shut down")]
    Closed,
    /// Its [`AckGate`] failed: a replicated log this node may no longer write to refused
    /// it, so nothing more is made durable or acknowledged here (HTTP 503 `not_owner`).
    #[error("not acknowledged: {reason}")]
    Fenced {
        /// Why, naming what refused.
        reason: String,
    },
    /// An IO error at start-up or recovery, naming the file.
    #[error("journal IO error on {}", path.display())]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The underlying error (in an `Arc` so the error stays `Clone`).
        #[source]
        source: Arc<io::Error>,
    },
    /// A bad record (or header) that is not a torn tail: refuses to start rather than
    /// load part of the history.
    #[error("journal corrupt: {} at byte offset {offset}: {reason}", path.display())]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the bad record (or header) in that file.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A segment written by a format version this build cannot read.
    #[error("journal segment {} has unknown format version {version} (this build reads versions {OLDEST_READABLE_SEGMENT_FORMAT} to {SEGMENT_FORMAT_VERSION})", path.display())]
    UnknownFormat {
        /// The segment file.
        path: PathBuf,
        /// The version found in its header.
        version: u32,
    },
    /// A sequence discontinuity: the journal does not continue where it must.
    /// `found == 0` means no record or segment was found at all.
    #[error("journal sequence gap in {}: expected seq {expected}, found {found}", path.display())]
    Gap {
        /// The sequence number that had to come next.
        expected: u64,
        /// The sequence number (or segment start) actually found.
        found: u64,
        /// The segment file (or the journal directory) where it was found.
        path: PathBuf,
    },
    /// The event's encoding exceeds [`MAX_RECORD_BYTES`]; it was not written.
    #[error("journal record too large: more than {max_bytes} bytes encoded")]
    RecordTooLarge {
        /// The limit that was exceeded.
        max_bytes: u64,
    },
    /// The event could not be encoded with bincode; it was not written.
    #[error("journal could not encode event: {reason}")]
    Encode {
        /// The encoder's message.
        reason: String,
    },
    /// `JournalOptions` or `next_seq` out of range.
    #[error("invalid journal options: {reason}")]
    InvalidOptions {
        /// Which option and why.
        reason: String,
    },
}

impl JournalError {
    /// Wrap an IO error with the path it concerns.
    fn io(path: &Path, source: io::Error) -> Self {
        JournalError::Io {
            path: path.to_path_buf(),
            source: Arc::new(source),
        }
    }
}

/// What [`recover`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Records passed to `apply` (those with seq > `after_seq`).
    pub records_replayed: u64,
    /// Last sequence number covered by snapshot + journal; start the journal at this + 1.
    pub last_seq: u64,
    /// Segment files found.
    pub segments: usize,
    /// Bytes cut off the last segment as a torn tail (0 if none).
    pub torn_tail_truncated_bytes: u64,
    /// The file a torn tail was cut from, if any.
    pub torn_tail_file: Option<PathBuf>,
}

/// Counters of the writer's work since start, for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JournalStats {
    /// Batches made durable (each one `write_all` + at most one `fdatasync`).
    pub batches: u64,
    /// Records made durable.
    pub records: u64,
    /// Successful `fdatasync` calls on batches (0 under [`SyncMode::None`]).
    pub fsyncs: u64,
    /// Batches that failed (write or sync error, or roll failure) and were not acked.
    pub failed_batches: u64,
}

/// One acknowledgement the writer hands to an [`AckSink`]; [`Ack::complete`] it on the
/// thread that waits for it.
#[derive(Debug)]
pub struct Ack {
    /// The waiting side.
    tx: oneshot::Sender<Result<u64, JournalError>>,
    /// The outcome.
    result: Result<u64, JournalError>,
}

impl Ack {
    /// Hands the outcome to whoever waits on the append's [`AckReceiver`].
    pub fn complete(self) {
        let _ = self.tx.send(self.result);
    }
}

/// Where the writer delivers the acknowledgements of appends made with
/// [`Journal::append_via`]: all of one batch's acks for one sink arrive in one
/// [`AckSink::deliver`] call. A sink in front of a thread's event loop wakes that thread
/// once per batch, where completing each ack from the writer would wake it once per
/// append (each a syscall when the thread is parked).
pub trait AckSink: Send + Sync + std::fmt::Debug {
    /// Takes a batch's acks for this sink. Must not block: the writer calls it between
    /// batches.
    fn deliver(&self, acks: Vec<Ack>);
}
