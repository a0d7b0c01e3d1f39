//! Identifiers. Each is a newtype with a `parse` constructor, so a value that exists is valid.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

/// Longest client-chosen code we accept (hotel ids, room type codes, room numbers, idempotency
/// keys). A limit keeps keys cheap to hash and store, and URLs short.
pub const MAX_CODE_LEN: usize = 64;

fn parse_code(field: &'static str, raw: &str) -> Result<String, ValidationError> {
    if raw.is_empty() || raw.len() > MAX_CODE_LEN {
        return Err(ValidationError::new(
            field,
            format!("must be 1 to {MAX_CODE_LEN} characters"),
        ));
    }
    if !raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(ValidationError::new(
            field,
            "may contain only ASCII letters, digits, '-', '_' and '.'",
        ));
    }
    Ok(raw.to_owned())
}

macro_rules! code_newtype {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(String);

        impl $name {
            /// Validates a client-supplied value.
            pub fn parse(raw: &str) -> Result<Self, ValidationError> {
                parse_code($field, raw).map(Self)
            }

            /// The code as the client wrote it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

code_newtype!(
    /// A hotel's client-chosen code, e.g. `SHA-BUND`.
    HotelId,
    "hotel_id"
);
code_newtype!(
    /// A room type's code within its hotel, e.g. `KING`.
    RoomTypeCode,
    "room_type"
);
code_newtype!(
    /// A room's number within its hotel, e.g. `1208`.
    RoomNumber,
    "room"
);
code_newtype!(
    /// A client's `Idempotency-Key` for creating a reservation.
    IdempotencyKey,
    "idempotency_key"
);

/// A reservation's server-generated id (UUIDv7, so ids sort by creation time).
/// The engine never generates ids: the caller passes them in, which keeps it deterministic.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReservationId(pub uuid::Uuid);

impl ReservationId {
    /// Parses the textual form used in URLs.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        uuid::Uuid::parse_str(raw)
            .map(Self)
            .map_err(|_| ValidationError::new("reservation_id", "must be a UUID"))
    }

    /// Our payment reference for this reservation's payment. Derived from the id, so a
    /// payment callback leads straight to its reservation without a second index.
    pub fn out_trade_no(&self) -> String {
        format!("ik{}", self.0.simple())
    }

    /// Inverse of [`ReservationId::out_trade_no`].
    pub fn from_out_trade_no(raw: &str) -> Option<Self> {
        let hex = raw.strip_prefix("ik")?;
        if hex.len() != 32 {
            return None;
        }
        uuid::Uuid::try_parse(hex).ok().map(Self)
    }
}

impl fmt::Display for ReservationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for ReservationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReservationId({})", self.0)
    }
}

/// Where a room lives: hotel and number. Rooms are addressed by this everywhere.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Debug)]
pub struct RoomKey {
    /// The hotel owning the room.
    pub hotel_id: HotelId,
    /// The room's number within the hotel.
    pub number: RoomNumber,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_reject_empty_long_and_odd_characters() {
        assert!(HotelId::parse("H1").is_ok());
        assert!(HotelId::parse("").is_err());
        assert!(HotelId::parse(&"x".repeat(65)).is_err());
        assert!(HotelId::parse("a b").is_err());
        assert!(RoomNumber::parse("12/3").is_err());
    }

    #[test]
    fn out_trade_no_round_trips() {
        let id = ReservationId(uuid::Uuid::from_u128(
            0x0123_4567_89ab_cdef_0123_4567_89ab_cdef,
        ));
        assert_eq!(
            ReservationId::from_out_trade_no(&id.out_trade_no()),
            Some(id)
        );
        assert_eq!(ReservationId::from_out_trade_no("nope"), None);
    }
}
