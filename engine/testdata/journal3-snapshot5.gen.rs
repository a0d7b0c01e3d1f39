use innkeep_engine::jiff::{civil::date, SignedDuration, Timestamp};
use innkeep_engine::*;

fn hex(b: &[u8]) -> String { b.iter().map(|x| format!("{x:02x}")).collect() }

#[test]
fn golden() {
    let cfg = bincode::config::standard();
    let h = HotelId::parse("H1").unwrap();
    let king = RoomTypeCode::parse("KING").unwrap();
    let n101 = RoomNumber::parse("101").unwrap();
    let key = RoomKey { hotel_id: h.clone(), number: n101.clone() };
    let mut cat = Catalog::default();
    let mut events = Vec::new();
    let (e, _) = cat.put_hotel(h.clone(), "Bund", "Asia/Shanghai", "CNY").unwrap(); cat.apply(&e); events.push(e);
    let (e, _) = cat.put_room_type(&h, king.clone(), "King", 2, 50_000).unwrap(); cat.apply(&e); events.push(e);
    let (e, _) = cat.put_room(&h, n101.clone(), king.clone()).unwrap(); cat.apply(&e); events.push(e);
    let e = cat.put_rate(&h, &king, date(2030,1,2), date(2030,1,3), 70_000).unwrap(); cat.apply(&e); events.push(e);
    let mut room = RoomState::new(key.clone(), king.clone());
    let t0 = Timestamp::from_second(1_900_000_000).unwrap();
    let at = |s: i64| t0.checked_add(SignedDuration::from_secs(s)).unwrap();
    let guest = Guest::parse("Li Lei", "+86 138-0000-0000", "li@example.com").unwrap();
    let mut ids = Vec::new();
    for (n, a, d) in [(1u128, 1i8, 3i8), (2, 5, 7), (3, 10, 12)] {
        let req = BookRequest { hotel_id: h.clone(), room_type: king.clone(), stay: Stay::between(date(2030,1,a), date(2030,1,d)).unwrap(), guests: 1, guest: guest.clone(), room: None };
        let id = ReservationId(uuid::Uuid::from_u128(n));
        let mut r = innkeep_engine::state::new_reservation(&req, n101.clone(), Money { amount_minor: 100_000, currency: Currency::parse("CNY").unwrap() }, id, at(n as i64), SignedDuration::from_mins(15));
        r.created_by = Some("key-1".into());
        let e = Event::ReservationCreated { reservation: r.into(), idempotency: Some(IdempotencyRecord { key: IdempotencyKey::parse("k1").unwrap(), fingerprint: 42 }) };
        room.apply(&e); events.push(e); ids.push(id);
        let (e, _) = room.decide_payment(&id, &PaymentReport::Succeeded { trade_no: format!("T{n}") }, at(10 + n as i64)).unwrap();
        let e = e.unwrap(); room.apply(&e); events.push(e);
    }
    // 1: cancelled after payment, then refunded. 3: no-show.
    let e = room.decide_change(&ids[0], Action::Cancel, None, at(100), date(2029,12,1)).unwrap(); room.apply(&e); events.push(e);
    let e = room.decide_refunded(&ids[0], at(101)).unwrap().unwrap(); room.apply(&e); events.push(e);
    let e = room.decide_no_show(&ids[2], date(2030,1,11), at(200)).unwrap(); room.apply(&e); events.push(e);
    for e in &events { println!("EVENT {}", hex(&bincode::serde::encode_to_vec(e, cfg).unwrap())); }
    println!("ROOM {}", hex(&bincode::serde::encode_to_vec(&room, cfg).unwrap()));
    println!("CATALOG {}", hex(&bincode::serde::encode_to_vec(&cat, cfg).unwrap()));
}
