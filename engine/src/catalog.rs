//! Hotels, room types, rooms and rates: the slowly changing setup data.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;

use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

use crate::error::{DomainError, ValidationError};
use crate::event::{Event, Modification};
use crate::ids::{HotelId, RatePlanCode, RoomNumber, RoomTypeCode};
use crate::money::{parse_amount_minor, Currency, Money};
use crate::reservation::{BookInput, BookRequest, FieldChange, ModifyInput, Reservation, Status};
use crate::selling::{
    refusals, RatePlan, Reason, Restriction, RestrictionCalendar, RestrictionPatch, Terms,
    Weekdays, MAX_FEE_NIGHTS, MAX_RATE_PLANS_PER_HOTEL, MAX_RESTRICTION_CELLS,
};
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
    /// Rate plans set up with `PUT …/rate-plans/{code}`; the built-in `BAR` is here only
    /// once overwritten (see [`Hotel::rate_plan`]).
    pub rate_plans: BTreeMap<RatePlanCode, RatePlan>,
    /// Restrictions per (room type, plan), by date; only dates that restrict something.
    /// Shared, so a copy of the hotel (an API answer) does not copy up to
    /// [`MAX_RESTRICTION_CELLS`] of them; a change copies them once if a copy is alive.
    pub restrictions: Arc<BTreeMap<(RoomTypeCode, RatePlanCode), RestrictionCalendar>>,
}

/// The built-in plan as it is until a hotel overwrites it.
static BAR_PLAN: std::sync::LazyLock<RatePlan> = std::sync::LazyLock::new(RatePlan::bar);

/// What a plan offers for a stay of a room type: its price and why it cannot be sold.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Offer {
    /// The plan.
    pub rate_plan: RatePlanCode,
    /// Why the stay cannot be sold under it (empty: it can, rooms permitting).
    pub reasons: Vec<Reason>,
    /// Its price for the stay.
    pub quote: Quote,
}

impl Hotel {
    /// The plan called `code`: one set up, or the built-in `BAR`.
    pub fn rate_plan(&self, code: &RatePlanCode) -> Option<&RatePlan> {
        match self.rate_plans.get(code) {
            Some(plan) => Some(plan),
            None if code.is_bar() => Some(&BAR_PLAN),
            None => None,
        }
    }

    /// Every plan, `BAR` included, by code.
    pub fn all_rate_plans(&self) -> Vec<(RatePlanCode, &RatePlan)> {
        let mut plans: Vec<(RatePlanCode, &RatePlan)> = self
            .rate_plans
            .iter()
            .map(|(c, p)| (c.clone(), p))
            .collect();
        let bar = RatePlanCode::bar();
        // Absent unless overwritten: then it goes where its code sorts.
        if let Err(at) = plans.binary_search_by(|(c, _)| c.cmp(&bar)) {
            plans.insert(at, (bar, &BAR_PLAN));
        }
        plans
    }

    /// The restrictions on `date` for `room_type` under `plan`.
    pub fn restriction(
        &self,
        room_type: &RoomTypeCode,
        plan: &RatePlanCode,
        date: Date,
    ) -> Restriction {
        self.restrictions
            .get(&(room_type.clone(), plan.clone()))
            .and_then(|c| c.by_date.get(&date).copied())
            .unwrap_or_default()
    }

    /// Why `stay`, booked on `today`, cannot be sold for `room_type` under `plan` (`code`).
    pub fn refusals(
        &self,
        room_type: &RoomTypeCode,
        code: &RatePlanCode,
        plan: &RatePlan,
        stay: &Stay,
        today: Date,
    ) -> Vec<Reason> {
        let calendar = if self.restrictions.is_empty() {
            None
        } else {
            self.restrictions.get(&(room_type.clone(), code.clone()))
        };
        refusals(stay, today, plan, |d| {
            calendar
                .and_then(|c| c.by_date.get(&d).copied())
                .unwrap_or_default()
        })
    }

    /// Restriction cells kept.
    fn restriction_cells(&self) -> usize {
        self.restrictions.values().map(|c| c.by_date.len()).sum()
    }
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

    /// Decides `PUT /hotels/{id}/rate-plans/{code}`: every type the plan sells exists.
    /// `BAR` exists from the start, so overwriting it is an update.
    pub fn put_rate_plan(
        &self,
        hotel_id: &HotelId,
        code: RatePlanCode,
        plan: RatePlan,
    ) -> Result<(Event, Upsert), DomainError> {
        let hotel = self.hotel(hotel_id)?;
        if let crate::selling::Sells::Only(types) = plan.sells_types() {
            if let Some(unknown) = types.iter().find(|t| !hotel.room_types.contains_key(*t)) {
                return Err(ValidationError::new(
                    "room_types",
                    format!("the hotel has no room type {unknown}"),
                )
                .into());
            }
        }
        let upsert = if hotel.rate_plan(&code).is_some() {
            Upsert::Updated
        } else if hotel.rate_plans.len() >= MAX_RATE_PLANS_PER_HOTEL {
            return Err(DomainError::LimitReached("rate plans per hotel"));
        } else {
            Upsert::Created
        };
        Ok((
            Event::RatePlanPut {
                hotel_id: hotel_id.clone(),
                code,
                plan,
            },
            upsert,
        ))
    }

    /// Decides `PUT /hotels/{id}/restrictions`: `patch` on each date of `[from, to)` that
    /// falls on `weekdays`, for the listed room types and plans (`None`: every one the
    /// hotel has now). The event names them explicitly, so a replay changes the same cells.
    #[allow(clippy::too_many_arguments)]
    pub fn set_restrictions(
        &self,
        hotel_id: &HotelId,
        from: Date,
        to: Date,
        room_types: Option<Vec<RoomTypeCode>>,
        rate_plans: Option<Vec<RatePlanCode>>,
        weekdays: Weekdays,
        patch: RestrictionPatch,
    ) -> Result<Event, DomainError> {
        let hotel = self.hotel(hotel_id)?;
        let range = restriction_range(from, to)?;
        if patch.is_empty() {
            return Err(ValidationError::new("set", "must set at least one field").into());
        }
        let room_types = match room_types {
            Some(listed) => {
                let listed = sorted_unique(listed);
                if let Some(unknown) = listed.iter().find(|t| !hotel.room_types.contains_key(*t)) {
                    return Err(ValidationError::new(
                        "room_types",
                        format!("the hotel has no room type {unknown}"),
                    )
                    .into());
                }
                listed
            }
            None => hotel.room_types.keys().cloned().collect(),
        };
        let rate_plans = match rate_plans {
            Some(listed) => {
                let listed = sorted_unique(listed);
                if let Some(unknown) = listed.iter().find(|p| hotel.rate_plan(p).is_none()) {
                    return Err(ValidationError::new(
                        "rate_plans",
                        format!("the hotel has no rate plan {unknown}"),
                    )
                    .into());
                }
                listed
            }
            None => hotel.all_rate_plans().into_iter().map(|(c, _)| c).collect(),
        };
        if room_types.is_empty() {
            return Err(
                ValidationError::new("room_types", "must name at least one room type").into(),
            );
        }
        if rate_plans.is_empty() {
            return Err(
                ValidationError::new("rate_plans", "must name at least one rate plan").into(),
            );
        }
        let dates: Vec<Date> = range
            .each_night()
            .filter(|d| weekdays.contains(*d))
            .collect();
        if dates.is_empty() {
            return Err(
                ValidationError::new("weekdays", "no date of the range falls on them").into(),
            );
        }
        let cells = dates.len() * room_types.len() * rate_plans.len();
        if cells > MAX_RESTRICTION_CELLS {
            return Err(ValidationError::new(
                "to",
                format!("one change may touch at most {MAX_RESTRICTION_CELLS} date, room type and plan cells; this one touches {cells}"),
            )
            .into());
        }
        // What the hotel keeps after the change, exactly: cells set and cleared both count.
        let mut kept = hotel.restriction_cells();
        for t in &room_types {
            for p in &rate_plans {
                let calendar = hotel.restrictions.get(&(t.clone(), p.clone()));
                for d in &dates {
                    let old = calendar
                        .and_then(|c| c.by_date.get(d).copied())
                        .unwrap_or_default();
                    let was = old != Restriction::default();
                    let will = patch.apply(old) != Restriction::default();
                    kept = kept + usize::from(will) - usize::from(was);
                }
            }
        }
        if kept > MAX_RESTRICTION_CELLS {
            return Err(DomainError::LimitReached("restriction cells per hotel"));
        }
        Ok(Event::RestrictionsSet {
            hotel_id: hotel_id.clone(),
            from,
            to,
            weekdays,
            room_types,
            rate_plans,
            patch,
        })
    }

    /// The restrictions set on `[from, to)`, by date, room type and plan.
    pub fn restrictions(
        &self,
        hotel_id: &HotelId,
        from: Date,
        to: Date,
    ) -> Result<Vec<(Date, RoomTypeCode, RatePlanCode, Restriction)>, DomainError> {
        let hotel = self.hotel(hotel_id)?;
        restriction_range(from, to)?;
        let mut out = Vec::new();
        for ((t, p), calendar) in hotel.restrictions.iter() {
            for (d, r) in calendar.by_date.range(from..to) {
                out.push((*d, t.clone(), p.clone(), *r));
            }
        }
        out.sort_by(|a, b| (a.0, &a.1, &a.2).cmp(&(b.0, &b.1, &b.2)));
        Ok(out)
    }

    /// What every plan selling `code` offers for `stay`, booked on `today`, by plan code.
    pub fn offers(
        &self,
        hotel_id: &HotelId,
        code: &RoomTypeCode,
        stay: &Stay,
        today: Date,
    ) -> Result<Vec<Offer>, DomainError> {
        let (hotel, rt) = self.room_type(hotel_id, code)?;
        let base = price(hotel, rt, stay);
        Ok(hotel
            .all_rate_plans()
            .into_iter()
            .filter(|(_, plan)| plan.sells(code))
            .map(|(plan_code, plan)| Offer {
                reasons: hotel.refusals(code, &plan_code, plan, stay, today),
                quote: plan.price(&base),
                rate_plan: plan_code,
            })
            .collect())
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
    ) -> Result<(BookRequest, Money, Terms), DomainError> {
        let (hotel, rt) = self.room_type(&input.hotel_id, &input.room_type)?;
        let today = hotel.time_zone.today(now);
        let stay = Stay::parse(input.arrival, input.departure, today, limits)?;
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
        let code = input.rate_plan.unwrap_or_else(RatePlanCode::bar);
        let plan = hotel.rate_plan(&code).ok_or_else(|| {
            DomainError::RatePlan(ValidationError::new(
                "rate_plan",
                format!("the hotel has no rate plan {code}"),
            ))
        })?;
        if !plan.sells(&input.room_type) {
            return Err(DomainError::RatePlan(ValidationError::new(
                "rate_plan",
                format!(
                    "rate plan {code} does not sell room type {}",
                    input.room_type
                ),
            )));
        }
        let reasons = hotel.refusals(&input.room_type, &code, plan, &stay, today);
        if !reasons.is_empty() {
            return Err(DomainError::Restricted(reasons));
        }
        let mut quote = price(hotel, rt, &stay);
        if plan.adjust_percent() != 0 {
            quote = plan.price(&quote);
        }
        let terms = Terms::of(code.clone(), plan, stay.arrival(), &hotel.time_zone, &quote);
        Ok((
            BookRequest {
                hotel_id: input.hotel_id,
                room_type: input.room_type,
                stay,
                guests: input.guests,
                guest: input.guest,
                room: input.room,
                rate_plan: code,
            },
            quote.total,
            terms,
        ))
    }

    /// Decides what modifying `r` as `input` asks for comes to: the fields after it, the
    /// price and terms (re-fixed for the new stay when the stay, the type or the plan
    /// changes, else the ones sold), and what changed. The room still decides whether the
    /// nights are free, and for a paid reservation whether the total may change.
    ///
    /// A `pending_payment` or `confirmed` reservation may change anything, under the rules
    /// of a booking (a stay from today within the limits, the guests the type holds, a
    /// plan that sells the type, the restrictions). A `checked_in` one may only move its
    /// departure: later, or earlier but after today (the nights slept stay as they were);
    /// the restrictions, made for arrivals, do not apply to that. Any other status is
    /// `invalid_transition`.
    pub fn price_modification(
        &self,
        r: &Reservation,
        input: &ModifyInput,
        now: Timestamp,
        limits: StayLimits,
    ) -> Result<Modification, DomainError> {
        let refused = DomainError::InvalidTransition {
            action: "modify",
            from: r.status,
        };
        let checked_in = match r.status {
            Status::PendingPayment | Status::Confirmed => false,
            Status::CheckedIn => true,
            _ => return Err(refused),
        };
        let arrival = input.arrival.unwrap_or(r.stay.arrival());
        let departure = input.departure.unwrap_or(r.stay.departure());
        let room_type = input.room_type.clone().unwrap_or(r.room_type.clone());
        let guests = input.guests.unwrap_or(r.guests);
        let guest = input.guest.clone().unwrap_or(r.guest.clone());
        let plan_code = input.rate_plan.clone().unwrap_or(r.terms.rate_plan.clone());
        let stay_changed = (arrival, departure) != (r.stay.arrival(), r.stay.departure());
        let type_changed = room_type != r.room_type;
        let plan_changed = plan_code != r.terms.rate_plan;
        if checked_in
            && (arrival != r.stay.arrival()
                || type_changed
                || guests != r.guests
                || guest != r.guest
                || plan_changed)
        {
            return Err(refused);
        }
        let (hotel, rt) = self.room_type(&r.hotel_id, &room_type)?;
        let today = hotel.time_zone.today(now);
        let stay = if !stay_changed {
            r.stay
        } else if checked_in {
            // Only the departure moves: after today, within the limits.
            if departure <= today {
                return Err(DomainError::InvalidStay(format!(
                    "departure must be after the hotel's today {today} for a guest in house"
                )));
            }
            let horizon_ok = today
                .checked_add(i64::from(limits.horizon_days).days())
                .is_ok_and(|h| departure <= h);
            let stay = Stay::between(arrival, departure).ok_or_else(|| {
                DomainError::InvalidStay("departure must be after arrival".into())
            })?;
            if stay.nights() > limits.max_nights || !horizon_ok {
                return Err(DomainError::InvalidStay(format!(
                    "at most {} nights, departing at most {} days ahead",
                    limits.max_nights, limits.horizon_days
                )));
            }
            stay
        } else {
            Stay::parse(arrival, departure, today, limits)?
        };
        if guests == 0 || guests > rt.capacity {
            return Err(ValidationError::new(
                "guests",
                format!("must be 1 to {} for this room type", rt.capacity),
            )
            .into());
        }
        let (total_minor, terms) = if stay_changed || type_changed || plan_changed {
            let plan = hotel.rate_plan(&plan_code).ok_or_else(|| {
                DomainError::RatePlan(ValidationError::new(
                    "rate_plan",
                    format!("the hotel has no rate plan {plan_code}"),
                ))
            })?;
            if !plan.sells(&room_type) {
                return Err(DomainError::RatePlan(ValidationError::new(
                    "rate_plan",
                    format!("rate plan {plan_code} does not sell room type {room_type}"),
                )));
            }
            if !checked_in {
                let reasons = hotel.refusals(&room_type, &plan_code, plan, &stay, today);
                if !reasons.is_empty() {
                    return Err(DomainError::Restricted(reasons));
                }
            }
            let mut quote = price(hotel, rt, &stay);
            if plan.adjust_percent() != 0 {
                quote = plan.price(&quote);
            }
            let terms = Terms::of(
                plan_code.clone(),
                plan,
                stay.arrival(),
                &hotel.time_zone,
                &quote,
            );
            (quote.total.amount_minor, terms)
        } else {
            (r.total.amount_minor, r.terms.clone())
        };
        let mut changes = Vec::new();
        if arrival != r.stay.arrival() {
            changes.push(FieldChange::Arrival {
                from: r.stay.arrival(),
                to: arrival,
            });
        }
        if departure != r.stay.departure() {
            changes.push(FieldChange::Departure {
                from: r.stay.departure(),
                to: departure,
            });
        }
        if type_changed {
            changes.push(FieldChange::RoomType {
                from: r.room_type.clone(),
                to: room_type.clone(),
            });
        }
        if guests != r.guests {
            changes.push(FieldChange::Guests {
                from: r.guests,
                to: guests,
            });
        }
        if guest != r.guest {
            changes.push(FieldChange::Guest);
        }
        if plan_changed {
            changes.push(FieldChange::RatePlan {
                from: r.terms.rate_plan.clone(),
                to: plan_code,
            });
        }
        if total_minor != r.total.amount_minor {
            changes.push(FieldChange::Total {
                from_minor: r.total.amount_minor,
                to_minor: total_minor,
            });
        }
        Ok(Modification {
            stay,
            room_type,
            guests,
            guest,
            total_minor,
            terms,
            changes,
            settling: crate::event::Settling::DifferenceSettled,
        })
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
                        rate_plans: BTreeMap::new(),
                        restrictions: Arc::default(),
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
            Event::RatePlanPut {
                hotel_id,
                code,
                plan,
            } => {
                if let Some(hotel) = self.hotels.get_mut(hotel_id) {
                    hotel.rate_plans.insert(code.clone(), plan.clone());
                }
            }
            Event::RestrictionsSet {
                hotel_id,
                from,
                to,
                weekdays,
                room_types,
                rate_plans,
                patch,
            } => {
                let (Some(hotel), Some(range)) =
                    (self.hotels.get_mut(hotel_id), Stay::between(*from, *to))
                else {
                    return;
                };
                let restrictions = Arc::make_mut(&mut hotel.restrictions);
                for room_type in room_types {
                    for plan in rate_plans {
                        let key = (room_type.clone(), plan.clone());
                        let calendar = restrictions.entry(key.clone()).or_default();
                        for night in range.each_night().filter(|d| weekdays.contains(*d)) {
                            let old = calendar.by_date.get(&night).copied().unwrap_or_default();
                            let new = patch.apply(old);
                            if new == Restriction::default() {
                                calendar.by_date.remove(&night);
                            } else {
                                calendar.by_date.insert(night, new);
                            }
                        }
                        if calendar.by_date.is_empty() {
                            restrictions.remove(&key);
                        }
                    }
                }
            }
            Event::ReservationCreated { .. }
            | Event::ReservationChanged { .. }
            | Event::PaymentChanged { .. }
            | Event::HousekeepingSet { .. }
            | Event::OutOfOrderSet { .. }
            | Event::OutOfOrderCleared { .. }
            | Event::ReservationMoved { .. }
            | Event::ReservationModified { .. }
            | Event::Rearranged { .. }
            | Event::BookingCreated { .. }
            | Event::BookingChanged { .. }
            | Event::ModifyRearranged { .. } => {}
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

/// `[from, to)` of a restriction change or query: at most [`MAX_FEE_NIGHTS`] nights.
fn restriction_range(from: Date, to: Date) -> Result<Stay, DomainError> {
    let range =
        Stay::between(from, to).ok_or_else(|| ValidationError::new("to", "must be after from"))?;
    if range.nights() > u32::from(MAX_FEE_NIGHTS) {
        return Err(ValidationError::new(
            "to",
            format!("a range spans at most {MAX_FEE_NIGHTS} nights"),
        )
        .into());
    }
    Ok(range)
}

/// `codes`, sorted, without repeats.
fn sorted_unique<T: Ord>(mut codes: Vec<T>) -> Vec<T> {
    codes.sort();
    codes.dedup();
    codes
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
            rate_plan: None,
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
        let (req, total, terms) = c
            .price_booking(input, now(), StayLimits::default())
            .unwrap();
        assert_eq!(terms, Terms::bar());
        assert_eq!(req.rate_plan, RatePlanCode::bar());
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

    fn flexible(types: &[&RoomTypeCode], adjust: i64) -> RatePlan {
        use crate::selling::{CancellationPolicy, Fee};
        RatePlan::parse(
            "Flexible",
            types.iter().map(|t| (*t).clone()).collect(),
            adjust,
            CancellationPolicy::parse(48, Fee::Nights(1)).unwrap(),
            Fee::Percent(100),
            None,
            None,
        )
        .unwrap()
    }

    #[test]
    fn rate_plans_are_created_replaced_and_name_only_known_types() {
        let (mut c, h, t) = catalog();
        let flex = RatePlanCode::parse("FLEX").unwrap();
        let (e, u) = c
            .put_rate_plan(&h, flex.clone(), flexible(&[&t], -10))
            .unwrap();
        assert_eq!(u, Upsert::Created);
        c.apply(&e);
        let (e, u) = c
            .put_rate_plan(&h, flex.clone(), flexible(&[&t], 5))
            .unwrap();
        assert_eq!(u, Upsert::Updated);
        c.apply(&e);
        // The built-in plan exists from the start: overwriting it is an update.
        let (_, u) = c
            .put_rate_plan(&h, RatePlanCode::bar(), flexible(&[&t], 0))
            .unwrap();
        assert_eq!(u, Upsert::Updated);
        let twin = RoomTypeCode::parse("TWIN").unwrap();
        let unknown = c.put_rate_plan(&h, flex.clone(), flexible(&[&twin], 0));
        assert!(matches!(unknown, Err(DomainError::Invalid(v)) if v.field == "room_types"));
        let codes: Vec<String> = c.hotels[&h]
            .all_rate_plans()
            .iter()
            .map(|(code, _)| code.to_string())
            .collect();
        assert_eq!(codes, ["BAR", "FLEX"]);
        assert_eq!(c.hotels[&h].rate_plan(&flex).unwrap().adjust_percent(), 5);
    }

    /// Omitted lists mean every type and plan the hotel has when decided, written into the
    /// event; weekdays pick dates; `null` clears and a cleared cell is not kept.
    #[test]
    fn restrictions_set_and_clear_exactly_their_cells() {
        use crate::selling::{RestrictionPatch, Weekdays};
        let (mut c, h, t) = catalog();
        let flex = RatePlanCode::parse("FLEX").unwrap();
        let (e, _) = c
            .put_rate_plan(&h, flex.clone(), flexible(&[&t], 0))
            .unwrap();
        c.apply(&e);
        // 2030-01-07 is a Monday: two Mondays and two Fridays in [7, 21).
        let from = date(2030, 1, 7);
        let to = date(2030, 1, 21);
        let weekdays = Weekdays::parse(&["mon", "fri"]).unwrap();
        let patch = RestrictionPatch {
            closed_to_arrival: Some(true),
            min_stay_arrival: Some(Some(2)),
            ..RestrictionPatch::default()
        };
        let e = c
            .set_restrictions(&h, from, to, None, None, weekdays, patch)
            .unwrap();
        match &e {
            Event::RestrictionsSet {
                room_types,
                rate_plans,
                ..
            } => {
                assert_eq!(room_types, std::slice::from_ref(&t));
                assert_eq!(rate_plans, &[RatePlanCode::bar(), flex.clone()]);
            }
            other => panic!("{other:?}"),
        }
        c.apply(&e);
        let set = c.restrictions(&h, from, to).unwrap();
        let dates: Vec<Date> = set.iter().map(|(d, ..)| *d).collect();
        let (mon1, fri1, mon2, fri2) = (
            date(2030, 1, 7),
            date(2030, 1, 11),
            date(2030, 1, 14),
            date(2030, 1, 18),
        );
        assert_eq!(
            dates,
            [mon1, mon1, fri1, fri1, mon2, mon2, fri2, fri2],
            "two plans per date"
        );
        assert!(set
            .iter()
            .all(|(_, _, _, r)| r.closed_to_arrival && r.min_stay_arrival == Some(2)));
        // Clear one field on one plan: the other field stays; clear both and the cells go.
        let clear = |c: &Catalog, patch| {
            c.set_restrictions(
                &h,
                from,
                to,
                Some(vec![t.clone()]),
                Some(vec![flex.clone()]),
                Weekdays::ALL,
                patch,
            )
            .unwrap()
        };
        let e = clear(
            &c,
            RestrictionPatch {
                min_stay_arrival: Some(None),
                ..RestrictionPatch::default()
            },
        );
        c.apply(&e);
        let r = c.hotels[&h].restriction(&t, &flex, mon1);
        assert!(r.closed_to_arrival && r.min_stay_arrival.is_none());
        let e = clear(
            &c,
            RestrictionPatch {
                closed_to_arrival: Some(false),
                ..RestrictionPatch::default()
            },
        );
        c.apply(&e);
        assert_eq!(
            c.restrictions(&h, from, to).unwrap().len(),
            4,
            "BAR's cells stay"
        );
        assert!(!c.hotels[&h]
            .restrictions
            .contains_key(&(t.clone(), flex.clone())));
        // Refused: nothing to set, an unknown plan, a range longer than the horizon.
        let none = c.set_restrictions(
            &h,
            from,
            to,
            None,
            None,
            Weekdays::ALL,
            RestrictionPatch::default(),
        );
        assert!(matches!(none, Err(DomainError::Invalid(v)) if v.field == "set"));
        let unknown = c.set_restrictions(
            &h,
            from,
            to,
            None,
            Some(vec![RatePlanCode::parse("NOPE").unwrap()]),
            Weekdays::ALL,
            patch,
        );
        assert!(matches!(unknown, Err(DomainError::Invalid(v)) if v.field == "rate_plans"));
        let long = c.set_restrictions(
            &h,
            from,
            add_days(from, 731),
            None,
            None,
            Weekdays::ALL,
            patch,
        );
        assert!(matches!(long, Err(DomainError::Invalid(v)) if v.field == "to"));
        let sundays_only = Weekdays::parse(&["sun"]).unwrap();
        let no_date =
            c.set_restrictions(&h, mon1, add_days(mon1, 3), None, None, sundays_only, patch);
        assert!(matches!(no_date, Err(DomainError::Invalid(v)) if v.field == "weekdays"));
    }

    /// A plan's price and terms, its refusals (while BAR on the same dates still sells),
    /// an unknown plan or one that does not sell the type, and the idempotency fingerprint.
    #[test]
    fn a_booking_is_priced_and_refused_by_its_plan() {
        use crate::selling::{Reason, RestrictionPatch, Weekdays};
        let (mut c, h, t) = catalog();
        let (e, _) = c
            .put_room_type(&h, RoomTypeCode::parse("TWIN").unwrap(), "Twin", 2, 40_000)
            .unwrap();
        c.apply(&e);
        let flex = RatePlanCode::parse("FLEX").unwrap();
        let (e, _) = c
            .put_rate_plan(&h, flex.clone(), flexible(&[&t], -15))
            .unwrap();
        c.apply(&e);
        let mut input = ask(&h, &t, 2, 1);
        input.rate_plan = Some(flex.clone());
        let (req, total, terms) = c
            .price_booking(input.clone(), now(), StayLimits::default())
            .unwrap();
        // 50 000 × 0.85 per night.
        assert_eq!(total.amount_minor, 2 * 42_500);
        assert_eq!(terms.rate_plan, flex);
        assert_eq!(
            (terms.late_cancel_fee_minor, terms.no_show_fee_minor),
            (42_500, 85_000)
        );
        assert_ne!(req.fingerprint(), {
            let mut bar = req.clone();
            bar.rate_plan = RatePlanCode::bar();
            bar.fingerprint()
        });
        // Closed to arrival for FLEX only.
        let e = c
            .set_restrictions(
                &h,
                date(2030, 1, 1),
                date(2030, 1, 2),
                None,
                Some(vec![flex.clone()]),
                Weekdays::ALL,
                RestrictionPatch {
                    closed_to_arrival: Some(true),
                    ..RestrictionPatch::default()
                },
            )
            .unwrap();
        c.apply(&e);
        let refused = c.price_booking(input.clone(), now(), StayLimits::default());
        assert_eq!(
            refused.unwrap_err(),
            DomainError::Restricted(vec![Reason::ClosedToArrival])
        );
        assert!(c
            .price_booking(ask(&h, &t, 2, 1), now(), StayLimits::default())
            .is_ok());
        let offers = c
            .offers(
                &h,
                &t,
                &Stay::between(date(2030, 1, 1), date(2030, 1, 3)).unwrap(),
                date(2029, 6, 1),
            )
            .unwrap();
        let summary: Vec<(String, Vec<Reason>, i64)> = offers
            .iter()
            .map(|o| {
                (
                    o.rate_plan.to_string(),
                    o.reasons.clone(),
                    o.quote.total.amount_minor,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("BAR".to_owned(), vec![], 100_000),
                ("FLEX".to_owned(), vec![Reason::ClosedToArrival], 85_000)
            ]
        );
        // FLEX does not sell TWIN; NOPE does not exist.
        let mut twin = ask(&h, &RoomTypeCode::parse("TWIN").unwrap(), 2, 1);
        twin.rate_plan = Some(flex);
        assert!(
            matches!(c.price_booking(twin, now(), StayLimits::default()), Err(DomainError::RatePlan(v)) if v.field == "rate_plan")
        );
        input.rate_plan = Some(RatePlanCode::parse("NOPE").unwrap());
        let unknown = c
            .price_booking(input, now(), StayLimits::default())
            .unwrap_err();
        assert_eq!(unknown.code(), "invalid_request");
    }

    /// The catalog with plans and restrictions survives its encoding (a snapshot's part).
    #[test]
    fn plans_and_restrictions_survive_the_snapshot_encoding() {
        use crate::selling::{RestrictionPatch, Weekdays};
        let (mut c, h, t) = catalog();
        let (e, _) = c
            .put_rate_plan(&h, RatePlanCode::parse("FLEX").unwrap(), flexible(&[&t], 3))
            .unwrap();
        c.apply(&e);
        let e = c
            .set_restrictions(
                &h,
                date(2030, 1, 1),
                date(2030, 2, 1),
                None,
                None,
                Weekdays::ALL,
                RestrictionPatch {
                    min_stay_through: Some(Some(3)),
                    closed: Some(true),
                    ..RestrictionPatch::default()
                },
            )
            .unwrap();
        c.apply(&e);
        let cfg = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&c, cfg).unwrap();
        let (back, _): (Catalog, usize) = bincode::serde::decode_from_slice(&bytes, cfg).unwrap();
        assert_eq!(back, c);
        let event_bytes = bincode::serde::encode_to_vec(&e, cfg).unwrap();
        let (event, _): (Event, usize) =
            bincode::serde::decode_from_slice(&event_bytes, cfg).unwrap();
        assert_eq!(event, e);
    }

    /// BAR is listed in code order among plans set up, before or after them.
    #[test]
    fn the_built_in_plan_is_listed_in_code_order() {
        let (mut c, h, t) = catalog();
        for code in ["AAA", "ZZZ"] {
            let (e, _) = c
                .put_rate_plan(&h, RatePlanCode::parse(code).unwrap(), flexible(&[&t], 0))
                .unwrap();
            c.apply(&e);
        }
        let codes: Vec<String> = c.hotels[&h]
            .all_rate_plans()
            .iter()
            .map(|(code, _)| code.to_string())
            .collect();
        assert_eq!(codes, ["AAA", "BAR", "ZZZ"]);
    }

    /// One change touches at most MAX_RESTRICTION_CELLS cells (dates × types × plans) and a
    /// hotel keeps at most as many: counted exactly, so re-setting or clearing cells at the
    /// limit is allowed. A range spans at most 730 nights.
    #[test]
    fn restriction_cells_are_capped_per_change_and_per_hotel() {
        use crate::selling::{RestrictionPatch, Weekdays, MAX_RESTRICTION_CELLS};
        let (mut c, h, _) = catalog();
        // 250 types × 2 plans × 400 nights = the limit exactly.
        for i in 0..249 {
            let code = RoomTypeCode::parse(&format!("T{i}")).unwrap();
            let (e, _) = c.put_room_type(&h, code, "Type", 2, 1_000).unwrap();
            c.apply(&e);
        }
        assert_eq!(c.hotels[&h].room_types.len(), 250);
        let (e, _) = c
            .put_rate_plan(
                &h,
                RatePlanCode::parse("FLEX").unwrap(),
                flexible(&[&t0()], 0),
            )
            .unwrap();
        c.apply(&e);
        let from = date(2030, 1, 1);
        let bar = || Some(vec![RatePlanCode::bar()]);
        let close = RestrictionPatch {
            closed: Some(true),
            ..RestrictionPatch::default()
        };
        let too_many = c.set_restrictions(
            &h,
            from,
            add_days(from, 401),
            None,
            None,
            Weekdays::ALL,
            close,
        );
        assert!(
            matches!(&too_many, Err(DomainError::Invalid(v)) if v.field == "to"),
            "{too_many:?}"
        );
        let e = c
            .set_restrictions(
                &h,
                from,
                add_days(from, 400),
                None,
                None,
                Weekdays::ALL,
                close,
            )
            .unwrap();
        c.apply(&e);
        assert_eq!(c.hotels[&h].restriction_cells(), MAX_RESTRICTION_CELLS);
        // At the limit: one more cell is refused; the same cells again, or a change that
        // clears as many as it sets, are not.
        let one_more = c.set_restrictions(
            &h,
            add_days(from, 400),
            add_days(from, 401),
            Some(vec![t0()]),
            bar(),
            Weekdays::ALL,
            close,
        );
        assert_eq!(
            one_more.unwrap_err(),
            DomainError::LimitReached("restriction cells per hotel")
        );
        assert!(c
            .set_restrictions(
                &h,
                from,
                add_days(from, 400),
                None,
                bar(),
                Weekdays::ALL,
                close
            )
            .is_ok());
        let open = RestrictionPatch {
            closed: Some(false),
            ..RestrictionPatch::default()
        };
        let e = c
            .set_restrictions(
                &h,
                from,
                add_days(from, 1),
                Some(vec![t0()]),
                bar(),
                Weekdays::ALL,
                open,
            )
            .unwrap();
        c.apply(&e);
        assert!(c
            .set_restrictions(
                &h,
                add_days(from, 400),
                add_days(from, 401),
                Some(vec![t0()]),
                bar(),
                Weekdays::ALL,
                close
            )
            .is_ok());
        // 730 nights is the longest range.
        let (c, h, _) = catalog();
        assert!(c
            .set_restrictions(
                &h,
                from,
                add_days(from, 730),
                None,
                bar(),
                Weekdays::ALL,
                close
            )
            .is_ok());
        assert!(c.restrictions(&h, from, add_days(from, 730)).is_ok());
        assert!(c.restrictions(&h, from, add_days(from, 731)).is_err());
    }

    fn t0() -> RoomTypeCode {
        RoomTypeCode::parse("T0").unwrap()
    }
}
