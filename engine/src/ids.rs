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

/// Most distinct codes one [`interning`] scope shares (hotels, types, rooms and plans of a
/// node); past it, further codes get their own text as outside a scope.
pub const MAX_INTERNED_CODES: usize = 1 << 20;

/// The texts of an [`interning`] scope.
#[derive(Default)]
struct Interned {
    /// Every distinct text, up to [`MAX_INTERNED_CODES`].
    texts: std::collections::HashSet<std::sync::Arc<str>, std::hash::BuildHasherDefault<IdHasher>>,
    /// The last hotel, type and plan: consecutive events mostly name the same ones, which
    /// this finds without hashing. (Not rooms: consecutive events seldom share a room.)
    last: [Option<std::sync::Arc<str>>; REPEATED_KINDS],
}

/// The kinds of codes: the first [`REPEATED_KINDS`] have a [`Interned::last`] slot, the
/// first [`SHARED_KINDS`] are shared.
#[derive(Clone, Copy)]
#[allow(clippy::enum_variant_names)]
enum CodeKind {
    HotelId,
    RoomTypeCode,
    RatePlanCode,
    RoomNumber,
    /// Chosen per booking by clients: nearly every one is new, so none is shared.
    IdempotencyKey,
}

/// How many [`CodeKind`]s repeat from one event to the next.
const REPEATED_KINDS: usize = 3;
/// How many [`CodeKind`]s are shared.
const SHARED_KINDS: usize = 4;

thread_local! {
    /// The codes decoded on this thread within [`interning`], or `None` outside it.
    static INTERNED: std::cell::RefCell<Option<Interned>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` with the codes decoded on this thread sharing one text per distinct code, as
/// codes built by the engine do: recovery decodes millions of events that name the same
/// few hotels, types and rooms, and one allocation (and one free) for each would be most
/// of its decoding time. Nested scopes share the outer one's texts.
pub fn interning<R>(f: impl FnOnce() -> R) -> R {
    let outermost = INTERNED.with(|i| {
        let mut i = i.borrow_mut();
        let outermost = i.is_none();
        if outermost {
            *i = Some(Interned::default());
        }
        outermost
    });
    // Dropped on the way out, panics included, so no scope outlives its call.
    struct End(bool);
    impl Drop for End {
        fn drop(&mut self) {
            if self.0 {
                INTERNED.with(|i| i.borrow_mut().take());
            }
        }
    }
    let _end = End(outermost);
    f()
}

/// The shared text of `code` (a code of kind `kind`) within an [`interning`] scope, else
/// a new one.
fn shared_text(kind: CodeKind, code: &str) -> std::sync::Arc<str> {
    INTERNED.with(|i| {
        let mut i = i.borrow_mut();
        let Some(interned) = i.as_mut().filter(|_| (kind as usize) < SHARED_KINDS) else {
            return code.into();
        };
        let last = interned.last.get_mut(kind as usize);
        if let Some(text) = last.as_deref().and_then(Option::as_ref) {
            if **text == *code {
                return text.clone();
            }
        }
        let text = match interned.texts.get(code) {
            Some(text) => text.clone(),
            None => {
                let text: std::sync::Arc<str> = code.into();
                if interned.texts.len() < MAX_INTERNED_CODES {
                    interned.texts.insert(text.clone());
                }
                text
            }
        };
        if let Some(last) = last {
            *last = Some(text.clone());
        }
        text
    })
}

macro_rules! code_newtype {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        ///
        /// The text is shared (`Arc<str>`): a clone costs a reference count, not an
        /// allocation, so the copies every reservation, room key and map key holds of its
        /// hotel's, type's and room's codes cost one allocation between them.
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(std::sync::Arc<str>);

        impl $name {
            /// Validates a client-supplied value.
            pub fn parse(raw: &str) -> Result<Self, ValidationError> {
                parse_code($field, raw).map(|s| Self(s.into()))
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

        // By hand, as the derive on the former `String` field did (a newtype is its inner
        // value in bincode and JSON), so journals and snapshots keep their bytes.
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_newtype_struct(stringify!($name), &*self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Visit;
                impl<'de> serde::de::Visitor<'de> for Visit {
                    type Value = std::sync::Arc<str>;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str(concat!("a ", $field))
                    }
                    fn visit_newtype_struct<D: serde::Deserializer<'de>>(
                        self,
                        d: D,
                    ) -> Result<Self::Value, D::Error> {
                        // Straight from the input's bytes to the shared text: one
                        // allocation, not a `String` and then a copy (replay decodes
                        // millions of these).
                        d.deserialize_str(Visit)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                        Ok(shared_text(CodeKind::$name, v))
                    }
                }
                d.deserialize_newtype_struct(stringify!($name), Visit).map(Self)
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
    /// A rate plan's code within its hotel, e.g. `BAR` or `NONREF`.
    RatePlanCode,
    "rate_plan"
);
impl RatePlanCode {
    /// The built-in plan's code, [`crate::selling::BAR`].
    pub fn bar() -> Self {
        // One shared text per thread for every reservation it books under the plan: not
        // one process-wide, whose reference count every shard's bookings would contend on.
        thread_local! {
            static BAR: RatePlanCode = RatePlanCode(crate::selling::BAR.into());
        }
        BAR.with(Clone::clone)
    }

    /// Whether this is the built-in plan's code.
    pub fn is_bar(&self) -> bool {
        &*self.0 == crate::selling::BAR
    }
}

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
    pub fn out_trade_no(&self) -> OutTradeNo {
        OutTradeNo(*self)
    }

    /// A reference of one of this reservation's charges: its payment's own
    /// ([`ReservationId::out_trade_no`], `None`) or that of difference charge `n`
    /// (`<out_trade_no>-<n>`, `Some(n)`, n ≥ 1 written without leading zeros).
    pub fn from_charge_reference(raw: &str) -> Option<(Self, Option<u32>)> {
        match raw.split_once('-') {
            None => Self::from_out_trade_no(raw).map(|id| (id, None)),
            Some((base, n)) => {
                let canonical =
                    !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0');
                let n: u32 = n.parse().ok().filter(|_| canonical)?;
                Self::from_out_trade_no(base).map(|id| (id, Some(n)))
            }
        }
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

/// A multi-room booking's server-generated id (UUIDv7, from the same generator as
/// reservation ids, so the two never collide): the reservations it made carry it
/// ([`crate::Reservation::booking`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BookingId(pub uuid::Uuid);

impl BookingId {
    /// Parses the textual form used in URLs.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        uuid::Uuid::parse_str(raw)
            .map(Self)
            .map_err(|_| ValidationError::new("booking_id", "must be a UUID"))
    }

    /// The reference of the booking's one payment: `ik` and the booking id's hex digits,
    /// the form of a reservation's own (ids never collide, so a callback's reference is
    /// either a booking's or a reservation's).
    pub fn out_trade_no(&self) -> OutTradeNo {
        OutTradeNo(ReservationId(self.0))
    }
}

impl fmt::Display for BookingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for BookingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BookingId({})", self.0)
    }
}

/// Our reference for a payment, as the provider sees it: `ik` and the 32 hex digits of
/// the id of the reservation it pays, or of the multi-room booking it pays
/// ([`BookingId::out_trade_no`]). It holds the id rather than the text (16 bytes, no
/// allocation, in every copy of every reservation) and encodes as the text, which is
/// what journals and snapshots have always held.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct OutTradeNo(ReservationId);

impl OutTradeNo {
    /// The id in the reference: the reservation's, or the booking's for a payment of a
    /// multi-room booking.
    pub fn reservation_id(&self) -> ReservationId {
        self.0
    }

    /// Writes the text into `buf` and returns it.
    fn encode<'b>(&self, buf: &'b mut [u8; 34]) -> &'b str {
        buf[..2].copy_from_slice(b"ik");
        let hex = self.0 .0.simple().encode_lower(&mut buf[2..]).len();
        // `encode_lower` wrote ASCII hex digits only.
        std::str::from_utf8(&buf[..2 + hex]).unwrap_or("ik")
    }
}

impl fmt::Display for OutTradeNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.encode(&mut [0; 34]))
    }
}

impl PartialEq<str> for OutTradeNo {
    fn eq(&self, other: &str) -> bool {
        self.encode(&mut [0; 34]) == other
    }
}

impl Serialize for OutTradeNo {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.encode(&mut [0; 34]))
    }
}

impl<'de> Deserialize<'de> for OutTradeNo {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Parsed from the input's bytes, without a `String` of its own.
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = OutTradeNo;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a payment reference")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OutTradeNo, E> {
                ReservationId::from_out_trade_no(v)
                    .map(OutTradeNo)
                    .ok_or_else(|| E::custom("not a payment reference of ours"))
            }
        }
        deserializer.deserialize_str(Visit)
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

/// Hashes reservation ids cheaply. A UUIDv7's last 64 bits are random, so folding its bytes
/// with one multiply spreads them well; SipHash's protection against chosen keys is not
/// needed for ids this engine generated itself, and the maps keyed by them hold millions.
#[derive(Clone, Copy, Default, Debug)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // murmur3's finalizer: every input bit reaches the low bits the table indexes by
        // (a multiply alone only carries bits upwards).
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
}

/// A map keyed by codes an administrator chose (hotel ids, room numbers, room types),
/// hashed with [`IdHasher`]: these keys are looked up for every replayed event, and only
/// administrators choose them, so SipHash's protection against chosen keys buys nothing.
/// Keys clients choose (idempotency keys) keep the standard hasher.
pub type CodeMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;

/// A map keyed by reservation id, with [`IdHasher`].
pub type IdMap<V> =
    std::collections::HashMap<ReservationId, V, std::hash::BuildHasherDefault<IdHasher>>;

/// Where a room lives: hotel and number. Rooms are addressed by this everywhere.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Debug)]
pub struct RoomKey {
    /// The hotel owning the room.
    pub hotel_id: HotelId,
    /// The room's number within the hotel.
    pub number: RoomNumber,
}

/// A room's key as the codes it is made of, so a map keyed by [`RoomKey`] can be searched
/// with codes borrowed from elsewhere (an event) instead of a key cloned from them: a
/// clone touches the codes' shared reference counts, which replay would otherwise bounce
/// between its two threads once per event.
pub trait RoomKeyParts {
    /// The hotel's code.
    fn hotel(&self) -> &str;
    /// The room's number.
    fn number(&self) -> &str;
}

impl RoomKeyParts for RoomKey {
    fn hotel(&self) -> &str {
        self.hotel_id.as_str()
    }
    fn number(&self) -> &str {
        self.number.as_str()
    }
}

impl RoomKeyParts for (&HotelId, &RoomNumber) {
    fn hotel(&self) -> &str {
        self.0.as_str()
    }
    fn number(&self) -> &str {
        self.1.as_str()
    }
}

impl RoomNumber {
    /// The number `text` as decoding makes it (shared within [`interning`]), for text that
    /// was a room number when it was written.
    pub(crate) fn decoded(text: &str) -> Self {
        Self(shared_text(CodeKind::RoomNumber, text))
    }
}

impl RoomKeyParts for (&HotelId, &str) {
    fn hotel(&self) -> &str {
        self.0.as_str()
    }
    fn number(&self) -> &str {
        self.1
    }
}

impl<'a> std::borrow::Borrow<dyn RoomKeyParts + 'a> for RoomKey {
    fn borrow(&self) -> &(dyn RoomKeyParts + 'a) {
        self
    }
}

/// Hashes as [`RoomKey`]'s derived `Hash` does (each code hashes as its text), which
/// `Borrow` requires.
impl std::hash::Hash for dyn RoomKeyParts + '_ {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.hotel().hash(state);
        self.number().hash(state);
    }
}

impl PartialEq for dyn RoomKeyParts + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.hotel() == other.hotel() && self.number() == other.number()
    }
}

impl Eq for dyn RoomKeyParts + '_ {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A map keyed by room keys finds a room by its borrowed codes, and only that room.
    #[test]
    fn rooms_are_found_by_their_borrowed_codes() {
        let key = |h: &str, n: &str| RoomKey {
            hotel_id: HotelId::parse(h).unwrap(),
            number: RoomNumber::parse(n).unwrap(),
        };
        let mut rooms: CodeMap<RoomKey, u32> = CodeMap::default();
        for (i, (h, n)) in [("H", "1"), ("H", "12"), ("H1", "2"), ("X", "H")]
            .into_iter()
            .enumerate()
        {
            rooms.insert(key(h, n), i as u32);
        }
        let (h, n) = (
            HotelId::parse("H1").unwrap(),
            RoomNumber::parse("2").unwrap(),
        );
        assert_eq!(rooms.get(&(&h, &n) as &dyn RoomKeyParts), Some(&2));
        let (h, n) = (
            HotelId::parse("H").unwrap(),
            RoomNumber::parse("12").unwrap(),
        );
        assert_eq!(rooms.get(&(&h, &n) as &dyn RoomKeyParts), Some(&1));
        let (h, n) = (
            HotelId::parse("H").unwrap(),
            RoomNumber::parse("2").unwrap(),
        );
        assert_eq!(rooms.get(&(&h, &n) as &dyn RoomKeyParts), None);
        // Equal only when both codes are.
        let k = key("H", "2");
        let same: &dyn RoomKeyParts = &(&h, "2");
        let other_room: &dyn RoomKeyParts = &(&h, "3");
        let x = HotelId::parse("X").unwrap();
        let other_hotel: &dyn RoomKeyParts = &(&x, "2");
        assert!(*same == *(&k as &dyn RoomKeyParts));
        assert!(*other_room != *(&k as &dyn RoomKeyParts));
        assert!(*other_hotel != *(&k as &dyn RoomKeyParts));
    }

    /// Within an interning scope equal codes share one text; outside it, they do not, and
    /// the scope ends with its call.
    #[test]
    fn codes_decoded_while_interning_share_their_text() {
        let cfg = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(RoomNumber::parse("1208").unwrap(), cfg).unwrap();
        let decode = || -> RoomNumber {
            bincode::serde::borrow_decode_from_slice(&bytes, cfg)
                .unwrap()
                .0
        };
        let (a, b) = interning(|| (decode(), interning(decode)));
        assert_eq!(a.as_str(), "1208");
        assert!(std::sync::Arc::ptr_eq(&a.0, &b.0));
        let (c, d) = (decode(), decode());
        assert_eq!(c, a);
        assert!(!std::sync::Arc::ptr_eq(&c.0, &d.0));
        assert!(!std::sync::Arc::ptr_eq(&c.0, &a.0));

        // Codes of one kind in turn each get their own text, the first again its first.
        let hotel = |code: &str| -> HotelId {
            let bytes = bincode::serde::encode_to_vec(HotelId::parse(code).unwrap(), cfg).unwrap();
            bincode::serde::borrow_decode_from_slice(&bytes, cfg)
                .unwrap()
                .0
        };
        let (h1, h2, h3) = interning(|| (hotel("H1"), hotel("H2"), hotel("H1")));
        assert_eq!((h1.as_str(), h2.as_str(), h3.as_str()), ("H1", "H2", "H1"));
        assert!(std::sync::Arc::ptr_eq(&h1.0, &h3.0));
        // Idempotency keys are chosen per booking: never shared.
        let key = || -> IdempotencyKey {
            let bytes =
                bincode::serde::encode_to_vec(IdempotencyKey::parse("k-1").unwrap(), cfg).unwrap();
            bincode::serde::borrow_decode_from_slice(&bytes, cfg)
                .unwrap()
                .0
        };
        let (k1, k2) = interning(|| (key(), key()));
        assert_eq!(k1, k2);
        assert!(!std::sync::Arc::ptr_eq(&k1.0, &k2.0));
    }

    #[test]
    fn codes_reject_empty_long_and_odd_characters() {
        assert!(HotelId::parse("H1").is_ok());
        assert!(HotelId::parse("").is_err());
        assert!(HotelId::parse(&"x".repeat(65)).is_err());
        assert!(HotelId::parse("a b").is_err());
        assert!(RoomNumber::parse("12/3").is_err());
    }

    /// A code encodes exactly as the `String` it used to hold, in bincode (journals and
    /// snapshots) and JSON, and decodes back; clones share the text.
    #[test]
    fn codes_encode_like_strings_and_clones_share_the_text() {
        let cfg = bincode::config::standard();
        let code = RoomNumber::parse("1208").unwrap();
        let as_code = bincode::serde::encode_to_vec(&code, cfg).unwrap();
        let as_string = bincode::serde::encode_to_vec("1208".to_owned(), cfg).unwrap();
        assert_eq!(as_code, as_string);
        let (back, _): (RoomNumber, usize) =
            bincode::serde::decode_from_slice(&as_string, cfg).unwrap();
        assert_eq!(back, code);
        assert_eq!(serde_json::to_string(&code).unwrap(), "\"1208\"");
        let from_json: HotelId = serde_json::from_str("\"SHA-BUND\"").unwrap();
        assert_eq!(from_json.as_str(), "SHA-BUND");
        let copy = code.clone();
        assert!(std::ptr::eq(copy.as_str(), code.as_str()));
    }

    #[test]
    fn out_trade_no_round_trips() {
        let id = ReservationId(uuid::Uuid::from_u128(
            0x0123_4567_89ab_cdef_0123_4567_89ab_cdef,
        ));
        let reference = id.out_trade_no();
        assert_eq!(reference.to_string(), "ik0123456789abcdef0123456789abcdef");
        assert_eq!(reference.reservation_id(), id);
        assert_eq!(
            ReservationId::from_out_trade_no(&reference.to_string()),
            Some(id)
        );
        assert_eq!(ReservationId::from_out_trade_no("nope"), None);
        // It encodes exactly as the `String` it used to be, and decodes back.
        let cfg = bincode::config::standard();
        let as_string =
            bincode::serde::encode_to_vec("ik0123456789abcdef0123456789abcdef", cfg).unwrap();
        assert_eq!(
            bincode::serde::encode_to_vec(reference, cfg).unwrap(),
            as_string
        );
        let (back, _): (OutTradeNo, usize) =
            bincode::serde::decode_from_slice(&as_string, cfg).unwrap();
        assert_eq!(back, reference);
        let other = bincode::serde::encode_to_vec("ik-not-ours", cfg).unwrap();
        assert!(bincode::serde::decode_from_slice::<OutTradeNo, _>(&other, cfg).is_err());
    }
}
