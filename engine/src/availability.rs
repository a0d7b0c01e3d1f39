//! The availability index: which nights each room has sold, grouped by hotel and room type.
//! A read-optimised view fed by the rooms' [`crate::room::NightsDelta`]s; rooms stay the
//! authority that decides a booking.

use std::collections::BTreeSet;

use jiff::civil::Date;

use crate::ids::{CodeMap, HotelId, RoomKey, RoomNumber, RoomTypeCode};
use crate::time::Stay;

#[derive(Clone, Default, Debug)]
struct HotelIndex {
    /// Rooms of each type, sorted by number (a `Vec`, so a rotated start is O(1)).
    by_type: CodeMap<RoomTypeCode, Vec<RoomNumber>>,
    /// Each room's type, to move it between sets on a retype.
    type_of: CodeMap<RoomNumber, RoomTypeCode>,
    /// Each room's sold nights.
    sold: CodeMap<RoomNumber, BTreeSet<Date>>,
}

/// Sold nights per room, for availability queries and picking booking candidates.
#[derive(Clone, Default, Debug)]
pub struct AvailabilityIndex {
    hotels: CodeMap<HotelId, HotelIndex>,
}

impl AvailabilityIndex {
    /// Registers a room or changes its type.
    pub fn put_room(&mut self, key: &RoomKey, room_type: &RoomTypeCode) {
        let h = self.hotels.entry(key.hotel_id.clone()).or_default();
        if let Some(old) = h.type_of.insert(key.number.clone(), room_type.clone()) {
            if let Some(rooms) = h.by_type.get_mut(&old) {
                if let Ok(i) = rooms.binary_search(&key.number) {
                    rooms.remove(i);
                }
            }
        }
        let rooms = h.by_type.entry(room_type.clone()).or_default();
        if let Err(i) = rooms.binary_search(&key.number) {
            rooms.insert(i, key.number.clone());
        }
        h.sold.entry(key.number.clone()).or_default();
    }

    /// Records nights as sold / released.
    pub fn apply_delta(&mut self, key: &RoomKey, booked: &[Date], released: &[Date]) {
        if booked.is_empty() && released.is_empty() {
            return;
        }
        // Rooms are registered before they book, so the lookups find them without cloning
        // the codes for `entry` (this runs once per replayed event).
        let hotel = match self.hotels.get_mut(&key.hotel_id) {
            Some(h) => h,
            None => self.hotels.entry(key.hotel_id.clone()).or_default(),
        };
        let sold = match hotel.sold.get_mut(&key.number) {
            Some(s) => s,
            None => hotel.sold.entry(key.number.clone()).or_default(),
        };
        for d in booked {
            sold.insert(*d);
        }
        for d in released {
            sold.remove(d);
        }
    }

    /// Rooms of the type with every night of `stay` free, in room-number order.
    pub fn candidates(
        &self,
        hotel_id: &HotelId,
        room_type: &RoomTypeCode,
        stay: &Stay,
    ) -> Vec<RoomNumber> {
        self.candidates_from(hotel_id, room_type, stay, 0, usize::MAX, |_| false)
    }

    /// At most `limit` rooms of the type with every night of `stay` free, skipping those
    /// `exclude` names, starting at position `start` (mod the number of rooms) of the
    /// room-number order and wrapping around. Concurrent bookings start at different
    /// positions, so they ask different rooms instead of all racing for the first free one;
    /// the limit keeps the work per attempt small in a hotel with many rooms.
    pub fn candidates_from(
        &self,
        hotel_id: &HotelId,
        room_type: &RoomTypeCode,
        stay: &Stay,
        start: usize,
        limit: usize,
        exclude: impl Fn(&RoomNumber) -> bool,
    ) -> Vec<RoomNumber> {
        let Some(h) = self.hotels.get(hotel_id) else {
            return Vec::new();
        };
        let Some(rooms) = h.by_type.get(room_type).filter(|r| !r.is_empty()) else {
            return Vec::new();
        };
        let start = start % rooms.len();
        rooms[start..]
            .iter()
            .chain(&rooms[..start])
            .filter(|n| !exclude(n) && is_free(h.sold.get(*n), stay))
            .take(limit)
            .cloned()
            .collect()
    }

    /// How many rooms of the type are free on every night of `stay`.
    pub fn free_count(&self, hotel_id: &HotelId, room_type: &RoomTypeCode, stay: &Stay) -> usize {
        let Some(h) = self.hotels.get(hotel_id) else {
            return 0;
        };
        h.by_type.get(room_type).map_or(0, |rooms| {
            rooms
                .iter()
                .filter(|n| is_free(h.sold.get(*n), stay))
                .count()
        })
    }

    /// Rooms of the type free on `night`.
    pub fn free_on(&self, hotel_id: &HotelId, room_type: &RoomTypeCode, night: Date) -> usize {
        let Some(h) = self.hotels.get(hotel_id) else {
            return 0;
        };
        h.by_type.get(room_type).map_or(0, |rooms| {
            rooms
                .iter()
                .filter(|n| !h.sold.get(*n).is_some_and(|s| s.contains(&night)))
                .count()
        })
    }

    /// Whether `room` is of `room_type` and free on every night.
    pub fn room_is_free(&self, key: &RoomKey, room_type: &RoomTypeCode, stay: &Stay) -> bool {
        self.hotels.get(&key.hotel_id).is_some_and(|h| {
            h.type_of.get(&key.number) == Some(room_type) && is_free(h.sold.get(&key.number), stay)
        })
    }
}

fn is_free(sold: Option<&BTreeSet<Date>>, stay: &Stay) -> bool {
    sold.is_none_or(|s| s.range(stay.arrival()..stay.departure()).next().is_none())
}
