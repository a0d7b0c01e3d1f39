//! Snapshots taken from the live rooms ([`crate::snapshot`]): taken while bookings, moves
//! and setup run, they recover exactly what replaying the whole journal recovers; a
//! reservation a room held unacknowledged survives only if the journal has it.

use std::collections::HashMap;
use std::sync::Arc;

use innkeep_engine::jiff::ToSpan;
use innkeep_engine::{
    Action, IdempotencyKey, PaymentReport, ReservationId, RoomNumber, RoomTypeCode, State,
};
use innkeep_persistence::SnapshotStore;

use crate::model_tests::copy_dir;
use crate::snapshot::{Parts, StoredRoom};
use crate::tests::{input, setup, Stopper};
use crate::{recover_state, Engine, EngineConfig};

/// Rooms at the start; setup adds as many again while bookings run.
const ROOMS: usize = 10;
/// Booking clients.
const CLIENTS: usize = 6;
/// Bookings per client.
const BOOKINGS: usize = 40;

fn room(n: usize) -> RoomNumber {
    RoomNumber::parse(&n.to_string()).unwrap()
}

/// The state recovered from `dir`, and from a copy of it without its snapshot (the whole
/// journal replayed), both checked for the engine's invariants.
fn recovered_both_ways(dir: &std::path::Path) -> (State, State) {
    let with = recover_state(dir).expect("recover with the snapshot");
    assert!(
        with.store.stored_seq().unwrap().is_some_and(|seq| seq > 0),
        "a snapshot was written"
    );
    drop(with.store);
    let bare = tempfile::tempdir().unwrap();
    copy_dir(&dir.join("journal"), &bare.path().join("journal"));
    let without = recover_state(bare.path()).expect("recover from the journal alone");
    for state in [&with.state, &without.state] {
        assert_eq!(state.check_invariants(), Vec::<String>::new());
    }
    (with.state, without.state)
}

/// Bookings (with keys, some retried), payments, cancels, moves, new rooms and rates run
/// on both shards while snapshots are taken between them; then the data dir recovers,
/// from the last of those snapshots plus the journal after it, to exactly the state the
/// whole journal replays to, holding every acknowledged change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_taken_under_load_recover_as_the_whole_journal_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.shards = 2;
    // Only the snapshots this test asks for, and a journal that keeps every record, so the
    // replay alone can be compared.
    config.snapshot_every_events = u64::MAX;
    config.resume_window_events = crate::feed::MAX_FEED_WINDOW_EVENTS;
    let engine = Arc::new(Stopper(Engine::start(config).unwrap()));
    let h = setup(&engine.0, ROOMS).await;
    let std_type = RoomTypeCode::parse("STD").unwrap();

    let mut work = Vec::new();
    for client in 0..CLIENTS {
        let (engine, h) = (engine.clone(), h.clone());
        work.push(tokio::spawn(async move {
            let e = &engine.0;
            let mut acknowledged: HashMap<ReservationId, u64> = HashMap::new();
            // First bookings, then changes to them: so that snapshots also fall between
            // a reservation's creation and its later changes.
            let mut made = Vec::new();
            for i in 0..BOOKINGS {
                let mut b = input(e, &h, (i % 15) as i64 + 1);
                b.departure = b.arrival.checked_add(((i % 3) as i64 + 1).days()).unwrap();
                let key = IdempotencyKey::parse(&format!("k-{client}-{i}")).unwrap();
                let Ok(r) = e.book(b.clone(), Some(key.clone())).await else {
                    continue;
                };
                if i % 5 == 0 {
                    let again = e.book(b, Some(key)).await.expect("a retry replays");
                    assert_eq!(again.id, r.id);
                }
                acknowledged.insert(r.id, r.version);
                made.push((i, r.id));
            }
            for (i, id) in made {
                let version = match i % 4 {
                    0 => e.change(id, Action::Cancel, None).await.unwrap().version,
                    1 | 2 => {
                        // A failed attempt first: a payment change, which is not
                        // idempotent (it adds to the payment's history), so replaying it
                        // twice would show.
                        let failed = PaymentReport::Failed {
                            trade_no: format!("F-{id}"),
                        };
                        e.apply_payment(id, failed).await.unwrap();
                        let report = PaymentReport::Succeeded {
                            trade_no: format!("T-{id}"),
                        };
                        let paid = e.apply_payment(id, report).await.unwrap().0.version;
                        let to = room((client + i) % ROOMS + 1);
                        if i % 4 == 1 {
                            paid
                        } else {
                            match e.move_reservation(id, to, None).await {
                                Ok(moved) => moved.version,
                                Err(_) => paid,
                            }
                        }
                    }
                    _ => continue,
                };
                acknowledged.insert(id, version);
            }
            acknowledged
        }));
    }
    let setup_work = {
        let (engine, h, t) = (engine.clone(), h.clone(), std_type.clone());
        tokio::spawn(async move {
            let e = &engine.0;
            for n in 0..ROOMS {
                e.put_room(&h, room(100 + n), t.clone()).await.unwrap();
                let from = e.today(&h).unwrap().checked_add((n as i64).days()).unwrap();
                let to = from.checked_add(3.days()).unwrap();
                e.put_rate(&h, &t, from, to, 12_000 + n as i64)
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    // Snapshots one after the other for as long as the load runs; after some, the data
    // dir is copied as a crash would leave it (sled is idle between the snapshots this
    // test asks for; the journal's tail may be torn).
    let loading = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let snapshots = {
        let (engine, loading) = (engine.clone(), loading.clone());
        tokio::spawn(async move {
            let mut taken = Vec::new();
            let mut crashes = Vec::new();
            while loading.load(std::sync::atomic::Ordering::Acquire) || taken.len() < 3 {
                taken.push(engine.0.snapshot_now().await.expect("snapshot"));
                if taken.len() % 2 == 0 && crashes.len() < 8 {
                    let copy = tempfile::tempdir().unwrap();
                    copy_dir(engine.0.config().data_dir.as_path(), copy.path());
                    crashes.push(copy);
                }
            }
            (taken, crashes)
        })
    };
    let mut acknowledged = HashMap::new();
    for w in work {
        acknowledged.extend(w.await.unwrap());
    }
    setup_work.await.unwrap();
    loading.store(false, std::sync::atomic::Ordering::Release);
    let (taken, crashes) = snapshots.await.unwrap();
    assert!(taken.windows(2).all(|w| w[0] <= w[1]), "{taken:?}");
    assert!(
        acknowledged.len() > CLIENTS * BOOKINGS / 2,
        "most bookings succeed"
    );

    // Crashes in the middle: the same state either way, and the snapshots were taken
    // while rooms were busy (some room cut past the catalog's, or holding a booking not
    // yet acknowledged) — the case this is about.
    let mut fuzzy = 0;
    for copy in &crashes {
        let (with, without) = recovered_both_ways(copy.path());
        assert_eq!(
            with.to_snapshot(),
            without.to_snapshot(),
            "snapshot + replay differs from the replay alone"
        );
        let store = SnapshotStore::open(&copy.path().join("snapshots")).unwrap();
        let (_, parts) = store.load::<Parts>().unwrap().unwrap();
        if parts
            .rooms
            .iter()
            .any(|r| r.cut_seq > parts.setup_seq || !r.pending.is_empty())
        {
            fuzzy += 1;
        }
    }
    assert!(fuzzy > 0, "no snapshot was taken while the rooms were busy");

    // A crash at the end: no final snapshot; sled is idle (the last snapshot is written).
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), copy.path());
    let (with, without) = recovered_both_ways(copy.path());
    assert_eq!(
        with.to_snapshot(),
        without.to_snapshot(),
        "snapshot + replay differs from the replay alone"
    );
    for (id, version) in &acknowledged {
        let r = with
            .reservation(id)
            .expect("an acknowledged booking survives");
        // Later bookings may have moved it to make room (issue #16): one version per move.
        let moves = r.moves.len() as u64;
        assert!(
            *version <= r.version && r.version <= version + moves,
            "{id}: acknowledged version {version}, recovered {} with {moves} moves",
            r.version
        );
    }
    assert_eq!(with.catalog.hotels[&h].rooms.len(), ROOMS * 2);
}

/// A room's part lists a reservation its room had applied before the journal acknowledged
/// it: recovery keeps it when the journal holds its creation, and drops it (with its
/// idempotency key) when it does not, as when the batch failed after the room encoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_reservation_in_a_snapshot_stays_only_if_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.resume_window_events = crate::feed::MAX_FEED_WINDOW_EVENTS;
    let key = IdempotencyKey::parse("lost-key").unwrap();
    let (h, kept, lost) = {
        let engine = Stopper(Engine::start(config).unwrap());
        let h = setup(&engine.0, 2).await;
        let kept = engine.0.book(input(&engine.0, &h, 1), None).await.unwrap();
        let lost = engine.0.book(input(&engine.0, &h, 5), Some(key.clone()));
        (h, kept.id, lost.await.unwrap().id)
    };
    let full = recover_state(dir.path()).unwrap();
    // The two creations are the journal's last two records.
    let last_seq = full.last_seq;
    drop(full.store);
    let full = full.state;
    let rebuilt = |journaled: bool| {
        let target = tempfile::tempdir().unwrap();
        let journal = target.path().join("journal");
        copy_dir(&dir.path().join("journal"), &journal);
        if !journaled {
            // `lost`'s record torn: recovery cuts it, as a batch that never committed.
            let segment = std::fs::read_dir(&journal)
                .unwrap()
                .map(|e| e.unwrap().path())
                .max()
                .unwrap();
            // Its last byte that is not one of the zeros the journal writes ahead of its
            // records, and everything after it, gone.
            let bytes = std::fs::read(&segment).unwrap();
            let last = bytes.iter().rposition(|&b| b != 0).unwrap();
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&segment)
                .unwrap();
            file.set_len(last as u64).unwrap();
        }
        // Both reservations in their rooms, both pending, every part cut after both; the
        // snapshot's seq before both creations.
        let snap = full.to_snapshot();
        let rooms = snap
            .rooms
            .iter()
            .map(|r| StoredRoom {
                cut_seq: last_seq,
                pending: r.ledger.iter().map(|k| k.id()).collect(),
                state: innkeep_persistence::Blob(innkeep_persistence::encode_part(r).unwrap()),
            })
            .collect();
        let parts = Parts {
            catalog: snap.catalog,
            setup_seq: last_seq,
            rooms,
            idempotency: snap.idempotency,
        };
        let store = SnapshotStore::open(&target.path().join("snapshots")).unwrap();
        store.save(last_seq - 2, &parts).unwrap();
        drop(store);
        let got = recover_state(target.path()).unwrap();
        assert_eq!(got.state.check_invariants(), Vec::<String>::new());
        got.state
    };
    let both = rebuilt(true);
    assert_eq!(
        both.to_snapshot(),
        full.to_snapshot(),
        "journaled: both kept"
    );

    let one = rebuilt(false);
    assert!(one.reservation(&kept).is_ok(), "journaled: kept");
    assert!(one.reservation(&lost).is_err(), "never journaled: dropped");
    assert!(
        !one.idempotency.contains_key(&(h, key)),
        "its key points nowhere, so it goes too"
    );
    assert_eq!(one.locator.len(), 1);
}

/// Bytes of every file under `dir`.
fn bytes_under(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                bytes_under(&e.path())
            } else {
                e.metadata().unwrap().len()
            }
        })
        .sum()
}

/// Segments a journal directory holds.
fn segment_count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("journal")).unwrap().count()
}

/// Fifty snapshots taken while bookings run: after each, the snapshot store holds one
/// snapshot (never an old one beside it), and once the load stops the journal keeps only
/// the resume window, so the data dir is one snapshot plus the retained journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_snapshots_under_load_keep_the_data_dir_bounded() {
    const WINDOW: usize = 32;
    const SEGMENT_BYTES: u64 = 16 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.shards = 2;
    config.snapshot_every_events = u64::MAX;
    config.resume_window_events = WINDOW;
    config.journal_segment_max_bytes = SEGMENT_BYTES;
    let engine = Arc::new(Stopper(Engine::start(config).unwrap()));
    let h = setup(&engine.0, ROOMS).await;
    let loading = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut clients = Vec::new();
    for client in 0..4 {
        let (engine, h, loading) = (engine.clone(), h.clone(), loading.clone());
        clients.push(tokio::spawn(async move {
            let e = &engine.0;
            let mut made = 0usize;
            while loading.load(std::sync::atomic::Ordering::Acquire) {
                let b = input(e, &h, ((made + client) % 20) as i64 + 1);
                if let Ok(r) = e.book(b, None).await {
                    e.change(r.id, Action::Cancel, None).await.unwrap();
                    made += 1;
                }
            }
            made
        }));
    }
    let snapshots = dir.path().join("snapshots");
    let mut store_bytes = Vec::new();
    for _ in 0..50 {
        engine.0.snapshot_now().await.expect("snapshot");
        let generations: Vec<_> = std::fs::read_dir(&snapshots)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        assert_eq!(generations.len(), 1, "{generations:?}");
        store_bytes.push(bytes_under(&snapshots));
    }
    loading.store(false, std::sync::atomic::Ordering::Release);
    let mut made = 0;
    for c in clients {
        made += c.await.unwrap();
    }
    assert!(made > 100, "the load ran: {made} bookings");
    // The state grows with every booking, so each store is compared with the newest
    // snapshot's own size: one snapshot, not a pile of them.
    let last = engine.0.snapshot_now().await.expect("snapshot");
    // Truncation runs before the journal's next batch: one more event.
    engine
        .0
        .put_hotel(h.clone(), "Hotel", "Asia/Shanghai", "CNY")
        .await
        .unwrap();
    let newest = bytes_under(&snapshots);
    assert!(
        store_bytes.iter().all(|b| *b <= newest + newest / 2),
        "an old snapshot stayed on disk: {store_bytes:?} vs the newest {newest}"
    );
    let journal = bytes_under(&dir.path().join("journal"));
    // The window's records (a booking or a cancel is well under 2 KiB) and the segments
    // they straddle, plus the active one.
    let retained = WINDOW as u64 * 2048 + 3 * SEGMENT_BYTES;
    assert!(
        journal <= retained,
        "the journal keeps {journal} bytes in {} segments after a snapshot at {last}",
        segment_count(dir.path())
    );
    let total = bytes_under(dir.path());
    assert!(
        total <= 2 * newest + retained,
        "{total} bytes in the data dir"
    );
}

/// The snapshot writer runs below the default CPU priority
/// ([`crate::snapshot::SNAPSHOT_NICE`]), from the engine's start: on a busy machine a
/// snapshot written in the background must not stall the shards answering requests.
/// Linux's per-thread niceness, read from `/proc`; other tests' engines in this process
/// have writers too, and every one must be lowered.
#[tokio::test]
async fn the_snapshot_writer_runs_below_the_default_cpu_priority() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Stopper(Engine::start(EngineConfig::new(dir.path())).unwrap());
    // `comm` is cut to 15 bytes.
    let name = &crate::crash::SNAPSHOT_THREAD[..15];
    let mut writers = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let task = task.unwrap().path();
        // A thread of another test may end between the listing and these reads.
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(task.join("comm")),
            std::fs::read_to_string(task.join("stat")),
        ) else {
            continue;
        };
        if comm.trim_end() == name {
            // Field 19 is the niceness; the fields after `comm` (in parentheses) start at 3.
            let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
            let nice: i32 = after_comm.split(' ').nth(16).unwrap().parse().unwrap();
            writers.push(nice);
        }
    }
    assert!(!writers.is_empty(), "no snapshot writer thread found");
    assert!(
        writers.iter().all(|&n| n == crate::snapshot::SNAPSHOT_NICE),
        "niceness of the writers: {writers:?}"
    );
    drop(engine);
}

/// Snapshots are spaced by `snapshot_every_events`, or by a quarter of the reservations
/// the state holds once that is more, so re-encoding the state costs each event a bounded
/// share however large it grows; a policy that never snapshots by count stays so.
#[test]
fn snapshots_of_a_large_state_are_spaced_by_its_size() {
    let policy = crate::snapshot::SnapshotPolicy {
        every_events: 100_000,
        every: std::time::Duration::from_secs(300),
    };
    assert_eq!(policy.spacing_events(0), 100_000);
    assert_eq!(policy.spacing_events(400_003), 100_000);
    assert_eq!(policy.spacing_events(400_004), 100_001);
    assert_eq!(policy.spacing_events(1_000_000), 250_000);
    assert_eq!(policy.spacing_events(10_000_000), 2_500_000);
    let by_time_only = crate::snapshot::SnapshotPolicy {
        every_events: u64::MAX,
        ..policy
    };
    assert_eq!(by_time_only.spacing_events(10_000_000), u64::MAX);
}
