//! Compact serde encodings for dates and instants in journal records and snapshots.
//!
//! jiff's own serde form is text (`"2026-11-23"`, RFC 3339), which costs an allocation and a
//! parse per field when a journal is replayed; a reservation carries five of them. These
//! encode a civil date as one integer and an instant as (seconds, nanoseconds), exactly (no
//! precision is lost, so a replayed reservation is identical to the one acknowledged).
//! Used with `#[serde(with = "…")]` on engine types; JSON for clients is `innkeep-http`'s.

use jiff::civil::Date;
use jiff::Timestamp;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

fn pack(d: Date) -> i32 {
    i32::from(d.year()) * 512 + i32::from(d.month()) * 32 + i32::from(d.day())
}

fn unpack(v: i32) -> Option<Date> {
    let year = i16::try_from(v.div_euclid(512)).ok()?;
    let rest = v.rem_euclid(512);
    let month = i8::try_from(rest / 32).ok()?;
    let day = i8::try_from(rest % 32).ok()?;
    Date::new(year, month, day).ok()
}

/// A civil date as one `i32`: `year * 512 + month * 32 + day` (order-preserving).
pub mod date {
    use super::*;

    /// Serializes `d`.
    pub fn serialize<S: Serializer>(d: &Date, s: S) -> Result<S::Ok, S::Error> {
        pack(*d).serialize(s)
    }

    /// Deserializes a date, refusing impossible ones.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
        let v = i32::deserialize(d)?;
        unpack(v).ok_or_else(|| D::Error::custom(format!("invalid packed date {v}")))
    }
}

/// `Option<Date>` with [`date`]'s encoding.
pub mod opt_date {
    use super::*;

    /// Serializes `d`.
    pub fn serialize<S: Serializer>(d: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
        d.map(pack).serialize(s)
    }

    /// Deserializes an optional date.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
        match Option::<i32>::deserialize(d)? {
            None => Ok(None),
            Some(v) => unpack(v)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("invalid packed date {v}"))),
        }
    }
}

/// An instant as `(seconds, nanoseconds)` since the Unix epoch, exactly.
pub mod timestamp {
    use super::*;

    /// Serializes `t`.
    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        (t.as_second(), t.subsec_nanosecond()).serialize(s)
    }

    /// Deserializes an instant, refusing out-of-range ones.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let (secs, nanos) = <(i64, i32)>::deserialize(d)?;
        Timestamp::new(secs, nanos).map_err(D::Error::custom)
    }
}

/// `Option<Timestamp>` with [`timestamp`]'s encoding.
pub mod opt_timestamp {
    use super::*;

    /// Serializes `t`.
    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        t.map(|t| (t.as_second(), t.subsec_nanosecond()))
            .serialize(s)
    }

    /// Deserializes an optional instant, refusing out-of-range ones.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        Option::<(i64, i32)>::deserialize(d)?
            .map(|(secs, nanos)| Timestamp::new(secs, nanos).map_err(D::Error::custom))
            .transpose()
    }
}

/// A `BTreeMap<Date, V>` as a sequence of (packed date, value) pairs.
pub mod date_map {
    use std::collections::BTreeMap;

    use super::*;

    /// Serializes `m`.
    pub fn serialize<S: Serializer, V: Serialize>(
        m: &BTreeMap<Date, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.iter().map(|(d, v)| (pack(*d), v)))
    }

    /// Deserializes a map, refusing impossible dates.
    pub fn deserialize<'de, D: Deserializer<'de>, V: Deserialize<'de>>(
        d: D,
    ) -> Result<BTreeMap<Date, V>, D::Error> {
        let pairs = Vec::<(i32, V)>::deserialize(d)?;
        pairs
            .into_iter()
            .map(|(v, x)| {
                unpack(v)
                    .map(|d| (d, x))
                    .ok_or_else(|| D::Error::custom(format!("invalid packed date {v}")))
            })
            .collect()
    }
}

/// Fields that records written before them do not carry, in the order they were added.
///
/// bincode is not self-describing, so a record's layout is known only from the format
/// version of the file it came from. Rather than a second copy of every type that holds a
/// reservation, the reader of an older file decodes it inside [`decoding_before`], and
/// each field added since reads nothing and says what it meant before it existed.
/// Thread-local, so parallel decoders of different formats do not disturb each other.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Added {
    /// [`crate::Reservation::pinned`] (journal segment 6, snapshot 8): `false` before.
    Pins = 1,
    /// [`crate::Reservation::booking`] as a room keeps it (snapshot 9; a journal record
    /// carries it in the payment's reference): `None` before.
    Bookings = 2,
}

thread_local! {
    /// The fields the record being decoded on this thread has: those added before this
    /// level's (`u8::MAX`: all of them, today's format).
    static FORMAT_LEVEL: std::cell::Cell<u8> = const { std::cell::Cell::new(u8::MAX) };
}

/// Runs `decode` for a record written before `field` (and every field added after it)
/// existed.
pub fn decoding_before<T>(field: Added, decode: impl FnOnce() -> T) -> T {
    let before = FORMAT_LEVEL.with(|f| f.replace((field as u8).saturating_sub(1)));
    let out = decode();
    FORMAT_LEVEL.with(|f| f.set(before));
    out
}

/// Whether the record being decoded carries `field`.
fn carries(field: Added) -> bool {
    FORMAT_LEVEL.with(std::cell::Cell::get) >= field as u8
}

/// A reservation's `pinned` flag ([`Added::Pins`]).
pub mod pinned {
    use super::*;

    /// Runs `decode` for a record written before reservations had the flag.
    pub fn decoding_unpinned<T>(decode: impl FnOnce() -> T) -> T {
        decoding_before(Added::Pins, decode)
    }

    /// Serializes the flag.
    pub fn serialize<S: Serializer>(pinned: &bool, s: S) -> Result<S::Ok, S::Error> {
        pinned.serialize(s)
    }

    /// Deserializes the flag, or reads nothing and gives `false` for an older format.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        if !carries(Added::Pins) {
            return Ok(false);
        }
        bool::deserialize(d)
    }
}

/// A reservation's multi-room booking ([`Added::Bookings`]).
pub mod booking {
    use super::*;
    use crate::ids::BookingId;

    /// Serializes the booking id, if any.
    pub fn serialize<S: Serializer>(booking: &Option<BookingId>, s: S) -> Result<S::Ok, S::Error> {
        booking.serialize(s)
    }

    /// Deserializes it, or reads nothing and gives `None` for an older format.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BookingId>, D::Error> {
        if !carries(Added::Bookings) {
            return Ok(None);
        }
        Option::<BookingId>::deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_keep_order() {
        let dates = [
            jiff::civil::date(-9999, 1, 1),
            jiff::civil::date(1970, 1, 1),
            jiff::civil::date(2026, 2, 28),
            jiff::civil::date(2026, 12, 31),
            jiff::civil::date(2028, 2, 29),
            jiff::civil::date(9999, 12, 31),
        ];
        for w in dates.windows(2) {
            assert!(pack(w[0]) < pack(w[1]));
        }
        for d in dates {
            assert_eq!(unpack(pack(d)), Some(d));
        }
        assert_eq!(unpack(2026 * 512 + 2 * 32 + 30), None);
    }
}
