//! Hotels, room types, rooms and rates: the slowly changing setup data.

use std::collections::BTreeMap;
use std::collections::HashMap;

use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

use crate::error::{DomainError, ValidationError};
use crate::event::Event;
use crate::ids::{HotelId, RoomNumber, RoomTypeCode};
use crate::money::{parse_amount_minor, Currency, Money};
use crate::reservation::{BookInput, BookRequest};
use crate::time::{HotelTz, Stay, StayLimits};

/// Most hotels one engine holds.
pub const MAX_HOTELS: usize = 10_000;
/// Most room types per hotel.
pub const MAX_ROOM_TYPES_PER_HOTEL: usize = 1_000;
/// Most rooms per hotel.
pub const MAX_ROOMS_PER_HOTEL: usize = 100_000;
/// Most guests a room type may sleep.
pub const MAX_CAPACITY: u16 = 64;
/// Most nights one rate override may span (the booking horizon).
pub const MAX_RATE_RANGE_NIGHTS: u32 = 730;
/// Most nightly overrides one room type keeps (two years of nights, with room to spare).
pub const MAX_OVERRIDES_PER_ROOM_TYPE: usize = 1_500;

/// Whether an upsert made something new; the API answers 201 or 200 by it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Upsert {
    /// It did not exist before.
    Created,
    /// It existed and was replaced.
    Updated,
}

/// A room type with its prices.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct RoomType {
    /// Display name.
    pub name: String,
    /// Most guests.
    pub capacity: u16,
    /// Nightly price in minor units when no override applies.
    pub base_rate_minor: i64,
    /// Per-night overrides in minor units.
    #[serde(with = "crate::codec::date_map")]
    pub overrides: BTreeMap<Date, i64>,
}

/// A hotel and everything set up for it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct Hotel {
    /// Client-chosen code.
    pub id: HotelId,
    /// Display name.
    pub name: String,
    /// Where "today" is computed.
    pub time_zone: HotelTz,
    /// The currency of every price.
    pub currency: Currency,
    /// Room types by code.
    pub room_types: BTreeMap<RoomTypeCode, RoomType>,
    /// Each room's type, by room number.
    pub rooms: BTreeMap<RoomNumber, RoomTypeCode>,
}

impl Hotel {
    /// Number of rooms of each type (types without rooms included, with 0).
    pub fn room_counts(&self) -> BTreeMap<&RoomTypeCode, usize> {
        let mut counts: BTreeMap<&RoomTypeCode, usize> =
            self.room_types.keys().map(|c| (c, 0)).collect();
        for t in self.rooms.values() {
            *counts.entry(t).or_default() += 1;
        }
        counts
    }
}

/// A priced stay.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Quote {
    /// Each night with its rate in minor units.
    pub nightly: Vec<(Date, i64)>,
    /// The sum.
    pub total: Money,
}

fn parse_name(field: &'static str, name: &str) -> Result<String, ValidationError> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 200 || trimmed.chars().any(char::is_control)
    {
        return Err(ValidationError::new(
            field,
            "must be 1 to 200 printable characters",
        ));
    }
    Ok(trimmed.to_owned())
}

/// All hotels. Decides setup commands and applies setup events.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct Catalog {
    /// Hotels by id.
    pub hotels: HashMap<HotelId, Hotel>,
}

impl Catalog {
    /// The hotel, or `not_found`.
    pub fn hotel(&self, id: &HotelId) -> Result<&Hotel, DomainError> {
        self.hotels.get(id).ok_or(DomainError::NotFound("hotel"))
    }

    /// The room type, or `not_found`.
    pub fn room_type(
        &self,
        hotel_id: &HotelId,
        code: &RoomTypeCode,
    ) -> Result<(&Hotel, &RoomType), DomainError> {
        let hotel = self.hotel(hotel_id)?;
        let rt = hotel
            .room_types
            .get(code)
            .ok_or(DomainError::NotFound("room type"))?;
        Ok((hotel, rt))
    }

    /// Decides `PUT /hotels/{id}`.
    pub fn put_hotel(
        &self,
        id: HotelId,
        name: &str,
        time_zone: &str,
        currency: &str,
    ) -> Result<(Event, Upsert), DomainError> {
        let name = parse_name("name", name)?;
        let time_zone = HotelTz::parse(time_zone)?;
        let currency = Currency::parse(currency)?;
        let upsert = match self.hotels.get(&id) {
            Some(h) if h.currency != currency && !h.room_types.is_empty() => {
                return Err(DomainError::CurrencyLocked)
            }
            Some(_) => Upsert::Updated,
            None if self.hotels.len() >= MAX_HOTELS => {
                return Err(DomainError::LimitReached("hotels per engine"))
            }
            None => Upsert::Created,
        };
        Ok((
            Event::HotelPut {
                hotel_id: id,
                name,
                time_zone,
                currency,
            },
            upsert,
        ))
    }

    /// Decides `PUT /hotels/{id}/room-types/{code}`.
    pub fn put_room_type(
        &self,
        hotel_id: &HotelId,
        code: RoomTypeCode,
        name: &str,
        capacity: u16,
        base_rate_minor: i64,
    ) -> Result<(Event, Upsert), DomainError> {
        let hotel = self.hotel(hotel_id)?;
        let name = parse_name("name", name)?;
        if !(1..=MAX_CAPACITY).contains(&capacity) {
            return Err(
                ValidationError::new("capacity", format!("must be 1 to {MAX_CAPACITY}")).into(),
            );
        }
        let base_rate_minor = parse_amount_minor("base_rate", base_rate_minor)?;
        let upsert = if hotel.room_types.contains_key(&code) {
            Upsert::Updated
        } else if hotel.room_types.len() >= MAX_ROOM_TYPES_PER_HOTEL {
            return Err(DomainError::LimitReached("room types per hotel"));
        } else {
            Upsert::Created
        };
        Ok((
            Event::RoomTypePut {
                hotel_id: hotel_id.clone(),
                code,
                name,
                capacity,
                base_rate_minor,
            },
            upsert,
        ))
    }

    /// Decides `PUT /hotels/{id}/rooms/{number}`. Whether an existing room may change type
    /// is the room's own decision (it knows its reservations); this checks the catalog side.
    pub fn put_room(
        &self,
        hotel_id: &HotelId,
        number: RoomNumber,
        room_type: RoomTypeCode,
    ) -> Result<(Event, Upsert), DomainError> {
        let hotel = self.hotel(hotel_id)?;
        if !hotel.room_types.contains_key(&room_type) {
            return Err(DomainError::NotFound("room type"));
        }
        let upsert = if hotel.rooms.contains_key(&number) {
            Upsert::Updated
        } else if hotel.rooms.len() >= MAX_ROOMS_PER_HOTEL {
            return Err(DomainError::LimitReached("rooms per hotel"));
        } else {
            Upsert::Created
        };
        Ok((
            Event::RoomPut {
                hotel_id: hotel_id.clone(),
                number,
                room_type,
            },
            upsert,
        ))
    }

    /// Decides `PUT /hotels/{id}/room-types/{code}/rates`: a nightly override for `[from, to)`.
    pub fn put_rate(
        &self,
        hotel_id: &HotelId,
        code: &RoomTypeCode,
        from: Date,
        to: Date,
        amount_minor: i64,
    ) -> Result<Event, DomainError> {
        let (_, rt) = self.room_type(hotel_id, code)?;
        let range = Stay::between(from, to)
            .ok_or_else(|| ValidationError::new("to", "must be after from"))?;
        if range.nights() > MAX_RATE_RANGE_NIGHTS {
            return Err(ValidationError::new(
                "to",
                format!("a rate range spans at most {MAX_RATE_RANGE_NIGHTS} nights"),
            )
            .into());
        }
        let amount_minor = parse_amount_minor("amount", amount_minor)?;
        let new_nights = range
            .each_night()
            .filter(|d| !rt.overrides.contains_key(d))
            .count();
        if rt.overrides.len() + new_nights > MAX_OVERRIDES_PER_ROOM_TYPE {
            return Err(DomainError::LimitReached("rate overrides per room type"));
        }
        Ok(Event::RatePut {
            hotel_id: hotel_id.clone(),
            room_type: code.clone(),
            from,
            to,
            amount_minor,
        })
    }

    /// Validates a booking against this catalog and prices it: the hotel and room type
    /// exist, the stay is valid for the hotel's today at `now` and within `limits`, the
    /// guests fit the type, and a requested room exists and is of the type. The one place
    /// a booking is checked before a room decides on its nights.
    pub fn price_booking(
        &self,
        input: BookInput,
        now: Timestamp,
        limits: StayLimits,
    ) -> Result<(BookRequest, Money), DomainError> {
        let (hotel, rt) = self.room_type(&input.hotel_id, &input.room_type)?;
        let stay = Stay::parse(
            input.arrival,
            input.departure,
            hotel.time_zone.today(now),
            limits,
        )?;
        if input.guests == 0 || input.guests > rt.capacity {
            return Err(ValidationError::new(
                "guests",
                format!("must be 1 to {} for this room type", rt.capacity),
            )
            .into());
        }
        if let Some(n) = &input.room {
            match hotel.rooms.get(n) {
                None => return Err(DomainError::NotFound("room")),
                Some(t) if *t != input.room_type => {
                    return Err(ValidationError::new(
                        "room",
                        format!("room {n} is not of type {}", input.room_type),
                    )
                    .into())
                }
                Some(_) => {}
            }
        }
        let quote = price(hotel, rt, &stay);
        Ok((
            BookRequest {
                hotel_id: input.hotel_id,
                room_type: input.room_type,
                stay,
                guests: input.guests,
                guest: input.guest,
                room: input.room,
            },
            quote.total,
        ))
    }

    /// Prices a stay of a room type: each night's override, else the base rate.
    pub fn quote(
        &self,
        hotel_id: &HotelId,
        code: &RoomTypeCode,
        stay: &Stay,
    ) -> Result<Quote, DomainError> {
        let (hotel, rt) = self.room_type(hotel_id, code)?;
        Ok(price(hotel, rt, stay))
    }

    /// Applies a setup event; other events are ignored. Events were decided against this
    /// catalog, so they fit; an event for a missing hotel (impossible by construction) is
    /// skipped rather than panicking during recovery.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::HotelPut {
                hotel_id,
                name,
                time_zone,
                currency,
            } => {
                let hotel = self
                    .hotels
                    .entry(hotel_id.clone())
                    .or_insert_with(|| Hotel {
                        id: hotel_id.clone(),
                        name: String::new(),
                        time_zone: time_zone.clone(),
                        currency: *currency,
                        room_types: BTreeMap::new(),
                        rooms: BTreeMap::new(),
                    });
                hotel.name.clone_from(name);
                hotel.time_zone = time_zone.clone();
                hotel.currency = *currency;
            }
            Event::RoomTypePut {
                hotel_id,
                code,
                name,
                capacity,
                base_rate_minor,
            } => {
                if let Some(hotel) = self.hotels.get_mut(hotel_id) {
                    let rt = hotel
                        .room_types
                        .entry(code.clone())
                        .or_insert_with(|| RoomType {
                            name: String::new(),
                            capacity: *capacity,
                            base_rate_minor: *base_rate_minor,
                            overrides: BTreeMap::new(),
                        });
                    rt.name.clone_from(name);
                    rt.capacity = *capacity;
                    rt.base_rate_minor = *base_rate_minor;
                }
            }
            Event::RoomPut {
                hotel_id,
                number,
                room_type,
            } => {
                if let Some(hotel) = self.hotels.get_mut(hotel_id) {
                    hotel.rooms.insert(number.clone(), room_type.clone());
                }
            }
            Event::RatePut {
                hotel_id,
                room_type,
                from,
                to,
                amount_minor,
            } => {
                let rt = self
                    .hotels
                    .get_mut(hotel_id)
                    .and_then(|h| h.room_types.get_mut(room_type));
                if let (Some(rt), Some(range)) = (rt, Stay::between(*from, *to)) {
                    for night in range.each_night() {
                        rt.overrides.insert(night, *amount_minor);
                    }
                }
            }
            Event::ReservationCreated { .. }
            | Event::ReservationChanged { .. }
            | Event::PaymentChanged { .. }
            | Event::HousekeepingSet { .. }
            | Event::OutOfOrderSet { .. }
            | Event::OutOfOrderCleared { .. }
            | Event::ReservationMoved { .. } => {}
        }
    }
}

/// Prices `stay` in `rt`.
pub fn price(hotel: &Hotel, rt: &RoomType, stay: &Stay) -> Quote {
    let nightly: Vec<(Date, i64)> = stay
        .each_night()
        .map(|d| {
            (
                d,
                rt.overrides.get(&d).copied().unwrap_or(rt.base_rate_minor),
            )
        })
        .collect();
    // Each rate is ≤ MAX_AMOUNT_MINOR and a stay ≤ 730 nights, so the sum fits in i64.
    let total = nightly.iter().map(|(_, a)| a).sum();
    Quote {
        nightly,
        total: Money {
            amount_minor: total,
            currency: hotel.currency,
        },
    }
}

/// `date + days`, saturating at the end of the calendar.
pub fn add_days(date: Date, days: i64) -> Date {
    date.checked_add(days.days()).unwrap_or(Date::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use jiff::ToSpan;

    fn catalog() -> (Catalog, HotelId, RoomTypeCode) {
        let mut c = Catalog::default();
        let h = HotelId::parse("H1").unwrap();
        let t = RoomTypeCode::parse("KING").unwrap();
        let (e, u) = c
            .put_hotel(h.clone(), "Bund", "Asia/Shanghai", "CNY")
            .unwrap();
        assert_eq!(u, Upsert::Created);
        c.apply(&e);
        let (e, _) = c.put_room_type(&h, t.clone(), "King", 2, 50_000).unwrap();
        c.apply(&e);
        (c, h, t)
    }

    /// A booking input for `catalog()`'s hotel, arriving 2030-01-01 for `nights`.
    fn ask(h: &HotelId, t: &RoomTypeCode, nights: i64, guests: u16) -> BookInput {
        BookInput {
            hotel_id: h.clone(),
            room_type: t.clone(),
            arrival: date(2030, 1, 1),
            departure: date(2030, 1, 1).checked_add(nights.days()).unwrap(),
            guests,
            guest: crate::Guest::parse("Li Lei", "+86 138 0000 0000", "li@example.com").unwrap(),
            room: None,
            created_by: Some("key-1".into()),
        }
    }

    fn now() -> Timestamp {
        // 2029-06-01 in Shanghai: the stay is in the future and within the horizon.
        "2029-06-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn price_booking_prices_and_carries_a_valid_request() {
        let (mut c, h, t) = catalog();
        let e = c
            .put_rate(&h, &t, date(2030, 1, 2), date(2030, 1, 3), 70_000)
            .unwrap();
        c.apply(&e);
        let (e, _) = c
            .put_room(&h, RoomNumber::parse("101").unwrap(), t.clone())
            .unwrap();
        c.apply(&e);
        let mut input = ask(&h, &t, 3, 2);
        input.room = Some(RoomNumber::parse("101").unwrap());
        let (req, total) = c
            .price_booking(input, now(), StayLimits::default())
            .unwrap();
        assert_eq!(total.amount_minor, 50_000 + 70_000 + 50_000);
        assert_eq!(total.currency.as_str(), "CNY");
        assert_eq!((req.hotel_id, req.room_type), (h, t));
        assert_eq!(req.stay.arrival(), date(2030, 1, 1));
        assert_eq!(req.stay.departure(), date(2030, 1, 4));
        assert_eq!(req.guests, 2);
        assert_eq!(req.guest.name(), "Li Lei");
        assert_eq!(req.room, Some(RoomNumber::parse("101").unwrap()));
    }

    #[test]
    fn price_booking_refuses_what_no_room_could_take() {
        let (mut c, h, t) = catalog();
        let other = RoomTypeCode::parse("TWIN").unwrap();
        let (e, _) = c
            .put_room_type(&h, other.clone(), "Twin", 2, 40_000)
            .unwrap();
        c.apply(&e);
        let (e, _) = c
            .put_room(&h, RoomNumber::parse("201").unwrap(), other)
            .unwrap();
        c.apply(&e);
        let limits = StayLimits::default();
        // The code, and for a refused field its name.
        let code = |input: BookInput| match c.price_booking(input, now(), limits).unwrap_err() {
            DomainError::Invalid(v) => format!("invalid:{}", v.field),
            other => other.code().to_owned(),
        };
        let mut unknown_hotel = ask(&h, &t, 1, 1);
        unknown_hotel.hotel_id = HotelId::parse("NOPE").unwrap();
        assert_eq!(code(unknown_hotel), "not_found");
        let mut unknown_type = ask(&h, &t, 1, 1);
        unknown_type.room_type = RoomTypeCode::parse("NOPE").unwrap();
        assert_eq!(code(unknown_type), "not_found");
        assert_eq!(code(ask(&h, &t, 1, 0)), "invalid:guests");
        assert_eq!(code(ask(&h, &t, 1, 3)), "invalid:guests");
        assert_eq!(code(ask(&h, &t, 0, 1)), "invalid_stay");
        let mut no_room = ask(&h, &t, 1, 1);
        no_room.room = Some(RoomNumber::parse("999").unwrap());
        assert_eq!(code(no_room), "not_found");
        let mut wrong_type = ask(&h, &t, 1, 1);
        wrong_type.room = Some(RoomNumber::parse("201").unwrap());
        assert_eq!(code(wrong_type), "invalid:room");
        // The edges that are fine: one guest, and exactly the type's capacity.
        assert!(c.price_booking(ask(&h, &t, 1, 1), now(), limits).is_ok());
        assert!(c.price_booking(ask(&h, &t, 1, 2), now(), limits).is_ok());
    }

    #[test]
    fn overrides_change_only_their_nights() {
        let (mut c, h, t) = catalog();
        let e = c
            .put_rate(&h, &t, date(2026, 12, 24), date(2026, 12, 26), 90_000)
            .unwrap();
        c.apply(&e);
        let stay = Stay::between(date(2026, 12, 23), date(2026, 12, 27)).unwrap();
        let q = c.quote(&h, &t, &stay).unwrap();
        let amounts: Vec<i64> = q.nightly.iter().map(|(_, a)| *a).collect();
        assert_eq!(amounts, vec![50_000, 90_000, 90_000, 50_000]);
        assert_eq!(q.total.amount_minor, 280_000);
    }

    #[test]
    fn setup_validation() {
        let (c, h, t) = catalog();
        assert!(c.put_hotel(h.clone(), "x", "Nowhere/City", "CNY").is_err());
        assert!(c.put_hotel(h.clone(), "x", "UTC", "XYZ").is_err());
        assert_eq!(
            c.put_hotel(h.clone(), "x", "UTC", "USD").unwrap_err(),
            DomainError::CurrencyLocked
        );
        assert!(c.put_room_type(&h, t.clone(), "K", 0, 1).is_err());
        assert!(c.put_room_type(&h, t.clone(), "K", 2, -1).is_err());
        assert!(c
            .put_rate(&h, &t, date(2026, 1, 2), date(2026, 1, 2), 1)
            .is_err());
        assert!(c
            .put_rate(&h, &t, date(2026, 1, 1), date(2026, 1, 2), -5)
            .is_err());
        let missing = RoomTypeCode::parse("NOPE").unwrap();
        assert_eq!(
            c.put_room(&h, RoomNumber::parse("101").unwrap(), missing)
                .unwrap_err(),
            DomainError::NotFound("room type")
        );
    }
}
