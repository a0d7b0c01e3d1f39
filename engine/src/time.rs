//! Civil dates, stays and hotel time zones. The engine reads no clock: `now` is always passed in.

use std::fmt;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{DomainError, ValidationError};

/// A hotel's IANA time zone. Serialized as its name, so journals and snapshots stay readable
/// across tzdb updates (the rules are looked up again when loaded).
#[derive(Clone)]
pub struct HotelTz {
    name: String,
    tz: TimeZone,
}

impl HotelTz {
    /// Accepts only IANA names known to the bundled tz database (e.g. `Asia/Shanghai`).
    pub fn parse(name: &str) -> Result<Self, ValidationError> {
        // Fixed offsets and POSIX strings are not IANA names; the bundled database has no
        // entry for them, so `get` refuses them too.
        if name.is_empty() || name.len() > 64 {
            return Err(ValidationError::new(
                "time_zone",
                "must be an IANA time zone name",
            ));
        }
        let tz = jiff::tz::db().get(name).map_err(|_| {
            ValidationError::new("time_zone", format!("{name:?} is not an IANA time zone"))
        })?;
        Ok(Self {
            name: name.to_owned(),
            tz,
        })
    }

    /// The IANA name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The instant date `date` starts at the hotel (its first moment: 00:00, or the end
    /// of a daylight-saving gap that skips midnight).
    pub fn start_of(&self, date: Date) -> Timestamp {
        date.to_zoned(self.tz.clone())
            .map_or(Timestamp::MIN, |z| z.timestamp())
    }

    /// "Today" at the hotel at instant `now`.
    pub fn today(&self, now: Timestamp) -> Date {
        now.to_zoned(self.tz.clone()).date()
    }

    /// The night audit's date at instant `now`: today once the hotel-local clock has
    /// reached `audit_time`, else yesterday. A confirmed stay arriving before this date
    /// whose guest never checked in is a no-show: the audit runs at `audit_time` on the
    /// day after arrival.
    pub fn audit_date(&self, now: Timestamp, audit_time: jiff::civil::Time) -> Date {
        let local = now.to_zoned(self.tz.clone());
        if local.time() >= audit_time {
            local.date()
        } else {
            local.date().yesterday().unwrap_or(Date::MIN)
        }
    }
}

impl PartialEq for HotelTz {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for HotelTz {}

impl fmt::Debug for HotelTz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HotelTz({})", self.name)
    }
}

impl Serialize for HotelTz {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name)
    }
}

impl<'de> Deserialize<'de> for HotelTz {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        HotelTz::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// Rules a stay must follow. Configurable per engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StayLimits {
    /// Longest stay, in nights (default 90).
    pub max_nights: u32,
    /// How far ahead a departure may be, in days from the hotel-local today (default 730).
    pub horizon_days: u32,
}

impl Default for StayLimits {
    fn default() -> Self {
        Self {
            max_nights: 90,
            horizon_days: 730,
        }
    }
}

/// `[arrival, departure)` in hotel-local civil dates, at least one night.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Debug)]
pub struct Stay {
    #[serde(with = "crate::codec::date")]
    arrival: Date,
    #[serde(with = "crate::codec::date")]
    departure: Date,
}

impl Stay {
    /// Validates a stay for booking or availability: ordered, not before `today`, within
    /// the limits.
    pub fn parse(
        arrival: Date,
        departure: Date,
        today: Date,
        limits: StayLimits,
    ) -> Result<Self, DomainError> {
        if departure <= arrival {
            return Err(DomainError::InvalidStay(
                "departure must be after arrival".into(),
            ));
        }
        if arrival < today {
            return Err(DomainError::InvalidStay(format!(
                "arrival {arrival} is before the hotel's today {today}"
            )));
        }
        let stay = Self { arrival, departure };
        if stay.nights() > limits.max_nights {
            return Err(DomainError::InvalidStay(format!(
                "at most {} nights",
                limits.max_nights
            )));
        }
        let horizon = today
            .checked_add((i64::from(limits.horizon_days)).days())
            .unwrap_or(Date::MAX);
        if departure > horizon {
            return Err(DomainError::InvalidStay(format!(
                "departure must be on or before {horizon} ({} days ahead)",
                limits.horizon_days
            )));
        }
        Ok(stay)
    }

    /// A stay from two dates without the "today" rules; used for ranges already validated,
    /// e.g. the remaining nights of an early departure.
    pub fn between(arrival: Date, departure: Date) -> Option<Self> {
        (departure > arrival).then_some(Self { arrival, departure })
    }

    /// First night.
    pub fn arrival(&self) -> Date {
        self.arrival
    }

    /// Day the guest leaves (not a night of the stay).
    pub fn departure(&self) -> Date {
        self.departure
    }

    /// Number of nights, ≥ 1.
    pub fn nights(&self) -> u32 {
        // Both dates are valid civil dates, so the span in days fits easily.
        let days = (self.departure - self.arrival).get_days();
        u32::try_from(days).unwrap_or(0)
    }

    /// Each night of the stay, in order.
    pub fn each_night(&self) -> impl Iterator<Item = Date> + '_ {
        self.arrival
            .series(1.day())
            .take_while(move |d| *d < self.departure)
    }

    /// Whether `date` is one of the stay's nights.
    pub fn contains(&self, date: Date) -> bool {
        self.arrival <= date && date < self.departure
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn stay_rules() {
        let today = date(2026, 11, 23);
        let l = StayLimits::default();
        assert!(Stay::parse(today, date(2026, 11, 24), today, l).is_ok());
        assert!(Stay::parse(today, today, today, l).is_err());
        assert!(Stay::parse(date(2026, 11, 22), date(2026, 11, 24), today, l).is_err());
        assert!(Stay::parse(today, date(2027, 2, 21), today, l).is_ok()); // 90 nights
        assert!(Stay::parse(today, date(2027, 2, 22), today, l).is_err()); // 91 nights
        let far = date(2028, 11, 22); // today + 730 days
        assert!(Stay::parse(date(2028, 11, 20), far, today, l).is_ok());
        assert!(Stay::parse(date(2028, 11, 20), date(2028, 11, 23), today, l).is_err());
        let s = Stay::parse(today, date(2026, 11, 26), today, l).unwrap();
        assert_eq!(s.nights(), 3);
        assert_eq!(s.each_night().count(), 3);
    }

    #[test]
    fn night_audit_date_turns_at_the_hotel_local_audit_time() {
        let shanghai = HotelTz::parse("Asia/Shanghai").unwrap(); // UTC+8
        let four = jiff::civil::time(4, 0, 0, 0);
        // 03:59:59 local on the 24th: the audit of the 24th has not run yet.
        let before: Timestamp = "2026-11-23T19:59:59Z".parse().unwrap();
        assert_eq!(shanghai.audit_date(before, four), date(2026, 11, 23));
        // 04:00 local on the 24th: it has; a stay arriving on the 23rd is now due.
        let at: Timestamp = "2026-11-23T20:00:00Z".parse().unwrap();
        assert_eq!(shanghai.audit_date(at, four), date(2026, 11, 24));
        // The same instant is still the 23rd, 09:00, in New York.
        let new_york = HotelTz::parse("America/New_York").unwrap();
        assert_eq!(new_york.audit_date(at, four), date(2026, 11, 23));
    }

    #[test]
    fn today_is_hotel_local() {
        let now: Timestamp = "2026-11-23T11:00:00Z".parse().unwrap();
        let kiritimati = HotelTz::parse("Pacific/Kiritimati").unwrap(); // UTC+14
        let niue = HotelTz::parse("Pacific/Niue").unwrap(); // UTC-11
        assert_eq!(kiritimati.today(now), date(2026, 11, 24));
        assert_eq!(niue.today(now), date(2026, 11, 23));
        assert!(HotelTz::parse("Mars/Olympus").is_err());
        assert!(HotelTz::parse("").is_err());
    }
}
