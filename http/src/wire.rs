//! JSON shapes of HTTP API v1: requests (strict: unknown fields are refused) and responses,
//! with their conversions from the engine's types. Field names are the public contract.

use std::fmt;

use innkeep_actors::{
    Availability, DayReservation, FrontDeskDay, RoomView, TapeChart, TapeReservation, TapeRoom,
    TypeAvailability,
};
use innkeep_engine::catalog::Offer;
use innkeep_engine::jiff::civil::Date;
use innkeep_engine::selling::{
    CancellationPolicy, Fee, RatePlan, Restriction, RestrictionPatch, Sells, Terms,
};
use innkeep_engine::{
    Currency, Hotel, Housekeeping, Money, Occupancy, PaymentStatus, RatePlanCode, Reservation,
    RoomType, RoomTypeCode, Status, ValidationError,
};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::constraints::{
    AmountMinor, Capacity, CivilDate, Code, CurrencyCode, DisplayName, EmailAddress, FeeNights,
    FeePercent, OutOfOrderReason, OutTradeNo, PhoneNumber, TimeZoneName, TradeNo, Weekday,
};
use crate::error::ApiError;

/// Money as every response shows it: integer minor units plus the ISO 4217 code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum MoneyInput {
    /// Minor units in the hotel's currency.
    Minor(i64),
    /// An explicit amount and currency.
    Money(MoneyObject),
}

/// Its schema: `oneOf` an [`AmountMinor`] and a [`MoneyObject`] (what the deserializer
/// below accepts).
impl utoipa::PartialSchema for MoneyInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::OneOfBuilder;
        use utoipa::openapi::Ref;
        OneOfBuilder::new()
            .item(Ref::from_schema_name(AmountMinor::name()))
            .item(Ref::from_schema_name(MoneyObject::name()))
            .description(Some(
                "A price: a bare integer in the hotel's minor units, or a money object whose \
                 currency must be the hotel's (another currency is 400 invalid_request)",
            ))
            .into()
    }
}

impl ToSchema for MoneyInput {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push((AmountMinor::name().into_owned(), AmountMinor::schema()));
        schemas.push((MoneyObject::name().into_owned(), MoneyObject::schema()));
        MoneyObject::schemas(schemas);
    }
}

/// The object form of [`MoneyInput`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoneyObject {
    /// Minor units.
    #[serde(deserialize_with = "whole")]
    #[schema(value_type = AmountMinor)]
    pub amount: i64,
    /// ISO 4217 code; must equal the hotel's currency (else 400 invalid_request).
    #[schema(value_type = CurrencyCode)]
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
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<MoneyInput, E> {
                // `100.0` is the integer 100 (see `Whole`); `1.5` is no amount.
                Whole::<i64>::deserialize(de::value::F64Deserializer::<E>::new(v))
                    .map(|w| MoneyInput::Minor(w.0))
                    .map_err(|_| E::invalid_type(de::Unexpected::Float(v), &self))
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

/// A whole number as a request may write it: `2`, or with a zero fraction, `2.0` or
/// `2e0`. JSON has one kind of number, and JSON Schema's `integer` (what the document says
/// of these fields) is any number without a fractional part, so `2.0` is refused only when
/// it is out of `T`'s range, like `2` would be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Whole<T>(T);

impl<'de, T: TryFrom<i64> + TryFrom<u64>> Deserialize<'de> for Whole<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct WholeVisitor<T>(std::marker::PhantomData<T>);
        impl<T: TryFrom<i64> + TryFrom<u64>> Visitor<'_> for WholeVisitor<T> {
            type Value = Whole<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a whole number fitting {}", std::any::type_name::<T>())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Whole<T>, E> {
                T::try_from(v)
                    .map(Whole)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Whole<T>, E> {
                T::try_from(v)
                    .map(Whole)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Whole<T>, E> {
                // Every whole f64 in this range is exactly an i64 (2^63 itself is not).
                const LIMIT: f64 = 9_223_372_036_854_775_808.0;
                if v.fract() == 0.0 && (-LIMIT..LIMIT).contains(&v) {
                    #[allow(clippy::cast_possible_truncation)]
                    self.visit_i64(v as i64)
                } else {
                    Err(E::invalid_type(de::Unexpected::Float(v), &self))
                }
            }
        }
        d.deserialize_any(WholeVisitor(std::marker::PhantomData))
    }
}

/// Deserializes a whole number field (see [`Whole`]).
pub(crate) fn whole<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    Whole::<T>::deserialize(d).map(|w| w.0)
}

/// Deserializes an optional whole number field: absent (with `#[serde(default)]`) or `null`
/// is `None`.
fn whole_option<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    Option::<Whole<T>>::deserialize(d).map(|o| o.map(|w| w.0))
}

/// [`present`] for a whole number.
fn present_whole<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    whole_option(d).map(Some)
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
    #[schema(value_type = DisplayName, example = "Bund Riverside")]
    pub name: String,
    /// IANA time zone; the hotel's "today" is computed in it.
    #[schema(value_type = TimeZoneName, example = "Asia/Shanghai")]
    pub time_zone: String,
    /// ISO 4217 currency of every price; fixed once the hotel has room types (changing
    /// it then is 409 currency_locked).
    #[schema(value_type = CurrencyCode, example = "CNY")]
    pub currency: String,
}

/// `PUT /v1/hotels/{hotel_id}/room-types/{code}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRoomTypeRequest {
    /// Display name.
    #[schema(value_type = DisplayName, example = "King room")]
    pub name: String,
    /// Most guests the type sleeps (1 to 64); bookings and availability respect it.
    #[serde(deserialize_with = "whole")]
    #[schema(value_type = Capacity, example = 2)]
    pub capacity: u16,
    /// Nightly price when no override applies.
    pub base_rate: MoneyInput,
}

/// `PUT /v1/hotels/{hotel_id}/rooms/{number}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRoomRequest {
    /// Code of an existing room type of the hotel (another is 404 not_found).
    #[schema(value_type = Code, example = "KING")]
    pub room_type: String,
}

/// `PUT /v1/hotels/{hotel_id}/room-types/{code}/rates`: a nightly override for `[from, to)`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRateRequest {
    /// First night the rate applies to (`YYYY-MM-DD`).
    #[schema(value_type = CivilDate, example = "2026-12-24")]
    pub from: String,
    /// First night it no longer applies to (exclusive): after `from`, at most 730 nights
    /// later (else 400 invalid_request).
    #[schema(value_type = CivilDate, example = "2026-12-26")]
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
// Rate plans and restrictions (issue #15)

/// What a late cancellation or a no-show costs: exactly one of `{"nights": n}` (the price
/// of the stay's first `n` nights, 0 to 730) or `{"percent": p}` (that share of the total,
/// 0 to 100, rounded half away from zero). Sent and shown in the same shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeeRule {
    /// The price of the stay's first `n` nights (never more than the total).
    Nights(i64),
    /// This percentage of the total.
    Percent(i64),
}

/// Its schema: `oneOf` `{"nights": n}` and `{"percent": p}`, each with exactly that key
/// (what the deserializer below accepts).
impl utoipa::PartialSchema for FeeRule {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Type};
        use utoipa::openapi::Ref;
        let one_key = |key: &str, of: Ref| {
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property(key, of)
                .required(key)
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        };
        OneOfBuilder::new()
            .item(one_key("nights", Ref::from_schema_name(FeeNights::name())))
            .item(one_key(
                "percent",
                Ref::from_schema_name(FeePercent::name()),
            ))
            .description(Some(
                "What a late cancellation or a no-show costs: exactly one of `{\"nights\": n}` \
                 (the price of the stay's first n nights, 0 to 730) or `{\"percent\": p}` (that \
                 share of the total, 0 to 100, rounded half away from zero)",
            ))
            .examples([serde_json::json!({"nights": 1})])
            .into()
    }
}

impl ToSchema for FeeRule {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push((FeeNights::name().into_owned(), FeeNights::schema()));
        schemas.push((FeePercent::name().into_owned(), FeePercent::schema()));
    }
}

impl<'de> Deserialize<'de> for FeeRule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FeeVisitor;
        impl<'de> Visitor<'de> for FeeVisitor {
            type Value = FeeRule;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("{\"nights\": <integer>} or {\"percent\": <integer>}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FeeRule, A::Error> {
                const KEYS: &[&str] = &["nights", "percent"];
                let mut fee = None;
                while let Some(key) = map.next_key::<String>()? {
                    let make: fn(i64) -> FeeRule = match key.as_str() {
                        "nights" => FeeRule::Nights,
                        "percent" => FeeRule::Percent,
                        other => return Err(de::Error::unknown_field(other, KEYS)),
                    };
                    let value = map.next_value::<Whole<i64>>()?.0;
                    if fee.replace(make(value)).is_some() {
                        return Err(de::Error::custom(
                            "a fee has exactly one key: nights or percent, not both",
                        ));
                    }
                }
                fee.ok_or_else(|| de::Error::custom("a fee has exactly one key: nights or percent"))
            }
        }
        d.deserialize_map(FeeVisitor)
    }
}

impl FeeRule {
    /// The engine's fee, validated; a bad value names `nights_field` or `percent_field`.
    fn to_fee(
        self,
        nights_field: &'static str,
        percent_field: &'static str,
    ) -> Result<Fee, ValidationError> {
        match self {
            FeeRule::Nights(n) => Fee::nights(n).map_err(|e| renamed(nights_field, e)),
            FeeRule::Percent(p) => Fee::percent(p).map_err(|e| renamed(percent_field, e)),
        }
    }
}

impl From<Fee> for FeeRule {
    fn from(f: Fee) -> Self {
        match f {
            Fee::Nights(n) => FeeRule::Nights(n.into()),
            Fee::Percent(p) => FeeRule::Percent(p.into()),
        }
    }
}

/// `e` naming `field` instead.
fn renamed(field: &'static str, e: ValidationError) -> ValidationError {
    ValidationError::new(field, e.reason)
}

/// A plan's cancellation policy, as sent in `PUT …/rate-plans/{code}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancellationInput {
    /// Cancelling at least this many hours before the arrival date starts (00:00 in the
    /// hotel's time zone) is free; 0 to 8784. 0 is no free window: with a fee, the plan
    /// is non-refundable.
    #[serde(deserialize_with = "whole")]
    #[schema(example = 48, minimum = 0, maximum = 8784)]
    pub free_until_hours: i64,
    /// What cancelling later costs.
    pub fee: FeeRule,
}

/// `PUT /v1/hotels/{hotel_id}/rate-plans/{code}`: a plan selling some room types at an
/// adjusted rate under its own cancellation and no-show policies.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRatePlanRequest {
    /// Display name (1 to 200 printable characters).
    #[schema(value_type = DisplayName, example = "Non-refundable")]
    pub name: String,
    /// Codes of existing room types of the hotel the plan sells: 1 to 1000 different ones
    /// (repeats count once; a type the hotel lacks is 400 invalid_request).
    #[schema(value_type = Vec<Code>, example = json!(["KING"]), min_items = 1)]
    pub room_types: Vec<String>,
    /// Nightly price = the room type's rate × (100 + this) / 100, rounded half away from
    /// zero to the minor unit; -100 to 100.
    #[serde(deserialize_with = "whole")]
    #[schema(example = -15, minimum = -100, maximum = 100)]
    pub adjust_percent: i64,
    /// When cancelling is free, and what it costs after.
    pub cancellation: CancellationInput,
    /// What a no-show costs.
    pub no_show_fee: FeeRule,
    /// Bookable only this many days before arrival or more (0 to 730).
    #[serde(default, deserialize_with = "whole_option")]
    #[schema(example = 7, minimum = 0, maximum = 730)]
    pub min_advance_days: Option<i64>,
    /// Bookable only this many days before arrival or fewer (0 to 730; below
    /// `min_advance_days` is 400 invalid_request).
    #[serde(default, deserialize_with = "whole_option")]
    #[schema(example = 365, minimum = 0, maximum = 730)]
    pub max_advance_days: Option<i64>,
}

impl PutRatePlanRequest {
    /// The engine's plan, validated; each refusal names its field.
    pub fn to_plan(&self) -> Result<RatePlan, ApiError> {
        let room_types = self
            .room_types
            .iter()
            .map(|t| RoomTypeCode::parse(t).map_err(|e| renamed("room_types", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let fee = self
            .cancellation
            .fee
            .to_fee("cancellation.fee.nights", "cancellation.fee.percent")?;
        let cancellation = CancellationPolicy::parse(self.cancellation.free_until_hours, fee)?;
        let no_show_fee = self
            .no_show_fee
            .to_fee("no_show_fee.nights", "no_show_fee.percent")?;
        Ok(RatePlan::parse(
            &self.name,
            room_types,
            self.adjust_percent,
            cancellation,
            no_show_fee,
            self.min_advance_days,
            self.max_advance_days,
        )?)
    }
}

/// A plan's cancellation policy as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CancellationView {
    /// Cancelling at least this many hours before the arrival date starts (hotel-local
    /// midnight) is free; 0: no free window.
    #[schema(example = 48)]
    pub free_until_hours: u32,
    /// What cancelling later costs.
    pub fee: FeeRule,
}

/// A rate plan as `GET /v1/hotels/{hotel_id}/rate-plans` and its `PUT` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RatePlanView {
    /// The plan's code; `BAR` is the built-in best available rate.
    #[schema(example = "NONREF")]
    pub code: String,
    /// Display name.
    #[schema(example = "Non-refundable")]
    pub name: String,
    /// The room types it sells (for the built-in `BAR`, which sells every type: the
    /// hotel's current room types), sorted.
    #[schema(example = json!(["KING"]))]
    pub room_types: Vec<String>,
    /// Price adjustment in percent of the room type's rate.
    #[schema(example = -15)]
    pub adjust_percent: i8,
    /// When cancelling is free, and what it costs after.
    pub cancellation: CancellationView,
    /// What a no-show costs.
    pub no_show_fee: FeeRule,
    /// Bookable only this many days before arrival or more; null: no minimum.
    pub min_advance_days: Option<u16>,
    /// Bookable only this many days before arrival or fewer; null: no maximum.
    pub max_advance_days: Option<u16>,
}

impl RatePlanView {
    /// The view of `plan` (code `code`) of a hotel whose room types are `hotel_types` (what
    /// a plan selling every type shows).
    pub fn new<'a>(
        code: &RatePlanCode,
        plan: &RatePlan,
        hotel_types: impl IntoIterator<Item = &'a RoomTypeCode>,
    ) -> Self {
        let room_types = match plan.sells_types() {
            Sells::Every => hotel_types
                .into_iter()
                .map(|t| t.as_str().to_owned())
                .collect(),
            Sells::Only(types) => types.iter().map(|t| t.as_str().to_owned()).collect(),
        };
        let cancellation = plan.cancellation();
        Self {
            code: code.as_str().to_owned(),
            name: plan.name().to_owned(),
            room_types,
            adjust_percent: plan.adjust_percent(),
            cancellation: CancellationView {
                free_until_hours: cancellation.free_until_hours(),
                fee: cancellation.fee().into(),
            },
            no_show_fee: plan.no_show_fee().into(),
            min_advance_days: plan.min_advance_days(),
            max_advance_days: plan.max_advance_days(),
        }
    }
}

/// Answer of `GET /v1/hotels/{hotel_id}/rate-plans`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RatePlansView {
    /// The hotel.
    pub hotel_id: String,
    /// Every plan, the built-in `BAR` included, by code.
    pub rate_plans: Vec<RatePlanView>,
}

/// Deserializes a field that may be absent (`None`, with `#[serde(default)]`), `null`
/// (`Some(None)`) or a value (`Some(Some(v))`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// What `PUT …/restrictions` sets on each cell it covers: at least one field. A field left
/// out stays as it is; for the numbers, `null` clears.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestrictionSet {
    /// Stop-sell: no stay may include the night.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = bool, required = false, example = true)]
    pub closed: Option<Option<bool>>,
    /// No stay may arrive on the date.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = bool, required = false)]
    pub closed_to_arrival: Option<Option<bool>>,
    /// No stay may depart on the date.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = bool, required = false)]
    pub closed_to_departure: Option<Option<bool>>,
    /// A stay arriving on the date is at least this many nights (1 to 730); `null` clears.
    #[serde(default, deserialize_with = "present_whole")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 730, example = 2)]
    pub min_stay_arrival: Option<Option<i64>>,
    /// A stay arriving on the date is at most this many nights (1 to 730); `null` clears.
    #[serde(default, deserialize_with = "present_whole")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 730, example = 7)]
    pub max_stay_arrival: Option<Option<i64>>,
    /// A stay including the night is at least this many nights (1 to 730); `null` clears.
    #[serde(default, deserialize_with = "present_whole")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 730, example = 2)]
    pub min_stay_through: Option<Option<i64>>,
}

impl RestrictionSet {
    /// The engine's patch, validated; each refusal names its field.
    pub fn to_patch(&self) -> Result<RestrictionPatch, ValidationError> {
        let flag = |field: &'static str, v: Option<Option<bool>>| match v {
            None => Ok(None),
            Some(Some(b)) => Ok(Some(b)),
            Some(None) => Err(ValidationError::new(field, "must be true or false")),
        };
        let nights = |field: &'static str, v: Option<Option<i64>>| {
            v.map(|n| RestrictionPatch::nights(field, n)).transpose()
        };
        Ok(RestrictionPatch {
            closed: flag("set.closed", self.closed)?,
            closed_to_arrival: flag("set.closed_to_arrival", self.closed_to_arrival)?,
            closed_to_departure: flag("set.closed_to_departure", self.closed_to_departure)?,
            min_stay_arrival: nights("set.min_stay_arrival", self.min_stay_arrival)?,
            max_stay_arrival: nights("set.max_stay_arrival", self.max_stay_arrival)?,
            min_stay_through: nights("set.min_stay_through", self.min_stay_through)?,
        })
    }
}

/// `PUT /v1/hotels/{hotel_id}/restrictions`: sets `set` on each date of `[from, to)`
/// (only on `weekdays` when given), for the listed room types and plans (every one the
/// hotel has when left out).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRestrictionsRequest {
    /// First date (`YYYY-MM-DD`).
    #[schema(value_type = CivilDate, example = "2026-12-24")]
    pub from: String,
    /// First date not covered (exclusive): after `from`, at most 730 days later (else 400
    /// invalid_request).
    #[schema(value_type = CivilDate, example = "2026-12-27")]
    pub to: String,
    /// Room type codes of the hotel (one it lacks is 400 invalid_request); every type of
    /// the hotel when left out or null.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Code>>, min_items = 1, example = json!(["KING"]))]
    pub room_types: Option<Vec<String>>,
    /// Rate plan codes of the hotel (`BAR` included; one it lacks is 400
    /// invalid_request); every plan of the hotel when left out or null.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Code>>, min_items = 1, example = json!(["NONREF"]))]
    pub rate_plans: Option<Vec<String>>,
    /// Days of the week; every day when left out or null. No date of the range on them is
    /// 400 invalid_request.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Weekday>>, min_items = 1, example = json!(["fri", "sat"]))]
    pub weekdays: Option<Vec<String>>,
    /// What to set: at least one field.
    pub set: RestrictionSet,
}

/// What `PUT …/restrictions` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RestrictionsPutView {
    /// The hotel.
    pub hotel_id: String,
    /// First date of the change.
    pub from: String,
    /// First date after it.
    pub to: String,
    /// How many (date, room type, plan) cells of `[from, to)` restrict something now,
    /// after the change (`GET …/restrictions` lists them).
    pub cells: usize,
}

/// Query of `GET /v1/hotels/{hotel_id}/restrictions`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RestrictionsQuery {
    /// First date (`YYYY-MM-DD`). Required.
    #[param(required = true, value_type = CivilDate, example = "2026-12-24")]
    pub from: Option<String>,
    /// First date not listed (exclusive): after `from`, at most 730 days later (else 400
    /// invalid_request). Required.
    #[param(required = true, value_type = CivilDate, example = "2026-12-31")]
    pub to: Option<String>,
}

/// The restrictions of one date, room type and plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RestrictionView {
    /// The date (`YYYY-MM-DD`).
    pub date: String,
    /// The room type.
    pub room_type: String,
    /// The rate plan.
    pub rate_plan: String,
    /// Stop-sell: no stay may include the night.
    pub closed: bool,
    /// No stay may arrive on the date.
    pub closed_to_arrival: bool,
    /// No stay may depart on the date.
    pub closed_to_departure: bool,
    /// A stay arriving on the date is at least this many nights.
    pub min_stay_arrival: Option<u16>,
    /// A stay arriving on the date is at most this many nights.
    pub max_stay_arrival: Option<u16>,
    /// A stay including the night is at least this many nights.
    pub min_stay_through: Option<u16>,
}

impl RestrictionView {
    /// The view of one cell.
    pub fn new(date: Date, room_type: &RoomTypeCode, plan: &RatePlanCode, r: &Restriction) -> Self {
        Self {
            date: date.to_string(),
            room_type: room_type.as_str().to_owned(),
            rate_plan: plan.as_str().to_owned(),
            closed: r.closed,
            closed_to_arrival: r.closed_to_arrival,
            closed_to_departure: r.closed_to_departure,
            min_stay_arrival: r.min_stay_arrival,
            max_stay_arrival: r.max_stay_arrival,
            min_stay_through: r.min_stay_through,
        }
    }
}

/// Answer of `GET /v1/hotels/{hotel_id}/restrictions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RestrictionsView {
    /// The hotel.
    pub hotel_id: String,
    /// First date listed.
    pub from: String,
    /// First date not listed.
    pub to: String,
    /// Every cell of `[from, to)` that restricts something, by date, room type, plan.
    pub restrictions: Vec<RestrictionView>,
}

// ---------------------------------------------------------------------------------------
// Operations

/// Query of `GET /readyz`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadyQuery {
    /// A partition of the cluster (its id in the cluster file): ready only on the node
    /// serving it now.
    #[param(example = "p1")]
    pub partition: Option<String>,
}

// Availability

/// Query of `GET /v1/hotels/{hotel_id}/availability`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AvailabilityQuery {
    /// First night (`YYYY-MM-DD`, hotel-local; not before the hotel's today, else 422
    /// invalid_stay). Required.
    #[param(required = true, value_type = CivilDate, example = "2026-12-24")]
    pub arrival: Option<String>,
    /// Leaving day (`YYYY-MM-DD`, exclusive): after `arrival`, at most `max_nights` (90)
    /// nights later and within `horizon_days` (730) of today (else 422 invalid_stay).
    /// Required.
    #[param(required = true, value_type = CivilDate, example = "2026-12-26")]
    pub departure: Option<String>,
    /// Number of guests; types sleeping fewer are left out. Defaults to 1.
    #[param(minimum = 1, maximum = 65535, example = 2)]
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
    /// What each rate plan selling the type offers for the stay, by code (the fields
    /// above are the built-in `BAR`'s price).
    #[serde(default)]
    pub rate_plans: Vec<RatePlanOfferView>,
}

/// What one rate plan offers for a stay of a room type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RatePlanOfferView {
    /// The plan's code.
    #[schema(example = "BAR")]
    pub code: String,
    /// Whether the stay can be booked under it now: no `reasons`, and a room of the type
    /// is free (`available > 0`).
    pub bookable: bool,
    /// Why the stay cannot be sold under the plan, as stable codes, sorted: `closed`,
    /// `closed_to_arrival`, `closed_to_departure`, `min_stay_arrival`, `max_stay_arrival`,
    /// `min_stay_through`, `min_advance`, `max_advance`. Empty when it can.
    #[schema(example = json!([]))]
    pub reasons: Vec<String>,
    /// Each night's price under the plan.
    pub nightly_rates: Vec<NightlyRateView>,
    /// Sum of those: what a booking under the plan would cost now.
    pub total: MoneyView,
}

impl RatePlanOfferView {
    /// The view of `offer` for a type with `available` free rooms.
    pub fn new(offer: &Offer, available: usize) -> Self {
        Self {
            code: offer.rate_plan.as_str().to_owned(),
            bookable: offer.reasons.is_empty() && available > 0,
            reasons: offer.reasons.iter().map(|r| r.code().to_owned()).collect(),
            nightly_rates: nightly_views(&offer.quote.nightly),
            total: offer.quote.total.into(),
        }
    }
}

/// Nightly prices as [`NightlyRateView`]s.
fn nightly_views(nightly: &[(Date, i64)]) -> Vec<NightlyRateView> {
    nightly
        .iter()
        .map(|(date, amount)| NightlyRateView {
            date: date.to_string(),
            amount: *amount,
        })
        .collect()
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
            nightly_rates: nightly_views(&t.nightly),
            total: t.total.into(),
            rate_plans: t
                .offers
                .iter()
                .map(|o| RatePlanOfferView::new(o, t.available))
                .collect(),
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
    /// Full name (1 to 200 printable characters; stored trimmed).
    #[schema(value_type = DisplayName, example = "Li Lei")]
    pub name: String,
    /// Phone number: 5 to 20 digits, with `+ - ( )` and spaces allowed.
    #[schema(value_type = PhoneNumber, example = "+86 138-0000-0000")]
    pub phone: String,
    /// E-mail address.
    #[schema(value_type = EmailAddress, example = "li@example.com")]
    pub email: String,
}

/// `POST /v1/hotels/{hotel_id}/reservations`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookRequestBody {
    /// The room type to book (one the hotel lacks is 404 not_found).
    #[schema(value_type = Code, example = "KING")]
    pub room_type: String,
    /// First night (`YYYY-MM-DD`, hotel-local; not before the hotel's today, else 422
    /// invalid_stay).
    #[schema(value_type = CivilDate, example = "2026-12-24")]
    pub arrival: String,
    /// Leaving day (exclusive): after `arrival`, at most `max_nights` (90) nights later
    /// and within `horizon_days` (730) of today (else 422 invalid_stay).
    #[schema(value_type = CivilDate, example = "2026-12-26")]
    pub departure: String,
    /// Number of guests, 1 to the type's capacity (more is 400 invalid_request).
    #[serde(deserialize_with = "whole")]
    #[schema(value_type = Capacity, example = 2)]
    pub guests: u16,
    /// Who is coming.
    pub guest: GuestContact,
    /// A specific room of the type, if the client wants one (one the hotel lacks is 404
    /// not_found, one of another type 400 invalid_request).
    #[serde(default)]
    #[schema(value_type = Option<Code>, example = "101")]
    pub room: Option<String>,
    /// The rate plan to book under (its price, cancellation and no-show policies);
    /// the built-in `BAR` when left out or null. One the hotel lacks, or one that does not
    /// sell `room_type`, is 422 invalid_request.
    #[serde(default)]
    #[schema(value_type = Option<Code>, example = "BAR")]
    pub rate_plan: Option<String>,
}

/// `POST /v1/hotels/{hotel_id}/bookings`: several rooms for one stay, booked together.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupBookingBody {
    /// First night of every room (`YYYY-MM-DD`, hotel-local), as for a reservation.
    #[schema(value_type = CivilDate, example = "2026-12-24")]
    pub arrival: String,
    /// Leaving day (exclusive) of every room, as for a reservation.
    #[schema(value_type = CivilDate, example = "2026-12-26")]
    pub departure: String,
    /// The lead guest: the contact of every room that names none of its own.
    pub guest: GuestContact,
    /// The rooms, 1 to 20: each its own reservation, in this order.
    #[schema(min_items = 1, max_items = 20)]
    pub rooms: Vec<GroupRoomBody>,
    /// The rate plan of every room, as for a reservation (`BAR` when left out or null).
    #[serde(default)]
    #[schema(value_type = Option<Code>, example = "BAR")]
    pub rate_plan: Option<String>,
}

/// One room of a multi-room booking.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupRoomBody {
    /// Its room type (one the hotel lacks is 404 not_found).
    #[schema(value_type = Code, example = "KING")]
    pub room_type: String,
    /// Guests in it, 1 to the type's capacity (more is 400 invalid_request).
    #[serde(deserialize_with = "whole")]
    #[schema(value_type = Capacity, example = 2)]
    pub guests: u16,
    /// Who stays in it, when not the lead guest.
    #[serde(default)]
    pub guest: Option<GuestContact>,
}

/// A multi-room booking: its reservations, and what they sum up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BookingView {
    /// Server-generated id (UUIDv7).
    #[schema(value_type = crate::constraints::ReservationId)]
    pub id: String,
    /// The hotel.
    pub hotel_id: String,
    /// The status every reservation still live shares (or, when none is live, every
    /// reservation's), one of a reservation's statuses; `mixed` when they differ (one
    /// guest checked in, another still to arrive).
    #[schema(example = "pending_payment")]
    pub status: String,
    /// Its reservations, one per room, in the order the request listed the rooms, each as
    /// `GET /v1/reservations/{id}` shows it (each is readable, modifiable and cancellable
    /// on its own too).
    pub reservations: Vec<ReservationView>,
    /// Sum of the reservations' totals.
    pub total: MoneyView,
    /// The booking's one payment: its callback confirms every reservation.
    pub payment: BookingPaymentView,
    /// When the unpaid hold of every reservation lapses (RFC 3339, UTC): then they all
    /// expire together.
    pub hold_expires_at: String,
    /// Sum of the reservations' versions: it grows with every change to any of them. Also
    /// sent as the `ETag`; `If-Match` on `POST …/cancel` checks it.
    pub version: u64,
}

/// A multi-room booking's payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BookingPaymentView {
    /// Our payment reference (`ik` and the booking id's hex digits); the provider echoes it
    /// in its callback.
    #[schema(value_type = crate::constraints::OutTradeNo)]
    pub out_trade_no: String,
    /// What it asks: the sum of each reservation's `payment.amount`.
    pub amount: MoneyView,
    /// `pending` until paid; `succeeded` once paid (a reservation's later refund shows on
    /// that reservation); `refunded` once every reservation's share was given back;
    /// `failed` after a failed attempt (the hold runs on).
    pub status: PaymentStatusView,
}

impl From<&innkeep_actors::Booking> for BookingView {
    fn from(b: &innkeep_actors::Booking) -> Self {
        let s = &b.summary;
        Self {
            id: s.id.to_string(),
            hotel_id: b.hotel_id.as_str().to_owned(),
            status: s.status.as_str().to_owned(),
            reservations: b.reservations.iter().map(|r| (&**r).into()).collect(),
            total: s.total.into(),
            payment: BookingPaymentView {
                out_trade_no: s.out_trade_no.to_string(),
                amount: s.amount.into(),
                status: s.payment_status.into(),
            },
            hold_expires_at: s.hold_expires_at.to_string(),
            version: s.version,
        }
    }
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
    /// What the guest owes: what this payment's charge asks, the total at booking (a
    /// re-pricing's difference is charged apart, see the reservation's `balance_due`, or
    /// refunded, see `refunds`).
    pub amount: MoneyView,
    /// Where the payment stands.
    pub status: PaymentStatusView,
    /// What the hotel keeps of captured money as a fee: one entry once a paid reservation
    /// was cancelled late or was a no-show, else none.
    #[serde(default)]
    pub fees: Vec<PaymentFeeView>,
    /// What is given back of captured money: one entry once a refund is owed, else none.
    #[serde(default)]
    pub refunds: Vec<RefundView>,
}

/// Why the hotel keeps a fee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FeeKind {
    /// A late cancellation's fee (the plan's cancellation policy).
    Cancellation,
    /// A no-show's fee (the plan's no-show fee).
    NoShow,
}

/// A fee kept of a payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentFeeView {
    /// Why.
    pub kind: FeeKind,
    /// How much.
    pub amount: MoneyView,
}

/// Where a refund stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    /// Owed: the payment supervisor is asking the provider to refund it.
    Owed,
    /// The provider confirmed it.
    Refunded,
}

/// Money given back of a payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RefundView {
    /// How much.
    pub amount: MoneyView,
    /// Where it stands.
    pub status: RefundStatus,
}

/// The fee a reservation's payment keeps, if any: `fee_minor > 0`, its kind by the
/// reservation's status.
fn payment_fee(r: &Reservation) -> Option<(FeeKind, Money)> {
    let p = &r.payment;
    (p.fee_minor > 0).then(|| {
        let kind = match r.status {
            Status::NoShow => FeeKind::NoShow,
            _ => FeeKind::Cancellation,
        };
        let amount = Money {
            amount_minor: p.fee_minor,
            currency: p.amount.currency,
        };
        (kind, amount)
    })
}

/// The refund of a reservation's payment, if any: `refund_minor > 0`; owed until the
/// provider confirms it (then the payment is `refunded`, or, for a difference given back
/// after a re-pricing, still `succeeded`).
fn payment_refund(r: &Reservation) -> Option<(RefundStatus, Money)> {
    let p = &r.payment;
    (p.refund_minor > 0).then(|| {
        let status = if p.refund_owed {
            RefundStatus::Owed
        } else {
            RefundStatus::Refunded
        };
        let amount = Money {
            amount_minor: p.refund_minor,
            currency: p.amount.currency,
        };
        (status, amount)
    })
}

/// [`PaymentView::fees`] of `r`.
fn payment_fees(r: &Reservation) -> Vec<PaymentFeeView> {
    payment_fee(r)
        .map(|(kind, amount)| PaymentFeeView {
            kind,
            amount: amount.into(),
        })
        .into_iter()
        .collect()
}

/// [`PaymentView::refunds`] of `r`.
fn payment_refunds(r: &Reservation) -> Vec<RefundView> {
    payment_refund(r)
        .map(|(status, amount)| RefundView {
            amount: amount.into(),
            status,
        })
        .into_iter()
        .collect()
}

/// The cancellation policy a reservation was sold under, with what it costs for its stay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CancellationPolicyView {
    /// Cancelling at least this many hours before the arrival date starts (hotel-local
    /// midnight) is free; 0: there is no free window (non-refundable).
    #[schema(example = 48)]
    pub free_until_hours: u32,
    /// What cancelling later costs, as the plan states it.
    pub fee: FeeRule,
    /// The last instant cancelling is free (RFC 3339, UTC); null when there is no free
    /// window (then `late_fee` applies from booking on; a `late_fee` of 0 means free at
    /// any time).
    pub free_until: Option<String>,
    /// What cancelling after `free_until` (or at any time, without one) costs for this
    /// stay.
    pub late_fee: MoneyView,
}

/// The no-show fee a reservation was sold under, with what it costs for its stay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NoShowPolicyView {
    /// What a no-show costs, as the plan states it.
    pub fee: FeeRule,
    /// What it costs for this stay.
    pub amount: MoneyView,
}

impl Default for FeeRule {
    /// No fee.
    fn default() -> Self {
        FeeRule::Percent(0)
    }
}

/// `minor` in the currency of `r`'s total.
fn money_of(r: &Reservation, minor: i64) -> Money {
    Money {
        amount_minor: minor,
        currency: r.total.currency,
    }
}

/// What cancelling `r` cost: set exactly when it is cancelled (0 for an unpaid hold).
fn cancellation_fee(r: &Reservation) -> Option<Money> {
    (r.status == Status::Cancelled).then(|| money_of(r, r.payment.fee_minor))
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
    /// `modified` for an entry a modification made (its status stays; `changes` says
    /// what changed); absent for the other entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<HistoryAction>,
    /// For a `modified` entry: what changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<ChangeView>>,
}

/// What made a history entry that keeps the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HistoryAction {
    /// `POST /v1/reservations/{id}/modify`.
    Modified,
}

/// One field a modification changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChangeView {
    /// Which: `arrival`, `departure`, `room_type`, `room`, `guests`, `guest`, `rate_plan`
    /// or `total`.
    #[schema(example = "departure")]
    pub field: String,
    /// The value before (dates `YYYY-MM-DD`, codes as text, `guests` a number, `total` a
    /// money object; null for `guest`, whose old details are not kept).
    #[schema(example = "2026-12-26")]
    pub from: serde_json::Value,
    /// The value after (null for `guest`: the reservation shows the new details).
    #[schema(example = "2026-12-27")]
    pub to: serde_json::Value,
}

impl ChangeView {
    /// A modification's change, amounts in `currency`.
    fn new(c: &innkeep_engine::FieldChange, currency: innkeep_engine::Currency) -> Self {
        use innkeep_engine::FieldChange as F;
        use serde_json::{json, Value};
        let money = |minor: i64| {
            json!(MoneyView::from(Money {
                amount_minor: minor,
                currency,
            }))
        };
        let (from, to) = match c {
            F::Arrival { from, to } | F::Departure { from, to } => {
                (json!(from.to_string()), json!(to.to_string()))
            }
            F::RoomType { from, to } => (json!(from.as_str()), json!(to.as_str())),
            F::Room { from, to } => (json!(from.as_str()), json!(to.as_str())),
            F::Guests { from, to } => (json!(from), json!(to)),
            F::Guest => (Value::Null, Value::Null),
            F::RatePlan { from, to } => (json!(from.as_str()), json!(to.as_str())),
            F::Total {
                from_minor,
                to_minor,
            } => (money(*from_minor), money(*to_minor)),
        };
        Self {
            field: c.field().to_owned(),
            from,
            to,
        }
    }

    /// What the modification that produced `version` of `r` changed, if one did.
    fn of(r: &Reservation, version: u64) -> Option<Vec<Self>> {
        let m = r.modifications.iter().find(|m| m.version == version)?;
        Some(
            m.changes
                .iter()
                .map(|c| ChangeView::new(c, r.total.currency))
                .collect(),
        )
    }
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
    /// The rate plan it was sold under (`BAR`: the built-in best available rate).
    #[serde(default = "bar_code")]
    #[schema(example = "BAR")]
    pub rate_plan: String,
    /// Its cancellation policy as sold, with what it costs for this stay.
    #[serde(default)]
    pub cancellation_policy: CancellationPolicyView,
    /// Its no-show fee as sold, with what it costs for this stay.
    #[serde(default)]
    pub no_show_policy: NoShowPolicyView,
    /// What cancelling it cost (kept of the payment): set exactly when `status` is
    /// `cancelled` (0 for an unpaid hold), else null.
    #[serde(default)]
    pub cancellation_fee: Option<MoneyView>,
    /// Whether it stays in its room when the engine moves reservations between rooms of a
    /// type to make room for a stay no single room could take: true when it was booked
    /// with an explicit `room` or moved with `POST /v1/reservations/{id}/move`.
    #[serde(default)]
    pub pinned: bool,
    /// What is still to pay after a re-pricing (`POST …/modify`) raised the total of a paid
    /// reservation: the amount of the charge for the difference, created with the payment
    /// provider under `<payment.out_trade_no>-<n>`. Absent when nothing is due (never
    /// re-priced upwards, or the difference was paid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance_due: Option<MoneyView>,
    /// The multi-room booking (`POST /v1/hotels/{hotel_id}/bookings`) that made it, if
    /// one did: then its `payment` is the booking's one payment (`out_trade_no` is the
    /// booking's, `amount` this reservation's share). Absent for a reservation booked
    /// alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::constraints::ReservationId>)]
    pub booking_id: Option<String>,
}

/// What a reservation still owes after a re-pricing, if anything.
fn balance_due(r: &Reservation) -> Option<Money> {
    r.balance_charge().map(|(_, amount)| amount)
}

/// The built-in plan's code: what answers of servers before rate plans meant.
fn bar_code() -> String {
    innkeep_engine::selling::BAR.to_owned()
}

impl CancellationPolicyView {
    fn new(r: &Reservation) -> Self {
        let t = &r.terms;
        Self {
            free_until_hours: t.cancellation.free_until_hours(),
            fee: t.cancellation.fee().into(),
            free_until: t.free_until.map(|at| at.to_string()),
            late_fee: money_of(r, t.late_cancel_fee_minor).into(),
        }
    }
}

impl NoShowPolicyView {
    fn new(r: &Reservation) -> Self {
        Self {
            fee: r.terms.no_show_fee.into(),
            amount: money_of(r, r.terms.no_show_fee_minor).into(),
        }
    }
}

/// A reservation written as [`ReservationView`]'s JSON straight from the engine's
/// reservation ([`ReservationJson::write_to`]), without building the view first: the view
/// costs about twenty small allocations per answer (every id, date and instant as a
/// `String`), this none. The bytes are the view's, field for field
/// (`reservation_json_writes_the_views_bytes`); the view stays the schema and what clients
/// deserialize.
#[derive(Debug)]
pub struct ReservationJson<'a>(pub &'a Reservation);

impl ReservationJson<'_> {
    /// Appends the JSON to `out`. Written by hand, not through serde: every key is a
    /// literal with its punctuation, and a string is scanned once for characters JSON must
    /// escape (none, in codes, dates, instants and ids), where serde_json escapes every key
    /// and value byte by byte and grows its buffer from 128 bytes (measured: a new booking's
    /// answer was a tenth of a shard's time that way). Nested enums and rules still go
    /// through serde, so their spelling has one definition.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let r = self.0;
        out.extend_from_slice(b"{\"id\":");
        text(out, r.id);
        out.extend_from_slice(b",\"hotel_id\":");
        string(out, r.hotel_id.as_str());
        out.extend_from_slice(b",\"room_type\":");
        string(out, r.room_type.as_str());
        out.extend_from_slice(b",\"room\":");
        string(out, r.room.as_str());
        out.extend_from_slice(b",\"arrival\":");
        text(out, r.stay.arrival());
        out.extend_from_slice(b",\"departure\":");
        text(out, r.stay.departure());
        out.extend_from_slice(b",\"nights\":");
        number(out, r.stay.nights());
        out.extend_from_slice(b",\"guests\":");
        number(out, r.guests);
        out.extend_from_slice(b",\"guest\":{\"name\":");
        string(out, r.guest.name());
        out.extend_from_slice(b",\"phone\":");
        string(out, r.guest.phone());
        out.extend_from_slice(b",\"email\":");
        string(out, r.guest.email());
        out.extend_from_slice(b"},\"status\":");
        serde_value(out, &ReservationStatus::from(r.status));
        out.extend_from_slice(b",\"hold_expires_at\":");
        text(out, r.hold_expires_at);
        out.extend_from_slice(b",\"total\":");
        money(out, r.total);
        out.extend_from_slice(b",\"version\":");
        number(out, r.version);
        out.extend_from_slice(b",\"created_at\":");
        text(out, r.created_at);
        out.extend_from_slice(b",\"payment\":{\"out_trade_no\":");
        text(out, r.payment.out_trade_no);
        out.extend_from_slice(b",\"amount\":");
        money(out, r.payment.amount);
        out.extend_from_slice(b",\"status\":");
        serde_value(out, &PaymentStatusView::from(r.payment.status));
        out.extend_from_slice(b",\"fees\":[");
        if let Some((kind, amount)) = payment_fee(r) {
            out.extend_from_slice(b"{\"kind\":");
            serde_value(out, &kind);
            out.extend_from_slice(b",\"amount\":");
            money(out, amount);
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"refunds\":[");
        if let Some((status, amount)) = payment_refund(r) {
            out.extend_from_slice(b"{\"amount\":");
            money(out, amount);
            out.extend_from_slice(b",\"status\":");
            serde_value(out, &status);
            out.push(b'}');
        }
        out.extend_from_slice(b"]},\"history\":[");
        for (i, h) in r.history.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"at\":");
            text(out, h.at);
            out.extend_from_slice(b",\"from\":");
            match h.from {
                Some(from) => serde_value(out, &ReservationStatus::from(from)),
                None => out.extend_from_slice(b"null"),
            }
            out.extend_from_slice(b",\"to\":");
            serde_value(out, &ReservationStatus::from(h.to));
            out.extend_from_slice(b",\"version\":");
            number(out, h.version);
            if let Some(changes) = ChangeView::of(r, h.version) {
                out.extend_from_slice(b",\"action\":");
                serde_value(out, &HistoryAction::Modified);
                out.extend_from_slice(b",\"changes\":");
                serde_value(out, &changes);
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"moves\":[");
        for (i, m) in r.moves.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"at\":");
            text(out, m.at);
            out.extend_from_slice(b",\"from_room\":");
            string(out, m.from_room.as_str());
            out.extend_from_slice(b",\"to_room\":");
            string(out, m.to_room.as_str());
            out.extend_from_slice(b",\"first_night\":");
            text(out, m.first_night);
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"rate_plan\":");
        string(out, r.terms.rate_plan.as_str());
        let t: &Terms = &r.terms;
        out.extend_from_slice(b",\"cancellation_policy\":{\"free_until_hours\":");
        number(out, t.cancellation.free_until_hours());
        out.extend_from_slice(b",\"fee\":");
        serde_value(out, &FeeRule::from(t.cancellation.fee()));
        out.extend_from_slice(b",\"free_until\":");
        match t.free_until {
            Some(at) => text(out, at),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"late_fee\":");
        money(out, money_of(r, t.late_cancel_fee_minor));
        out.extend_from_slice(b"},\"no_show_policy\":{\"fee\":");
        serde_value(out, &FeeRule::from(t.no_show_fee));
        out.extend_from_slice(b",\"amount\":");
        money(out, money_of(r, t.no_show_fee_minor));
        out.extend_from_slice(b"},\"cancellation_fee\":");
        match cancellation_fee(r) {
            Some(fee) => money(out, fee),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"pinned\":");
        out.extend_from_slice(if r.pinned { b"true" } else { b"false" });
        if let Some(due) = balance_due(r) {
            out.extend_from_slice(b",\"balance_due\":");
            money(out, due);
        }
        if let Some(b) = r.booking() {
            out.extend_from_slice(b",\"booking_id\":");
            text(out, b);
        }
        out.push(b'}');
    }
}

/// A JSON string of `s`: copied as it is when nothing in it needs escaping, else escaped as
/// serde_json does.
fn string(out: &mut Vec<u8>, s: &str) {
    if needs_no_escape(s.as_bytes()) {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_value(out, s);
    }
}

/// A JSON string of `value`'s `Display` text (ids, dates and instants: nothing to escape,
/// which is checked all the same).
fn text(out: &mut Vec<u8>, value: impl fmt::Display) {
    use std::io::Write as _;
    let start = out.len();
    out.push(b'"');
    // Writing into a `Vec` cannot fail.
    let _ = write!(out, "{value}");
    if needs_no_escape(&out[start + 1..]) {
        out.push(b'"');
    } else {
        let raw = out.split_off(start + 1);
        out.truncate(start);
        // `Display` wrote UTF-8, so nothing is lost.
        serde_value(out, &*String::from_utf8_lossy(&raw));
    }
}

/// Whether JSON takes `bytes` inside quotes as they are: no control character, quote or
/// backslash (the characters serde_json escapes).
fn needs_no_escape(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\')
}

/// A JSON number.
fn number(out: &mut Vec<u8>, n: impl fmt::Display) {
    use std::io::Write as _;
    // Writing into a `Vec` cannot fail.
    let _ = write!(out, "{n}");
}

/// [`MoneyView`]'s JSON.
fn money(out: &mut Vec<u8>, m: Money) {
    out.extend_from_slice(b"{\"amount\":");
    number(out, m.amount_minor);
    out.extend_from_slice(b",\"currency\":");
    string(out, m.currency.as_str());
    out.push(b'}');
}

/// `value`'s serde JSON (the enums and rules with their serde spelling).
fn serde_value<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Writing into a `Vec` cannot fail, and these types serialize without error.
    let _ = serde_json::to_writer(&mut *out, value);
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

/// `POST /v1/reservations/{id}/modify`: what to change; a field left out (or null) stays
/// as it is, and `{}` changes nothing.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModifyRequest {
    /// A new first night (`YYYY-MM-DD`, hotel-local; not before the hotel's today, else
    /// 422 invalid_stay). Not for a guest in house.
    #[serde(default)]
    #[schema(value_type = Option<CivilDate>, example = "2026-12-24")]
    pub arrival: Option<String>,
    /// A new leaving day: after `arrival`, within `max_nights` and `horizon_days` (else
    /// 422 invalid_stay); for a guest in house, after today.
    #[serde(default)]
    #[schema(value_type = Option<CivilDate>, example = "2026-12-27")]
    pub departure: Option<String>,
    /// Another room type of the hotel (one it lacks is 404 not_found). Not for a guest in
    /// house.
    #[serde(default)]
    #[schema(value_type = Option<Code>, example = "SUITE")]
    pub room_type: Option<String>,
    /// Another number of guests, 1 to the type's capacity (more is 400 invalid_request).
    #[serde(default, deserialize_with = "whole_option")]
    #[schema(value_type = Option<Capacity>, example = 2)]
    pub guests: Option<u16>,
    /// New contact details.
    #[serde(default)]
    pub guest: Option<GuestContact>,
    /// Another rate plan (422 invalid_request if the hotel lacks it or it does not sell
    /// the type).
    #[serde(default)]
    #[schema(value_type = Option<Code>, example = "FLEX")]
    pub rate_plan: Option<String>,
}

/// `POST /v1/reservations/{id}/move`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    /// The room (number) of the same hotel to move to.
    #[schema(value_type = Code, example = "104")]
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
                fees: payment_fees(r),
                refunds: payment_refunds(r),
            },
            history: r
                .history
                .iter()
                .map(|h| {
                    let changes = ChangeView::of(r, h.version);
                    HistoryView {
                        at: h.at.to_string(),
                        from: h.from.map(Into::into),
                        to: h.to.into(),
                        version: h.version,
                        action: changes.as_ref().map(|_| HistoryAction::Modified),
                        changes,
                    }
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
            rate_plan: r.terms.rate_plan.as_str().to_owned(),
            cancellation_policy: CancellationPolicyView::new(r),
            no_show_policy: NoShowPolicyView::new(r),
            cancellation_fee: cancellation_fee(r).map(Into::into),
            pinned: r.pinned,
            balance_due: balance_due(r).map(Into::into),
            booking_id: r.booking().map(|b| b.to_string()),
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
    /// First night out of order (`YYYY-MM-DD`, hotel-local, not before today, else 400
    /// invalid_request).
    #[schema(value_type = CivilDate, example = "2026-12-01")]
    pub from: String,
    /// First night back in order (`YYYY-MM-DD`): after `from`, at most 366 nights later
    /// (else 400 invalid_request).
    #[schema(value_type = CivilDate, example = "2026-12-04")]
    pub to: String,
    /// Why (at most 200 characters; empty when left out).
    #[serde(default)]
    #[schema(value_type = OutOfOrderReason, example = "boiler repair")]
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
    #[param(value_type = Option<CivilDate>, example = "2026-12-24")]
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
    /// The rate plan it was sold under.
    #[serde(default = "bar_code")]
    #[schema(example = "BAR")]
    pub rate_plan: String,
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
            rate_plan: r.rate_plan.as_str().to_owned(),
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

/// Query of `GET /v1/hotels/{hotel_id}/tape`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TapeQuery {
    /// The first night shown (`YYYY-MM-DD`, hotel-local); defaults to today in the hotel's
    /// time zone. A window that would end after 9999-12-31 is 400 invalid_request.
    #[param(value_type = Option<CivilDate>, example = "2026-12-24")]
    pub from: Option<String>,
    /// How many nights are shown, 1 to 31; defaults to 14.
    #[param(minimum = 1, maximum = 31, example = 14)]
    pub nights: Option<u32>,
}

/// One reservation on a tape chart's row: a bar over the nights its room holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TapeReservationView {
    /// The reservation's id.
    pub id: String,
    /// Where it is in the state machine: `pending_payment`, `confirmed`, `checked_in`, or
    /// `checked_out` (the nights it slept). Cancelled, expired and no-show reservations
    /// hold no nights and are not on the chart.
    pub status: ReservationStatus,
    /// First night of the booked stay (`YYYY-MM-DD`).
    pub arrival: String,
    /// Booked leaving day (`YYYY-MM-DD`).
    pub departure: String,
    /// First night this room holds (`YYYY-MM-DD`): the arrival, unless the guest was moved
    /// here mid-stay.
    pub held_from: String,
    /// First night this room does not hold (`YYYY-MM-DD`): the departure, unless the guest
    /// left early.
    pub held_to: String,
    /// The guest's name.
    pub guest_name: String,
    /// Whether the reservation stays in its room when reservations are rearranged: the
    /// front desk moved it there (`POST /v1/reservations/{id}/move`).
    pub pinned: bool,
}

impl From<&TapeReservation> for TapeReservationView {
    fn from(r: &TapeReservation) -> Self {
        Self {
            id: r.id.to_string(),
            status: r.status.into(),
            arrival: r.stay.arrival().to_string(),
            departure: r.stay.departure().to_string(),
            held_from: r.held_from.to_string(),
            held_to: r.held_to.to_string(),
            guest_name: r.guest_name.clone(),
            pinned: r.pinned,
        }
    }
}

/// One row of a tape chart: a room and what holds its nights in the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TapeRoomView {
    /// The room's number.
    pub number: String,
    /// Its room type.
    pub room_type: String,
    /// Its out-of-order ranges overlapping the window, by first night (whole, not clipped
    /// to the window).
    pub out_of_order: Vec<OutOfOrderRangeView>,
    /// The reservations holding any of its nights in the window, by first night here
    /// (whole stays, not clipped to the window).
    pub reservations: Vec<TapeReservationView>,
}

impl From<&TapeRoom> for TapeRoomView {
    fn from(r: &TapeRoom) -> Self {
        Self {
            number: r.number.as_str().to_owned(),
            room_type: r.room_type.as_str().to_owned(),
            out_of_order: r
                .out_of_order
                .iter()
                .map(|o| OutOfOrderRangeView {
                    from: o.from.to_string(),
                    to: o.to.to_string(),
                    reason: o.reason.clone(),
                })
                .collect(),
            reservations: r
                .reservations
                .iter()
                .map(TapeReservationView::from)
                .collect(),
        }
    }
}

/// Answer of `GET /v1/hotels/{hotel_id}/tape`: the tape chart the front desk plans with,
/// every room down the side and the nights `[from, to)` across.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TapeView {
    /// The hotel.
    pub hotel_id: String,
    /// The first night shown (`YYYY-MM-DD`, hotel-local).
    pub from: String,
    /// The first night not shown (`YYYY-MM-DD`): `from` plus `nights`.
    pub to: String,
    /// How many nights are shown.
    pub nights: u32,
    /// Every room of the hotel, by number.
    pub rooms: Vec<TapeRoomView>,
}

impl From<&TapeChart> for TapeView {
    fn from(t: &TapeChart) -> Self {
        Self {
            hotel_id: t.hotel_id.as_str().to_owned(),
            from: t.from.to_string(),
            to: t.to.to_string(),
            nights: t.nights,
            rooms: t.rooms.iter().map(TapeRoomView::from).collect(),
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
    /// Our payment reference, from the reservation's `payment.out_trade_no` (one that names
    /// no reservation is 404 not_found).
    #[schema(value_type = OutTradeNo)]
    pub out_trade_no: String,
    /// The provider's own reference for the payment.
    #[schema(value_type = TradeNo)]
    pub trade_no: String,
    /// What happened.
    pub status: NotifyStatus,
    /// Minor units paid; must equal what the reservation owes.
    #[serde(deserialize_with = "whole")]
    pub amount: i64,
    /// ISO 4217 code paid in; must equal the reservation's.
    #[schema(value_type = CurrencyCode)]
    pub currency: String,
}

/// One entry of a payment's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentHistoryView {
    /// When (RFC 3339, UTC).
    pub at: String,
    /// What happened: `created`, `succeeded`, `failed`, `refund_owed`,
    /// `cancelled_after_payment` (the rest after the fee is owed back), `fee_kept` (a late
    /// cancellation or a no-show whose fee keeps everything), `no_show_after_payment`
    /// (a no-show: the rest after its fee is owed back), `refunded`, and for a paid
    /// reservation re-priced: `balance_due` (a charge for the difference was created),
    /// `balance_paid`, `difference_refund_owed` and `difference_refunded`.
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
    /// What the hotel keeps as a fee (a late cancellation or a no-show of a paid
    /// reservation): one entry, or none.
    #[serde(default)]
    pub fees: Vec<PaymentFeeView>,
    /// What is given back: one entry once a refund is owed, or none.
    #[serde(default)]
    pub refunds: Vec<RefundView>,
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
            fees: payment_fees(r),
            refunds: payment_refunds(r),
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
            for (g, guest) in guests.iter().enumerate() {
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
                    rate_plan: innkeep_engine::RatePlanCode::bar(),
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
                // Some are pinned, and some paid under a multi-room booking (`booking_id`).
                r.pinned = n % 3 == 0;
                if n % 3 == 1 {
                    r.payment.out_trade_no = ReservationId(uuid::Uuid::now_v7()).out_trade_no();
                }
                if n % 2 == 1 {
                    r.payment.status = PaymentStatus::Succeeded;
                    r.payment.trade_no = Some(format!("T-{n}"));
                }
                // Another plan's terms, and a fee kept with the rest owed or refunded.
                if g == 1 {
                    r.terms = Terms {
                        rate_plan: innkeep_engine::RatePlanCode::parse("FLEX").unwrap(),
                        cancellation: CancellationPolicy::parse(48, Fee::Nights(1)).unwrap(),
                        no_show_fee: Fee::Percent(100),
                        free_until: Some(now),
                        late_cancel_fee_minor: 68_000,
                        no_show_fee_minor: total.amount_minor,
                    };
                    r.payment.fee_minor = 1_000 * (n as i64 + 1);
                    r.payment.refund_minor = total.amount_minor - r.payment.fee_minor;
                    if n % 2 == 1 {
                        r.payment.status = PaymentStatus::Refunded;
                    } else {
                        r.payment.refund_owed = true;
                    }
                }
                // A paid reservation re-priced higher owes the difference.
                let owing = g == 0 && status == Status::Confirmed;
                if owing {
                    r.adjustment = Some(innkeep_engine::Adjustment {
                        first_charge_minor: total.amount_minor,
                        held_minor: total.amount_minor,
                        balance_due_minor: 12_345,
                        seq: 1,
                    });
                }
                let view = serde_json::to_string(&ReservationView::from(&r)).unwrap();
                let mut direct = Vec::new();
                ReservationJson(&r).write_to(&mut direct);
                let direct = String::from_utf8(direct).unwrap();
                assert_eq!(direct, view, "{status:?}");
                // And the view reads back.
                let back: ReservationView = serde_json::from_str(&view).unwrap();
                assert_eq!(back, ReservationView::from(&r));
                let v: serde_json::Value = serde_json::from_str(&view).unwrap();
                assert_eq!(v["cancellation_fee"].is_null(), status != Status::Cancelled);
                if owing {
                    assert_eq!(
                        v["balance_due"],
                        serde_json::json!({"amount": 12_345, "currency": "CNY"})
                    );
                } else {
                    assert!(v.get("balance_due").is_none(), "{v}");
                }
                assert_eq!(v["payment"]["fees"].as_array().unwrap().len(), g);
                assert_eq!(v["payment"]["refunds"].as_array().unwrap().len(), g);
                if g == 1 {
                    let kind = if status == Status::NoShow {
                        "no_show"
                    } else {
                        "cancellation"
                    };
                    assert_eq!(v["payment"]["fees"][0]["kind"], kind);
                    let refund = if n % 2 == 1 { "refunded" } else { "owed" };
                    assert_eq!(v["payment"]["refunds"][0]["status"], refund);
                    assert_eq!(v["cancellation_policy"]["free_until"], now.to_string());
                }
            }
        }
    }
    use super::*;

    /// JSON Schema's `integer` is any number without a fraction: `2.0` and `2e0` are 2.
    #[test]
    fn whole_numbers_may_be_written_with_a_zero_fraction() {
        let book = |guests: &str| {
            serde_json::from_str::<BookRequestBody>(&format!(
                r#"{{"room_type": "K", "arrival": "2026-01-01", "departure": "2026-01-02",
                    "guests": {guests},
                    "guest": {{"name": "a", "phone": "12345", "email": "a@b.c"}}}}"#
            ))
        };
        for (text, guests) in [("2", 2), ("2.0", 2), ("2e0", 2), ("65535.0", 65_535)] {
            assert_eq!(book(text).unwrap().guests, guests, "{text}");
        }
        for bad in [
            "2.5", "-1", "-1.0", "65536", "65536.0", "1e300", "\"2\"", "null",
        ] {
            assert!(book(bad).is_err(), "{bad}");
        }
        let cny = Currency::parse("CNY").unwrap();
        let m: MoneyInput = serde_json::from_str("100.0").unwrap();
        assert_eq!(m.minor_in("amount", cny).unwrap(), 100);
        let m: MoneyInput = serde_json::from_str(r#"{"amount": 7.0, "currency": "CNY"}"#).unwrap();
        assert_eq!(m.minor_in("amount", cny).unwrap(), 7);
        assert_eq!(
            serde_json::from_str::<FeeRule>(r#"{"nights": 2.0}"#).unwrap(),
            FeeRule::Nights(2)
        );
        let set: RestrictionSet =
            serde_json::from_str(r#"{"min_stay_arrival": 2.0, "max_stay_arrival": null}"#).unwrap();
        assert_eq!(set.min_stay_arrival, Some(Some(2)));
        assert_eq!(set.max_stay_arrival, Some(None));
        assert_eq!(set.min_stay_through, None);
        assert!(serde_json::from_str::<RestrictionSet>(r#"{"min_stay_arrival": 2.5}"#).is_err());
    }

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
    fn a_fee_has_exactly_one_key() {
        let fee = |text: &str| serde_json::from_str::<FeeRule>(text);
        assert_eq!(fee(r#"{"nights": 2}"#).unwrap(), FeeRule::Nights(2));
        assert_eq!(fee(r#"{"percent": 50}"#).unwrap(), FeeRule::Percent(50));
        for bad in [
            r#"{}"#,
            r#"{"nights": 1, "percent": 5}"#,
            r#"{"nights": 1, "nights": 2}"#,
            r#"{"hours": 1}"#,
            r#"{"nights": 1.5}"#,
            r#"{"nights": null}"#,
            r#"1"#,
            r#"["nights", 1]"#,
        ] {
            assert!(fee(bad).is_err(), "{bad}");
        }
        for f in [FeeRule::Nights(3), FeeRule::Percent(0)] {
            let text = serde_json::to_string(&f).unwrap();
            assert_eq!(fee(&text).unwrap(), f);
        }
        assert_eq!(
            FeeRule::Percent(101)
                .to_fee("x.nights", "x.percent")
                .unwrap_err()
                .field,
            "x.percent"
        );
    }

    /// In `set`, a field left out changes nothing, a number set to null clears it, and a
    /// boolean may not be null.
    #[test]
    fn a_restriction_set_tells_absent_from_null() {
        let set = |text: &str| {
            serde_json::from_str::<RestrictionSet>(text)
                .unwrap()
                .to_patch()
        };
        let p =
            set(r#"{"min_stay_arrival": null, "max_stay_arrival": 3, "closed": false}"#).unwrap();
        assert_eq!(
            p,
            RestrictionPatch {
                closed: Some(false),
                min_stay_arrival: Some(None),
                max_stay_arrival: Some(Some(3)),
                ..Default::default()
            }
        );
        assert!(set("{}").unwrap().is_empty());
        assert_eq!(set(r#"{"closed": null}"#).unwrap_err().field, "set.closed");
        assert_eq!(
            set(r#"{"min_stay_through": 0}"#).unwrap_err().field,
            "set.min_stay_through"
        );
        assert!(serde_json::from_str::<RestrictionSet>(r#"{"closed": true, "x": 1}"#).is_err());
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
