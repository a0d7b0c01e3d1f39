//! The on-disk format: segment header and names, record framing, CRC32C, encoding
//! and decoding, and scanning a segment's records.
//!
//! Format helpers shared by the writer, `start` validation and `recover`.

use std::fmt;
use std::fs;
use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{
    JournalError, Record, MAX_RECORD_BYTES, OLDEST_READABLE_SEGMENT_FORMAT, RECORD_HEADER_BYTES,
    SEGMENT_FORMAT_VERSION, SEGMENT_HEADER_BYTES, SEGMENT_MAGIC,
};

/// File name suffix of segment files.
const SEGMENT_SUFFIX: &str = ".seg";

/// Digits in a segment file name's sequence number (`u64::MAX` has 20).
const SEGMENT_NAME_DIGITS: usize = 20;

/// The bincode configuration every record uses (the wire format).
pub(super) fn bincode_config() -> bincode::config::Configuration {
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

/// The 8 header bytes every segment this build writes starts with (current version).
pub(super) fn segment_header() -> [u8; SEGMENT_HEADER_BYTES as usize] {
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
pub(super) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Segment files in `dir`, sorted by first sequence number. A missing directory has no
/// segments. Other files are ignored (an operator's notes must not stop start-up).
pub(super) fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
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
pub(super) enum HeaderCheck {
    /// Right magic and a version this build reads (the one carried, from
    /// [`OLDEST_READABLE_SEGMENT_FORMAT`] to [`SEGMENT_FORMAT_VERSION`]).
    Valid(u32),
    /// Fewer bytes than a header (a crash while creating the file).
    Short,
    /// The magic bytes are wrong.
    BadMagic,
    /// Right magic, a version this build does not know.
    UnknownVersion(u32),
}

/// Check the first bytes of a segment.
pub(super) fn check_header(bytes: &[u8]) -> HeaderCheck {
    if bytes.len() < SEGMENT_HEADER_BYTES as usize {
        return HeaderCheck::Short;
    }
    if bytes[..4] != SEGMENT_MAGIC {
        return HeaderCheck::BadMagic;
    }
    let version = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if !(OLDEST_READABLE_SEGMENT_FORMAT..=SEGMENT_FORMAT_VERSION).contains(&version) {
        return HeaderCheck::UnknownVersion(version);
    }
    HeaderCheck::Valid(version)
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
pub(super) fn read_u32(bytes: &[u8], pos: usize) -> u32 {
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
pub(super) fn record_crc(seq: u64, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&seq.to_le_bytes()), payload)
}

/// Why the bytes at some offset are not a valid record frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FrameFault {
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
pub(super) struct BadFrame {
    /// Its byte offset in the file.
    pub(super) offset: u64,
    /// Why it is bad.
    pub(super) fault: FrameFault,
}

/// How far [`scan_records`] got.
#[derive(Debug)]
pub(super) struct ScanOutcome {
    /// Sequence number the next record after the good ones would have.
    pub(super) next_seq: u64,
    /// The first bad frame, if the good records do not run to end of file (or to zeros
    /// that run to it).
    pub(super) bad: Option<BadFrame>,
    /// Byte offset just past the last good record read: where the next one goes.
    pub(super) end: usize,
}

/// Walk the records of one segment (whose header was already checked), verifying
/// framing, CRC and sequence continuity from `first_seq`, calling `on_record(seq,
/// payload, offset)` for each good record. Stops at the first bad frame and reports it;
/// a good frame with the wrong sequence number is a [`JournalError::Gap`]. Zeros from a
/// frame's start to end of file are no bad frame but the end of the records: the writer
/// fills a segment with zeros ahead of its batches ([`SegmentFile::prefill`]). The
/// records such zeros could hide are at the segment's end, where a lost tail is what a
/// crash before the sync also leaves, and a later segment's first seq shows a gap.
///
/// [`SegmentFile::prefill`]: crate::storage::SegmentFile::prefill
pub(super) fn scan_records(
    bytes: &[u8],
    path: &Path,
    first_seq: u64,
    mut on_record: impl FnMut(u64, &[u8], u64) -> Result<(), JournalError>,
) -> Result<ScanOutcome, JournalError> {
    scan_records_while(bytes, path, first_seq, |seq, payload, offset| {
        on_record(seq, payload, offset).map(|()| ControlFlow::Continue(()))
    })
}

/// [`scan_records`] that also stops, without a bad frame, when `on_record` answers
/// [`ControlFlow::Break`] (a reader that has what it needs).
pub(super) fn scan_records_while(
    bytes: &[u8],
    path: &Path,
    first_seq: u64,
    mut on_record: impl FnMut(u64, &[u8], u64) -> Result<ControlFlow<()>, JournalError>,
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
                let flow = on_record(
                    frame.seq,
                    &bytes[frame.payload_start..frame.end],
                    pos as u64,
                )?;
                expected += 1;
                pos = frame.end;
                if flow.is_break() {
                    break;
                }
            }
            Err(_) if bytes[pos..].iter().all(|&b| b == 0) => break,
            Err(fault) => {
                return Ok(ScanOutcome {
                    next_seq: expected,
                    bad: Some(BadFrame {
                        offset: pos as u64,
                        fault,
                    }),
                    end: pos,
                });
            }
        }
    }
    Ok(ScanOutcome {
        next_seq: expected,
        bad: None,
        end: pos,
    })
}

/// Look for a valid record frame starting anywhere after `from`, with a sequence
/// number after `last_good_seq` that could plausibly follow it in the bytes left.
/// Finding one means the bad bytes at `from` are damage *before* real data, not a torn
/// tail. Returns its offset.
pub(super) fn find_valid_frame_after(
    bytes: &[u8],
    from: usize,
    last_good_seq: u64,
) -> Option<usize> {
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
pub(super) fn read_segment(path: &Path) -> Result<Vec<u8>, JournalError> {
    fs::read(path).map_err(|e| JournalError::io(path, e))
}

/// Read a whole segment file into `buffer` (emptied first, its capacity reused).
pub(super) fn read_segment_into(path: &Path, mut buffer: Vec<u8>) -> Result<Vec<u8>, JournalError> {
    use std::io::Read;
    buffer.clear();
    fs::File::open(path)
        .and_then(|mut file| file.read_to_end(&mut buffer))
        .map_err(|e| JournalError::io(path, e))?;
    Ok(buffer)
}

/// Decode one record's payload (whose frame and CRC were checked) as an `E`; a payload
/// that does not decode, or decodes from fewer bytes than it has, is corruption.
pub(crate) fn decode_payload<E: DeserializeOwned>(payload: &[u8]) -> Result<E, String> {
    let (event, used) = bincode::serde::decode_from_slice::<E, _>(payload, bincode_decode_config())
        .map_err(|e| e.to_string())?;
    if used != payload.len() {
        return Err(format!(
            "decodes from {used} of its {} payload bytes",
            payload.len()
        ));
    }
    Ok(event)
}

/// Decode one record written in a segment of format `version`, through [`Record::decode`]
/// or [`Record::decode_older`]; what does not decode is corruption, named by file, offset
/// and seq.
pub(super) fn decode_record<E: Record>(
    version: u32,
    payload: &[u8],
    path: &Path,
    offset: u64,
    seq: u64,
) -> Result<E, JournalError> {
    if version == SEGMENT_FORMAT_VERSION {
        return E::decode(payload).map_err(|reason| JournalError::Corrupt {
            path: path.to_path_buf(),
            offset,
            reason: format!("record seq {seq} has a valid CRC but does not decode: {reason}"),
        });
    }
    E::decode_older(version, payload).map_err(|reason| JournalError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason: format!(
            "record seq {seq} has a valid CRC but does not decode (segment format {version}): {reason}"
        ),
    })
}

/// bincode's writer into the batch buffer that refuses to grow one record past
/// [`MAX_RECORD_BYTES`], so an oversized event fails fast instead of being encoded whole.
/// bincode's own `Writer`, not `io::Write`: each field is one call, not a call through
/// `write_all`'s loop.
struct CappedWriter<'a> {
    /// The batch buffer.
    buf: &'a mut Vec<u8>,
    /// Bytes this record may still add.
    remaining_bytes: u64,
    /// Set when a write was refused for size.
    overflowed: bool,
}

impl bincode::enc::write::Writer for CappedWriter<'_> {
    // Called once per field (a reservation has about a hundred), mostly with a few bytes.
    #[inline]
    fn write(&mut self, data: &[u8]) -> Result<(), bincode::error::EncodeError> {
        if data.len() as u64 > self.remaining_bytes {
            self.overflowed = true;
            return Err(bincode::error::EncodeError::Other(
                "record exceeds MAX_RECORD_BYTES",
            ));
        }
        self.buf.extend_from_slice(data);
        self.remaining_bytes -= data.len() as u64;
        Ok(())
    }
}

/// Append the framed record for (`seq`, `event`) to `buf`; on error `buf` is unchanged.
pub(super) fn encode_record<E: Serialize>(
    buf: &mut Vec<u8>,
    seq: u64,
    event: &E,
) -> Result<(), JournalError> {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; RECORD_HEADER_BYTES as usize]);
    let mut writer = CappedWriter {
        buf,
        remaining_bytes: MAX_RECORD_BYTES,
        overflowed: false,
    };
    let result = bincode::serde::encode_into_writer(event, &mut writer, bincode_config());
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
