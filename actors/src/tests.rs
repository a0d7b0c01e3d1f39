//! Engine-level tests: journal faults through the facade, restart, and the invariants.

use innkeep_engine::jiff::{Timestamp, ToSpan};
use innkeep_engine::{Guest, HotelId, RoomNumber, RoomTypeCode};
use innkeep_persistence::{FaultPlan, FaultyStorage};

use crate::{recover_state, BookInput, Engine, EngineConfig, EngineError};

const TZ: &str = "Asia/Shanghai";

pub(crate) struct Stopper(pub(crate) Engine);

impl Drop for Stopper {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

fn start_faulty(dir: &std::path::Path) -> (Stopper, std::sync::Arc<FaultPlan>) {
    let (storage, plan) = FaultyStorage::over_fs();
    let engine = Engine::start_with_storage(EngineConfig::new(dir), Box::new(storage)).unwrap();
    (Stopper(engine), plan)
}

pub(crate) async fn setup(engine: &Engine, rooms: usize) -> HotelId {
    let h = HotelId::parse("H").unwrap();
    engine
        .put_hotel(h.clone(), "Hotel", TZ, "CNY")
        .await
        .unwrap();
    let t = RoomTypeCode::parse("STD").unwrap();
    engine
        .put_room_type(&h, t.clone(), "Standard", 2, 10_000)
        .await
        .unwrap();
    for n in 1..=rooms {
        engine
            .put_room(&h, RoomNumber::parse(&n.to_string()).unwrap(), t.clone())
            .await
            .unwrap();
    }
    h
}

pub(crate) fn input(engine: &Engine, h: &HotelId, offset_days: i64) -> BookInput {
    let today = engine.today(h).unwrap();
    let arrival = today.checked_add(offset_days.days()).unwrap();
    BookInput {
        hotel_id: h.clone(),
        room_type: RoomTypeCode::parse("STD").unwrap(),
        arrival,
        departure: arrival.checked_add(2.days()).unwrap(),
        guests: 1,
        guest: Guest::parse("A Guest", "+86 138 0000 0000", "a@example.com").unwrap(),
        room: None,
        created_by: None,
    }
}

fn free(engine: &Engine, b: &BookInput) -> usize {
    engine
        .availability(&b.hotel_id, b.arrival, b.departure, 1)
        .unwrap()
        .room_types[0]
        .available
}

/// A write that fails (disk full) fails the booking with `Unavailable`, gives the nights
/// back, and the next booking works; after a restart only the acknowledged one exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_fails_the_batch_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, plan) = start_faulty(dir.path());
    let h = setup(&engine.0, 2).await;
    let b = input(&engine.0, &h, 1);
    assert_eq!(free(&engine.0, &b), 2);

    plan.fail_next_write();
    let err = engine.0.book(b.clone(), None).await.unwrap_err();
    assert!(matches!(err, EngineError::Unavailable(_)), "{err:?}");
    assert_eq!(err.code(), "storage_unavailable");
    assert_eq!(free(&engine.0, &b), 2, "the refused booking holds nothing");
    assert!(engine.0.is_ready(), "a failed write is not fatal");

    let ok = engine.0.book(b.clone(), None).await.unwrap();
    assert_eq!(
        free(&engine.0, &b),
        1,
        "only the acknowledged booking holds a room"
    );
    drop(engine);

    let recovered = recover_state(dir.path()).unwrap();
    assert_eq!(recovered.state.locator.len(), 1);
    assert!(recovered.state.reservation(&ok.id).is_ok());
    assert_eq!(recovered.state.check_invariants(), Vec::<String>::new());
}

/// A failed fdatasync poisons the journal: that request and every later write fail, the
/// engine reports not ready, and nothing unacknowledged survives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_fsync_poisons_and_acknowledges_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, plan) = start_faulty(dir.path());
    let h = setup(&engine.0, 2).await;
    let kept = engine.0.book(input(&engine.0, &h, 1), None).await.unwrap();

    plan.fail_next_sync();
    let err = engine
        .0
        .book(input(&engine.0, &h, 4), None)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Unavailable(_)), "{err:?}");
    assert!(!engine.0.is_ready());
    let err = engine
        .0
        .change(kept.id, innkeep_engine::Action::Cancel, None)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Unavailable(_)), "{err:?}");
    let still = engine.0.reservation(kept.id).await.unwrap();
    assert_eq!(still.status, innkeep_engine::Status::PendingPayment);
    drop(engine);

    let recovered = recover_state(dir.path()).unwrap();
    let r = recovered.state.reservation(&kept.id).unwrap();
    assert_eq!(r.status, innkeep_engine::Status::PendingPayment);
    assert_eq!(recovered.state.check_invariants(), Vec::<String>::new());
}

/// Holds whose expiry passed while the engine was down are expired at start-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_lapsed_while_down_expire_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.hold_seconds = 1;
    let engine = Stopper(Engine::start(config.clone()).unwrap());
    let h = setup(&engine.0, 1).await;
    let r = engine.0.book(input(&engine.0, &h, 1), None).await.unwrap();
    drop(engine);
    // Wait until the hold has lapsed by the wall clock; nothing runs meanwhile.
    let lapse = r.hold_expires_at;
    while Timestamp::now() <= lapse {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let engine = Stopper(Engine::start(config).unwrap());
    let mut status = engine.0.reservation(r.id).await.unwrap().status;
    for _ in 0..100 {
        if status == innkeep_engine::Status::Expired {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        status = engine.0.reservation(r.id).await.unwrap().status;
    }
    assert_eq!(status, innkeep_engine::Status::Expired);
}

/// Past the in-flight bound a call fails at once with `Overloaded` and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_in_flight_bound_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Stopper(Engine::start(EngineConfig::new(dir.path())).unwrap());
    let h = setup(&engine.0, 1).await;
    let b = input(&engine.0, &h, 1);
    drop(engine);
    let config = EngineConfig {
        max_in_flight: 0,
        ..EngineConfig::new(dir.path())
    };
    let engine = Stopper(Engine::start(config).unwrap());
    let err = engine.0.book(b.clone(), None).await.unwrap_err();
    assert!(matches!(err, EngineError::Overloaded), "{err:?}");
    assert_eq!(err.code(), "overloaded");
    assert_eq!(free(&engine.0, &b), 1, "nothing was booked");
}
