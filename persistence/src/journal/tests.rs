//! Unit tests of the journal: writer, recovery, retention and the on-disk format.

use super::format::{
    bincode_config, list_segments, parse_segment_name, read_u32, record_crc, scan_records,
    segment_header,
};
use super::*;
use crate::storage::FaultyStorage;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs;
use std::sync::{mpsc, Mutex};

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

/// `Ev` as a previous release encoded it in segment format 3: another field order and a
/// narrower id, so decoding its bytes as `Ev` would fail or give a different event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct EvV3 {
    note: String,
    id: u32,
}

/// Format-3 payload of `ev(id)`.
fn ev_v3_payload(id: u64) -> Vec<u8> {
    let old = EvV3 {
        note: format!("event number {id}"),
        id: u32::try_from(id).expect("small id"),
    };
    bincode::serde::encode_to_vec(&old, bincode_config()).expect("encode")
}

impl Record for Ev {
    fn decode_older(version: u32, payload: &[u8]) -> Result<Self, String> {
        match version {
            3 => crate::decode_part::<EvV3>(payload).map(|old| Ev {
                id: u64::from(old.id),
                note: old.note,
            }),
            _ => Err(format!("no decoder for format {version}")),
        }
    }
}

impl Record for Vec<u8> {}

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

/// Waits (up to 10 s, then fails) until the writer has made `n` prefills: with nothing
/// else sent, it makes one in each idle moment while zeros are due.
fn wait_for_prefills(plan: &crate::storage::FaultPlan, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while plan.prefills() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {n} prefills",
            plan.prefills()
        );
        std::thread::yield_now();
    }
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).expect("metadata").len()
}

/// Where a clean segment's records end: the writer's zeros ahead of them may follow.
fn records_end(path: &Path) -> u64 {
    let bytes = fs::read(path).expect("read");
    let first = parse_segment_name(&path.file_name().expect("name").to_string_lossy())
        .expect("segment name");
    let outcome = scan_records(&bytes, path, first, |_, _, _| Ok(())).expect("scan");
    assert!(outcome.bad.is_none());
    outcome.end as u64
}

/// Write segment `first_seq` by hand with format `version` and the given payloads (seqs
/// from `first_seq` on), framed and checksummed as the writer does. Returns its path and
/// each record's offset.
fn write_segment_by_hand(
    dir: &Path,
    first_seq: u64,
    version: u32,
    payloads: &[Vec<u8>],
) -> (PathBuf, Vec<u64>) {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&SEGMENT_MAGIC);
    bytes.extend_from_slice(&version.to_le_bytes());
    let mut offsets = Vec::new();
    for (seq, payload) in (first_seq..).zip(payloads) {
        offsets.push(bytes.len() as u64);
        let len = u32::try_from(payload.len()).expect("small payload");
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(&seq.to_le_bytes());
        bytes.extend_from_slice(&record_crc(seq, payload).to_le_bytes());
        bytes.extend_from_slice(payload);
    }
    fs::create_dir_all(dir).expect("mkdir");
    let path = dir.join(segment_file_name(first_seq));
    fs::write(&path, bytes).expect("write");
    (path, offsets)
}

/// The format version in a segment file's header.
fn segment_version(path: &Path) -> u32 {
    let bytes = fs::read(path).expect("read");
    assert_eq!(&bytes[..4], &SEGMENT_MAGIC, "{}", path.display());
    read_u32(&bytes, 4)
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
    // The hook gets each record's payload as written, the bytes `encode_part` gives, so a
    // hook may keep it instead of encoding the event again.
    for c in batches.lock().expect("lock").iter().flatten() {
        assert_eq!(c.payload, crate::encode_part(&c.event).expect("encode"));
        assert_eq!(crate::decode_part::<Ev>(&c.payload), Ok(c.event.clone()));
    }

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

/// Completes every ack a sink was handed.
fn complete_all(sink: &Collect) {
    for ack in std::mem::take(&mut *sink.deliveries.lock().expect("lock"))
        .into_iter()
        .flatten()
    {
        ack.complete();
    }
}

/// `append_many_via` makes its events consecutive records, answered once with the last
/// one's seq; a write that fails fails them all (nothing of them is recovered), and the
/// next ones take their numbers.
#[test]
fn append_many_is_one_ack_for_consecutive_records_all_durable_or_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (storage, plan) = FaultyStorage::over_fs();
    let (hook, _batches) = collector();
    let journal =
        Journal::start_with_storage(options(dir.path(), 1 << 20), 1, hook, Box::new(storage))
            .expect("start");
    let collect = Arc::new(Collect::default());
    let sink: Arc<dyn AckSink> = collect.clone();
    assert_eq!(append_wait(&journal, ev(1)).expect("ack"), 1);
    let many = journal
        .append_many_via(vec![ev(2), ev(3), ev(4)], &sink)
        .expect("append");
    let delivered = || collect.deliveries.lock().expect("lock").len();
    while delivered() == 0 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let lens: Vec<usize> = collect
        .deliveries
        .lock()
        .expect("lock")
        .iter()
        .map(Vec::len)
        .collect();
    assert_eq!(lens, vec![1], "one ack for the three records");
    complete_all(&collect);
    assert_eq!(wait(many).expect("ack"), 4);
    plan.fail_next_write();
    let failed = journal
        .append_many_via(vec![ev(5), ev(6)], &sink)
        .expect("append");
    assert!(matches!(
        wait(failed),
        Err(JournalError::Unavailable { .. })
    ));
    let next = journal
        .append_many_via(vec![ev(7), ev(8)], &sink)
        .expect("append");
    while delivered() == 0 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    complete_all(&collect);
    assert_eq!(
        wait(next).expect("ack"),
        6,
        "the failed records' numbers are reused"
    );
    let empty = journal.append_many_via(Vec::new(), &sink).expect("append");
    assert_eq!(
        wait(empty).expect("ack"),
        6,
        "nothing to append: the durable seq"
    );
    journal.shutdown();
    let (records, _) = recover_all(dir.path(), 0).expect("recover");
    assert_eq!(
        records,
        vec![
            (1, ev(1)),
            (2, ev(2)),
            (3, ev(3)),
            (4, ev(4)),
            (5, ev(7)),
            (6, ev(8))
        ]
    );
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
    let len = records_end(path);
    // A crash before the tenth record's last bytes reached a file without zeros ahead.
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
    flip_byte(&path, records_end(&path) - 1);
    // Cut: the bad record and whatever zeros the writer had written ahead of it.
    let len = file_len(&path);
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
    let original = fs::read(&path).expect("read");
    // One past either end of the readable range (2 and 5).
    for bad_version in [
        OLDEST_READABLE_SEGMENT_FORMAT - 1,
        SEGMENT_FORMAT_VERSION + 1,
    ] {
        let mut bytes = original.clone();
        bytes[4..8].copy_from_slice(&bad_version.to_le_bytes());
        fs::write(&path, bytes).expect("write");
        match recover_all(dir.path(), 0) {
            Err(err @ JournalError::UnknownFormat { .. }) => {
                let message = err.to_string();
                let JournalError::UnknownFormat { path: p, version } = err else {
                    unreachable!()
                };
                assert_eq!((p, version), (path.clone(), bad_version));
                assert!(
                    message.contains(&format!(
                        "reads versions {OLDEST_READABLE_SEGMENT_FORMAT} to {SEGMENT_FORMAT_VERSION}"
                    )),
                    "{message}"
                );
            }
            other => panic!("expected UnknownFormat for {bad_version}, got {other:?}"),
        }
        let (hook, _) = collector();
        assert!(matches!(
            Journal::start(options(dir.path(), 1 << 20), 3, hook),
            Err(JournalError::UnknownFormat { version, .. }) if version == bad_version
        ));
    }
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
    let journal = Journal::start_with_storage(options(dir.path(), 64), 1, hook, Box::new(storage))
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
    // Idle after it, the writer writes its first zeros ahead.
    wait_for_prefills(&plan, 1);
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
    assert_eq!(plan.prefills(), 1, "no zeros written once poisoned");
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
    let len = records_end(&path);
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
fn a_format_3_journal_recovers_and_continues_in_a_new_format_4_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old_payloads: Vec<Vec<u8>> = (1..=3).map(ev_v3_payload).collect();
    let (old_path, _) = write_segment_by_hand(dir.path(), 1, 3, &old_payloads);
    let old_bytes = fs::read(&old_path).expect("read");
    assert_ne!(
        old_payloads[0],
        bincode::serde::encode_to_vec(ev(1), bincode_config()).expect("encode"),
        "the old encoding differs from the current one"
    );

    // The previous release's records decode through `decode_older`, replayed and kept.
    let (records, report) = recover_all(dir.path(), 0).expect("recover");
    assert_eq!(records, evs(1..=3));
    assert_eq!((report.last_seq, report.segments), (3, 1));
    assert_eq!(
        recover_keeping(dir.path(), 3, 10).expect("kept").1,
        evs(1..=3)
    );

    // New records never go into the old segment: a new format-4 segment starts at 4.
    let (hook, batches) = collector();
    let journal = Journal::start(options(dir.path(), 1 << 20), 4, hook).expect("start");
    assert_eq!(append_wait(&journal, ev(4)).expect("ack"), 4);
    assert_eq!(append_wait(&journal, ev(5)).expect("ack"), 5);
    journal.shutdown();
    assert_eq!(seqs(&batches), vec![4, 5]);
    let files = segment_files(dir.path());
    assert_eq!(
        files,
        vec![
            (1, dir.path().join(segment_file_name(1))),
            (4, dir.path().join(segment_file_name(4))),
        ]
    );
    assert_eq!(
        fs::read(&old_path).expect("read"),
        old_bytes,
        "old segment untouched"
    );
    assert_eq!(segment_version(&files[0].1), 3);
    assert_eq!(segment_version(&files[1].1), SEGMENT_FORMAT_VERSION);
    assert_eq!(record_offsets(&files[1].1).len(), 2);

    // The whole dir recovers in order, across the two formats, replayed and kept alike.
    let (records, report) = recover_all(dir.path(), 0).expect("recover all");
    assert_eq!(records, evs(1..=5));
    assert_eq!((report.last_seq, report.segments), (5, 2));
    let (replayed, kept, _) = recover_keeping(dir.path(), 2, 4).expect("recover keeping");
    assert_eq!(replayed, evs(3..=5));
    assert_eq!(kept, evs(2..=5));

    // A restart appends to the format-4 segment, and retention deletes the old segment
    // like any other once a snapshot covers it.
    let (hook, _) = collector();
    let journal = Journal::start(options(dir.path(), 1 << 20), 6, hook).expect("restart");
    journal.truncate_through(5);
    assert_eq!(append_wait(&journal, ev(6)).expect("ack"), 6);
    journal.shutdown();
    assert_eq!(segment_firsts(dir.path()), vec![4]);
    assert_eq!(recover_all(dir.path(), 5).expect("recover").1.last_seq, 6);
}

#[test]
fn a_format_3_record_that_decode_older_refuses_is_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Record 2 has a valid CRC, but its payload is not an old `Ev`.
    let payloads = vec![ev_v3_payload(1), vec![0xff; 12], ev_v3_payload(3)];
    let (path, offsets) = write_segment_by_hand(dir.path(), 1, 3, &payloads);
    match recover_all(dir.path(), 0) {
        Err(JournalError::Corrupt {
            path: p,
            offset,
            reason,
        }) => {
            assert_eq!((p, offset), (path.clone(), offsets[1]));
            assert!(reason.contains("seq 2"), "{reason}");
            assert!(reason.contains("segment format 3"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Covered by the snapshot it is not decoded, but kept it must decode.
    assert_eq!(recover_all(dir.path(), 3).expect("covered").1.last_seq, 3);
    assert!(matches!(
        recover_keeping(dir.path(), 3, 2),
        Err(JournalError::Corrupt { path: p, offset, .. }) if p == path && offset == offsets[1]
    ));

    // A type without an older decoder (the default) refuses every format-3 record.
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, offsets) = write_segment_by_hand(dir.path(), 1, 3, &[vec![1, 2, 3]]);
    match recover(dir.path(), 0, |_, _: Vec<u8>| {}) {
        Err(JournalError::Corrupt {
            path: p,
            offset,
            reason,
        }) => {
            assert_eq!((p, offset), (path, offsets[0]));
            assert!(reason.contains("not readable by this type"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_header_only_format_3_last_segment_is_rewritten_as_format_4() {
    // The only segment, empty: rewritten in place and appended to.
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = write_segment_by_hand(dir.path(), 1, 3, &[]);
    let (records, report) = recover_all(dir.path(), 0).expect("recover");
    assert!(records.is_empty());
    assert_eq!(report.last_seq, 0);
    let (hook, _) = collector();
    let journal = Journal::start(options(dir.path(), 1 << 20), 1, hook).expect("start");
    assert_eq!(segment_version(&path), SEGMENT_FORMAT_VERSION);
    assert_eq!(file_len(&path), SEGMENT_HEADER_BYTES);
    assert_eq!(append_wait(&journal, ev(1)).expect("ack"), 1);
    assert_eq!(append_wait(&journal, ev(2)).expect("ack"), 2);
    journal.shutdown();
    assert_eq!(segment_firsts(dir.path()), vec![1]);
    assert_eq!(segment_version(&path), SEGMENT_FORMAT_VERSION);
    assert_eq!(recover_all(dir.path(), 0).expect("recover").0, evs(1..=2));

    // An empty format-3 segment after one with records (a roll just before the
    // upgrade): the empty one is rewritten, the full one stays as it was.
    let dir = tempfile::tempdir().expect("tempdir");
    let (full, _) = write_segment_by_hand(dir.path(), 1, 3, &[ev_v3_payload(1), ev_v3_payload(2)]);
    let (empty, _) = write_segment_by_hand(dir.path(), 3, 3, &[]);
    assert_eq!(recover_all(dir.path(), 0).expect("recover").1.last_seq, 2);
    let (hook, _) = collector();
    let journal = Journal::start(options(dir.path(), 1 << 20), 3, hook).expect("start");
    assert_eq!(append_wait(&journal, ev(3)).expect("ack"), 3);
    journal.shutdown();
    assert_eq!(segment_firsts(dir.path()), vec![1, 3]);
    assert_eq!(segment_version(&full), 3);
    assert_eq!(segment_version(&empty), SEGMENT_FORMAT_VERSION);
    assert_eq!(recover_all(dir.path(), 0).expect("recover").0, evs(1..=3));
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
        // Anywhere in the file, the writer's zeros after the records included.
        let bytes = fs::read(&last_path).expect("read");
        let cut_at = cut.index(bytes.len() + 1) as u64;
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
        } else if bytes[kept_end as usize..cut_at as usize].iter().all(|&b| b == 0) {
            // Zeros after the last whole record end the records: nothing is torn.
            0
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

/// A retention floor keeps the segments holding records from it on, whatever the
/// truncation target; moving it lets them go at the next truncation.
#[test]
fn retain_from_keeps_what_a_reader_still_needs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (hook, _) = collector();
    let journal = Journal::start(options(dir.path(), 64), 1, hook).expect("start");
    for id in 1..=10 {
        assert_eq!(append_wait(&journal, ev(id)).expect("ack"), id);
    }
    journal.retain_from(4);
    journal.truncate_through(8);
    assert_eq!(append_wait(&journal, ev(11)).expect("ack"), 11);
    let firsts: Vec<u64> = segment_files(dir.path()).iter().map(|s| s.0).collect();
    assert_eq!(firsts, (4..=11).collect::<Vec<_>>());
    journal.retain_from(7);
    assert_eq!(append_wait(&journal, ev(12)).expect("ack"), 12);
    let firsts: Vec<u64> = segment_files(dir.path()).iter().map(|s| s.0).collect();
    assert_eq!(firsts, (7..=12).collect::<Vec<_>>());
    // No floor: the truncation target alone decides.
    journal.retain_from(0);
    assert_eq!(append_wait(&journal, ev(13)).expect("ack"), 13);
    let firsts: Vec<u64> = segment_files(dir.path()).iter().map(|s| s.0).collect();
    assert_eq!(firsts, (9..=13).collect::<Vec<_>>());
    journal.shutdown();
}

/// `read_after` pages through the records after a seq across segments while the
/// journal runs, and starts later than asked when those records are gone.
#[test]
fn read_after_pages_consecutive_records_and_shows_what_is_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (hook, _) = collector();
    let journal = Journal::start(options(dir.path(), 200), 1, hook).expect("start");
    for id in 1..=12 {
        assert_eq!(append_wait(&journal, ev(id)).expect("ack"), id);
    }
    assert!(segment_files(dir.path()).len() >= 3);
    let page = |after: u64, max: usize| -> Vec<u64> {
        crate::read_after::<Ev>(dir.path(), after, max)
            .expect("read")
            .into_iter()
            .map(|(seq, e)| {
                assert_eq!(e, ev(seq));
                seq
            })
            .collect()
    };
    assert_eq!(page(0, 5), vec![1, 2, 3, 4, 5]);
    assert_eq!(page(5, 100), (6..=12).collect::<Vec<_>>());
    assert_eq!(page(12, 100), Vec::<u64>::new());
    assert_eq!(page(3, 0), Vec::<u64>::new());
    let second = segment_files(dir.path())[1].0;
    journal.truncate_through(second - 1);
    assert_eq!(append_wait(&journal, ev(13)).expect("ack"), 13);
    assert_eq!(page(0, 2), vec![second, second + 1]);
    journal.shutdown();
}

/// A journal from seq 1 whose acks wait in a gate with `stall_limit`, and the batches its
/// `on_commit` saw.
fn gated(dir: &Path, stall_limit: std::time::Duration) -> (Journal<Ev>, Arc<AckGate>, Batches) {
    let ack_gate = Arc::new(AckGate::new(stall_limit));
    let (hook, batches) = collector();
    let options = JournalOptions {
        gate: Some(ack_gate.clone()),
        ..options(dir, 1 << 26)
    };
    let journal = Journal::start(options, 1, hook).expect("start");
    (journal, ack_gate, batches)
}

/// With a gate, a durable record is acknowledged only once the gate releases it; a
/// failed gate answers what it holds, and everything after, with its error.
#[test]
fn a_gate_holds_acks_until_it_releases_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (journal, ack_gate, batches) = gated(dir.path(), std::time::Duration::from_secs(3600));
    let sink = Arc::new(Collect::default());
    let via: Arc<dyn AckSink> = sink.clone();
    let mut first = journal.append(ev(1)).expect("append");
    let second = journal.append_via(ev(2), &via).expect("append");
    // Durable (on_commit saw both), not acknowledged.
    let durable = journal.mark().expect("mark");
    assert_eq!(
        durable.blocking_recv().expect("mark answered").ok(),
        Some(2)
    );
    assert_eq!(seqs(&batches), vec![1, 2]);
    assert!(
        matches!(
            first.try_recv(),
            Err(tokio::sync::oneshot::error::TryRecvError::Empty)
        ),
        "acknowledged before the gate released it"
    );
    assert!(sink.deliveries.lock().expect("lock").is_empty());
    // Released through 1: the first only (if both were one batch, neither yet).
    ack_gate.release_through(1);
    let early = first.try_recv();
    ack_gate.release_through(2);
    let first_ack = match early {
        Ok(acked) => acked,
        Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {
            first.blocking_recv().expect("ack")
        }
        Err(e) => panic!("first ack lost: {e:?}"),
    };
    assert_eq!(first_ack.ok(), Some(1));
    let delivered: Vec<Ack> = sink
        .deliveries
        .lock()
        .expect("lock")
        .drain(..)
        .flatten()
        .collect();
    assert_eq!(delivered.len(), 1);
    delivered.into_iter().for_each(Ack::complete);
    assert_eq!(second.blocking_recv().expect("ack").ok(), Some(2));
    assert_eq!(ack_gate.released(), 2);
    // Replication stops for good: a held ack stays held (its record is durable, its
    // caller keeps the change), a later append is refused and not made durable, and the
    // journal reports itself unhealthy.
    let mut third = journal.append(ev(3)).expect("append");
    assert_eq!(
        journal
            .mark()
            .expect("mark")
            .blocking_recv()
            .expect("mark")
            .ok(),
        Some(3)
    );
    assert!(journal.is_healthy());
    ack_gate.fail("replication stopped".to_owned());
    assert_eq!(ack_gate.failure().as_deref(), Some("replication stopped"));
    assert!(!journal.is_healthy());
    let fourth = journal.append(ev(4)).expect("append");
    assert!(matches!(
        fourth.blocking_recv().expect("answered"),
        Err(JournalError::Fenced { .. })
    ));
    assert!(
        matches!(
            third.try_recv(),
            Err(tokio::sync::oneshot::error::TryRecvError::Empty)
        ),
        "a held ack is never answered after the gate failed"
    );
    assert_eq!(
        seqs(&batches),
        vec![1, 2, 3],
        "the refused record never became durable"
    );
}

/// A gate whose oldest held batch has waited past its stall limit makes the journal
/// unhealthy until the batch is released.
#[test]
fn a_stalled_gate_makes_the_journal_unhealthy_until_it_moves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (journal, ack_gate, _batches) = gated(dir.path(), std::time::Duration::from_millis(1));
    assert!(journal.is_healthy(), "nothing held yet");
    let first = journal.append(ev(1)).expect("append");
    assert_eq!(
        journal
            .mark()
            .expect("mark")
            .blocking_recv()
            .expect("mark")
            .ok(),
        Some(1)
    );
    // Past the limit (1 ms) for certain.
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(ack_gate.stalled());
    assert!(!journal.is_healthy(), "held past the stall limit");
    ack_gate.release_through(1);
    assert_eq!(first.blocking_recv().expect("ack").ok(), Some(1));
    assert!(!ack_gate.stalled());
    assert!(journal.is_healthy(), "replication moved again");
}

#[test]
fn commit_delay_lets_the_previous_batchs_callers_share_a_sync_and_holds_no_lone_caller() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Long enough that the writer is certainly still waiting when the test appends.
    let opts = JournalOptions {
        commit_delay: MAX_COMMIT_DELAY,
        ..options(dir.path(), 1 << 20)
    };
    // The hook hands each batch's seqs over, then holds the writer until released, so
    // the test decides what is queued when the writer looks.
    let (batch_tx, batches) = mpsc::channel::<Vec<u64>>();
    let (release, release_rx) = mpsc::channel::<()>();
    let hook = Box::new(move |batch: Vec<Committed<Ev>>| {
        let _ = batch_tx.send(batch.iter().map(|c| c.seq).collect());
        let _ = release_rx.recv();
    });
    let journal: Journal<Ev> = Journal::start(opts, 1, hook).expect("start");
    let next = || batches.recv().expect("a batch");
    // Waits until the writer has taken everything queued (it is then building its batch).
    let taken = |journal: &Journal<Ev>| {
        while journal.queue_len() > 0 {
            std::thread::yield_now();
        }
    };
    let mut acks = Vec::new();
    // A first record: nothing before it, synced alone.
    acks.push(journal.append(ev(1)).expect("append"));
    assert_eq!(next(), vec![1]);
    // Two queued while the writer is held: one batch (after a batch of one, no waiting).
    acks.push(journal.append(ev(2)).expect("append"));
    acks.push(journal.append(ev(3)).expect("append"));
    release.send(()).expect("release");
    assert_eq!(next(), vec![2, 3]);
    // The previous batch had two callers: the first to come back waits for a second,
    // which arrives only after the writer took the first.
    acks.push(journal.append(ev(4)).expect("append"));
    release.send(()).expect("release");
    taken(&journal);
    acks.push(journal.append(ev(5)).expect("append"));
    assert_eq!(next(), vec![4, 5]);
    // Nobody else comes: synced alone once the delay is over.
    acks.push(journal.append(ev(6)).expect("append"));
    release.send(()).expect("release");
    assert_eq!(next(), vec![6]);
    // After a batch of one the next is synced at once, alone.
    acks.push(journal.append(ev(7)).expect("append"));
    release.send(()).expect("release");
    assert_eq!(next(), vec![7]);
    release.send(()).expect("release");
    let acked: Vec<u64> = acks
        .into_iter()
        .map(|rx| wait(rx).expect("acked"))
        .collect();
    assert_eq!(acked, (1..=7).collect::<Vec<_>>());
    journal.shutdown();
}

#[test]
fn commit_delay_above_its_maximum_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = JournalOptions {
        commit_delay: MAX_COMMIT_DELAY + Duration::from_micros(1),
        ..options(dir.path(), 1 << 20)
    };
    let started = Journal::<Ev>::start(opts, 1, Box::new(|_| {}));
    assert!(matches!(started, Err(JournalError::InvalidOptions { .. })));
}

/// With syncs on, the writer writes zeros ahead of the records while idle, and they are
/// the records' end to every reader: recovery reports no torn tail, a restart appends
/// over them (the file does not grow), and a segment it rolls past loses them.
#[test]
fn zeros_written_ahead_end_the_records_and_are_written_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let segment_max_bytes = 16 * 1024;
    write_sequential(dir.path(), segment_max_bytes, 1..=5);
    let path = segment_files(dir.path())[0].1.clone();
    let end = records_end(&path);
    assert_eq!(
        file_len(&path),
        segment_max_bytes,
        "zeros up to the segment's size"
    );
    let (records, report) = recover_all(dir.path(), 0).expect("recover");
    assert_eq!(records, evs(1..=5));
    assert_eq!(
        (report.torn_tail_truncated_bytes, report.torn_tail_file),
        (0, None)
    );

    write_sequential(dir.path(), segment_max_bytes, 6..=6);
    assert_eq!(file_len(&path), segment_max_bytes, "written over the zeros");
    assert!(records_end(&path) > end);
    let (records, _) = recover_all(dir.path(), 0).expect("recover");
    assert_eq!(records, evs(1..=6));
    assert_eq!(
        read_after::<Ev>(dir.path(), 4, 10).expect("read"),
        evs(5..=6)
    );

    // Enough to roll (about 40 bytes a record): the full segment is cut to its records.
    write_sequential(dir.path(), segment_max_bytes, 7..=600);
    let files = segment_files(dir.path());
    assert!(files.len() > 1);
    for (_, older) in &files[..files.len() - 1] {
        assert_eq!(file_len(older), records_end(older));
    }
    let (records, _) = recover_all(dir.path(), 0).expect("recover");
    assert_eq!(records, evs(1..=600));
}

/// A crash between a roll and the cut of the old segment's zeros leaves them in a
/// segment that is not the last: read past like a clean end. Losing that segment's last
/// record instead is a gap, named, not a silent loss.
#[test]
fn zeros_left_in_an_older_segment_are_its_end_and_a_lost_record_is_a_gap() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_sequential(dir.path(), 1024, 1..=60);
    let files = segment_files(dir.path());
    assert!(files.len() > 1, "{files:?}");
    let older = files[0].1.clone();
    let end = records_end(&older);
    fs::OpenOptions::new()
        .write(true)
        .open(&older)
        .expect("open")
        .set_len(end + 4096)
        .expect("zeros after the records");
    let (records, report) = recover_all(dir.path(), 0).expect("recover");
    assert_eq!(records, evs(1..=60));
    assert_eq!(report.torn_tail_truncated_bytes, 0);
    assert_eq!(
        read_after::<Ev>(dir.path(), 0, 100).expect("read"),
        evs(1..=60)
    );

    // Its last record zeroed: the next segment starts after a missing seq.
    let last_offset = record_offsets(&older).last().expect("a record").1;
    let mut bytes = fs::read(&older).expect("read");
    bytes[last_offset as usize..].fill(0);
    fs::write(&older, &bytes).expect("write");
    assert!(matches!(
        recover_all(dir.path(), 0),
        Err(JournalError::Gap { .. })
    ));
}

/// Writing zeros ahead is only a saving: when it fails (a full disk), the segment's
/// batches extend the file as before, are acked and recover, and the writer does not
/// try again for that segment. Without syncs it writes none.
#[test]
fn a_failing_prefill_leaves_appends_extending_the_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (storage, plan) = FaultyStorage::over_fs();
    plan.fail_every_prefill();
    let (hook, _) = collector();
    let journal =
        Journal::start_with_storage(options(dir.path(), 1 << 20), 1, hook, Box::new(storage))
            .expect("start");
    for id in 1..=5 {
        assert_eq!(append_wait(&journal, ev(id)).expect("ack"), id);
    }
    journal.shutdown();
    assert_eq!(plan.prefills(), 1, "tried once for the segment");
    let path = segment_files(dir.path())[0].1.clone();
    assert_eq!(file_len(&path), records_end(&path));
    let (records, _) = recover_all(dir.path(), 0).expect("recover");
    assert_eq!(records, evs(1..=5));

    let unsynced = tempfile::tempdir().expect("tempdir");
    let (hook, _) = collector();
    let opts = JournalOptions {
        sync: SyncMode::None,
        ..options(unsynced.path(), 1 << 20)
    };
    let journal = Journal::start(opts, 1, hook).expect("start");
    for id in 1..=5 {
        assert_eq!(append_wait(&journal, ev(id)).expect("ack"), id);
    }
    journal.shutdown();
    let path = segment_files(unsynced.path())[0].1.clone();
    assert_eq!(file_len(&path), records_end(&path));
}

/// Zeros go ahead in whole chunks: up to `PREFILL_AHEAD_BYTES` from a new segment on,
/// then one chunk each time the batches have used one, not a sliver (and a sync) after
/// every batch; near the segment's end, the rest of it.
#[test]
fn zeros_ahead_are_topped_up_a_whole_chunk_at_a_time() {
    use super::writer::{prefill_range, PREFILL_AHEAD_BYTES, PREFILL_CHUNK_BYTES};
    let (ahead, chunk, big) = (PREFILL_AHEAD_BYTES, PREFILL_CHUNK_BYTES, 1u64 << 30);
    let h = SEGMENT_HEADER_BYTES;
    // A new segment fills chunk by chunk up to `ahead`.
    assert_eq!(prefill_range(h, h, big), Some((h, h + chunk)));
    assert_eq!(
        prefill_range(h + chunk, h, big),
        Some((h + chunk, h + 2 * chunk))
    );
    assert_eq!(prefill_range(h + ahead, h, big), None);
    // Batches used less than a chunk: nothing yet; a whole chunk: one more.
    assert_eq!(prefill_range(h + ahead, h + chunk - 1, big), None);
    assert_eq!(
        prefill_range(h + ahead, h + chunk, big),
        Some((h + ahead, h + ahead + chunk))
    );
    // A batch that ran past the zeros: they start after it.
    assert_eq!(
        prefill_range(h, h + 10, big),
        Some((h + 10, h + 10 + chunk))
    );
    // The last bit of a segment in one go, then nothing.
    let max = h + chunk + 100;
    assert_eq!(
        prefill_range(h + chunk, h + 50, max),
        Some((h + chunk, max))
    );
    assert_eq!(prefill_range(max, h + 50, max), None);
    assert_eq!(prefill_range(max, max, max), None);

    // And the writer follows it: idle after each record, it writes a chunk each time
    // until the zeros reach `ahead` past the end of the first record.
    let dir = tempfile::tempdir().expect("tempdir");
    let (storage, plan) = FaultyStorage::over_fs();
    let (hook, _) = collector();
    let journal = Journal::start_with_storage(options(dir.path(), big), 1, hook, Box::new(storage))
        .expect("start");
    for id in 1..=ahead / chunk {
        assert_eq!(append_wait(&journal, ev(id)).expect("ack"), id);
        // Nothing else is sent, so the writer is idle once it has answered.
        wait_for_prefills(&plan, id);
    }
    journal.shutdown();
    let path = segment_files(dir.path())[0].1.clone();
    let first_end = record_offsets(&path)[1].1;
    assert_eq!(file_len(&path), first_end + ahead);
}
