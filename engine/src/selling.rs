//! Selling rules: rate plans (a price rule with a cancellation and a no-show policy) and
//! stay restrictions per night (issue #15).
//!
//! This module decides; the catalog keeps the plans and restrictions (set by the setup
//! events `RatePlanPut` and `RestrictionsSet`) and a reservation keeps the [`Terms`] it
//! was sold under. It answers the questions the booking, cancellation and night-audit
//! paths ask: what a plan charges per night, what a cancellation at an instant costs, what
//! a no-show costs, and why a stay cannot be sold under a plan. Instants and the hotel's
//! zone are passed in.

use std::collections::BTreeSet;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::catalog::Quote;
use crate::error::ValidationError;
use crate::ids::{RatePlanCode, RoomTypeCode};
use crate::money::Money;
use crate::time::{HotelTz, Stay};

/// The built-in plan every hotel has: the room type's rate, free cancellation at any time,
/// no no-show fee (what Innkeep sold before plans existed).
pub const BAR: &str = "BAR";

/// Most room types one plan names.
pub const MAX_PLAN_ROOM_TYPES: usize = 1_000;

/// Longest free-cancellation window, in hours (a year).
pub const MAX_FREE_UNTIL_HOURS: u32 = 8_784;

/// Most nights a fee may name, and most days of a booking window (the booking horizon).
pub const MAX_FEE_NIGHTS: u16 = 730;

/// What a cancellation or a no-show costs.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub enum Fee {
    /// The price of the stay's first `n` nights.
    Nights(u16),
    /// This percentage of the total, rounded half away from zero to the minor unit.
    Percent(u8),
}

impl Fee {
    /// Nothing.
    pub const NONE: Fee = Fee::Percent(0);

    /// `{"nights": n}`, 0..=[`MAX_FEE_NIGHTS`].
    pub fn nights(n: i64) -> Result<Self, ValidationError> {
        u16::try_from(n)
            .ok()
            .filter(|n| *n <= MAX_FEE_NIGHTS)
            .map(Fee::Nights)
            .ok_or_else(|| {
                ValidationError::new("fee.nights", format!("must be 0 to {MAX_FEE_NIGHTS}"))
            })
    }

    /// `{"percent": p}`, 0..=100.
    pub fn percent(p: i64) -> Result<Self, ValidationError> {
        u8::try_from(p)
            .ok()
            .filter(|p| *p <= 100)
            .map(Fee::Percent)
            .ok_or_else(|| ValidationError::new("fee.percent", "must be 0 to 100"))
    }

    /// The fee for a stay whose nights cost `nightly_minor` (first night first), never
    /// more than their total.
    pub fn amount_minor(&self, nightly_minor: &[i64]) -> i64 {
        let total: i64 = nightly_minor.iter().sum();
        let fee = match *self {
            Fee::Nights(n) => nightly_minor.iter().take(usize::from(n)).sum(),
            Fee::Percent(p) => percent_of(total, i64::from(p)),
        };
        fee.min(total)
    }
}

/// `amount × percent / 100`, rounded half away from zero (amounts are at most 10^13 × 730
/// minor units, so the product fits in `i128` with room to spare).
fn percent_of(amount: i64, percent: i64) -> i64 {
    let scaled = i128::from(amount) * i128::from(percent);
    let rounded = if scaled >= 0 {
        (scaled + 50) / 100
    } else {
        (scaled - 50) / 100
    };
    i64::try_from(rounded).unwrap_or(if rounded > 0 { i64::MAX } else { i64::MIN })
}

/// When cancelling is free, and what it costs after.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct CancellationPolicy {
    /// Cancelling at least this many hours before the arrival date starts (00:00 in the
    /// hotel's zone) costs nothing; 0 is no free window at all (non-refundable).
    free_until_hours: u32,
    /// What cancelling later costs.
    fee: Fee,
}

impl CancellationPolicy {
    /// Free at any time (the built-in plan's policy): no free window, but no fee either.
    pub const FREE: CancellationPolicy = CancellationPolicy {
        free_until_hours: 0,
        fee: Fee::NONE,
    };

    /// `{free_until_hours, fee}`, hours 0..=[`MAX_FREE_UNTIL_HOURS`].
    pub fn parse(free_until_hours: i64, fee: Fee) -> Result<Self, ValidationError> {
        let hours = u32::try_from(free_until_hours)
            .ok()
            .filter(|h| *h <= MAX_FREE_UNTIL_HOURS)
            .ok_or_else(|| {
                ValidationError::new(
                    "cancellation.free_until_hours",
                    format!("must be 0 to {MAX_FREE_UNTIL_HOURS}"),
                )
            })?;
        Ok(Self {
            free_until_hours: hours,
            fee,
        })
    }

    /// Hours before arrival until which cancelling is free.
    pub fn free_until_hours(&self) -> u32 {
        self.free_until_hours
    }

    /// What cancelling late costs.
    pub fn fee(&self) -> Fee {
        self.fee
    }

    /// The last instant cancelling a stay arriving on `arrival` is free: the arrival
    /// date's start in the hotel's zone, minus `free_until_hours` real hours (so a
    /// daylight-saving change in between moves the local clock time, not the interval);
    /// `None` when there is no free window (`free_until_hours` 0).
    pub fn free_until(&self, arrival: Date, tz: &HotelTz) -> Option<Timestamp> {
        if self.free_until_hours == 0 {
            return None;
        }
        let hours = SignedDuration::from_hours(i64::from(self.free_until_hours));
        Some(
            tz.start_of(arrival)
                .checked_sub(hours)
                .unwrap_or(Timestamp::MIN),
        )
    }

    /// What cancelling at `now` a stay arriving on `arrival` whose nights cost
    /// `nightly_minor` costs.
    pub fn fee_at(
        &self,
        now: Timestamp,
        arrival: Date,
        tz: &HotelTz,
        nightly_minor: &[i64],
    ) -> i64 {
        match self.free_until(arrival, tz) {
            Some(until) if now <= until => 0,
            _ => self.fee.amount_minor(nightly_minor),
        }
    }
}

/// Which room types a plan sells.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub enum Sells {
    /// Every type of the hotel (the built-in plan).
    Every,
    /// These, sorted, without repeats.
    Only(Vec<RoomTypeCode>),
}

/// A rate plan: a price rule plus the policies a booking under it keeps.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct RatePlan {
    /// Display name.
    name: String,
    /// The room types it sells.
    sells: Sells,
    /// The nightly price is the room type's rate × (100 + this) / 100; −100..=100.
    adjust_percent: i8,
    /// What cancelling costs, and until when it is free.
    cancellation: CancellationPolicy,
    /// What a no-show costs.
    no_show_fee: Fee,
    /// Bookable only this many days before arrival or more.
    min_advance_days: Option<u16>,
    /// Bookable only this many days before arrival or fewer.
    max_advance_days: Option<u16>,
}

impl RatePlan {
    /// The built-in plan (see [`BAR`]).
    pub fn bar() -> Self {
        Self {
            name: "Best available rate".into(),
            sells: Sells::Every,
            adjust_percent: 0,
            cancellation: CancellationPolicy::FREE,
            no_show_fee: Fee::NONE,
            min_advance_days: None,
            max_advance_days: None,
        }
    }

    /// Validates a plan as `PUT …/rate-plans/{code}` describes it.
    pub fn parse(
        name: &str,
        room_types: Vec<RoomTypeCode>,
        adjust_percent: i64,
        cancellation: CancellationPolicy,
        no_show_fee: Fee,
        min_advance_days: Option<i64>,
        max_advance_days: Option<i64>,
    ) -> Result<Self, ValidationError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "name",
                "must be 1 to 200 printable characters",
            ));
        }
        let types: BTreeSet<RoomTypeCode> = room_types.into_iter().collect();
        if types.is_empty() || types.len() > MAX_PLAN_ROOM_TYPES {
            return Err(ValidationError::new(
                "room_types",
                format!("must name 1 to {MAX_PLAN_ROOM_TYPES} room types"),
            ));
        }
        let adjust_percent = i8::try_from(adjust_percent)
            .ok()
            .filter(|a| (-100..=100).contains(a))
            .ok_or_else(|| ValidationError::new("adjust_percent", "must be -100 to 100"))?;
        let days = |field: &'static str, v: Option<i64>| {
            v.map(|d| {
                u16::try_from(d)
                    .ok()
                    .filter(|d| *d <= MAX_FEE_NIGHTS)
                    .ok_or_else(|| {
                        ValidationError::new(field, format!("must be 0 to {MAX_FEE_NIGHTS}"))
                    })
            })
            .transpose()
        };
        let min_advance_days = days("min_advance_days", min_advance_days)?;
        let max_advance_days = days("max_advance_days", max_advance_days)?;
        if let (Some(min), Some(max)) = (min_advance_days, max_advance_days) {
            if min > max {
                return Err(ValidationError::new(
                    "max_advance_days",
                    "must not be less than min_advance_days",
                ));
            }
        }
        Ok(Self {
            name: name.to_owned(),
            sells: Sells::Only(types.into_iter().collect()),
            adjust_percent,
            cancellation,
            no_show_fee,
            min_advance_days,
            max_advance_days,
        })
    }

    /// Display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The room types it sells.
    pub fn sells_types(&self) -> &Sells {
        &self.sells
    }

    /// The price adjustment, in percent of the room type's rate.
    pub fn adjust_percent(&self) -> i8 {
        self.adjust_percent
    }

    /// Its cancellation policy.
    pub fn cancellation(&self) -> CancellationPolicy {
        self.cancellation
    }

    /// What a no-show costs under it.
    pub fn no_show_fee(&self) -> Fee {
        self.no_show_fee
    }

    /// Bookable only this many days before arrival or more.
    pub fn min_advance_days(&self) -> Option<u16> {
        self.min_advance_days
    }

    /// Bookable only this many days before arrival or fewer.
    pub fn max_advance_days(&self) -> Option<u16> {
        self.max_advance_days
    }

    /// Whether it sells `room_type`.
    pub fn sells(&self, room_type: &RoomTypeCode) -> bool {
        match &self.sells {
            Sells::Every => true,
            Sells::Only(types) => types.binary_search(room_type).is_ok(),
        }
    }

    /// Its nightly price for a night the room type sells at `rate_minor`.
    pub fn nightly_minor(&self, rate_minor: i64) -> i64 {
        percent_of(rate_minor, 100 + i64::from(self.adjust_percent))
    }

    /// `quote` (the room type's prices for a stay) under this plan.
    pub fn price(&self, quote: &Quote) -> Quote {
        let nightly: Vec<(Date, i64)> = quote
            .nightly
            .iter()
            .map(|(d, rate)| (*d, self.nightly_minor(*rate)))
            .collect();
        let total = Money {
            amount_minor: nightly.iter().map(|(_, r)| r).sum(),
            currency: quote.total.currency,
        };
        Quote { nightly, total }
    }

    /// Its booking-window reasons for a stay arriving on `arrival`, booked on `today`.
    fn advance_reasons(&self, arrival: Date, today: Date) -> impl Iterator<Item = Reason> {
        let ahead = i64::from((arrival - today).get_days());
        let early = self
            .min_advance_days
            .is_some_and(|min| ahead < i64::from(min))
            .then_some(Reason::MinAdvance);
        let late = self
            .max_advance_days
            .is_some_and(|max| ahead > i64::from(max))
            .then_some(Reason::MaxAdvance);
        early.into_iter().chain(late)
    }
}

/// The restrictions of one date, for one room type and plan. The default restricts
/// nothing.
#[derive(Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct Restriction {
    /// Stop-sell: no stay may include this night.
    pub closed: bool,
    /// No stay may arrive on this date.
    pub closed_to_arrival: bool,
    /// No stay may depart on this date.
    pub closed_to_departure: bool,
    /// A stay arriving on this date is at least this many nights.
    pub min_stay_arrival: Option<u16>,
    /// A stay arriving on this date is at most this many nights.
    pub max_stay_arrival: Option<u16>,
    /// A stay including this night is at least this many nights.
    pub min_stay_through: Option<u16>,
}

/// What one `PUT …/restrictions` changes on each date, type and plan it covers: a field
/// left out (`None`) stays as it is; for the numbers, `Some(None)` clears.
#[derive(Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct RestrictionPatch {
    /// Sets [`Restriction::closed`].
    pub closed: Option<bool>,
    /// Sets [`Restriction::closed_to_arrival`].
    pub closed_to_arrival: Option<bool>,
    /// Sets [`Restriction::closed_to_departure`].
    pub closed_to_departure: Option<bool>,
    /// Sets or clears [`Restriction::min_stay_arrival`].
    pub min_stay_arrival: Option<Option<u16>>,
    /// Sets or clears [`Restriction::max_stay_arrival`].
    pub max_stay_arrival: Option<Option<u16>>,
    /// Sets or clears [`Restriction::min_stay_through`].
    pub min_stay_through: Option<Option<u16>>,
}

impl RestrictionPatch {
    /// Checks a length-of-stay value: 1..=[`MAX_FEE_NIGHTS`] nights.
    pub fn nights(field: &'static str, value: Option<i64>) -> Result<Option<u16>, ValidationError> {
        value
            .map(|n| {
                u16::try_from(n)
                    .ok()
                    .filter(|n| (1..=MAX_FEE_NIGHTS).contains(n))
                    .ok_or_else(|| {
                        ValidationError::new(field, format!("must be 1 to {MAX_FEE_NIGHTS} nights"))
                    })
            })
            .transpose()
    }

    /// Whether it changes nothing (a request that sets nothing is refused).
    pub fn is_empty(&self) -> bool {
        *self == RestrictionPatch::default()
    }

    /// `r` with this patch applied.
    pub fn apply(&self, mut r: Restriction) -> Restriction {
        let set = |field: &mut bool, v: Option<bool>| *field = v.unwrap_or(*field);
        let set_nights = |field: &mut Option<u16>, v: Option<Option<u16>>| {
            if let Some(v) = v {
                *field = v;
            }
        };
        set(&mut r.closed, self.closed);
        set(&mut r.closed_to_arrival, self.closed_to_arrival);
        set(&mut r.closed_to_departure, self.closed_to_departure);
        set_nights(&mut r.min_stay_arrival, self.min_stay_arrival);
        set_nights(&mut r.max_stay_arrival, self.max_stay_arrival);
        set_nights(&mut r.min_stay_through, self.min_stay_through);
        r
    }
}

/// Why a stay cannot be sold; the stable codes of the API.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Reason {
    /// A night of the stay is closed.
    Closed,
    /// The arrival date is closed to arrival.
    ClosedToArrival,
    /// The departure date is closed to departure.
    ClosedToDeparture,
    /// Shorter than the arrival date's minimum.
    MinStayArrival,
    /// Longer than the arrival date's maximum.
    MaxStayArrival,
    /// Shorter than some night's minimum.
    MinStayThrough,
    /// Booked too close to arrival for the plan.
    MinAdvance,
    /// Booked too far ahead for the plan.
    MaxAdvance,
}

impl Reason {
    /// The wire code.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::Closed => "closed",
            Reason::ClosedToArrival => "closed_to_arrival",
            Reason::ClosedToDeparture => "closed_to_departure",
            Reason::MinStayArrival => "min_stay_arrival",
            Reason::MaxStayArrival => "max_stay_arrival",
            Reason::MinStayThrough => "min_stay_through",
            Reason::MinAdvance => "min_advance",
            Reason::MaxAdvance => "max_advance",
        }
    }
}

/// Why `stay`, booked on `today` under `plan`, cannot be sold, given each date's
/// restrictions for its room type and plan (`on`): sorted, without repeats; empty when
/// it can be sold.
///
/// - `closed` applies to every night of the stay (not the departure date);
/// - `closed_to_arrival`, `min_stay_arrival` and `max_stay_arrival` to the arrival date;
/// - `closed_to_departure` to the departure date (a date the stay does not sleep);
/// - `min_stay_through` to every night of the stay.
pub fn refusals(
    stay: &Stay,
    today: Date,
    plan: &RatePlan,
    on: impl Fn(Date) -> Restriction,
) -> Vec<Reason> {
    let nights = stay.nights();
    let mut reasons = BTreeSet::new();
    let arrival = on(stay.arrival());
    if arrival.closed_to_arrival {
        reasons.insert(Reason::ClosedToArrival);
    }
    if arrival
        .min_stay_arrival
        .is_some_and(|min| nights < u32::from(min))
    {
        reasons.insert(Reason::MinStayArrival);
    }
    if arrival
        .max_stay_arrival
        .is_some_and(|max| nights > u32::from(max))
    {
        reasons.insert(Reason::MaxStayArrival);
    }
    if on(stay.departure()).closed_to_departure {
        reasons.insert(Reason::ClosedToDeparture);
    }
    for night in stay.each_night() {
        let r = on(night);
        if r.closed {
            reasons.insert(Reason::Closed);
        }
        if r.min_stay_through
            .is_some_and(|min| nights < u32::from(min))
        {
            reasons.insert(Reason::MinStayThrough);
        }
    }
    reasons.extend(plan.advance_reasons(stay.arrival(), today));
    reasons.into_iter().collect()
}

/// Most rate plans one hotel keeps besides the built-in one.
pub const MAX_RATE_PLANS_PER_HOTEL: usize = 100;

/// Most restriction cells (date × room type × plan) one `PUT …/restrictions` may touch,
/// and most one hotel keeps set: a hotel restricting every night of two years for 270
/// type-and-plan pairs. A cell costs about 40 bytes.
pub const MAX_RESTRICTION_CELLS: usize = 200_000;

/// Days of the week a restriction change applies to, as a bit set (Monday = bit 0).
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct Weekdays(u8);

impl Weekdays {
    /// Every day.
    pub const ALL: Weekdays = Weekdays(0b111_1111);

    /// The wire names, Monday first.
    pub const NAMES: [&'static str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

    /// `["mon", …]`: at least one, each a day name; repeats are harmless.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, ValidationError> {
        let mut bits = 0u8;
        for name in names {
            let i = Self::NAMES
                .iter()
                .position(|n| *n == name.as_ref())
                .ok_or_else(|| {
                    ValidationError::new(
                        "weekdays",
                        "each must be one of mon, tue, wed, thu, fri, sat, sun",
                    )
                })?;
            bits |= 1 << i;
        }
        if bits == 0 {
            return Err(ValidationError::new(
                "weekdays",
                "must name at least one day",
            ));
        }
        Ok(Self(bits))
    }

    /// Whether `date` falls on one of these days.
    pub fn contains(&self, date: Date) -> bool {
        let monday_based = date.weekday().to_monday_zero_offset();
        self.0 & (1 << monday_based) != 0
    }

    /// The day names, Monday first.
    pub fn names(&self) -> Vec<&'static str> {
        (0..7usize)
            .filter(|i| self.0 & (1 << i) != 0)
            .map(|i| Self::NAMES[i])
            .collect()
    }
}

/// One (room type, plan) pair's restrictions by date; dates that restrict nothing are
/// not kept.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct RestrictionCalendar {
    /// Restrictions by date.
    #[serde(with = "crate::codec::date_map")]
    pub by_date: std::collections::BTreeMap<Date, Restriction>,
}

/// What a reservation was sold under: its plan's code and policies, with what they cost
/// for its stay, fixed when it was booked (changing the plan later does not change what
/// was sold).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct Terms {
    /// The plan.
    pub rate_plan: RatePlanCode,
    /// Its cancellation policy as sold.
    pub cancellation: CancellationPolicy,
    /// Its no-show fee rule as sold.
    pub no_show_fee: Fee,
    /// The last instant cancelling is free; `None` when there is no free window (then
    /// cancelling costs the late fee from booking on, unless that is 0: free at any time).
    #[serde(with = "crate::codec::opt_timestamp")]
    pub free_until: Option<Timestamp>,
    /// What cancelling after `free_until` costs, minor units (≤ the total).
    pub late_cancel_fee_minor: i64,
    /// What a no-show costs, minor units (≤ the total).
    pub no_show_fee_minor: i64,
}

impl Terms {
    /// The built-in plan's terms (and those of every reservation booked before plans
    /// existed): free cancellation at any time, no no-show fee.
    pub fn bar() -> Self {
        Self {
            rate_plan: RatePlanCode::bar(),
            cancellation: CancellationPolicy::FREE,
            no_show_fee: Fee::NONE,
            free_until: None,
            late_cancel_fee_minor: 0,
            no_show_fee_minor: 0,
        }
    }

    /// Whether these are [`Terms::bar`]'s (kept without an allocation).
    pub fn is_bar(&self) -> bool {
        self.rate_plan.is_bar()
            && self.cancellation == CancellationPolicy::FREE
            && self.no_show_fee == Fee::NONE
            && self.free_until.is_none()
            && self.late_cancel_fee_minor == 0
            && self.no_show_fee_minor == 0
    }

    /// The terms of `plan` (code `code`) for a stay arriving on `arrival` in a hotel of
    /// zone `tz`, priced `quote` under the plan.
    pub fn of(
        code: RatePlanCode,
        plan: &RatePlan,
        arrival: Date,
        tz: &HotelTz,
        quote: &Quote,
    ) -> Self {
        let cancellation = plan.cancellation();
        if cancellation.fee() == Fee::NONE && plan.no_show_fee() == Fee::NONE {
            // Nothing to price (the built-in plan's case: no list of nights built).
            return Self {
                rate_plan: code,
                cancellation,
                no_show_fee: Fee::NONE,
                free_until: None,
                late_cancel_fee_minor: 0,
                no_show_fee_minor: 0,
            };
        }
        let nightly_minor: Vec<i64> = quote.nightly.iter().map(|(_, a)| *a).collect();
        let nightly_minor = nightly_minor.as_slice();
        let late_cancel_fee_minor = cancellation.fee().amount_minor(nightly_minor);
        Self {
            rate_plan: code,
            cancellation,
            no_show_fee: plan.no_show_fee(),
            // Only a late fee needs an instant from which it is due.
            free_until: if late_cancel_fee_minor == 0 {
                None
            } else {
                cancellation.free_until(arrival, tz)
            },
            late_cancel_fee_minor,
            no_show_fee_minor: plan.no_show_fee().amount_minor(nightly_minor),
        }
    }

    /// What cancelling at `now` costs.
    pub fn cancellation_fee_at(&self, now: Timestamp) -> i64 {
        match self.free_until {
            Some(until) if now <= until => 0,
            _ => self.late_cancel_fee_minor,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use jiff::civil::date;

    use super::*;
    use crate::money::Currency;

    fn stay(a: i8, d: i8) -> Stay {
        Stay::between(date(2030, 3, a), date(2030, 3, d)).unwrap()
    }

    fn plan(adjust: i64) -> RatePlan {
        RatePlan::parse(
            "Flexible",
            vec![RoomTypeCode::parse("KING").unwrap()],
            adjust,
            CancellationPolicy::parse(48, Fee::Nights(1)).unwrap(),
            Fee::Percent(100),
            None,
            None,
        )
        .unwrap()
    }

    #[test]
    fn the_plan_price_rounds_half_away_from_zero() {
        let cases = [
            (0, 10_000, 10_000),
            (-50, 333, 167),
            (-50, 1, 1),
            (-50, 3, 2),
            (10, 5, 6),
            (10, 4, 4),
            (-100, 99_999, 0),
            (100, 12_345, 24_690),
            (-15, 10_001, 8_501),
        ];
        for (adjust, rate, want) in cases {
            assert_eq!(
                plan(adjust).nightly_minor(rate),
                want,
                "{adjust} % of {rate}"
            );
        }
        let quote = Quote {
            nightly: vec![(date(2030, 3, 1), 333), (date(2030, 3, 2), 335)],
            total: Money {
                amount_minor: 668,
                currency: Currency::parse("CNY").unwrap(),
            },
        };
        let priced = plan(-50).price(&quote);
        assert_eq!(
            priced.nightly,
            vec![(date(2030, 3, 1), 167), (date(2030, 3, 2), 168)]
        );
        assert_eq!(
            priced.total.amount_minor, 335,
            "the sum of the rounded nights"
        );
        assert_eq!(RatePlan::bar().price(&quote), quote);
    }

    #[test]
    fn fees_are_capped_at_the_total() {
        let nightly = [1_000, 2_000, 3_000];
        assert_eq!(Fee::Nights(0).amount_minor(&nightly), 0);
        assert_eq!(Fee::Nights(1).amount_minor(&nightly), 1_000);
        assert_eq!(Fee::Nights(2).amount_minor(&nightly), 3_000);
        assert_eq!(
            Fee::Nights(5).amount_minor(&nightly),
            6_000,
            "more nights than the stay"
        );
        assert_eq!(Fee::Percent(100).amount_minor(&nightly), 6_000);
        assert_eq!(Fee::Percent(0).amount_minor(&nightly), 0);
        assert_eq!(
            Fee::Percent(33).amount_minor(&[1_005]),
            332,
            "331.65 rounds up"
        );
        assert_eq!(
            Fee::Percent(33).amount_minor(&[1_001]),
            330,
            "330.33 rounds down"
        );
        assert_eq!(
            Fee::Percent(50).amount_minor(&[1]),
            1,
            "0.5 rounds away from zero"
        );
        assert_eq!(percent_of(-5, 10), -1, "-0.5 rounds away from zero");
        assert_eq!(percent_of(-1_005, 33), -332);
        assert_eq!(percent_of(-1_001, 33), -330);
        assert!(Fee::percent(101).is_err() && Fee::percent(-1).is_err());
        assert!(Fee::nights(731).is_err() && Fee::nights(-1).is_err());
        assert_eq!(Fee::nights(730).unwrap(), Fee::Nights(730));
        assert_eq!(Fee::percent(100).unwrap(), Fee::Percent(100));
    }

    /// Free until exactly `free_until_hours` real hours before the arrival date starts in
    /// the hotel's zone, also across a daylight-saving change; the built-in policy is
    /// free even after arrival.
    #[test]
    fn free_cancellation_ends_at_its_instant_across_a_dst_change() {
        let tz = HotelTz::parse("America/New_York").unwrap();
        let nightly = [10_000, 12_000];
        // Clocks go forward on 2030-03-10 at 02:00 (EST -> EDT). Arrival 2030-03-11
        // starts at 04:00 UTC (00:00 EDT); 24 real hours earlier is 2030-03-10 04:00 UTC,
        // 23:00 EST on the 9th: an hour before the local clock's "a day earlier".
        let policy = CancellationPolicy::parse(24, Fee::Nights(1)).unwrap();
        let arrival = date(2030, 3, 11);
        let deadline: Timestamp = "2030-03-10T04:00:00Z".parse().unwrap();
        assert_eq!(
            tz.start_of(arrival),
            "2030-03-11T04:00:00Z".parse().unwrap()
        );
        assert_eq!(policy.free_until(arrival, &tz), Some(deadline));
        let just_after = deadline.checked_add(SignedDuration::from_nanos(1)).unwrap();
        assert_eq!(policy.fee_at(deadline, arrival, &tz, &nightly), 0);
        assert_eq!(policy.fee_at(just_after, arrival, &tz, &nightly), 10_000);
        // 48 real hours before the same arrival.
        let two_days = CancellationPolicy::parse(48, Fee::Percent(50)).unwrap();
        assert_eq!(
            two_days.free_until(arrival, &tz),
            "2030-03-09T04:00:00Z".parse::<Timestamp>().ok()
        );
        // Clocks go back on 2030-11-03: the day before arrival has 25 hours.
        let autumn = date(2030, 11, 4);
        assert_eq!(tz.start_of(autumn), "2030-11-04T05:00:00Z".parse().unwrap());
        assert_eq!(
            policy.free_until(autumn, &tz),
            "2030-11-03T05:00:00Z".parse::<Timestamp>().ok()
        );
        // No free window: the fee applies even a year ahead.
        let nonref = CancellationPolicy::parse(0, Fee::Percent(100)).unwrap();
        assert_eq!(nonref.free_until(arrival, &tz), None);
        let year_ahead: Timestamp = "2029-03-11T00:00:00Z".parse().unwrap();
        assert_eq!(nonref.fee_at(year_ahead, arrival, &tz, &nightly), 22_000);
        // Free at any time: even after arrival.
        let late: Timestamp = "2030-03-12T12:00:00Z".parse().unwrap();
        assert_eq!(
            CancellationPolicy::FREE.fee_at(late, arrival, &tz, &nightly),
            0
        );
        assert!(CancellationPolicy::parse(-1, Fee::NONE).is_err());
        assert!(CancellationPolicy::parse(8_785, Fee::NONE).is_err());
    }

    #[test]
    fn a_plan_is_validated_and_sells_only_its_types() {
        let king = RoomTypeCode::parse("KING").unwrap();
        let twin = RoomTypeCode::parse("TWIN").unwrap();
        let parse = |types: Vec<RoomTypeCode>, adjust, min, max| {
            RatePlan::parse(
                "Plan",
                types,
                adjust,
                CancellationPolicy::FREE,
                Fee::NONE,
                min,
                max,
            )
        };
        let p = parse(
            vec![twin.clone(), king.clone(), king.clone()],
            0,
            None,
            None,
        )
        .unwrap();
        assert_eq!(p.name(), "Plan");
        let flexible = plan(-15);
        assert_eq!(flexible.adjust_percent(), -15);
        assert_eq!(flexible.no_show_fee(), Fee::Percent(100));
        assert_eq!(
            flexible.cancellation(),
            CancellationPolicy::parse(48, Fee::Nights(1)).unwrap()
        );
        assert_eq!(RatePlan::bar().cancellation(), CancellationPolicy::FREE);
        assert_eq!(
            p.sells_types(),
            &Sells::Only(vec![king.clone(), twin.clone()])
        );
        assert!(p.sells(&king) && p.sells(&twin));
        assert!(!p.sells(&RoomTypeCode::parse("SUITE").unwrap()));
        assert!(RatePlan::bar().sells(&RoomTypeCode::parse("SUITE").unwrap()));
        let field = |r: Result<RatePlan, ValidationError>| r.unwrap_err().field;
        assert_eq!(field(parse(vec![], 0, None, None)), "room_types");
        assert_eq!(
            field(parse(vec![king.clone()], 101, None, None)),
            "adjust_percent"
        );
        assert_eq!(
            field(parse(vec![king.clone()], -101, None, None)),
            "adjust_percent"
        );
        assert!(parse(vec![king.clone()], -100, None, None).is_ok());
        assert_eq!(
            field(parse(vec![king.clone()], 0, Some(-1), None)),
            "min_advance_days"
        );
        assert_eq!(
            field(parse(vec![king.clone()], 0, None, Some(731))),
            "max_advance_days"
        );
        assert_eq!(
            field(parse(vec![king.clone()], 0, Some(5), Some(4))),
            "max_advance_days"
        );
        assert!(parse(vec![king.clone()], 0, Some(4), Some(4)).is_ok());
        let blank = RatePlan::parse(
            " ",
            vec![king],
            0,
            CancellationPolicy::FREE,
            Fee::NONE,
            None,
            None,
        );
        assert_eq!(field(blank), "name");
    }

    /// Each limit of a plan at its edge.
    #[test]
    fn a_plans_limits_hold_at_their_edges() {
        let parse = |name: &str, types: usize| {
            let types = (0..types)
                .map(|i| RoomTypeCode::parse(&format!("T{i}")).unwrap())
                .collect();
            RatePlan::parse(
                name,
                types,
                0,
                CancellationPolicy::FREE,
                Fee::NONE,
                None,
                None,
            )
        };
        assert!(parse(&"n".repeat(200), 1).is_ok());
        assert_eq!(parse(&"n".repeat(201), 1).unwrap_err().field, "name");
        assert_eq!(parse("bad\u{7}name", 1).unwrap_err().field, "name");
        assert!(parse("Plan", MAX_PLAN_ROOM_TYPES).is_ok());
        assert_eq!(
            parse("Plan", MAX_PLAN_ROOM_TYPES + 1).unwrap_err().field,
            "room_types"
        );
        let policy = CancellationPolicy::parse(48, Fee::Nights(2)).unwrap();
        assert_eq!(
            (policy.free_until_hours(), policy.fee()),
            (48, Fee::Nights(2))
        );
        // Sums beyond `i64` saturate instead of wrapping.
        assert_eq!(percent_of(i64::MAX, 200), i64::MAX);
        assert_eq!(percent_of(i64::MIN, 200), i64::MIN);
        assert_eq!(percent_of(i64::MAX, 100), i64::MAX);
    }

    fn reasons(
        s: Stay,
        today: Date,
        plan: &RatePlan,
        rules: &BTreeMap<Date, Restriction>,
    ) -> Vec<&'static str> {
        refusals(&s, today, plan, |d| {
            rules.get(&d).copied().unwrap_or_default()
        })
        .iter()
        .map(Reason::code)
        .collect()
    }

    /// Each restriction at its boundary, on the dates it applies to and not the others.
    #[test]
    fn each_restriction_applies_to_its_dates_only() {
        let bar = RatePlan::bar();
        let today = date(2030, 3, 1);
        let on = |day: i8, r: Restriction| BTreeMap::from([(date(2030, 3, day), r)]);
        let none: Vec<&str> = Vec::new();
        // Stop-sell: every night, not the departure date.
        let closed = on(
            12,
            Restriction {
                closed: true,
                ..Default::default()
            },
        );
        assert_eq!(reasons(stay(10, 13), today, &bar, &closed), ["closed"]);
        assert_eq!(reasons(stay(12, 13), today, &bar, &closed), ["closed"]);
        assert_eq!(
            reasons(stay(10, 12), today, &bar, &closed),
            none,
            "departs that day"
        );
        // Closed to arrival: the arrival date only.
        let cta = on(
            12,
            Restriction {
                closed_to_arrival: true,
                ..Default::default()
            },
        );
        assert_eq!(
            reasons(stay(12, 14), today, &bar, &cta),
            ["closed_to_arrival"]
        );
        assert_eq!(reasons(stay(11, 14), today, &bar, &cta), none, "through it");
        // Closed to departure: the departure date only.
        let ctd = on(
            12,
            Restriction {
                closed_to_departure: true,
                ..Default::default()
            },
        );
        assert_eq!(
            reasons(stay(10, 12), today, &bar, &ctd),
            ["closed_to_departure"]
        );
        assert_eq!(reasons(stay(10, 13), today, &bar, &ctd), none, "through it");
        assert_eq!(
            reasons(stay(12, 13), today, &bar, &ctd),
            none,
            "arrives that day"
        );
        // Minimum and maximum stay on arrival: the arrival date's values only.
        let min_arr = on(
            12,
            Restriction {
                min_stay_arrival: Some(3),
                ..Default::default()
            },
        );
        assert_eq!(
            reasons(stay(12, 14), today, &bar, &min_arr),
            ["min_stay_arrival"]
        );
        assert_eq!(
            reasons(stay(12, 15), today, &bar, &min_arr),
            none,
            "exactly the minimum"
        );
        assert_eq!(
            reasons(stay(11, 13), today, &bar, &min_arr),
            none,
            "through it"
        );
        let max_arr = on(
            12,
            Restriction {
                max_stay_arrival: Some(2),
                ..Default::default()
            },
        );
        assert_eq!(
            reasons(stay(12, 15), today, &bar, &max_arr),
            ["max_stay_arrival"]
        );
        assert_eq!(
            reasons(stay(12, 14), today, &bar, &max_arr),
            none,
            "exactly the maximum"
        );
        assert_eq!(
            reasons(stay(11, 15), today, &bar, &max_arr),
            none,
            "through it"
        );
        // Minimum stay through: every night of the stay, not the departure date.
        let through = on(
            13,
            Restriction {
                min_stay_through: Some(3),
                ..Default::default()
            },
        );
        assert_eq!(
            reasons(stay(12, 14), today, &bar, &through),
            ["min_stay_through"]
        );
        assert_eq!(
            reasons(stay(13, 14), today, &bar, &through),
            ["min_stay_through"]
        );
        assert_eq!(
            reasons(stay(11, 14), today, &bar, &through),
            none,
            "exactly the minimum"
        );
        assert_eq!(
            reasons(stay(11, 13), today, &bar, &through),
            none,
            "departs that day"
        );
        // Several at once, sorted, each once.
        let mut many = closed.clone();
        many.insert(
            date(2030, 3, 10),
            Restriction {
                closed_to_arrival: true,
                min_stay_arrival: Some(5),
                min_stay_through: Some(5),
                ..Default::default()
            },
        );
        assert_eq!(
            reasons(stay(10, 13), today, &bar, &many),
            [
                "closed",
                "closed_to_arrival",
                "min_stay_arrival",
                "min_stay_through"
            ]
        );
    }

    /// A patch changes the fields it names, leaves the rest, and clears a number with an
    /// explicit null.
    #[test]
    fn a_patch_sets_clears_and_leaves_fields() {
        let start = Restriction {
            closed: true,
            min_stay_arrival: Some(2),
            min_stay_through: Some(3),
            ..Default::default()
        };
        let patch = RestrictionPatch {
            closed: Some(false),
            closed_to_departure: Some(true),
            min_stay_arrival: Some(None),
            max_stay_arrival: Some(Some(7)),
            ..Default::default()
        };
        assert_eq!(
            patch.apply(start),
            Restriction {
                closed: false,
                closed_to_arrival: false,
                closed_to_departure: true,
                min_stay_arrival: None,
                max_stay_arrival: Some(7),
                min_stay_through: Some(3),
            }
        );
        assert_eq!(RestrictionPatch::default().apply(start), start);
        assert!(RestrictionPatch::default().is_empty() && !patch.is_empty());
        assert_eq!(
            RestrictionPatch::nights("min_stay_arrival", Some(1)),
            Ok(Some(1))
        );
        assert_eq!(RestrictionPatch::nights("min_stay_arrival", None), Ok(None));
        assert!(RestrictionPatch::nights("min_stay_arrival", Some(0)).is_err());
        assert!(RestrictionPatch::nights("min_stay_arrival", Some(731)).is_err());
    }

    #[test]
    fn the_booking_window_counts_days_from_today_to_arrival() {
        let king = RoomTypeCode::parse("KING").unwrap();
        let window = RatePlan::parse(
            "Advance",
            vec![king],
            -20,
            CancellationPolicy::parse(0, Fee::Percent(100)).unwrap(),
            Fee::Percent(100),
            Some(7),
            Some(30),
        )
        .unwrap();
        let today = date(2030, 3, 1);
        let arriving = |day: i8| {
            let arrival = date(2030, 3, day);
            Stay::between(arrival, arrival.tomorrow().unwrap()).unwrap()
        };
        let none = BTreeMap::new();
        let codes = |s: Stay| reasons(s, today, &window, &none);
        assert_eq!(codes(arriving(7)), ["min_advance"], "six days ahead");
        assert!(codes(arriving(8)).is_empty(), "exactly seven days ahead");
        assert!(codes(arriving(31)).is_empty(), "exactly thirty days ahead");
        let far = Stay::between(date(2030, 4, 1), date(2030, 4, 2)).unwrap();
        assert_eq!(codes(far), ["max_advance"], "thirty-one days ahead");
    }

    #[test]
    fn weekdays_pick_their_dates_and_refuse_unknown_names() {
        let w = Weekdays::parse(&["sat", "sun", "sat"]).unwrap();
        assert_eq!(w.names(), ["sat", "sun"]);
        // 2030-03-02 is a Saturday.
        let picked: Vec<i8> = (1..=10).filter(|d| w.contains(date(2030, 3, *d))).collect();
        assert_eq!(picked, [2, 3, 9, 10]);
        assert!((1..=7).all(|d| Weekdays::ALL.contains(date(2030, 3, d))));
        let bad = |names: &[&str]| Weekdays::parse(names).unwrap_err().field;
        assert_eq!(bad(&["Sat"]), "weekdays");
        assert_eq!(bad(&[]), "weekdays");
    }

    /// Terms are fixed at booking from the plan and the stay's plan prices: the built-in
    /// plan's (and any free plan's) cost nothing and keep no instant.
    #[test]
    fn terms_price_the_policies_for_the_stay() {
        let tz = HotelTz::parse("Europe/Berlin").unwrap();
        let cny = Currency::parse("CNY").unwrap();
        let quote = Quote {
            nightly: stay(10, 13).each_night().zip([900, 1100, 1000]).collect(),
            total: Money {
                amount_minor: 3000,
                currency: cny,
            },
        };
        let code = RatePlanCode::parse("FLEX").unwrap();
        let t = Terms::of(code.clone(), &plan(0), date(2030, 3, 10), &tz, &quote);
        assert_eq!(t.late_cancel_fee_minor, 900, "the first night");
        assert_eq!(t.no_show_fee_minor, 3000, "100 %");
        // 48 h before 2030-03-10 00:00 in Berlin (+01:00).
        let until: Timestamp = "2030-03-07T23:00:00Z".parse().unwrap();
        assert_eq!(t.free_until, Some(until));
        assert_eq!(t.cancellation_fee_at(until), 0);
        let later = until.checked_add(SignedDuration::from_nanos(1)).unwrap();
        assert_eq!(t.cancellation_fee_at(later), 900);
        let bar = Terms::of(
            RatePlanCode::bar(),
            &RatePlan::bar(),
            date(2030, 3, 10),
            &tz,
            &quote,
        );
        assert!(bar.is_bar());
        assert_eq!(bar.cancellation_fee_at(later), 0);
        assert!(!t.is_bar());
        // Either fee alone is priced, and a plan free to cancel keeps no instant.
        let one_sided = |late: Fee, no_show: Fee| {
            let p = RatePlan::parse(
                "One-sided",
                vec![RoomTypeCode::parse("KING").unwrap()],
                0,
                CancellationPolicy::parse(24, late).unwrap(),
                no_show,
                None,
                None,
            )
            .unwrap();
            let t = Terms::of(code.clone(), &p, date(2030, 3, 10), &tz, &quote);
            (
                t.free_until.is_some(),
                t.late_cancel_fee_minor,
                t.no_show_fee_minor,
            )
        };
        assert_eq!(one_sided(Fee::Nights(2), Fee::NONE), (true, 2000, 0));
        assert_eq!(one_sided(Fee::NONE, Fee::Nights(2)), (false, 0, 2000));
        assert_eq!(one_sided(Fee::Nights(0), Fee::NONE), (false, 0, 0));
        // A plan without fees keeps its own code and policy as sold.
        let free = RatePlan::parse(
            "Free",
            vec![RoomTypeCode::parse("KING").unwrap()],
            5,
            CancellationPolicy::parse(24, Fee::NONE).unwrap(),
            Fee::NONE,
            None,
            None,
        )
        .unwrap();
        let t = Terms::of(code.clone(), &free, date(2030, 3, 10), &tz, &quote);
        assert_eq!(t.rate_plan, code);
        assert_eq!(t.cancellation, free.cancellation());
        assert_eq!(t.no_show_fee, Fee::NONE);
        assert!(!t.is_bar());
    }

    /// Only the built-in plan's exact terms count as BAR's (kept without an allocation):
    /// any one field otherwise makes them a plan's own.
    #[test]
    fn bar_terms_are_exactly_the_built_in_ones() {
        assert!(Terms::bar().is_bar());
        let at: Timestamp = "2030-03-07T23:00:00Z".parse().unwrap();
        let variants = [
            Terms {
                rate_plan: RatePlanCode::parse("FLEX").unwrap(),
                ..Terms::bar()
            },
            Terms {
                cancellation: CancellationPolicy::parse(24, Fee::NONE).unwrap(),
                ..Terms::bar()
            },
            Terms {
                no_show_fee: Fee::Percent(1),
                ..Terms::bar()
            },
            Terms {
                free_until: Some(at),
                ..Terms::bar()
            },
            Terms {
                late_cancel_fee_minor: 1,
                ..Terms::bar()
            },
            Terms {
                no_show_fee_minor: 1,
                ..Terms::bar()
            },
        ];
        for t in variants {
            assert!(!t.is_bar(), "{t:?}");
        }
    }
}
