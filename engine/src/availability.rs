//! The availability index: which nights each room has sold, grouped by hotel and room type.
//! A read-optimised view fed by the rooms' [`crate::room::NightsDelta`]s; rooms stay the
//! authority that decides a booking.
//!
//! Per room type, each night with anything sold has a bitmap of the type's rooms sold that
//! night (bit `i` is the type's `i`-th room in number order). Searching a stay ORs one
//! bitmap per night, so it costs `nights × rooms / 64` word operations however full the
//! hotel is; scanning rooms one by one costs the most exactly when a type is nearly sold
//! out and every booking of it walks past full rooms.

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::Date;

use crate::ids::{CodeMap, HotelId, RoomKey, RoomNumber, RoomTypeCode};
use crate::time::Stay;

/// One room type's rooms and what they sold.
#[derive(Clone, Default, Debug)]
struct TypeIndex {
    /// The type's rooms sorted by number; a room's position is its bit in `sold`.
    rooms: Vec<RoomNumber>,
    /// Night → bitmap of the rooms sold that night. A night with nothing sold is absent,
    /// so the map holds only nights that matter.
    sold: BTreeMap<Date, Vec<u64>>,
}

impl TypeIndex {
    /// Bitmap of the rooms sold on at least one night of `[from, to)`.
    fn taken(&self, from: Date, to: Date) -> Vec<u64> {
        let mut taken = vec![0u64; words(self.rooms.len())];
        for bits in self.sold.range(from..to).map(|(_, b)| b) {
            for (t, b) in taken.iter_mut().zip(bits) {
                *t |= b;
            }
        }
        taken
    }

    fn set(&mut self, pos: usize, night: Date, sold: bool) {
        let n = words(self.rooms.len());
        if sold {
            let bits = self.sold.entry(night).or_insert_with(|| vec![0; n]);
            bits[pos / 64] |= 1 << (pos % 64);
        } else if let Some(bits) = self.sold.get_mut(&night) {
            bits[pos / 64] &= !(1 << (pos % 64));
            if bits.iter().all(|w| *w == 0) {
                self.sold.remove(&night);
            }
        }
    }

    /// Makes room for a new room at `pos` (bits at and after it move up by one) and marks
    /// its `nights` sold.
    fn insert_room(&mut self, pos: usize, number: RoomNumber, nights: &BTreeSet<Date>) {
        self.rooms.insert(pos, number);
        let n = words(self.rooms.len());
        for bits in self.sold.values_mut() {
            bits.resize(n, 0);
            insert_bit(bits, pos);
        }
        for night in nights {
            self.set(pos, *night, true);
        }
    }

    /// Removes the room at `pos` (bits after it move down by one).
    fn remove_room(&mut self, pos: usize) {
        self.rooms.remove(pos);
        let n = words(self.rooms.len());
        for bits in self.sold.values_mut() {
            remove_bit(bits, pos);
            bits.truncate(n);
        }
        self.sold.retain(|_, bits| bits.iter().any(|w| *w != 0));
    }
}

/// Words of a bitmap over `rooms` rooms.
fn words(rooms: usize) -> usize {
    rooms.div_ceil(64)
}

/// Shifts the bits at and above `pos` up by one; bit `pos` becomes 0. The caller has made
/// room for the top bit.
fn insert_bit(bits: &mut [u64], pos: usize) {
    let (w, b) = (pos / 64, pos % 64);
    let mut carry = 0;
    for (i, word) in bits.iter_mut().enumerate().skip(w) {
        let out = *word >> 63;
        if i == w {
            let low = *word & ((1u64 << b) - 1);
            let high = *word & !((1u64 << b) - 1);
            *word = low | (high << 1);
        } else {
            *word = (*word << 1) | carry;
        }
        carry = out;
    }
}

/// Drops bit `pos`, shifting the bits above it down by one.
fn remove_bit(bits: &mut [u64], pos: usize) {
    let (w, b) = (pos / 64, pos % 64);
    for i in w..bits.len() {
        let from_next = bits.get(i + 1).map_or(0, |next| next & 1);
        let word = &mut bits[i];
        if i == w {
            let low = *word & ((1u64 << b) - 1);
            let high = (*word >> 1) & !((1u64 << b) - 1);
            *word = low | high | (from_next << 63);
        } else {
            *word = (*word >> 1) | (from_next << 63);
        }
    }
}

#[derive(Clone, Default, Debug)]
struct HotelIndex {
    /// Each type's rooms and their sold nights as bitmaps.
    by_type: CodeMap<RoomTypeCode, TypeIndex>,
    /// Each room's type, to move it between types on a retype.
    type_of: CodeMap<RoomNumber, RoomTypeCode>,
    /// Each room's sold nights: what a room brings when it joins a type, and the answer to
    /// "is this room free" without finding its bit.
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
        let nights = h.sold.entry(key.number.clone()).or_default().clone();
        if let Some(old) = h.type_of.insert(key.number.clone(), room_type.clone()) {
            if let Some(t) = h.by_type.get_mut(&old) {
                if let Ok(i) = t.rooms.binary_search(&key.number) {
                    t.remove_room(i);
                }
            }
        }
        let t = h.by_type.entry(room_type.clone()).or_default();
        if let Err(i) = t.rooms.binary_search(&key.number) {
            t.insert_room(i, key.number.clone(), &nights);
        }
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
        let Some(t) = hotel
            .type_of
            .get(&key.number)
            .and_then(|code| hotel.by_type.get_mut(code))
        else {
            return;
        };
        let Ok(pos) = t.rooms.binary_search(&key.number) else {
            return;
        };
        for d in booked {
            t.set(pos, *d, true);
        }
        for d in released {
            t.set(pos, *d, false);
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
        let Some(t) = self.type_index(hotel_id, room_type) else {
            return Vec::new();
        };
        let n = t.rooms.len();
        if n == 0 {
            return Vec::new();
        }
        let taken = t.taken(stay.arrival(), stay.departure());
        let start = start % n;
        let mut out = Vec::new();
        for (lo, hi) in [(start, n), (0, start)] {
            for_each_clear_bit(&taken, lo, hi, |pos| {
                if !exclude(&t.rooms[pos]) {
                    out.push(t.rooms[pos].clone());
                }
                out.len() < limit
            });
            if out.len() == limit {
                break;
            }
        }
        out
    }

    /// How many rooms of the type are free on every night of `stay`.
    pub fn free_count(&self, hotel_id: &HotelId, room_type: &RoomTypeCode, stay: &Stay) -> usize {
        self.type_index(hotel_id, room_type).map_or(0, |t| {
            let taken = t.taken(stay.arrival(), stay.departure());
            t.rooms.len() - ones(&taken)
        })
    }

    /// Rooms of the type free on `night`.
    pub fn free_on(&self, hotel_id: &HotelId, room_type: &RoomTypeCode, night: Date) -> usize {
        self.type_index(hotel_id, room_type).map_or(0, |t| {
            t.rooms.len() - t.sold.get(&night).map_or(0, |bits| ones(bits))
        })
    }

    /// Whether `room` is of `room_type` and free on every night.
    pub fn room_is_free(&self, key: &RoomKey, room_type: &RoomTypeCode, stay: &Stay) -> bool {
        self.hotels.get(&key.hotel_id).is_some_and(|h| {
            h.type_of.get(&key.number) == Some(room_type)
                && h.sold.get(&key.number).is_none_or(|s| {
                    s.range(stay.arrival()..stay.departure()).next().is_none()
                })
        })
    }

    fn type_index(&self, hotel_id: &HotelId, room_type: &RoomTypeCode) -> Option<&TypeIndex> {
        self.hotels.get(hotel_id)?.by_type.get(room_type)
    }
}

/// Calls `f` with each position in `[lo, hi)` whose bit is clear, in order, while it
/// returns true. Whole words of set bits cost one comparison.
fn for_each_clear_bit(bits: &[u64], lo: usize, hi: usize, mut f: impl FnMut(usize) -> bool) {
    let mut pos = lo;
    while pos < hi {
        let w = pos / 64;
        // Clear bits of this word at or after `pos` and before `hi`.
        let mut free = !bits[w] & (u64::MAX << (pos % 64));
        let word_end = (w + 1) * 64;
        if hi < word_end {
            free &= (1u64 << (hi % 64)) - 1;
        }
        while free != 0 {
            let bit = free.trailing_zeros() as usize;
            if !f(w * 64 + bit) {
                return;
            }
            free &= free - 1;
        }
        pos = word_end;
    }
}

fn ones(bits: &[u64]) -> usize {
    bits.iter().map(|w| w.count_ones() as usize).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit shifting against a plain `Vec<bool>` model, across word boundaries.
    #[test]
    fn insert_and_remove_bits_shift_like_a_vec() {
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut next = |n: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n as u64) as usize
        };
        let mut model: Vec<bool> = Vec::new();
        let mut bits: Vec<u64> = Vec::new();
        for step in 0..2000 {
            if model.is_empty() || next(3) > 0 {
                let pos = next(model.len() + 1);
                let value = next(2) == 1;
                model.insert(pos, false);
                bits.resize(words(model.len()), 0);
                insert_bit(&mut bits, pos);
                if value {
                    model[pos] = true;
                    bits[pos / 64] |= 1 << (pos % 64);
                }
            } else {
                let pos = next(model.len());
                model.remove(pos);
                remove_bit(&mut bits, pos);
                bits.truncate(words(model.len()));
            }
            let got: Vec<bool> = (0..model.len())
                .map(|i| bits[i / 64] & (1 << (i % 64)) != 0)
                .collect();
            assert_eq!(got, model, "step {step}");
            let spare = model.len() % 64;
            if spare != 0 {
                assert_eq!(bits[model.len() / 64] >> spare, 0, "no bits past the end");
            }
        }
    }
}
