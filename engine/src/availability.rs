//! The availability index: which nights each room has sold, grouped by hotel and room type.
//! A read-optimised view fed by the rooms' [`crate::room::NightsDelta`]s; rooms stay the
//! authority that decides a booking.
//!
//! Per room type, each night with anything sold has a bitmap of the type's rooms sold that
//! night (bit `i` is the type's `i`-th room in number order). Searching a stay ORs one
//! bitmap per night, so it costs `nights × rooms / 64` word operations however full the
//! hotel is; scanning rooms one by one costs the most exactly when a type is nearly sold
//! out and every booking of it walks past full rooms.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasherDefault;

use jiff::civil::Date;

use crate::ids::{CodeMap, HotelId, IdHasher, RoomKey, RoomNumber, RoomTypeCode};
use crate::time::Stay;

/// One room type's rooms and what they sold.
#[derive(Clone, Default, Debug)]
struct TypeIndex {
    /// The room in each slot; a room's slot is its bit in `sold`. Slots are dense (a room
    /// leaving the type gives its slot to the last one), so a room's bit is found without
    /// a search.
    numbers: Vec<RoomNumber>,
    /// Slots in room-number order: the order candidates are offered in.
    order: Vec<u32>,
    /// Night → bitmap of the slots sold that night. A night with nothing sold is absent,
    /// so the map holds only nights that matter.
    sold: BTreeMap<Date, Vec<u64>>,
}

impl TypeIndex {
    /// Bitmap of the slots sold on at least one night of `[from, to)`.
    fn taken(&self, from: Date, to: Date) -> Vec<u64> {
        let mut taken = Vec::new();
        self.taken_into(from, to, &mut taken);
        taken
    }

    /// [`TypeIndex::taken`] into `taken`, whose allocation is reused.
    fn taken_into(&self, from: Date, to: Date, taken: &mut Vec<u64>) {
        taken.clear();
        taken.resize(words(self.numbers.len()), 0);
        for bits in self.sold.range(from..to).map(|(_, b)| b) {
            for (t, b) in taken.iter_mut().zip(bits) {
                *t |= b;
            }
        }
    }

    /// The nights `slot` has sold, in order.
    fn nights_of(&self, slot: u32) -> Vec<Date> {
        let (w, bit) = (slot as usize / 64, 1u64 << (slot % 64));
        self.sold
            .iter()
            .filter(|(_, bits)| bits[w] & bit != 0)
            .map(|(night, _)| *night)
            .collect()
    }

    /// Whether `slot` has sold nothing in `[from, to)`.
    fn slot_is_free(&self, slot: u32, from: Date, to: Date) -> bool {
        let (w, bit) = (slot as usize / 64, 1u64 << (slot % 64));
        self.sold
            .range(from..to)
            .all(|(_, bits)| bits[w] & bit == 0)
    }

    fn set(&mut self, slot: u32, night: Date, sold: bool) {
        let (w, bit) = (slot as usize / 64, 1u64 << (slot % 64));
        if sold {
            // Most nights already have a bitmap: look up before paying for `insert`.
            if let Some(bits) = self.sold.get_mut(&night) {
                bits[w] |= bit;
                return;
            }
            let mut bits = vec![0; words(self.numbers.len())];
            bits[w] |= bit;
            self.sold.insert(night, bits);
        } else if let Some(bits) = self.sold.get_mut(&night) {
            bits[w] &= !bit;
            if bits.iter().all(|x| *x == 0) {
                self.sold.remove(&night);
            }
        }
    }

    /// Position in `order` of the slot holding `number`.
    fn position(&self, number: &RoomNumber) -> Result<usize, usize> {
        self.order
            .binary_search_by(|s| self.numbers[*s as usize].cmp(number))
    }

    /// Adds a room with its sold `nights`; returns its slot.
    fn add(&mut self, number: RoomNumber, nights: &[Date]) -> u32 {
        let slot = self.numbers.len() as u32;
        let pos = self.position(&number).unwrap_or_else(|p| p);
        self.numbers.push(number);
        self.order.insert(pos, slot);
        let n = words(self.numbers.len());
        for bits in self.sold.values_mut() {
            bits.resize(n, 0);
        }
        for night in nights {
            self.set(slot, *night, true);
        }
        slot
    }

    /// Removes the room in `slot`. The last slot's room moves into it; returns that room
    /// and its new slot, so the caller can update where it keeps the room's slot.
    fn remove(&mut self, slot: u32) -> Option<(RoomNumber, u32)> {
        let last = self.numbers.len() as u32 - 1;
        if let Ok(p) = self.position(&self.numbers[slot as usize]) {
            self.order.remove(p);
        }
        if slot != last {
            if let Ok(p) = self.position(&self.numbers[last as usize]) {
                self.order[p] = slot;
            }
        }
        let n = words(last as usize);
        for bits in self.sold.values_mut() {
            let last_sold = bits[last as usize / 64] & (1 << (last % 64)) != 0;
            bits[last as usize / 64] &= !(1 << (last % 64));
            let (w, bit) = (slot as usize / 64, 1u64 << (slot % 64));
            if slot != last {
                if last_sold {
                    bits[w] |= bit;
                } else {
                    bits[w] &= !bit;
                }
            }
            bits.truncate(n);
        }
        self.sold.retain(|_, bits| bits.iter().any(|w| *w != 0));
        self.numbers.swap_remove(slot as usize);
        (slot != last).then(|| (self.numbers[slot as usize].clone(), slot))
    }
}

/// Words of a bitmap over `rooms` rooms.
fn words(rooms: usize) -> usize {
    rooms.div_ceil(64)
}

/// One room as the index knows it. Its sold nights are its bits in its type's bitmaps
/// only: the room's own calendar is the authority, and a third copy per night would cost
/// more than the bitmaps themselves.
#[derive(Clone, Debug)]
struct RoomEntry {
    /// Its type, to find its bitmaps and to move it between types on a retype.
    room_type: RoomTypeCode,
    /// Its slot (bit) in its type's bitmaps.
    slot: u32,
}

#[derive(Clone, Default, Debug)]
struct HotelIndex {
    /// Each type's rooms and their sold nights as bitmaps.
    by_type: CodeMap<RoomTypeCode, TypeIndex>,
    /// Each room (one lookup finds both its type and its nights).
    rooms: CodeMap<RoomNumber, RoomEntry>,
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
        let old = match h.rooms.get(&key.number) {
            Some(r) if r.room_type == *room_type => return,
            Some(r) => Some((r.room_type.clone(), r.slot)),
            None => None,
        };
        let mut nights = Vec::new();
        if let Some((old_type, slot)) = old {
            let old_index = h.by_type.get_mut(&old_type);
            let moved = old_index.and_then(|t| {
                nights = t.nights_of(slot);
                t.remove(slot)
            });
            if let Some((number, slot)) = moved {
                if let Some(r) = h.rooms.get_mut(&number) {
                    r.slot = slot;
                }
            }
        }
        let slot = h
            .by_type
            .entry(room_type.clone())
            .or_default()
            .add(key.number.clone(), &nights);
        h.rooms.insert(
            key.number.clone(),
            RoomEntry {
                room_type: room_type.clone(),
                slot,
            },
        );
    }

    /// Records nights as sold / released. The room must have been registered with
    /// [`AvailabilityIndex::put_room`] (rooms are set up before they book).
    pub fn apply_delta(&mut self, key: &RoomKey, booked: &[Date], released: &[Date]) {
        if booked.is_empty() && released.is_empty() {
            return;
        }
        let Some(hotel) = self.hotels.get_mut(&key.hotel_id) else {
            return;
        };
        let Some(room) = hotel.rooms.get(&key.number) else {
            return;
        };
        let Some(t) = hotel.by_type.get_mut(&room.room_type) else {
            return;
        };
        for d in booked {
            t.set(room.slot, *d, true);
        }
        for d in released {
            t.set(room.slot, *d, false);
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
        let n = t.order.len();
        if n == 0 {
            return Vec::new();
        }
        let taken = t.taken(stay.arrival(), stay.departure());
        let start = start % n;
        let mut out = Vec::with_capacity(limit.min(n));
        for slot in t.order[start..].iter().chain(&t.order[..start]) {
            if out.len() == limit {
                break;
            }
            let (w, bit) = (*slot as usize / 64, 1u64 << (slot % 64));
            let number = &t.numbers[*slot as usize];
            if taken[w] & bit == 0 && !exclude(number) {
                out.push(number.clone());
            }
        }
        out
    }

    /// How many rooms of the type are free on every night of `stay`.
    pub fn free_count(&self, hotel_id: &HotelId, room_type: &RoomTypeCode, stay: &Stay) -> usize {
        self.type_index(hotel_id, room_type).map_or(0, |t| {
            let taken = t.taken(stay.arrival(), stay.departure());
            t.numbers.len() - ones(&taken)
        })
    }

    /// Rooms of the type free on `night`.
    pub fn free_on(&self, hotel_id: &HotelId, room_type: &RoomTypeCode, night: Date) -> usize {
        self.type_index(hotel_id, room_type).map_or(0, |t| {
            t.numbers.len() - t.sold.get(&night).map_or(0, |bits| ones(bits))
        })
    }

    /// Each room of the type with how many nights of `stay` it has free, in room-number
    /// order: which rooms a rearrangement reads first ([`crate::rearrange`]).
    pub fn free_nights_by_room(
        &self,
        hotel_id: &HotelId,
        room_type: &RoomTypeCode,
        stay: &Stay,
    ) -> Vec<(usize, RoomNumber)> {
        let Some(t) = self.type_index(hotel_id, room_type) else {
            return Vec::new();
        };
        let nights = stay.nights() as usize;
        let sold: Vec<&Vec<u64>> = t
            .sold
            .range(stay.arrival()..stay.departure())
            .map(|(_, bits)| bits)
            .collect();
        t.order
            .iter()
            .map(|slot| {
                let (w, bit) = (*slot as usize / 64, 1u64 << (slot % 64));
                let sold_nights = sold.iter().filter(|bits| bits[w] & bit != 0).count();
                (nights - sold_nights, t.numbers[*slot as usize].clone())
            })
            .collect()
    }

    /// Whether `room` is of `room_type` and free on every night.
    pub fn room_is_free(&self, key: &RoomKey, room_type: &RoomTypeCode, stay: &Stay) -> bool {
        let Some(hotel) = self.hotels.get(&key.hotel_id) else {
            return false;
        };
        hotel.rooms.get(&key.number).is_some_and(|r| {
            r.room_type == *room_type
                && hotel
                    .by_type
                    .get(room_type)
                    .is_some_and(|t| t.slot_is_free(r.slot, stay.arrival(), stay.departure()))
        })
    }

    fn type_index(&self, hotel_id: &HotelId, room_type: &RoomTypeCode) -> Option<&TypeIndex> {
        self.hotels.get(hotel_id)?.by_type.get(room_type)
    }

    /// Packs one booking of a batch: the first room of the type, from position `start`
    /// of the room-number order (wrapping around), that is free for `stay` both in the
    /// index and in what the batch claimed so far (`packing`), and holds fewer than
    /// `per_room` of the batch's bookings. The room is recorded in `packing` as taking
    /// the stay; the index does not change (the room decides, and tells the index then).
    /// `None` when no room is free for the stay, and then `packing` is unchanged.
    ///
    /// One OR of bitmaps per night of the stay (the index's and the batch's), then one
    /// bit test per room until a free one: stays of different nights share a room, and a
    /// booking walks past rooms its batch filled without looking into them.
    pub fn pack(
        &self,
        packing: &mut Packing,
        hotel_id: &HotelId,
        room_type: &RoomTypeCode,
        stay: &Stay,
        start: usize,
        per_room: usize,
    ) -> Option<Packed> {
        let t = self.type_index(hotel_id, room_type)?;
        let n = t.order.len();
        if n == 0 {
            return None;
        }
        let next_room = packing.rooms;
        let (from, to) = (stay.arrival(), stay.departure());
        let at = packing.claims(hotel_id, room_type, n);
        let (claims, taken) = (&mut packing.claims[at], &mut packing.taken);
        t.taken_into(from, to, taken);
        for (_, offset) in claims.nights.range(from..to) {
            for (t, b) in taken.iter_mut().zip(&claims.bits[*offset..]) {
                *t |= b;
            }
        }
        for (t, f) in taken.iter_mut().zip(&claims.full) {
            *t |= f;
        }
        let start = start % n;
        let slot = t.order[start..]
            .iter()
            .chain(&t.order[..start])
            .copied()
            .find(|s| taken[*s as usize / 64] & (1u64 << (s % 64)) == 0)?;
        let (w, bit) = (slot as usize / 64, 1u64 << (slot % 64));
        for night in stay.each_night() {
            let bits = &mut claims.bits;
            let offset = *claims.nights.entry(night).or_insert_with(|| {
                bits.resize(bits.len() + words(n), 0);
                bits.len() - words(n)
            });
            bits[offset + w] |= bit;
        }
        let (room, held) = claims.rooms.entry(slot).or_insert((next_room, 0));
        let room = *room;
        *held += 1;
        if *held >= per_room {
            claims.full[w] |= bit;
        }
        if room == next_room {
            packing.rooms += 1;
        }
        Some(Packed {
            number: t.numbers[slot as usize].clone(),
            room,
        })
    }
}

/// What a batch claimed so far while its bookings are packed into rooms
/// ([`AvailabilityIndex::pack`]): per room type, the nights each room took for the batch
/// and how many of the batch's bookings it holds. Lives as long as one batch's placement.
#[derive(Debug, Default)]
pub struct Packing {
    /// Where each type's claims are in `claims`, per hotel and room type (an embedder's
    /// batch may span many hotels, so found by hash, and by borrowed codes: no clone per
    /// booking).
    types: CodeMap<HotelId, CodeMap<RoomTypeCode, usize>>,
    /// The claims per type, in the order the batch first packed into each.
    claims: Vec<TypeClaims>,
    /// The type the last booking packed was of, and where its claims are: a batch's
    /// bookings mostly come in runs of one type, which this finds without hashing.
    last: Option<(HotelId, RoomTypeCode, usize)>,
    /// Rooms claimed so far; the next room claimed gets this number ([`Packed::room`]).
    rooms: usize,
    /// The bitmap of a booking's taken rooms, kept for the next booking: one allocation
    /// per batch, not one per booking.
    taken: Vec<u64>,
}

impl Packing {
    /// Where the claims on the type's rooms (`rooms` of them) are in `claims`, added
    /// empty at first.
    fn claims(&mut self, hotel_id: &HotelId, room_type: &RoomTypeCode, rooms: usize) -> usize {
        match &self.last {
            Some((h, t, at)) if h == hotel_id && t == room_type => *at,
            _ => {
                let types = match self.types.get_mut(hotel_id) {
                    Some(types) => types,
                    None => self.types.entry(hotel_id.clone()).or_default(),
                };
                let at = match types.get(room_type) {
                    Some(at) => *at,
                    None => {
                        self.claims.push(TypeClaims {
                            nights: BTreeMap::new(),
                            bits: Vec::new(),
                            full: vec![0; words(rooms)],
                            rooms: HashMap::default(),
                        });
                        types.insert(room_type.clone(), self.claims.len() - 1);
                        self.claims.len() - 1
                    }
                };
                self.last = Some((hotel_id.clone(), room_type.clone(), at));
                at
            }
        }
    }
}

/// A batch's claims on one type's rooms, by slot (as [`TypeIndex`]'s bitmaps).
#[derive(Debug)]
struct TypeClaims {
    /// Night → the offset in `bits` of its bitmap of the slots the batch took that night.
    nights: BTreeMap<Date, usize>,
    /// The nights' bitmaps, back to back, each as long as `full`: one growing buffer, not
    /// one allocation per night.
    bits: Vec<u64>,
    /// Slots holding as many of the batch's bookings as a room takes in one batch.
    full: Vec<u64>,
    /// Slot → its room's number among the batch's rooms, and the bookings it holds.
    rooms: HashMap<u32, (usize, usize), BuildHasherDefault<IdHasher>>,
}

/// The room a booking of a batch was packed into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// The room.
    pub number: RoomNumber,
    /// Its number among the rooms the batch claimed, in the order they were first
    /// claimed (0, 1, 2, …): where the caller keeps what goes to that room.
    pub room: usize,
}

fn ones(bits: &[u64]) -> usize {
    bits.iter().map(|w| w.count_ones() as usize).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn room(n: usize) -> RoomNumber {
        RoomNumber::parse(&n.to_string()).unwrap()
    }

    /// A batch packed into one type's rooms: stays of different nights share the first
    /// free room, an overlapping stay takes the next, nights sold in the index and a
    /// room's per-batch limit are respected, the search starts at `start` and wraps, each
    /// room keeps the number it was first claimed with, and another type's claims block
    /// nothing here.
    #[test]
    fn pack_shares_rooms_between_stays_that_do_not_overlap() {
        let h = HotelId::parse("H").unwrap();
        let (king, twin) = (
            RoomTypeCode::parse("KING").unwrap(),
            RoomTypeCode::parse("TWIN").unwrap(),
        );
        let d = |day| jiff::civil::date(2030, 1, day);
        let stay = |a, b| Stay::between(d(a), d(b)).unwrap();
        let key = |n| RoomKey {
            hotel_id: h.clone(),
            number: room(n),
        };
        let mut index = AvailabilityIndex::default();
        for n in [3, 1, 2] {
            index.put_room(&key(n), &king);
        }
        index.put_room(&key(9), &twin);
        // Room 1 sold on the 10th, room 3 on the 30th.
        index.apply_delta(&key(1), &[d(10)], &[]);
        index.apply_delta(&key(3), &[d(30)], &[]);
        let mut p = Packing::default();
        let pack = |p: &mut Packing, t: &RoomTypeCode, s: &Stay, start, per_room| {
            index
                .pack(p, &h, t, s, start, per_room)
                .map(|packed| (packed.number.to_string(), packed.room))
        };
        let one = |s| Some((s, 0));
        assert_eq!(pack(&mut p, &king, &stay(1, 3), 0, 3), one("1".into()));
        assert_eq!(pack(&mut p, &king, &stay(3, 5), 0, 3), one("1".into()));
        // Overlaps the first: the next room, which gets the batch's next number.
        assert_eq!(
            pack(&mut p, &king, &stay(2, 4), 0, 3),
            Some(("2".into(), 1))
        );
        // Room 1 sold the 10th in the index.
        assert_eq!(
            pack(&mut p, &king, &stay(9, 11), 0, 3),
            Some(("2".into(), 1))
        );
        // Room 1 then holds three, its limit here; room 2 takes the next until it does too.
        assert_eq!(pack(&mut p, &king, &stay(5, 6), 0, 3), one("1".into()));
        assert_eq!(
            pack(&mut p, &king, &stay(20, 21), 0, 3),
            Some(("2".into(), 1))
        );
        assert_eq!(
            pack(&mut p, &king, &stay(21, 22), 0, 3),
            Some(("3".into(), 2))
        );
        // Starting at the third room; once it is full too, no room takes the stay.
        assert_eq!(
            pack(&mut p, &king, &stay(22, 23), 2, 3),
            Some(("3".into(), 2))
        );
        assert_eq!(
            pack(&mut p, &king, &stay(23, 24), 2, 3),
            Some(("3".into(), 2))
        );
        assert_eq!(pack(&mut p, &king, &stay(2, 3), 2, 3), None);
        // A new batch starting at the third room, sold that night, wraps round to the first.
        let mut fresh = Packing::default();
        assert_eq!(
            pack(&mut fresh, &king, &stay(30, 31), 2, 3),
            one("1".into())
        );
        // The other type has claims of its own.
        assert_eq!(
            pack(&mut p, &twin, &stay(1, 3), 0, 3),
            Some(("9".into(), 3))
        );
        assert_eq!(pack(&mut p, &twin, &stay(2, 3), 0, 3), None);
        // Back to the first type: its claims are as it left them (every room full).
        assert_eq!(pack(&mut p, &king, &stay(28, 29), 0, 3), None);
        // Unknown types and hotels have no rooms.
        let nope = RoomTypeCode::parse("NOPE").unwrap();
        assert_eq!(pack(&mut p, &nope, &stay(1, 2), 0, 3), None);
        let g = HotelId::parse("G").unwrap();
        assert_eq!(index.pack(&mut p, &g, &king, &stay(1, 2), 0, 3), None);
        // Another hotel's room of the same number and type has claims of its own.
        index.put_room(
            &RoomKey {
                hotel_id: g.clone(),
                number: room(1),
            },
            &king,
        );
        let packed = index.pack(&mut p, &g, &king, &stay(1, 3), 0, 3);
        assert_eq!(
            packed,
            Some(Packed {
                number: room(1),
                room: 4
            })
        );
    }

    proptest! {
        /// Packing agrees with a naive model: a booking goes to the first room in
        /// room-number order from `start` whose nights of the stay are free in the index
        /// and not taken by an earlier booking of the batch, and that holds fewer than
        /// `per_room` of them; rooms are numbered in the order they were first claimed.
        /// Up to 150 rooms (three words per night), in random order, some nights sold.
        #[test]
        fn pack_agrees_with_a_naive_model(
            rooms in 1usize..150,
            sold in proptest::collection::vec((0usize..150, 0i8..20), 0..200),
            stays in proptest::collection::vec((0usize..200, 0i8..20, 1i8..4), 1..60),
            per_room in 1usize..5,
        ) {
            let h = HotelId::parse("H").unwrap();
            let t = RoomTypeCode::parse("STD").unwrap();
            let day0 = jiff::civil::date(2030, 1, 1);
            let d = |i: i8| day0.checked_add(jiff::Span::new().days(i)).unwrap();
            let key = |n: usize| RoomKey { hotel_id: h.clone(), number: room(n) };
            let mut index = AvailabilityIndex::default();
            // Joined in a scrambled order; numbers sort as strings.
            for n in (0..rooms).map(|i| (i * 7919) % rooms) {
                index.put_room(&key(n), &t);
            }
            let mut by_number: Vec<usize> = (0..rooms).collect();
            by_number.sort_by_key(|n| room(*n));
            let mut sold_nights = std::collections::HashSet::new();
            for (n, night) in sold {
                let n = n % rooms;
                index.apply_delta(&key(n), &[d(night)], &[]);
                sold_nights.insert((n, night));
            }
            let mut p = Packing::default();
            // The model: per room, its batch's stays and its number among the batch's rooms.
            let mut claimed: std::collections::HashMap<usize, (Vec<(i8, i8)>, usize)> =
                Default::default();
            for (start, arrival, nights) in stays {
                let (a, b) = (arrival, arrival + nights);
                let stay = Stay::between(d(a), d(b)).unwrap();
                let expected = (0..rooms).map(|i| by_number[(start + i) % rooms]).find(|n| {
                    let free = (a..b).all(|night| !sold_nights.contains(&(*n, night)));
                    let batch = claimed.get(n).is_none_or(|(stays, _)| {
                        stays.len() < per_room
                            && stays.iter().all(|(x, y)| *y <= a || b <= *x)
                    });
                    free && batch
                });
                let got = index.pack(&mut p, &h, &t, &stay, start, per_room);
                match expected {
                    None => prop_assert_eq!(got, None),
                    Some(n) => {
                        let next = claimed.len();
                        let entry = claimed.entry(n).or_insert((Vec::new(), next));
                        entry.0.push((a, b));
                        prop_assert_eq!(got, Some(Packed { number: room(n), room: entry.1 }));
                    }
                }
            }
        }
    }

    /// Rooms join and leave a type in random order with random sold nights; after every
    /// step each room's bit answers exactly for its nights, and candidates come in
    /// room-number order. Crosses word boundaries (up to 150 rooms).
    /// Each room's free nights of a stay, counted from its bits across word boundaries
    /// (70 rooms: two words per night), in room-number order whatever the order rooms
    /// joined in; nights outside the stay and other types do not count.
    #[test]
    fn free_nights_by_room_counts_each_rooms_free_nights_of_the_stay() {
        let h = HotelId::parse("H").unwrap();
        let (king, twin) = (
            RoomTypeCode::parse("KING").unwrap(),
            RoomTypeCode::parse("TWIN").unwrap(),
        );
        let d = |day| jiff::civil::date(2030, 1, day);
        let key = |n| RoomKey {
            hotel_id: h.clone(),
            number: room(n),
        };
        let mut index = AvailabilityIndex::default();
        for n in (100..170).rev() {
            index.put_room(&key(n), &king);
        }
        index.put_room(&key(500), &twin);
        // Room 100 sold on the 2nd, room 164 (second word) on the 2nd and 3rd, room 101 on
        // the 9th (outside the stay); the twin room fully.
        index.apply_delta(&key(100), &[d(2)], &[]);
        index.apply_delta(&key(164), &[d(2), d(3)], &[]);
        index.apply_delta(&key(101), &[d(9)], &[]);
        index.apply_delta(&key(500), &[d(1), d(2), d(3)], &[]);
        let stay = Stay::between(d(1), d(4)).unwrap();
        let free = index.free_nights_by_room(&h, &king, &stay);
        assert_eq!(free.len(), 70);
        let numbers: Vec<RoomNumber> = free.iter().map(|(_, n)| n.clone()).collect();
        let mut sorted = numbers.clone();
        sorted.sort();
        assert_eq!(numbers, sorted, "room-number order");
        let of = |n| free.iter().find(|(_, r)| *r == room(n)).unwrap().0;
        assert_eq!((of(100), of(164), of(101), of(150)), (2, 1, 3, 3));
        assert_eq!(
            index.free_nights_by_room(&h, &twin, &stay),
            vec![(0, room(500))]
        );
        assert!(index
            .free_nights_by_room(&h, &RoomTypeCode::parse("NONE").unwrap(), &stay)
            .is_empty());
    }

    /// A room given another type takes its sold nights along (they are its bits in the
    /// old type's bitmaps, not a list of its own).
    #[test]
    fn a_retyped_room_takes_its_sold_nights_to_the_new_type() {
        let key = RoomKey {
            hotel_id: HotelId::parse("H").unwrap(),
            number: room(101),
        };
        let (king, twin) = (
            RoomTypeCode::parse("KING").unwrap(),
            RoomTypeCode::parse("TWIN").unwrap(),
        );
        let d = |day| jiff::civil::date(2030, 1, day);
        let mut index = AvailabilityIndex::default();
        index.put_room(&key, &king);
        index.apply_delta(&key, &[d(2), d(3)], &[]);
        let stay = |a, b| Stay::between(d(a), d(b)).unwrap();
        assert!(!index.room_is_free(&key, &king, &stay(1, 3)));
        assert!(index.room_is_free(&key, &king, &stay(4, 6)));
        index.put_room(&key, &twin);
        assert!(
            !index.room_is_free(&key, &king, &stay(4, 6)),
            "not a KING any more"
        );
        assert!(!index.room_is_free(&key, &twin, &stay(3, 4)));
        assert!(index.room_is_free(&key, &twin, &stay(4, 6)));
        assert_eq!(index.free_on(&key.hotel_id, &twin, d(2)), 0);
        assert_eq!(index.free_on(&key.hotel_id, &king, d(2)), 0);
        assert_eq!(index.free_count(&key.hotel_id, &king, &stay(2, 3)), 0);
        index.apply_delta(&key, &[], &[d(2), d(3)]);
        assert!(index.room_is_free(&key, &twin, &stay(1, 6)));
    }

    #[test]
    fn slots_stay_dense_and_bits_follow_their_rooms() {
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut next = |n: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n as u64) as usize
        };
        let base = jiff::civil::date(2030, 1, 1);
        let night = |i: usize| crate::catalog::add_days(base, i as i64);
        let mut t = TypeIndex::default();
        // The model: room → its sold nights; and where the index keeps each room's slot.
        let mut model: BTreeMap<RoomNumber, std::collections::BTreeSet<Date>> = BTreeMap::new();
        let mut slots: BTreeMap<RoomNumber, u32> = BTreeMap::new();
        for step in 0..3000 {
            if model.len() < 150 && (model.is_empty() || next(3) > 0) {
                let number = room(next(400));
                if model.contains_key(&number) {
                    continue;
                }
                let nights: std::collections::BTreeSet<Date> =
                    (0..next(4)).map(|_| night(next(10))).collect();
                let list: Vec<Date> = nights.iter().copied().collect();
                let slot = t.add(number.clone(), &list);
                slots.insert(number.clone(), slot);
                model.insert(number, nights);
            } else {
                let number = model.keys().nth(next(model.len())).unwrap().clone();
                let slot = slots.remove(&number).unwrap();
                if let Some((moved, to)) = t.remove(slot) {
                    slots.insert(moved, to);
                }
                model.remove(&number);
            }
            for (number, slot) in &slots {
                assert_eq!(&t.numbers[*slot as usize], number, "step {step}");
                for i in 0..10 {
                    let sold = t
                        .sold
                        .get(&night(i))
                        .is_some_and(|b| b[*slot as usize / 64] & (1 << (slot % 64)) != 0);
                    assert_eq!(sold, model[number].contains(&night(i)), "step {step}");
                }
                let nights: Vec<Date> = model[number].iter().copied().collect();
                assert_eq!(t.nights_of(*slot), nights, "step {step}");
                let free = t.slot_is_free(*slot, night(2), night(5));
                assert_eq!(
                    free,
                    !nights.iter().any(|d| (night(2)..night(5)).contains(d))
                );
            }
            let ordered: Vec<&RoomNumber> =
                t.order.iter().map(|s| &t.numbers[*s as usize]).collect();
            assert_eq!(ordered, model.keys().collect::<Vec<_>>(), "step {step}");
        }
    }
}
