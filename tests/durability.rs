//! Graceful shutdown, start-up faults in the data dir, and `/readyz` while recovering —
//! all over the real binary and a real data dir.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use tempfile::TempDir;

use crate::harness::{
    booking, client, hotel, message, plus, send, today, try_send, EarlyExit, Server, Started,
    Starting,
};

const TZ: &str = "Asia/Shanghai";

/// Segment header: `INKJ` + u32 LE format version.
const HEADER_BYTES: usize = 8;
/// Record frame header: u32 LE payload length + u64 LE seq + u32 LE CRC32C.
const FRAME_BYTES: usize = 16;

/// Books `n` one-night stays in hotel `id` (which has at least 3 rooms) one after
/// another; returns the 201 bodies.
async fn book_some(c: &reqwest::Client, s: &Server, id: &str, n: usize) -> Vec<Value> {
    let first = plus(today(TZ), 1);
    let mut acked = Vec::new();
    for i in 0..n {
        let arrival = plus(first, (i / 3) as i64);
        let (status, body, _) = send(
            c.post(s.url(&format!("/v1/hotels/{id}/reservations")))
                .json(&booking(arrival, plus(arrival, 1))),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        acked.push(body);
    }
    acked
}

/// Every reservation in `acked` reads back exactly as last acknowledged.
async fn assert_all_there(c: &reqwest::Client, s: &Server, acked: &[Value]) {
    for r in acked {
        let id = r["id"].as_str().expect("id");
        let (status, got, _) = send(c.get(s.url(&format!("/v1/reservations/{id}")))).await;
        assert_eq!(status, 200, "{id}: {got}");
        assert_eq!(&got, r, "{id} changed across the restart");
    }
}

/// A data dir holding hotel `SEED` (3 rooms) and `n` reservations, written by a server
/// that was then stopped with SIGTERM (so a snapshot covers the whole journal).
async fn seeded(n: usize) -> (TempDir, Vec<Value>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start(dir.path(), &[]);
    let c = client();
    hotel(&c, &s, "SEED", TZ, 3).await;
    let acked = book_some(&c, &s, "SEED", n).await;
    stop_cleanly(s);
    (dir, acked)
}

/// SIGTERM; the process must exit 0.
fn stop_cleanly(s: Server) {
    let pid = s.child.id();
    let (status, lines) = s.stop();
    assert!(
        status.success(),
        "SIGTERM → exit 0, but pid {pid} ended with {status}; its log after ready: {lines:#?}"
    );
}

/// The journal's segment files, oldest first.
fn segments(data_dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(data_dir.join("journal"))
        .expect("journal dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    out.sort();
    out
}

/// One record frame found in a segment.
#[derive(Debug, Clone, Copy)]
struct Record {
    /// Byte offset of the frame in the file.
    offset: usize,
    /// Its sequence number.
    seq: u64,
    /// Payload length.
    len: usize,
}

impl Record {
    fn end(self) -> usize {
        self.offset + FRAME_BYTES + self.len
    }
}

/// Parses a clean segment (header, then whole frames back to back, then maybe the zeros
/// the journal writes ahead of its records).
fn records(bytes: &[u8]) -> Vec<Record> {
    assert_eq!(&bytes[..4], b"INKJ", "segment magic");
    let mut out = Vec::new();
    let mut pos = HEADER_BYTES;
    while pos < bytes.len() && bytes[pos..].iter().any(|&b| b != 0) {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let seq = u64::from_le_bytes(bytes[pos + 4..pos + 12].try_into().unwrap());
        let r = Record {
            offset: pos,
            seq,
            len,
        };
        assert!(r.end() <= bytes.len(), "whole frames only: {r:?}");
        out.push(r);
        pos = r.end();
    }
    out
}

/// The only segment of a freshly seeded dir, its bytes up to the end of its records
/// (without the zeros written ahead of them), and its records.
fn only_segment(data_dir: &Path) -> (PathBuf, Vec<u8>, Vec<Record>) {
    let segs = segments(data_dir);
    assert_eq!(segs.len(), 1, "one segment: {segs:?}");
    let mut bytes = std::fs::read(&segs[0]).expect("read segment");
    let recs = records(&bytes);
    bytes.truncate(recs.last().map_or(HEADER_BYTES, |r| r.end()));
    (segs[0].clone(), bytes, recs)
}

/// Asserts the start attempt failed by itself, before "ready", with a non-zero status, and
/// returns its plain stderr (the `innkeep: …` lines).
fn refused(attempt: Result<Server, EarlyExit>) -> String {
    let early = match attempt {
        Ok(s) => panic!(
            "server started although it should have refused: {:#?}",
            s.startup
        ),
        Err(e) => e,
    };
    assert!(!early.timed_out, "exited by itself: {early:#?}");
    assert!(!early.status.success(), "non-zero exit: {early:#?}");
    assert!(
        !early.lines.iter().any(|l| message(l) == "ready"),
        "never ready: {early:#?}"
    );
    let text = early.plain_stderr().join("\n");
    assert!(!text.is_empty(), "a message on stderr: {early:#?}");
    text
}

/// SIGTERM while bookings are in flight: every request either completes (2xx, on disk) or
/// is refused / cut off cleanly; the process writes a final snapshot and exits 0; after a
/// restart everything acknowledged is there (recovered from that snapshot, nothing left to
/// replay) and `/readyz` answers 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    hotel(&c, &s, "TERM", TZ, 4).await;
    let mut acked = book_some(&c, &s, "TERM", 8).await;
    let id0 = acked[0]["id"].as_str().unwrap().to_owned();
    let (status, cancelled, _) =
        send(c.post(s.url(&format!("/v1/reservations/{id0}/cancel")))).await;
    assert_eq!(status, 200, "{cancelled}");
    acked[0] = cancelled;

    // Load that is still running when SIGTERM arrives.
    let started = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for task in 0..4u64 {
        let (c, url, started) = (
            c.clone(),
            s.url("/v1/hotels/TERM/reservations"),
            started.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let first = plus(today(TZ), 10);
            let mut answers = Vec::new();
            for i in 0..200u64 {
                let arrival = plus(first, ((task * 7 + i) % 30) as i64);
                let req = c.post(&url).json(&booking(arrival, plus(arrival, 1)));
                match try_send(req).await {
                    Ok((status, body, _)) => answers.push((status, body)),
                    // The listener is closed: shutdown has begun.
                    Err(_) => break,
                }
                if i == 2 {
                    started.notify_one();
                }
            }
            answers
        }));
    }
    started.notified().await;
    let (status, lines) = tokio::task::spawn_blocking(move || s.stop()).await.unwrap();
    assert!(
        status.success(),
        "SIGTERM → exit 0, got {status}: {lines:#?}"
    );
    let mut during = 0;
    for t in tasks {
        for (status, body) in t.await.unwrap() {
            match status {
                201 => {
                    during += 1;
                    acked.push(body);
                }
                409 => assert_eq!(body["code"], "sold_out", "{body}"),
                503 => assert!(
                    ["shutting_down", "not_ready", "overloaded"]
                        .contains(&body["code"].as_str().unwrap_or("")),
                    "{body}"
                ),
                other => panic!("unexpected {other} during shutdown: {body}"),
            }
        }
    }
    assert!(during >= 1, "bookings ran while the signal arrived");
    let messages: Vec<&str> = lines.iter().map(message).collect();
    let at = |m: &str| {
        messages
            .iter()
            .position(|x| x.starts_with(m))
            .unwrap_or_else(|| panic!("log has {m:?}: {messages:#?}"))
    };
    assert!(at("shutting down") < at("snapshot written"));
    assert!(at("snapshot written") < at("engine stopped"));

    let s = Server::start(dir.path(), &[]);
    let replayed = s
        .startup
        .iter()
        .find(|l| message(l) == "journal replayed")
        .expect("recovery logs what it replayed");
    assert_eq!(
        replayed["fields"]["replayed"], 0,
        "the final snapshot covers everything: {replayed}"
    );
    assert!(replayed["fields"]["snapshot_seq"].as_u64().unwrap() > 0);
    let (status, body, _) = send(c.get(s.url("/readyz"))).await;
    assert_eq!(status, 200, "{body}");
    assert_all_there(&c, &s, &acked).await;
    let (status, hotel, _) = send(c.get(s.url("/v1/hotels/TERM"))).await;
    assert_eq!(status, 200, "{hotel}");
    stop_cleanly(s);
}

/// A torn record at the journal's tail — a few stray bytes, or the first half of a record
/// — is what a crash mid-write leaves: start-up cuts it off with a warning naming the file
/// and offset, and everything acknowledged is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_is_cut_with_a_warning() {
    let (dir, acked) = seeded(6).await;
    let (seg, clean, recs) = only_segment(dir.path());
    let last = *recs.last().expect("records");

    // The first half of a record numbered as the next one.
    let mut half = clean[last.offset..last.end()].to_vec();
    half[4..12].copy_from_slice(&(last.seq + 1).to_le_bytes());
    half.truncate(FRAME_BYTES + last.len / 2);

    for (what, tail) in [("stray bytes", vec![0xAB; 5]), ("half a record", half)] {
        let mut torn = clean.clone();
        torn.extend_from_slice(&tail);
        std::fs::write(&seg, &torn).unwrap();

        let s = match Server::try_start(dir.path(), &[]) {
            Started::Ready(s) => s,
            Started::Exited(lines) => panic!("{what}: start-up failed: {lines:#?}"),
        };
        let warning = s
            .startup
            .iter()
            .find(|l| l["level"] == "WARN" && message(l).contains("torn tail"))
            .unwrap_or_else(|| panic!("{what}: a torn-tail warning: {:#?}", s.startup));
        assert_eq!(
            warning["fields"]["file"].as_str(),
            Some(seg.to_str().unwrap()),
            "{what}: names the file: {warning}"
        );
        assert_eq!(
            warning["fields"]["offset"],
            clean.len(),
            "{what}: names the offset: {warning}"
        );
        assert_eq!(
            std::fs::read(&seg).unwrap(),
            clean,
            "{what}: cut back to the last whole record"
        );
        let c = client();
        assert_all_there(&c, &s, &acked).await;
        stop_cleanly(s);
    }
}

/// A bad record *before* the tail is not a torn write: start-up refuses, naming the
/// segment file and the record's byte offset, and leaves the file as it found it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_record_before_the_tail_refuses_to_start() {
    let (dir, _) = seeded(6).await;
    let (seg, mut bytes, recs) = only_segment(dir.path());
    assert!(recs.len() > 3, "records after the damaged one: {recs:?}");
    let victim = recs[1];
    bytes[victim.offset + FRAME_BYTES + victim.len / 2] ^= 0x5A;
    std::fs::write(&seg, &bytes).unwrap();

    let text = refused(Server::launch(dir.path(), &[]));
    assert!(
        text.contains(seg.to_str().unwrap()),
        "names the segment {}: {text}",
        seg.display()
    );
    assert!(
        text.contains(&format!("byte offset {}", victim.offset)),
        "names the offset {}: {text}",
        victim.offset
    );
    assert_eq!(
        std::fs::read(&seg).unwrap(),
        bytes,
        "a refused start repairs nothing"
    );
}

/// A segment written by an unknown format version is refused, naming the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_segment_version_refuses_to_start() {
    let (dir, _) = seeded(3).await;
    let (seg, mut bytes, _) = only_segment(dir.path());
    bytes[4..8].copy_from_slice(&99u32.to_le_bytes());
    std::fs::write(&seg, &bytes).unwrap();

    let text = refused(Server::launch(dir.path(), &[]));
    assert!(
        text.contains(seg.to_str().unwrap()),
        "names the segment {}: {text}",
        seg.display()
    );
    assert!(text.contains("version 99"), "names the version: {text}");
}

/// A snapshot whose state does not decode is refused with a message about the snapshot —
/// never a silent start from the journal alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_snapshot_refuses_to_start() {
    let (dir, _) = seeded(3).await;
    let snapshots = dir.path().join("snapshots");
    {
        let store = innkeep_persistence::SnapshotStore::open(&snapshots).unwrap();
        let seq = store
            .stored_seq()
            .unwrap()
            .expect("SIGTERM left a snapshot");
        // Valid metadata and CRC around bytes that are not an engine snapshot.
        store.save(seq, &vec![0xFFu8; 64]).unwrap();
    }

    let text = refused(Server::launch(dir.path(), &[]));
    assert!(text.contains("snapshot"), "mentions the snapshot: {text}");
    assert!(
        text.contains(snapshots.to_str().unwrap()),
        "names the snapshot store {}: {text}",
        snapshots.display()
    );
}

/// A data dir that is a regular file stops start-up with a message naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_dir_that_is_a_file_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"hello").unwrap();

    let text = refused(Server::launch(&file, &[]));
    assert!(
        text.contains(file.to_str().unwrap()),
        "names {}: {text}",
        file.display()
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"hello", "left alone");
}

/// While recovery runs, `/healthz` is 200 and `/readyz` and the API answer 503
/// `not_ready`; once recovered, `/readyz` is 200. Recovery is held up deterministically by
/// making the first segment a FIFO that the test fills only after looking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_recovering() {
    let (dir, acked) = seeded(3).await;
    let (seg, bytes, recs) = only_segment(dir.path());
    let next = recs.last().unwrap().seq + 1;
    // An empty successor segment, as the writer would have created after a roll...
    let mut empty = b"INKJ".to_vec();
    empty.extend_from_slice(&innkeep_persistence::journal::SEGMENT_FORMAT_VERSION.to_le_bytes());
    std::fs::write(
        dir.path().join("journal").join(format!("{next:020}.seg")),
        empty,
    )
    .unwrap();
    // ...and the old one behind a FIFO: reading it blocks until the test writes.
    std::fs::remove_file(&seg).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&seg)
        .status()
        .unwrap();
    assert!(made.success());

    let mut starting = Starting::spawn(dir.path(), &[]);
    let base = starting.wait_listening().expect("listening");
    let c = client();
    let (status, body, _) = send(c.get(format!("{base}/healthz"))).await;
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = send(c.get(format!("{base}/readyz"))).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "not_ready");
    let id = acked[0]["id"].as_str().unwrap();
    let (status, body, headers) = send(c.get(format!("{base}/v1/reservations/{id}"))).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "not_ready");
    assert!(headers.contains_key("retry-after"), "{headers:?}");

    // Let recovery read the segment.
    let fifo = seg.clone();
    tokio::task::spawn_blocking(move || std::fs::write(fifo, bytes))
        .await
        .unwrap()
        .unwrap();
    let s = starting
        .wait_ready()
        .expect("ready after the segment arrived");
    let (status, body, _) = send(c.get(s.url("/readyz"))).await;
    assert_eq!(status, 200, "{body}");
    assert_all_there(&c, &s, &acked).await;
    stop_cleanly(s);
}

/// SIGTERM as soon as the server says "ready" is a graceful shutdown too: "ready" means
/// the process handles the signal (drains, snapshots, exits 0), not that the default
/// action may still kill it. Tried a few times because the window is narrow.
#[test]
fn sigterm_right_after_ready_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..10 {
        stop_cleanly(Server::start(dir.path(), &[]));
    }
}

/// An open event stream does not hold up a graceful shutdown: SIGTERM ends it, the body
/// the client is reading completes, and the server exits 0 without hitting its drain
/// timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_open_event_streams() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    hotel(&c, &s, "SSE", "Asia/Shanghai", 1).await;
    let res = c
        .get(s.url("/v1/hotels/SSE/events"))
        .send()
        .await
        .expect("stream opens");
    assert_eq!(res.status(), 200);
    let reading = tokio::spawn(async move { res.text().await });
    let (status, log) = tokio::task::spawn_blocking(move || s.stop()).await.unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        reading.await.unwrap().is_ok(),
        "the stream ended instead of being cut"
    );
    assert!(
        !log.iter().any(|l| message(l).contains("drain timeout")),
        "shutdown waited for the stream: {log:#?}"
    );
}
