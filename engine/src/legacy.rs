//! Older encodings still read, so a data dir written by the previous release starts.
//!
//! Snapshot format 4 stored each room with its reservations in a map (each the whole
//! reservation) and its calendar as one entry per night; format 5 stores the ledger
//! ([`crate::ledger`]). Journals did not change.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::ids::{IdMap, ReservationId, RoomKey, RoomTypeCode};
use crate::ledger::Kept;
use crate::reservation::Reservation;
use crate::room::{Housekeeping, OutOfOrder, RoomState};

/// A room as snapshot format 4 stored it.
#[derive(Serialize, Deserialize, Debug)]
pub struct RoomStateV4 {
    /// Which room.
    pub key: RoomKey,
    /// Its type.
    pub room_type: RoomTypeCode,
    /// Cleanliness.
    pub housekeeping: Housekeeping,
    /// The reservation whose guest is in the room.
    pub occupant: Option<ReservationId>,
    /// Night → the reservation holding it.
    #[serde(with = "crate::codec::date_map")]
    pub calendar: BTreeMap<Date, ReservationId>,
    /// Every reservation of the room, whole.
    pub reservations: IdMap<Arc<Reservation>>,
    /// Out-of-order ranges by first night.
    #[serde(with = "crate::codec::date_map")]
    pub out_of_order: BTreeMap<Date, OutOfOrder>,
}

impl RoomStateV4 {
    /// The room in today's layout. Refused when its calendar is not what format 4 always
    /// held: each reservation's nights one run of consecutive nights, of a reservation the
    /// room has.
    pub fn into_room_state(self) -> Result<RoomState, String> {
        let mut held: BTreeMap<ReservationId, (Date, Date)> = BTreeMap::new();
        for (night, id) in &self.calendar {
            if !self.reservations.contains_key(id) {
                return Err(format!("night {night} held by unknown reservation {id}"));
            }
            let next = night
                .tomorrow()
                .map_err(|e| format!("night {night}: {e}"))?;
            match held.get_mut(id) {
                Some((_, to)) if *to == *night => *to = next,
                Some(_) => return Err(format!("the nights of {id} are not one run")),
                None => {
                    held.insert(*id, (*night, next));
                }
            }
        }
        let mut room = RoomState::new(self.key, self.room_type);
        room.housekeeping = self.housekeeping;
        room.occupant = self.occupant;
        room.out_of_order = self.out_of_order;
        let mut reservations: Vec<Arc<Reservation>> = self.reservations.into_values().collect();
        reservations.sort_by_key(|r| r.id);
        for r in reservations {
            let (from, to) = held.get(&r.id).copied().unwrap_or((Date::MIN, Date::MIN));
            room.ledger.insert(Kept::new(&r, &room.room_type), from, to);
        }
        Ok(room)
    }
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;
    use jiff::{SignedDuration, Timestamp};

    use super::*;
    use crate::event::Event;
    use crate::ids::{HotelId, RoomNumber};
    use crate::money::{Currency, Money};
    use crate::reservation::{Action, BookRequest, Guest};
    use crate::time::Stay;

    /// A format-4 room (a paid, checked-out early stay and a pending one) becomes exactly
    /// the room that applying the same events builds; a calendar with a hole is refused.
    #[test]
    fn a_format_4_room_becomes_the_same_room() {
        let key = RoomKey {
            hotel_id: HotelId::parse("H1").unwrap(),
            number: RoomNumber::parse("101").unwrap(),
        };
        let king = RoomTypeCode::parse("KING").unwrap();
        let t0 = Timestamp::from_second(1_900_000_000).unwrap();
        let booking = |n: u128, a: i8, d: i8| {
            let req = BookRequest {
                hotel_id: key.hotel_id.clone(),
                room_type: king.clone(),
                stay: Stay::between(date(2030, 1, a), date(2030, 1, d)).unwrap(),
                guests: 1,
                guest: Guest::parse("Li Lei", "+86 138-0000-0000", "li@example.com").unwrap(),
                room: None,
            };
            let total = Money {
                amount_minor: 10_000,
                currency: Currency::parse("CNY").unwrap(),
            };
            let id = ReservationId(uuid::Uuid::from_u128(n));
            let r = crate::state::new_reservation(
                &req,
                key.number.clone(),
                total,
                id,
                t0,
                SignedDuration::from_mins(15),
            );
            Event::ReservationCreated {
                reservation: r.into(),
                idempotency: None,
            }
        };
        let mut room = RoomState::new(key.clone(), king.clone());
        room.apply(&booking(1, 2, 6));
        room.apply(&booking(2, 10, 12));
        let first = ReservationId(uuid::Uuid::from_u128(1));
        let at = |s| t0.checked_add(SignedDuration::from_secs(s)).unwrap();
        for (action, today) in [
            (
                Action::Pay {
                    trade_no: "T1".into(),
                },
                date(2030, 1, 1),
            ),
            (Action::CheckIn, date(2030, 1, 2)),
            (Action::CheckOut, date(2030, 1, 4)),
        ] {
            let e = room
                .decide_change(&first, action, None, at(60), today)
                .unwrap();
            room.apply(&e);
        }
        // The same room as format 4 held it.
        let calendar = room.calendar();
        let old = RoomStateV4 {
            key: key.clone(),
            room_type: king.clone(),
            housekeeping: room.housekeeping,
            occupant: room.occupant,
            calendar: calendar.clone(),
            reservations: room
                .ledger
                .iter()
                .map(|k| (k.id(), Arc::new(k.to_reservation(&key, &king))))
                .collect(),
            out_of_order: room.out_of_order.clone(),
        };
        let cfg = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&old, cfg).unwrap();
        let (decoded, _): (RoomStateV4, usize) =
            bincode::serde::decode_from_slice(&bytes, cfg).unwrap();
        assert_eq!(decoded.into_room_state().unwrap(), room);

        let mut holed = decoded_again(&bytes);
        holed.calendar.remove(&date(2030, 1, 2));
        holed.calendar.insert(date(2030, 1, 5), first);
        assert!(
            holed.into_room_state().is_err(),
            "nights that are not one run"
        );
        let mut stray = decoded_again(&bytes);
        stray
            .calendar
            .insert(date(2030, 1, 20), ReservationId(uuid::Uuid::from_u128(9)));
        assert!(
            stray.into_room_state().is_err(),
            "a night of an unknown reservation"
        );
    }

    fn decoded_again(bytes: &[u8]) -> RoomStateV4 {
        bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .unwrap()
            .0
    }
}
