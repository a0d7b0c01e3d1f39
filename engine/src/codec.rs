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

/// A reservation's `pinned` flag, which records written before it existed do not carry.
///
/// bincode is not self-describing, so a record's layout is known only from the format
/// version of the file it came from (journal segment 5 and older, snapshot 7 and older
/// lack the flag). Rather than a second copy of every type that holds a reservation, the
/// reader of such a file decodes it inside [`pinned::decoding_unpinned`], and the flag's
/// field then reads nothing and says `false` (nothing was pinned before pins existed).
/// Thread-local, so parallel decoders of different formats do not disturb each other.
pub mod pinned {
    use std::cell::Cell;

    use super::*;

    thread_local! {
        /// Set while a record of a format without the flag is decoded on this thread.
        static UNPINNED_FORMAT: Cell<bool> = const { Cell::new(false) };
    }

    /// Runs `decode` for a record written before reservations had the flag.
    pub fn decoding_unpinned<T>(decode: impl FnOnce() -> T) -> T {
        let before = UNPINNED_FORMAT.with(|f| f.replace(true));
        let out = decode();
        UNPINNED_FORMAT.with(|f| f.set(before));
        out
    }

    /// Serializes the flag.
    pub fn serialize<S: Serializer>(pinned: &bool, s: S) -> Result<S::Ok, S::Error> {
        pinned.serialize(s)
    }

    /// Deserializes the flag, or reads nothing and gives `false` for an older format.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        if UNPINNED_FORMAT.with(Cell::get) {
            return Ok(false);
        }
        bool::deserialize(d)
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
