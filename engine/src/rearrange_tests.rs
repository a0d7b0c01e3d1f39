//! Rearrangements as the actors run them: the rooms say what may move
//! ([`crate::RoomState::holdings`]), the planner frees a room, one [`Event::Rearranged`]
//! holds the moves and the booking, and each room applies its part
//! ([`crate::RoomState::rearranged_out`], then [`crate::RoomState::rearranged_in`]) — the
//! same state `State::apply` (recovery) reaches.

use std::sync::Arc;

use jiff::SignedDuration;

use crate::modify_tests::{at, d, Hotel};
use crate::rearrange::{plan, Held};
use crate::state::new_reservation;
use crate::{
    Action, BookRequest, Event, Guest, IdempotencyKey, IdempotencyRecord, RatePlanCode, Relocation,
    ReservationId, RoomNumber, State, Status, Stay,
};

fn movable(held: &[Held], id: ReservationId) -> Option<bool> {
    held.iter().find(|h| h.id == id).map(|h| h.movable)
}

/// Moves `id` from room `from` to room `to` as the staff does (`POST …/move`).
fn staff_move(hotel: &mut Hotel, id: ReservationId, from: &str, to: &str) {
    let (from, to) = (hotel.key(from), hotel.key(to));
    let first_night = hotel.state.rooms[&from]
        .decide_move_out(&id, &to, None, d(1))
        .unwrap();
    let r = hotel.get(id);
    hotel.state.rooms[&to]
        .decide_move_in(&r, first_night)
        .unwrap();
    let e = Event::ReservationMoved {
        id,
        from,
        to,
        room_type: hotel.king.clone(),
        first_night,
        at: at(30),
        pins: true,
    };
    hotel.apply(e);
}

/// Only what a person did not place, that has not begun, holds its whole stay in its room
/// and lies wholly in the window may move; out-of-order ranges and reservations busy
/// elsewhere never.
#[test]
fn holdings_say_what_may_move() {
    let mut hotel = Hotel::new();
    // Today is the 1st.
    let pending = hotel.book("101", d(2), d(4), 1);
    let confirmed = hotel.book("102", d(2), d(3), 2);
    hotel.pay("102", confirmed);
    let pinned = hotel.book("101", d(5), d(6), 3);
    hotel.pay("101", pinned);
    staff_move(&mut hotel, pinned, "101", "102");
    assert!(hotel.get(pinned).pinned, "moved by the staff");
    let in_house = hotel.book("101", d(1), d(2), 4);
    hotel.pay("101", in_house);
    hotel.check_in("101", in_house);
    let long = hotel.book("102", d(3), d(5), 5);
    let e = hotel.state.rooms[&hotel.key("101")]
        .decide_out_of_order(d(7), d(8), "paint", d(1), at(40))
        .unwrap()
        .expect("a new range");
    hotel.apply(e);

    let room = |n: &str| &hotel.state.rooms[&hotel.key(n)];
    let nobody_busy = |_: &ReservationId| false;
    let held_101 = room("101").holdings(d(1), d(9), d(1), nobody_busy);
    let held_102 = room("102").holdings(d(1), d(9), d(1), nobody_busy);
    assert_eq!(movable(&held_101, pending), Some(true));
    assert_eq!(movable(&held_102, confirmed), Some(true));
    assert_eq!(movable(&held_102, pinned), Some(false), "pinned");
    assert_eq!(movable(&held_101, in_house), Some(false), "checked in");
    assert_eq!(movable(&held_102, long), Some(true));
    let blocked: Vec<&Held> = held_101
        .iter()
        .filter(|h| h.id == ReservationId(uuid::Uuid::nil()))
        .collect();
    assert_eq!(blocked.len(), 1, "the out-of-order range");
    assert_eq!(
        (blocked[0].from, blocked[0].to, blocked[0].movable),
        (d(7), d(8), false)
    );

    // A narrower window: what reaches past it stays put; what is wholly outside is absent.
    let narrow = room("102").holdings(d(2), d(4), d(1), nobody_busy);
    assert_eq!(movable(&narrow, confirmed), Some(true));
    assert_eq!(
        movable(&narrow, long),
        Some(false),
        "reaches past the window"
    );
    assert_eq!(movable(&narrow, pinned), None, "outside the window");
    // Busy elsewhere (being moved or modified, or not durable yet).
    let busy = room("101").holdings(d(1), d(9), d(1), |id| *id == pending);
    assert_eq!(movable(&busy, pending), Some(false));
    // Begun: an arrival before today.
    let later = room("101").holdings(d(1), d(9), d(3), nobody_busy);
    assert_eq!(movable(&later, pending), Some(false));
    // Booked with a room of its own choosing.
    let chosen = new_reservation(
        &BookRequest {
            room: Some(RoomNumber::parse("101").unwrap()),
            ..request(&hotel, d(8), d(9))
        },
        RoomNumber::parse("101").unwrap(),
        hotel.get(pending).total,
        ReservationId(uuid::Uuid::from_u128(6)),
        at(50),
        SignedDuration::from_hours(1),
    );
    assert!(chosen.pinned);
    hotel.apply(Event::ReservationCreated {
        reservation: chosen.into(),
        idempotency: None,
    });
    let held = hotel.state.rooms[&hotel.key("101")].holdings(d(1), d(10), d(1), nobody_busy);
    assert_eq!(
        movable(&held, ReservationId(uuid::Uuid::from_u128(6))),
        Some(false)
    );
    hotel.check_replay_and_reboot();
}

fn request(hotel: &Hotel, a: jiff::civil::Date, b: jiff::civil::Date) -> BookRequest {
    BookRequest {
        hotel_id: hotel.h.clone(),
        room_type: hotel.king.clone(),
        stay: Stay::between(a, b).unwrap(),
        guests: 2,
        guest: Guest::parse("Han Meimei", "+86 139-0000-0000", "han@example.com").unwrap(),
        room: None,
        rate_plan: RatePlanCode::bar(),
    }
}

/// The example: a night in each room on consecutive nights, then both nights.
/// The planned event moves one whole reservation (new version, a move entry, price and
/// status kept, not pinned) and books the freed room; the rooms applying their parts reach
/// exactly what recovery's `State::apply` does, and a replay and a snapshot agree.
#[test]
fn a_rearranged_booking_moves_whole_reservations_and_books_the_freed_room() {
    let mut hotel = Hotel::new();
    let first = hotel.book("101", d(2), d(3), 1);
    let second = hotel.book("102", d(3), d(4), 2);
    hotel.pay("102", second);
    let before = [hotel.get(first), hotel.get(second)];
    let numbers = ["101", "102"];
    let held: Vec<Vec<Held>> = numbers
        .iter()
        .map(|n| hotel.state.rooms[&hotel.key(n)].holdings(d(1), d(9), d(1), |_| false))
        .collect();
    let p = plan(&held, d(2), d(4)).expect("one move frees a room");
    assert_eq!(p.moves.len(), 1);
    let moves: Vec<Relocation> = p
        .moves
        .iter()
        .map(|m| {
            let r = hotel.get(m.id);
            Relocation {
                id: m.id,
                from: RoomNumber::parse(numbers[m.from_room]).unwrap(),
                to: RoomNumber::parse(numbers[m.to_room]).unwrap(),
                stay: r.stay,
            }
        })
        .collect();
    let target = RoomNumber::parse(numbers[p.room]).unwrap();
    let created = new_reservation(
        &request(&hotel, d(2), d(4)),
        target.clone(),
        hotel.get(first).total,
        ReservationId(uuid::Uuid::from_u128(9)),
        at(60),
        SignedDuration::from_hours(1),
    );
    let key = IdempotencyKey::parse("family-1").unwrap();
    let event = Event::Rearranged {
        moves: moves.clone(),
        reservation: Arc::new(created.clone()),
        idempotency: Some(IdempotencyRecord {
            key: key.clone(),
            fingerprint: 7,
        }),
    };

    // The rooms, as the actors apply it: every leaver out first, then the arrivals.
    let mut rooms: Vec<crate::RoomState> = numbers
        .iter()
        .map(|n| hotel.state.rooms[&hotel.key(n)].clone())
        .collect();
    let leaving: Vec<_> = rooms
        .iter_mut()
        .flat_map(|r| r.rearranged_out(&event).0)
        .collect();
    assert_eq!(leaving.len(), 1);
    for r in &mut rooms {
        r.rearranged_in(leaving.clone(), &event);
    }

    hotel.apply(event);
    for (room, n) in rooms.iter().zip(numbers) {
        assert_eq!(room, &hotel.state.rooms[&hotel.key(n)], "room {n}");
    }
    assert_eq!(hotel.state.check_invariants(), Vec::<String>::new());
    let booked = hotel.get(created.id);
    assert_eq!((booked.room.clone(), booked.version), (target.clone(), 1));
    assert_eq!(
        hotel.state.idempotency[&(hotel.h.clone(), key)].reservation_id,
        created.id
    );
    let m = &moves[0];
    let moved = hotel.get(m.id);
    let was = before.iter().find(|r| r.id == m.id).unwrap();
    assert_eq!(moved.room, m.to);
    assert_ne!(moved.room, target);
    assert_eq!(moved.version, was.version + 1);
    assert_eq!((moved.status, moved.total), (was.status, was.total));
    assert_eq!(moved.stay, was.stay);
    assert!(!moved.pinned);
    let step = moved.moves.last().unwrap();
    assert_eq!(
        (&step.from_room, &step.to_room, step.first_night),
        (&m.from, &m.to, was.stay.arrival())
    );
    let last = moved.history.last().unwrap();
    assert_eq!(
        (last.from, last.to, last.version),
        (Some(was.status), was.status, moved.version)
    );
    // The other one did not move.
    let other = before.iter().find(|r| r.id != m.id).unwrap();
    assert_eq!(hotel.get(other.id), *other);
    hotel.check_replay_and_reboot();

    // Cancelling the booking gives the freed room's nights back; the moved one stays.
    let e = hotel.state.rooms[&hotel.key(target.as_str())]
        .decide_change(&created.id, Action::Cancel, None, at(70), d(1))
        .unwrap();
    hotel.apply(e);
    assert_eq!(hotel.get(created.id).status, Status::Cancelled);
    assert_eq!(hotel.get(m.id).room, m.to);
    let mut replayed = State::default();
    for e in &hotel.events {
        replayed.apply(e);
    }
    assert_eq!(replayed.to_snapshot(), hotel.state.to_snapshot());
}

/// Applies `event` the way the actors do, room by room (every leaver out first, then the
/// arrivals, with `arriving` handed over besides), and checks the rooms reach what
/// recovery's `State::apply` reaches.
fn apply_by_rooms(hotel: &mut Hotel, event: Event, numbers: &[&str]) {
    let mut rooms: Vec<crate::RoomState> = numbers
        .iter()
        .map(|n| hotel.state.rooms[&hotel.key(n)].clone())
        .collect();
    let leaving: Vec<_> = rooms
        .iter_mut()
        .flat_map(|r| r.rearranged_out(&event).0)
        .collect();
    if let Event::ModifyRearranged { modified, .. } = &event {
        let Event::ReservationModified { room, id, to, .. } = &**modified else {
            panic!("{modified:?}");
        };
        let source = rooms.iter_mut().find(|r| r.key == *room).unwrap();
        match to {
            None => {
                source.apply(modified);
            }
            Some(to) => {
                let (r, _) = source.move_out(id);
                let target = rooms.iter_mut().find(|r| r.key.number == *to).unwrap();
                target.modify_in(r.unwrap(), modified);
            }
        }
    }
    for r in &mut rooms {
        r.rearranged_in(leaving.clone(), &event);
    }
    hotel.apply(event);
    for (room, n) in rooms.iter().zip(numbers) {
        assert_eq!(room, &hotel.state.rooms[&hotel.key(n)], "room {n}");
    }
    assert_eq!(hotel.state.check_invariants(), Vec::<String>::new());
}

/// A booking for both nights when one room holds the first night and the other the second
/// (two rooms for it: no plan; one: one move), as a multi-room booking's event; then a
/// modification whose new stay no room has free until another reservation moves: the
/// rooms applying their parts reach what recovery reaches, and a replay and a snapshot
/// agree.
#[test]
fn a_multi_room_booking_and_a_modification_make_room_by_moving_others() {
    use crate::rearrange::plan_many;
    let mut hotel = Hotel::new();
    let first = hotel.book("101", d(2), d(3), 1);
    let second = hotel.book("102", d(3), d(4), 2);
    let numbers = ["101", "102"];
    let held: Vec<Vec<Held>> = numbers
        .iter()
        .map(|n| hotel.state.rooms[&hotel.key(n)].holdings(d(1), d(9), d(1), |_| false))
        .collect();
    // Two rooms for 2..4 need both moved out of the way: none can.
    assert_eq!(plan_many(&held, d(2), d(4), 2), None);
    let p = plan_many(&held, d(2), d(4), 1).expect("one room, one move");
    assert_eq!(p.moves.len(), 1);
    let booking = crate::BookingId(uuid::Uuid::from_u128(77));
    let moves: Vec<Relocation> = p
        .moves
        .iter()
        .map(|m| Relocation {
            id: m.id,
            from: RoomNumber::parse(numbers[m.from_room]).unwrap(),
            to: RoomNumber::parse(numbers[m.to_room]).unwrap(),
            stay: hotel.get(m.id).stay,
        })
        .collect();
    let mut created = new_reservation(
        &request(&hotel, d(2), d(4)),
        RoomNumber::parse(numbers[p.rooms[0]]).unwrap(),
        hotel.get(first).total,
        ReservationId(uuid::Uuid::from_u128(9)),
        at(60),
        SignedDuration::from_hours(1),
    );
    created.payment.out_trade_no = booking.out_trade_no();
    let event = Event::BookingCreated {
        hotel_id: hotel.h.clone(),
        booking,
        moves: moves.clone(),
        reservations: vec![Arc::new(created.clone())],
        idempotency: None,
    };
    apply_by_rooms(&mut hotel, event, &numbers);
    let booked = hotel.get(created.id);
    assert_eq!(booked.booking(), Some(booking));
    assert_eq!(booked.payment.out_trade_no, booking.out_trade_no());
    assert_eq!(hotel.get(moves[0].id).room, moves[0].to);
    hotel.check_replay_and_reboot();

    // The one not moved asks for the 5th and 6th, when its room holds the 5th for another
    // and the other room the 6th: one of those two moves.
    let stays = if moves[0].id == first { second } else { first };
    let r = hotel.get(stays);
    let from = hotel.state.locator[&stays].clone();
    let input = crate::ModifyInput {
        arrival: Some(d(5)),
        departure: Some(d(7)),
        ..crate::ModifyInput::default()
    };
    let m = hotel
        .state
        .catalog
        .price_modification(&r, &input, at(70), crate::StayLimits::default())
        .unwrap();
    let blocker = hotel.book(
        if from.number.as_str() == "101" {
            "102"
        } else {
            "101"
        },
        d(6),
        d(7),
        3,
    );
    let blocker2 = hotel.book(from.number.as_str(), d(5), d(6), 4);
    let mut held: Vec<Vec<Held>> = numbers
        .iter()
        .map(|n| hotel.state.rooms[&hotel.key(n)].holdings(d(1), d(12), d(1), |_| false))
        .collect();
    for h in &mut held {
        h.retain(|h| h.id != stays);
    }
    let p = crate::rearrange::plan(&held, d(5), d(7)).expect("a move frees a room");
    assert_eq!(p.moves.len(), 1, "{p:?}");
    let moves: Vec<Relocation> = p
        .moves
        .iter()
        .map(|mv| Relocation {
            id: mv.id,
            from: RoomNumber::parse(numbers[mv.from_room]).unwrap(),
            to: RoomNumber::parse(numbers[mv.to_room]).unwrap(),
            stay: hotel.get(mv.id).stay,
        })
        .collect();
    let to = RoomNumber::parse(numbers[p.room]).unwrap();
    let modified = crate::room::modified_into(stays, &from, &to, &m, at(70));
    let event = Event::ModifyRearranged {
        moves: moves.clone(),
        modified: Box::new(modified),
    };
    apply_by_rooms(&mut hotel, event, &numbers);
    let after = hotel.get(stays);
    assert_eq!((after.stay.arrival(), after.stay.departure()), (d(5), d(7)));
    assert_eq!(after.room, to);
    assert_eq!(after.version, r.version + 1);
    assert!([blocker, blocker2].contains(&moves[0].id));
    assert_eq!(hotel.get(moves[0].id).room, moves[0].to);
    hotel.check_replay_and_reboot();
}

/// A room applying a booking-wide change reports the nights each of its parts gave back
/// (what the availability index hears), and only its own parts.
#[test]
fn a_rooms_parts_of_a_booking_change_give_back_their_nights() {
    let mut hotel = Hotel::new();
    let a = hotel.book("101", d(2), d(4), 1);
    let b = hotel.book("101", d(5), d(6), 2);
    let c = hotel.book("102", d(2), d(4), 3);
    let cancel = |hotel: &Hotel, n: &str, id| {
        hotel.state.rooms[&hotel.key(n)]
            .decide_change(&id, Action::Cancel, None, at(80), d(1))
            .unwrap()
    };
    let event = Event::BookingChanged {
        hotel_id: hotel.h.clone(),
        booking: crate::BookingId(uuid::Uuid::from_u128(5)),
        parts: vec![
            cancel(&hotel, "101", a),
            cancel(&hotel, "101", b),
            cancel(&hotel, "102", c),
        ],
    };
    let mut room = hotel.state.rooms[&hotel.key("101")].clone();
    let delta = room.apply(&event);
    let mut released = delta.released.clone();
    released.sort();
    assert_eq!(released, vec![d(2), d(3), d(5)]);
    assert!(delta.booked.is_empty());
    hotel.apply(event);
    assert_eq!(room, hotel.state.rooms[&hotel.key("101")]);
    for id in [a, b, c] {
        assert_eq!(hotel.get(id).status, Status::Cancelled);
    }
    hotel.check_replay_and_reboot();
}

/// The invariants check that a booking's reservations agree on what it made them with
/// (hotel, creator, creation and hold instants): they do as booked; one that differs is
/// reported.
#[test]
fn a_bookings_reservations_agree_on_what_made_them() {
    let mut hotel = Hotel::new();
    let booking = crate::BookingId(uuid::Uuid::from_u128(8));
    let member = |hotel: &Hotel, n: &str, id: u128, by: Option<&str>, hold_mins: i64| {
        let mut r = new_reservation(
            &request(hotel, d(2), d(3)),
            RoomNumber::parse(n).unwrap(),
            crate::Money {
                amount_minor: 10_000,
                currency: crate::Currency::parse("CNY").unwrap(),
            },
            ReservationId(uuid::Uuid::from_u128(id)),
            at(90),
            SignedDuration::from_mins(hold_mins),
        );
        r.payment.out_trade_no = booking.out_trade_no();
        r.created_by = by.map(str::to_owned);
        Arc::new(r)
    };
    let agreeing = Event::BookingCreated {
        hotel_id: hotel.h.clone(),
        booking,
        moves: Vec::new(),
        reservations: vec![
            member(&hotel, "101", 1, Some("ch"), 15),
            member(&hotel, "102", 2, Some("ch"), 15),
        ],
        idempotency: None,
    };
    let mut ok = hotel.state.clone();
    ok.apply(&agreeing);
    assert_eq!(ok.check_invariants(), Vec::<String>::new());
    for (by, hold) in [(Some("other"), 15), (Some("ch"), 16), (None, 15)] {
        let mut bad = hotel.state.clone();
        bad.apply(&Event::BookingCreated {
            hotel_id: hotel.h.clone(),
            booking,
            moves: Vec::new(),
            reservations: vec![
                member(&hotel, "101", 1, Some("ch"), 15),
                member(&hotel, "102", 2, by, hold),
            ],
            idempotency: None,
        });
        let problems = bad.check_invariants();
        assert_eq!(problems.len(), 1, "{by:?} {hold}: {problems:?}");
    }
    hotel.apply(agreeing);
    hotel.check_replay_and_reboot();
}
