//! Webhook definitions and delivery state on disk: one JSON file per webhook in
//! `data_dir/webhooks/`, `<name>.json`, replaced whole and durably (written to
//! `<name>.json.tmp`, fsynced, renamed over, directory fsynced), so a crash leaves either
//! the old or the new file. Not in the engine's journal: webhooks are server
//! configuration and delivery bookkeeping, not reservation events, and their cursor moves
//! with every delivery.
//!
//! Loading refuses anything it cannot read whole (a file that does not parse, an unknown
//! format version, a name that does not match its file, an unknown file): start-up stops
//! naming the file, never a silent partial load. A leftover `.tmp` (a crash mid-write) is
//! ignored: its rename never happened, so the `.json` beside it is the state, and the next
//! write of that webhook replaces it. Loading only reads, so it may run before the
//! engine takes the data dir's lock.

use std::collections::VecDeque;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Version of the file format; bumped on any change of shape, so an older server refuses
/// a newer file instead of misreading it.
pub const STORE_FORMAT_VERSION: u32 = 1;

/// Most delivery attempts kept per webhook for `GET …/deliveries` (newest last).
pub const MAX_ATTEMPTS_KEPT: usize = 20;

/// Most dead letters kept per webhook (newest last); older ones are counted only.
pub const MAX_DEAD_LETTERS_KEPT: usize = 100;

/// What a webhook sends where: its definition as accepted (validated, hotels and events
/// sorted and without duplicates; `"*"` alone when given).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// Where events are POSTed.
    pub url: String,
    /// Hotel ids whose events are sent, or `["*"]` for every hotel.
    pub hotels: Vec<String>,
    /// Event types sent, or `["*"]` for every type.
    pub events: Vec<String>,
    /// The HMAC key of `Innkeep-Signature`; shared with the receiver, never shown again.
    pub secret: String,
}

impl Definition {
    /// Whether an event of `event_type` for `hotel_id` goes to this webhook.
    pub fn matches(&self, hotel_id: &str, event_type: &str) -> bool {
        let any = |list: &[String], item: &str| list.iter().any(|x| x == "*" || x == item);
        any(&self.hotels, hotel_id) && any(&self.events, event_type)
    }
}

/// One delivery attempt, for the operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attempt {
    /// The event sent (its journal sequence number).
    pub event_id: u64,
    /// When the attempt started (RFC 3339, UTC).
    pub at: String,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Why the attempt failed without an answer (connection, timeout, refused address),
    /// or what a non-2xx answer means.
    pub error: Option<String>,
    /// From sending to the answer's status line (or the failure), in milliseconds.
    pub latency_ms: u64,
}

/// An event given up on, or a run of events the journal no longer held when the
/// webhook reached them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetter {
    /// The event (the first of the run).
    pub event_id: u64,
    /// The last event of the run; equal to `event_id` for one event.
    pub through_event_id: u64,
    /// The event's type; `None` for a run the journal no longer held.
    pub event_type: Option<String>,
    /// When it was given up on (RFC 3339, UTC).
    pub at: String,
    /// Attempts made for it.
    pub attempts: u32,
    /// Why: the last attempt's error, or that the journal no longer held the events.
    pub reason: String,
}

/// Everything stored for one webhook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stored {
    /// [`STORE_FORMAT_VERSION`] when written.
    pub format: u32,
    /// The webhook's name (its file is `<name>.json`).
    pub name: String,
    /// What it sends where.
    pub definition: Definition,
    /// When it was created (RFC 3339, UTC).
    pub created_at: String,
    /// When its definition was last replaced (RFC 3339, UTC).
    pub updated_at: String,
    /// Every event with a sequence number at or below this is settled: delivered (2xx),
    /// not matching, or dead-lettered. Delivery resumes after it; it is behind the truth
    /// by what was delivered since the last write, so those are sent again (at least
    /// once, never skipped).
    pub cursor: u64,
    /// When the current run of failed attempts began (unix milliseconds); `None` after a
    /// 2xx. Once it is `max_age` old, events are dead-lettered after one failed attempt
    /// and the journal keeps nothing more for this webhook.
    pub failing_since_unix_ms: Option<i64>,
    /// The newest attempts, oldest first, at most [`MAX_ATTEMPTS_KEPT`].
    pub attempts: VecDeque<Attempt>,
    /// The newest dead letters, oldest first, at most [`MAX_DEAD_LETTERS_KEPT`].
    pub dead_letters: VecDeque<DeadLetter>,
    /// Dead letters ever (also those no longer kept).
    pub dead_letters_total: u64,
}

impl Stored {
    /// Records an attempt, dropping the oldest beyond [`MAX_ATTEMPTS_KEPT`].
    pub fn push_attempt(&mut self, attempt: Attempt) {
        if self.attempts.len() >= MAX_ATTEMPTS_KEPT {
            self.attempts.pop_front();
        }
        self.attempts.push_back(attempt);
    }

    /// Records a dead letter, dropping the oldest beyond [`MAX_DEAD_LETTERS_KEPT`].
    pub fn push_dead_letter(&mut self, letter: DeadLetter) {
        if self.dead_letters.len() >= MAX_DEAD_LETTERS_KEPT {
            self.dead_letters.pop_front();
        }
        self.dead_letters.push_back(letter);
        self.dead_letters_total += 1;
    }
}

/// A webhook file that cannot be used: start-up stops with this, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading, writing or listing failed.
    #[error("webhook store {path}: {source}")]
    Io {
        /// Which file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file is not a webhook this server can read.
    #[error("webhook store {path}: {reason}")]
    Corrupt {
        /// Which file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The webhook files' directory under `data_dir`.
pub fn store_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("webhooks")
}

fn file_of(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

/// Every stored webhook in `dir`, by name; none when `dir` does not exist. `valid_name`
/// decides which names are acceptable (the API's rule), so a hand-edited file with a name
/// the API would refuse is refused here too.
pub fn load(dir: &Path, valid_name: impl Fn(&str) -> bool) -> Result<Vec<Stored>, StoreError> {
    let mut out = Vec::new();
    let listing = match fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_error(dir)(e)),
    };
    let mut entries: Vec<PathBuf> = listing
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io_error(dir))?;
    entries.sort();
    for path in entries {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if file_name.ends_with(".json.tmp") {
            tracing::warn!(file = %path.display(), "webhook store: ignoring an unfinished write");
            continue;
        }
        let Some(name) = file_name.strip_suffix(".json") else {
            return Err(StoreError::Corrupt {
                path,
                reason: "not a webhook file (<name>.json); move it out of the directory".into(),
            });
        };
        let bytes = fs::read(&path).map_err(io_error(&path))?;
        let stored: Stored = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if stored.format != STORE_FORMAT_VERSION {
            return Err(StoreError::Corrupt {
                path,
                reason: format!(
                    "format version {} (this server reads {STORE_FORMAT_VERSION})",
                    stored.format
                ),
            });
        }
        if stored.name != name || !valid_name(name) {
            return Err(StoreError::Corrupt {
                path,
                reason: format!(
                    "holds webhook {:?}, not a valid name for this file",
                    stored.name
                ),
            });
        }
        out.push(stored);
    }
    Ok(out)
}

/// Writes `stored` durably as its webhook's file (temp, fsync, rename, directory fsync);
/// creates `dir` if missing.
pub fn write(dir: &Path, stored: &Stored) -> Result<(), StoreError> {
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let path = file_of(dir, &stored.name);
    let tmp = dir.join(format!("{}.json.tmp", stored.name));
    let bytes = serde_json::to_vec_pretty(stored).map_err(|e| StoreError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    {
        let mut file = open_private(&tmp).map_err(io_error(&tmp))?;
        file.write_all(&bytes).map_err(io_error(&tmp))?;
        file.sync_all().map_err(io_error(&tmp))?;
    }
    fs::rename(&tmp, &path).map_err(io_error(&path))?;
    sync_dir(dir)
}

/// Deletes a webhook's file durably. A missing file is not an error.
pub fn remove(dir: &Path, name: &str) -> Result<(), StoreError> {
    let path = file_of(dir, name);
    match fs::remove_file(&path) {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(&path)(e)),
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

/// A new file only its owner can read: it holds the webhooks' secrets.
fn open_private(path: &Path) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(name: &str) -> Stored {
        Stored {
            format: STORE_FORMAT_VERSION,
            name: name.into(),
            definition: Definition {
                url: "https://example.com/hook".into(),
                hotels: vec!["H1".into()],
                events: vec!["*".into()],
                secret: "whsec-0123456789abcdef".into(),
            },
            created_at: "2026-12-05T10:00:00Z".into(),
            updated_at: "2026-12-05T10:00:00Z".into(),
            cursor: 7,
            failing_since_unix_ms: None,
            attempts: VecDeque::new(),
            dead_letters: VecDeque::new(),
            dead_letters_total: 0,
        }
    }

    fn any_name(_: &str) -> bool {
        true
    }

    #[test]
    fn written_files_load_back_and_removed_ones_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let a = stored("a");
        let mut b = stored("b.2");
        b.cursor = 99;
        write(dir.path(), &a).unwrap();
        write(dir.path(), &b).unwrap();
        // A crash mid-write leaves a temp file; it is not the state.
        fs::write(dir.path().join("a.json.tmp"), b"{half").unwrap();
        assert_eq!(load(dir.path(), any_name).unwrap(), vec![a.clone(), b]);
        assert!(load(&dir.path().join("none"), any_name).unwrap().is_empty());
        remove(dir.path(), "b.2").unwrap();
        remove(dir.path(), "never-there").unwrap();
        assert_eq!(load(dir.path(), any_name).unwrap(), vec![a]);
    }

    #[test]
    fn kept_lists_are_bounded() {
        let mut s = stored("a");
        for i in 0..(MAX_ATTEMPTS_KEPT as u64 + 5) {
            s.push_attempt(Attempt {
                event_id: i,
                at: String::new(),
                status: None,
                error: None,
                latency_ms: 0,
            });
        }
        assert_eq!(s.attempts.len(), MAX_ATTEMPTS_KEPT);
        assert_eq!(s.attempts.front().map(|a| a.event_id), Some(5));
        for i in 0..(MAX_DEAD_LETTERS_KEPT as u64 + 3) {
            s.push_dead_letter(DeadLetter {
                event_id: i,
                through_event_id: i,
                event_type: None,
                at: String::new(),
                attempts: 1,
                reason: String::new(),
            });
        }
        assert_eq!(s.dead_letters.len(), MAX_DEAD_LETTERS_KEPT);
        assert_eq!(s.dead_letters_total, MAX_DEAD_LETTERS_KEPT as u64 + 3);
    }

    #[test]
    fn anything_unreadable_stops_the_load_naming_the_file() {
        let cases: [(&str, &[u8], &str); 5] = [
            ("a.json", b"{not json", "a.json"),
            ("b.json", b"", "b.json"),
            ("notes.txt", b"hello", "notes.txt"),
            (
                "c.json",
                br#"{"format":1,"name":"other","definition":{"url":"https://x.y","hotels":["*"],"events":["*"],"secret":"0123456789abcdef"},"created_at":"","updated_at":"","cursor":0,"failing_since_unix_ms":null,"attempts":[],"dead_letters":[],"dead_letters_total":0}"#,
                "not a valid name",
            ),
            (
                "d.json",
                br#"{"format":2,"name":"d","definition":{"url":"https://x.y","hotels":["*"],"events":["*"],"secret":"0123456789abcdef"},"created_at":"","updated_at":"","cursor":0,"failing_since_unix_ms":null,"attempts":[],"dead_letters":[],"dead_letters_total":0}"#,
                "format version 2",
            ),
        ];
        for (file, bytes, says) in cases {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), &stored("ok")).unwrap();
            fs::write(dir.path().join(file), bytes).unwrap();
            let err = load(dir.path(), any_name).unwrap_err().to_string();
            assert!(err.contains(file) && err.contains(says), "{file}: {err}");
        }
        // A name the API would refuse is refused from a file too.
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &stored("bad name")).unwrap();
        let err = load(dir.path(), |n| !n.contains(' '))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a valid name"), "{err}");
    }
}
