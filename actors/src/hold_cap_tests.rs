//! The per-creator hold cap: exact under concurrency, freed by payment, cancellation and
//! expiry, and rebuilt from the recovered state after a restart.

use std::time::Duration;

use innkeep_engine::jiff::ToSpan;
use innkeep_engine::{Action, Guest, HotelId, IdempotencyKey, RoomTypeCode, Status};

use crate::tests_support::{setup, Stopper};
use crate::{BookInput, Engine, EngineConfig, EngineError};

const CAP: usize = 3;

fn config(dir: &std::path::Path) -> EngineConfig {
    EngineConfig {
        max_holds_per_creator: CAP,
        ..EngineConfig::new(dir)
    }
}

fn input(engine: &Engine, h: &HotelId, offset_days: i64, by: Option<&str>) -> BookInput {
    let arrival = engine
        .today(h)
        .unwrap()
        .checked_add(offset_days.days())
        .unwrap();
    BookInput {
        hotel_id: h.clone(),
        room_type: RoomTypeCode::parse("STD").unwrap(),
        arrival,
        departure: arrival.tomorrow().unwrap(),
        guests: 1,
        guest: Guest::parse("A Guest", "+86 138 0000 0000", "a@example.com").unwrap(),
        room: None,
        created_by: by.map(str::to_owned),
        rate_plan: None,
    }
}

/// Waits until `creator` has `want` open holds (a booking takes its slot on a shard, and a
/// room reports an ended hold to its keeper asynchronously, right after the change is
/// acknowledged).
async fn wait_holds(engine: &Engine, creator: &str, want: usize) {
    let mut got = engine.holds_of(creator).await.unwrap();
    for _ in 0..200 {
        if got == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        got = engine.holds_of(creator).await.unwrap();
    }
    assert_eq!(got, want, "open holds of {creator}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cap_is_exact_and_freed_by_pay_cancel_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Stopper(Engine::start(config(dir.path())).unwrap());
    let e = &engine.0;
    let h = setup(e, 20).await;

    // Concurrent bookings by one key: exactly CAP succeed, the rest are refused.
    let attempts = (0..10).map(|i| e.book(input(e, &h, 1 + i, Some("k1")), None));
    let results = futures_util::future::join_all(attempts).await;
    let booked: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(booked.len(), CAP);
    for r in &results {
        if let Err(err) = r {
            assert!(
                matches!(err, EngineError::TooManyHolds { limit: CAP }),
                "{err:?}"
            );
            assert_eq!(err.code(), "too_many_holds");
        }
    }
    for r in &booked {
        assert_eq!(r.created_by.as_deref(), Some("k1"));
    }
    assert_eq!(e.holds_of("k1").await.unwrap(), CAP);
    // Another key and anonymous bookings are not affected.
    e.book(input(e, &h, 1, Some("k2")), None).await.unwrap();
    for i in 0..5 {
        e.book(input(e, &h, 2 + i, None), None).await.unwrap();
    }

    // Cancelling frees a slot.
    e.change(booked[0].id, Action::Cancel, None).await.unwrap();
    wait_holds(e, "k1", CAP - 1).await;
    let again = e.book(input(e, &h, 30, Some("k1")), None).await.unwrap();
    wait_holds(e, "k1", CAP).await;
    // Paying frees a slot.
    let pay = Action::Pay {
        trade_no: "T1".into(),
    };
    e.change(booked[1].id, pay, None).await.unwrap();
    wait_holds(e, "k1", CAP - 1).await;
    // A refused change (already confirmed) frees nothing more.
    assert!(e.change(booked[1].id, Action::Expire, None).await.is_err());
    wait_holds(e, "k1", CAP - 1).await;
    // An early expiry is refused (the hold has not lapsed) and frees nothing.
    assert!(e.change(again.id, Action::Expire, None).await.is_err());
    e.change(again.id, Action::Cancel, None).await.unwrap();
    wait_holds(e, "k1", CAP - 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cap_survives_a_restart_and_holds_expire_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Stopper(Engine::start(config(dir.path())).unwrap());
    let h = setup(&engine.0, 10).await;
    for i in 0..CAP as i64 {
        engine
            .0
            .book(input(&engine.0, &h, 1 + i, Some("k1")), None)
            .await
            .unwrap();
    }
    drop(engine);

    let mut cfg = config(dir.path());
    cfg.hold_seconds = 1;
    let engine = Stopper(Engine::start(cfg).unwrap());
    let e = &engine.0;
    assert_eq!(e.holds_of("k1").await.unwrap(), CAP, "rebuilt from state");
    let err = e.book(input(e, &h, 9, Some("k1")), None).await.unwrap_err();
    assert!(matches!(err, EngineError::TooManyHolds { .. }), "{err:?}");
    // A hold of one second, expired by the supervisor's timer, gives its slot back
    // (the three old ones still have their 15 minutes).
    let short = e.book(input(e, &h, 9, Some("k2")), None).await.unwrap();
    wait_holds(e, "k2", 1).await;
    wait_until_expired(e, short.id).await;
    wait_holds(e, "k2", 0).await;
}

async fn wait_until_expired(e: &Engine, id: innkeep_engine::ReservationId) {
    for _ in 0..300 {
        if e.reservation(id).await.unwrap().status == Status::Expired {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("hold {id} did not expire");
}

/// Retries the booking of `offset`/`by` under `key` and checks that the retry is
/// answered, that the key keeps answering with that reservation, that it is the only one
/// made for its arrival, and that it holds one of the creator's slots.
async fn retry_gets_the_one_reservation(
    e: &Engine,
    h: &HotelId,
    offset_days: i64,
    by: &str,
    key: IdempotencyKey,
) {
    let retry = tokio::time::timeout(
        Duration::from_secs(20),
        e.book(input(e, h, offset_days, Some(by)), Some(key.clone())),
    )
    .await
    .expect("the retry is answered, not left waiting on the abandoned attempt")
    .unwrap();
    assert_eq!(retry.status, Status::PendingPayment);
    let again = e
        .book(input(e, h, offset_days, Some(by)), Some(key))
        .await
        .unwrap();
    assert_eq!(
        again.id, retry.id,
        "the key keeps answering with one reservation"
    );
    let day = e.front_desk(h, Some(retry.stay.arrival())).await.unwrap();
    let ids: Vec<_> = day.arrivals.iter().map(|a| a.id).collect();
    assert_eq!(ids, vec![retry.id], "one reservation was made");
    wait_holds(e, by, 1).await;
}

/// Starts a booking from a tokio runtime of its own, lets it run up to its wait for the
/// answer, then shuts that runtime down, dropping everything that ran on it (an embedding
/// platform stopping its runtime mid-request).
async fn book_on_a_runtime_that_dies(e: &Engine, input: BookInput, key: IdempotencyKey) {
    let doomed = e.clone();
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use std::future::Future;
            let first = doomed.book(input, Some(key));
            let mut first = std::pin::pin!(first);
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            // The first poll spawns the booking's task (on a shard, not on this runtime);
            // the yield lets it get going before this runtime goes.
            assert!(first.as_mut().poll(&mut cx).is_pending());
            tokio::task::yield_now().await;
        });
        drop(rt);
    })
    .await
    .unwrap();
}

/// A booking runs as a task of its own: a caller that gives up right after asking (a
/// dropped HTTP request) neither stops it midway nor leaves its key "in flight" or its
/// creator's hold slot taken. A retry with the same key is answered with the one
/// reservation made under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_whose_caller_gave_up_finishes_and_its_retry_gets_it() {
    use std::future::Future;

    let dir = tempfile::tempdir().unwrap();
    let engine = Stopper(Engine::start(config(dir.path())).unwrap());
    let e = &engine.0;
    let h = setup(e, 20).await;
    let key = IdempotencyKey::parse("gave-up-1").unwrap();
    {
        let first = e.book(input(e, &h, 2, Some("k1")), Some(key.clone()));
        let mut first = std::pin::pin!(first);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        // One poll starts the booking; then the caller is gone.
        assert!(first.as_mut().poll(&mut cx).is_pending());
    }
    retry_gets_the_one_reservation(e, &h, 2, "k1", key).await;
}

/// The caller's runtime dies while the booking runs. The booking runs on a shard, not on
/// that runtime, so it finishes: a retry with the same key is answered (it does not wait
/// forever on a dead attempt) with the one reservation made under that key, and the
/// creator holds exactly one slot. (Were the saga spawned on the caller's runtime, it
/// would die with it and leave its key in flight: this test times out then.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_whose_callers_runtime_died_still_finishes() {
    a_left_booking_finishes(Leaving::RuntimeDies, 3, "runtime-died-1").await;
}

/// The same, on the failure path and deterministically: the journal write is held, the
/// caller's runtime dies while the room waits for the write, then the write fails. The
/// booking, still running on its shard, gives the creator's slot back and clears the key,
/// so a retry with that key books afresh instead of waiting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_booking_whose_callers_runtime_died_gives_its_slot_and_key_back() {
    a_left_failed_booking_gives_back(Leaving::RuntimeDies, 4, "runtime-died-2").await;
}

/// The same for a caller on a shard, as the server's requests are (`Engine::on_a_shard`):
/// one that gives up right after asking (a dropped HTTP request) stops nothing either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_on_a_shard_whose_caller_gave_up_finishes_and_its_retry_gets_it() {
    a_left_booking_finishes(Leaving::GivesUpOnAShard, 5, "gave-up-on-shard-1").await;
}

/// And on the failure path: the caller on the shard gives up while the write is held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_booking_on_a_shard_whose_caller_gave_up_gives_its_slot_and_key_back() {
    a_left_failed_booking_gives_back(Leaving::GivesUpOnAShard, 6, "gave-up-on-shard-2").await;
}

/// How a caller leaves its booking half-way.
#[derive(Debug, Clone, Copy)]
enum Leaving {
    /// Its runtime dies ([`book_on_a_runtime_that_dies`]).
    RuntimeDies,
    /// It is a task on a shard and drops the booking ([`give_up_on_a_shard`]).
    GivesUpOnAShard,
}

/// Books `offset_days` ahead under the key `tag` (by creator `tag`), leaving as `how` says.
async fn leave(e: &Engine, h: &HotelId, how: Leaving, offset_days: i64, tag: &str) {
    let (input, key) = (
        input(e, h, offset_days, Some(tag)),
        IdempotencyKey::parse(tag).unwrap(),
    );
    match how {
        Leaving::RuntimeDies => book_on_a_runtime_that_dies(e, input, key).await,
        Leaving::GivesUpOnAShard => give_up_on_a_shard(e, input, key).await,
    }
}

/// A booking whose caller left as `how` says finishes: a retry with its key gets the one
/// reservation.
async fn a_left_booking_finishes(how: Leaving, offset_days: i64, tag: &str) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Stopper(Engine::start(config(dir.path())).unwrap());
    let e = &engine.0;
    let h = setup(e, 20).await;
    leave(e, &h, how, offset_days, tag).await;
    retry_gets_the_one_reservation(e, &h, offset_days, tag, IdempotencyKey::parse(tag).unwrap())
        .await;
}

/// A booking whose caller left as `how` says while its journal write was held, and whose
/// write then failed, gives its creator's slot back and clears its key.
async fn a_left_failed_booking_gives_back(how: Leaving, offset_days: i64, tag: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (storage, plan) = innkeep_persistence::FaultyStorage::over_fs();
    let engine =
        Stopper(Engine::start_with_storage(config(dir.path()), Box::new(storage)).unwrap());
    let e = &engine.0;
    let h = setup(e, 20).await;
    plan.fail_next_write();
    plan.hold_writes();
    // Released however the test ends: a held write would keep the engine's shutdown
    // (the journal's drain) waiting forever.
    let _release = ReleaseWrites(plan.clone());
    let writes_before = plan.writes();
    leave(e, &h, how, offset_days, tag).await;
    // The booking runs on a shard, not in the caller that left: it takes its creator's
    // slot there, then waits in the held write.
    wait_holds(e, tag, 1).await;
    plan.release_writes();
    wait_holds(e, tag, 0).await;
    assert!(plan.writes() > writes_before, "the held write went through");
    retry_gets_the_one_reservation(e, &h, offset_days, tag, IdempotencyKey::parse(tag).unwrap())
        .await;
}

/// Starts a booking from a task on shard 0, polls it once (it starts and waits for its
/// answer), then drops it, as hyper drops a request whose client went away.
async fn give_up_on_a_shard(e: &Engine, input: BookInput, key: IdempotencyKey) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let caller = e.clone();
    assert!(e.shards().clone().spawn(0, async move {
        use std::future::Future;
        let first = caller.book(input, Some(key));
        let mut first = std::pin::pin!(first);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let pending = first.as_mut().poll(&mut cx).is_pending();
        let _ = tx.send(pending);
    }));
    assert!(
        rx.await.unwrap(),
        "the booking was still waiting when its caller left"
    );
}

/// Lets held journal writes go when dropped.
struct ReleaseWrites(std::sync::Arc<innkeep_persistence::FaultPlan>);

impl Drop for ReleaseWrites {
    fn drop(&mut self) {
        self.0.release_writes();
    }
}
