//! Reading records back while the journal runs ([`read_after`]): for readers that are
//! behind what the process keeps in memory, such as outbound webhooks resuming from a
//! durable cursor.

use std::fs;
use std::io;
use std::ops::ControlFlow;
use std::path::Path;

use super::format::{check_header, decode_record, list_segments, scan_records_while, HeaderCheck};
use super::{JournalError, Record};

/// Up to `max_records` records with seq > `after_seq` from the journal in `dir`, oldest
/// first and consecutive, without changing any file.
///
/// Safe while the writer appends and truncates: reading stops at the first frame that
/// does not check (the active segment's batch being written; a reader must only rely on
/// records it knows are durable), and a segment deleted between listing and reading ends
/// the read (or, before anything was read, is skipped: its records are gone). So the
/// answer may start after `after_seq + 1` when the journal no longer holds those records,
/// and callers compare its first seq with what they asked for. A corrupt or unknown
/// segment is an error naming the file, as in recovery.
pub fn read_after<E: Record>(
    dir: &Path,
    after_seq: u64,
    max_records: usize,
) -> Result<Vec<(u64, E)>, JournalError> {
    let mut out: Vec<(u64, E)> = Vec::new();
    if max_records == 0 {
        return Ok(out);
    }
    let segments = list_segments(dir)?;
    // The segment holding `after_seq + 1` is the last one starting at or before it.
    let wanted = after_seq.saturating_add(1);
    let start = segments
        .iter()
        .rposition(|(first, _)| *first <= wanted)
        .unwrap_or(0);
    for (first, path) in &segments[start..] {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound && out.is_empty() => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => return Err(JournalError::io(path, e)),
        };
        let version = match check_header(&bytes) {
            HeaderCheck::Valid(version) => version,
            // A segment being created: nothing in it is durable yet.
            HeaderCheck::Short => break,
            HeaderCheck::BadMagic => {
                return Err(JournalError::Corrupt {
                    path: path.clone(),
                    offset: 0,
                    reason: "bad magic bytes (not an INKJ journal segment)".to_string(),
                })
            }
            HeaderCheck::UnknownVersion(version) => {
                return Err(JournalError::UnknownFormat {
                    path: path.clone(),
                    version,
                })
            }
        };
        let outcome = scan_records_while(&bytes, path, *first, |seq, payload, offset| {
            if seq > after_seq {
                out.push((seq, decode_record(version, payload, path, offset, seq)?));
            }
            Ok(if out.len() >= max_records {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })?;
        if out.len() >= max_records || outcome.bad.is_some() {
            break;
        }
    }
    Ok(out)
}
