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
    let k102 = RoomKey { hotel_id: h.clone(), number: n102.clone() };
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
    let mut ids = Vec::new();
    // 1: booked with an explicit room (a pin, once pins exist); 2 and 3 placed by the engine.
    for (n, a, d, room) in [(1u128, 1i8, 3i8, Some(n101.clone())), (2, 5, 7, None), (3, 10, 12, None)] {
        let req = BookRequest { hotel_id: h.clone(), room_type: king.clone(), stay: Stay::between(date(2030,6,a), date(2030,6,d)).unwrap(), guests: 1, guest: guest.clone(), room, rate_plan: RatePlanCode::bar() };
        let id = ReservationId(uuid::Uuid::from_u128(n));
        let r = innkeep_engine::state::new_reservation(&req, n101.clone(), Money { amount_minor: 100_000, currency: Currency::parse("CNY").unwrap() }, id, at(n as i64), SignedDuration::from_mins(15));
        apply(&mut state, Event::ReservationCreated { reservation: r.into(), idempotency: None });
        ids.push(id);
    }
    // 2 paid, then moved by the staff to 102; 3 modified in place (one more night).
    let (e, _) = state.rooms[&k101].decide_payment(&ids[1], &PaymentReport::Succeeded { trade_no: "T2".into() }, at(20)).unwrap();
    apply(&mut state, e.unwrap());
    let first = state.rooms[&k101].decide_move_out(&ids[1], &k102, None, date(2029,12,1)).unwrap();
    apply(&mut state, Event::ReservationMoved { id: ids[1], from: k101.clone(), to: k102.clone(), room_type: king.clone(), first_night: first, at: at(50) });
    let r3 = state.reservation(&ids[2]).unwrap();
    let input = ModifyInput { departure: Some(date(2030,6,13)), ..ModifyInput::default() };
    let m = state.catalog.price_modification(&r3, &input, at(60), StayLimits::default()).unwrap();
    let plan = state.rooms[&k101].decide_modify(&ids[2], &m, r3.version, None, at(60)).unwrap();
    let ModifyPlan::Here(e) = plan else { panic!("{plan:?}") };
    apply(&mut state, e);
    for e in &events { println!("EVENT {}", hex(&bincode::serde::encode_to_vec(e, cfg).unwrap())); }
    let snap = state.to_snapshot();
    for room in &snap.rooms { println!("ROOM {}", hex(&bincode::serde::encode_to_vec(room, cfg).unwrap())); }
    println!("CATALOG {}", hex(&bincode::serde::encode_to_vec(&snap.catalog, cfg).unwrap()));
}
