//! Schema-only types: what the server enforces on the text and numbers it parses, named
//! once, so `/openapi.json` states every rule a request must meet (issue #17: "OpenAPI that
//! tells the truth"). None of these is ever constructed; wire types and route annotations
//! refer to them with `value_type = …` / `parameter_type`, and each schema is built from
//! the engine's own rules and limits (its constants, its currency table, its time-zone
//! database), so the document cannot drift from the checks. `constraint_tests` checks each
//! pattern against the engine's parser on edge cases.
//!
//! Each pattern is exact in both directions where it can be: a client generated from the
//! document sends nothing these refuse, and what the pattern refuses the server refuses
//! too. Where JSON Schema cannot say it (a rule across fields, the hotel's own currency,
//! a length in UTF-8 bytes), the field's description says it and the route documents the
//! 400 or 422 it answers.

use std::borrow::Cow;

use innkeep_engine::catalog::MAX_CAPACITY;
use innkeep_engine::ids::MAX_CODE_LEN;
use innkeep_engine::money::MAX_AMOUNT_MINOR;
use innkeep_engine::room::MAX_OUT_OF_ORDER_REASON_CHARS;
use innkeep_engine::selling::{Weekdays, MAX_FEE_NIGHTS};
use innkeep_engine::{Currency, HotelTz};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// The characters Rust's `char::is_whitespace` (Unicode `White_Space`) and `str::trim`
/// treat as white space, as a regex class body.
const WHITE_SPACE: &str =
    r"\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// The characters `char::is_control` (general category `Cc`) is true of, as a class body.
const CONTROL: &str = r"\u0000-\u001f\u007f-\u009f";

/// Visible ASCII, space and tab but no comma: one element of a comma-separated header.
const HEADER_ELEMENT_CHAR: &str = r"[\t\u0020-\u002b\u002d-\u007e]";

/// `^[A-Za-z0-9._-]{1,64}$`: every client-chosen code (engine `ids::parse_code`).
pub fn code_pattern() -> String {
    format!("^[A-Za-z0-9._-]{{1,{MAX_CODE_LEN}}}$")
}

/// A display name (hotel, room type, rate plan, guest): after trimming white space, 1 to
/// `max` characters, none a control character (engine `parse_name`, `Guest::parse`,
/// `RatePlan::parse`). With `allow_empty`, also nothing but white space (an out-of-order
/// reason).
pub fn trimmed_text_pattern(max: usize, allow_empty: bool) -> String {
    let ws = WHITE_SPACE;
    let cc = CONTROL;
    let inner = max.saturating_sub(2);
    let text = format!("[^{ws}{cc}](?:[^{cc}]{{0,{inner}}}[^{ws}{cc}])?");
    let text = if allow_empty {
        format!("(?:{text})?")
    } else {
        text
    };
    format!("^[{ws}]*{text}[{ws}]*$")
}

/// A phone number (engine `Guest::parse`): 5 to 20 digits, and only `+ - ( )` and spaces
/// besides; at most 32 characters ([`PhoneNumber`] sets the length).
pub const PHONE_PATTERN: &str = r"^[+() -]*(?:[0-9][+() -]*){5,20}$";

/// An e-mail address as the engine checks it (`Guest::parse`): something before the first
/// `@`, a domain after it with a `.` inside (not first, not last), and no white space or
/// control character anywhere.
pub fn email_pattern() -> String {
    let not = format!("{WHITE_SPACE}{CONTROL}");
    format!("^[^@{not}]+@[^.{not}][^{not}]*\\.[^{not}]*[^.{not}]$")
}

/// `YYYY-MM-DD` in ASCII digits (`wire::parse_date`); `format: date` adds that it is a
/// real day.
pub const DATE_PATTERN: &str = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$";

/// `ik` and a reservation id's 32 hex digits (engine `ReservationId::from_out_trade_no`).
pub const OUT_TRADE_NO_PATTERN: &str = "^ik[0-9A-Fa-f]{32}$";

/// A version number as `If-Match` and `Last-Event-ID` take it: `u64` parsing allows a
/// leading `+` and zeros; 19 significant digits always fit.
const VERSION_NUMBER: &str = r"\+?0*[0-9]{1,19}";

/// `If-Match` as `extract::if_match_values` reads it: no entity tag (empty, or only commas
/// and white space: no check), a `*` among the comma-separated tags (no check), or exactly
/// one tag that is a version (`"3"`, `3` or `W/"3"`).
pub fn if_match_pattern() -> String {
    let e = HEADER_ELEMENT_CHAR;
    let n = VERSION_NUMBER;
    format!(
        "^(?:[ \\t,]*|[ \\t,]*(?:W/)?(?:\"{n}\"|{n})[ \\t,]*|(?:{e}*,)*[ \\t]*\\*[ \\t]*(?:,{e}*)*)$"
    )
}

/// `Last-Event-ID`: an event id, a whole number (`routes::events::last_event_id`).
pub fn last_event_id_pattern() -> String {
    format!("^[ \\t]*{VERSION_NUMBER}[ \\t]*$")
}

/// A payment provider's `trade_no`: printable (no control character), 1 to 128 bytes.
pub fn trade_no_pattern() -> String {
    format!("^[^{CONTROL}]+$")
}

/// Every ISO 4217 code the engine accepts (`Currency::parse`), found by asking it about
/// every three-letter upper-case string, so the list is the engine's own.
pub fn currency_codes() -> Vec<String> {
    let letters = b'A'..=b'Z';
    let mut codes = Vec::new();
    for a in letters.clone() {
        for b in letters.clone() {
            for c in letters.clone() {
                let code = String::from_utf8(vec![a, b, c]).unwrap_or_default();
                if Currency::parse(&code).is_ok() {
                    codes.push(code);
                }
            }
        }
    }
    codes
}

/// Every IANA time-zone name of the tz database the engine uses (`HotelTz::parse`), sorted.
/// The engine also accepts them in any letter case; the canonical spelling is listed.
pub fn time_zone_names() -> Vec<String> {
    let mut names: Vec<String> = innkeep_engine::jiff::tz::db()
        .available()
        .map(|name| name.as_str().to_owned())
        .filter(|name| HotelTz::parse(name).is_ok())
        .collect();
    names.sort();
    names.dedup();
    names
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn integer(min: i64, max: i64) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(min))
        .maximum(Some(max))
}

/// Declares a schema-only type named `$name` whose schema is `$schema`.
macro_rules! constraint {
    ($(#[$doc:meta])* $ty:ident, $schema:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub enum $ty {}

        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                let builder: ObjectBuilder = $schema;
                RefOr::T(Schema::Object(builder.build()))
            }
        }

        impl ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($ty))
            }
        }
    };
}

constraint!(
    /// A client-chosen code: hotel id, room type code, room number, rate plan code,
    /// `Idempotency-Key`.
    Code,
    string()
        .description(Some(
            "A client-chosen code: 1 to 64 ASCII letters, digits, '-', '_' and '.'",
        ))
        .pattern(Some(code_pattern()))
        .min_length(Some(1))
        .max_length(Some(MAX_CODE_LEN))
        .examples(["KING"])
);

constraint!(
    /// A civil date.
    CivilDate,
    string()
        .description(Some("A civil date, `YYYY-MM-DD`"))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
        .pattern(Some(DATE_PATTERN))
        .examples(["2026-12-24"])
);

constraint!(
    /// A reservation id.
    ReservationId,
    string()
        .description(Some("A reservation id (a UUID, hyphenated)"))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        .examples(["0193b1f2-7c3a-7d4e-9f10-1a2b3c4d5e6f"])
);

constraint!(
    /// Our payment reference.
    OutTradeNo,
    string()
        .description(Some(
            "Our payment reference: `ik` and the reservation id's 32 hex digits",
        ))
        .pattern(Some(OUT_TRADE_NO_PATTERN))
        .examples(["ik0193b1f27c3a7d4e9f101a2b3c4d5e6f"])
);

constraint!(
    /// An ISO 4217 currency code.
    CurrencyCode,
    string()
        .description(Some("An ISO 4217 currency code"))
        .enum_values(Some(currency_codes()))
        .examples(["CNY"])
);

constraint!(
    /// An IANA time-zone name.
    TimeZoneName,
    string()
        .description(Some(
            "An IANA time-zone name of the server's tz database (matched case-insensitively)",
        ))
        .enum_values(Some(time_zone_names()))
        .examples(["Asia/Shanghai"])
);

constraint!(
    /// A display name.
    DisplayName,
    string()
        .description(Some(
            "1 to 200 characters once leading and trailing white space is trimmed (it is \
             stored trimmed), none of them a control character",
        ))
        .pattern(Some(trimmed_text_pattern(200, false)))
        .examples(["Bund Riverside"])
);

constraint!(
    /// Why a room is out of order.
    OutOfOrderReason,
    string()
        .description(Some(
            "At most 200 characters once leading and trailing white space is trimmed (it is \
             stored trimmed), none of them a control character; may be empty",
        ))
        .pattern(Some(trimmed_text_pattern(
            MAX_OUT_OF_ORDER_REASON_CHARS,
            true
        )))
        .examples(["boiler repair"])
);

constraint!(
    /// A guest's phone number.
    PhoneNumber,
    string()
        .description(Some(
            "5 to 20 digits, and only '+', '-', '(', ')' and spaces besides; at most 32 \
             characters",
        ))
        .pattern(Some(PHONE_PATTERN))
        .min_length(Some(5))
        .max_length(Some(32))
        .examples(["+86 138-0000-0000"])
);

constraint!(
    /// A guest's e-mail address.
    EmailAddress,
    string()
        .description(Some(
            "An e-mail address: something before the first '@', a domain after it with a '.' \
             that is neither its first nor its last character, no white space or control \
             characters; at most 254 bytes (UTF-8)",
        ))
        .pattern(Some(email_pattern()))
        .min_length(Some(5))
        .max_length(Some(254))
        .examples(["li@example.com"])
);

constraint!(
    /// A payment provider's reference.
    TradeNo,
    string()
        .description(Some(
            "The provider's reference: 1 to 128 bytes (UTF-8), no control characters",
        ))
        .pattern(Some(trade_no_pattern()))
        .min_length(Some(1))
        .max_length(Some(128))
        .examples(["T-20261224-0001"])
);

constraint!(
    /// An amount in minor units.
    AmountMinor,
    integer(0, MAX_AMOUNT_MINOR)
        .description(Some(
            "An amount in minor units (fen, cents) of the hotel's currency, 0 to 10^13",
        ))
        .examples([68_000])
);

constraint!(
    /// How many guests a room type sleeps.
    Capacity,
    integer(1, i64::from(MAX_CAPACITY))
        .description(Some("Most guests the type sleeps, 1 to 64"))
        .examples([2])
);

constraint!(
    /// A number of nights of a fee.
    FeeNights,
    integer(0, i64::from(MAX_FEE_NIGHTS))
        .description(Some("The price of the stay's first `n` nights, 0 to 730"))
        .examples([1])
);

constraint!(
    /// A percentage of a fee.
    FeePercent,
    integer(0, 100)
        .description(Some("This percentage of the total, 0 to 100"))
        .examples([100])
);

constraint!(
    /// A day of the week.
    Weekday,
    string()
        .description(Some("A day of the week"))
        .enum_values(Some(Weekdays::NAMES))
        .examples(["fri"])
);

constraint!(
    /// The `If-Match` request header.
    IfMatch,
    string()
        .description(Some(
            "The reservation version the client saw, as its `ETag` gave it (`\"3\"`; `3` and \
             `W/\"3\"` are accepted too); `*`, or no header, makes no check. Several tags \
             (other than with `*`) are 400",
        ))
        .pattern(Some(if_match_pattern()))
        .examples(["\"3\""])
);

constraint!(
    /// The `Last-Event-ID` request header.
    LastEventId,
    string()
        .description(Some("An event id (a journal sequence number)"))
        .pattern(Some(last_event_id_pattern()))
        .examples(["42"])
);

constraint!(
    /// The body of an action call (cancel, check-in, check-out): `{}` or nothing.
    EmptyObject,
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some("An empty JSON object (or no body at all)"))
        .max_properties(Some(0))
        .additional_properties(Some(
            utoipa::openapi::schema::AdditionalProperties::FreeForm(false)
        ))
);

constraint!(
    /// A webhook's URL.
    WebhookUrl,
    string()
        .description(Some(
            "Where a webhook POSTs: `https://…`, or `http://` to a loopback host (localhost, \
             127.0.0.0/8, [::1]); plain http elsewhere and private addresses only with \
             `[webhooks] allow_private`. Visible ASCII, no credentials, no fragment, at most \
             2048 bytes",
        ))
        .pattern(Some(crate::webhooks::policy::URL_PATTERN))
        .min_length(Some(8))
        .max_length(Some(crate::webhooks::policy::MAX_URL_BYTES))
        .examples(["https://hooks.example.com/innkeep"])
);

constraint!(
    /// A hotel a webhook sends the events of.
    WebhookHotel,
    string()
        .description(Some("A hotel code, or `*` for every hotel"))
        .pattern(Some(crate::webhooks::HOTEL_ENTRY_PATTERN))
        .min_length(Some(1))
        .max_length(Some(MAX_CODE_LEN))
        .examples(["DEMO"])
);

constraint!(
    /// An event type a webhook sends.
    WebhookEventType,
    string()
        .description(Some(
            "An event type of the event stream that carries an id, or `*` for all",
        ))
        .enum_values(Some(
            crate::routes::events::EVENT_TYPES
                .iter()
                .copied()
                .chain(["*"])
        ))
        .examples(["reservation.created"])
);

constraint!(
    /// A webhook's HMAC key.
    WebhookSecret,
    string()
        .description(Some(
            "The HMAC-SHA256 key of `Innkeep-Signature`: 16 to 256 visible ASCII characters",
        ))
        .pattern(Some(crate::webhooks::SECRET_PATTERN))
        .min_length(Some(crate::webhooks::MIN_SECRET_BYTES))
        .max_length(Some(crate::webhooks::MAX_SECRET_BYTES))
        .examples(["whsec-3f9a1c0e5b7d2468"])
);

constraint!(
    /// An event id (a journal sequence number) to start from.
    EventId,
    integer(1, i64::MAX)
        .description(Some("An event id: a journal sequence number, from 1"))
        .examples([42])
);

#[cfg(test)]
#[path = "constraint_tests.rs"]
mod constraint_tests;
