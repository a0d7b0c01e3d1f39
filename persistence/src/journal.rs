//! The journal: append-only segment files written by one thread with group commit.
//!
//! # On-disk format (version [`SEGMENT_FORMAT_VERSION`])
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

use std::collections::VecDeque;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::storage::{FsStorage, SegmentFile, Storage};

/// Magic bytes at the start of every segment, so a stray file is never mistaken for one.
pub const SEGMENT_MAGIC: [u8; 4] = *b"INKJ";

/// Version of the segment format this build writes and the only one it reads.
pub const SEGMENT_FORMAT_VERSION: u32 = 3;

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

/// File name suffix of segment files.
const SEGMENT_SUFFIX: &str = ".seg";

/// Digits in a segment file name's sequence number (`u64::MAX` has 20).
const SEGMENT_NAME_DIGITS: usize = 20;

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
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Keep at least this many of the newest records on disk even when a snapshot covers
    /// them (see [`Journal::truncate_through`]), so they can be read back with
    /// [`recover_keeping_last`] after a restart. 0 keeps only what no snapshot covers yet.
    /// At most [`MAX_RETAIN_RECORDS`].
    pub retain_records: u64,
}

impl Default for JournalOptions {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("./journal"),
            segment_max_bytes: 64 * 1024 * 1024,
            max_batch_records: 4096,
            queue_capacity: 65_536,
            sync: SyncMode::Fdatasync,
            retain_records: 0,
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
    #[error("journal segment {} has unknown format version {version} (this build reads version {SEGMENT_FORMAT_VERSION})", path.display())]
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
    /// Appends refused one by one without a seq (too large, not encodable). Whoever
    /// applied such an event in memory before appending it now holds a change the
    /// journal never saw; [`Journal::mark`] users check this did not move.
    pub refused_records: u64,
}

// ---------------------------------------------------------------------------------
// Format helpers shared by the writer, `start` validation and `recover`.
// ---------------------------------------------------------------------------------

/// The bincode configuration every record uses (the wire format).
fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Decoding configuration: the same wire format, plus a limit so a corrupt length
/// prefix inside a payload cannot make the decoder allocate more than a record holds.
fn bincode_decode_config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<{ MAX_RECORD_BYTES as usize }>,
> {
    bincode::config::standard().with_limit::<{ MAX_RECORD_BYTES as usize }>()
}

/// The 8 header bytes every segment starts with.
fn segment_header() -> [u8; SEGMENT_HEADER_BYTES as usize] {
    let mut header = [0u8; SEGMENT_HEADER_BYTES as usize];
    header[..4].copy_from_slice(&SEGMENT_MAGIC);
    header[4..].copy_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
    header
}

/// File name of the segment whose first record is `first_seq`.
pub fn segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SEGMENT_SUFFIX}")
}

/// The first sequence number encoded in a segment file name, if it is one.
fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Segment files in `dir`, sorted by first sequence number. A missing directory has no
/// segments. Other files are ignored (an operator's notes must not stop start-up).
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(JournalError::io(dir, e)),
    };
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| JournalError::io(dir, e))?;
        let name = entry.file_name();
        let Some(first_seq) = name.to_str().and_then(parse_segment_name) else {
            continue;
        };
        segments.push((first_seq, entry.path()));
    }
    segments.sort_unstable_by_key(|(first_seq, _)| *first_seq);
    Ok(segments)
}

/// Result of checking a segment's header bytes.
#[derive(Debug, PartialEq, Eq)]
enum HeaderCheck {
    /// Magic and version are right.
    Valid,
    /// Fewer bytes than a header (a crash while creating the file).
    Short,
    /// The magic bytes are wrong.
    BadMagic,
    /// Right magic, a version this build does not know.
    UnknownVersion(u32),
}

/// Check the first bytes of a segment.
fn check_header(bytes: &[u8]) -> HeaderCheck {
    if bytes.len() < SEGMENT_HEADER_BYTES as usize {
        return HeaderCheck::Short;
    }
    if bytes[..4] != SEGMENT_MAGIC {
        return HeaderCheck::BadMagic;
    }
    let version = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if version != SEGMENT_FORMAT_VERSION {
        return HeaderCheck::UnknownVersion(version);
    }
    HeaderCheck::Valid
}

/// A record frame that passed length and CRC checks.
#[derive(Debug)]
struct Frame {
    /// Its sequence number.
    seq: u64,
    /// Byte offset where the payload starts.
    payload_start: usize,
    /// Byte offset just past the record.
    end: usize,
}

/// Read a little-endian `u32` at `pos` (caller checked bounds).
fn read_u32(bytes: &[u8], pos: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[pos..pos + 4]);
    u32::from_le_bytes(b)
}

/// Read a little-endian `u64` at `pos` (caller checked bounds).
fn read_u64(bytes: &[u8], pos: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[pos..pos + 8]);
    u64::from_le_bytes(b)
}

/// CRC32C over the seq bytes followed by the payload, as stored in a frame.
fn record_crc(seq: u64, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&seq.to_le_bytes()), payload)
}

/// Why the bytes at some offset are not a valid record frame.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FrameFault {
    /// Fewer bytes than a frame header remain.
    IncompleteHeader {
        /// Bytes left before end of file.
        available_bytes: usize,
    },
    /// The length field exceeds [`MAX_RECORD_BYTES`].
    TooLong {
        /// The length found.
        payload_len: u64,
    },
    /// The payload runs past end of file.
    IncompletePayload {
        /// The length found.
        payload_len: u64,
        /// How far past end of file it runs.
        missing_bytes: usize,
    },
    /// The stored checksum does not match.
    BadCrc {
        /// The seq the frame claims.
        seq: u64,
        /// Stored CRC.
        stored: u32,
        /// Computed CRC.
        computed: u32,
    },
}

impl fmt::Display for FrameFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameFault::IncompleteHeader { available_bytes } => write!(
                f,
                "incomplete record header ({available_bytes} of {RECORD_HEADER_BYTES} bytes before end of file)"
            ),
            FrameFault::TooLong { payload_len } => write!(
                f,
                "record length {payload_len} exceeds the {MAX_RECORD_BYTES}-byte limit"
            ),
            FrameFault::IncompletePayload {
                payload_len,
                missing_bytes,
            } => write!(
                f,
                "incomplete record: length {payload_len} runs {missing_bytes} bytes past end of file"
            ),
            FrameFault::BadCrc {
                seq,
                stored,
                computed,
            } => write!(
                f,
                "CRC32C mismatch for record claiming seq {seq}: stored {stored:#010x}, computed {computed:#010x}"
            ),
        }
    }
}

/// Parse and verify the frame at `pos`.
fn parse_frame(bytes: &[u8], pos: usize) -> Result<Frame, FrameFault> {
    let header = RECORD_HEADER_BYTES as usize;
    let available_bytes = bytes.len().saturating_sub(pos);
    if available_bytes < header {
        return Err(FrameFault::IncompleteHeader { available_bytes });
    }
    let payload_len = u64::from(read_u32(bytes, pos));
    if payload_len > MAX_RECORD_BYTES {
        return Err(FrameFault::TooLong { payload_len });
    }
    let seq = read_u64(bytes, pos + 4);
    let stored = read_u32(bytes, pos + 12);
    let payload_start = pos + header;
    // Cannot overflow: payload_len <= 16 MiB and pos < bytes.len().
    let end = payload_start + payload_len as usize;
    if end > bytes.len() {
        return Err(FrameFault::IncompletePayload {
            payload_len,
            missing_bytes: end - bytes.len(),
        });
    }
    let computed = record_crc(seq, &bytes[payload_start..end]);
    if computed != stored {
        return Err(FrameFault::BadCrc {
            seq,
            stored,
            computed,
        });
    }
    Ok(Frame {
        seq,
        payload_start,
        end,
    })
}

/// The first bad frame found by [`scan_records`].
#[derive(Debug)]
struct BadFrame {
    /// Its byte offset in the file.
    offset: u64,
    /// Why it is bad.
    fault: FrameFault,
}

/// How far [`scan_records`] got.
#[derive(Debug)]
struct ScanOutcome {
    /// Sequence number the next record after the good ones would have.
    next_seq: u64,
    /// The first bad frame, if the good records do not run to end of file.
    bad: Option<BadFrame>,
}

/// Walk the records of one segment (whose header was already checked), verifying
/// framing, CRC and sequence continuity from `first_seq`, calling `on_record(seq,
/// payload, offset)` for each good record. Stops at the first bad frame and reports it;
/// a good frame with the wrong sequence number is a [`JournalError::Gap`].
fn scan_records(
    bytes: &[u8],
    path: &Path,
    first_seq: u64,
    mut on_record: impl FnMut(u64, &[u8], u64) -> Result<(), JournalError>,
) -> Result<ScanOutcome, JournalError> {
    let mut pos = SEGMENT_HEADER_BYTES as usize;
    let mut expected = first_seq;
    while pos < bytes.len() {
        match parse_frame(bytes, pos) {
            Ok(frame) => {
                if frame.seq != expected {
                    return Err(JournalError::Gap {
                        expected,
                        found: frame.seq,
                        path: path.to_path_buf(),
                    });
                }
                on_record(
                    frame.seq,
                    &bytes[frame.payload_start..frame.end],
                    pos as u64,
                )?;
                expected += 1;
                pos = frame.end;
            }
            Err(fault) => {
                return Ok(ScanOutcome {
                    next_seq: expected,
                    bad: Some(BadFrame {
                        offset: pos as u64,
                        fault,
                    }),
                });
            }
        }
    }
    Ok(ScanOutcome {
        next_seq: expected,
        bad: None,
    })
}

/// Look for a valid record frame starting anywhere after `from`, with a sequence
/// number after `last_good_seq` that could plausibly follow it in the bytes left.
/// Finding one means the bad bytes at `from` are damage *before* real data, not a torn
/// tail. Returns its offset.
fn find_valid_frame_after(bytes: &[u8], from: usize, last_good_seq: u64) -> Option<usize> {
    let header = RECORD_HEADER_BYTES as usize;
    // Every record takes at least a header, which bounds how far ahead a real seq can be;
    // the cheap check skips the CRC for almost every garbage position.
    let max_seq_ahead = (bytes.len().saturating_sub(from) / header) as u64 + 1;
    let last_start = bytes.len().checked_sub(header)?;
    (from + 1..=last_start).find(|&q| {
        let seq = read_u64(bytes, q + 4);
        seq > last_good_seq && seq - last_good_seq <= max_seq_ahead && parse_frame(bytes, q).is_ok()
    })
}

/// Read a whole segment file.
fn read_segment(path: &Path) -> Result<Vec<u8>, JournalError> {
    fs::read(path).map_err(|e| JournalError::io(path, e))
}

/// Truncate a file to `len_bytes` (and, if `rewrite_header`, write a fresh header) and
/// make that durable.
fn cut_file(path: &Path, len_bytes: u64, rewrite_header: bool) -> Result<(), JournalError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| JournalError::io(path, e))?;
    file.set_len(len_bytes)
        .map_err(|e| JournalError::io(path, e))?;
    if rewrite_header {
        file.write_all(&segment_header())
            .map_err(|e| JournalError::io(path, e))?;
    }
    file.sync_all().map_err(|e| JournalError::io(path, e))
}

/// Decode one record's payload (whose frame and CRC were checked) as an `E`; a payload
/// that does not decode, or decodes from fewer bytes than it has, is corruption.
fn decode_payload<E: DeserializeOwned>(
    payload: &[u8],
    path: &Path,
    offset: u64,
    seq: u64,
) -> Result<E, JournalError> {
    let (event, used) = bincode::serde::decode_from_slice::<E, _>(payload, bincode_decode_config())
        .map_err(|e| JournalError::Corrupt {
            path: path.to_path_buf(),
            offset,
            reason: format!("record seq {seq} has a valid CRC but does not decode: {e}"),
        })?;
    if used != payload.len() {
        return Err(JournalError::Corrupt {
            path: path.to_path_buf(),
            offset,
            reason: format!(
                "record seq {seq} decodes from {used} of its {} payload bytes",
                payload.len()
            ),
        });
    }
    Ok(event)
}

/// Read every record with seq > `after_seq` from the journal in `dir`, in order, calling
/// `apply(seq, event)` for each.
///
/// Verifies the segment header, framing, CRC32C and sequence continuity (within and
/// across segments, and against `after_seq`). A torn tail on the **last** segment — an
/// incomplete or bad-CRC record with no valid record after it — is cut off (the file is
/// truncated to the end of the last good record, with a `tracing::warn!` naming file and
/// offset) and reported. Everything else is an error naming the file (and offset where
/// there is one): a bad record with a valid one after it, any bad record in an earlier
/// segment, an unknown format version, a record that does not decode as `E`, or a
/// sequence gap — including a journal that starts after `after_seq + 1`, is missing
/// although `after_seq > 0`, or ends before `after_seq`.
///
/// `apply` may have been called for some records when an error is returned: on error
/// the caller must discard the state it was building and refuse to start.
///
/// Each segment is read into memory whole (segments are bounded by
/// `segment_max_bytes` plus one batch).
pub fn recover<E: DeserializeOwned>(
    dir: &Path,
    after_seq: u64,
    apply: impl FnMut(u64, E),
) -> Result<RecoveryReport, JournalError> {
    recover_keeping_last(dir, after_seq, 0, apply).map(|(report, _)| report)
}

/// A record [`recover_keeping_last`] keeps: where its payload is.
#[derive(Debug, Clone, Copy)]
struct KeptRecord {
    /// Its sequence number.
    seq: u64,
    /// Index of its segment in the sorted segment list.
    segment: usize,
    /// Byte offset of the record (frame header) in the segment, for error messages.
    offset: u64,
    /// Payload bytes `start..end` in the segment.
    start: usize,
    /// See `start`.
    end: usize,
}

/// [`recover`], also handing back the newest `keep_last` records it found — sequence
/// number and decoded event, oldest first — whether or not the snapshot covers them
/// (e.g. to refill a window of recent events after a restart; the journal retains them
/// with [`JournalOptions::retain_records`]). Fewer come back when the journal holds fewer.
///
/// Done in the same pass, so every segment is still read and CRC-checked once; only the
/// kept records are decoded again (those after `after_seq` were consumed by `apply`), at
/// the end, and one that does not decode is [`JournalError::Corrupt`] like any other.
/// They are records recovery kept: a torn tail it cut is never among them. The segment
/// files holding kept records stay in memory until the end (the bytes of at most
/// `keep_last` records plus one segment). `keep_last` is at most [`MAX_RETAIN_RECORDS`].
pub fn recover_keeping_last<E: DeserializeOwned>(
    dir: &Path,
    after_seq: u64,
    keep_last: u64,
    mut apply: impl FnMut(u64, E),
) -> Result<(RecoveryReport, Vec<(u64, E)>), JournalError> {
    if keep_last > MAX_RETAIN_RECORDS {
        return Err(JournalError::InvalidOptions {
            reason: format!("keep_last {keep_last} is above the maximum {MAX_RETAIN_RECORDS}"),
        });
    }
    // Bounded by `keep_last` (itself bounded above).
    let keep_last = keep_last as usize;
    let mut kept: VecDeque<KeptRecord> = VecDeque::new();
    // The bytes of the segments `kept` points into, oldest first, by segment index.
    let mut kept_segments: VecDeque<(usize, Vec<u8>)> = VecDeque::new();
    let segments = list_segments(dir)?;
    let mut report = RecoveryReport {
        records_replayed: 0,
        last_seq: after_seq,
        segments: segments.len(),
        torn_tail_truncated_bytes: 0,
        torn_tail_file: None,
    };
    let Some((first_seq, first_path)) = segments.first() else {
        if after_seq > 0 {
            // A healthy journal always keeps its active segment; none at all while a
            // snapshot exists means the journal was lost, and with it maybe acked records.
            return Err(JournalError::Gap {
                expected: after_seq + 1,
                found: 0,
                path: dir.to_path_buf(),
            });
        }
        return Ok((report, Vec::new()));
    };
    if *first_seq > after_seq.saturating_add(1) {
        return Err(JournalError::Gap {
            expected: after_seq + 1,
            found: *first_seq,
            path: first_path.clone(),
        });
    }

    let mut expected = *first_seq;
    let last_index = segments.len() - 1;
    for (index, (segment_first_seq, path)) in segments.iter().enumerate() {
        let is_last = index == last_index;
        if *segment_first_seq != expected {
            return Err(JournalError::Gap {
                expected,
                found: *segment_first_seq,
                path: path.clone(),
            });
        }
        let bytes = read_segment(path)?;
        match check_header(&bytes) {
            HeaderCheck::Valid => {}
            HeaderCheck::Short if is_last => {
                if !bytes.is_empty() {
                    // Crash while creating the segment: nothing in it was ever acked.
                    tracing::warn!(
                        file = %path.display(),
                        offset = 0u64,
                        truncated_bytes = bytes.len(),
                        "journal: last segment shorter than its header; rewriting header (torn tail)"
                    );
                    cut_file(path, 0, true)?;
                    report.torn_tail_truncated_bytes = bytes.len() as u64;
                    report.torn_tail_file = Some(path.clone());
                }
                continue;
            }
            HeaderCheck::Short => {
                return Err(JournalError::Corrupt {
                    path: path.clone(),
                    offset: 0,
                    reason: format!(
                        "segment is {} bytes, shorter than its {SEGMENT_HEADER_BYTES}-byte header, and is not the last segment",
                        bytes.len()
                    ),
                });
            }
            HeaderCheck::BadMagic => {
                return Err(JournalError::Corrupt {
                    path: path.clone(),
                    offset: 0,
                    reason: "bad magic bytes (not an INKJ journal segment)".to_string(),
                });
            }
            HeaderCheck::UnknownVersion(version) => {
                return Err(JournalError::UnknownFormat {
                    path: path.clone(),
                    version,
                });
            }
        }

        let outcome = scan_records(&bytes, path, expected, |seq, payload, offset| {
            if keep_last > 0 {
                if kept.len() == keep_last {
                    kept.pop_front();
                }
                let start = offset as usize + RECORD_HEADER_BYTES as usize;
                kept.push_back(KeptRecord {
                    seq,
                    segment: index,
                    offset,
                    start,
                    end: start + payload.len(),
                });
            }
            if seq <= after_seq {
                // Covered by the snapshot; CRC and continuity were still checked.
                return Ok(());
            }
            apply(seq, decode_payload(payload, path, offset, seq)?);
            report.records_replayed += 1;
            Ok(())
        })?;
        expected = outcome.next_seq;

        if let Some(bad) = outcome.bad {
            if !is_last {
                return Err(JournalError::Corrupt {
                    path: path.clone(),
                    offset: bad.offset,
                    reason: format!("{} (in a segment that is not the last)", bad.fault),
                });
            }
            let last_good_seq = expected - 1;
            if let Some(found) = find_valid_frame_after(&bytes, bad.offset as usize, last_good_seq)
            {
                return Err(JournalError::Corrupt {
                    path: path.clone(),
                    offset: bad.offset,
                    reason: format!(
                        "{}; a valid record follows at offset {found}, so this is damage before the tail, not a torn write",
                        bad.fault
                    ),
                });
            }
            let cut_bytes = bytes.len() as u64 - bad.offset;
            tracing::warn!(
                file = %path.display(),
                offset = bad.offset,
                truncated_bytes = cut_bytes,
                reason = %bad.fault,
                "journal: cutting torn tail off the last segment"
            );
            cut_file(path, bad.offset, false)?;
            report.torn_tail_truncated_bytes = cut_bytes;
            report.torn_tail_file = Some(path.clone());
        }

        // Keep this segment's bytes while a kept record is in it; drop older ones.
        if kept.back().is_some_and(|k| k.segment == index) {
            kept_segments.push_back((index, bytes));
        }
        let oldest_needed = kept.front().map_or(usize::MAX, |k| k.segment);
        while kept_segments
            .front()
            .is_some_and(|(segment, _)| *segment < oldest_needed)
        {
            kept_segments.pop_front();
        }
    }

    if expected <= after_seq {
        // The snapshot covers records the journal no longer has: appending after it
        // would leave a hole in the journal.
        let last_path = segments
            .last()
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| dir.to_path_buf());
        return Err(JournalError::Gap {
            expected: after_seq + 1,
            found: expected,
            path: last_path,
        });
    }
    report.last_seq = expected - 1;

    let mut newest = Vec::with_capacity(kept.len());
    for k in kept {
        let path = &segments[k.segment].1;
        let Ok(i) = kept_segments.binary_search_by_key(&k.segment, |(segment, _)| *segment) else {
            // Every kept record's segment is kept above; never a silently shorter result.
            return Err(JournalError::Corrupt {
                path: path.clone(),
                offset: k.offset,
                reason: format!(
                    "record seq {} was kept but its segment was not (a bug)",
                    k.seq
                ),
            });
        };
        let bytes = &kept_segments[i].1;
        newest.push((
            k.seq,
            decode_payload(&bytes[k.start..k.end], path, k.offset, k.seq)?,
        ));
    }
    Ok((report, newest))
}

// ---------------------------------------------------------------------------------
// The journal handle and its writer thread.
// ---------------------------------------------------------------------------------

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

/// How an append's outcome reaches its caller.
enum Reply {
    /// Sent by the writer itself.
    Direct(oneshot::Sender<Result<u64, JournalError>>),
    /// Handed to a sink with the rest of the batch's acks for it.
    Via(oneshot::Sender<Result<u64, JournalError>>, Arc<dyn AckSink>),
}

impl Reply {
    /// Sends `result` now, bypassing any sink (failures, which are rare and not batched).
    fn send_now(self, result: Result<u64, JournalError>) {
        let (Reply::Direct(tx) | Reply::Via(tx, _)) = self;
        let _ = tx.send(result);
    }
}

/// A message to the writer thread.
enum Msg<E> {
    /// Make `event` durable and answer on `ack`.
    Append {
        /// The event to journal.
        event: E,
        /// Where the outcome goes.
        ack: Reply,
    },
    /// Answer with the seq of the last record queued before this message, once that
    /// record is durable (sent by `mark`).
    Mark(oneshot::Sender<Result<u64, JournalError>>),
    /// Look at the truncation target (sent by `truncate_through`).
    Wake,
}

/// State shared between the handles and the writer thread.
#[derive(Debug, Default)]
struct Shared {
    /// Set once, with the reason, when an fsync (or anything that leaves the file in an
    /// unknown state) fails. Never cleared: the process must restart and recover.
    poison: OnceLock<String>,
    /// Highest seq the caller asked to truncate through (0 = none yet).
    truncate_target: AtomicU64,
    /// See [`JournalStats::batches`].
    batches: AtomicU64,
    /// See [`JournalStats::records`].
    records: AtomicU64,
    /// See [`JournalStats::fsyncs`].
    fsyncs: AtomicU64,
    /// See [`JournalStats::failed_batches`].
    failed_batches: AtomicU64,
    /// See [`JournalStats::refused_records`].
    refused_records: AtomicU64,
    /// See [`Journal::durable_seq`].
    durable_seq: AtomicU64,
}

impl Shared {
    /// Poison the journal (first reason wins) and log it.
    fn poison(&self, reason: String) {
        tracing::error!(reason = %reason, "journal poisoned; every further append fails until restart");
        let _ = self.poison.set(reason);
    }

    /// The error every append gets once poisoned.
    fn poisoned_error(&self) -> Option<JournalError> {
        self.poison.get().map(|reason| JournalError::Unavailable {
            reason: format!("journal poisoned: {reason}"),
        })
    }
}

/// The handles' side of the journal.
struct Inner<E> {
    /// Sender into the writer's queue; `None` once shut down. Appends hold the read lock
    /// across the send, so after `shutdown` takes it no append can slip in after the
    /// writer's final drain.
    sender: RwLock<Option<Sender<Msg<E>>>>,
    /// The writer thread, joined by the first `shutdown`.
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Poison flag and counters.
    shared: Arc<Shared>,
    /// Journal directory, for Debug output.
    dir: PathBuf,
}

/// Handle to the journal. Cheap to clone (all clones share one writer thread);
/// `Send + Sync`. Call [`Journal::shutdown`] to drain and join the writer; if every
/// clone is dropped without it, the writer still drains the queue and exits, unjoined.
pub struct Journal<E> {
    /// Shared state; the writer stops once every clone is dropped or on `shutdown`.
    inner: Arc<Inner<E>>,
}

impl<E> Clone for Journal<E> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<E> fmt::Debug for Journal<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let closed = self
            .inner
            .sender
            .read()
            .map(|s| s.is_none())
            .unwrap_or(true);
        f.debug_struct("Journal")
            .field("dir", &self.inner.dir)
            .field("healthy", &self.inner.shared.poison.get().is_none())
            .field("closed", &closed)
            .finish()
    }
}

impl<E: Serialize + Send + 'static> Journal<E> {
    /// Start the single writer thread on the real file system.
    ///
    /// `next_seq` is the sequence number the next append gets: the
    /// [`RecoveryReport::last_seq`] + 1 of a [`recover`] run just before. The last
    /// segment must be clean (recover cuts torn tails) and end exactly before `next_seq`,
    /// or this fails with `Corrupt` / `Gap` rather than write a discontinuous journal.
    ///
    /// `on_commit` runs **on the writer thread**, once per durable batch, in sequence
    /// order, after the batch's `fdatasync` and before its acks are sent; it owns the
    /// events. Keep it short: the next batch waits for it. If it panics, the panic is
    /// caught, the batch (already durable) is still acked, and the journal is poisoned —
    /// unless a panic hook ends the process first, as the innkeep engine's does (its
    /// supervision is crash-only; this writer thread is [`WRITER_THREAD_NAME`]).
    pub fn start(
        options: JournalOptions,
        next_seq: u64,
        on_commit: OnCommit<E>,
    ) -> Result<Journal<E>, JournalError> {
        Self::start_with_storage(options, next_seq, on_commit, Box::new(FsStorage::new()))
    }

    /// [`Journal::start`] with the writer's file operations going through `storage`
    /// (e.g. a [`crate::storage::FaultyStorage`] for fault injection).
    pub fn start_with_storage(
        options: JournalOptions,
        next_seq: u64,
        on_commit: OnCommit<E>,
        mut storage: Box<dyn Storage>,
    ) -> Result<Journal<E>, JournalError> {
        validate_options(&options, next_seq)?;
        let dir = options.dir.clone();
        fs::create_dir_all(&dir).map_err(|e| JournalError::io(&dir, e))?;
        let mut segments: VecDeque<(u64, PathBuf)> = list_segments(&dir)?.into();

        let active = match segments.pop_back() {
            None => create_segment(storage.as_mut(), &dir, next_seq, options.sync)
                .map_err(CreateFailure::into_journal_error)?,
            Some((first_seq, path)) => {
                open_last_segment(storage.as_mut(), first_seq, path, next_seq, options.sync)?
            }
        };

        let shared = Arc::new(Shared::default());
        shared.durable_seq.store(next_seq - 1, Ordering::Release);
        let (tx, rx) = crossbeam_channel::bounded(options.queue_capacity);
        let writer = Writer {
            rx,
            storage,
            dir: dir.clone(),
            segment_max_bytes: options.segment_max_bytes,
            max_batch_records: options.max_batch_records,
            sync: options.sync,
            retain_records: options.retain_records,
            active,
            older_segments: segments,
            next_seq,
            on_commit,
            shared: Arc::clone(&shared),
            buf: Vec::new(),
            marks: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name(WRITER_THREAD_NAME.to_string())
            .spawn(move || writer.run())
            .map_err(|e| JournalError::io(&dir, e))?;
        Ok(Journal {
            inner: Arc::new(Inner {
                sender: RwLock::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
                shared,
                dir,
            }),
        })
    }

    /// Queue `event` for the next group commit. Never blocks; encoding happens on the
    /// writer thread, so encoding problems (`RecordTooLarge`, `Encode`) and write/sync
    /// failures (`Unavailable`) arrive through the returned [`AckReceiver`], which
    /// yields `Ok(seq)` once the event is durable.
    ///
    /// Fails immediately with `Overloaded` when the queue is full, `Unavailable` once
    /// poisoned, `Closed` after [`Journal::shutdown`].
    pub fn append(&self, event: E) -> Result<AckReceiver, JournalError> {
        self.send(event, None)
    }

    /// [`Journal::append`], with the outcome handed to `sink` together with the other
    /// acks of the same batch for it (failures are still sent directly).
    pub fn append_via(
        &self,
        event: E,
        sink: &Arc<dyn AckSink>,
    ) -> Result<AckReceiver, JournalError> {
        self.send(event, Some(sink))
    }

    fn send(&self, event: E, sink: Option<&Arc<dyn AckSink>>) -> Result<AckReceiver, JournalError> {
        let (ack_tx, ack_rx) = oneshot::channel();
        let ack = match sink {
            None => Reply::Direct(ack_tx),
            Some(sink) => Reply::Via(ack_tx, sink.clone()),
        };
        self.queue(Msg::Append { event, ack })?;
        Ok(ack_rx)
    }

    /// Puts `msg` in the writer's queue without blocking.
    fn queue(&self, msg: Msg<E>) -> Result<(), JournalError> {
        if let Some(err) = self.inner.shared.poisoned_error() {
            return Err(err);
        }
        let guard = self
            .inner
            .sender
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(tx) = guard.as_ref() else {
            return Err(JournalError::Closed);
        };
        match tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(JournalError::Overloaded),
            Err(TrySendError::Disconnected(_)) => Err(JournalError::Unavailable {
                reason: "journal writer thread has stopped".to_string(),
            }),
        }
    }

    /// Ask the writer to delete segment files whose records all have seq <= `seq`
    /// (call once a snapshot covering `seq` is durable) and are all older than the newest
    /// [`JournalOptions::retain_records`] records. Never deletes the active segment.
    /// Asynchronous and non-blocking: it happens before the writer's next batch (so before
    /// the ack of any append made after this call returns) or at shutdown. A segment kept
    /// only for retention goes before a later batch, once enough newer records exist.
    pub fn truncate_through(&self, seq: u64) {
        self.inner
            .shared
            .truncate_target
            .fetch_max(seq, Ordering::SeqCst);
        let guard = self
            .inner
            .sender
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(tx) = guard.as_ref() {
            // If the queue is full the writer is busy and will see the target after its
            // current batch anyway; the wake-up only matters when it is idle.
            let _ = tx.try_send(Msg::Wake);
        }
    }

    /// A cut in the journal's order: resolves with `Ok(seq)`, the seq of the last record
    /// queued before this call (0 if none ever was), once every record up to it is
    /// durable. Appends this thread queued earlier are at or before the cut, appends it
    /// queues later after it, so a caller that applies its events before appending them
    /// learns which records its in-memory state reflects. Writes nothing. Fails like an
    /// append (`Overloaded` when the queue is full, `Unavailable` when the batch before it
    /// failed or the journal is poisoned).
    pub fn mark(&self) -> Result<AckReceiver, JournalError> {
        let (ack_tx, ack_rx) = oneshot::channel();
        self.queue(Msg::Mark(ack_tx))?;
        Ok(ack_rx)
    }
}

impl<E> Journal<E> {
    /// Stop accepting appends, let the writer write and ack everything already queued,
    /// then join it. Idempotent; later appends fail with `Closed`. Must not be called
    /// from `on_commit` (it would wait for itself; that case is detected and skips the
    /// join).
    pub fn shutdown(&self) {
        let sender = self
            .inner
            .sender
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        // Dropping the only sender disconnects the channel; the writer still receives
        // everything queued before it sees the disconnect.
        drop(sender);
        let handle = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(handle) = handle {
            if handle.thread().id() == std::thread::current().id() {
                tracing::error!("Journal::shutdown called on the writer thread; not joining");
                return;
            }
            if handle.join().is_err() {
                tracing::error!("journal writer thread panicked");
            }
        }
    }

    /// `false` once a failed `fdatasync` (or an unrecoverable write failure) has
    /// poisoned the journal; every append then fails with `Unavailable`.
    pub fn is_healthy(&self) -> bool {
        self.inner.shared.poison.get().is_none()
    }

    /// The seq of the newest durable record (the one before the start seq when none is
    /// yet): every record up to it is on disk, and it is set before any of them is
    /// acknowledged.
    pub fn durable_seq(&self) -> u64 {
        self.inner.shared.durable_seq.load(Ordering::Acquire)
    }

    /// The writer's counters so far.
    pub fn stats(&self) -> JournalStats {
        let s = &self.inner.shared;
        JournalStats {
            batches: s.batches.load(Ordering::Relaxed),
            records: s.records.load(Ordering::Relaxed),
            fsyncs: s.fsyncs.load(Ordering::Relaxed),
            failed_batches: s.failed_batches.load(Ordering::Relaxed),
            refused_records: s.refused_records.load(Ordering::Relaxed),
        }
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Appends queued for the writer and not yet taken into a batch: the journal's
    /// backlog, exported as a gauge so an operator sees the disk falling behind before
    /// appends start failing with `Overloaded`. 0 once shut down.
    pub fn queue_len(&self) -> usize {
        self.inner
            .sender
            .read()
            .map(|s| s.as_ref().map_or(0, Sender::len))
            .unwrap_or(0)
    }
}

/// Refuse options that would make the journal misbehave rather than fail later.
fn validate_options(options: &JournalOptions, next_seq: u64) -> Result<(), JournalError> {
    let invalid = |reason: String| Err(JournalError::InvalidOptions { reason });
    if next_seq == 0 {
        return invalid("next_seq must be at least 1 (sequence numbers start at 1)".into());
    }
    if options.segment_max_bytes < MIN_SEGMENT_BYTES {
        return invalid(format!(
            "segment_max_bytes {} is below the minimum {MIN_SEGMENT_BYTES}",
            options.segment_max_bytes
        ));
    }
    if options.max_batch_records == 0 || options.max_batch_records > MAX_BATCH_RECORDS_LIMIT {
        return invalid(format!(
            "max_batch_records {} must be between 1 and {MAX_BATCH_RECORDS_LIMIT}",
            options.max_batch_records
        ));
    }
    if options.queue_capacity == 0 || options.queue_capacity > MAX_QUEUE_CAPACITY {
        return invalid(format!(
            "queue_capacity {} must be between 1 and {MAX_QUEUE_CAPACITY}",
            options.queue_capacity
        ));
    }
    if options.retain_records > MAX_RETAIN_RECORDS {
        return invalid(format!(
            "retain_records {} is above the maximum {MAX_RETAIN_RECORDS}",
            options.retain_records
        ));
    }
    Ok(())
}

/// The segment the writer appends to.
#[derive(Debug)]
struct ActiveSegment {
    /// Open file handle.
    file: Box<dyn SegmentFile>,
    /// Its path, for error messages and deletion bookkeeping.
    path: PathBuf,
    /// First seq it holds (from its name).
    first_seq: u64,
    /// Bytes in it that belong to acked-or-acking batches; a failed write is cut back
    /// to this.
    len_bytes: u64,
}

/// Which step of creating a segment failed; decides between failing one batch and
/// poisoning the journal.
#[derive(Debug)]
enum CreateFailure {
    /// Creating the file or writing its header failed (e.g. ENOSPC): nothing durable
    /// was lost, the roll can be retried.
    Write {
        /// The new segment's path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// An fsync of the new file or of the directory failed: state unknown (fsyncgate).
    Sync {
        /// The file or directory whose sync failed.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl CreateFailure {
    /// As a start-up error.
    fn into_journal_error(self) -> JournalError {
        match self {
            CreateFailure::Write { path, source } | CreateFailure::Sync { path, source } => {
                JournalError::io(&path, source)
            }
        }
    }
}

/// Create segment `first_seq`, write its header and (unless `SyncMode::None`) make
/// file and directory entry durable before anything in it can be acked.
fn create_segment(
    storage: &mut dyn Storage,
    dir: &Path,
    first_seq: u64,
    sync: SyncMode,
) -> Result<ActiveSegment, CreateFailure> {
    let path = dir.join(segment_file_name(first_seq));
    let write_failure = |source| CreateFailure::Write {
        path: path.clone(),
        source,
    };
    let mut file = storage.create_segment(&path).map_err(write_failure)?;
    file.write_all(&segment_header()).map_err(write_failure)?;
    if sync == SyncMode::Fdatasync {
        file.sync_all().map_err(|source| CreateFailure::Sync {
            path: path.clone(),
            source,
        })?;
        storage
            .sync_dir(dir)
            .map_err(|source| CreateFailure::Sync {
                path: dir.to_path_buf(),
                source,
            })?;
    }
    Ok(ActiveSegment {
        file,
        path,
        first_seq,
        len_bytes: SEGMENT_HEADER_BYTES,
    })
}

/// Validate the last existing segment (clean, continuous, ending right before
/// `next_seq`) and open it for appending; an empty file gets its header.
fn open_last_segment(
    storage: &mut dyn Storage,
    first_seq: u64,
    path: PathBuf,
    next_seq: u64,
    sync: SyncMode,
) -> Result<ActiveSegment, JournalError> {
    let bytes = read_segment(&path)?;
    let segment_next_seq = if bytes.is_empty() {
        first_seq
    } else {
        match check_header(&bytes) {
            HeaderCheck::Valid => {}
            HeaderCheck::Short | HeaderCheck::BadMagic => {
                return Err(JournalError::Corrupt {
                    path,
                    offset: 0,
                    reason: "bad segment header (run recover before starting the journal)"
                        .to_string(),
                });
            }
            HeaderCheck::UnknownVersion(version) => {
                return Err(JournalError::UnknownFormat { path, version });
            }
        }
        let outcome = scan_records(&bytes, &path, first_seq, |_, _, _| Ok(()))?;
        if let Some(bad) = outcome.bad {
            return Err(JournalError::Corrupt {
                path,
                offset: bad.offset,
                reason: format!("{} (run recover before starting the journal)", bad.fault),
            });
        }
        outcome.next_seq
    };
    if segment_next_seq != next_seq {
        return Err(JournalError::Gap {
            expected: next_seq,
            found: segment_next_seq,
            path,
        });
    }
    let mut file = storage
        .open_segment(&path)
        .map_err(|e| JournalError::io(&path, e))?;
    let mut len_bytes = bytes.len() as u64;
    if bytes.is_empty() {
        file.write_all(&segment_header())
            .map_err(|e| JournalError::io(&path, e))?;
        if sync == SyncMode::Fdatasync {
            file.sync_all().map_err(|e| JournalError::io(&path, e))?;
        }
        len_bytes = SEGMENT_HEADER_BYTES;
    }
    Ok(ActiveSegment {
        file,
        path,
        first_seq,
        len_bytes,
    })
}

/// A `Write` into the batch buffer that refuses to grow one record past
/// [`MAX_RECORD_BYTES`], so an oversized event fails fast instead of being encoded whole.
struct CappedWriter<'a> {
    /// The batch buffer.
    buf: &'a mut Vec<u8>,
    /// Bytes this record may still add.
    remaining_bytes: u64,
    /// Set when a write was refused for size.
    overflowed: bool,
}

impl Write for CappedWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.len() as u64 > self.remaining_bytes {
            self.overflowed = true;
            return Err(io::Error::other("record exceeds MAX_RECORD_BYTES"));
        }
        self.buf.extend_from_slice(data);
        self.remaining_bytes -= data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Append the framed record for (`seq`, `event`) to `buf`; on error `buf` is unchanged.
fn encode_record<E: Serialize>(buf: &mut Vec<u8>, seq: u64, event: &E) -> Result<(), JournalError> {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; RECORD_HEADER_BYTES as usize]);
    let mut writer = CappedWriter {
        buf,
        remaining_bytes: MAX_RECORD_BYTES,
        overflowed: false,
    };
    let result = bincode::serde::encode_into_std_write(event, &mut writer, bincode_config());
    let overflowed = writer.overflowed;
    if let Err(e) = result {
        buf.truncate(start);
        return Err(if overflowed {
            JournalError::RecordTooLarge {
                max_bytes: MAX_RECORD_BYTES,
            }
        } else {
            JournalError::Encode {
                reason: e.to_string(),
            }
        });
    }
    let payload_start = start + RECORD_HEADER_BYTES as usize;
    // Fits in u32: the CappedWriter stopped it at 16 MiB.
    let payload_len = (buf.len() - payload_start) as u32;
    let crc = record_crc(seq, &buf[payload_start..]);
    buf[start..start + 4].copy_from_slice(&payload_len.to_le_bytes());
    buf[start + 4..start + 12].copy_from_slice(&seq.to_le_bytes());
    buf[start + 12..start + 16].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// One encoded append waiting for its batch's outcome.
struct PendingRecord<E> {
    /// Its sequence number (valid only if the batch commits).
    seq: u64,
    /// The event, handed to `on_commit` on success.
    event: E,
    /// Where the outcome goes.
    ack: Reply,
}

/// The writer thread's state. Only this thread touches segment files after start.
struct Writer<E> {
    /// Incoming appends and wake-ups.
    rx: Receiver<Msg<E>>,
    /// File operations (real or fault-injecting).
    storage: Box<dyn Storage>,
    /// Journal directory.
    dir: PathBuf,
    /// See [`JournalOptions::segment_max_bytes`].
    segment_max_bytes: u64,
    /// See [`JournalOptions::max_batch_records`].
    max_batch_records: usize,
    /// See [`JournalOptions::sync`].
    sync: SyncMode,
    /// See [`JournalOptions::retain_records`].
    retain_records: u64,
    /// The segment being appended to.
    active: ActiveSegment,
    /// Older segments, oldest first, as candidates for `truncate_through`.
    older_segments: VecDeque<(u64, PathBuf)>,
    /// Seq of the next record to commit; not advanced by failed batches, whose
    /// numbers are reused.
    next_seq: u64,
    /// The caller's hook for durable batches.
    on_commit: OnCommit<E>,
    /// Poison flag, truncation target and counters.
    shared: Arc<Shared>,
    /// Encoded frames of the current batch, reused across batches.
    buf: Vec<u8>,
    /// Marks taken into the current batch, each with the seq of the record before it;
    /// answered once the batch's outcome is known.
    marks: Vec<(u64, oneshot::Sender<Result<u64, JournalError>>)>,
}

impl<E: Serialize> Writer<E> {
    /// The thread's main loop: one group commit per iteration until every sender is
    /// gone and the queue is drained.
    fn run(mut self) {
        let mut batch: Vec<PendingRecord<E>> = Vec::new();
        while let Ok(first) = self.rx.recv() {
            self.buf.clear();
            self.take(first, &mut batch);
            while batch.len() < self.max_batch_records && (self.buf.len() as u64) < MAX_BATCH_BYTES
            {
                match self.rx.try_recv() {
                    Ok(msg) => self.take(msg, &mut batch),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            // Before the batch, so a `truncate_through` followed by an append is done by
            // the time that append is acked.
            self.apply_truncation();
            let outcome = self.commit(&mut batch);
            // After the batch's acks, so a mark never overtakes a record before it.
            for (seq, tx) in self.marks.drain(..) {
                let _ = tx.send(outcome.clone().map(|()| seq));
            }
            // Don't keep a huge buffer around after one burst of big records.
            if self.buf.capacity() as u64 > MAX_BATCH_BYTES * 2 {
                self.buf = Vec::new();
            }
        }
        self.apply_truncation();
    }

    /// Accept one message into the batch being built, encoding appends right away.
    fn take(&mut self, msg: Msg<E>, batch: &mut Vec<PendingRecord<E>>) {
        let seq = self.next_seq + batch.len() as u64;
        let (event, ack) = match msg {
            Msg::Append { event, ack } => (event, ack),
            Msg::Mark(tx) => {
                self.marks.push((seq - 1, tx));
                return;
            }
            Msg::Wake => return,
        };
        if let Some(err) = self.shared.poisoned_error() {
            ack.send_now(Err(err));
            return;
        }
        match encode_record(&mut self.buf, seq, &event) {
            Ok(()) => batch.push(PendingRecord { seq, event, ack }),
            Err(err) => {
                self.shared.refused_records.fetch_add(1, Ordering::Relaxed);
                ack.send_now(Err(err));
            }
        }
    }

    /// Fail every record of the batch with `err` (always `Unavailable`), and hand `err`
    /// back for the batch's marks.
    fn fail_batch(
        &self,
        batch: &mut Vec<PendingRecord<E>>,
        err: JournalError,
    ) -> Result<(), JournalError> {
        self.shared.failed_batches.fetch_add(1, Ordering::Relaxed);
        for record in batch.drain(..) {
            record.ack.send_now(Err(err.clone()));
        }
        Err(err)
    }

    /// Write, sync, hand over and acknowledge one batch (the encoded frames are in
    /// `self.buf`). `Ok` when it is durable (or empty).
    fn commit(&mut self, batch: &mut Vec<PendingRecord<E>>) -> Result<(), JournalError> {
        if batch.is_empty() {
            return Ok(());
        }
        let batch_bytes = self.buf.len() as u64;
        let active_has_records = self.next_seq > self.active.first_seq;
        if active_has_records
            && self.active.len_bytes.saturating_add(batch_bytes) > self.segment_max_bytes
        {
            if let Err(err) = self.roll() {
                return self.fail_batch(batch, err);
            }
        }

        // One span per batch, carrying its sequence range: a request's span records the
        // seq its event got, so the two can be matched in the logs.
        let (first_seq, last_seq) = (
            batch.first().map_or(0, |r| r.seq),
            batch.last().map_or(0, |r| r.seq),
        );
        let span = tracing::debug_span!(
            "journal_batch",
            first_seq,
            last_seq,
            records = batch.len(),
            bytes = batch_bytes
        );
        let _entered = span.enter();
        metrics::histogram!(METRIC_BATCH_RECORDS).record(batch.len() as f64);

        let start_len = self.active.len_bytes;
        if let Err(e) = self.active.file.write_all(&self.buf) {
            let reason = format!(
                "write to {} failed: {e}; batch not written",
                self.active.path.display()
            );
            tracing::error!(reason = %reason, "journal batch failed");
            if let Err(e2) = self.cut_back(start_len) {
                // A half-written batch stays in the file and would sit in front of the
                // next one (or resurface after a crash): stop writing altogether.
                self.shared.poison(format!(
                    "{reason}; cutting the partial batch off {} failed too: {e2}",
                    self.active.path.display()
                ));
            }
            return self.fail_batch(batch, JournalError::Unavailable { reason });
        }
        self.active.len_bytes += batch_bytes;

        if self.sync == SyncMode::Fdatasync {
            let sync_started = std::time::Instant::now();
            let synced = self.active.file.sync_data();
            metrics::histogram!(METRIC_FSYNC_SECONDS).record(sync_started.elapsed().as_secs_f64());
            if let Err(e) = synced {
                // fsyncgate: after a failed fdatasync the kernel may have dropped the
                // dirty pages and a retry can "succeed" without them reaching disk. The
                // only safe answer is to stop and let restart + recovery decide.
                let reason = format!("fdatasync of {} failed: {e}", self.active.path.display());
                self.shared.poison(reason.clone());
                return self.fail_batch(batch, JournalError::Unavailable { reason });
            }
            self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        }

        let count = batch.len() as u64;
        self.next_seq += count;
        // Before anyone hears of the batch.
        self.shared
            .durable_seq
            .store(self.next_seq - 1, Ordering::Release);
        self.shared.batches.fetch_add(1, Ordering::Relaxed);
        self.shared.records.fetch_add(count, Ordering::Relaxed);

        let mut committed = Vec::with_capacity(batch.len());
        let mut acks = Vec::with_capacity(batch.len());
        for record in batch.drain(..) {
            committed.push(Committed {
                seq: record.seq,
                event: record.event,
            });
            acks.push((record.seq, record.ack));
        }
        let on_commit = &mut self.on_commit;
        if panic::catch_unwind(AssertUnwindSafe(|| on_commit(committed))).is_err() {
            // The batch is durable, so its acks are true; but whatever the caller keeps
            // missed it, so nothing further may be accepted.
            self.shared.poison(
                "on_commit hook panicked; its view of the journal is incomplete".to_string(),
            );
        }
        // One delivery per sink: a batch's acks for one shard wake it once.
        let mut routed: Vec<(Arc<dyn AckSink>, Vec<Ack>)> = Vec::new();
        for (seq, ack) in acks {
            match ack {
                Reply::Direct(tx) => {
                    let _ = tx.send(Ok(seq));
                }
                Reply::Via(tx, sink) => {
                    let ack = Ack {
                        tx,
                        result: Ok(seq),
                    };
                    let same = |(s, _): &&mut (Arc<dyn AckSink>, Vec<Ack>)| {
                        std::ptr::addr_eq(Arc::as_ptr(s), Arc::as_ptr(&sink))
                    };
                    match routed.iter_mut().find(same) {
                        Some((_, acks)) => acks.push(ack),
                        None => routed.push((sink, vec![ack])),
                    }
                }
            }
        }
        for (sink, acks) in routed {
            sink.deliver(acks);
        }
        tracing::debug!("journal batch durable");
        Ok(())
    }

    /// Cut the active segment back to `len_bytes` after a failed write, durably: the
    /// partial batch may hold whole valid frames, which must not resurface after a crash
    /// as records nobody was told had committed.
    fn cut_back(&mut self, len_bytes: u64) -> io::Result<()> {
        self.active.file.set_len(len_bytes)?;
        if self.sync == SyncMode::Fdatasync {
            self.active.file.sync_data()?;
        }
        Ok(())
    }

    /// Start a new segment at `next_seq`. A failed create/header write fails only this
    /// batch (the old segment stays active and the roll is retried); a failed sync
    /// poisons.
    fn roll(&mut self) -> Result<(), JournalError> {
        match create_segment(self.storage.as_mut(), &self.dir, self.next_seq, self.sync) {
            Ok(segment) => {
                let old = std::mem::replace(&mut self.active, segment);
                self.older_segments.push_back((old.first_seq, old.path));
                Ok(())
            }
            Err(CreateFailure::Write { path, source }) => {
                // Best effort; a leftover is truncated by the next roll attempt, and at
                // start-up recovery rewrites a short header.
                let _ = self.storage.remove(&path);
                Err(JournalError::Unavailable {
                    reason: format!(
                        "creating segment {} failed: {source}; batch not written",
                        path.display()
                    ),
                })
            }
            Err(CreateFailure::Sync { path, source }) => {
                let reason = format!(
                    "fsync of {} while creating a segment failed: {source}",
                    path.display()
                );
                self.shared.poison(reason.clone());
                Err(JournalError::Unavailable { reason })
            }
        }
    }

    /// Delete whole old segments at or below the truncation target that hold none of the
    /// newest `retain_records` records.
    fn apply_truncation(&mut self) {
        let covered = self.shared.truncate_target.load(Ordering::SeqCst);
        // Records through this seq are older than the retained window (next_seq >= 1).
        let outside_window = (self.next_seq - 1).saturating_sub(self.retain_records);
        let target = covered.min(outside_window);
        if target == 0 {
            return;
        }
        let mut removed = 0usize;
        while let Some((_, path)) = self.older_segments.front() {
            let next_first = self
                .older_segments
                .get(1)
                .map(|(first, _)| *first)
                .unwrap_or(self.active.first_seq);
            // The segment's last record is next_first - 1 (next_first >= 1 always).
            if next_first - 1 > target {
                break;
            }
            if let Err(e) = self.storage.remove(path) {
                tracing::warn!(file = %path.display(), error = %e, "journal: could not delete old segment");
                break;
            }
            tracing::debug!(file = %path.display(), through_seq = target, "journal: deleted old segment");
            self.older_segments.pop_front();
            removed += 1;
        }
        if removed > 0 && self.sync == SyncMode::Fdatasync {
            if let Err(e) = self.storage.sync_dir(&self.dir) {
                // Only deletions are at stake: at worst a deleted file reappears after a
                // crash, and recovery skips its records as covered by the snapshot.
                tracing::warn!(dir = %self.dir.display(), error = %e, "journal: directory fsync after deleting segments failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::FaultyStorage;
    use proptest::prelude::*;
    use serde::Deserialize;
    use std::sync::mpsc;

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    struct Ev {
        id: u64,
        note: String,
    }

    fn ev(id: u64) -> Ev {
        Ev {
            id,
            note: format!("event number {id}"),
        }
    }

    fn options(dir: &Path, segment_max_bytes: u64) -> JournalOptions {
        JournalOptions {
            dir: dir.to_path_buf(),
            segment_max_bytes,
            ..JournalOptions::default()
        }
    }

    /// Committed batches as seen by `on_commit`.
    type Batches = Arc<Mutex<Vec<Vec<Committed<Ev>>>>>;

    fn collector() -> (OnCommit<Ev>, Batches) {
        let batches: Batches = Arc::default();
        let sink = Arc::clone(&batches);
        let hook = Box::new(move |batch: Vec<Committed<Ev>>| {
            sink.lock().expect("lock").push(batch);
        });
        (hook, batches)
    }

    /// A hook that, on its first batch, signals `entered` and then blocks until
    /// `release` is sent: holds the writer so a queue can build up deterministically.
    struct Gate {
        hook: OnCommit<Ev>,
        batches: Batches,
        entered: mpsc::Receiver<()>,
        release: mpsc::Sender<()>,
    }

    fn gate() -> Gate {
        let batches: Batches = Arc::default();
        let sink = Arc::clone(&batches);
        let (entered_tx, entered) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let mut first = true;
        let hook = Box::new(move |batch: Vec<Committed<Ev>>| {
            sink.lock().expect("lock").push(batch);
            if first {
                first = false;
                let _ = entered_tx.send(());
                let _ = release_rx.recv();
            }
        });
        Gate {
            hook,
            batches,
            entered,
            release,
        }
    }

    fn seqs(batches: &Batches) -> Vec<u64> {
        batches
            .lock()
            .expect("lock")
            .iter()
            .flatten()
            .map(|c| c.seq)
            .collect()
    }

    fn wait(rx: AckReceiver) -> Result<u64, JournalError> {
        rx.blocking_recv().expect("ack sender dropped")
    }

    fn append_wait<E: Serialize + Send + 'static>(
        journal: &Journal<E>,
        event: E,
    ) -> Result<u64, JournalError> {
        wait(journal.append(event)?)
    }

    fn recover_all(
        dir: &Path,
        after_seq: u64,
    ) -> Result<(Vec<(u64, Ev)>, RecoveryReport), JournalError> {
        let mut out = Vec::new();
        let report = recover(dir, after_seq, |seq, e: Ev| out.push((seq, e)))?;
        Ok((out, report))
    }

    fn segment_files(dir: &Path) -> Vec<(u64, PathBuf)> {
        list_segments(dir).expect("list segments")
    }

    /// (seq, offset) of every record in a clean segment.
    fn record_offsets(path: &Path) -> Vec<(u64, u64)> {
        let bytes = fs::read(path).expect("read");
        let first = parse_segment_name(&path.file_name().expect("name").to_string_lossy())
            .expect("segment name");
        let mut out = Vec::new();
        let outcome = scan_records(&bytes, path, first, |seq, _, offset| {
            out.push((seq, offset));
            Ok(())
        })
        .expect("scan");
        assert!(outcome.bad.is_none());
        out
    }

    fn flip_byte(path: &Path, offset: u64) {
        let mut bytes = fs::read(path).expect("read");
        bytes[offset as usize] ^= 0x5a;
        fs::write(path, bytes).expect("write");
    }

    fn file_len(path: &Path) -> u64 {
        fs::metadata(path).expect("metadata").len()
    }

    /// Start a fresh journal in `dir` and append `ids` one at a time (one batch each).
    fn write_sequential(dir: &Path, segment_max_bytes: u64, ids: std::ops::RangeInclusive<u64>) {
        let (hook, _) = collector();
        let next = *ids.start();
        let journal = Journal::start(options(dir, segment_max_bytes), next, hook).expect("start");
        for id in ids {
            assert_eq!(append_wait(&journal, ev(id)).expect("ack"), id);
        }
        journal.shutdown();
    }

    /// A mark answers with the seq of the last record queued before it, only once that
    /// record is durable; with 0 on an empty journal; and marks queued behind a held
    /// writer wait for the records before them.
    #[test]
    fn a_mark_names_the_last_record_before_it_once_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let g = gate();
        let journal = Journal::start(options(dir.path(), 1 << 20), 1, g.hook).expect("start");
        assert_eq!(
            wait(journal.mark().expect("mark")).expect("durable"),
            0,
            "nothing journaled yet"
        );
        assert_eq!(journal.durable_seq(), 0);
        // The first batch holds the writer inside on_commit.
        let first = journal.append(ev(1)).expect("append");
        g.entered.recv().expect("writer entered the hook");
        let second = journal.append(ev(2)).expect("append");
        let mut mark = journal.mark().expect("mark");
        let third = journal.append(ev(3)).expect("append");
        assert!(
            mark.try_recv().is_err(),
            "the mark waits for record 2, which is not durable yet"
        );
        g.release.send(()).expect("release");
        assert_eq!(wait(first).expect("durable"), 1);
        assert_eq!(wait(second).expect("durable"), 2);
        assert_eq!(
            wait(mark).expect("durable"),
            2,
            "the mark sits between records 2 and 3"
        );
        assert_eq!(wait(third).expect("durable"), 3);
        assert_eq!(wait(journal.mark().expect("mark")).expect("durable"), 3);
        assert_eq!(journal.durable_seq(), 3);
        journal.shutdown();
        assert_eq!(seqs(&g.batches), vec![1, 2, 3]);
        assert!(matches!(journal.mark(), Err(JournalError::Closed)));
    }

    #[test]
    fn append_and_recover_round_trip_over_several_segments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (hook, batches) = collector();
        let journal = Journal::start(options(dir.path(), 128), 1, hook).expect("start");
        for id in 1..=40 {
            assert_eq!(append_wait(&journal, ev(id)).expect("ack"), id);
        }
        journal.shutdown();
        assert_eq!(seqs(&batches), (1..=40).collect::<Vec<_>>());
        let events: Vec<Ev> = batches
            .lock()
            .expect("lock")
            .iter()
            .flatten()
            .map(|c| c.event.clone())
            .collect();
        assert_eq!(events, (1..=40).map(ev).collect::<Vec<_>>());

        let files = segment_files(dir.path());
        assert!(
            files.len() > 3,
            "expected several segments, got {}",
            files.len()
        );
        for (first_seq, path) in &files {
            assert_eq!(
                path.file_name().expect("name").to_string_lossy(),
                format!("{first_seq:020}.seg")
            );
            let header = fs::read(path).expect("read");
            assert_eq!(&header[..4], b"INKJ");
            assert_eq!(header[4..8], SEGMENT_FORMAT_VERSION.to_le_bytes());
        }

        let (records, report) = recover_all(dir.path(), 0).expect("recover");
        assert_eq!(records, (1..=40).map(|id| (id, ev(id))).collect::<Vec<_>>());
        assert_eq!(
            report,
            RecoveryReport {
                records_replayed: 40,
                last_seq: 40,
                segments: files.len(),
                torn_tail_truncated_bytes: 0,
                torn_tail_file: None,
            }
        );

        let (records, report) = recover_all(dir.path(), 25).expect("recover after 25");
        assert_eq!(records.first().map(|r| r.0), Some(26));
        assert_eq!(report.records_replayed, 15);
        assert_eq!(report.last_seq, 40);

        // Restart where recovery says and keep going, with concurrent appends.
        let (hook, _) = collector();
        let journal =
            Journal::start(options(dir.path(), 128), report.last_seq + 1, hook).expect("restart");
        let receivers: Vec<_> = (41..=50)
            .map(|id| journal.append(ev(id)).expect("append"))
            .collect();
        let acked: Vec<u64> = receivers
            .into_iter()
            .map(|rx| wait(rx).expect("ack"))
            .collect();
        assert_eq!(acked, (41..=50).collect::<Vec<_>>());
        journal.shutdown();
        let (records, _) = recover_all(dir.path(), 0).expect("recover again");
        assert_eq!(records, (1..=50).map(|id| (id, ev(id))).collect::<Vec<_>>());
    }

    #[test]
    fn group_commit_batches_concurrent_appends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gate = gate();
        let journal = Journal::start(options(dir.path(), 1 << 26), 1, gate.hook).expect("start");
        let first = journal.append(ev(0)).expect("append");
        gate.entered.recv().expect("writer entered on_commit");

        // While the writer is held, 8 threads queue 1000 appends.
        let handles: Vec<_> = (0..8u64)
            .map(|t| {
                let journal = journal.clone();
                std::thread::spawn(move || {
                    (0..125u64)
                        .map(|i| journal.append(ev(1 + t * 125 + i)).expect("append"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let receivers: Vec<AckReceiver> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect();
        gate.release.send(()).expect("release");

        assert_eq!(wait(first).expect("ack"), 1);
        let mut acked: Vec<u64> = receivers
            .into_iter()
            .map(|rx| wait(rx).expect("ack"))
            .collect();
        acked.sort_unstable();
        assert_eq!(acked, (2..=1001).collect::<Vec<_>>());

        let stats = journal.stats();
        assert_eq!(stats.records, 1001);
        // One batch for the first append, one for the 1000 queued behind it.
        assert_eq!(stats.batches, 2, "{stats:?}");
        assert_eq!(stats.fsyncs, 2);
        let sizes: Vec<usize> = gate
            .batches
            .lock()
            .expect("lock")
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, vec![1, 1000]);
        journal.shutdown();

        let (records, _) = recover_all(dir.path(), 0).expect("recover");
        assert_eq!(records.len(), 1001);
    }

    /// Collects what the writer delivers: the size of each delivery, and the acks.
    #[derive(Debug, Default)]
    struct Collect {
        deliveries: Mutex<Vec<Vec<Ack>>>,
    }

    impl AckSink for Collect {
        fn deliver(&self, acks: Vec<Ack>) {
            self.deliveries.lock().expect("lock").push(acks);
        }
    }

    #[test]
    fn a_batch_hands_each_sink_its_acks_in_one_delivery() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gate = gate();
        let journal = Journal::start(options(dir.path(), 1 << 26), 1, gate.hook).expect("start");
        let first = journal.append(ev(0)).expect("append");
        gate.entered.recv().expect("writer entered on_commit");
        // While the writer is held, appends for two sinks and one direct append queue up.
        let (a, b) = (Arc::new(Collect::default()), Arc::new(Collect::default()));
        let (sink_a, sink_b): (Arc<dyn AckSink>, Arc<dyn AckSink>) = (a.clone(), b.clone());
        let mut via_a = Vec::new();
        let mut via_b = Vec::new();
        for i in 0..10u64 {
            via_a.push(journal.append_via(ev(1 + 2 * i), &sink_a).expect("append"));
            via_b.push(journal.append_via(ev(2 + 2 * i), &sink_b).expect("append"));
        }
        let direct = journal.append(ev(100)).expect("append");
        gate.release.send(()).expect("release");
        assert_eq!(wait(first).expect("ack"), 1);
        assert_eq!(wait(direct).expect("ack"), 22);
        journal.shutdown();
        // Nothing reaches a sink's waiters until the sink completes the acks.
        assert!(via_a
            .iter_mut()
            .chain(&mut via_b)
            .all(|rx| rx.try_recv().is_err()));
        for sink in [&a, &b] {
            let deliveries = std::mem::take(&mut *sink.deliveries.lock().expect("lock"));
            assert_eq!(deliveries.len(), 1, "one delivery per sink per batch");
            for ack in deliveries.into_iter().flatten() {
                ack.complete();
            }
        }
        let acked_a: Vec<u64> = via_a.into_iter().map(|rx| wait(rx).expect("ack")).collect();
        let acked_b: Vec<u64> = via_b.into_iter().map(|rx| wait(rx).expect("ack")).collect();
        assert_eq!(acked_a, (0..10).map(|i| 2 + 2 * i).collect::<Vec<u64>>());
        assert_eq!(acked_b, (0..10).map(|i| 3 + 2 * i).collect::<Vec<u64>>());
    }

    #[test]
    fn max_batch_records_bounds_a_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gate = gate();
        let opts = JournalOptions {
            max_batch_records: 100,
            ..options(dir.path(), 1 << 26)
        };
        let journal = Journal::start(opts, 1, gate.hook).expect("start");
        let first = journal.append(ev(0)).expect("append");
        gate.entered.recv().expect("entered");
        let receivers: Vec<_> = (1..=1000)
            .map(|id| journal.append(ev(id)).expect("append"))
            .collect();
        gate.release.send(()).expect("release");
        assert_eq!(wait(first).expect("ack"), 1);
        for rx in receivers {
            wait(rx).expect("ack");
        }
        let sizes: Vec<usize> = gate
            .batches
            .lock()
            .expect("lock")
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes.len(), 11);
        assert!(sizes.iter().all(|&n| n <= 100), "{sizes:?}");
        journal.shutdown();
    }

    #[test]
    fn full_queue_is_overloaded_not_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gate = gate();
        let opts = JournalOptions {
            queue_capacity: 1,
            ..options(dir.path(), 1 << 26)
        };
        let journal = Journal::start(opts, 1, gate.hook).expect("start");
        let first = journal.append(ev(1)).expect("append");
        gate.entered.recv().expect("entered");
        let second = journal.append(ev(2)).expect("fills the queue");
        assert!(matches!(
            journal.append(ev(3)),
            Err(JournalError::Overloaded)
        ));
        gate.release.send(()).expect("release");
        assert_eq!(wait(first).expect("ack"), 1);
        assert_eq!(wait(second).expect("ack"), 2);
        journal.shutdown();
    }

    #[test]
    fn torn_tail_is_truncated_and_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_sequential(dir.path(), 1 << 20, 1..=10);
        let files = segment_files(dir.path());
        assert_eq!(files.len(), 1);
        let path = &files[0].1;
        let offsets = record_offsets(path);
        let tenth = offsets[9].1;
        let len = file_len(path);
        fs::OpenOptions::new()
            .write(true)
            .open(path)
            .expect("open")
            .set_len(len - 3)
            .expect("cut");

        let (records, report) = recover_all(dir.path(), 0).expect("recover");
        assert_eq!(records, (1..=9).map(|id| (id, ev(id))).collect::<Vec<_>>());
        assert_eq!(report.last_seq, 9);
        assert_eq!(report.torn_tail_truncated_bytes, len - 3 - tenth);
        assert_eq!(report.torn_tail_file.as_deref(), Some(path.as_path()));
        assert_eq!(
            file_len(path),
            tenth,
            "file cut back to the last good record"
        );

        // Recovery is idempotent and the journal continues cleanly.
        let (_, again) = recover_all(dir.path(), 0).expect("recover again");
        assert_eq!(again.torn_tail_truncated_bytes, 0);
        let (hook, _) = collector();
        let journal = Journal::start(options(dir.path(), 1 << 20), 10, hook).expect("restart");
        assert_eq!(append_wait(&journal, ev(100)).expect("ack"), 10);
        journal.shutdown();
        let (records, _) = recover_all(dir.path(), 0).expect("recover");
        assert_eq!(records.last(), Some(&(10, ev(100))));
    }

    #[test]
    fn bad_crc_in_last_record_is_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_sequential(dir.path(), 1 << 20, 1..=5);
        let path = segment_files(dir.path())[0].1.clone();
        let last = record_offsets(&path)[4].1;
        let len = file_len(&path);
        flip_byte(&path, len - 1);
        let (records, report) = recover_all(dir.path(), 0).expect("recover");
        assert_eq!(records.len(), 4);
        assert_eq!(report.torn_tail_truncated_bytes, len - last);
        assert_eq!(file_len(&path), last);
    }

    #[test]
    fn last_segment_shorter_than_header_is_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_sequential(dir.path(), 1 << 20, 1..=3);
        // A crash right after creating the next segment, mid-header.
        let torn = dir.path().join(segment_file_name(4));
        fs::write(&torn, b"INK").expect("write");
        let (records, report) = recover_all(dir.path(), 0).expect("recover");
        assert_eq!(records.len(), 3);
        assert_eq!(report.torn_tail_truncated_bytes, 3);
        assert_eq!(report.torn_tail_file.as_deref(), Some(torn.as_path()));
        assert_eq!(fs::read(&torn).expect("read"), segment_header());

        // A zero-length last segment is fine as it is, and the journal starts on it.
        fs::write(&torn, b"").expect("write");
        let (_, report) = recover_all(dir.path(), 0).expect("recover");
        assert_eq!(report.torn_tail_truncated_bytes, 0);
        assert_eq!(report.last_seq, 3);
        let (hook, _) = collector();
        let journal = Journal::start(options(dir.path(), 1 << 20), 4, hook).expect("start");
        assert_eq!(append_wait(&journal, ev(4)).expect("ack"), 4);
        journal.shutdown();
        assert_eq!(recover_all(dir.path(), 0).expect("recover").0.len(), 4);
    }

    #[test]
    fn corruption_before_the_tail_is_an_error_with_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_sequential(dir.path(), 1 << 20, 1..=10);
        let path = segment_files(dir.path())[0].1.clone();
        let offsets = record_offsets(&path);
        let fourth = offsets[3].1;
        // Damage the payload of record 4; records 5..10 are intact after it.
        flip_byte(&path, fourth + RECORD_HEADER_BYTES + 2);
        let len_before = file_len(&path);
        let err = recover_all(dir.path(), 0).expect_err("must refuse");
        match &err {
            JournalError::Corrupt {
                path: p, offset, ..
            } => {
                assert_eq!(p, &path);
                assert_eq!(*offset, fourth);
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert!(
            err.to_string().contains(&format!("offset {fourth}")),
            "{err}"
        );
        assert_eq!(file_len(&path), len_before, "nothing truncated");
        // The journal refuses to start on it too.
        let (hook, _) = collector();
        assert!(matches!(
            Journal::start(options(dir.path(), 1 << 20), 11, hook),
            Err(JournalError::Corrupt { .. })
        ));
    }

    #[test]
    fn corrupt_length_before_the_tail_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_sequential(dir.path(), 1 << 20, 1..=6);
        let path = segment_files(dir.path())[0].1.clone();
        let second = record_offsets(&path)[1].1;
        // Length field of record 2 set beyond the 16 MiB cap.
        let mut bytes = fs::read(&path).expect("read");
        bytes[second as usize + 3] = 0xff;
        fs::write(&path, bytes).expect("write");
        match recover_all(dir.path(), 0) {
            Err(JournalError::Corrupt { offset, .. }) => assert_eq!(offset, second),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn corruption_in_a_non_last_segment_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_sequential(dir.path(), 64, 1..=6);
        let files = segment_files(dir.path());
        assert!(files.len() >= 3);
        let first = files[0].1.clone();
        // Damage the last byte of the first segment: a torn-looking record, but not in
        // the last segment.
        flip_byte(&first, file_len(&first) - 1);
        match recover_all(dir.path(), 0) {
            Err(JournalError::Corrupt { path, offset, .. }) => {
                assert_eq!(path, first);
                assert_eq!(offset, record_offsets_unchecked_last(&first));
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        // Same for a truncated (incomplete) record there.
        flip_byte(&first, file_len(&first) - 1);
        let len = file_len(&first);
        fs::OpenOptions::new()
            .write(true)
            .open(&first)
            .expect("open")
            .set_len(len - 1)
            .expect("cut");
        assert!(matches!(
            recover_all(dir.path(), 0),
            Err(JournalError::Corrupt { .. })
        ));
        assert_eq!(file_len(&first), len - 1, "non-last segments are never cut");
    }

    /// Offset of the last record in a segment whose last record is damaged.
    fn record_offsets_unchecked_last(path: &Path) -> u64 {
        let bytes = fs::read(path).expect("read");
        let first =
            parse_segment_name(&path.file_name().expect("name").to_string_lossy()).expect("name");
        let outcome = scan_records(&bytes, path, first, |_, _, _| Ok(())).expect("scan");
        outcome.bad.expect("a bad record").offset
    }

    #[test]
    fn unknown_format_version_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_sequential(dir.path(), 1 << 20, 1..=2);
        let path = segment_files(dir.path())[0].1.clone();
        let mut bytes = fs::read(&path).expect("read");
        bytes[4..8].copy_from_slice(&(SEGMENT_FORMAT_VERSION + 1).to_le_bytes());
        fs::write(&path, bytes).expect("write");
        match recover_all(dir.path(), 0) {
            Err(JournalError::UnknownFormat { path: p, version }) => {
                assert_eq!(p, path);
                assert_eq!(version, SEGMENT_FORMAT_VERSION + 1);
            }
            other => panic!("expected UnknownFormat, got {other:?}"),
        }
        let (hook, _) = collector();
        assert!(matches!(
            Journal::start(options(dir.path(), 1 << 20), 3, hook),
            Err(JournalError::UnknownFormat { version, .. }) if version == SEGMENT_FORMAT_VERSION + 1
        ));
        // Bad magic is corruption.
        let mut bytes = fs::read(&path).expect("read");
        bytes[0] = b'X';
        fs::write(&path, bytes).expect("write");
        assert!(matches!(
            recover_all(dir.path(), 0),
            Err(JournalError::Corrupt { offset: 0, .. })
        ));
    }

    #[test]
    fn sequence_gaps_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_sequential(dir.path(), 64, 1..=6);
        let files = segment_files(dir.path());
        assert!(files.len() >= 4);

        // Journal behind the snapshot.
        assert!(matches!(
            recover_all(dir.path(), 100),
            Err(JournalError::Gap {
                expected: 101,
                found: 7,
                ..
            })
        ));

        // A missing middle segment.
        let (missing_first, missing) = files[1].clone();
        let next_first = files[2].0;
        fs::remove_file(&missing).expect("remove");
        match recover_all(dir.path(), 0) {
            Err(JournalError::Gap {
                expected, found, ..
            }) => {
                assert_eq!(expected, missing_first);
                assert_eq!(found, next_first);
            }
            other => panic!("expected Gap, got {other:?}"),
        }

        // A missing first segment with no snapshot covering it.
        let dir2 = tempfile::tempdir().expect("tempdir");
        write_sequential(dir2.path(), 64, 1..=6);
        let files2 = segment_files(dir2.path());
        fs::remove_file(&files2[0].1).expect("remove");
        assert!(matches!(
            recover_all(dir2.path(), 0),
            Err(JournalError::Gap { expected: 1, .. })
        ));

        // No journal at all while a snapshot exists.
        let empty = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            recover_all(empty.path(), 5),
            Err(JournalError::Gap {
                expected: 6,
                found: 0,
                ..
            })
        ));
        let (_, report) = recover_all(empty.path(), 0).expect("fresh journal");
        assert_eq!(report.last_seq, 0);
        assert_eq!(report.segments, 0);
    }

    #[test]
    fn start_refuses_a_next_seq_that_does_not_continue_the_journal() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_sequential(dir.path(), 1 << 20, 1..=5);
        let (hook, _) = collector();
        match Journal::start(options(dir.path(), 1 << 20), 3, hook) {
            Err(JournalError::Gap {
                expected, found, ..
            }) => assert_eq!((expected, found), (3, 6)),
            other => panic!("expected Gap, got {other:?}"),
        }
        let (hook, _) = collector();
        assert!(matches!(
            Journal::start(options(dir.path(), 1 << 20), 0, hook),
            Err(JournalError::InvalidOptions { .. })
        ));
    }

    #[test]
    fn enospc_fails_the_batch_and_the_next_one_succeeds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (storage, plan) = FaultyStorage::over_fs();
        let (hook, batches) = collector();
        let journal =
            Journal::start_with_storage(options(dir.path(), 1 << 20), 1, hook, Box::new(storage))
                .expect("start");
        assert_eq!(append_wait(&journal, ev(1)).expect("ack"), 1);
        assert_eq!(append_wait(&journal, ev(2)).expect("ack"), 2);
        plan.fail_next_write();
        match append_wait(&journal, ev(3)) {
            Err(JournalError::Unavailable { reason }) => {
                assert!(reason.contains("no space left"), "{reason}")
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert!(journal.is_healthy(), "a failed write does not poison");
        // The failed batch's sequence number is reused.
        assert_eq!(append_wait(&journal, ev(4)).expect("ack"), 3);
        journal.shutdown();
        let stats = journal.stats();
        assert_eq!(
            (stats.batches, stats.records, stats.failed_batches),
            (3, 3, 1)
        );
        let committed: Vec<(u64, u64)> = batches
            .lock()
            .expect("lock")
            .iter()
            .flatten()
            .map(|c| (c.seq, c.event.id))
            .collect();
        assert_eq!(
            committed,
            vec![(1, 1), (2, 2), (3, 4)],
            "on_commit skipped the failed batch"
        );

        let (records, report) = recover_all(dir.path(), 0).expect("recover");
        assert_eq!(records, vec![(1, ev(1)), (2, ev(2)), (3, ev(4))]);
        assert_eq!(
            report.torn_tail_truncated_bytes, 0,
            "partial batch was cut at once"
        );
    }

    #[test]
    fn enospc_while_rolling_a_segment_fails_the_batch_and_retries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (storage, plan) = FaultyStorage::over_fs();
        let (hook, _) = collector();
        let journal =
            Journal::start_with_storage(options(dir.path(), 64), 1, hook, Box::new(storage))
                .expect("start");
        assert_eq!(append_wait(&journal, ev(1)).expect("ack"), 1);
        // The next batch rolls; its first write is the new segment's header.
        plan.fail_next_write();
        assert!(matches!(
            append_wait(&journal, ev(2)),
            Err(JournalError::Unavailable { .. })
        ));
        assert!(journal.is_healthy());
        assert_eq!(append_wait(&journal, ev(3)).expect("ack"), 2);
        assert_eq!(append_wait(&journal, ev(4)).expect("ack"), 3);
        journal.shutdown();
        let (records, _) = recover_all(dir.path(), 0).expect("recover");
        assert_eq!(records, vec![(1, ev(1)), (2, ev(3)), (3, ev(4))]);
    }

    #[test]
    fn fsync_failure_poisons_the_journal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (storage, plan) = FaultyStorage::over_fs();
        let (hook, batches) = collector();
        let journal =
            Journal::start_with_storage(options(dir.path(), 1 << 20), 1, hook, Box::new(storage))
                .expect("start");
        assert_eq!(append_wait(&journal, ev(1)).expect("ack"), 1);
        plan.fail_next_sync();
        assert!(matches!(
            append_wait(&journal, ev(2)),
            Err(JournalError::Unavailable { .. })
        ));
        assert!(!journal.is_healthy());
        // Every later append fails at once, even with the disk "fine" again.
        plan.clear();
        assert!(matches!(
            journal.append(ev(3)),
            Err(JournalError::Unavailable { .. })
        ));
        assert_eq!(
            seqs(&batches),
            vec![1],
            "on_commit never saw the failed batch"
        );
        let stats = journal.stats();
        assert_eq!(
            (stats.batches, stats.fsyncs, stats.failed_batches),
            (1, 1, 1)
        );
        journal.shutdown();
        assert!(matches!(
            journal.append(ev(4)),
            Err(JournalError::Unavailable { .. })
        ));
        // Restart + recovery decide what survived; the acked record certainly did.
        let (records, _) = recover_all(dir.path(), 0).expect("recover");
        assert_eq!(records.first(), Some(&(1, ev(1))));
    }

    /// First seqs of the segment files in `dir`.
    fn segment_firsts(dir: &Path) -> Vec<u64> {
        segment_files(dir).iter().map(|s| s.0).collect()
    }

    /// Recover after `after_seq`, keeping the newest `keep_last`: (replayed, kept, report).
    #[allow(clippy::type_complexity)]
    fn recover_keeping(
        dir: &Path,
        after_seq: u64,
        keep_last: u64,
    ) -> Result<(Vec<(u64, Ev)>, Vec<(u64, Ev)>, RecoveryReport), JournalError> {
        let mut replayed = Vec::new();
        let (report, kept) = recover_keeping_last(dir, after_seq, keep_last, |seq, e: Ev| {
            replayed.push((seq, e))
        })?;
        Ok((replayed, kept, report))
    }

    fn evs(seqs: std::ops::RangeInclusive<u64>) -> Vec<(u64, Ev)> {
        seqs.map(|id| (id, ev(id))).collect()
    }

    #[test]
    fn truncation_keeps_the_newest_retain_records_even_when_a_snapshot_covers_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (hook, _) = collector();
        let opts = JournalOptions {
            retain_records: 4,
            ..options(dir.path(), 64)
        };
        let journal = Journal::start(opts.clone(), 1, hook).expect("start");
        for id in 1..=10 {
            assert_eq!(append_wait(&journal, ev(id)).expect("ack"), id);
        }
        assert_eq!(
            segment_firsts(dir.path()),
            (1..=10).collect::<Vec<_>>(),
            "one record per segment"
        );

        // A snapshot through 3: all three are outside the window of the newest 4 (7..=10),
        // so they go; 4..=6 are outside the window too but no snapshot covers them.
        journal.truncate_through(3);
        assert_eq!(append_wait(&journal, ev(11)).expect("ack"), 11);
        assert_eq!(segment_firsts(dir.path()), (4..=11).collect::<Vec<_>>());

        // A snapshot covering everything: only what is older than the newest 4 goes. The
        // truncation runs before batch 12, when the newest record is 11 (window 8..=11).
        journal.truncate_through(u64::MAX);
        assert_eq!(append_wait(&journal, ev(12)).expect("ack"), 12);
        assert_eq!(segment_firsts(dir.path()), (8..=12).collect::<Vec<_>>());

        // The window slides with new records, without another truncate call.
        assert_eq!(append_wait(&journal, ev(13)).expect("ack"), 13);
        assert_eq!(append_wait(&journal, ev(14)).expect("ack"), 14);
        journal.shutdown();
        // Before batch 14 the newest was 13: window 10..=13; shutdown saw 14: 11..=14.
        assert_eq!(segment_firsts(dir.path()), (11..=14).collect::<Vec<_>>());

        // Recovery after a snapshot through 14 replays nothing (it only checks 11..=14) ...
        let (records, report) = recover_all(dir.path(), 14).expect("recover");
        assert!(records.is_empty());
        assert_eq!((report.last_seq, report.segments), (14, 4));
        // ... and can hand the retained records back exactly.
        let (replayed, kept, _) = recover_keeping(dir.path(), 14, 100).expect("recover");
        assert!(replayed.is_empty());
        assert_eq!(kept, evs(11..=14));

        // A restarted journal keeps honouring the window for segments it found on disk.
        let (hook, _) = collector();
        let journal = Journal::start(opts, 15, hook).expect("restart");
        journal.truncate_through(14);
        assert_eq!(append_wait(&journal, ev(15)).expect("ack"), 15);
        assert_eq!(append_wait(&journal, ev(16)).expect("ack"), 16);
        journal.shutdown();
        assert_eq!(segment_firsts(dir.path()), (13..=16).collect::<Vec<_>>());
    }

    #[test]
    fn recovery_hands_back_the_newest_records_in_the_same_pass() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_sequential(dir.path(), 128, 1..=40);
        let files = segment_files(dir.path());
        assert!(files.len() > 5, "several segments: {files:?}");

        // Replayed: only after the snapshot. Kept: the newest 15, covered or not.
        let (replayed, kept, report) = recover_keeping(dir.path(), 30, 15).expect("recover");
        assert_eq!(replayed, evs(31..=40));
        assert_eq!(kept, evs(26..=40));
        assert_eq!((report.records_replayed, report.last_seq), (10, 40));

        assert!(recover_keeping(dir.path(), 30, 0)
            .expect("none")
            .1
            .is_empty());
        assert_eq!(
            recover_keeping(dir.path(), 40, 1).expect("one").1,
            evs(40..=40)
        );
        assert_eq!(
            recover_keeping(dir.path(), 0, 5).expect("five").1,
            evs(36..=40)
        );
        assert_eq!(
            recover_keeping(dir.path(), 12, 100).expect("all").1,
            evs(1..=40)
        );

        // Older segments already deleted: fewer come back, starting where the journal does.
        fs::remove_file(&files[0].1).expect("remove");
        let start = files[1].0;
        let (_, kept, _) = recover_keeping(dir.path(), start, 100).expect("recover");
        assert_eq!(kept, evs(start..=40));

        assert!(matches!(
            recover_keeping(dir.path(), start, MAX_RETAIN_RECORDS + 1),
            Err(JournalError::InvalidOptions { .. })
        ));
    }

    #[test]
    fn kept_records_exclude_a_cut_tail_and_must_decode() {
        // A torn tail is cut, and none of it comes back.
        let dir = tempfile::tempdir().expect("tempdir");
        write_sequential(dir.path(), 1 << 20, 1..=5);
        let (_, path) = segment_files(dir.path()).pop().expect("segment");
        let len = file_len(&path);
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open")
            .set_len(len - 3)
            .expect("cut");
        let (replayed, kept, report) = recover_keeping(dir.path(), 0, 10).expect("recover");
        assert_eq!(replayed, evs(1..=4));
        assert_eq!(kept, evs(1..=4));
        assert_eq!(report.last_seq, 4);
        assert!(report.torn_tail_truncated_bytes > 0);

        // A record the snapshot covers is not decoded by plain recovery, but one that is
        // kept must decode: a valid CRC over garbage is corruption, named.
        let dir = tempfile::tempdir().expect("tempdir");
        write_sequential(dir.path(), 1 << 20, 1..=5);
        let (_, path) = segment_files(dir.path()).pop().expect("segment");
        let (seq, offset) = record_offsets(&path)[3];
        let mut bytes = fs::read(&path).expect("read");
        let start = offset as usize + RECORD_HEADER_BYTES as usize;
        let len = read_u32(&bytes, offset as usize) as usize;
        bytes[start..start + len].fill(0xff);
        let crc = record_crc(seq, &bytes[start..start + len]);
        bytes[offset as usize + 12..start].copy_from_slice(&crc.to_le_bytes());
        fs::write(&path, bytes).expect("write");
        assert_eq!(recover_all(dir.path(), 5).expect("covered").1.last_seq, 5);
        assert_eq!(
            recover_keeping(dir.path(), 5, 1).expect("kept 5 only").1,
            evs(5..=5)
        );
        match recover_keeping(dir.path(), 5, 2) {
            Err(JournalError::Corrupt {
                path: p,
                offset: o,
                reason,
            }) => {
                assert_eq!((p, o), (path, offset));
                assert!(reason.contains("does not decode"), "{reason}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }

        // Damage in a segment wholly covered by the snapshot is still refused.
        let dir = tempfile::tempdir().expect("tempdir");
        write_sequential(dir.path(), 128, 1..=40);
        let (_, middle) = segment_files(dir.path())[2].clone();
        let (_, bad_offset) = record_offsets(&middle)[0];
        flip_byte(&middle, bad_offset + RECORD_HEADER_BYTES);
        match recover_keeping(dir.path(), 40, 5) {
            Err(JournalError::Corrupt { path, offset, .. }) => {
                assert_eq!((path, offset), (middle, bad_offset))
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn truncate_through_deletes_only_whole_old_segments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (hook, _) = collector();
        let journal = Journal::start(options(dir.path(), 64), 1, hook).expect("start");
        for id in 1..=10 {
            assert_eq!(append_wait(&journal, ev(id)).expect("ack"), id);
        }
        let firsts: Vec<u64> = segment_files(dir.path()).iter().map(|s| s.0).collect();
        assert_eq!(
            firsts,
            (1..=10).collect::<Vec<_>>(),
            "one record per segment"
        );

        journal.truncate_through(5);
        // Done before the next batch, so by the time this is acked.
        assert_eq!(append_wait(&journal, ev(11)).expect("ack"), 11);
        let firsts: Vec<u64> = segment_files(dir.path()).iter().map(|s| s.0).collect();
        assert_eq!(firsts, (6..=11).collect::<Vec<_>>());

        // A seq in the middle of a segment keeps that segment.
        let (hook2, _) = collector();
        let dir2 = tempfile::tempdir().expect("tempdir");
        let wide = Journal::start(options(dir2.path(), 200), 1, hook2).expect("start");
        for id in 1..=12 {
            assert_eq!(append_wait(&wide, ev(id)).expect("ack"), id);
        }
        let before = segment_files(dir2.path());
        assert!(before.len() >= 3);
        let keep_from = before[1].0; // second segment's first seq
        wide.truncate_through(keep_from); // first record of segment 2 only
        wide.shutdown();
        let after: Vec<u64> = segment_files(dir2.path()).iter().map(|s| s.0).collect();
        assert_eq!(
            after.first(),
            Some(&keep_from),
            "only the first segment went"
        );
        assert_eq!(after.len(), before.len() - 1);

        let (records, report) = recover_all(dir.path(), 5).expect("recover after snapshot");
        assert_eq!(records, (6..=11).map(|id| (id, ev(id))).collect::<Vec<_>>());
        assert_eq!(report.last_seq, 11);
        assert!(matches!(
            recover_all(dir.path(), 0),
            Err(JournalError::Gap {
                expected: 1,
                found: 6,
                ..
            })
        ));

        // Even "everything" never deletes the active segment.
        journal.truncate_through(u64::MAX);
        journal.shutdown();
        let firsts: Vec<u64> = segment_files(dir.path()).iter().map(|s| s.0).collect();
        assert_eq!(firsts, vec![11]);
        let (records, report) = recover_all(dir.path(), 11).expect("recover");
        assert!(records.is_empty());
        assert_eq!(report.last_seq, 11);
        let (records, _) = recover_all(dir.path(), 10).expect("recover");
        assert_eq!(records, vec![(11, ev(11))]);
    }

    #[test]
    fn shutdown_drains_queued_appends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gate = gate();
        let journal = Journal::start(options(dir.path(), 1 << 20), 1, gate.hook).expect("start");
        let mut receivers = vec![journal.append(ev(1)).expect("append")];
        gate.entered.recv().expect("entered");
        for id in 2..=200 {
            receivers.push(journal.append(ev(id)).expect("append"));
        }
        let closer = {
            let journal = journal.clone();
            std::thread::spawn(move || journal.shutdown())
        };
        // Keep appending until shutdown has closed the queue; everything accepted
        // before that must still be written and acked.
        let mut id = 201;
        loop {
            match journal.append(ev(id)) {
                Ok(rx) => {
                    receivers.push(rx);
                    id += 1;
                }
                Err(JournalError::Closed) => break,
                Err(JournalError::Overloaded) => std::thread::yield_now(),
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        gate.release.send(()).expect("release");
        closer.join().expect("shutdown thread");
        let accepted = receivers.len() as u64;
        let acked: Vec<u64> = receivers
            .into_iter()
            .map(|rx| wait(rx).expect("drained and acked"))
            .collect();
        assert_eq!(acked, (1..=accepted).collect::<Vec<_>>());
        assert_eq!(seqs(&gate.batches), (1..=accepted).collect::<Vec<_>>());
        assert!(matches!(journal.append(ev(0)), Err(JournalError::Closed)));
        journal.shutdown(); // idempotent
        let (records, _) = recover_all(dir.path(), 0).expect("recover");
        assert_eq!(records.len() as u64, accepted);
    }

    #[test]
    fn oversized_record_is_refused_without_consuming_a_seq() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal: Journal<Vec<u8>> =
            Journal::start(options(dir.path(), 1 << 20), 1, Box::new(|_| {})).expect("start");
        let big = vec![7u8; MAX_RECORD_BYTES as usize + 1];
        assert!(matches!(
            append_wait(&journal, big),
            Err(JournalError::RecordTooLarge { .. })
        ));
        assert_eq!(append_wait(&journal, vec![1, 2, 3]).expect("ack"), 1);
        journal.shutdown();
        let mut out = Vec::new();
        recover(dir.path(), 0, |seq, e: Vec<u8>| out.push((seq, e))).expect("recover");
        assert_eq!(out, vec![(1, vec![1, 2, 3])]);
    }

    #[test]
    fn on_commit_panic_poisons_but_acks_the_durable_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal: Journal<Ev> = Journal::start(
            options(dir.path(), 1 << 20),
            1,
            Box::new(|_| panic!("hook bug")),
        )
        .expect("start");
        assert_eq!(append_wait(&journal, ev(1)).expect("ack"), 1);
        assert!(!journal.is_healthy());
        assert!(matches!(
            journal.append(ev(2)),
            Err(JournalError::Unavailable { .. })
        ));
        journal.shutdown();
        assert_eq!(
            recover_all(dir.path(), 0).expect("recover").0,
            vec![(1, ev(1))]
        );
    }

    #[test]
    fn invalid_options_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        for opts in [
            JournalOptions {
                max_batch_records: 0,
                ..options(dir.path(), 1 << 20)
            },
            JournalOptions {
                queue_capacity: 0,
                ..options(dir.path(), 1 << 20)
            },
            options(dir.path(), 3),
            JournalOptions {
                retain_records: MAX_RETAIN_RECORDS + 1,
                ..options(dir.path(), 1 << 20)
            },
        ] {
            let (hook, _) = collector();
            assert!(matches!(
                Journal::start(opts, 1, hook),
                Err(JournalError::InvalidOptions { .. })
            ));
        }
    }

    #[test]
    fn journal_handle_is_send_sync_clone_debug() {
        fn check<T: Send + Sync + Clone + fmt::Debug>() {}
        check::<Journal<Ev>>();
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Crash anywhere in the last segment: recovery yields exactly the records that
        /// lie wholly before the cut (all earlier segments plus a prefix of the last),
        /// with continuous seqs, and the journal can carry on after it.
        #[test]
        fn crash_at_any_byte_recovers_exactly_the_whole_records(
            note_lens in prop::collection::vec(0usize..80, 1..60),
            segment_max_bytes in 64u64..1024,
            cut in any::<prop::sample::Index>(),
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let events: Vec<Ev> = note_lens
                .iter()
                .enumerate()
                .map(|(i, &n)| Ev { id: i as u64 + 1, note: "x".repeat(n) })
                .collect();
            let (hook, _) = collector();
            let journal = Journal::start(options(dir.path(), segment_max_bytes), 1, hook)
                .expect("start");
            // Fire all appends, then await: batches of varying sizes.
            let receivers: Vec<_> = events
                .iter()
                .map(|e| journal.append(e.clone()).expect("append"))
                .collect();
            for (i, rx) in receivers.into_iter().enumerate() {
                prop_assert_eq!(wait(rx).expect("ack"), i as u64 + 1);
            }
            journal.shutdown();

            let files = segment_files(dir.path());
            let (last_first, last_path) = files.last().cloned().expect("a segment");
            let len = file_len(&last_path);
            let cut_at = cut.index(len as usize + 1) as u64;
            fs::OpenOptions::new().write(true).open(&last_path).expect("open")
                .set_len(cut_at).expect("cut");

            // Which records of the last segment lie wholly before the cut.
            let mut offset = SEGMENT_HEADER_BYTES;
            let mut kept_end = SEGMENT_HEADER_BYTES;
            let mut kept = last_first - 1;
            for e in &events[(last_first - 1) as usize..] {
                let size = RECORD_HEADER_BYTES
                    + bincode::serde::encode_to_vec(e, bincode_config()).expect("encode").len() as u64;
                offset += size;
                if offset <= cut_at {
                    kept += 1;
                    kept_end = offset;
                } else {
                    break;
                }
            }

            let (records, report) = recover_all(dir.path(), 0).expect("recover");
            let expected: Vec<(u64, Ev)> = events[..kept as usize]
                .iter()
                .map(|e| (e.id, e.clone()))
                .collect();
            prop_assert_eq!(&records, &expected);
            prop_assert_eq!(report.last_seq, kept);
            let torn = if cut_at == 0 {
                0
            } else if cut_at < SEGMENT_HEADER_BYTES {
                cut_at
            } else {
                cut_at - kept_end
            };
            prop_assert_eq!(report.torn_tail_truncated_bytes, torn);
            prop_assert_eq!(report.torn_tail_file.is_some(), torn > 0);

            // The journal continues after the crash without a gap.
            let (hook, _) = collector();
            let journal = Journal::start(options(dir.path(), segment_max_bytes), kept + 1, hook)
                .expect("restart");
            prop_assert_eq!(append_wait(&journal, ev(999)).expect("ack"), kept + 1);
            journal.shutdown();
            let (records, report) = recover_all(dir.path(), 0).expect("recover again");
            prop_assert_eq!(records.len() as u64, kept + 1);
            prop_assert_eq!(report.last_seq, kept + 1);
        }
    }
}
