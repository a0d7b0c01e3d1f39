use innkeep_engine::jiff::{civil::date, SignedDuration, Timestamp};
use innkeep_engine::*;

fn hex(b: &[u8]) -> String { b.iter().map(|x| format!("{x:02x}")).collect() }

#[test]
fn golden() {
    let cfg = bincode::config::standard();
    let h = HotelId::parse("H1").unwrap();
    let king = RoomTypeCode::parse("KING").unwrap();
    let n101 = RoomNumber::parse("101").unwrap();
    let n102 = RoomNumber::parse("102").unwrap();
    let k101 = RoomKey { hotel_id: h.clone(), number: n101.clone() };
    let mut state = State::default();
    let mut events = Vec::new();
    let mut apply = |state: &mut State, e: Event| { state.apply(&e); events.push(e); };
    let (e, _) = state.catalog.put_hotel(h.clone(), "Bund", "Asia/Shanghai", "CNY").unwrap(); apply(&mut state, e);
    let (e, _) = state.catalog.put_room_type(&h, king.clone(), "King", 2, 50_000).unwrap(); apply(&mut state, e);
    let (e, _) = state.catalog.put_room(&h, n101.clone(), king.clone()).unwrap(); apply(&mut state, e);
    let (e, _) = state.catalog.put_room(&h, n102.clone(), king.clone()).unwrap(); apply(&mut state, e);
    let t0 = Timestamp::from_second(1_900_000_000).unwrap();
    let at = |s: i64| t0.checked_add(SignedDuration::from_secs(s)).unwrap();
    let guest = Guest::parse("Li Lei", "+86 138-0000-0000", "li@example.com").unwrap();
    let cny = Money { amount_minor: 100_000, currency: Currency::parse("CNY").unwrap() };
    let request = |a: i8, d: i8, room: Option<RoomNumber>| BookRequest { hotel_id: h.clone(), room_type: king.clone(), stay: Stay::between(date(2030,6,a), date(2030,6,d)).unwrap(), guests: 1, guest: guest.clone(), room, rate_plan: RatePlanCode::bar() };
    let id = |n: u128| ReservationId(uuid::Uuid::from_u128(n));
    // 1: booked with an explicit room 101 (pinned); 2 placed in 101 and paid; 3 in 102.
    for (n, a, d, room, placed) in [(1u128, 1i8, 3i8, Some(n101.clone()), n101.clone()), (2, 5, 7, None, n101.clone()), (3, 10, 12, None, n102.clone())] {
        let r = innkeep_engine::state::new_reservation(&request(a, d, room), placed, cny, id(n), at(n as i64), SignedDuration::from_mins(15));
        apply(&mut state, Event::ReservationCreated { reservation: r.into(), idempotency: None });
    }
    let (e, _) = state.rooms[&k101].decide_payment(&id(2), &PaymentReport::Succeeded { trade_no: "T2".into() }, at(20)).unwrap();
    apply(&mut state, e.unwrap());
    // 4 (9th to 13th) needs 102, where 3 is: 3 moves to 101, 4 takes 102, with a key.
    let r4 = innkeep_engine::state::new_reservation(&request(9, 13, None), n102.clone(), cny, id(4), at(30), SignedDuration::from_mins(15));
    apply(&mut state, Event::Rearranged {
        moves: vec![Relocation { id: id(3), from: n102.clone(), to: n101.clone(), stay: Stay::between(date(2030,6,10), date(2030,6,12)).unwrap() }],
        reservation: r4.into(),
        idempotency: Some(IdempotencyRecord { key: IdempotencyKey::parse("k-4").unwrap(), fingerprint: 44 }),
    });
    // 2 cancelled after payment: a refund owed.
    let e = state.rooms[&k101].decide_change(&id(2), Action::Cancel, None, at(40), date(2030,1,1)).unwrap();
    apply(&mut state, e);
    for e in &events { println!("EVENT {}", hex(&bincode::serde::encode_to_vec(e, cfg).unwrap())); }
    let snap = state.to_snapshot();
    for room in &snap.rooms { println!("ROOM {}", hex(&bincode::serde::encode_to_vec(room, cfg).unwrap())); }
    println!("CATALOG {}", hex(&bincode::serde::encode_to_vec(&snap.catalog, cfg).unwrap()));
}
