//! Between the protobuf messages of `innkeep.v1` and the engine's types, in one place.
//!
//! Inputs are validated with the rules the HTTP API applies, by calling the same code:
//! the engine's `parse` constructors (codes, guest contact, reservation ids, idempotency
//! keys), the HTTP layer's date and money parsers ([`parse_date`], [`MoneyInput`]) and its
//! availability default ([`guests_or_one`]). Nothing here decides a domain rule.

use innkeep_actors::{Availability, BookInput};
use innkeep_engine::selling::RatePlan;
use innkeep_engine::{
    Currency, Guest, Hotel, HotelId, IdempotencyKey, Money, RatePlanCode, Reservation,
    ReservationId, RoomNumber, RoomType, RoomTypeCode, ValidationError,
};
use innkeep_http::routes::availability::guests_or_one;
use innkeep_http::wire::{
    parse_date, CancellationInput, FeeRule, MoneyInput, MoneyObject, PutRatePlanRequest,
};
use innkeep_http::ApiError;

use crate::pb;

/// A number the proto carries as `uint32` that the engine keeps as `u16` (guests,
/// capacity): out of range is a bad field, as a JSON number too big for it is in HTTP.
fn small(field: &'static str, value: u32) -> Result<u16, ApiError> {
    u16::try_from(value).map_err(|_| ValidationError::new(field, "is too large").into())
}

/// A money field in the hotel's `currency`: required; an empty currency means the
/// hotel's, another currency is refused (the HTTP API's rule, by its own code).
pub fn money_in(
    field: &'static str,
    money: Option<&pb::Money>,
    currency: Currency,
) -> Result<i64, ApiError> {
    let money = money.ok_or_else(|| ValidationError::new(field, "is required"))?;
    let input = if money.currency.is_empty() {
        MoneyInput::Minor(money.amount_minor)
    } else {
        MoneyInput::Money(MoneyObject {
            amount: money.amount_minor,
            currency: money.currency.clone(),
        })
    };
    input.minor_in(field, currency)
}

/// A booking request as the engine's input, and its idempotency key. `created_by` is
/// the authenticated caller's key id, as in HTTP.
pub fn book_input(
    req: &pb::BookRequest,
    created_by: Option<String>,
) -> Result<(BookInput, Option<IdempotencyKey>), ApiError> {
    let guest = req
        .guest
        .as_ref()
        .ok_or_else(|| ValidationError::new("guest", "is required"))?;
    let input = BookInput {
        hotel_id: HotelId::parse(&req.hotel_id)?,
        room_type: RoomTypeCode::parse(&req.room_type)?,
        arrival: parse_date("arrival", &req.arrival)?,
        departure: parse_date("departure", &req.departure)?,
        guests: small("guests", req.guests)?,
        guest: Guest::parse(&guest.name, &guest.phone, &guest.email)?,
        room: req.room.as_deref().map(RoomNumber::parse).transpose()?,
        created_by,
        rate_plan: req
            .rate_plan
            .as_deref()
            .map(RatePlanCode::parse)
            .transpose()?,
    };
    let key = req
        .idempotency_key
        .as_deref()
        .map(IdempotencyKey::parse)
        .transpose()?;
    Ok((input, key))
}

/// A restriction change, judged by the HTTP API's own conversion (an empty list is "all",
/// as HTTP's absent one).
pub fn restriction_change(
    req: &pb::SetRestrictionsRequest,
) -> Result<innkeep_actors::RestrictionChange, ApiError> {
    let list = |v: &[String]| (!v.is_empty()).then(|| v.to_vec());
    let set = req.set.unwrap_or_default();
    let nights = |n: Option<pb::LengthOfStay>| n.map(|n| n.nights);
    let body = innkeep_http::wire::PutRestrictionsRequest {
        from: req.from.clone(),
        to: req.to.clone(),
        room_types: list(&req.room_types),
        rate_plans: list(&req.rate_plans),
        weekdays: list(&req.weekdays),
        set: innkeep_http::wire::RestrictionSet {
            closed: set.closed.map(Some),
            closed_to_arrival: set.closed_to_arrival.map(Some),
            closed_to_departure: set.closed_to_departure.map(Some),
            min_stay_arrival: nights(set.min_stay_arrival),
            max_stay_arrival: nights(set.max_stay_arrival),
            min_stay_through: nights(set.min_stay_through),
        },
    };
    innkeep_http::routes::selling::restriction_change(&HotelId::parse(&req.hotel_id)?, &body)
}

/// What a modification asks for, each field judged as HTTP judges it.
pub fn modify_input(req: &pb::ModifyRequest) -> Result<innkeep_engine::ModifyInput, ApiError> {
    Ok(innkeep_engine::ModifyInput {
        arrival: req
            .arrival
            .as_deref()
            .map(|d| parse_date("arrival", d))
            .transpose()?,
        departure: req
            .departure
            .as_deref()
            .map(|d| parse_date("departure", d))
            .transpose()?,
        room_type: req
            .room_type
            .as_deref()
            .map(RoomTypeCode::parse)
            .transpose()?,
        guests: req.guests.map(|g| small("guests", g)).transpose()?,
        guest: req
            .guest
            .as_ref()
            .map(|g| Guest::parse(&g.name, &g.phone, &g.email))
            .transpose()?,
        rate_plan: req
            .rate_plan
            .as_deref()
            .map(RatePlanCode::parse)
            .transpose()?,
    })
}

/// A fee rule as the HTTP API's, whose rules judge it; unset is a missing field.
fn fee_rule(field: &'static str, fee: Option<&pb::FeeRule>) -> Result<FeeRule, ApiError> {
    match fee.and_then(|f| f.rule) {
        Some(pb::fee_rule::Rule::Nights(n)) => Ok(FeeRule::Nights(n)),
        Some(pb::fee_rule::Rule::Percent(p)) => Ok(FeeRule::Percent(p)),
        None => Err(ValidationError::new(field, "is required: nights or percent").into()),
    }
}

/// A rate plan, validated by the HTTP API's own conversion (the engine's rules).
pub fn rate_plan(req: &pb::PutRatePlanRequest) -> Result<(RatePlanCode, RatePlan), ApiError> {
    let code = RatePlanCode::parse(&req.code)?;
    let cancellation = req
        .cancellation
        .as_ref()
        .ok_or_else(|| ValidationError::new("cancellation", "is required"))?;
    let body = PutRatePlanRequest {
        name: req.name.clone(),
        room_types: req.room_types.clone(),
        adjust_percent: req.adjust_percent,
        cancellation: CancellationInput {
            free_until_hours: cancellation.free_until_hours,
            fee: fee_rule("cancellation.fee", cancellation.fee.as_ref())?,
        },
        no_show_fee: fee_rule("no_show_fee", req.no_show_fee.as_ref())?,
        min_advance_days: req.min_advance_days,
        max_advance_days: req.max_advance_days,
    };
    Ok((code, body.to_plan()?))
}

/// The validated inputs of an availability query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvailabilityQuery {
    /// The hotel.
    pub hotel_id: HotelId,
    /// First night.
    pub arrival: innkeep_engine::jiff::civil::Date,
    /// Day of leaving.
    pub departure: innkeep_engine::jiff::civil::Date,
    /// Guests (at least 1).
    pub guests: u16,
}

/// Validates an availability request.
pub fn availability_query(req: &pb::GetAvailabilityRequest) -> Result<AvailabilityQuery, ApiError> {
    Ok(AvailabilityQuery {
        hotel_id: HotelId::parse(&req.hotel_id)?,
        arrival: parse_date("arrival", &req.arrival)?,
        departure: parse_date("departure", &req.departure)?,
        guests: guests_or_one(req.guests.map(|g| small("guests", g)).transpose()?)?,
    })
}

/// A room type's capacity.
pub fn capacity(value: u32) -> Result<u16, ApiError> {
    small("capacity", value)
}

/// A reservation id.
pub fn reservation_id(raw: &str) -> Result<ReservationId, ApiError> {
    Ok(ReservationId::parse(raw)?)
}

/// Money as sent.
pub fn money(m: &Money) -> pb::Money {
    pb::Money {
        amount_minor: m.amount_minor,
        currency: m.currency.as_str().to_owned(),
    }
}

/// A room type of `hotel` with the number of its rooms.
pub fn room_type(hotel: &Hotel, code: &RoomTypeCode, rt: &RoomType) -> pb::RoomType {
    let rooms = hotel.rooms.values().filter(|t| *t == code).count();
    pb::RoomType {
        code: code.as_str().to_owned(),
        name: rt.name.clone(),
        capacity: u32::from(rt.capacity),
        base_rate: Some(money(&Money {
            amount_minor: rt.base_rate_minor,
            currency: hotel.currency,
        })),
        rooms: u32::try_from(rooms).unwrap_or(u32::MAX),
    }
}

/// A hotel with its room types.
pub fn hotel(h: &Hotel) -> pb::Hotel {
    pb::Hotel {
        hotel_id: h.id.as_str().to_owned(),
        name: h.name.clone(),
        time_zone: h.time_zone.name().to_owned(),
        currency: h.currency.as_str().to_owned(),
        room_types: h
            .room_types
            .iter()
            .map(|(code, rt)| room_type(h, code, rt))
            .collect(),
    }
}

/// An availability answer.
pub fn availability(a: &Availability) -> pb::Availability {
    pb::Availability {
        hotel_id: a.hotel_id.as_str().to_owned(),
        arrival: a.stay.arrival().to_string(),
        departure: a.stay.departure().to_string(),
        nights: a.stay.nights(),
        room_types: a
            .room_types
            .iter()
            .map(|t| pb::TypeAvailability {
                room_type: t.room_type.as_str().to_owned(),
                available: u32::try_from(t.available).unwrap_or(u32::MAX),
                nightly_rates: t
                    .nightly
                    .iter()
                    .map(|(date, amount_minor)| pb::NightlyRate {
                        date: date.to_string(),
                        amount_minor: *amount_minor,
                    })
                    .collect(),
                total: Some(money(&t.total)),
            })
            .collect(),
    }
}

/// A reservation with its payment and history.
pub fn reservation(r: &Reservation) -> pb::Reservation {
    pb::Reservation {
        id: r.id.to_string(),
        hotel_id: r.hotel_id.as_str().to_owned(),
        room_type: r.room_type.as_str().to_owned(),
        room: r.room.as_str().to_owned(),
        arrival: r.stay.arrival().to_string(),
        departure: r.stay.departure().to_string(),
        guests: u32::from(r.guests),
        guest: Some(pb::Guest {
            name: r.guest.name().to_owned(),
            phone: r.guest.phone().to_owned(),
            email: r.guest.email().to_owned(),
        }),
        status: r.status.as_str().to_owned(),
        hold_expires_at: r.hold_expires_at.to_string(),
        total: Some(money(&r.total)),
        version: r.version,
        created_at: r.created_at.to_string(),
        payment: Some(pb::Payment {
            out_trade_no: r.payment.out_trade_no.to_string(),
            amount: Some(money(&r.payment.amount)),
            status: r.payment.status.as_str().to_owned(),
            trade_no: r.payment.trade_no.clone(),
            fee_minor: r.payment.fee_minor,
            refund_minor: r.payment.refund_minor,
            refund_owed: r.payment.refund_owed,
        }),
        history: r
            .history
            .iter()
            .map(|h| pb::HistoryEntry {
                at: h.at.to_string(),
                from: h.from.map(|s| s.as_str().to_owned()),
                to: h.to.as_str().to_owned(),
                version: h.version,
            })
            .collect(),
        rate_plan: r.terms.rate_plan.as_str().to_owned(),
        pinned: r.pinned,
        balance_due: r.balance_charge().map(|(_, due)| money(&due)),
        booking_id: r.booking().map(|b| b.to_string()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use innkeep_engine::jiff::{civil::date, SignedDuration, Timestamp};
    use innkeep_engine::{BookRequest, Stay, StayLimits};

    fn cny() -> Currency {
        Currency::parse("CNY").unwrap()
    }

    fn request() -> pb::BookRequest {
        pb::BookRequest {
            hotel_id: "H1".into(),
            room_type: "STD".into(),
            arrival: "2030-01-01".into(),
            departure: "2030-01-03".into(),
            guests: 2,
            guest: Some(pb::Guest {
                name: "Ann".into(),
                phone: "+86 138 0000 0000".into(),
                email: "ann@example.com".into(),
            }),
            room: Some("101".into()),
            rate_plan: Some("NRF".into()),
            idempotency_key: Some("k-1".into()),
        }
    }

    fn field_of(e: ApiError) -> String {
        match e {
            ApiError::Engine(innkeep_actors::EngineError::Domain(
                innkeep_engine::DomainError::Invalid(v),
            )) => v.field.to_string(),
            ApiError::InvalidRequest(text) => text,
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn a_booking_request_becomes_the_engines_input() {
        let (input, key) = book_input(&request(), Some("abc".into())).unwrap();
        assert_eq!(input.hotel_id.as_str(), "H1");
        assert_eq!(input.room_type.as_str(), "STD");
        assert_eq!(
            (input.arrival, input.departure),
            (date(2030, 1, 1), date(2030, 1, 3))
        );
        assert_eq!(input.guests, 2);
        assert_eq!(input.guest.email(), "ann@example.com");
        assert_eq!(input.room.unwrap().as_str(), "101");
        assert_eq!(input.rate_plan.unwrap().as_str(), "NRF");
        assert_eq!(input.created_by.as_deref(), Some("abc"));
        assert_eq!(key, Some(IdempotencyKey::parse("k-1").unwrap()));
        let bare = pb::BookRequest {
            room: None,
            rate_plan: None,
            idempotency_key: None,
            ..request()
        };
        let (input, key) = book_input(&bare, None).unwrap();
        assert_eq!((input.room, input.rate_plan, key), (None, None, None));
    }

    #[test]
    fn every_booking_field_is_validated_by_the_engines_rules() {
        let cases: Vec<(pb::BookRequest, &str)> = vec![
            (
                pb::BookRequest {
                    hotel_id: "bad id".into(),
                    ..request()
                },
                "hotel_id",
            ),
            (
                pb::BookRequest {
                    room_type: String::new(),
                    ..request()
                },
                "room_type",
            ),
            (
                pb::BookRequest {
                    arrival: "2030-1-1".into(),
                    ..request()
                },
                "arrival",
            ),
            (
                pb::BookRequest {
                    departure: "tomorrow".into(),
                    ..request()
                },
                "departure",
            ),
            (
                pb::BookRequest {
                    guests: 70_000,
                    ..request()
                },
                "guests",
            ),
            (
                pb::BookRequest {
                    guest: None,
                    ..request()
                },
                "guest",
            ),
            (
                pb::BookRequest {
                    room: Some("#1".into()),
                    ..request()
                },
                "room",
            ),
            (
                pb::BookRequest {
                    rate_plan: Some("x y".into()),
                    ..request()
                },
                "rate_plan",
            ),
            (
                pb::BookRequest {
                    idempotency_key: Some("k".repeat(300)),
                    ..request()
                },
                "idempotency",
            ),
        ];
        for (req, field) in cases {
            let e = book_input(&req, None).expect_err(field);
            assert!(field_of(e.clone()).contains(field), "{field}: {e}");
            assert_eq!(e.code(), "invalid_request", "{field}");
        }
        let mut bad_mail = request();
        bad_mail.guest.as_mut().unwrap().email = "nobody".into();
        assert_eq!(
            book_input(&bad_mail, None).unwrap_err().code(),
            "invalid_request"
        );
    }

    fn plan() -> pb::PutRatePlanRequest {
        let nights = |n| pb::FeeRule {
            rule: Some(pb::fee_rule::Rule::Nights(n)),
        };
        pb::PutRatePlanRequest {
            hotel_id: "H1".into(),
            code: "NRF".into(),
            name: "Non-refundable".into(),
            room_types: vec!["STD".into()],
            adjust_percent: -10,
            cancellation: Some(pb::Cancellation {
                free_until_hours: 0,
                fee: Some(pb::FeeRule {
                    rule: Some(pb::fee_rule::Rule::Percent(100)),
                }),
            }),
            no_show_fee: Some(nights(1)),
            min_advance_days: Some(2),
            max_advance_days: None,
        }
    }

    #[test]
    fn a_rate_plan_is_judged_by_the_http_apis_rules() {
        let (code, p) = rate_plan(&plan()).unwrap();
        assert_eq!(code.as_str(), "NRF");
        assert_eq!(p.name(), "Non-refundable");
        assert_eq!(p.adjust_percent(), -10);
        assert_eq!(p.min_advance_days(), Some(2));
        assert!(p.sells(&RoomTypeCode::parse("STD").unwrap()));
        let cases: Vec<(pb::PutRatePlanRequest, &str)> = vec![
            (
                pb::PutRatePlanRequest {
                    code: "a b".into(),
                    ..plan()
                },
                "rate_plan",
            ),
            (
                pb::PutRatePlanRequest {
                    room_types: vec![],
                    ..plan()
                },
                "room_types",
            ),
            (
                pb::PutRatePlanRequest {
                    adjust_percent: 101,
                    ..plan()
                },
                "adjust_percent",
            ),
            (
                pb::PutRatePlanRequest {
                    cancellation: None,
                    ..plan()
                },
                "cancellation",
            ),
            (
                pb::PutRatePlanRequest {
                    no_show_fee: None,
                    ..plan()
                },
                "no_show_fee",
            ),
            (
                pb::PutRatePlanRequest {
                    no_show_fee: Some(pb::FeeRule {
                        rule: Some(pb::fee_rule::Rule::Percent(150)),
                    }),
                    ..plan()
                },
                "no_show_fee",
            ),
        ];
        for (req, field) in cases {
            let e = rate_plan(&req).expect_err(field);
            assert_eq!(e.code(), "invalid_request", "{field}: {e}");
            assert!(field_of(e.clone()).contains(field), "{field}: {e}");
        }
    }

    #[test]
    fn money_is_in_the_hotels_currency() {
        let m = |amount_minor, currency: &str| pb::Money {
            amount_minor,
            currency: currency.into(),
        };
        assert_eq!(money_in("amount", Some(&m(500, "")), cny()).unwrap(), 500);
        assert_eq!(
            money_in("amount", Some(&m(500, "CNY")), cny()).unwrap(),
            500
        );
        let e = money_in("amount", Some(&m(500, "EUR")), cny()).unwrap_err();
        assert_eq!(e.code(), "invalid_request");
        assert!(e.to_string().contains("amount"), "{e}");
        let e = money_in("base_rate", None, cny()).unwrap_err();
        assert!(field_of(e).contains("base_rate"));
    }

    #[test]
    fn availability_defaults_to_one_guest_and_refuses_none() {
        let req = pb::GetAvailabilityRequest {
            hotel_id: "H1".into(),
            arrival: "2030-01-01".into(),
            departure: "2030-01-02".into(),
            guests: None,
        };
        assert_eq!(availability_query(&req).unwrap().guests, 1);
        let three = pb::GetAvailabilityRequest {
            guests: Some(3),
            ..req.clone()
        };
        assert_eq!(availability_query(&three).unwrap().guests, 3);
        for guests in [0, 1 << 20] {
            let bad = pb::GetAvailabilityRequest {
                guests: Some(guests),
                ..req.clone()
            };
            let e = availability_query(&bad).unwrap_err();
            assert!(field_of(e).contains("guests"), "{guests}");
        }
        assert!(capacity(64).is_ok());
        assert!(capacity(u32::from(u16::MAX) + 1).is_err());
        assert_eq!(
            reservation_id("nope").unwrap_err().code(),
            "invalid_request"
        );
    }

    #[test]
    fn a_reservation_is_shown_whole() {
        let stay = Stay::parse(
            date(2030, 1, 1),
            date(2030, 1, 3),
            date(2029, 12, 1),
            StayLimits::default(),
        )
        .unwrap();
        let req = BookRequest {
            hotel_id: HotelId::parse("H1").unwrap(),
            room_type: RoomTypeCode::parse("STD").unwrap(),
            stay,
            guests: 2,
            guest: Guest::parse("Ann", "+86 138 0000 0000", "ann@example.com").unwrap(),
            room: None,
            rate_plan: RatePlanCode::bar(),
        };
        let total = Money {
            amount_minor: 20_000,
            currency: cny(),
        };
        let id = ReservationId::parse("01890a5d-ac96-774b-bcce-b302099a8057").unwrap();
        let now = Timestamp::from_second(1_900_000_000).unwrap();
        let r = innkeep_engine::state::new_reservation(
            &req,
            RoomNumber::parse("101").unwrap(),
            total,
            id,
            now,
            SignedDuration::from_mins(15),
        );
        let p = reservation(&r);
        assert_eq!(p.id, "01890a5d-ac96-774b-bcce-b302099a8057");
        assert_eq!((p.hotel_id.as_str(), p.room_type.as_str()), ("H1", "STD"));
        assert_eq!((p.room.as_str(), p.guests), ("101", 2));
        assert_eq!(
            (p.arrival.as_str(), p.departure.as_str()),
            ("2030-01-01", "2030-01-03")
        );
        assert_eq!(p.status, "pending_payment");
        assert_eq!(p.version, 1);
        assert_eq!(p.created_at, now.to_string());
        let hold_ends = now.checked_add(SignedDuration::from_mins(15)).unwrap();
        assert_eq!(p.hold_expires_at, hold_ends.to_string());
        assert_eq!(
            p.total,
            Some(pb::Money {
                amount_minor: 20_000,
                currency: "CNY".into()
            })
        );
        let pay = p.payment.unwrap();
        assert_eq!(pay.status, "pending");
        assert_eq!(pay.amount.unwrap().amount_minor, 20_000);
        assert_eq!(pay.out_trade_no, r.payment.out_trade_no.to_string());
        assert_eq!(p.rate_plan, "BAR");
        assert_eq!(p.history.len(), 1);
        assert_eq!(p.history[0].from, None);
        assert_eq!(p.history[0].to, "pending_payment");
        assert_eq!(p.guest.unwrap().phone, "+86 138 0000 0000");
        assert_eq!(p.balance_due, None);
        // A difference due after a re-pricing is shown as the view shows it.
        let mut owing = r.clone();
        owing.adjustment = Some(innkeep_engine::Adjustment {
            first_charge_minor: 20_000,
            held_minor: 20_000,
            balance_due_minor: 5_000,
            seq: 1,
        });
        assert_eq!(
            reservation(&owing).balance_due,
            Some(pb::Money {
                amount_minor: 5_000,
                currency: "CNY".into()
            })
        );
    }
}
