//! Front-desk rules through the facade: room moves, out-of-order ranges and the night
//! audit, each checked again after a restart.

use innkeep_engine::jiff::{SignedDuration, Timestamp, ToSpan};
use innkeep_engine::{
    Action, DomainError, NightConflict, PaymentReport, ReservationId, RoomNumber, Status,
};
use innkeep_persistence::FaultyStorage;

use crate::tests_support::{input, setup, Stopper};
use crate::{recover_state, Clock, Engine, EngineConfig, EngineError};

fn room(n: &str) -> RoomNumber {
    RoomNumber::parse(n).unwrap()
}

async fn confirm(engine: &Engine, id: ReservationId) {
    let (r, _) = engine
        .apply_payment(
            id,
            PaymentReport::Succeeded {
                trade_no: format!("T-{id}"),
            },
        )
        .await
        .unwrap();
    assert_eq!(r.status, Status::Confirmed);
}

fn free_rooms(engine: &Engine, b: &crate::BookInput) -> usize {
    engine
        .availability(&b.hotel_id, b.arrival, b.departure, 1)
        .unwrap()
        .room_types[0]
        .available
}

fn assert_recovered_clean(dir: &std::path::Path) -> innkeep_engine::State {
    let recovered = recover_state(dir).unwrap();
    assert_eq!(recovered.state.check_invariants(), Vec::<String>::new());
    recovered.state
}

/// A move takes the new room's nights and gives back the old room's in one step; a
/// checked-in guest keeps the night already slept where it was slept and leaves the old
/// room vacant and dirty; a move into sold nights is refused with the conflict named and
/// changes nothing; a move to the room it is in changes nothing; after a restart the
/// reservation is wholly in its new room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_moves_are_atomic_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Stopper(Engine::start(EngineConfig::new(dir.path())).unwrap());
    let e = &engine.0;
    let h = setup(e, 4).await;

    // Room 1: a confirmed stay tomorrow; room 2: another one on the same nights.
    let mut b = input(e, &h, 1);
    b.room = Some(room("1"));
    let a = e.book(b.clone(), None).await.unwrap();
    confirm(e, a.id).await;
    b.room = Some(room("2"));
    let other = e.book(b.clone(), None).await.unwrap();
    confirm(e, other.id).await;
    assert_eq!(free_rooms(e, &b), 2);

    // Into sold nights: refused, the conflict listed, nothing changed.
    let err = e.move_reservation(a.id, room("2"), None).await.unwrap_err();
    match &err {
        EngineError::Domain(DomainError::NightsSold(conflicts)) => {
            assert!(
                matches!(conflicts.as_slice(), [NightConflict::Reservation { id, .. }] if *id == other.id),
                "{conflicts:?}"
            );
        }
        other => panic!("expected nights_sold, got {other:?}"),
    }
    assert_eq!(e.reservation(a.id).await.unwrap().room, room("1"));

    // A stale If-Match is refused before anything moves.
    let err = e
        .move_reservation(a.id, room("3"), Some(99))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "version_mismatch");

    // Into a free room: done, version +1, the old nights free again.
    let version = e.reservation(a.id).await.unwrap().version;
    let moved = e
        .move_reservation(a.id, room("3"), Some(version))
        .await
        .unwrap();
    assert_eq!(moved.room, room("3"));
    assert_eq!(moved.version, version + 1);
    assert_eq!(moved.moves.len(), 1);
    assert_eq!(moved.moves[0].from_room, room("1"));
    assert_eq!(free_rooms(e, &b), 2, "room 1 freed, room 3 taken");
    let mut again = b.clone();
    again.room = Some(room("1"));
    let c = e.book(again.clone(), None).await.unwrap();
    assert_eq!(
        c.room,
        room("1"),
        "the old room's nights are bookable again"
    );
    again.room = Some(room("3"));
    assert_eq!(
        e.book(again, None).await.unwrap_err().code(),
        "sold_out",
        "the new room's nights are taken"
    );
    // Moving to where it already is (a retried request) changes nothing.
    let same = e.move_reservation(a.id, room("3"), None).await.unwrap();
    assert_eq!(same.version, moved.version);
    let a_version = moved.version;
    // Changes now go to the new room.
    let cancelled = e.change(other.id, Action::Cancel, None).await.unwrap();
    assert_eq!(cancelled.status, Status::Cancelled);

    // A guest already in: arrives today, checks in, moves on the first night.
    let mut today = input(e, &h, 0);
    today.room = Some(room("4"));
    let g = e.book(today.clone(), None).await.unwrap();
    confirm(e, g.id).await;
    e.change(g.id, Action::CheckIn, None).await.unwrap();
    // Room 2 is clean and vacant (its stay was cancelled), tonight free.
    let moved = e.move_reservation(g.id, room("2"), None).await.unwrap();
    assert_eq!(moved.status, Status::CheckedIn);
    assert_eq!(moved.moves[0].first_night, today.arrival);
    let rooms = e.rooms(&h).await.unwrap();
    let view = |n: &str| rooms.iter().find(|r| r.number.as_str() == n).unwrap();
    assert_eq!(view("4").occupancy.as_str(), "vacant");
    assert_eq!(view("4").housekeeping.as_str(), "dirty");
    assert_eq!(view("2").occupancy.as_str(), "occupied");
    assert_eq!(view("2").reservation, Some(g.id));
    let checked_out = e.change(g.id, Action::CheckOut, None).await.unwrap();
    assert_eq!(checked_out.status, Status::CheckedOut);
    assert_eq!(checked_out.room, room("2"));
    drop(engine);

    let state = assert_recovered_clean(dir.path());
    let r = state.reservation(&a.id).unwrap();
    assert_eq!((r.room.as_str(), r.version), ("3", a_version));
    assert_eq!(state.locator[&a.id].number, room("3"));
    assert_eq!(state.reservation(&g.id).unwrap().room, room("2"));
}

/// Two reservations racing to move into the same room for the same nights: exactly one
/// gets it, the other is refused and stays where it was; no night is sold twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_moves_into_one_room_never_double_sell() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Stopper(Engine::start(EngineConfig::new(dir.path())).unwrap());
    let e = &engine.0;
    let h = setup(e, 9).await;
    let mut ids = Vec::new();
    for n in 1..=8 {
        let mut b = input(e, &h, 2);
        b.room = Some(room(&n.to_string()));
        let r = e.book(b, None).await.unwrap();
        confirm(e, r.id).await;
        ids.push(r.id);
    }
    let moves = ids.iter().map(|id| {
        let e = e.clone();
        let id = *id;
        async move { e.move_reservation(id, room("9"), None).await }
    });
    let results = futures_util::future::join_all(moves).await;
    let won: Vec<_> = results.iter().filter(|r| r.is_ok()).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(r.code(), "nights_sold" | "move_in_progress"),
            "{r:?}"
        );
    }
    drop(engine);
    let state = assert_recovered_clean(dir.path());
    let in_nine = ids
        .iter()
        .filter(|id| state.reservation(id).unwrap().room == room("9"))
        .count();
    assert_eq!(in_nine, 1);
}

/// A move whose journal write fails changes nothing and leaves the reservation unlocked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_the_journal_refuses_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, plan) = FaultyStorage::over_fs();
    let engine = Stopper(
        Engine::start_with_storage(EngineConfig::new(dir.path()), Box::new(storage)).unwrap(),
    );
    let e = &engine.0;
    let h = setup(e, 2).await;
    let mut b = input(e, &h, 1);
    b.room = Some(room("1"));
    let r = e.book(b.clone(), None).await.unwrap();
    confirm(e, r.id).await;
    plan.fail_next_write();
    let err = e.move_reservation(r.id, room("2"), None).await.unwrap_err();
    assert_eq!(err.code(), "storage_unavailable");
    assert_eq!(e.reservation(r.id).await.unwrap().room, room("1"));
    assert_eq!(free_rooms(e, &b), 1, "room 2 holds nothing");
    let moved = e.move_reservation(r.id, room("2"), None).await.unwrap();
    assert_eq!(moved.room, room("2"), "the reservation was unlocked");
    drop(engine);
    let state = assert_recovered_clean(dir.path());
    assert_eq!(state.reservation(&r.id).unwrap().room, room("2"));
}

/// An out-of-order range is refused while any of its nights is sold, naming every
/// conflicting reservation; on free nights it blocks booking that room (the others still
/// sell) until it is lifted; it survives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_ranges_block_booking_and_list_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig::new(dir.path());
    let engine = Stopper(Engine::start(config.clone()).unwrap());
    let e = &engine.0;
    let h = setup(e, 2).await;
    let today = e.today(&h).unwrap();
    let day = |n: i64| today.checked_add(n.days()).unwrap();

    let mut b = input(e, &h, 1); // nights +1, +2
    b.room = Some(room("1"));
    let first = e.book(b.clone(), None).await.unwrap();
    let mut later = input(e, &h, 5); // nights +5, +6
    later.room = Some(room("1"));
    let second = e.book(later, None).await.unwrap();

    let err = e
        .set_out_of_order(&h, &room("1"), day(0), day(10), "boiler")
        .await
        .unwrap_err();
    let EngineError::Domain(DomainError::NightsSold(conflicts)) = &err else {
        panic!("expected nights_sold, got {err:?}");
    };
    let listed: Vec<ReservationId> = conflicts
        .iter()
        .filter_map(|c| match c {
            NightConflict::Reservation { id, .. } => Some(*id),
            NightConflict::OutOfOrder { .. } => None,
        })
        .collect();
    assert_eq!(listed, vec![first.id, second.id]);
    assert!(e.rooms(&h).await.unwrap()[0].out_of_order.is_empty());

    // Nights +3, +4 are free in room 1.
    let view = e
        .set_out_of_order(&h, &room("1"), day(3), day(5), "boiler")
        .await
        .unwrap();
    assert_eq!(view.out_of_order.len(), 1);
    // Setting it again (a retry) changes nothing.
    e.set_out_of_order(&h, &room("1"), day(3), day(5), "boiler")
        .await
        .unwrap();
    // Overlapping another range is refused.
    let err = e
        .set_out_of_order(&h, &room("1"), day(4), day(5), "paint")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "nights_sold");
    // In the past: refused.
    let err = e
        .set_out_of_order(&h, &room("1"), day(-1), day(1), "x")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_request");

    let mut blocked = input(e, &h, 3);
    blocked.room = Some(room("1"));
    assert_eq!(free_rooms(e, &blocked), 1, "room 1 is out of order");
    assert_eq!(
        e.book(blocked.clone(), None).await.unwrap_err().code(),
        "sold_out"
    );
    blocked.room = None;
    let in_two = e.book(blocked.clone(), None).await.unwrap();
    assert_eq!(in_two.room, room("2"));
    // Moving into the range is refused too, naming it.
    confirm(e, in_two.id).await;
    let err = e
        .move_reservation(in_two.id, room("1"), None)
        .await
        .unwrap_err();
    let EngineError::Domain(DomainError::NightsSold(conflicts)) = &err else {
        panic!("expected nights_sold, got {err:?}");
    };
    assert_eq!(
        conflicts.as_slice(),
        [NightConflict::OutOfOrder {
            from: day(3),
            to: day(5)
        }]
    );
    drop(engine);

    // After a restart the range still blocks; lifting it frees the nights.
    let state = assert_recovered_clean(dir.path());
    assert_eq!(
        state
            .rooms
            .values()
            .map(|r| r.out_of_order.len())
            .sum::<usize>(),
        1
    );
    let engine = Stopper(Engine::start(config).unwrap());
    let e = &engine.0;
    let mut probe = input(e, &h, 3);
    probe.departure = probe.arrival.checked_add(1.days()).unwrap();
    assert_eq!(free_rooms(e, &probe), 0);
    let err = e
        .clear_out_of_order(&h, &room("1"), day(4))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_found");
    let view = e.clear_out_of_order(&h, &room("1"), day(3)).await.unwrap();
    assert!(view.out_of_order.is_empty());
    assert_eq!(free_rooms(e, &probe), 1);
}

/// The night audit, on a clock the test drives: at 04:00 hotel-local the day after
/// arrival, a confirmed reservation never checked in becomes `no_show` and its nights are
/// free again; one checked in, or arriving today, is left alone, and its room not even
/// woken. The change is durable and in the event feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn night_audit_marks_no_shows_after_the_audit_time() {
    let dir = tempfile::tempdir().unwrap();
    // 2026-11-23 18:00 in Shanghai (UTC+8).
    let start: Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
    let (clock, time) = Clock::manual(start);
    let mut config = EngineConfig::new(dir.path());
    config.clock = clock;
    config.expiry_tick = std::time::Duration::from_millis(10);
    config.hold_seconds = 3 * 24 * 3600;
    let engine = Stopper(Engine::start(config).unwrap());
    let e = &engine.0;
    let h = setup(e, 3).await;

    let mut b = input(e, &h, 0); // arrives today, 2 nights
    b.room = Some(room("1"));
    let absent = e.book(b.clone(), None).await.unwrap();
    confirm(e, absent.id).await;
    b.room = Some(room("2"));
    let present = e.book(b.clone(), None).await.unwrap();
    confirm(e, present.id).await;
    e.change(present.id, Action::CheckIn, None).await.unwrap();
    let mut tomorrow = input(e, &h, 1);
    tomorrow.room = Some(room("3"));
    let arriving = e.book(tomorrow, None).await.unwrap();
    confirm(e, arriving.id).await;
    let feed = e.events(None);
    // Every room parked: the audit asks each whether it has a no-show due (a parked room
    // answers without waking) and wakes only the one that has.
    let parking = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while e.rooms_awake() > 0 {
        assert!(
            std::time::Instant::now() < parking,
            "the rooms never parked"
        );
        e.sweep_idle_rooms();
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }

    // 04:00 on the 24th in Shanghai is 20:00Z on the 23rd.
    time.advance(SignedDuration::from_secs(10 * 3600));
    let mut status = e.reservation(absent.id).await.unwrap().status;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while status != Status::NoShow && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        status = e.reservation(absent.id).await.unwrap().status;
    }
    assert_eq!(status, Status::NoShow);
    assert_eq!(e.rooms_awake(), 1, "only the room with a no-show woke");
    assert_eq!(
        e.reservation(present.id).await.unwrap().status,
        Status::CheckedIn
    );
    assert_eq!(
        e.reservation(arriving.id).await.unwrap().status,
        Status::Confirmed,
        "arrives on the audit date: not yet a no-show"
    );
    // Its second night (the 24th) is free again in room 1.
    let mut night = input(e, &h, 1);
    night.departure = night.arrival.checked_add(1.days()).unwrap();
    night.room = Some(room("1"));
    e.book(night, None).await.unwrap();
    let mut live = feed.live;
    let mut saw_no_show = false;
    while let Ok(ev) = live.try_recv() {
        if let innkeep_engine::Event::ReservationChanged { id, change, .. } = &*ev.event {
            saw_no_show |= *id == absent.id && change.action == Action::NoShow;
        }
    }
    assert!(saw_no_show, "the no-show is in the event feed");
    drop(engine);
    let state = assert_recovered_clean(dir.path());
    assert_eq!(
        state.reservation(&absent.id).unwrap().status,
        Status::NoShow
    );
}
