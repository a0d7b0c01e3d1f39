//! JSON shapes of HTTP API v1: requests (strict: unknown fields are refused) and responses,
//! with their conversions from the engine's types. Field names are the public contract.

use std::fmt;

use innkeep_actors::{Availability, DayReservation, FrontDeskDay, RoomView, TypeAvailability};
use innkeep_engine::jiff::civil::Date;
use innkeep_engine::{
    Currency, Hotel, Housekeeping, Money, Occupancy, PaymentStatus, Reservation, RoomType,
    RoomTypeCode, Status, ValidationError,
};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// Money as every response shows it: integer minor units plus the ISO 4217 code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MoneyView {
    /// Minor units (fen, cents); never a float, so sums are exact.
    #[schema(example = 68_000)]
    pub amount: i64,
    /// ISO 4217 code, so an amount is never read in the wrong currency.
    #[schema(example = "CNY")]
    pub currency: String,
}

impl From<Money> for MoneyView {
    fn from(m: Money) -> Self {
        Self {
            amount: m.amount_minor,
            currency: m.currency.as_str().to_owned(),
        }
    }
}

/// A price as a client may send it: a bare integer in the hotel's minor units, or a money
/// object whose currency must be the hotel's. Accepting both keeps simple clients simple
/// while letting careful ones state the currency they mean.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum MoneyInput {
    /// Minor units in the hotel's currency.
    Minor(i64),
    /// An explicit amount and currency.
    Money(MoneyObject),
}

/// The object form of [`MoneyInput`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoneyObject {
    /// Minor units.
    pub amount: i64,
    /// ISO 4217 code; must equal the hotel's currency.
    pub currency: String,
}

impl<'de> Deserialize<'de> for MoneyInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MoneyVisitor;
        impl<'de> Visitor<'de> for MoneyVisitor {
            type Value = MoneyInput;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "an integer amount in minor units, or {\"amount\": <integer>, \"currency\": <ISO 4217>}",
                )
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<MoneyInput, E> {
                Ok(MoneyInput::Minor(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<MoneyInput, E> {
                i64::try_from(v)
                    .map(MoneyInput::Minor)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<MoneyInput, A::Error> {
                MoneyObject::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(MoneyInput::Money)
            }
        }
        d.deserialize_any(MoneyVisitor)
    }
}

impl MoneyInput {
    /// The amount in minor units of `currency`, the hotel's. A money object in another
    /// currency is refused: the engine never converts.
    pub fn minor_in(&self, field: &str, currency: Currency) -> Result<i64, ApiError> {
        match self {
            MoneyInput::Minor(amount) => Ok(*amount),
            MoneyInput::Money(m) => {
                if m.currency != currency.as_str() {
                    return Err(ApiError::InvalidRequest(format!(
                        "{field}.currency: {:?} is not the hotel's currency {currency}",
                        m.currency
                    )));
                }
                Ok(m.amount)
            }
        }
    }
}

/// Parses a `YYYY-MM-DD` civil date, naming the field on failure.
pub fn parse_date(field: &'static str, raw: &str) -> Result<Date, ApiError> {
    let shaped = raw.len() == 10
        && raw.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    let date = shaped.then(|| raw.parse::<Date>().ok()).flatten();
    date.ok_or_else(|| ValidationError::new(field, "must be a date YYYY-MM-DD").into())
}

// ---------------------------------------------------------------------------------------
// Setup

/// `PUT /v1/hotels/{hotel_id}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutHotelRequest {
    /// Display name.
    #[schema(example = "Bund Riverside")]
    pub name: String,
    /// IANA time zone; the hotel's "today" is computed in it.
    #[schema(example = "Asia/Shanghai")]
    pub time_zone: String,
    /// ISO 4217 currency of every price; fixed once the hotel has room types.
    #[schema(example = "CNY")]
    pub currency: String,
}

/// `PUT /v1/hotels/{hotel_id}/room-types/{code}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRoomTypeRequest {
    /// Display name.
    #[schema(example = "King room")]
    pub name: String,
    /// Most guests the type sleeps; bookings and availability respect it.
    #[schema(example = 2)]
    pub capacity: u16,
    /// Nightly price when no override applies.
    pub base_rate: MoneyInput,
}

/// `PUT /v1/hotels/{hotel_id}/rooms/{number}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRoomRequest {
    /// Code of an existing room type of the hotel.
    #[schema(example = "KING")]
    pub room_type: String,
}

/// `PUT /v1/hotels/{hotel_id}/room-types/{code}/rates`: a nightly override for `[from, to)`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRateRequest {
    /// First night the rate applies to (`YYYY-MM-DD`).
    #[schema(example = "2026-12-24")]
    pub from: String,
    /// First night it no longer applies to (exclusive).
    #[schema(example = "2026-12-26")]
    pub to: String,
    /// The nightly rate.
    pub amount: MoneyInput,
}

/// A room type as `GET /v1/hotels/{hotel_id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoomTypeView {
    /// The type's code.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Most guests.
    pub capacity: u16,
    /// Nightly price when no override applies.
    pub base_rate: MoneyView,
    /// How many rooms have this type.
    pub rooms: usize,
}

/// A hotel with its room types and room counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HotelView {
    /// The client-chosen code.
    pub hotel_id: String,
    /// Display name.
    pub name: String,
    /// IANA time zone.
    pub time_zone: String,
    /// ISO 4217 currency of every price.
    pub currency: String,
    /// Every room type, by code.
    pub room_types: Vec<RoomTypeView>,
    /// Total number of rooms.
    pub rooms: usize,
}

impl RoomTypeView {
    /// Builds the view of one type of `hotel`; `rooms` is its room count.
    pub fn new(hotel: &Hotel, code: &RoomTypeCode, rt: &RoomType, rooms: usize) -> Self {
        Self {
            code: code.as_str().to_owned(),
            name: rt.name.clone(),
            capacity: rt.capacity,
            base_rate: MoneyView::from(Money {
                amount_minor: rt.base_rate_minor,
                currency: hotel.currency,
            }),
            rooms,
        }
    }
}

impl From<&Hotel> for HotelView {
    fn from(hotel: &Hotel) -> Self {
        let counts = hotel.room_counts();
        Self {
            hotel_id: hotel.id.as_str().to_owned(),
            name: hotel.name.clone(),
            time_zone: hotel.time_zone.name().to_owned(),
            currency: hotel.currency.as_str().to_owned(),
            room_types: hotel
                .room_types
                .iter()
                .map(|(code, rt)| {
                    RoomTypeView::new(hotel, code, rt, counts.get(code).copied().unwrap_or(0))
                })
                .collect(),
            rooms: hotel.rooms.len(),
        }
    }
}

/// What `PUT /v1/hotels/{hotel_id}/rooms/{number}` stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoomPutView {
    /// The hotel.
    pub hotel_id: String,
    /// The room's number.
    pub number: String,
    /// Its room type.
    pub room_type: String,
}

/// What `PUT .../rates` stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RateView {
    /// The room type.
    pub room_type: String,
    /// First night of the override.
    pub from: String,
    /// First night after it.
    pub to: String,
    /// The nightly rate.
    pub amount: MoneyView,
}

// ---------------------------------------------------------------------------------------
// Availability

/// Query of `GET /v1/hotels/{hotel_id}/availability`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AvailabilityQuery {
    /// First night (`YYYY-MM-DD`, hotel-local). Required.
    #[param(required = true, example = "2026-12-24")]
    pub arrival: Option<String>,
    /// Leaving day (`YYYY-MM-DD`, exclusive). Required.
    #[param(required = true, example = "2026-12-26")]
    pub departure: Option<String>,
    /// Number of guests; types sleeping fewer are left out. Defaults to 1.
    #[param(example = 2)]
    pub guests: Option<u16>,
}

/// One night's price in an availability answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NightlyRateView {
    /// The night (`YYYY-MM-DD`).
    pub date: String,
    /// Minor units in the hotel's currency.
    pub amount: i64,
}

/// One room type's availability for the stay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TypeAvailabilityView {
    /// The type's code.
    pub room_type: String,
    /// Rooms of the type free on every night.
    pub available: usize,
    /// Each night's rate.
    pub nightly_rates: Vec<NightlyRateView>,
    /// Sum of the nightly rates: what a booking would cost now.
    pub total: MoneyView,
}

/// Answer of `GET /v1/hotels/{hotel_id}/availability`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AvailabilityView {
    /// The hotel.
    pub hotel_id: String,
    /// First night.
    pub arrival: String,
    /// Leaving day.
    pub departure: String,
    /// Number of nights.
    pub nights: u32,
    /// Types sleeping at least the asked number of guests.
    pub room_types: Vec<TypeAvailabilityView>,
}

impl From<&TypeAvailability> for TypeAvailabilityView {
    fn from(t: &TypeAvailability) -> Self {
        Self {
            room_type: t.room_type.as_str().to_owned(),
            available: t.available,
            nightly_rates: t
                .nightly
                .iter()
                .map(|(date, amount)| NightlyRateView {
                    date: date.to_string(),
                    amount: *amount,
                })
                .collect(),
            total: t.total.into(),
        }
    }
}

impl From<&Availability> for AvailabilityView {
    fn from(a: &Availability) -> Self {
        Self {
            hotel_id: a.hotel_id.as_str().to_owned(),
            arrival: a.stay.arrival().to_string(),
            departure: a.stay.departure().to_string(),
            nights: a.stay.nights(),
            room_types: a.room_types.iter().map(Into::into).collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Reservations

/// Guest contact, stored on the reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GuestContact {
    /// Full name.
    #[schema(example = "Li Lei")]
    pub name: String,
    /// Phone number: 5 to 20 digits, with `+ - ( )` and spaces allowed.
    #[schema(example = "+86 138-0000-0000")]
    pub phone: String,
    /// E-mail address.
    #[schema(example = "li@example.com")]
    pub email: String,
}

/// `POST /v1/hotels/{hotel_id}/reservations`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookRequestBody {
    /// The room type to book.
    #[schema(example = "KING")]
    pub room_type: String,
    /// First night (`YYYY-MM-DD`, hotel-local; not before the hotel's today).
    #[schema(example = "2026-12-24")]
    pub arrival: String,
    /// Leaving day (exclusive).
    #[schema(example = "2026-12-26")]
    pub departure: String,
    /// Number of guests, 1 to the type's capacity.
    #[schema(example = 2)]
    pub guests: u16,
    /// Who is coming.
    pub guest: GuestContact,
    /// A specific room of the type, if the client wants one.
    #[serde(default)]
    pub room: Option<String>,
}

/// Where a reservation is in its life (the state machine of the design).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    /// Holding nights until `hold_expires_at`, waiting for payment.
    PendingPayment,
    /// Paid.
    Confirmed,
    /// The guest is in the room.
    CheckedIn,
    /// The guest left.
    CheckedOut,
    /// Cancelled; nights released.
    Cancelled,
    /// The hold ran out unpaid; nights released.
    Expired,
    /// The guest never came; nights released.
    NoShow,
}

impl From<Status> for ReservationStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::PendingPayment => Self::PendingPayment,
            Status::Confirmed => Self::Confirmed,
            Status::CheckedIn => Self::CheckedIn,
            Status::CheckedOut => Self::CheckedOut,
            Status::Cancelled => Self::Cancelled,
            Status::Expired => Self::Expired,
            Status::NoShow => Self::NoShow,
        }
    }
}

/// Where a reservation's payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatusView {
    /// Waiting for the provider.
    Pending,
    /// Money captured.
    Succeeded,
    /// The provider reported a failure.
    Failed,
    /// Money given back.
    Refunded,
}

impl From<PaymentStatus> for PaymentStatusView {
    fn from(s: PaymentStatus) -> Self {
        match s {
            PaymentStatus::Pending => Self::Pending,
            PaymentStatus::Succeeded => Self::Succeeded,
            PaymentStatus::Failed => Self::Failed,
            PaymentStatus::Refunded => Self::Refunded,
        }
    }
}

/// A reservation's payment record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentView {
    /// Our payment reference; the provider echoes it in its callback.
    pub out_trade_no: String,
    /// What the guest owes.
    pub amount: MoneyView,
    /// Where the payment stands.
    pub status: PaymentStatusView,
}

/// One transition in a reservation's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HistoryView {
    /// When (RFC 3339, UTC).
    pub at: String,
    /// Status before; null for creation.
    pub from: Option<ReservationStatus>,
    /// Status after.
    pub to: ReservationStatus,
    /// The version this transition produced.
    pub version: u64,
}

/// A reservation as every reservation endpoint returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReservationView {
    /// Server-generated id (UUIDv7, sortable by creation).
    pub id: String,
    /// The hotel.
    pub hotel_id: String,
    /// The booked room type.
    pub room_type: String,
    /// The assigned room.
    pub room: String,
    /// First night (`YYYY-MM-DD`).
    pub arrival: String,
    /// Leaving day (`YYYY-MM-DD`).
    pub departure: String,
    /// Number of nights.
    pub nights: u32,
    /// Number of guests.
    pub guests: u16,
    /// Who is coming.
    pub guest: GuestContact,
    /// Where it is in the state machine.
    pub status: ReservationStatus,
    /// When an unpaid hold lapses (RFC 3339, UTC).
    pub hold_expires_at: String,
    /// Sum of the nightly rates at booking time.
    pub total: MoneyView,
    /// +1 on every change; also sent as the `ETag`.
    pub version: u64,
    /// When it was created (RFC 3339, UTC).
    pub created_at: String,
    /// Its payment.
    pub payment: PaymentView,
    /// Every transition, oldest first.
    pub history: Vec<HistoryView>,
    /// Every room move, oldest first (absent from answers of servers before room moves).
    #[serde(default)]
    pub moves: Vec<RoomMoveView>,
}

/// A reservation written as [`ReservationView`]'s JSON straight from the engine's
/// reservation, without building the view first: the view costs about twenty small
/// allocations per answer (every id, date and instant as a `String`), this none. The bytes
/// are the view's, field for field (`reservation_json_writes_the_views_bytes`); the view
/// stays the schema and what clients deserialize.
#[derive(Debug)]
pub struct ReservationJson<'a>(pub &'a Reservation);

/// A value written as its `Display` text, with no intermediate `String`.
struct AsText<T>(T);

impl<T: fmt::Display> Serialize for AsText<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// [`MoneyView`]'s JSON.
struct MoneyJson(Money);

impl Serialize for MoneyJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("MoneyView", 2)?;
        st.serialize_field("amount", &self.0.amount_minor)?;
        st.serialize_field("currency", self.0.currency.as_str())?;
        st.end()
    }
}

/// A reservation's history as a JSON array of [`HistoryView`]s.
struct HistoryListJson<'a>(&'a [innkeep_engine::reservation::HistoryEntry]);

impl Serialize for HistoryListJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(HistoryJson))
    }
}

/// A reservation's moves as a JSON array of [`RoomMoveView`]s.
struct MovesJson<'a>(&'a [innkeep_engine::RoomMove]);

impl Serialize for MovesJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(MoveJson))
    }
}

/// [`HistoryView`]'s JSON.
struct HistoryJson<'a>(&'a innkeep_engine::reservation::HistoryEntry);

impl Serialize for HistoryJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let h = self.0;
        let mut st = s.serialize_struct("HistoryView", 4)?;
        st.serialize_field("at", &AsText(h.at))?;
        st.serialize_field("from", &h.from.map(ReservationStatus::from))?;
        st.serialize_field("to", &ReservationStatus::from(h.to))?;
        st.serialize_field("version", &h.version)?;
        st.end()
    }
}

/// [`RoomMoveView`]'s JSON.
struct MoveJson<'a>(&'a innkeep_engine::RoomMove);

impl Serialize for MoveJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let m = self.0;
        let mut st = s.serialize_struct("RoomMoveView", 4)?;
        st.serialize_field("at", &AsText(m.at))?;
        st.serialize_field("from_room", m.from_room.as_str())?;
        st.serialize_field("to_room", m.to_room.as_str())?;
        st.serialize_field("first_night", &AsText(m.first_night))?;
        st.end()
    }
}

impl Serialize for ReservationJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        /// [`GuestContact`]'s JSON.
        struct Guest<'a>(&'a innkeep_engine::Guest);
        impl Serialize for Guest<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut st = s.serialize_struct("GuestContact", 3)?;
                st.serialize_field("name", self.0.name())?;
                st.serialize_field("phone", self.0.phone())?;
                st.serialize_field("email", self.0.email())?;
                st.end()
            }
        }
        /// [`PaymentView`]'s JSON.
        struct Payment<'a>(&'a innkeep_engine::Payment);
        impl Serialize for Payment<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut st = s.serialize_struct("PaymentView", 3)?;
                st.serialize_field("out_trade_no", &AsText(self.0.out_trade_no))?;
                st.serialize_field("amount", &MoneyJson(self.0.amount))?;
                st.serialize_field("status", &PaymentStatusView::from(self.0.status))?;
                st.end()
            }
        }
        let r = self.0;
        let mut st = s.serialize_struct("ReservationView", 17)?;
        st.serialize_field("id", &AsText(r.id))?;
        st.serialize_field("hotel_id", r.hotel_id.as_str())?;
        st.serialize_field("room_type", r.room_type.as_str())?;
        st.serialize_field("room", r.room.as_str())?;
        st.serialize_field("arrival", &AsText(r.stay.arrival()))?;
        st.serialize_field("departure", &AsText(r.stay.departure()))?;
        st.serialize_field("nights", &r.stay.nights())?;
        st.serialize_field("guests", &r.guests)?;
        st.serialize_field("guest", &Guest(&r.guest))?;
        st.serialize_field("status", &ReservationStatus::from(r.status))?;
        st.serialize_field("hold_expires_at", &AsText(r.hold_expires_at))?;
        st.serialize_field("total", &MoneyJson(r.total))?;
        st.serialize_field("version", &r.version)?;
        st.serialize_field("created_at", &AsText(r.created_at))?;
        st.serialize_field("payment", &Payment(&r.payment))?;
        st.serialize_field("history", &HistoryListJson(&r.history))?;
        st.serialize_field("moves", &MovesJson(&r.moves))?;
        st.end()
    }
}

/// One room move of a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoomMoveView {
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The room it left.
    pub from_room: String,
    /// The room it went to.
    pub to_room: String,
    /// The first night the new room holds (`YYYY-MM-DD`).
    pub first_night: String,
}

/// `POST /v1/reservations/{id}/move`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    /// The room (number) of the same hotel to move to.
    #[schema(example = "204")]
    pub room: String,
}

impl From<&Reservation> for ReservationView {
    fn from(r: &Reservation) -> Self {
        Self {
            id: r.id.to_string(),
            hotel_id: r.hotel_id.as_str().to_owned(),
            room_type: r.room_type.as_str().to_owned(),
            room: r.room.as_str().to_owned(),
            arrival: r.stay.arrival().to_string(),
            departure: r.stay.departure().to_string(),
            nights: r.stay.nights(),
            guests: r.guests,
            guest: GuestContact {
                name: r.guest.name().to_owned(),
                phone: r.guest.phone().to_owned(),
                email: r.guest.email().to_owned(),
            },
            status: r.status.into(),
            hold_expires_at: r.hold_expires_at.to_string(),
            total: r.total.into(),
            version: r.version,
            created_at: r.created_at.to_string(),
            payment: PaymentView {
                out_trade_no: r.payment.out_trade_no.to_string(),
                amount: r.payment.amount.into(),
                status: r.payment.status.into(),
            },
            history: r
                .history
                .iter()
                .map(|h| HistoryView {
                    at: h.at.to_string(),
                    from: h.from.map(Into::into),
                    to: h.to.into(),
                    version: h.version,
                })
                .collect(),
            moves: r
                .moves
                .iter()
                .map(|m| RoomMoveView {
                    at: m.at.to_string(),
                    from_room: m.from_room.as_str().to_owned(),
                    to_room: m.to_room.as_str().to_owned(),
                    first_night: m.first_night.to_string(),
                })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Rooms

/// Whether a guest is in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OccupancyView {
    /// No guest.
    Vacant,
    /// A guest is checked in.
    Occupied,
}

impl From<Occupancy> for OccupancyView {
    fn from(o: Occupancy) -> Self {
        match o {
            Occupancy::Vacant => Self::Vacant,
            Occupancy::Occupied => Self::Occupied,
        }
    }
}

/// A room's cleanliness and usability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HousekeepingView {
    /// Ready for a guest.
    Clean,
    /// Needs cleaning.
    Dirty,
    /// Being cleaned.
    Cleaning,
    /// Cleaned and checked.
    Inspected,
    /// Not usable.
    OutOfOrder,
}

impl From<Housekeeping> for HousekeepingView {
    fn from(h: Housekeeping) -> Self {
        match h {
            Housekeeping::Clean => Self::Clean,
            Housekeeping::Dirty => Self::Dirty,
            Housekeeping::Cleaning => Self::Cleaning,
            Housekeeping::Inspected => Self::Inspected,
            Housekeeping::OutOfOrder => Self::OutOfOrder,
        }
    }
}

/// A room with its live status, as the front desk sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoomStatusView {
    /// The room's number.
    pub number: String,
    /// Its room type.
    pub room_type: String,
    /// Vacant or occupied.
    pub occupancy: OccupancyView,
    /// Cleanliness.
    pub housekeeping: HousekeepingView,
    /// Id of the checked-in reservation, if any.
    pub reservation: Option<String>,
    /// Date ranges during which the room cannot be sold, by first night.
    pub out_of_order: Vec<OutOfOrderRangeView>,
}

/// A date range during which a room cannot be sold: nights `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OutOfOrderRangeView {
    /// First night out of order (`YYYY-MM-DD`).
    pub from: String,
    /// First night back in order (`YYYY-MM-DD`).
    pub to: String,
    /// Why.
    pub reason: String,
}

impl From<&RoomView> for RoomStatusView {
    fn from(r: &RoomView) -> Self {
        Self {
            number: r.number.as_str().to_owned(),
            room_type: r.room_type.as_str().to_owned(),
            occupancy: r.occupancy.into(),
            housekeeping: r.housekeeping.into(),
            reservation: r.reservation.map(|id| id.to_string()),
            out_of_order: r
                .out_of_order
                .iter()
                .map(|o| OutOfOrderRangeView {
                    from: o.from.to_string(),
                    to: o.to.to_string(),
                    reason: o.reason.clone(),
                })
                .collect(),
        }
    }
}

/// `POST /v1/hotels/{hotel_id}/rooms/{number}/out-of-order`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutOfOrderRequest {
    /// First night out of order (`YYYY-MM-DD`, hotel-local, not before today).
    #[schema(example = "2026-12-01")]
    pub from: String,
    /// First night back in order (`YYYY-MM-DD`; at most 366 nights after `from`).
    #[schema(example = "2026-12-04")]
    pub to: String,
    /// Why (at most 200 characters).
    #[serde(default)]
    #[schema(example = "boiler repair")]
    pub reason: String,
}

/// `PUT /v1/hotels/{hotel_id}/rooms/{number}/housekeeping`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HousekeepingRequest {
    /// The new status; the workflow is dirty → cleaning → clean → inspected, and any room
    /// may become dirty or out_of_order.
    #[schema(value_type = HousekeepingView)]
    pub status: String,
}

// ---------------------------------------------------------------------------------------
// Front desk

/// Query of `GET /v1/hotels/{hotel_id}/front-desk`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FrontDeskQuery {
    /// The hotel-local day (`YYYY-MM-DD`); defaults to today in the hotel's time zone.
    #[param(example = "2026-12-24")]
    pub date: Option<String>,
}

/// One reservation on a front-desk list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FrontDeskItem {
    /// The reservation's id.
    pub id: String,
    /// Its room.
    pub room: String,
    /// Its room type.
    pub room_type: String,
    /// The guest's name.
    pub guest_name: String,
    /// First night (`YYYY-MM-DD`).
    pub arrival: String,
    /// Booked leaving day (`YYYY-MM-DD`).
    pub departure: String,
    /// Where it is in the state machine.
    pub status: ReservationStatus,
}

impl From<&DayReservation> for FrontDeskItem {
    fn from(r: &DayReservation) -> Self {
        Self {
            id: r.id.to_string(),
            room: r.room.as_str().to_owned(),
            room_type: r.room_type.as_str().to_owned(),
            guest_name: r.guest_name.clone(),
            arrival: r.stay.arrival().to_string(),
            departure: r.stay.departure().to_string(),
            status: r.status.into(),
        }
    }
}

/// Answer of `GET /v1/hotels/{hotel_id}/front-desk`: the day's arrivals and departures and
/// the guests in house, each sorted by room, then id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FrontDeskView {
    /// The hotel.
    pub hotel_id: String,
    /// The hotel-local day the lists are for (`YYYY-MM-DD`).
    pub date: String,
    /// Arriving on `date`: `pending_payment`, `confirmed` or already `checked_in`.
    pub arrivals: Vec<FrontDeskItem>,
    /// Leaving on `date`: `confirmed` or `checked_in` with that departure, and
    /// `checked_out` on that day (an early departure is listed on the day it happened).
    pub departures: Vec<FrontDeskItem>,
    /// Every `checked_in` reservation, whatever `date`.
    pub in_house: Vec<FrontDeskItem>,
}

impl From<&FrontDeskDay> for FrontDeskView {
    fn from(d: &FrontDeskDay) -> Self {
        let list = |l: &[DayReservation]| l.iter().map(FrontDeskItem::from).collect();
        Self {
            hotel_id: d.hotel_id.as_str().to_owned(),
            date: d.date.to_string(),
            arrivals: list(&d.arrivals),
            departures: list(&d.departures),
            in_house: list(&d.in_house),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Payments

/// What the provider says happened to a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotifyStatus {
    /// Money captured: confirms the reservation.
    Succeeded,
    /// The attempt failed: nothing changes; the hold runs on until it expires.
    Failed,
}

/// Body of `POST /v1/payments/notify`, the provider's signed callback.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyRequest {
    /// Our payment reference, from the reservation's `payment.out_trade_no`.
    pub out_trade_no: String,
    /// The provider's own reference for the payment.
    pub trade_no: String,
    /// What happened.
    pub status: NotifyStatus,
    /// Minor units paid; must equal what the reservation owes.
    pub amount: i64,
    /// ISO 4217 code paid in; must equal the reservation's.
    pub currency: String,
}

/// One entry of a payment's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentHistoryView {
    /// When (RFC 3339, UTC).
    pub at: String,
    /// What happened: `created`, `succeeded`, `failed`, `refund_owed`,
    /// `cancelled_after_payment` or `refunded`.
    pub event: String,
    /// The payment's status after it.
    pub status: PaymentStatusView,
    /// The provider's reference, when known.
    pub trade_no: Option<String>,
}

/// Body of `GET /v1/payments/{out_trade_no}`: a payment and its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentDetailView {
    /// Our payment reference.
    pub out_trade_no: String,
    /// The reservation it pays for.
    pub reservation_id: String,
    /// What the guest owes.
    pub amount: MoneyView,
    /// Where the payment stands.
    pub status: PaymentStatusView,
    /// Captured money is owed back (a success after expiry or cancellation, or a paid
    /// reservation cancelled); clears when the provider confirms the refund.
    pub refund_owed: bool,
    /// The provider's reference, once it reported.
    pub trade_no: Option<String>,
    /// Every payment-side change, oldest first.
    pub history: Vec<PaymentHistoryView>,
}

impl From<&Reservation> for PaymentDetailView {
    fn from(r: &Reservation) -> Self {
        let p = &r.payment;
        Self {
            out_trade_no: p.out_trade_no.to_string(),
            reservation_id: r.id.to_string(),
            amount: p.amount.into(),
            status: p.status.into(),
            refund_owed: p.refund_owed,
            trade_no: p.trade_no.clone(),
            history: p
                .history
                .iter()
                .map(|h| PaymentHistoryView {
                    at: h.at.to_string(),
                    event: h.kind.as_str().to_owned(),
                    status: h.status.into(),
                    trade_no: h.trade_no.clone(),
                })
                .collect(),
        }
    }
}

/// Answer to a verified payment callback: tells the provider to stop retrying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NotifyAck {
    /// Always true: the callback was verified and handled (duplicates included).
    pub received: bool,
}

// ---------------------------------------------------------------------------------------
// Operations

/// Body of `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthView {
    /// `"ok"` whenever the process answers at all.
    #[schema(example = "ok")]
    pub status: String,
}

#[cfg(test)]
mod tests {

    /// [`ReservationJson`] writes exactly the bytes of [`ReservationView`]'s JSON, for
    /// reservations in every status, paid and not, with long histories, moves and contact
    /// text that JSON must escape.
    #[test]
    fn reservation_json_writes_the_views_bytes() {
        use innkeep_engine::jiff::{SignedDuration, Timestamp, ToSpan};
        use innkeep_engine::reservation::{HistoryEntry, PaymentStatus};
        use innkeep_engine::{
            BookRequest, Guest, HotelId, ReservationId, RoomMove, RoomNumber, Stay,
        };
        let guests = [
            Guest::parse("Li Lei", "+86 138-0000-0000", "li@example.com").unwrap(),
            Guest::parse(
                "Zoë \"Q\" O'Brien \\ 测试",
                "(0)20 7946 0000",
                "z+o@x.example",
            )
            .unwrap(),
        ];
        let statuses = [
            Status::PendingPayment,
            Status::Confirmed,
            Status::CheckedIn,
            Status::CheckedOut,
            Status::Cancelled,
            Status::Expired,
            Status::NoShow,
        ];
        let now: Timestamp = "2026-12-05T07:15:42.123456789Z".parse().unwrap();
        let arrival = innkeep_engine::jiff::civil::date(2027, 2, 27);
        for (n, status) in statuses.into_iter().enumerate() {
            for guest in &guests {
                let req = BookRequest {
                    hotel_id: HotelId::parse("SHA-BUND").unwrap(),
                    room_type: RoomTypeCode::parse("KING").unwrap(),
                    stay: Stay::between(
                        arrival,
                        arrival.checked_add((n as i64 + 1).days()).unwrap(),
                    )
                    .unwrap(),
                    guests: 2,
                    guest: guest.clone(),
                    room: None,
                };
                let total = Money {
                    amount_minor: 68_000 * (n as i64 + 1),
                    currency: Currency::parse("CNY").unwrap(),
                };
                let id = ReservationId(uuid::Uuid::now_v7());
                let mut r = innkeep_engine::state::new_reservation(
                    &req,
                    RoomNumber::parse("1208").unwrap(),
                    total,
                    id,
                    now,
                    SignedDuration::from_mins(15),
                );
                r.status = status;
                for v in 0..n as u64 {
                    r.history.push(HistoryEntry {
                        at: now
                            .checked_add(SignedDuration::from_secs(v as i64 * 61))
                            .unwrap(),
                        from: Some(Status::PendingPayment),
                        to: status,
                        version: v + 2,
                    });
                    r.moves.push(RoomMove {
                        at: now,
                        from_room: RoomNumber::parse("1208").unwrap(),
                        to_room: RoomNumber::parse(&format!("9{v}")).unwrap(),
                        first_night: arrival,
                    });
                }
                r.version = n as u64 + 1;
                if n % 2 == 1 {
                    r.payment.status = PaymentStatus::Succeeded;
                    r.payment.trade_no = Some(format!("T-{n}"));
                }
                let view = serde_json::to_string(&ReservationView::from(&r)).unwrap();
                let direct = serde_json::to_string(&ReservationJson(&r)).unwrap();
                assert_eq!(direct, view, "{status:?}");
            }
        }
    }
    use super::*;

    #[test]
    fn money_input_accepts_integer_or_object() {
        let cny = Currency::parse("CNY").unwrap();
        let m: MoneyInput = serde_json::from_str("500").unwrap();
        assert_eq!(m.minor_in("amount", cny).unwrap(), 500);
        let m: MoneyInput = serde_json::from_str(r#"{"amount": 7, "currency": "CNY"}"#).unwrap();
        assert_eq!(m.minor_in("amount", cny).unwrap(), 7);
        let m: MoneyInput = serde_json::from_str(r#"{"amount": 7, "currency": "EUR"}"#).unwrap();
        assert!(m.minor_in("amount", cny).is_err());
        assert!(serde_json::from_str::<MoneyInput>("1.5").is_err());
        assert!(serde_json::from_str::<MoneyInput>(r#""5""#).is_err());
        assert!(serde_json::from_str::<MoneyInput>(r#"{"amount": 7}"#).is_err());
        assert!(
            serde_json::from_str::<MoneyInput>(r#"{"amount": 7, "currency": "CNY", "x": 1}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<MoneyInput>("18446744073709551615").is_err());
    }

    #[test]
    fn dates_must_be_plain_iso() {
        assert!(parse_date("arrival", "2026-02-28").is_ok());
        assert!(parse_date("arrival", "2026-02-30").is_err());
        assert!(parse_date("arrival", "2026-2-28").is_err());
        assert!(parse_date("arrival", "20260228").is_err());
        assert!(parse_date("arrival", "2026-02-28T00:00").is_err());
        assert!(parse_date("arrival", "").is_err());
    }
}
