//! The journal handle ([`Journal`]) and its writer thread: batching, group commit,
//! marks, segment rolls.

use std::collections::VecDeque;
use std::fmt;
use std::fs;
use std::io;
use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use serde::Serialize;
use tokio::sync::oneshot;

use super::format::{
    check_header, encode_record, list_segments, read_segment, scan_records, segment_file_name,
    segment_header, HeaderCheck,
};
use super::{
    Ack, AckReceiver, AckSink, Committed, JournalError, JournalOptions, JournalStats, OnCommit,
    SyncMode, MAX_BATCH_BYTES, MAX_BATCH_RECORDS_LIMIT, MAX_COMMIT_DELAY, MAX_QUEUE_CAPACITY,
    MAX_RETAIN_RECORDS, METRIC_BATCH_RECORDS, METRIC_FSYNC_SECONDS, MIN_SEGMENT_BYTES,
    RECORD_HEADER_BYTES, SEGMENT_FORMAT_VERSION, SEGMENT_HEADER_BYTES, WRITER_THREAD_NAME,
};
use crate::storage::{FsStorage, SegmentFile, Storage};

/// How an append's outcome reaches its caller.
pub(super) enum Reply {
    /// Sent by the writer itself.
    Direct(oneshot::Sender<Result<u64, JournalError>>),
    /// Handed to a sink with the rest of the batch's acks for it.
    Via(oneshot::Sender<Result<u64, JournalError>>, Arc<dyn AckSink>),
}

impl Reply {
    /// Sends `result` now, bypassing any sink (failures, which are rare and not batched).
    pub(super) fn send_now(self, result: Result<u64, JournalError>) {
        let (Reply::Direct(tx) | Reply::Via(tx, _)) = self;
        let _ = tx.send(result);
    }
}

/// Hands each durable record's ack (its seq, its reply) to its caller: one delivery per
/// sink, so a batch's acks for one shard wake it once.
pub(super) fn deliver(acks: Vec<(u64, Reply)>) {
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
    /// Make `events` durable as consecutive records of one batch, all or none, and answer
    /// on `ack` with the last one's seq (sent by `append_many_via`).
    AppendMany {
        /// The events to journal, in order; never empty.
        events: Vec<E>,
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
pub(super) struct Shared {
    /// Set once, with the reason, when an fsync (or anything that leaves the file in an
    /// unknown state) fails. Never cleared: the process must restart and recover.
    poison: OnceLock<String>,
    /// Highest seq the caller asked to truncate through (0 = none yet).
    pub(super) truncate_target: AtomicU64,
    /// Records from this seq on are kept whatever the truncation target (0 = no floor):
    /// a reader that is behind (a webhook's delivery cursor) still needs them. Set with
    /// [`Journal::retain_from`].
    pub(super) retain_floor: AtomicU64,
    /// See [`JournalStats::batches`].
    batches: AtomicU64,
    /// See [`JournalStats::records`].
    records: AtomicU64,
    /// See [`JournalStats::fsyncs`].
    fsyncs: AtomicU64,
    /// See [`JournalStats::failed_batches`].
    failed_batches: AtomicU64,
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
    /// See [`JournalOptions::gate`]: a failed gate makes the journal unhealthy.
    gate: Option<Arc<super::AckGate>>,
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
    /// Records are only ever appended to a segment of the current
    /// [`SEGMENT_FORMAT_VERSION`]. A last segment of an older readable version (at least
    /// [`OLDEST_READABLE_SEGMENT_FORMAT`]) that holds records is kept as an older segment
    /// (retention deletes it like any other) and a new segment named `next_seq` is
    /// created, as durably as a roll; one that holds no record is rewritten with the
    /// current header.
    ///
    /// `on_commit` runs **on the writer thread**, once per durable batch, in sequence
    /// order, after the batch's `fdatasync` and before its acks are sent; it owns the
    /// events. Keep it short: the next batch waits for it. If it panics, the panic is
    /// caught, the batch (already durable) is still acked, and the journal is poisoned —
    /// unless a panic hook ends the process first, as the innkeep engine's does (its
    /// supervision is crash-only; this writer thread is [`WRITER_THREAD_NAME`]).
    ///
    /// [`RecoveryReport::last_seq`]: super::RecoveryReport::last_seq
    /// [`recover`]: super::recover
    /// [`SEGMENT_FORMAT_VERSION`]: super::SEGMENT_FORMAT_VERSION
    /// [`OLDEST_READABLE_SEGMENT_FORMAT`]: super::OLDEST_READABLE_SEGMENT_FORMAT
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
                let last = open_last_segment(
                    storage.as_mut(),
                    &dir,
                    first_seq,
                    path,
                    next_seq,
                    options.sync,
                )?;
                if let Some(older) = last.superseded {
                    segments.push_back(older);
                }
                last.active
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
            commit_delay: options.commit_delay,
            last_batch_records: 0,
            retain_records: options.retain_records,
            active,
            older_segments: segments,
            next_seq,
            on_commit,
            shared: Arc::clone(&shared),
            buf: Vec::new(),
            marks: Vec::new(),
            gate: options.gate.clone(),
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
                gate: options.gate.clone(),
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

    /// [`Journal::append_via`] for `events` together: they become consecutive records of
    /// one batch, durable all or none, and the receiver yields the last one's seq (the
    /// others' are the ones before it). For a caller that decided several events at once
    /// (a room given a batch of bookings): one message, one ack. An empty `events` is
    /// acknowledged at once with the durable seq.
    pub fn append_many_via(
        &self,
        events: Vec<E>,
        sink: &Arc<dyn AckSink>,
    ) -> Result<AckReceiver, JournalError> {
        let (ack_tx, ack_rx) = oneshot::channel();
        if events.is_empty() {
            let _ = ack_tx.send(Ok(self.durable_seq()));
            return Ok(ack_rx);
        }
        self.queue(Msg::AppendMany {
            events,
            ack: Reply::Via(ack_tx, sink.clone()),
        })?;
        Ok(ack_rx)
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

    /// Keep every record with seq >= `seq` on disk, whatever [`Journal::truncate_through`]
    /// asks, until a later call moves the floor (0 removes it). For readers of the files
    /// that are behind the snapshots, e.g. outbound webhooks resuming from their durable
    /// cursors ([`read_after`](super::read_after)). Takes effect at the next truncation.
    pub fn retain_from(&self, seq: u64) {
        self.inner.shared.retain_floor.store(seq, Ordering::SeqCst);
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
    /// poisoned the journal (every append then fails with `Unavailable`), once its gate
    /// failed, and while its gate is stalled (see [`super::AckGate`]).
    pub fn is_healthy(&self) -> bool {
        self.inner.shared.poison.get().is_none()
            && self
                .inner
                .gate
                .as_ref()
                .is_none_or(|g| g.failure().is_none() && !g.stalled())
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
    if options.commit_delay > MAX_COMMIT_DELAY {
        return invalid(format!(
            "commit_delay {:?} is above the maximum {MAX_COMMIT_DELAY:?}",
            options.commit_delay
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
pub(super) struct ActiveSegment {
    /// Open file handle.
    file: Box<dyn SegmentFile>,
    /// Its path, for error messages and deletion bookkeeping.
    path: PathBuf,
    /// First seq it holds (from its name).
    pub(super) first_seq: u64,
    /// Bytes in it that belong to acked-or-acking batches; a failed write is cut back
    /// to this.
    len_bytes: u64,
    /// How far the file holds zeros written ahead of the records
    /// ([`Writer::prefill_ahead`]); at most `segment_max_bytes` unless one batch was
    /// larger. `None` once writing them failed: this segment's batches extend the file.
    zeros_to_bytes: Option<u64>,
}

/// Zeros the writer keeps written ahead of the active segment's records at most. Batches
/// that overwrite them change neither the file's size nor its allocation, so their
/// `fdatasync` commits no metadata ([`SegmentFile::prefill`]). Four MiB last about a
/// second at this machine's peak (about 1 KiB per booking).
pub(super) const PREFILL_AHEAD_BYTES: u64 = 4 * 1024 * 1024;

/// The zeros to write next in a segment whose records end at `len_bytes` and whose
/// zeros reach `zeros_to_bytes`: a whole [`PREFILL_CHUNK_BYTES`] once the zeros ahead are
/// that much short of [`PREFILL_AHEAD_BYTES`] (each prefill costs a sync with a metadata
/// commit, so never a sliver after every batch), or the rest of the segment up to
/// `segment_max_bytes`. `None`: nothing to write now.
pub(super) fn prefill_range(
    zeros_to_bytes: u64,
    len_bytes: u64,
    segment_max_bytes: u64,
) -> Option<(u64, u64)> {
    let from_bytes = zeros_to_bytes.max(len_bytes);
    let limit_bytes = len_bytes
        .saturating_add(PREFILL_AHEAD_BYTES)
        .min(segment_max_bytes);
    let to_bytes = from_bytes.saturating_add(PREFILL_CHUNK_BYTES);
    if to_bytes <= limit_bytes {
        Some((from_bytes, to_bytes))
    } else if limit_bytes == segment_max_bytes && from_bytes < limit_bytes {
        Some((from_bytes, limit_bytes))
    } else {
        None
    }
}

/// Zeros written at a time, and only when no append is waiting: about half a millisecond
/// of writing and syncing on this project's disk, which an append arriving meanwhile
/// waits.
pub(super) const PREFILL_CHUNK_BYTES: u64 = 256 * 1024;

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
        zeros_to_bytes: Some(SEGMENT_HEADER_BYTES),
    })
}

/// What [`open_last_segment`] opened.
struct LastSegment {
    /// The segment to append to.
    active: ActiveSegment,
    /// The last segment found, when it is of an older format and holds records: it is
    /// not appended to, but stays as the newest older segment (first seq, path).
    superseded: Option<(u64, PathBuf)>,
}

/// Validate the last existing segment (clean, continuous, ending right before
/// `next_seq`) and open it for appending; an empty file gets its header. A segment of
/// an older format is never appended to: one holding records is superseded by a new
/// segment at `next_seq`, one holding none is rewritten with the current header.
fn open_last_segment(
    storage: &mut dyn Storage,
    dir: &Path,
    first_seq: u64,
    path: PathBuf,
    next_seq: u64,
    sync: SyncMode,
) -> Result<LastSegment, JournalError> {
    let bytes = read_segment(&path)?;
    let mut version = SEGMENT_FORMAT_VERSION;
    // Where its records end: zeros written ahead of them may follow.
    let mut records_end = 0;
    let segment_next_seq = if bytes.is_empty() {
        first_seq
    } else {
        match check_header(&bytes) {
            HeaderCheck::Valid(found) => version = found,
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
        records_end = outcome.end as u64;
        outcome.next_seq
    };
    if segment_next_seq != next_seq {
        return Err(JournalError::Gap {
            expected: next_seq,
            found: segment_next_seq,
            path,
        });
    }
    if version != SEGMENT_FORMAT_VERSION {
        let holds_records = segment_next_seq > first_seq;
        // Holding records: a new segment for the next one. Holding none: its name is
        // still the next seq, and rewriting it loses nothing (a crash midway leaves a
        // short or empty last segment, which recovery and start repair).
        let new_first_seq = if holds_records { next_seq } else { first_seq };
        tracing::info!(
            file = %path.display(),
            version,
            current_version = SEGMENT_FORMAT_VERSION,
            holds_records,
            "journal: last segment is of an older format; not appending to it"
        );
        let active = create_segment(storage, dir, new_first_seq, sync)
            .map_err(CreateFailure::into_journal_error)?;
        return Ok(LastSegment {
            active,
            superseded: holds_records.then_some((first_seq, path)),
        });
    }
    let mut file = storage
        .open_segment(&path, records_end)
        .map_err(|e| JournalError::io(&path, e))?;
    let mut len_bytes = records_end;
    if bytes.is_empty() {
        file.write_all(&segment_header())
            .map_err(|e| JournalError::io(&path, e))?;
        if sync == SyncMode::Fdatasync {
            file.sync_all().map_err(|e| JournalError::io(&path, e))?;
        }
        len_bytes = SEGMENT_HEADER_BYTES;
    }
    Ok(LastSegment {
        active: ActiveSegment {
            file,
            path,
            first_seq,
            len_bytes,
            zeros_to_bytes: Some((bytes.len() as u64).max(len_bytes)),
        },
        superseded: None,
    })
}

/// One encoded append waiting for its batch's outcome.
struct PendingRecord<E> {
    /// Its sequence number (valid only if the batch commits).
    seq: u64,
    /// The event, handed to `on_commit` on success.
    event: E,
    /// Where its payload lies in the batch buffer, to hand a copy to `on_commit`.
    payload: Range<usize>,
    /// Where the outcome goes: on the last record of its message only (an
    /// [`Msg::AppendMany`] is answered once, for all its records).
    ack: Option<Reply>,
}

/// The writer thread's state. Only this thread touches segment files after start.
pub(super) struct Writer<E> {
    /// Incoming appends and wake-ups.
    rx: Receiver<Msg<E>>,
    /// File operations (real or fault-injecting).
    pub(super) storage: Box<dyn Storage>,
    /// Journal directory.
    pub(super) dir: PathBuf,
    /// See [`JournalOptions::segment_max_bytes`].
    segment_max_bytes: u64,
    /// See [`JournalOptions::max_batch_records`].
    max_batch_records: usize,
    /// See [`JournalOptions::sync`].
    pub(super) sync: SyncMode,
    /// See [`JournalOptions::commit_delay`].
    commit_delay: Duration,
    /// Records of the previous batch: how many callers the next one may wait for.
    last_batch_records: usize,
    /// See [`JournalOptions::retain_records`].
    pub(super) retain_records: u64,
    /// The segment being appended to.
    pub(super) active: ActiveSegment,
    /// Older segments, oldest first, as candidates for `truncate_through`.
    pub(super) older_segments: VecDeque<(u64, PathBuf)>,
    /// Seq of the next record to commit; not advanced by failed batches, whose
    /// numbers are reused.
    pub(super) next_seq: u64,
    /// The caller's hook for durable batches.
    on_commit: OnCommit<E>,
    /// Poison flag, truncation target and counters.
    pub(super) shared: Arc<Shared>,
    /// Encoded frames of the current batch, reused across batches.
    buf: Vec<u8>,
    /// Marks taken into the current batch, each with the seq of the record before it;
    /// answered once the batch's outcome is known.
    marks: Vec<(u64, oneshot::Sender<Result<u64, JournalError>>)>,
    /// See [`JournalOptions::gate`].
    gate: Option<Arc<super::AckGate>>,
}

impl<E: Serialize> Writer<E> {
    /// The thread's main loop: one group commit per iteration until every sender is
    /// gone and the queue is drained.
    fn run(mut self) {
        let mut batch: Vec<PendingRecord<E>> = Vec::new();
        while let Ok(first) = self.rx.recv() {
            self.buf.clear();
            self.take(first, &mut batch);
            let deadline = self
                .wait_for_more()
                .then(|| Instant::now() + self.commit_delay);
            while batch.len() < self.max_batch_records && (self.buf.len() as u64) < MAX_BATCH_BYTES
            {
                let Some(msg) = self.next_for_batch(deadline, batch.len()) else {
                    break;
                };
                self.take(msg, &mut batch);
            }
            self.last_batch_records = batch.len();
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
            if self.rx.is_empty() {
                self.prefill_ahead();
            }
        }
        self.apply_truncation();
    }

    /// With nothing to append: write one chunk of zeros ahead of the active segment's
    /// records, up to [`PREFILL_AHEAD_BYTES`] ahead and never past `segment_max_bytes`,
    /// so the batches that follow overwrite blocks the file already has. Only when
    /// batches are synced (without syncs there is no metadata commit to save). A failure
    /// (a full disk) stops it for this segment: its batches then extend the file, as
    /// they would without zeros ahead, and their own syncs tell whether they are durable.
    /// A poisoned journal writes nothing more, zeros included.
    fn prefill_ahead(&mut self) {
        if self.sync != SyncMode::Fdatasync || self.shared.poison.get().is_some() {
            return;
        }
        let active = &mut self.active;
        let Some(zeros_to_bytes) = active.zeros_to_bytes else {
            return;
        };
        let Some((from_bytes, to_bytes)) =
            prefill_range(zeros_to_bytes, active.len_bytes, self.segment_max_bytes)
        else {
            return;
        };
        match active.file.prefill(from_bytes, to_bytes) {
            Ok(()) => active.zeros_to_bytes = Some(to_bytes),
            Err(e) => {
                tracing::warn!(
                    file = %active.path.display(),
                    error = %e,
                    "journal: writing zeros ahead of the records failed; this segment's batches extend it instead"
                );
                active.zeros_to_bytes = None;
            }
        }
    }

    /// The next message for a batch holding `records` so far: one already queued, or,
    /// while the batch is smaller than the previous one, one arriving before `deadline`
    /// (the previous batch's callers are likely about to send again, and may share this
    /// batch's sync). `None`: the batch is complete.
    fn next_for_batch(&self, deadline: Option<Instant>, records: usize) -> Option<Msg<E>> {
        match self.rx.try_recv() {
            Ok(msg) => Some(msg),
            Err(TryRecvError::Empty) => deadline
                .filter(|_| records < self.last_batch_records)
                .and_then(|deadline| self.rx.recv_deadline(deadline).ok()),
            Err(TryRecvError::Disconnected) => None,
        }
    }

    /// Whether this batch may wait for more records: see [`JournalOptions::commit_delay`].
    fn wait_for_more(&self) -> bool {
        self.sync == SyncMode::Fdatasync
            && !self.commit_delay.is_zero()
            && self.last_batch_records > 1
    }

    /// Accept one message into the batch being built, encoding appends right away.
    fn take(&mut self, msg: Msg<E>, batch: &mut Vec<PendingRecord<E>>) {
        match msg {
            Msg::Append { event, ack } => self.take_events(std::iter::once(event), ack, batch),
            Msg::AppendMany { events, ack } => self.take_events(events.into_iter(), ack, batch),
            Msg::Mark(tx) => {
                let seq = self.next_seq + batch.len() as u64;
                self.marks.push((seq - 1, tx));
            }
            Msg::Wake => {}
        }
    }

    /// Accept `events` into the batch as consecutive records, all of them or (when one
    /// cannot be encoded) none; `ack` is answered for them all, with the last one's seq.
    fn take_events(
        &mut self,
        events: impl Iterator<Item = E>,
        ack: Reply,
        batch: &mut Vec<PendingRecord<E>>,
    ) {
        if let Some(err) = self.shared.poisoned_error() {
            ack.send_now(Err(err));
            return;
        }
        let (records_before, bytes_before) = (batch.len(), self.buf.len());
        for event in events {
            let seq = self.next_seq + batch.len() as u64;
            let start = self.buf.len() + RECORD_HEADER_BYTES as usize;
            if let Err(err) = encode_record(&mut self.buf, seq, &event) {
                batch.truncate(records_before);
                self.buf.truncate(bytes_before);
                ack.send_now(Err(err));
                return;
            }
            batch.push(PendingRecord {
                seq,
                event,
                payload: start..self.buf.len(),
                ack: None,
            });
        }
        let appended = batch.len() > records_before;
        match batch.last_mut() {
            Some(last) if appended => last.ack = Some(ack),
            // Nothing to append (`append_many_via` sends no empty message).
            _ => ack.send_now(Ok(self.next_seq + records_before as u64 - 1)),
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
            if let Some(ack) = record.ack {
                ack.send_now(Err(err.clone()));
            }
        }
        Err(err)
    }

    /// Write, sync, hand over and acknowledge one batch (the encoded frames are in
    /// `self.buf`). `Ok` when it is durable (or empty).
    fn commit(&mut self, batch: &mut Vec<PendingRecord<E>>) -> Result<(), JournalError> {
        if batch.is_empty() {
            return Ok(());
        }
        // A failed gate acknowledges nothing more: nothing more is made durable either, so
        // what callers hold (refused, undone) and what the journal holds stay the same.
        if let Some(reason) = self.gate.as_ref().and_then(|g| g.failure()) {
            return self.fail_batch(batch, JournalError::Fenced { reason });
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
            let sync_started = Instant::now();
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
                // A copy of the bytes just written, instead of a second encoding by the
                // hook (the event feed keeps every event encoded).
                payload: self.buf[record.payload].to_vec(),
            });
            if let Some(ack) = record.ack {
                acks.push((record.seq, ack));
            }
        }
        let on_commit = &mut self.on_commit;
        if panic::catch_unwind(AssertUnwindSafe(|| on_commit(committed))).is_err() {
            // The batch is durable, so its acks are true; but whatever the caller keeps
            // missed it, so nothing further may be accepted.
            self.shared.poison(
                "on_commit hook panicked; its view of the journal is incomplete".to_string(),
            );
        }
        match &self.gate {
            // Acknowledged once replicated too.
            Some(gate) => gate.hold(self.next_seq - 1, acks),
            None => deliver(acks),
        }
        tracing::debug!("journal batch durable");
        Ok(())
    }

    /// Cut the active segment back to `len_bytes` after a failed write, durably: the
    /// partial batch may hold whole valid frames, which must not resurface after a crash
    /// as records nobody was told had committed.
    fn cut_back(&mut self, len_bytes: u64) -> io::Result<()> {
        self.active.file.set_len(len_bytes)?;
        // The zeros ahead went with the cut.
        if let Some(zeros_to_bytes) = self.active.zeros_to_bytes.as_mut() {
            *zeros_to_bytes = len_bytes;
        }
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
                let mut old = std::mem::replace(&mut self.active, segment);
                // Its zeros ahead are of no more use. Not synced: a crash that keeps them
                // leaves zeros after the last record, which readers take as its end.
                if old.zeros_to_bytes.is_some_and(|z| z > old.len_bytes) {
                    if let Err(e) = old.file.set_len(old.len_bytes) {
                        tracing::warn!(
                            file = %old.path.display(),
                            error = %e,
                            "journal: cutting the zeros off a full segment failed; they stay"
                        );
                    }
                }
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
}
