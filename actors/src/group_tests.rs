//! Multi-room bookings through the facade: all or nothing, one payment, one hold, one
//! cancellation, and all of it the same after a restart.

use std::time::Duration;

use innkeep_engine::group::{BookingStatus, GroupInput, GroupRoom};
use innkeep_engine::jiff::{SignedDuration, Timestamp, ToSpan};
use innkeep_engine::{
    Action, DomainError, Event, Guest, HotelId, IdempotencyKey, PaymentOutcome, PaymentReport,
    PaymentStatus, RoomTypeCode, Status,
};

use crate::tests_support::{setup, Stopper};
use crate::{recover_state, Booking, Clock, Engine, EngineConfig, EngineError};

fn group(engine: &Engine, h: &HotelId, rooms: usize, offset_days: i64) -> GroupInput {
    let arrival = engine
        .today(h)
        .unwrap()
        .checked_add(offset_days.days())
        .unwrap();
    GroupInput {
        hotel_id: h.clone(),
        arrival,
        departure: arrival.checked_add(2.days()).unwrap(),
        guest: Guest::parse("Lead Guest", "+86 138 0000 0000", "lead@example.com").unwrap(),
        rooms: (0..rooms)
            .map(|i| GroupRoom {
                room_type: RoomTypeCode::parse("STD").unwrap(),
                guests: 2,
                guest: (i == 1).then(|| {
                    Guest::parse("Second Guest", "+86 139 0000 0000", "two@example.com").unwrap()
                }),
            })
            .collect(),
        rate_plan: None,
        created_by: None,
    }
}

fn free(engine: &Engine, g: &GroupInput) -> usize {
    engine
        .availability(&g.hotel_id, g.arrival, g.departure, 1)
        .unwrap()
        .room_types[0]
        .available
}

fn statuses(b: &Booking) -> Vec<Status> {
    b.reservations.iter().map(|r| r.status).collect()
}

/// Three rooms asked of a hotel with two free: 409 naming the type, nothing held. Two
/// asked: two reservations in two rooms, one payment for their sum; a retry with the key
/// answers the same booking; after a restart it is the same booking, its key still holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_takes_every_room_or_none_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Stopper(Engine::start(EngineConfig::new(dir.path())).unwrap());
    let h = setup(&engine.0, 2).await;
    let three = group(&engine.0, &h, 3, 1);
    let err = engine.0.book_group(three.clone(), None).await.unwrap_err();
    let EngineError::Domain(DomainError::SoldOutTypes(types)) = &err else {
        panic!("{err:?}");
    };
    assert_eq!(types, &vec![RoomTypeCode::parse("STD").unwrap()]);
    assert_eq!(err.code(), "sold_out");
    assert_eq!(
        free(&engine.0, &three),
        2,
        "the refused booking holds nothing"
    );

    let key = IdempotencyKey::parse("family-1").unwrap();
    let two = group(&engine.0, &h, 2, 1);
    let booking = engine
        .0
        .book_group(two.clone(), Some(key.clone()))
        .await
        .unwrap();
    assert_eq!(free(&engine.0, &two), 0);
    let s = &booking.summary;
    assert_eq!(s.status, BookingStatus::All(Status::PendingPayment));
    assert_eq!(booking.reservations.len(), 2);
    let (a, b) = (&booking.reservations[0], &booking.reservations[1]);
    assert_ne!(a.room, b.room);
    assert_eq!(b.guest.name(), "Second Guest", "a room's own guest");
    assert_eq!(a.guest.name(), "Lead Guest", "the lead guest otherwise");
    for r in &booking.reservations {
        assert_eq!(r.booking(), Some(s.id));
        assert_eq!(r.payment.out_trade_no, s.id.out_trade_no());
        assert_eq!(r.hold_expires_at, s.hold_expires_at);
    }
    assert_eq!(
        s.amount.amount_minor,
        a.payment.amount.amount_minor + b.payment.amount.amount_minor
    );
    assert_eq!(s.total.amount_minor, 2 * 2 * 10_000);
    assert_eq!(s.version, 2);

    // The same key and request: the same booking, nothing more held. Another request under
    // the key (one room fewer) is refused.
    let again = engine
        .0
        .book_group(two.clone(), Some(key.clone()))
        .await
        .unwrap();
    assert_eq!(again.summary.id, s.id);
    let mut one = two.clone();
    one.rooms.pop();
    let reused = engine
        .0
        .book_group(one, Some(key.clone()))
        .await
        .unwrap_err();
    assert_eq!(reused.code(), "idempotency_key_reused");
    let id = s.id;
    drop(engine);

    let recovered = recover_state(dir.path()).unwrap();
    assert_eq!(recovered.state.check_invariants(), Vec::<String>::new());
    drop(recovered);
    let engine = Stopper(Engine::start(EngineConfig::new(dir.path())).unwrap());
    let after = engine.0.booking(id).await.unwrap();
    assert_eq!(after.summary, booking.summary);
    let ids = |b: &Booking| b.reservations.iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(&after),
        ids(&booking),
        "in the order the request listed them"
    );
    let replayed = engine.0.book_group(two, Some(key)).await.unwrap();
    assert_eq!(replayed.summary.id, id);
}

/// The booking's payment confirms every reservation in one change; cancelling the
/// booking afterwards cancels each, and each is owed its share back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_payment_confirms_every_room_and_one_cancel_ends_them() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Stopper(Engine::start(EngineConfig::new(dir.path())).unwrap());
    let h = setup(&engine.0, 3).await;
    let booking = engine
        .0
        .book_group(group(&engine.0, &h, 3, 1), None)
        .await
        .unwrap();
    let id = booking.summary.id;
    let paid = PaymentReport::Succeeded {
        trade_no: "T1".into(),
    };
    let (after, outcome) = engine.0.pay_booking(id, paid.clone()).await.unwrap();
    assert_eq!(outcome, PaymentOutcome::Confirmed);
    assert_eq!(statuses(&after), vec![Status::Confirmed; 3]);
    assert_eq!(after.summary.payment_status, PaymentStatus::Succeeded);
    assert_eq!(after.summary.version, 6);
    // A repeat of the callback changes nothing.
    let (same, outcome) = engine.0.pay_booking(id, paid).await.unwrap();
    assert_eq!(outcome, PaymentOutcome::Duplicate);
    assert_eq!(same.summary.version, 6);

    // One guest cancels alone; then the booking is cancelled with a stale version (412),
    // then with the current one: the other two are cancelled, each owed its share.
    let first = after.reservations[0].id;
    engine.0.change(first, Action::Cancel, None).await.unwrap();
    let stale = engine.0.cancel_booking(id, Some(6)).await.unwrap_err();
    assert_eq!(stale.code(), "version_mismatch");
    let cancelled = engine.0.cancel_booking(id, Some(7)).await.unwrap();
    assert_eq!(statuses(&cancelled), vec![Status::Cancelled; 3]);
    assert_eq!(
        cancelled.summary.status,
        BookingStatus::All(Status::Cancelled)
    );
    for r in &cancelled.reservations {
        assert!(r.payment.refund_owed, "{r:?}");
        assert_eq!(r.payment.refund_minor, r.total.amount_minor);
        assert_eq!(r.refund_reference(), r.id.out_trade_no().to_string());
    }
    // Cancelling again: nothing left to cancel, answered as it is.
    let again = engine.0.cancel_booking(id, None).await.unwrap();
    assert_eq!(again.summary.version, cancelled.summary.version);
    let nights = group(&engine.0, &h, 3, 1);
    assert_eq!(free(&engine.0, &nights), 3);
    // From a snapshot this time: each reservation keeps its booking in its room's part.
    engine.0.snapshot_now().await.unwrap();
    drop(engine);
    let recovered = recover_state(dir.path()).unwrap();
    assert_eq!(recovered.state.check_invariants(), Vec::<String>::new());
    for r in &cancelled.reservations {
        let stored = recovered.state.reservation(&r.id).unwrap();
        assert_eq!(**r, stored);
    }
}

/// A booking's rooms are on hold together: when the hold lapses unpaid they expire in one
/// change, and a payment arriving after that confirms none of them (each share is owed
/// back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hold_lapses_for_every_room_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (clock, time) = Clock::manual(Timestamp::from_second(1_900_000_000).unwrap());
    let mut config = EngineConfig::new(dir.path());
    config.clock = clock;
    config.expiry_tick = Duration::from_millis(20);
    let engine = Stopper(Engine::start(config).unwrap());
    let h = setup(&engine.0, 3).await;
    let booking = engine
        .0
        .book_group(group(&engine.0, &h, 3, 1), None)
        .await
        .unwrap();
    let id = booking.summary.id;
    let mut feed = engine.0.events(None).live;
    time.advance(SignedDuration::from_secs(901));
    // The keepers' change, on the feed: one event expiring all three.
    let event = tokio::time::timeout(Duration::from_secs(20), feed.recv())
        .await
        .expect("the hold lapsed")
        .expect("the feed");
    let Event::BookingChanged {
        booking: b, parts, ..
    } = &*event.event
    else {
        panic!("{event:?}");
    };
    assert_eq!(*b, id);
    assert_eq!(parts.len(), 3);
    for part in parts {
        assert!(
            matches!(part, Event::ReservationChanged { change, .. } if change.action == Action::Expire),
            "{part:?}"
        );
    }
    // The feed has it once durable; the rooms apply it right after.
    let mut expired = engine.0.booking(id).await.unwrap();
    for _ in 0..200 {
        if statuses(&expired) == vec![Status::Expired; 3] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        expired = engine.0.booking(id).await.unwrap();
    }
    assert_eq!(statuses(&expired), vec![Status::Expired; 3]);
    assert_eq!(free(&engine.0, &group(&engine.0, &h, 3, 1)), 3);
    let late = PaymentReport::Succeeded {
        trade_no: "LATE".into(),
    };
    let (after, outcome) = engine.0.pay_booking(id, late).await.unwrap();
    assert_eq!(outcome, PaymentOutcome::RefundOwed);
    for r in &after.reservations {
        assert_eq!(r.status, Status::Expired);
        assert!(r.payment.refund_owed);
    }
}
