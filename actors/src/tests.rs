//! Engine-level tests: journal faults through the facade, restart, and the invariants.

use std::collections::HashSet;
use std::sync::Arc;

use innkeep_engine::jiff::{Timestamp, ToSpan};
use innkeep_engine::{
    DomainError, Event, Guest, HotelId, Reservation, ReservationId, RoomNumber, RoomTypeCode,
};
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
        rate_plan: None,
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

/// A write that fails under bookings one room took in one message fails each of them in
/// its place and gives every night back; the same bookings then succeed, each answered
/// with its own stay, all in one room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_fails_each_booking_a_room_took_together() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, plan) = FaultyStorage::over_fs();
    let mut config = EngineConfig::new(dir.path());
    // One shard: one batch, so stays of different nights reach one room in one message.
    config.shards = 1;
    let engine = Stopper(Engine::start_with_storage(config, Box::new(storage)).unwrap());
    let e = &engine.0;
    let h = setup(e, 2).await;
    let stays: Vec<_> = (0..5).map(|k| input(e, &h, 1 + 2 * k)).collect();
    let batch = || stays.iter().map(|s| (s.clone(), None)).collect::<Vec<_>>();

    plan.fail_next_write();
    let failed = e.book_many(batch()).await;
    assert_eq!(failed.len(), stays.len());
    for (k, answer) in failed.iter().enumerate() {
        let err = answer.as_ref().expect_err("the write failed");
        assert_eq!(err.code(), "storage_unavailable", "answer {k}");
    }
    for s in &stays {
        assert_eq!(free(e, s), 2, "a failed booking holds nothing");
    }

    let booked = e.book_many(batch()).await;
    let mut rooms = HashSet::new();
    for (s, answer) in stays.iter().zip(&booked) {
        let r = answer.as_ref().expect("booked");
        assert_eq!(
            r.stay.arrival(),
            s.arrival,
            "each answer is its own booking's"
        );
        assert_eq!(free(e, s), 1);
        rooms.insert(r.room.clone());
    }
    assert_eq!(rooms.len(), 1, "the stays shared a room: {rooms:?}");
    drop(engine);

    let recovered = recover_state(dir.path()).unwrap();
    assert_eq!(recovered.state.locator.len(), stays.len());
    assert_eq!(recovered.state.check_invariants(), Vec::<String>::new());
}

/// A room takes the bookings of a message it can and gives back, whole, the drafts of
/// those it refuses; a draft it gave back then books in another room under its own id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_gives_back_the_drafts_it_refuses() {
    use crate::protocol::{Draft, Reserve, RoomBooking};
    let dir = tempfile::tempdir().unwrap();
    let engine = Stopper(Engine::start(EngineConfig::new(dir.path())).unwrap());
    let e = &engine.0;
    let h = setup(e, 2).await;
    let (directory, rooms, policy) = e.internals();
    let now = e.now();
    let draft = |offset_days| {
        let priced = crate::directory::read(&directory.catalog).price_booking(
            input(e, &h, offset_days),
            now,
            policy.limits,
        );
        let (request, total, terms) = priced.unwrap();
        Box::new(Draft {
            request,
            total,
            id: ReservationId(uuid::Uuid::now_v7()),
            now,
            hold: policy.hold,
            created_by: None,
            terms,
        })
    };
    let booking = |draft| RoomBooking {
        draft,
        idempotency: None,
        span: tracing::Span::none(),
    };
    let reserve = |room: &str, first, more| {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let number = RoomNumber::parse(room).unwrap();
        let msg = Reserve { first, more, reply };
        assert!(rooms.try_send_to(&(&h, &number), msg).is_ok(), "sent");
        answer
    };
    // Two nights each: the second overlaps the first's second night, the third is apart.
    let (first, clash, apart) = (draft(1), draft(2), draft(5));
    let (first_id, clash_id, clash_stay) = (first.id, clash.id, clash.request.stay);
    let answer = reserve("1", booking(first), vec![booking(clash), booking(apart)]);
    let reply = answer.await.unwrap();
    assert_eq!(reply.answers.len(), 3);
    let taken = reply.answers[0].as_ref().expect("the first is taken");
    assert_eq!((taken.id, taken.room.as_str()), (first_id, "1"));
    assert!(
        matches!(
            reply.answers[1],
            Err(EngineError::Domain(DomainError::SoldOut))
        ),
        "{:?}",
        reply.answers[1]
    );
    assert!(reply.answers[2].is_ok(), "{:?}", reply.answers[2]);
    let [(place, back)]: [(usize, Box<Draft>); 1] = reply.refused.try_into().unwrap();
    assert_eq!(place, 1, "the refused booking's place in the message");
    assert_eq!(
        (back.id, back.request.stay),
        (clash_id, clash_stay),
        "whole"
    );

    let reply = reserve("2", booking(back), Vec::new()).await.unwrap();
    assert!(reply.refused.is_empty());
    let booked = reply.answers[0].as_ref().expect("room 2 takes it");
    assert_eq!((booked.id, booked.room.as_str()), (clash_id, "2"));
    assert_eq!(booked.stay, clash_stay);
    assert_eq!(e.reservation(clash_id).await.unwrap().room.as_str(), "2");
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

/// A hold whose expiry could not be journaled (the write failed) stays queued and expires
/// on a later tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_whose_expiry_failed_to_journal_expires_on_a_later_tick() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, plan) = FaultyStorage::over_fs();
    let (clock, time) = crate::Clock::manual(Timestamp::now());
    let mut config = EngineConfig::new(dir.path());
    config.clock = clock;
    config.expiry_tick = std::time::Duration::from_millis(20);
    let engine = Stopper(Engine::start_with_storage(config, Box::new(storage)).unwrap());
    let h = setup(&engine.0, 1).await;
    let r = engine.0.book(input(&engine.0, &h, 1), None).await.unwrap();
    // The next write, the expiry's, fails once the hold has lapsed.
    let failing = plan.writes() + 1;
    plan.fail_write_number(failing);
    time.advance(innkeep_engine::jiff::SignedDuration::from_secs(3600));
    let status = || async { engine.0.reservation(r.id).await.unwrap().status };
    for _ in 0..500 {
        if plan.writes() > failing && status().await == innkeep_engine::Status::Expired {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        plan.writes() > failing,
        "the expiry's first write failed, another followed"
    );
    assert_eq!(status().await, innkeep_engine::Status::Expired);
}

/// More holds lapsed while down than a keeper asks to expire at a time all expire at
/// start, each answer asking for the next: the expiry tick is an hour here, so only the
/// start-up round and its answers can expire them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_lapsed_holds_than_a_keeper_expires_at_a_time_all_expire_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.hold_seconds = 1;
    config.expiry_tick = std::time::Duration::from_secs(3600);
    // All 640 bookings in one call, none refused for load.
    config.max_in_flight = 1024;
    let engine = Stopper(Engine::start(config.clone()).unwrap());
    const ROOMS: usize = 40;
    let h = setup(&engine.0, ROOMS).await;
    // Every room taken for 16 two-night stays: 640 holds, over 256 per shard's keeper
    // whichever way the rooms are spread over the shards.
    let stays: Vec<BookInput> = (0..16).map(|k| input(&engine.0, &h, 1 + 2 * k)).collect();
    let requests = stays
        .iter()
        .flat_map(|stay| std::iter::repeat_n((stay.clone(), None), ROOMS))
        .collect();
    let booked = engine.0.book_many(requests).await;
    let lapse = booked
        .iter()
        .map(|r| r.as_ref().expect("booked").hold_expires_at)
        .max()
        .unwrap();
    assert!(stays.iter().all(|stay| free(&engine.0, stay) == 0));
    drop(engine);
    while Timestamp::now() <= lapse {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let engine = Stopper(Engine::start(config).unwrap());
    let all_free = || stays.iter().all(|stay| free(&engine.0, stay) == ROOMS);
    for _ in 0..600 {
        if all_free() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        all_free(),
        "every lapsed hold expired and gave its nights back"
    );
    for r in booked {
        let id = r.unwrap().id;
        let status = engine.0.reservation(id).await.unwrap().status;
        assert_eq!(status, innkeep_engine::Status::Expired);
    }
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

/// A call's slots are free again by the time its caller hears: with one slot per shard,
/// a caller booking one stay after another (and a `book_many` of one per shard after
/// another) is never refused `Overloaded` by its own previous call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_slots_are_free_again_when_it_hears() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        max_in_flight: 1,
        shards: 2,
        ..EngineConfig::new(dir.path())
    };
    let engine = Stopper(Engine::start(config).unwrap());
    let engine = &engine.0;
    let h = setup(engine, 8).await;
    for i in 0..100 {
        let r = engine
            .book(input(engine, &h, 1 + 2 * (i % 150)), None)
            .await;
        assert!(r.is_ok(), "call {i}: {r:?}");
    }
    for i in 0..100 {
        let stays = [input(engine, &h, 2 * i), input(engine, &h, 1 + 2 * i)];
        let answers = engine
            .book_many(stays.into_iter().map(|s| (s, None)).collect())
            .await;
        assert!(answers.iter().all(Result::is_ok), "call {i}: {answers:?}");
    }
}

/// Every event the feed has published so far, from a subscription opened before them.
fn drain(live: &mut tokio::sync::broadcast::Receiver<crate::feed::FeedEvent>) -> Vec<(u64, Event)> {
    let mut out = Vec::new();
    while let Ok(e) = live.try_recv() {
        out.push((e.seq, (*e.event).clone()));
    }
    out
}

fn backlog(sub: &crate::feed::FeedSubscription) -> Vec<(u64, Event)> {
    sub.backlog
        .iter()
        .map(|e| (e.seq, (*e.event).clone()))
        .collect()
}

/// `Last-Event-ID` resumes across a restart: after stop + start, the events after any id
/// are exactly the ones (seq and content) the feed showed before, followed without a gap by
/// the new ones; an id older than a smaller window is reported, not papered over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_after_an_id_are_the_same_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // Snapshots every few events, so the journal is truncated while the window must stay.
    let config = EngineConfig {
        snapshot_every_events: 4,
        ..EngineConfig::new(dir.path())
    };
    let engine = Stopper(Engine::start(config.clone()).unwrap());
    let mut live = engine.0.events(None).live;
    let h = setup(&engine.0, 3).await;
    let kept = engine.0.book(input(&engine.0, &h, 1), None).await.unwrap();
    let gone = engine.0.book(input(&engine.0, &h, 3), None).await.unwrap();
    engine
        .0
        .change(gone.id, innkeep_engine::Action::Cancel, None)
        .await
        .unwrap();
    engine.0.book(input(&engine.0, &h, 5), None).await.unwrap();
    // Every acknowledged event was published when its batch committed, before its ack.
    engine.0.shutdown();
    let before = drain(&mut live);
    let seqs: Vec<u64> = before.iter().map(|e| e.0).collect();
    let last = *seqs.last().unwrap();
    assert_eq!(
        seqs,
        (1..=last).collect::<Vec<_>>(),
        "every event, in order"
    );
    assert!(
        before.iter().any(|(_, e)| matches!(e,
            Event::ReservationCreated { reservation, .. } if reservation.id == kept.id)),
        "{before:?}"
    );
    drop(engine);

    let engine = Stopper(Engine::start(config.clone()).unwrap());
    for after in [0, 1, last / 2, last - 1, last] {
        let sub = engine.0.events(Some(after));
        assert_eq!(sub.missed_before, None, "after {after}");
        let expected: Vec<_> = before.iter().filter(|e| e.0 > after).cloned().collect();
        assert_eq!(backlog(&sub), expected, "after {after}");
    }
    // New events follow the old ones without a gap, live and on resume.
    let mut resumed = engine.0.events(Some(last - 1));
    engine
        .0
        .change(kept.id, innkeep_engine::Action::Cancel, None)
        .await
        .unwrap();
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), resumed.live.recv())
        .await
        .expect("the new event is published")
        .unwrap();
    assert_eq!(next.seq, last + 1);
    assert!(matches!(*next.event, Event::ReservationChanged { id, .. } if id == kept.id));
    assert_eq!(backlog(&resumed), before[before.len() - 1..].to_vec());
    let sub = engine.0.events(Some(last - 2));
    assert_eq!(
        sub.backlog.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![last - 1, last, last + 1]
    );
    drop(engine);

    // A window of 3: ids inside it resume exactly, an older one is told where it starts.
    let small = EngineConfig {
        resume_window_events: 3,
        ..config
    };
    let engine = Stopper(Engine::start(small).unwrap());
    let sub = engine.0.events(Some(last - 2));
    assert_eq!(sub.missed_before, None);
    assert_eq!(
        sub.backlog.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![last - 1, last, last + 1]
    );
    assert_eq!(backlog(&sub)[..2], before[before.len() - 2..]);
    let sub = engine.0.events(Some(last - 3));
    assert_eq!(sub.missed_before, Some(last - 1));
    // An id this journal never issued cannot be resumed either.
    assert_eq!(
        engine.0.events(Some(last + 2)).missed_before,
        Some(last - 1)
    );
}

/// Snapshots let the journal delete the segments they cover, except those holding the
/// newest `resume_window_events` events, so the window refills exactly after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_keep_the_resume_window_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        // A snapshot after every batch, one record per segment, a window of 5.
        snapshot_every_events: 1,
        journal_segment_max_bytes: innkeep_persistence::journal::MIN_SEGMENT_BYTES,
        resume_window_events: 5,
        ..EngineConfig::new(dir.path())
    };
    let engine = Stopper(Engine::start(config.clone()).unwrap());
    let mut live = engine.0.events(None).live;
    let h = setup(&engine.0, 2).await;
    let mut newest = None;
    for offset in 1..=6 {
        newest = Some(
            engine
                .0
                .book(input(&engine.0, &h, offset), None)
                .await
                .unwrap(),
        );
    }
    let newest = newest.unwrap();
    // Once the last event is published every event is durable; shutdown's final snapshot
    // then covers them all and the journal truncates through it before it stops.
    let mut before = Vec::new();
    loop {
        let e = tokio::time::timeout(std::time::Duration::from_secs(10), live.recv())
            .await
            .expect("published")
            .unwrap();
        let done = matches!(&*e.event,
            Event::ReservationCreated { reservation, .. } if reservation.id == newest.id);
        before.push((e.seq, (*e.event).clone()));
        if done {
            break;
        }
    }
    let last = before.last().unwrap().0;
    assert_eq!(last, 10, "4 setup events and 6 bookings");
    engine.0.shutdown();
    drop(engine);

    assert_eq!(
        segment_firsts(dir.path()),
        (last - 4..=last).collect::<Vec<_>>(),
        "covered segments went, the newest 5 records stayed"
    );

    let engine = Stopper(Engine::start(config).unwrap());
    let sub = engine.0.events(Some(last - 5));
    assert_eq!(sub.missed_before, None);
    assert_eq!(backlog(&sub), before[before.len() - 5..].to_vec());
    assert_eq!(
        engine.0.events(Some(last - 6)).missed_before,
        Some(last - 4)
    );
}

/// An engine on exactly two shards, whatever the machine's cores.
fn two_shards(dir: &std::path::Path) -> Stopper {
    let mut config = EngineConfig::new(dir);
    config.shards = 2;
    Stopper(Engine::start(config).unwrap())
}

/// A booking made on a shard takes a room of that shard while one is free for the stay,
/// and crosses to another shard only when none is: every stay here can go to any room,
/// so which shard's room it got shows which rooms were asked first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_take_rooms_of_their_own_shard_first() {
    let dir = tempfile::tempdir().unwrap();
    let engine = two_shards(dir.path());
    let engine = &engine.0;
    let h = setup(engine, 8).await;
    let on_shard = |n: &RoomNumber| {
        engine.shard_of(&innkeep_engine::RoomKey {
            hotel_id: h.clone(),
            number: n.clone(),
        })
    };
    let per_shard: Vec<usize> = (0..2)
        .map(|s| {
            (1..=8)
                .filter(|n| on_shard(&RoomNumber::parse(&n.to_string()).unwrap()) == Some(s))
                .count()
        })
        .collect();
    // Placement spreads the type over both shards.
    assert_eq!(per_shard, vec![4, 4]);
    let book_on = |shard: usize, offset_days: i64| {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (engine, input) = (engine.clone(), input(engine, &h, offset_days));
        assert!(engine.shards().clone().spawn(shard, async move {
            let _ = tx.send(engine.book(input, None).await);
        }));
        rx
    };
    for shard in 0..2 {
        // Each shard's own stay: its four rooms first, then the other shard's.
        let offset = 1 + 10 * shard as i64;
        for i in 0..8 {
            let r = book_on(shard, offset).await.unwrap().unwrap();
            let expected = if i < 4 { shard } else { 1 - shard };
            assert_eq!(
                on_shard(&r.room),
                Some(expected),
                "booking {i} from shard {shard}"
            );
        }
        assert!(matches!(
            book_on(shard, offset).await.unwrap(),
            Err(EngineError::Domain(innkeep_engine::DomainError::SoldOut))
        ));
    }
}

/// Bookings that reach a shard together run as one batch: ten `book` calls made at once
/// on one shard, for stays of different nights, are packed into one room (each batch
/// starts at the next room of the type, so bookings run one by one would spread), and the
/// two of them under one key make one reservation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_that_reach_a_shard_together_run_as_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let engine = two_shards(dir.path());
    let engine = &engine.0;
    let h = setup(engine, 8).await;
    let key = innkeep_engine::IdempotencyKey::parse("together").unwrap();
    let mut requests: Vec<_> = (0..8)
        .map(|i| (input(engine, &h, 1 + 2 * i), None))
        .collect();
    requests.push((input(engine, &h, 17), Some(key.clone())));
    requests.push((input(engine, &h, 17), Some(key)));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let caller = engine.clone();
    assert!(engine.shards().clone().spawn(0, async move {
        let calls = requests
            .into_iter()
            .map(|(input, key)| caller.book(input, key));
        let _ = tx.send(futures_util::future::join_all(calls).await);
    }));
    let answers: Vec<_> = rx
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.expect("every stay fits"))
        .collect();
    let rooms: HashSet<_> = answers.iter().map(|r| r.room.clone()).collect();
    assert_eq!(rooms.len(), 1, "one batch packs them: {rooms:?}");
    assert_eq!(answers[8].id, answers[9].id, "one key, one reservation");
    let ids: HashSet<_> = answers.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 9);
    for r in &answers {
        let read = engine.reservation(r.id).await.unwrap();
        assert_eq!((read.room.clone(), read.stay), (r.room.clone(), r.stay));
    }
}

/// Callers waiting in a shard's inbox when the engine stops hear back: eight callers
/// outside the shards book one stay after another while shutdown runs, each until it
/// hears `shutting_down`; every call is answered, and every booking acknowledged is there
/// after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_queued_while_the_engine_stops_are_all_answered() {
    let dir = tempfile::tempdir().unwrap();
    let booked: Vec<ReservationId> = {
        let stopper = two_shards(dir.path());
        let engine = stopper.0.clone();
        let h = setup(&engine, 8).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for caller in 0..8 {
            let (engine, h, tx) = (engine.clone(), h.clone(), tx.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    let offset = 1 + (caller + 8 * i) % 300;
                    let answer = engine.book(input(&engine, &h, offset), None).await;
                    let done = matches!(answer, Err(EngineError::ShuttingDown));
                    let _ = tx.send(answer);
                    if done {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut booked = Vec::new();
        let mut stopped = None;
        while let Some(answer) = rx.recv().await {
            match answer {
                Ok(r) => booked.push(r.id),
                Err(EngineError::ShuttingDown | EngineError::Domain(DomainError::SoldOut)) => {}
                Err(e) => panic!("unexpected answer: {e}"),
            }
            if booked.len() == 100 && stopped.is_none() {
                let engine = engine.clone();
                stopped = Some(tokio::task::spawn_blocking(move || engine.shutdown()));
            }
        }
        stopped.expect("100 booked").await.unwrap();
        booked
    };
    let engine = Stopper(Engine::start(EngineConfig::new(dir.path())).unwrap());
    for id in booked {
        engine
            .0
            .reservation(id)
            .await
            .expect("acknowledged, so kept");
    }
}

/// A booking queued for a shard that stopped is answered `shutting_down` (its batch task
/// is dropped unrun, which empties the inbox) instead of waiting for ever, and gives its
/// in-flight slot back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_for_a_stopped_shard_hears_shutting_down() {
    let dir = tempfile::tempdir().unwrap();
    let engine = two_shards(dir.path());
    let engine = &engine.0;
    let h = setup(engine, 8).await;
    engine.shards().stop();
    // Callers on no shard take the shards in turn: both are asked.
    for offset in [1, 3] {
        let answer = engine.book(input(engine, &h, offset), None).await;
        assert!(
            matches!(answer, Err(EngineError::ShuttingDown)),
            "{answer:?}"
        );
    }
    assert_eq!(engine.in_flight(), 0);
}

/// `book_many` answers each request in its place, as `book` would have: bookings on the
/// stays asked for, an error where the request is wrong, and one reservation for two
/// requests under one idempotency key; and the engine holds exactly what it answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn book_many_answers_each_request_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let engine = two_shards(dir.path());
    let engine = &engine.0;
    let h = setup(engine, 8).await;
    let key = innkeep_engine::IdempotencyKey::parse("batch-key").unwrap();
    let mut requests: Vec<_> = (1..=6).map(|d| (input(engine, &h, d), None)).collect();
    let mut wrong = input(engine, &h, 7);
    wrong.room_type = RoomTypeCode::parse("NOPE").unwrap();
    requests.push((wrong, None));
    requests.push((input(engine, &h, 8), Some(key.clone())));
    requests.push((input(engine, &h, 8), Some(key)));
    let asked: Vec<_> = requests.iter().map(|(i, _)| i.arrival).collect();
    let answers = engine.book_many(requests).await;
    assert_eq!(answers.len(), 9);
    for (i, answer) in answers.iter().enumerate() {
        match (i, answer) {
            (6, Err(EngineError::Domain(_))) => {}
            (6, other) => panic!("the wrong room type was answered {other:?}"),
            (_, Ok(r)) => assert_eq!(r.stay.arrival(), asked[i], "answer {i}"),
            (_, Err(e)) => panic!("answer {i}: {e}"),
        }
    }
    let id = |i: usize| answers[i].as_ref().unwrap().id;
    assert_eq!(id(7), id(8), "one reservation per idempotency key");
    let ids: std::collections::HashSet<_> = [0, 1, 2, 3, 4, 5, 7].map(id).into_iter().collect();
    assert_eq!(ids.len(), 7);
    for id in ids {
        assert_eq!(engine.reservation(id).await.unwrap().id, id);
    }
}

/// Every room-night the answers hold is held by one of them only.
fn assert_no_room_night_sold_twice(answers: &[Result<Arc<Reservation>, EngineError>]) {
    let mut sold = std::collections::HashSet::new();
    for r in answers.iter().flatten() {
        for night in r.nights_here() {
            assert!(
                sold.insert((r.room.clone(), night)),
                "room {} sold twice on {night}",
                r.room
            );
        }
    }
}

/// `book_many` places a shard's share of a batch in its rooms packed: stays of different
/// nights share a room (one message per room, not per booking), stays of one night take
/// different rooms, and what no room of the shard can take goes the single booking's way
/// over every shard. More requests for one stay than there are rooms: exactly one per room
/// is booked, the rest are sold out, and no room-night is sold twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn book_many_packs_stays_of_different_nights_into_few_rooms_and_never_oversells() {
    let dir = tempfile::tempdir().unwrap();
    let engine = two_shards(dir.path());
    let engine = &engine.0;
    const ROOMS: usize = 8;
    let h = setup(engine, ROOMS).await;
    // 20 stays of two nights that do not overlap, then 10 more of the first one: its
    // nights are asked for 11 times.
    let mut requests: Vec<_> = (0..20)
        .map(|k| (input(engine, &h, 1 + 2 * k), None))
        .collect();
    requests.extend((0..10).map(|_| (input(engine, &h, 1), None)));
    let answers = engine.book_many(requests).await;
    assert_no_room_night_sold_twice(&answers);
    let first_stay: Vec<_> = [0].into_iter().chain(20..30).map(|i| &answers[i]).collect();
    let booked = first_stay.iter().filter(|a| a.is_ok()).count();
    assert_eq!(booked, ROOMS, "one booking per room for the contended stay");
    for a in first_stay.iter().filter(|a| a.is_err()) {
        assert!(
            matches!(
                a,
                Err(EngineError::Domain(innkeep_engine::DomainError::SoldOut))
            ),
            "{a:?}"
        );
    }
    assert_eq!(free(engine, &input(engine, &h, 1)), 0);
    // The other 19 stays are all booked, on at most two rooms per shard (each shard's
    // share packs into its first free room; a booking spread as `book` spreads them would
    // take a room each).
    let rooms: std::collections::HashSet<_> = answers[1..20]
        .iter()
        .map(|a| a.as_ref().expect("a stay of its own nights").room.clone())
        .collect();
    assert!(
        rooms.len() <= 4,
        "19 stays of different nights took {} rooms",
        rooms.len()
    );
    for a in answers.iter().flatten() {
        assert_eq!(engine.reservation(a.id).await.unwrap().room, a.room);
    }
}

/// Two batches asking for the same nights at once, twice as many as there are rooms: the
/// rooms each batch packed its share into are taken by the other now and then, and a
/// booking that lost its room goes on to another. Exactly one booking per room is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_batches_racing_for_the_same_nights_sell_each_room_once() {
    let dir = tempfile::tempdir().unwrap();
    let engine = two_shards(dir.path());
    let engine = &engine.0;
    const ROOMS: usize = 8;
    let h = setup(engine, ROOMS).await;
    for round in 0..5 {
        let stay = input(engine, &h, 1 + 2 * round);
        let batch = || (0..ROOMS).map(|_| (stay.clone(), None)).collect::<Vec<_>>();
        let (a, b) = tokio::join!(engine.book_many(batch()), engine.book_many(batch()));
        let answers: Vec<_> = a.into_iter().chain(b).collect();
        assert_no_room_night_sold_twice(&answers);
        assert_eq!(
            answers.iter().filter(|a| a.is_ok()).count(),
            ROOMS,
            "round {round}"
        );
        assert!(answers.iter().all(|a| matches!(
            a,
            Ok(_) | Err(EngineError::Domain(innkeep_engine::DomainError::SoldOut))
        )));
        assert_eq!(free(engine, &stay), 0);
    }
}

/// In a batch, a creator's hold cap counts every booking of the batch, and a booking that
/// fails gives its slot back: three slots and one room, three requests for one night (one
/// booked, two sold out, their slots returned) and three for other nights (two booked, the
/// third over the cap).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn book_many_counts_a_creators_holds_and_returns_the_slots_of_failed_bookings() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.max_holds_per_creator = 3;
    let engine = Stopper(Engine::start(config).unwrap());
    let engine = &engine.0;
    let h = setup(engine, 1).await;
    let by_creator = |offset| {
        let mut i = input(engine, &h, offset);
        i.created_by = Some("creator".into());
        (i, None)
    };
    let answers = engine
        .book_many(vec![by_creator(1), by_creator(1), by_creator(1)])
        .await;
    assert_eq!(answers.iter().filter(|a| a.is_ok()).count(), 1);
    let answers = engine
        .book_many(vec![by_creator(5), by_creator(9), by_creator(13)])
        .await;
    let refused = answers
        .iter()
        .filter(|a| matches!(a, Err(EngineError::TooManyHolds { limit: 3 })))
        .count();
    assert_eq!(
        answers.iter().filter(|a| a.is_ok()).count(),
        2,
        "{answers:?}"
    );
    assert_eq!(refused, 1, "{answers:?}");
}

/// A room keeps its reservations compact, and a read rebuilds exactly what the booking
/// answered (the answer itself is the reservation as created, shared with the journal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_rebuilds_exactly_the_reservation_the_booking_answered() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Stopper(Engine::start(EngineConfig::new(dir.path())).unwrap());
    let h = setup(&engine.0, 1).await;
    let mut booking = input(&engine.0, &h, 1);
    booking.created_by = Some("key-1".into());
    let booked = engine.0.book(booking, None).await.unwrap();
    let read = engine.0.reservation(booked.id).await.unwrap();
    assert_eq!(*read, *booked);
    assert_eq!(read.created_by.as_deref(), Some("key-1"));
}

/// The journal's segment files, by first sequence number.
fn segment_firsts(dir: &std::path::Path) -> Vec<u64> {
    let mut firsts: Vec<u64> = std::fs::read_dir(dir.join("journal"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().ok()?;
            name.strip_suffix(".seg")?.parse().ok()
        })
        .collect();
    firsts.sort_unstable();
    firsts
}

/// A snapshot that fails turns the engine not ready (with the reason) and lets the journal
/// delete nothing; once a snapshot succeeds again the engine is ready again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_snapshot_turns_the_engine_not_ready_and_keeps_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        // A snapshot after every two events, one record per segment, a window of one
        // event: a snapshot that succeeds lets the journal drop every segment but the
        // newest.
        snapshot_every_events: 2,
        journal_segment_max_bytes: innkeep_persistence::journal::MIN_SEGMENT_BYTES,
        resume_window_events: 1,
        faults: crate::Faults {
            fail_snapshots: 1,
            ..crate::Faults::default()
        },
        ..EngineConfig::new(dir.path())
    };
    let engine = Stopper(Engine::start(config).unwrap());
    let mut status = engine.0.snapshot_failure();
    assert!(engine.0.is_ready());
    let (h, t) = (
        HotelId::parse("H").unwrap(),
        RoomTypeCode::parse("STD").unwrap(),
    );
    engine
        .0
        .put_hotel(h.clone(), "Hotel", TZ, "CNY")
        .await
        .unwrap();
    engine
        .0
        .put_room_type(&h, t.clone(), "Standard", 2, 10_000)
        .await
        .unwrap();
    // The snapshot of events 1–2 fails.
    let reason = status.wait_for(Option::is_some).await.unwrap().clone();
    assert!(reason.unwrap().contains("injected fault"));
    assert!(!engine.0.is_ready());
    // It deleted nothing: segment 1, which it would have covered, is still there after
    // the writer's next batch (a truncation is done before it).
    let room = |n: &str| RoomNumber::parse(n).unwrap();
    engine.0.put_room(&h, room("1"), t.clone()).await.unwrap();
    assert_eq!(segment_firsts(dir.path()), vec![1, 2, 3]);
    engine.0.put_room(&h, room("2"), t.clone()).await.unwrap();
    // The snapshot of events 3–4 succeeds: ready again.
    status.wait_for(Option::is_none).await.unwrap();
    assert!(engine.0.is_ready());
    engine.0.shutdown();
    drop(engine);
    // Only after the snapshot that succeeded did the covered segments go.
    assert_eq!(segment_firsts(dir.path()), vec![4]);
}

/// One data dir, one engine: a second engine (or `recover_state`, which may cut a torn
/// tail) is refused with a clear error while the first runs, and starts once it stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_engine_on_the_same_data_dir_is_refused_until_the_first_stops() {
    let dir = tempfile::tempdir().unwrap();
    let first = Engine::start(EngineConfig::new(dir.path())).unwrap();
    let h = setup(&first, 1).await;
    let booked = first.book(input(&first, &h, 1), None).await.unwrap();
    let refused = Engine::start(EngineConfig::new(dir.path()));
    match refused {
        Err(crate::StartError::DataDirInUse { path }) => assert_eq!(path, dir.path()),
        other => panic!(
            "a second engine on a data dir in use: {:?}",
            other.map(|_| ())
        ),
    }
    assert!(matches!(
        recover_state(dir.path()),
        Err(crate::StartError::DataDirInUse { .. })
    ));
    // The first is untouched by the attempts.
    assert_eq!(first.reservation(booked.id).await.unwrap().id, booked.id);
    first.shutdown();
    drop(first);
    let again = Stopper(Engine::start(EngineConfig::new(dir.path())).unwrap());
    assert_eq!(again.0.reservation(booked.id).await.unwrap().id, booked.id);
}

/// For readers behind the in-memory window (webhooks): a retention floor keeps the
/// journal's records through snapshots, `journal_events_after` reads them back as the
/// feed published them, and once the floor moves the next truncation lets them go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retention_floor_keeps_journal_records_for_readers_behind() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        // One event in memory, one record per segment: everything older is on disk only,
        // and a snapshot could delete it segment by segment.
        resume_window_events: 1,
        journal_segment_max_bytes: innkeep_persistence::journal::MIN_SEGMENT_BYTES,
        journal_retain_from: 1,
        ..EngineConfig::new(dir.path())
    };
    let engine = Stopper(Engine::start(config).unwrap());
    let mut live = engine.0.events(None).live;
    let h = setup(&engine.0, 2).await;
    for day in 1..=3 {
        engine
            .0
            .book(input(&engine.0, &h, day), None)
            .await
            .unwrap();
    }
    let published = drain(&mut live);
    let last = published.last().map(|(seq, _)| *seq).unwrap();
    assert!(engine.0.events_page(0, 10).missed_before.is_some());
    engine.0.snapshot_now().await.unwrap();
    // Truncation runs before the writer's next batch.
    engine.0.book(input(&engine.0, &h, 4), None).await.unwrap();
    let read: Vec<(u64, Event)> = engine
        .0
        .journal_events_after(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, (*e.event).clone()))
        .collect();
    assert_eq!(
        read[..published.len()],
        published[..],
        "kept and read back as published"
    );
    assert_eq!(read.len() as u64, last + 1);
    // Paged.
    let page = engine.0.journal_events_after(2, 2).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4]);

    // Two readers: the journal keeps what the one furthest behind needs.
    engine.0.retain_journal_from("test", last);
    engine.0.retain_journal_from("behind", 2);
    engine.0.snapshot_now().await.unwrap();
    engine.0.book(input(&engine.0, &h, 5), None).await.unwrap();
    let first = engine.0.journal_events_after(0, 1).await.unwrap()[0].seq;
    assert!(
        first <= 2,
        "the reader behind still finds seq 2 (first kept: {first})"
    );
    // It caught up (needs nothing): now the other reader's floor decides.
    engine.0.retain_journal_from("behind", 0);
    engine.0.snapshot_now().await.unwrap();
    engine.0.book(input(&engine.0, &h, 6), None).await.unwrap();
    let first = engine.0.journal_events_after(0, 1).await.unwrap()[0].seq;
    assert_eq!(
        first, last,
        "records before the floor went with the snapshot"
    );
}

/// One night in room `elsewhere`'s type, placed by the engine in the other room: the room
/// `elsewhere` is out of order that night while it books.
async fn book_one_night_beside(
    engine: &Engine,
    h: &HotelId,
    elsewhere: &str,
    offset_days: i64,
) -> innkeep_engine::Reservation {
    let number = RoomNumber::parse(elsewhere).unwrap();
    let mut b = input(engine, h, offset_days);
    b.departure = b.arrival.checked_add(1.days()).unwrap();
    engine
        .set_out_of_order(h, &number, b.arrival, b.departure, "paint")
        .await
        .unwrap();
    let r = engine.book(b.clone(), None).await.unwrap();
    assert_ne!(r.room, number);
    engine
        .clear_out_of_order(h, &number, b.arrival)
        .await
        .unwrap();
    Arc::unwrap_or_clone(r)
}

/// A booking that needs a reservation moved is one journal write: when it fails, the moved
/// reservation stays where it was, the stay's nights stay free, and after a restart
/// neither half exists; the next attempt books.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rearrangement_whose_write_fails_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, plan) = start_faulty(dir.path());
    let h = setup(&engine.0, 2).await;
    let first = book_one_night_beside(&engine.0, &h, "2", 1).await;
    let second = book_one_night_beside(&engine.0, &h, "1", 2).await;
    let across = input(&engine.0, &h, 1); // two nights over both
    assert_eq!(free(&engine.0, &across), 1, "a free room every night");

    plan.fail_next_write();
    let err = engine.0.book(across.clone(), None).await.unwrap_err();
    assert!(matches!(err, EngineError::Unavailable(_)), "{err:?}");
    for r in [&first, &second] {
        let now = engine.0.reservation(r.id).await.unwrap();
        assert_eq!((&now.room, now.version), (&r.room, 1), "{now:?}");
    }
    assert_eq!(free(&engine.0, &across), 1);

    let booked = engine.0.book(across.clone(), None).await.unwrap();
    assert_eq!(free(&engine.0, &across), 0);
    drop(engine);

    let recovered = recover_state(dir.path()).unwrap();
    assert_eq!(recovered.state.check_invariants(), Vec::<String>::new());
    assert_eq!(
        recovered.state.locator.len(),
        3,
        "the failed attempt left nothing"
    );
    let rooms: Vec<RoomNumber> = [first.id, second.id]
        .iter()
        .map(|id| recovered.state.reservation(id).unwrap().room)
        .collect();
    assert_eq!(rooms[0], rooms[1], "one of them moved beside the other");
    assert_ne!(
        recovered.state.reservation(&booked.id).unwrap().room,
        rooms[0]
    );
}

/// Rooms park and wake while bookings, cancellations and snapshots race with sweeps that
/// ask every idle room to park: no night is sold twice, every acknowledged booking is
/// found (before and after a restart, whose final snapshot takes parked rooms' parts), and
/// rooms did park meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_park_and_wake_under_concurrent_bookings() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Stopper(Engine::start(EngineConfig::new(dir.path())).unwrap());
    let h = setup(&engine.0, 3).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fewest_awake = Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX));
    let sweeper = {
        let (engine, stop, fewest) = (engine.0.clone(), stop.clone(), fewest_awake.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                engine.sweep_idle_rooms();
                fewest.fetch_min(engine.rooms_awake(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_micros(200)).await;
            }
        })
    };
    let mut kept = Vec::new();
    for wave in 0..40i64 {
        let tasks: Vec<_> = (0..6)
            .map(|k| {
                let engine = engine.0.clone();
                let b = input(&engine, &h, 1 + (wave * 6 + k) % 9);
                tokio::spawn(async move { engine.book(b, None).await })
            })
            .collect();
        for t in tasks {
            match t.await.unwrap() {
                Ok(r) => kept.push(r),
                Err(EngineError::Domain(innkeep_engine::DomainError::SoldOut)) => {}
                Err(e) => panic!("booking failed: {e:?}"),
            }
        }
        if wave % 4 == 0 {
            if let Some(r) = kept.pop() {
                engine
                    .0
                    .change(r.id, innkeep_engine::Action::Cancel, None)
                    .await
                    .unwrap();
            }
        }
        if wave % 10 == 0 {
            engine.0.snapshot_now().await.unwrap();
        }
        // Idle for a moment, so the sweeps find the rooms untouched.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sweeper.await.unwrap();
    assert!(
        fewest_awake.load(std::sync::atomic::Ordering::Relaxed) < 3,
        "no room ever parked"
    );
    let check = |kept: &[Arc<Reservation>], found: Vec<Reservation>| {
        let mut nights = std::collections::HashSet::new();
        for (k, r) in kept.iter().zip(found) {
            // Its room may have changed: a booking may move others to make room.
            assert_eq!((r.id, r.stay), (k.id, k.stay));
            for night in r.nights_here() {
                assert!(nights.insert((r.room.clone(), night)), "{night} sold twice");
            }
        }
    };
    let mut found = Vec::new();
    for r in &kept {
        found.push(Reservation::clone(
            &*engine.0.reservation(r.id).await.unwrap(),
        ));
    }
    check(&kept, found);
    drop(engine);

    let engine = Stopper(Engine::start(EngineConfig::new(dir.path())).unwrap());
    let mut found = Vec::new();
    for r in &kept {
        found.push(Reservation::clone(
            &*engine.0.reservation(r.id).await.unwrap(),
        ));
    }
    check(&kept, found);
}

/// A parked room's mailbox has its full capacity from its first message on: a burst of
/// bookings (more than actix's default mailbox of 16) that wakes it is all taken, even
/// when all of it is sent on the room's own shard before its actor has started there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_that_wakes_a_parked_room_is_not_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Stopper(Engine::start(EngineConfig::new(dir.path())).unwrap());
    let h = setup(&engine.0, 1).await;
    // A new room starts parked (and stays so unless the night audit's first run for the
    // new hotel woke it: then it parks again).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while engine.0.rooms_awake() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the room never parked"
        );
        engine.0.sweep_idle_rooms();
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let room = RoomNumber::parse("1").unwrap();
    let shard = engine
        .0
        .shard_of(&innkeep_engine::RoomKey {
            hotel_id: h.clone(),
            number: room.clone(),
        })
        .unwrap();
    let inputs: Vec<BookInput> = (0..64i64)
        .map(|k| BookInput {
            room: Some(room.clone()),
            ..input(&engine.0, &h, 1 + 2 * k)
        })
        .collect();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let on_shard = engine.0.clone();
    // One task polls every booking once before the shard runs anything else (the room's
    // start included).
    engine.0.shards().spawn(shard, async move {
        let booked =
            futures_util::future::join_all(inputs.into_iter().map(|b| on_shard.book(b, None)))
                .await;
        let _ = tx.send(booked);
    });
    for booked in rx.await.unwrap() {
        booked.unwrap();
    }
    assert_eq!(engine.0.rooms_awake(), 1);
}

/// The engine's own sweeps park idle rooms every `room_idle` (the night audit's first
/// run for the new hotel wakes every room of it too; they park all the same); a parked
/// room's reservation reads as it was, and its next booking wakes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_rooms_park_on_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        room_idle: crate::config::MIN_ROOM_IDLE,
        ..EngineConfig::new(dir.path())
    };
    let engine = Stopper(Engine::start(config).unwrap());
    let h = setup(&engine.0, 2).await;
    let kept = engine.0.book(input(&engine.0, &h, 1), None).await.unwrap();
    assert!(engine.0.rooms_awake() >= 1);
    // Two sweeps (one finds it reached, the next parks it): between one and two periods.
    let deadline = std::time::Instant::now() + 10 * crate::config::MIN_ROOM_IDLE;
    while engine.0.rooms_awake() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the rooms never parked"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let read = engine.0.reservation(kept.id).await.unwrap();
    assert_eq!(Reservation::clone(&read), Reservation::clone(&kept));
    engine.0.book(input(&engine.0, &h, 1), None).await.unwrap();
    assert!(engine.0.rooms_awake() >= 1);
}

/// A retry of a booking finds the reservation its key made while staff move it from
/// room to room: a replay that asked the room it just left follows it to the new one
/// rather than answering `not_found` for a reservation that exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_finds_its_reservation_while_it_moves() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.shards = 2;
    let engine = Arc::new(Stopper(Engine::start(config).unwrap()));
    let e = &engine.0;
    let h = setup(e, 2).await;
    let b = input(e, &h, 3);
    let key = innkeep_engine::IdempotencyKey::parse("moving").unwrap();
    let made = e.book(b.clone(), Some(key.clone())).await.unwrap().id;
    let paid = innkeep_engine::PaymentReport::Succeeded {
        trade_no: "T-1".into(),
    };
    e.apply_payment(made, paid).await.unwrap();

    const MOVES: usize = 1_000;
    let mover = {
        let engine = engine.clone();
        tokio::spawn(async move {
            for i in 0..MOVES {
                let to = RoomNumber::parse(&(i % 2 + 1).to_string()).unwrap();
                engine.0.move_reservation(made, to, None).await.unwrap();
            }
        })
    };
    let mut replays = 0;
    while !mover.is_finished() {
        match e.book(b.clone(), Some(key.clone())).await {
            Ok(again) => assert_eq!(again.id, made),
            Err(err) => panic!("replay {replays}: {err:?}"),
        }
        replays += 1;
    }
    mover.await.unwrap();
    assert!(replays > 0);
}
