//! Multi-room bookings: one request, one room for each of its lines, one payment.
//!
//! A booking is not a second record beside its reservations: each reservation it made
//! carries its id ([`Reservation::booking`]), and what the booking shows (status, total,
//! payment, version) is derived from them here. So a booking needs no state of its own to
//! keep consistent: its reservations change (one by one, or all together in one
//! [`crate::Event::BookingChanged`]) and the booking follows.

use jiff::civil::Date;
use jiff::Timestamp;

use crate::error::{DomainError, ValidationError};
use crate::ids::{BookingId, HotelId, OutTradeNo, RatePlanCode, RoomTypeCode};
use crate::money::Money;
use crate::reservation::{BookInput, BookRequest, Guest, PaymentStatus, Reservation, Status};

/// Most rooms one booking takes: a family or a small group. Larger groups are a contract
/// with the hotel, not a web booking; the limit also bounds the rooms one change locks.
pub const MAX_ROOMS: usize = 20;

/// A multi-room booking as asked for: one stay, one lead guest, one plan, and a line per
/// room.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct GroupInput {
    /// The hotel.
    pub hotel_id: HotelId,
    /// First night, for every room.
    pub arrival: Date,
    /// Leaving day, for every room.
    pub departure: Date,
    /// The lead guest: the contact of every room that names none of its own.
    pub guest: Guest,
    /// One line per room, 1..=[`MAX_ROOMS`].
    pub rooms: Vec<GroupRoom>,
    /// The rate plan of every room; `None` is the built-in `BAR`.
    pub rate_plan: Option<RatePlanCode>,
    /// Who books ([`BookInput::created_by`]).
    pub created_by: Option<String>,
}

/// One room of a multi-room booking.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct GroupRoom {
    /// Its type.
    pub room_type: RoomTypeCode,
    /// Guests in it.
    pub guests: u16,
    /// Who stays in it, when not the lead guest.
    pub guest: Option<Guest>,
}

impl GroupInput {
    /// Each room as a booking of its own, in the order listed, for the catalog to
    /// validate and price exactly as it does a single booking. Refuses an empty list or
    /// more than [`MAX_ROOMS`] rooms.
    pub fn lines(&self) -> Result<Vec<BookInput>, DomainError> {
        if self.rooms.is_empty() || self.rooms.len() > MAX_ROOMS {
            return Err(
                ValidationError::new("rooms", format!("must list 1 to {MAX_ROOMS} rooms")).into(),
            );
        }
        Ok(self
            .rooms
            .iter()
            .map(|line| BookInput {
                hotel_id: self.hotel_id.clone(),
                room_type: line.room_type.clone(),
                arrival: self.arrival,
                departure: self.departure,
                guests: line.guests,
                guest: line.guest.clone().unwrap_or_else(|| self.guest.clone()),
                room: None,
                rate_plan: self.rate_plan.clone(),
                created_by: self.created_by.clone(),
            })
            .collect())
    }
}

/// The fingerprint of a multi-room booking for its `Idempotency-Key`: its lines' own
/// ([`BookRequest::fingerprint_by`]) in order, folded with a tag no single booking has, so
/// a key used for a single booking is not taken for a group one, or the reverse.
pub fn fingerprint(lines: &[BookRequest], created_by: Option<&str>) -> u64 {
    // FNV-1a over the lines' fingerprints, after a tag.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in b"multi-room booking".iter().copied().chain(
        lines
            .iter()
            .flat_map(|l| l.fingerprint_by(created_by).to_le_bytes()),
    ) {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Where a booking stands, from its reservations.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BookingStatus {
    /// Every reservation still live is in this status (or, when none is live, every one).
    All(Status),
    /// The live reservations are in different statuses (one checked in, one still to
    /// arrive): see each reservation.
    Mixed,
}

impl BookingStatus {
    /// The wire name: the reservations' common status, or `mixed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            BookingStatus::All(s) => s.as_str(),
            BookingStatus::Mixed => "mixed",
        }
    }
}

/// What a booking shows, derived from its reservations (see the module docs).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BookingSummary {
    /// Which booking.
    pub id: BookingId,
    /// Where it stands.
    pub status: BookingStatus,
    /// Sum of its reservations' totals.
    pub total: Money,
    /// The booking's one payment: its reference, what it asks (the sum of each
    /// reservation's share), and where it stands.
    pub out_trade_no: OutTradeNo,
    /// What the payment asks.
    pub amount: Money,
    /// Where the payment stands: `pending` until paid, `succeeded` once paid (a
    /// reservation's later refund shows on the reservation), `refunded` once every
    /// reservation's share was given back, `failed` after a failed attempt.
    pub payment_status: PaymentStatus,
    /// When its unpaid hold lapses (the same for every reservation of it).
    pub hold_expires_at: Timestamp,
    /// Sum of its reservations' versions: it grows with every change to any of them, so
    /// it serves as the booking's ETag.
    pub version: u64,
}

impl BookingSummary {
    /// Sums up booking `id` from its reservations (at least one, all of the booking, of
    /// one currency).
    pub fn of(id: BookingId, reservations: &[&Reservation]) -> Option<Self> {
        let first = reservations.first()?;
        let currency = first.total.currency;
        let sum = |f: fn(&Reservation) -> i64| Money {
            amount_minor: reservations.iter().map(|r| f(r)).sum(),
            currency,
        };
        let live: Vec<Status> = reservations
            .iter()
            .map(|r| r.status)
            .filter(|s| !matches!(s, Status::Cancelled | Status::Expired | Status::NoShow))
            .collect();
        let statuses = if live.is_empty() {
            reservations.iter().map(|r| r.status).collect()
        } else {
            live
        };
        let status = if statuses.iter().all(|s| *s == statuses[0]) {
            BookingStatus::All(statuses[0])
        } else {
            BookingStatus::Mixed
        };
        let payments: Vec<PaymentStatus> = reservations.iter().map(|r| r.payment.status).collect();
        let payment_status = if payments.iter().all(|s| *s == PaymentStatus::Refunded) {
            PaymentStatus::Refunded
        } else if payments
            .iter()
            .any(|s| matches!(s, PaymentStatus::Succeeded | PaymentStatus::Refunded))
        {
            PaymentStatus::Succeeded
        } else if payments.contains(&PaymentStatus::Failed) {
            PaymentStatus::Failed
        } else {
            PaymentStatus::Pending
        };
        Some(Self {
            id,
            status,
            total: sum(|r| r.total.amount_minor),
            out_trade_no: id.out_trade_no(),
            amount: sum(|r| r.payment.amount.amount_minor),
            payment_status,
            hold_expires_at: first.hold_expires_at,
            version: reservations.iter().map(|r| r.version).sum(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    const PINNED: u64 = 16_496_990_877_559_758_908;

    fn line(room_type: &str) -> BookRequest {
        BookRequest {
            hotel_id: HotelId::parse("H").unwrap(),
            room_type: RoomTypeCode::parse(room_type).unwrap(),
            stay: crate::time::Stay::between(
                jiff::civil::date(2030, 1, 1),
                jiff::civil::date(2030, 1, 3),
            )
            .unwrap(),
            guests: 2,
            guest: Guest::parse("Ada", "+1 555 0100", "ada@example.com").unwrap(),
            room: None,
            rate_plan: RatePlanCode::bar(),
        }
    }

    #[test]
    fn a_group_fingerprint_differs_from_its_lines_and_follows_them() {
        let one = [line("KING")];
        let two = [line("KING"), line("TWIN")];
        assert_ne!(fingerprint(&one, None), one[0].fingerprint_by(None));
        assert_ne!(fingerprint(&one, None), fingerprint(&two, None));
        assert_ne!(fingerprint(&two, None), fingerprint(&two, Some("channel")));
        let swapped = [line("TWIN"), line("KING")];
        assert_ne!(fingerprint(&two, None), fingerprint(&swapped, None));
        assert_eq!(fingerprint(&two, None), fingerprint(&two.clone(), None));
    }

    /// The fingerprint is stored with an idempotency key (journal, snapshots), so it must
    /// not change between releases: pinned here.
    #[test]
    fn the_fingerprint_is_stable() {
        let two = [line("KING"), line("TWIN")];
        assert_eq!(fingerprint(&two, Some("channel")), PINNED);
    }

    /// Fingerprints of many different groups (types, order, guests, stays) all differ.
    #[test]
    fn fingerprints_of_different_groups_differ() {
        let mut seen = std::collections::HashSet::new();
        let types = ["KING", "TWIN", "SUITE"];
        let mut count = 0;
        for a in types {
            for b in types {
                for guests in 1..=3u16 {
                    for nights in 1..=4i8 {
                        let mut one = line(a);
                        one.guests = guests;
                        one.stay = crate::time::Stay::between(
                            jiff::civil::date(2030, 1, 1),
                            jiff::civil::date(2030, 1, 1 + nights),
                        )
                        .unwrap();
                        let lines = [one, line(b)];
                        seen.insert(fingerprint(&lines, None));
                        count += 1;
                    }
                }
            }
        }
        assert_eq!(seen.len(), count);
    }

    #[test]
    fn lines_take_the_lead_guest_unless_a_room_names_its_own() {
        let lead = Guest::parse("Lead", "+1 555 0101", "lead@example.com").unwrap();
        let other = Guest::parse("Other", "+1 555 0102", "other@example.com").unwrap();
        let mut input = GroupInput {
            hotel_id: HotelId::parse("H").unwrap(),
            arrival: jiff::civil::date(2030, 1, 1),
            departure: jiff::civil::date(2030, 1, 3),
            guest: lead.clone(),
            rooms: vec![
                GroupRoom {
                    room_type: RoomTypeCode::parse("KING").unwrap(),
                    guests: 2,
                    guest: None,
                },
                GroupRoom {
                    room_type: RoomTypeCode::parse("TWIN").unwrap(),
                    guests: 1,
                    guest: Some(other.clone()),
                },
            ],
            rate_plan: None,
            created_by: Some("ch".into()),
        };
        let lines = input.lines().unwrap();
        assert_eq!(lines[0].guest, lead);
        assert_eq!(lines[1].guest, other);
        assert_eq!(lines[1].guests, 1);
        assert!(lines.iter().all(|l| l.created_by.as_deref() == Some("ch")));
        input.rooms.clear();
        assert_eq!(input.lines().unwrap_err().code(), "invalid_request");
        input.rooms = vec![input_room(); MAX_ROOMS + 1];
        assert_eq!(input.lines().unwrap_err().code(), "invalid_request");
        input.rooms.pop();
        assert_eq!(input.lines().unwrap().len(), MAX_ROOMS);
    }

    fn input_room() -> GroupRoom {
        GroupRoom {
            room_type: RoomTypeCode::parse("KING").unwrap(),
            guests: 1,
            guest: None,
        }
    }

    fn member(line: &BookRequest, n: u128, total_minor: i64) -> Reservation {
        let mut r = crate::state::new_reservation(
            line,
            crate::ids::RoomNumber::parse(&format!("{n}")).unwrap(),
            Money {
                amount_minor: total_minor,
                currency: Currency::parse("EUR").unwrap(),
            },
            crate::ids::ReservationId(uuid::Uuid::from_u128(n)),
            Timestamp::from_second(1_900_000_000).unwrap(),
            jiff::SignedDuration::from_mins(15),
        );
        r.payment.out_trade_no = BookingId(uuid::Uuid::from_u128(99)).out_trade_no();
        r
    }

    #[test]
    fn a_summary_follows_its_reservations() {
        let id = BookingId(uuid::Uuid::from_u128(99));
        let (mut a, mut b, mut c) = (
            member(&line("KING"), 1, 10_000),
            member(&line("KING"), 2, 12_000),
            member(&line("TWIN"), 3, 8_000),
        );
        let s = BookingSummary::of(id, &[&a, &b, &c]).unwrap();
        assert_eq!(s.status, BookingStatus::All(Status::PendingPayment));
        assert_eq!(s.status.as_str(), "pending_payment");
        assert_eq!(
            (s.total.amount_minor, s.amount.amount_minor),
            (30_000, 30_000)
        );
        assert_eq!(s.payment_status, PaymentStatus::Pending);
        assert_eq!(s.version, 3);
        assert_eq!(s.out_trade_no, id.out_trade_no());
        assert_eq!(s.hold_expires_at, a.hold_expires_at);
        // One cancelled (its share refunded), the others paid: the booking is confirmed,
        // its payment succeeded; a later change to any one shows in the version.
        for r in [&mut a, &mut b, &mut c] {
            r.status = Status::Confirmed;
            r.payment.status = PaymentStatus::Succeeded;
            r.version += 1;
        }
        c.status = Status::Cancelled;
        c.payment.status = PaymentStatus::Refunded;
        c.version += 1;
        let s = BookingSummary::of(id, &[&a, &b, &c]).unwrap();
        assert_eq!(s.status, BookingStatus::All(Status::Confirmed));
        assert_eq!(s.payment_status, PaymentStatus::Succeeded);
        assert_eq!(s.version, 7);
        // One guest in, one still to arrive: mixed.
        a.status = Status::CheckedIn;
        let s = BookingSummary::of(id, &[&a, &b, &c]).unwrap();
        assert_eq!(s.status, BookingStatus::Mixed);
        assert_eq!(s.status.as_str(), "mixed");
        // Every one cancelled and refunded.
        for r in [&mut a, &mut b] {
            r.status = Status::Cancelled;
            r.payment.status = PaymentStatus::Refunded;
        }
        let s = BookingSummary::of(id, &[&a, &b, &c]).unwrap();
        assert_eq!(s.status, BookingStatus::All(Status::Cancelled));
        assert_eq!(s.payment_status, PaymentStatus::Refunded);
        // A failed attempt on an unpaid booking; and no reservations, no booking.
        for r in [&mut a, &mut b, &mut c] {
            r.status = Status::PendingPayment;
            r.payment.status = PaymentStatus::Pending;
        }
        b.payment.status = PaymentStatus::Failed;
        let s = BookingSummary::of(id, &[&a, &b, &c]).unwrap();
        assert_eq!(s.payment_status, PaymentStatus::Failed);
        assert!(BookingSummary::of(id, &[]).is_none());
    }
}
