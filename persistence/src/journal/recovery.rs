//! Recovery: replaying the journal at start-up ([`recover`], [`recover_keeping_last`]).

use std::collections::VecDeque;
use std::fs;
use std::io::Write;
use std::path::Path;

use super::format::{
    check_header, decode_record, find_valid_frame_after, list_segments, read_segment_into,
    scan_records, segment_header, HeaderCheck,
};
use super::{
    JournalError, Record, RecoveryReport, MAX_RETAIN_RECORDS, RECORD_HEADER_BYTES,
    SEGMENT_HEADER_BYTES,
};

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
/// Segments of every format from [`OLDEST_READABLE_SEGMENT_FORMAT`] to
/// [`SEGMENT_FORMAT_VERSION`] are read: a record in a current segment decodes as `E`
/// (bincode, as written), one in an older segment through [`Record::decode_older`], and
/// either failing is [`JournalError::Corrupt`] naming file, offset and seq.
///
/// [`OLDEST_READABLE_SEGMENT_FORMAT`]: super::OLDEST_READABLE_SEGMENT_FORMAT
/// [`SEGMENT_FORMAT_VERSION`]: super::SEGMENT_FORMAT_VERSION
///
/// `apply` may have been called for some records when an error is returned: on error
/// the caller must discard the state it was building and refuse to start.
///
/// Each segment is read into memory whole (segments are bounded by
/// `segment_max_bytes` plus one batch).
pub fn recover<E: Record>(
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
    /// Format version of that segment, which decides how its payload decodes.
    version: u32,
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
///
/// [`JournalOptions::retain_records`]: super::JournalOptions::retain_records
pub fn recover_keeping_last<E: Record>(
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
    // A segment's buffer once nothing points into it, read into again: a new one for each
    // segment would fault in (and zero) every page of every segment.
    let mut spare: Option<Vec<u8>> = None;
    for (index, (segment_first_seq, path)) in segments.iter().enumerate() {
        let is_last = index == last_index;
        if *segment_first_seq != expected {
            return Err(JournalError::Gap {
                expected,
                found: *segment_first_seq,
                path: path.clone(),
            });
        }
        let bytes = read_segment_into(path, spare.take().unwrap_or_default())?;
        let version = match check_header(&bytes) {
            HeaderCheck::Valid(version) => version,
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
        };

        let outcome = scan_records(&bytes, path, expected, |seq, payload, offset| {
            if keep_last > 0 {
                if kept.len() == keep_last {
                    kept.pop_front();
                }
                let start = offset as usize + RECORD_HEADER_BYTES as usize;
                kept.push_back(KeptRecord {
                    seq,
                    segment: index,
                    version,
                    offset,
                    start,
                    end: start + payload.len(),
                });
            }
            if seq <= after_seq {
                // Covered by the snapshot; CRC and continuity were still checked.
                return Ok(());
            }
            apply(seq, decode_record(version, payload, path, offset, seq)?);
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
        } else {
            spare = Some(bytes);
        }
        let oldest_needed = kept.front().map_or(usize::MAX, |k| k.segment);
        while kept_segments
            .front()
            .is_some_and(|(segment, _)| *segment < oldest_needed)
        {
            spare = kept_segments.pop_front().map(|(_, bytes)| bytes);
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
            decode_record(k.version, &bytes[k.start..k.end], path, k.offset, k.seq)?,
        ));
    }
    Ok((report, newest))
}
