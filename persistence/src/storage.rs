//! What the journal writer does to the file system, behind a trait.
//!
//! The writer thread never touches `std::fs` directly: every create, write, sync,
//! truncate and remove goes through [`Storage`] / [`SegmentFile`]. Production uses
//! [`FsStorage`]; tests (ours and other crates') wrap it in [`FaultyStorage`] to inject
//! `ENOSPC` on a chosen write or a failure on a chosen sync, exercising the exact code
//! path production runs rather than a test-only copy of it.
//!
//! Start-up reading and validation (see [`crate::journal::recover`]) reads files with
//! `std::fs` directly: it runs before the writer exists and needs no fault injection
//! beyond corrupting bytes on disk, which tests do by hand.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// The file operations the journal writer needs, so they can be swapped for a
/// fault-injecting implementation in tests.
pub trait Storage: Send + fmt::Debug {
    /// Create (or truncate to empty) a segment file and open it for writing at offset 0.
    ///
    /// Truncating rather than failing on an existing file lets the writer retry a roll
    /// whose header write failed earlier: a file named after the next sequence number
    /// can only be such a leftover.
    fn create_segment(&mut self, path: &Path) -> io::Result<Box<dyn SegmentFile>>;

    /// Open an existing segment file for writing, positioned at `len_bytes` (where its
    /// records end: past them may lie zeros written ahead, see [`SegmentFile::prefill`]).
    fn open_segment(&mut self, path: &Path, len_bytes: u64) -> io::Result<Box<dyn SegmentFile>>;

    /// fsync a directory, making entries created or removed in it durable.
    fn sync_dir(&mut self, dir: &Path) -> io::Result<()>;

    /// Remove a file (an old segment covered by a durable snapshot).
    fn remove(&mut self, path: &Path) -> io::Result<()>;
}

/// An open segment file, as the writer uses it.
pub trait SegmentFile: Send + fmt::Debug {
    /// Append all of `buf` at the current write position.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;

    /// `fdatasync`: make written data (and the size change) durable.
    fn sync_data(&mut self) -> io::Result<()>;

    /// `fsync`: make data and all metadata durable (used once for a new segment).
    fn sync_all(&mut self) -> io::Result<()>;

    /// Truncate (or extend) the file to `len_bytes` and continue writing at that offset.
    /// Used to cut a half-written batch off after a failed write.
    fn set_len(&mut self, len_bytes: u64) -> io::Result<()>;

    /// Current size of the file in bytes.
    fn size_bytes(&mut self) -> io::Result<u64>;

    /// Write zeros over `from_bytes..to_bytes` without moving the write position, and make
    /// them durable (`fdatasync`). Batches later written over such zeros change neither
    /// the file's size nor its allocation, so their own `fdatasync` has no metadata to
    /// commit: measured on this project's disk (ext4), 75–80 against 97–113 µs at the
    /// median, and at most 0.7 against up to 8.4 ms (BENCHMARKS.md, eighteenth session).
    fn prefill(&mut self, from_bytes: u64, to_bytes: u64) -> io::Result<()>;
}

/// The real file system. Stateless; it exists so production and tests share the
/// writer's code path through the [`Storage`] trait.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsStorage;

impl FsStorage {
    /// A storage backed by `std::fs`.
    pub fn new() -> Self {
        FsStorage
    }
}

/// A segment file on the real file system.
#[derive(Debug)]
struct FsSegmentFile {
    /// The open file; writes go to its cursor, which `set_len` repositions.
    file: File,
}

impl Storage for FsStorage {
    fn create_segment(&mut self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(FsSegmentFile { file }))
    }

    fn open_segment(&mut self, path: &Path, len_bytes: u64) -> io::Result<Box<dyn SegmentFile>> {
        let mut file = OpenOptions::new().write(true).open(path)?;
        file.seek(SeekFrom::Start(len_bytes))?;
        Ok(Box::new(FsSegmentFile { file }))
    }

    fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn remove(&mut self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
}

impl SegmentFile for FsSegmentFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }

    fn set_len(&mut self, len_bytes: u64) -> io::Result<()> {
        self.file.set_len(len_bytes)?;
        // set_len leaves the cursor where it was; without this seek the next write would
        // leave a hole of zeros where the failed batch used to be.
        self.file.seek(SeekFrom::Start(len_bytes))?;
        Ok(())
    }

    fn size_bytes(&mut self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn prefill(&mut self, from_bytes: u64, to_bytes: u64) -> io::Result<()> {
        /// Zeros written per call to the kernel.
        const ZEROS_BYTES: u64 = 64 * 1024;
        let zeros = [0u8; ZEROS_BYTES as usize];
        let mut at = from_bytes;
        while at < to_bytes {
            let n = (to_bytes - at).min(ZEROS_BYTES);
            // Positioned writes leave the cursor where the next batch goes.
            self.file.write_all_at(&zeros[..n as usize], at)?;
            at += n;
        }
        self.file.sync_data()
    }
}

/// Shared, thread-safe plan of which operations a [`FaultyStorage`] should fail, plus
/// counters of what it has done. Keep an `Arc` of it in the test and arm faults at
/// any time; the writer thread sees them on its next operation.
///
/// Numbering is 1-based over the storage's lifetime and counts every call of that kind,
/// including the header write and syncs done while creating a segment at start-up.
/// Prefer [`FaultPlan::fail_next_write`] / [`FaultPlan::fail_next_sync`], which are
/// relative to the calls made so far.
#[derive(Debug, Default)]
pub struct FaultPlan {
    /// `write_all` calls made so far (failed ones included).
    writes: AtomicU64,
    /// Sync calls made so far: `sync_data`, `sync_all` and `sync_dir` all count.
    syncs: AtomicU64,
    /// Number of the `write_all` call that fails with ENOSPC; 0 = none.
    fail_write_number: AtomicU64,
    /// Number of the sync call that fails with EIO; 0 = none.
    fail_sync_number: AtomicU64,
    /// While true, every `write_all` waits (a disk that stalls), so a test can hold a batch
    /// unacknowledged for as long as it needs.
    writes_held: Mutex<bool>,
    /// Wakes the writes waiting on `writes_held`.
    writes_released: Condvar,
    /// `prefill` calls made so far.
    prefills: AtomicU64,
    /// While true, every `prefill` fails (a disk that is full).
    prefills_fail: AtomicBool,
}

impl FaultPlan {
    /// A plan that injects nothing until armed.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// `write_all` calls made so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    /// Sync calls (`sync_data`, `sync_all`, `sync_dir`) made so far.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::SeqCst)
    }

    /// `prefill` calls made so far (failed ones too).
    pub fn prefills(&self) -> u64 {
        self.prefills.load(Ordering::SeqCst)
    }

    /// Make every `prefill` from now on fail with ENOSPC, until [`FaultPlan::clear`].
    pub fn fail_every_prefill(&self) {
        self.prefills_fail.store(true, Ordering::SeqCst);
    }

    /// Make the `n`th `write_all` (1-based, lifetime count) fail with ENOSPC after
    /// writing the first half of its buffer, like a disk filling up mid-write. 0 disarms.
    pub fn fail_write_number(&self, n: u64) {
        self.fail_write_number.store(n, Ordering::SeqCst);
    }

    /// Make the next `write_all` fail with ENOSPC (after a partial write).
    pub fn fail_next_write(&self) {
        self.fail_write_number(self.writes() + 1);
    }

    /// Make the `n`th sync call (1-based, lifetime count) fail with EIO. 0 disarms.
    pub fn fail_sync_number(&self, n: u64) {
        self.fail_sync_number.store(n, Ordering::SeqCst);
    }

    /// Make the next sync call fail with EIO.
    pub fn fail_next_sync(&self) {
        self.fail_sync_number(self.syncs() + 1);
    }

    /// Disarm every fault (counters keep counting) and let held writes go.
    pub fn clear(&self) {
        self.fail_write_number(0);
        self.fail_sync_number(0);
        self.prefills_fail.store(false, Ordering::SeqCst);
        self.release_writes();
    }

    /// Make every `write_all` from now on wait until [`FaultPlan::release_writes`].
    pub fn hold_writes(&self) {
        *self
            .writes_held
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
    }

    /// Let held writes (and later ones) go.
    pub fn release_writes(&self) {
        *self
            .writes_held
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = false;
        self.writes_released.notify_all();
    }

    /// Waits while writes are held.
    fn wait_for_writes(&self) {
        let held = self
            .writes_held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let _released = self
            .writes_released
            .wait_while(held, |held| *held)
            .unwrap_or_else(PoisonError::into_inner);
    }

    /// Count a write and say whether it is the one to fail.
    fn write_should_fail(&self) -> bool {
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        n == self.fail_write_number.load(Ordering::SeqCst)
    }

    /// Count a sync and return the injected error if it is the one to fail.
    fn check_sync(&self) -> io::Result<()> {
        let n = self.syncs.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_sync_number.load(Ordering::SeqCst) {
            return Err(io::Error::other(
                "injected fault: sync failed (EIO); page cache state unknown",
            ));
        }
        Ok(())
    }
}

/// The error a failing write returns: what a full disk looks like.
fn injected_enospc() -> io::Error {
    io::Error::new(
        io::ErrorKind::StorageFull,
        "injected fault: no space left on device (ENOSPC)",
    )
}

/// A [`Storage`] wrapper that fails chosen writes/syncs according to a shared
/// [`FaultPlan`]. Public so other crates' tests can inject disk faults into a real
/// journal (`Journal::start_with_storage`).
#[derive(Debug)]
pub struct FaultyStorage {
    /// The storage that does the real work when no fault fires.
    inner: Box<dyn Storage>,
    /// What to fail, shared with the test that arms it.
    plan: Arc<FaultPlan>,
}

impl FaultyStorage {
    /// Wrap `inner`, injecting faults according to `plan`.
    pub fn new(inner: Box<dyn Storage>, plan: Arc<FaultPlan>) -> Self {
        Self { inner, plan }
    }

    /// Wrap the real file system; returns the storage and the plan that controls it.
    pub fn over_fs() -> (Self, Arc<FaultPlan>) {
        let plan = FaultPlan::new();
        (Self::new(Box::new(FsStorage), Arc::clone(&plan)), plan)
    }

    /// The plan controlling this storage.
    pub fn plan(&self) -> Arc<FaultPlan> {
        Arc::clone(&self.plan)
    }
}

/// A segment file whose writes and syncs consult a [`FaultPlan`].
#[derive(Debug)]
struct FaultySegmentFile {
    /// The real file.
    inner: Box<dyn SegmentFile>,
    /// Shared fault plan.
    plan: Arc<FaultPlan>,
}

impl Storage for FaultyStorage {
    fn create_segment(&mut self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let inner = self.inner.create_segment(path)?;
        Ok(Box::new(FaultySegmentFile {
            inner,
            plan: Arc::clone(&self.plan),
        }))
    }

    fn open_segment(&mut self, path: &Path, len_bytes: u64) -> io::Result<Box<dyn SegmentFile>> {
        let inner = self.inner.open_segment(path, len_bytes)?;
        Ok(Box::new(FaultySegmentFile {
            inner,
            plan: Arc::clone(&self.plan),
        }))
    }

    fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        self.plan.check_sync()?;
        self.inner.sync_dir(dir)
    }

    fn remove(&mut self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }
}

impl SegmentFile for FaultySegmentFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.plan.wait_for_writes();
        if self.plan.write_should_fail() {
            // A real ENOSPC usually hits part-way through: leave half the bytes behind
            // so the writer's truncate-back path is exercised.
            self.inner.write_all(&buf[..buf.len() / 2])?;
            return Err(injected_enospc());
        }
        self.inner.write_all(buf)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.plan.check_sync()?;
        self.inner.sync_data()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.plan.check_sync()?;
        self.inner.sync_all()
    }

    fn set_len(&mut self, len_bytes: u64) -> io::Result<()> {
        self.inner.set_len(len_bytes)
    }

    fn size_bytes(&mut self) -> io::Result<u64> {
        self.inner.size_bytes()
    }

    fn prefill(&mut self, from_bytes: u64, to_bytes: u64) -> io::Result<()> {
        self.plan.prefills.fetch_add(1, Ordering::SeqCst);
        if self.plan.prefills_fail.load(Ordering::SeqCst) {
            return Err(injected_enospc());
        }
        self.inner.prefill(from_bytes, to_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fs_set_len_repositions_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.seg");
        let mut storage = FsStorage::new();
        let mut file = storage.create_segment(&path).expect("create");
        file.write_all(b"hello world").expect("write");
        file.set_len(5).expect("set_len");
        file.write_all(b"!").expect("write");
        file.sync_all().expect("sync");
        assert_eq!(std::fs::read(&path).expect("read"), b"hello!");
        let mut reopened = storage.open_segment(&path, 6).expect("open");
        reopened.write_all(b"?").expect("write");
        assert_eq!(reopened.size_bytes().expect("size"), 7);
        assert_eq!(std::fs::read(&path).expect("read"), b"hello!?");
    }

    #[test]
    fn fs_prefill_writes_zeros_ahead_and_leaves_the_write_position() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.seg");
        let mut storage = FsStorage::new();
        let mut file = storage.create_segment(&path).expect("create");
        file.write_all(b"abc").expect("write");
        // More than one call's worth of zeros, so the loop runs more than once.
        file.prefill(3, 3 + 100_000).expect("prefill");
        file.write_all(b"de").expect("write");
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(bytes.len(), 100_003);
        assert_eq!(&bytes[..5], b"abcde");
        assert!(bytes[5..].iter().all(|&b| b == 0));
        // Reopened where the data ends, not at the end of the zeros.
        let mut reopened = storage.open_segment(&path, 5).expect("open");
        reopened.write_all(b"f").expect("write");
        assert_eq!(&std::fs::read(&path).expect("read")[..7], b"abcdef\0");
    }

    #[test]
    fn faulty_storage_fails_exactly_the_armed_operations() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.seg");
        let (mut storage, plan) = FaultyStorage::over_fs();
        let mut file = storage.create_segment(&path).expect("create");
        file.write_all(b"abcd").expect("first write succeeds");
        plan.fail_next_write();
        let err = file.write_all(b"efgh").expect_err("armed write fails");
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        // Half the buffer reached the file, like a real partial write.
        assert_eq!(std::fs::read(&path).expect("read"), b"abcdef");
        file.write_all(b"ij").expect("fault fires once");
        assert_eq!(plan.writes(), 3);

        file.sync_data().expect("sync ok");
        plan.fail_next_sync();
        assert!(storage.sync_dir(dir.path()).is_err());
        file.sync_all().expect("fault fires once");
        assert_eq!(plan.syncs(), 3);

        plan.fail_every_prefill();
        assert!(file.prefill(6, 10).is_err());
        assert!(file.prefill(6, 10).is_err());
        plan.clear();
        file.prefill(6, 10).expect("cleared");
        assert_eq!(plan.prefills(), 3);
        // A prefill is neither a counted write nor a counted sync.
        assert_eq!((plan.writes(), plan.syncs()), (3, 3));
    }
}
