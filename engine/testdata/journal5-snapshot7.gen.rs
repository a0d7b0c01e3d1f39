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
    let mut ids = Vec::new();
    for (n, a, d) in [(1u128, 1i8, 3i8), (2, 5, 7), (3, 10, 12)] {
        let req = BookRequest { hotel_id: h.clone(), room_type: king.clone(), stay: Stay::between(date(2030,1,a), date(2030,1,d)).unwrap(), guests: 1, guest: guest.clone(), room: None, rate_plan: RatePlanCode::bar() };
        let id = ReservationId(uuid::Uuid::from_u128(n));
        let r = innkeep_engine::state::new_reservation(&req, n101.clone(), Money { amount_minor: 100_000, currency: Currency::parse("CNY").unwrap() }, id, at(n as i64), SignedDuration::from_mins(15));
        apply(&mut state, Event::ReservationCreated { reservation: r.into(), idempotency: None });
        ids.push(id);
    }
    // 1 and 2 paid; 1 then modified (new guest details, same total); 2 cancelled after
    // payment (refund owed); 3 pending, modified to a longer stay (re-priced).
    for (i, n) in [(0usize, 1u8), (1, 2)] {
        let (e, _) = state.rooms[&k101].decide_payment(&ids[i], &PaymentReport::Succeeded { trade_no: format!("T{n}") }, at(10 + n as i64)).unwrap();
        apply(&mut state, e.unwrap());
    }
    let limits = StayLimits::default();
    let now = Timestamp::from_second(1_893_456_000).unwrap();
    for (i, input) in [
        (0usize, ModifyInput { guest: Some(Guest::parse("Han Meimei", "+86 139-0000-0000", "han@example.com").unwrap()), ..ModifyInput::default() }),
        (2, ModifyInput { departure: Some(date(2030, 1, 13)), ..ModifyInput::default() }),
    ] {
        let r = state.reservation(&ids[i]).unwrap();
        let m = state.catalog.price_modification(&r, &input, now, limits).unwrap();
        match state.rooms[&k101].decide_modify(&ids[i], &m, r.version, None, now).unwrap() {
            ModifyPlan::Here(e) => apply(&mut state, e),
            other => panic!("{other:?}"),
        }
    }
    let e = state.rooms[&k101].decide_change(&ids[1], Action::Cancel, None, at(30), date(2029,12,1)).unwrap();
    apply(&mut state, e);
    for e in &events { println!("EVENT {}", hex(&bincode::serde::encode_to_vec(e, cfg).unwrap())); }
    let snap = state.to_snapshot();
    for r in &snap.rooms { println!("ROOM {}", hex(&bincode::serde::encode_to_vec(r, cfg).unwrap())); }
    println!("CATALOG {}", hex(&bincode::serde::encode_to_vec(&snap.catalog, cfg).unwrap()));
}
