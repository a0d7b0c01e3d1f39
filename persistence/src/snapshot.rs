//! Snapshots of the full engine state in sled.
//!
//! One snapshot is kept: the bincode-encoded state under [`DATA_KEY`] and a small
//! fixed-layout metadata record under [`META_KEY`], written together in one sled batch
//! (crash-atomic in sled 0.34: a crash never pairs new metadata with old data). The
//! metadata carries the format version, the journal sequence number the snapshot
//! covers, and the CRC32C and length of the state bytes, so a damaged snapshot is a
//! clear error at load time rather than a silently partial state.
//!
//! Each snapshot is a sled database of its own (a *generation*, `gen-<seq>-<n>/` in the
//! store's directory), named by the file [`CURRENT_FILE`]: a save writes and syncs a new
//! generation, then replaces `CURRENT` (write, fsync, rename, fsync the directory), then
//! deletes the old generation whole. A value as large as a snapshot is a sled blob file,
//! and sled deletes a replaced blob only once the log segment recording the replacement
//! is sealed, which a store written a few keys per snapshot reaches late or never
//! (BENCHMARKS.md: a server kept 23 blob files for 23 snapshots; 30 rewrites of one 1 MiB
//! value here kept 4). A generation per snapshot bounds the disk at one snapshot, two
//! while a save runs. A generation `CURRENT` does not name (a save that crashed) is
//! deleted at open.
//!
//! Durability: sled's own `flush` uses `sync_file_range` on Linux, which is not durable
//! against power loss. After `flush`, [`SnapshotStore::save`] therefore `sync_all`s
//! every file under the sled directory, and the directories themselves. sled's
//! background flusher is disabled and `flush` is only ever called from inside `save`,
//! serialized by a mutex (never `flush_async`, which deadlocks with many callers,
//! sled#1308).

use std::fmt;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Version of the snapshot layout (metadata record + bincode state) this build writes
/// and the only one it loads.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 9;

/// The oldest snapshot layout [`SnapshotStore::load_versioned`] still hands to its caller
/// (with its version, for the caller to decode): versions 5 to 9 differ only inside the
/// parts the caller encodes, so a data dir of the four previous releases starts.
pub const OLDEST_READABLE_SNAPSHOT_FORMAT: u32 = 5;

/// Largest encoded state accepted, so a corrupt length can never drive a huge
/// allocation and a runaway state is refused instead of filling the disk.
pub const MAX_SNAPSHOT_BYTES: u64 = 1 << 30;

/// sled key of the metadata record.
pub const META_KEY: &[u8] = b"innkeep/snapshot/meta";

/// sled key of the encoded state.
pub const DATA_KEY: &[u8] = b"innkeep/snapshot/data";

/// Size of the metadata record: version u32 + seq u64 + crc32c u32 + length u64, all
/// little-endian, version first so any future layout can still be recognised.
const META_BYTES: usize = 24;

/// The file naming the live generation (see the module docs).
pub const CURRENT_FILE: &str = "CURRENT";

/// Prefix of a generation's directory name.
const GENERATION_PREFIX: &str = "gen-";

/// Deepest directory level under the sled directory that `save` walks to fsync files;
/// sled uses two, the bound just keeps a strange tree from recursing forever.
const MAX_SYNC_DEPTH: usize = 8;

/// Everything that can go wrong storing or loading a snapshot.
#[derive(thiserror::Error, Debug)]
pub enum SnapshotError {
    /// sled failed; `operation` says doing what.
    #[error("snapshot store {}: sled {operation} failed", path.display())]
    Sled {
        /// The sled directory.
        path: PathBuf,
        /// What was being done (open, insert, flush, get).
        operation: &'static str,
        /// sled's error.
        #[source]
        source: sled::Error,
    },
    /// An fsync of the sled files failed after a flush: the snapshot may not be durable.
    #[error("snapshot store: syncing {} failed", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The state could not be encoded.
    #[error("snapshot state could not be encoded: {reason}")]
    Encode {
        /// The encoder's message.
        reason: String,
    },
    /// The encoded state exceeds [`MAX_SNAPSHOT_BYTES`].
    #[error("snapshot state is {bytes} bytes encoded, over the {max_bytes}-byte limit")]
    TooLarge {
        /// Encoded size.
        bytes: u64,
        /// The limit.
        max_bytes: u64,
    },
    /// `save` was asked to store a snapshot older than the one stored: refused, since
    /// journal segments up to the newer one may already be deleted.
    #[error("snapshot store {}: refusing to replace the snapshot at seq {stored_seq} with an older one at seq {seq}", path.display())]
    Stale {
        /// The sled directory.
        path: PathBuf,
        /// The seq `save` was called with.
        seq: u64,
        /// The seq of the stored snapshot.
        stored_seq: u64,
    },
    /// The stored snapshot was written by a format version this build cannot read.
    #[error("snapshot in {} has unknown format version {version} (this build reads version {SNAPSHOT_FORMAT_VERSION})", path.display())]
    UnknownFormat {
        /// The sled directory.
        path: PathBuf,
        /// The version found.
        version: u32,
    },
    /// The directory holds a snapshot store of the layout before generations (one sled
    /// database in the directory itself, snapshot format 3 or older), which this build
    /// cannot read.
    #[error("snapshot store {} has the layout of an older Innkeep (one sled database, snapshot format 3 or older); start that version's binary on it, or restore a backup", path.display())]
    OldLayout {
        /// The store's directory.
        path: PathBuf,
    },
    /// The stored snapshot is damaged (length or CRC mismatch, undecodable state, or
    /// data/metadata missing their partner).
    #[error("snapshot in {} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The sled directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Encodes one part of a snapshot on its own (bincode, as [`SnapshotStore::save`]), so the
/// thread that owns it can serialize it and the store only gathers bytes: see [`Blob`].
pub fn encode_part<T: Serialize>(part: &T) -> Result<Vec<u8>, SnapshotError> {
    encode_part_sized(part, 0)
}

/// [`encode_part`] into a vector made with room for `capacity_bytes`: a caller that knows
/// about how large the part will be spares the vector's growth (a room's part grew from
/// empty by doubling, each step a copy: measured 4 % of a shard's time in-process).
pub fn encode_part_sized<T: Serialize>(
    part: &T,
    capacity_bytes: usize,
) -> Result<Vec<u8>, SnapshotError> {
    let mut bytes = PartWriter(Vec::with_capacity(capacity_bytes));
    bincode::serde::encode_into_writer(part, &mut bytes, bincode::config::standard()).map_err(
        |e| SnapshotError::Encode {
            reason: e.to_string(),
        },
    )?;
    Ok(bytes.0)
}

/// A part's bytes as bincode writes them: appended, as bincode's own `encode_to_vec` does.
/// Through `std::io::Write` its many small writes (a varint, a tag) cost more: 1 124
/// instructions per reservation encoded, against 981 through this (callgrind, `inprocess
/// 100000 2048 durable 4`).
struct PartWriter(Vec<u8>);

impl bincode::enc::write::Writer for PartWriter {
    #[inline(always)]
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// Decodes a part written by [`encode_part`]; every byte must be used. The error says
/// why, for the caller to wrap with where the part was.
pub fn decode_part<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let config = bincode::config::standard().with_limit::<{ MAX_SNAPSHOT_BYTES as usize }>();
    let (part, used) =
        bincode::serde::decode_from_slice::<T, _>(bytes, config).map_err(|e| e.to_string())?;
    if used != bytes.len() {
        return Err(format!("decodes from {used} of its {} bytes", bytes.len()));
    }
    Ok(part)
}

/// [`decode_part`] for a type that borrows from `bytes` (byte strings such as [`Blob`]s
/// read as `&[u8]`), so large parts are not copied out before they are decoded.
pub fn decode_part_borrowed<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, String> {
    let config = bincode::config::standard().with_limit::<{ MAX_SNAPSHOT_BYTES as usize }>();
    let (part, used) = bincode::serde::borrow_decode_from_slice::<T, _>(bytes, config)
        .map_err(|e| e.to_string())?;
    if used != bytes.len() {
        return Err(format!("decodes from {used} of its {} bytes", bytes.len()));
    }
    Ok(part)
}

/// Bytes already encoded by [`encode_part`], stored inside a snapshot as one
/// length-prefixed run (not byte by byte, as a `Vec<u8>` would be), so a part encoded
/// elsewhere is copied, not encoded again, and can be decoded on its own later (in
/// parallel with the others).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blob({} bytes)", self.0.len())
    }
}

impl Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Takes the bytes however the format hands them over.
        struct Bytes;
        impl<'de> serde::de::Visitor<'de> for Bytes {
            type Value = Blob;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v))
            }
        }
        deserializer.deserialize_byte_buf(Bytes)
    }
}

/// The decoded metadata record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SnapshotMeta {
    /// [`SNAPSHOT_FORMAT_VERSION`] at write time.
    format_version: u32,
    /// Journal sequence number the snapshot covers (replay starts after it).
    seq: u64,
    /// CRC32C of the encoded state.
    crc32c: u32,
    /// Length of the encoded state in bytes.
    len_bytes: u64,
}

impl SnapshotMeta {
    /// Fixed little-endian layout.
    fn to_bytes(self) -> [u8; META_BYTES] {
        let mut out = [0u8; META_BYTES];
        out[0..4].copy_from_slice(&self.format_version.to_le_bytes());
        out[4..12].copy_from_slice(&self.seq.to_le_bytes());
        out[12..16].copy_from_slice(&self.crc32c.to_le_bytes());
        out[16..24].copy_from_slice(&self.len_bytes.to_le_bytes());
        out
    }
}

/// Longest a dropped [`SnapshotStore`] waits for sled to let go of the store's files.
pub const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether nobody holds sled's lock on `db_file` (the lock sled takes when it opens a
/// database: `flock`, exclusive): taken and let go again at once. A missing file holds
/// no lock.
fn lock_is_free(db_file: &Path) -> bool {
    let Ok(file) = File::open(db_file) else {
        return true;
    };
    // Closing `file` lets go of the lock taken here.
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok()
}

/// One snapshot's sled database.
struct Generation {
    /// Its directory name, as `CURRENT` holds it.
    name: String,
    /// The open database.
    db: sled::Db,
}

/// The snapshot store: the newest snapshot, in a sled database of its own.
pub struct SnapshotStore {
    /// The store's directory (holding `CURRENT` and the generations).
    dir: PathBuf,
    /// The live generation, if a snapshot was ever saved. Its lock also serializes
    /// `save`, so sled's `flush` is only ever run by one thread at a time.
    current: Mutex<Option<Generation>>,
}

/// Dropping the store returns once sled has let go of its files, so that another store
/// (another engine on the same data dir) can open them at once. Dropping a `sled::Db` does
/// not do that by itself: work sled queued on its own threads holds the database's file,
/// and with it sled's lock, until those threads run it, which on a busy machine (or with
/// the snapshot writer's low priority, which sled's threads inherit) can be a while. sled
/// gives no signal for it, so this asks the lock until it is free, every millisecond and
/// for [`CLOSE_WAIT`] at most; past that, it logs, and the next open of the store reports
/// the lock.
impl Drop for SnapshotStore {
    fn drop(&mut self) {
        let Some(generation) = self.lock().take() else {
            return;
        };
        let db_file = self.dir.join(&generation.name).join("db");
        drop(generation);
        let deadline = std::time::Instant::now() + CLOSE_WAIT;
        while !lock_is_free(&db_file) {
            if std::time::Instant::now() >= deadline {
                tracing::warn!(file = %db_file.display(), "sled still holds the snapshot store's lock after closing it");
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

impl fmt::Debug for SnapshotStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl SnapshotStore {
    /// Open (or create) the store in `dir`: the generation `CURRENT` names, after deleting
    /// any other (a save that did not finish). sled's background flusher is disabled:
    /// durability comes from `save`'s explicit flush + fsync. Refuses a directory holding
    /// the older one-database layout (`OldLayout`) rather than start without its snapshot.
    pub fn open(dir: &Path) -> Result<Self, SnapshotError> {
        let io_error = |path: &Path, source| SnapshotError::Io {
            path: path.to_path_buf(),
            source,
        };
        fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        if dir.join("conf").exists() || dir.join("db").exists() {
            return Err(SnapshotError::OldLayout {
                path: dir.to_path_buf(),
            });
        }
        let store = Self {
            dir: dir.to_path_buf(),
            current: Mutex::new(None),
        };
        let current = match fs::read_to_string(dir.join(CURRENT_FILE)) {
            Ok(text) => {
                let name = text.trim().to_owned();
                let valid = name.starts_with(GENERATION_PREFIX)
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !valid {
                    return Err(
                        store.corrupt(format!("{CURRENT_FILE} holds {name:?}, not a generation"))
                    );
                }
                if !dir.join(&name).is_dir() {
                    return Err(
                        store.corrupt(format!("{CURRENT_FILE} names {name}, which is missing"))
                    );
                }
                let db = store.open_db(&name)?;
                Some(Generation { name, db })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_error(&dir.join(CURRENT_FILE), e)),
        };
        store.remove_others(current.as_ref().map(|g| g.name.as_str()));
        *store.lock() = current;
        Ok(store)
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The live generation's database (tests reach into it to damage a snapshot).
    #[cfg(test)]
    fn db(&self) -> sled::Db {
        self.lock()
            .as_ref()
            .expect("a snapshot was saved")
            .db
            .clone()
    }

    /// The live generation, locked.
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Generation>> {
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Opens (or creates) the generation `name`.
    fn open_db(&self, name: &str) -> Result<sled::Db, SnapshotError> {
        sled::Config::new()
            .path(self.dir.join(name))
            .flush_every_ms(None)
            .open()
            .map_err(|source| self.sled_error("open", source))
    }

    /// Deletes every generation but `keep` (and a half-written `CURRENT`). Failures are
    /// logged: the next open or save tries again, and nothing reads them meanwhile.
    fn remove_others(&self, keep: Option<&str>) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale = (name.starts_with(GENERATION_PREFIX) && Some(name.as_str()) != keep)
                || name == format!("{CURRENT_FILE}.tmp");
            if !stale {
                continue;
            }
            let path = entry.path();
            let removed = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            if let Err(e) = removed {
                tracing::warn!(path = %path.display(), error = %e, "could not delete an old snapshot generation");
            }
        }
    }

    /// Store `state` as the snapshot covering journal records up to `seq`, replacing the
    /// previous one, and make it durable (sled flush, then fsync of every file and
    /// directory under the store). Only after this returns may journal segments up to
    /// `seq` be deleted. Refuses (`Stale`) a `seq` older than the stored snapshot's.
    pub fn save<S: Serialize>(&self, seq: u64, state: &S) -> Result<(), SnapshotError> {
        let data = encode_part(state)?;
        let len_bytes = data.len() as u64;
        if len_bytes > MAX_SNAPSHOT_BYTES {
            return Err(SnapshotError::TooLarge {
                bytes: len_bytes,
                max_bytes: MAX_SNAPSHOT_BYTES,
            });
        }
        let meta = SnapshotMeta {
            format_version: SNAPSHOT_FORMAT_VERSION,
            seq,
            crc32c: crc32c::crc32c(&data),
            len_bytes,
        };
        self.write_raw(seq, &meta.to_bytes(), data)
    }

    /// The journal seq the stored snapshot covers, read from its metadata alone (`None`
    /// when none was ever saved).
    pub fn stored_seq(&self) -> Result<Option<u64>, SnapshotError> {
        let current = self.lock();
        let Some(generation) = current.as_ref() else {
            return Ok(None);
        };
        let stored = generation
            .db
            .get(META_KEY)
            .map_err(|source| self.sled_error("get", source))?;
        stored
            .map(|meta| self.parse_meta(&meta).map(|m| m.seq))
            .transpose()
    }

    /// Err if a snapshot newer than `seq` is stored in `current`. An unreadable stored
    /// snapshot does not block saving a good one over it.
    fn refuse_stale(&self, current: Option<&Generation>, seq: u64) -> Result<(), SnapshotError> {
        let Some(generation) = current else {
            return Ok(());
        };
        let stored = generation
            .db
            .get(META_KEY)
            .map_err(|source| self.sled_error("get", source))?;
        if let Some(stored) = stored {
            if let Ok(meta) = self.parse_meta(&stored) {
                if meta.seq > seq {
                    return Err(SnapshotError::Stale {
                        path: self.dir.clone(),
                        seq,
                        stored_seq: meta.seq,
                    });
                }
            }
        }
        Ok(())
    }

    /// Write metadata and data atomically into a new generation, make it durable, make it
    /// the live one, and delete the old.
    fn write_raw(&self, seq: u64, meta: &[u8], data: Vec<u8>) -> Result<(), SnapshotError> {
        let mut current = self.lock();
        self.refuse_stale(current.as_ref(), seq)?;
        let name = (0u32..)
            .map(|n| format!("{GENERATION_PREFIX}{seq:020}-{n}"))
            .find(|name| {
                current.as_ref().map(|g| &g.name) != Some(name) && !self.dir.join(name).exists()
            })
            .unwrap_or_default();
        let written = self.write_generation(&name, meta, data);
        let db = match written {
            Ok(db) => db,
            Err(e) => {
                let _ = fs::remove_dir_all(self.dir.join(&name));
                return Err(e);
            }
        };
        self.point_current_at(&name)?;
        *current = Some(Generation { name, db });
        self.remove_others(current.as_ref().map(|g| g.name.as_str()));
        Ok(())
    }

    /// A new generation `name` holding `meta` and `data`, flushed and synced.
    fn write_generation(
        &self,
        name: &str,
        meta: &[u8],
        data: Vec<u8>,
    ) -> Result<sled::Db, SnapshotError> {
        let db = self.open_db(name)?;
        let mut batch = sled::Batch::default();
        batch.insert(DATA_KEY, data);
        batch.insert(META_KEY, meta);
        db.apply_batch(batch)
            .map_err(|source| self.sled_error("apply_batch", source))?;
        db.flush()
            .map_err(|source| self.sled_error("flush", source))?;
        sync_tree(&self.dir.join(name), 0)?;
        Ok(db)
    }

    /// Replaces `CURRENT` with `name`, durably: a crash leaves the old name or the new.
    fn point_current_at(&self, name: &str) -> Result<(), SnapshotError> {
        let io_error = |path: &Path, source| SnapshotError::Io {
            path: path.to_path_buf(),
            source,
        };
        let tmp = self.dir.join(format!("{CURRENT_FILE}.tmp"));
        let target = self.dir.join(CURRENT_FILE);
        let mut file = File::create(&tmp).map_err(|e| io_error(&tmp, e))?;
        io::Write::write_all(&mut file, format!("{name}\n").as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error(&tmp, e))?;
        fs::rename(&tmp, &target).map_err(|e| io_error(&target, e))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error(&self.dir, e))
    }

    /// Load the snapshot: `None` if none was ever saved, `(seq, state)` if it is intact,
    /// and an error naming the reason if its version is unknown, its length or CRC does
    /// not match, or the state does not decode as `S` (all bytes must be consumed).
    pub fn load<S: DeserializeOwned>(&self) -> Result<Option<(u64, S)>, SnapshotError> {
        self.load_with(|_, bytes| decode_part::<S>(bytes))
    }

    /// [`SnapshotStore::load`], with the snapshot's seq and its checked bytes handed to
    /// `decode` while they are in memory, so it can borrow from them
    /// ([`decode_part_borrowed`]) instead of copying. Its error becomes `Corrupt` ("state
    /// does not decode: …").
    pub fn load_with<T>(
        &self,
        decode: impl FnOnce(u64, &[u8]) -> Result<T, String>,
    ) -> Result<Option<(u64, T)>, SnapshotError> {
        self.load_versions(SNAPSHOT_FORMAT_VERSION, |seq, _, bytes| decode(seq, bytes))
    }

    /// [`SnapshotStore::load_with`] that also accepts the older layouts from
    /// [`OLDEST_READABLE_SNAPSHOT_FORMAT`] on, handing `decode` the stored version too.
    pub fn load_versioned<T>(
        &self,
        decode: impl FnOnce(u64, u32, &[u8]) -> Result<T, String>,
    ) -> Result<Option<(u64, T)>, SnapshotError> {
        self.load_versions(OLDEST_READABLE_SNAPSHOT_FORMAT, decode)
    }

    /// Loads a snapshot of version `oldest..=SNAPSHOT_FORMAT_VERSION`.
    fn load_versions<T>(
        &self,
        oldest: u32,
        decode: impl FnOnce(u64, u32, &[u8]) -> Result<T, String>,
    ) -> Result<Option<(u64, T)>, SnapshotError> {
        let Some(db) = self.lock().as_ref().map(|g| g.db.clone()) else {
            return Ok(None);
        };
        let meta = db
            .get(META_KEY)
            .map_err(|source| self.sled_error("get", source))?;
        let data = db
            .get(DATA_KEY)
            .map_err(|source| self.sled_error("get", source))?;
        let (meta, data) = match (meta, data) {
            (None, None) => return Ok(None),
            (None, Some(_)) => return Err(self.corrupt("state data present without metadata")),
            (Some(_), None) => return Err(self.corrupt("metadata present without state data")),
            (Some(meta), Some(data)) => (meta, data),
        };
        let meta = self.parse_meta(&meta)?;
        if meta.format_version < oldest {
            return Err(SnapshotError::UnknownFormat {
                path: self.dir.clone(),
                version: meta.format_version,
            });
        }
        if meta.len_bytes > MAX_SNAPSHOT_BYTES {
            return Err(self.corrupt(format!(
                "metadata claims {} bytes, over the {MAX_SNAPSHOT_BYTES}-byte limit",
                meta.len_bytes
            )));
        }
        if data.len() as u64 != meta.len_bytes {
            return Err(self.corrupt(format!(
                "state is {} bytes, metadata says {}",
                data.len(),
                meta.len_bytes
            )));
        }
        let crc = crc32c::crc32c(&data);
        if crc != meta.crc32c {
            return Err(self.corrupt(format!(
                "CRC32C mismatch: stored {:#010x}, computed {crc:#010x}",
                meta.crc32c
            )));
        }
        let state = decode(meta.seq, meta.format_version, &data)
            .map_err(|e| self.corrupt(format!("state does not decode: {e}")))?;
        Ok(Some((meta.seq, state)))
    }

    /// Decode the metadata record, checking the version first.
    fn parse_meta(&self, bytes: &[u8]) -> Result<SnapshotMeta, SnapshotError> {
        if bytes.len() < 4 {
            return Err(self.corrupt(format!("metadata is only {} bytes", bytes.len())));
        }
        let u32_at = |pos: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[pos..pos + 4]);
            u32::from_le_bytes(b)
        };
        let u64_at = |pos: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[pos..pos + 8]);
            u64::from_le_bytes(b)
        };
        let format_version = u32_at(0);
        if !(OLDEST_READABLE_SNAPSHOT_FORMAT..=SNAPSHOT_FORMAT_VERSION).contains(&format_version) {
            return Err(SnapshotError::UnknownFormat {
                path: self.dir.clone(),
                version: format_version,
            });
        }
        if bytes.len() != META_BYTES {
            return Err(self.corrupt(format!(
                "metadata is {} bytes, expected {META_BYTES}",
                bytes.len()
            )));
        }
        Ok(SnapshotMeta {
            format_version,
            seq: u64_at(4),
            crc32c: u32_at(12),
            len_bytes: u64_at(16),
        })
    }

    /// A `Corrupt` error for this store.
    fn corrupt(&self, reason: impl Into<String>) -> SnapshotError {
        SnapshotError::Corrupt {
            path: self.dir.clone(),
            reason: reason.into(),
        }
    }

    /// A `Sled` error for this store.
    fn sled_error(&self, operation: &'static str, source: sled::Error) -> SnapshotError {
        SnapshotError::Sled {
            path: self.dir.clone(),
            operation,
            source,
        }
    }
}

/// `sync_all` every regular file under `dir` (recursively), then `dir` itself, so what
/// sled flushed with `sync_file_range` is durable against power loss. Files that vanish
/// mid-walk (sled removing an old one) are skipped.
fn sync_tree(dir: &Path, depth: usize) -> Result<(), SnapshotError> {
    let io_error = |path: &Path, source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    };
    if depth > MAX_SYNC_DEPTH {
        return Ok(());
    }
    let entries = fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let path = entry.path();
        let file_type = match entry.file_type() {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(&path, e)),
        };
        if file_type.is_dir() {
            sync_tree(&path, depth + 1)?;
        } else if file_type.is_file() {
            match File::open(&path).and_then(|f| f.sync_all()) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(&path, e)),
            }
        }
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct State {
        rooms: BTreeMap<String, Vec<u32>>,
        version: u64,
    }

    fn sample_state(n: u32) -> State {
        let mut rooms = BTreeMap::new();
        for i in 0..n {
            rooms.insert(format!("room-{i}"), (0..i).collect());
        }
        State {
            rooms,
            version: u64::from(n),
        }
    }

    /// However much room the vector is made with, too little or too much, the bytes are
    /// the same and decode to the part.
    #[test]
    fn a_part_encodes_the_same_whatever_room_it_is_given() {
        let state = sample_state(30);
        let plain = encode_part(&state).expect("encode");
        assert!(
            plain.len() > 100,
            "a part large enough to grow: {}",
            plain.len()
        );
        for capacity_bytes in [1, 7, plain.len() / 2, plain.len(), plain.len() * 3] {
            let sized = encode_part_sized(&state, capacity_bytes).expect("encode sized");
            assert_eq!(sized, plain, "given room for {capacity_bytes} bytes");
            assert_eq!(decode_part::<State>(&sized).expect("decode"), state);
        }
    }

    #[test]
    fn empty_store_loads_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SnapshotStore::open(dir.path()).expect("open");
        assert_eq!(store.load::<State>().expect("load"), None);
    }

    #[test]
    fn save_load_round_trip_keeps_newest_and_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = SnapshotStore::open(dir.path()).expect("open");
            store.save(10, &sample_state(3)).expect("save 1");
            assert_eq!(
                store.load::<State>().expect("load"),
                Some((10, sample_state(3)))
            );
            store.save(42, &sample_state(20)).expect("save 2");
            assert_eq!(
                store.load::<State>().expect("load"),
                Some((42, sample_state(20)))
            );
        }
        let store = SnapshotStore::open(dir.path()).expect("reopen");
        assert_eq!(
            store.load::<State>().expect("load after reopen"),
            Some((42, sample_state(20)))
        );
    }

    /// While a store is open, sled holds the lock its drop waits for; once the drop
    /// returns, it is free and the store opens again at once, as another engine on the
    /// same data dir would open it right after a shutdown.
    #[test]
    fn a_closed_store_has_let_go_of_its_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        for round in 0..20u64 {
            let store = SnapshotStore::open(dir.path()).expect("open right after close");
            store.save(round + 1, &sample_state(50)).expect("save");
            let name = store.lock().as_ref().expect("saved").name.clone();
            let db_file = dir.path().join(name).join("db");
            assert!(!lock_is_free(&db_file), "sled holds its lock while open");
            drop(store);
            assert!(lock_is_free(&db_file), "the lock is free once dropped");
        }
        let store = SnapshotStore::open(dir.path()).expect("reopen");
        assert_eq!(store.stored_seq().expect("seq"), Some(20));
    }

    #[test]
    fn older_snapshot_does_not_replace_a_newer_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SnapshotStore::open(dir.path()).expect("open");
        store.save(42, &sample_state(4)).expect("save");
        assert!(matches!(
            store.save(41, &sample_state(1)),
            Err(SnapshotError::Stale {
                seq: 41,
                stored_seq: 42,
                ..
            })
        ));
        store
            .save(42, &sample_state(5))
            .expect("same seq is allowed");
        assert_eq!(
            store.load::<State>().expect("load"),
            Some((42, sample_state(5)))
        );
    }

    #[test]
    fn corrupt_data_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SnapshotStore::open(dir.path()).expect("open");
        store.save(7, &sample_state(5)).expect("save");
        let mut data = store
            .db()
            .get(DATA_KEY)
            .expect("get")
            .expect("data")
            .to_vec();
        let mid = data.len() / 2;
        data[mid] ^= 0x40;
        store.db().insert(DATA_KEY, data).expect("overwrite");
        let err = store
            .load::<State>()
            .expect_err("corrupt snapshot must not load");
        match &err {
            SnapshotError::Corrupt { reason, .. } => assert!(reason.contains("CRC32C"), "{err}"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert!(err.to_string().contains(&dir.path().display().to_string()));
    }

    #[test]
    fn truncated_data_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SnapshotStore::open(dir.path()).expect("open");
        store.save(7, &sample_state(5)).expect("save");
        let data = store
            .db()
            .get(DATA_KEY)
            .expect("get")
            .expect("data")
            .to_vec();
        store
            .db()
            .insert(DATA_KEY, &data[..data.len() - 1])
            .expect("overwrite");
        assert!(matches!(
            store.load::<State>(),
            Err(SnapshotError::Corrupt { .. })
        ));
    }

    #[test]
    fn state_that_does_not_decode_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SnapshotStore::open(dir.path()).expect("open");
        // Valid metadata and CRC, but the bytes are not a `State`.
        store.save(3, &"just a string").expect("save");
        let err = store.load::<State>().expect_err("wrong type must not load");
        match err {
            SnapshotError::Corrupt { reason, .. } => {
                assert!(reason.contains("decode"), "{reason}")
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    /// Rewrites the stored snapshot's format version (the rest of its metadata stays).
    fn set_format_version(store: &SnapshotStore, version: u32) {
        let mut meta = store
            .db()
            .get(META_KEY)
            .expect("get")
            .expect("meta")
            .to_vec();
        meta[0..4].copy_from_slice(&version.to_le_bytes());
        store.db().insert(META_KEY, meta).expect("overwrite");
    }

    #[test]
    fn unknown_format_version_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SnapshotStore::open(dir.path()).expect("open");
        store.save(9, &sample_state(2)).expect("save");
        set_format_version(&store, 99);
        match store.load::<State>() {
            Err(SnapshotError::UnknownFormat { version, .. }) => assert_eq!(version, 99),
            other => panic!("expected UnknownFormat, got {other:?}"),
        }
    }

    /// The previous release's layout is handed over with its version by
    /// `load_versioned` (whose caller knows how to read it) and refused by `load`, which
    /// would misread it; an older one is refused by both.
    #[test]
    fn the_previous_format_loads_only_where_its_version_is_handed_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SnapshotStore::open(dir.path()).expect("open");
        store.save(9, &sample_state(2)).expect("save");
        set_format_version(&store, OLDEST_READABLE_SNAPSHOT_FORMAT);
        match store.load::<State>() {
            Err(SnapshotError::UnknownFormat { version, .. }) => {
                assert_eq!(version, OLDEST_READABLE_SNAPSHOT_FORMAT)
            }
            other => panic!("expected UnknownFormat, got {other:?}"),
        }
        let loaded = store
            .load_versioned(|seq, version, bytes| {
                decode_part::<State>(bytes).map(|state| (seq, version, state))
            })
            .expect("load")
            .expect("a snapshot");
        assert_eq!(
            loaded.1,
            (9, OLDEST_READABLE_SNAPSHOT_FORMAT, sample_state(2))
        );
        assert_eq!(store.stored_seq().expect("seq"), Some(9));
        set_format_version(&store, OLDEST_READABLE_SNAPSHOT_FORMAT - 1);
        assert!(matches!(
            store.load_versioned(|_, _, _| Ok(())),
            Err(SnapshotError::UnknownFormat { .. })
        ));
    }

    #[test]
    fn missing_partner_key_is_corrupt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SnapshotStore::open(dir.path()).expect("open");
        store.save(1, &sample_state(1)).expect("save");
        store.db().remove(DATA_KEY).expect("remove");
        assert!(matches!(
            store.load::<State>(),
            Err(SnapshotError::Corrupt { .. })
        ));
    }

    /// The generations in the store's directory.
    fn generations(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(GENERATION_PREFIX))
            .collect();
        names.sort();
        names
    }

    /// Bytes of every file under `dir`.
    fn bytes_under(dir: &Path) -> u64 {
        fs::read_dir(dir)
            .expect("read dir")
            .map(|e| {
                let e = e.expect("entry");
                if e.file_type().expect("type").is_dir() {
                    bytes_under(&e.path())
                } else {
                    e.metadata().expect("metadata").len()
                }
            })
            .sum()
    }

    /// Every save leaves exactly one generation, the one `CURRENT` names, and the store
    /// stays the size of one snapshot however many are saved.
    #[test]
    fn saves_keep_one_generation_and_bounded_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SnapshotStore::open(dir.path()).expect("open");
        // Large enough to be a sled blob (over a quarter of a 512 KiB segment).
        let big = sample_state(1_000);
        let mut sizes = Vec::new();
        for seq in 1..=30 {
            store.save(seq, &big).expect("save");
            let names = generations(dir.path());
            assert_eq!(names.len(), 1, "{names:?}");
            let current = fs::read_to_string(dir.path().join(CURRENT_FILE)).expect("CURRENT");
            assert_eq!(current.trim(), names[0]);
            sizes.push(bytes_under(dir.path()));
        }
        let first = sizes[0];
        assert!(
            sizes.iter().all(|s| *s <= first + first / 4),
            "the store grows: {sizes:?}"
        );
        drop(store);
        let store = SnapshotStore::open(dir.path()).expect("reopen");
        assert_eq!(store.load::<State>().expect("load"), Some((30, big)));
    }

    /// A generation `CURRENT` does not name (a save that crashed before switching) is
    /// deleted at open, and the named one is what loads.
    #[test]
    fn an_unfinished_generation_is_deleted_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = SnapshotStore::open(dir.path()).expect("open");
            store.save(5, &sample_state(3)).expect("save");
        }
        let leftover = dir.path().join(format!("{GENERATION_PREFIX}{:020}-0", 9));
        fs::create_dir_all(leftover.join("blobs")).expect("mkdir");
        fs::write(leftover.join("db"), b"half a snapshot").expect("write");
        fs::write(dir.path().join(format!("{CURRENT_FILE}.tmp")), b"gen-x").expect("write");
        let store = SnapshotStore::open(dir.path()).expect("open");
        assert!(!leftover.exists(), "the unfinished generation is gone");
        assert_eq!(generations(dir.path()).len(), 1);
        assert_eq!(
            store.load::<State>().expect("load"),
            Some((5, sample_state(3)))
        );
    }

    /// `CURRENT` naming a missing generation, or holding something else, is corrupt; a
    /// directory of the older one-database layout is refused by name: never a start
    /// without the snapshot (the journal it covered is gone).
    #[test]
    fn a_broken_current_or_the_old_layout_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(
            dir.path().join(CURRENT_FILE),
            b"gen-00000000000000000007-0\n",
        )
        .expect("write");
        let err = SnapshotStore::open(dir.path()).expect_err("missing generation");
        assert!(matches!(err, SnapshotError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("missing"), "{err}");
        fs::write(dir.path().join(CURRENT_FILE), b"../elsewhere").expect("write");
        let err = SnapshotStore::open(dir.path()).expect_err("not a generation");
        assert!(matches!(err, SnapshotError::Corrupt { .. }), "{err}");

        let old = tempfile::tempdir().expect("tempdir");
        sled::Config::new()
            .path(old.path())
            .open()
            .expect("an old-layout store")
            .flush()
            .expect("flush");
        let err = SnapshotStore::open(old.path()).expect_err("old layout");
        assert!(matches!(err, SnapshotError::OldLayout { .. }), "{err}");
        assert!(err.to_string().contains("older Innkeep"), "{err}");
    }
}
