//! Recovery's reading of journaled events: a reservation's creation decoded straight into
//! the compact record its room keeps ([`Kept`]), without the [`Reservation`] the event
//! holds. Recovery decodes millions of creations; building each full reservation (a dozen
//! allocations) only for its room to keep a compact copy and drop it was most of the
//! decoding's time. Every other event is decoded as the [`Event`] it is.
//!
//! [`CreatedRecord`] reads the bytes [`crate::reservation::created_codec`] writes (after
//! the event's variant index, [`RESERVATION_CREATED_INDEX`]), field by field, borrowing
//! what it can; [`Creation`] is what the room then takes. A creation replayed this way
//! leaves a room exactly as [`State::apply`] of the event does, and
//! [`Replayed::into_event`] gives the event back (both tested).

use jiff::civil::Date;
use jiff::Timestamp;
use serde::{Deserialize, Deserializer};

use crate::event::{Event, IdempotencyRecord};
use crate::ids::{HotelId, OutTradeNo, ReservationId, RoomKey, RoomNumber, RoomTypeCode};
use crate::ledger::{Kept, KeptParts};
use crate::money::Money;
use crate::reservation::{
    Guest, HistoryEntry, PaymentHistoryEntry, PaymentStatus, RoomMove, Status, MAX_HISTORY,
};
use crate::selling::Terms;
use crate::state::State;
use crate::time::Stay;

/// The variant index of [`Event::ReservationCreated`] in the journal's encoding (bincode
/// writes an enum's variant index first, as a varint: one byte below 251).
pub const RESERVATION_CREATED_INDEX: u8 = 4;

/// A journaled event as recovery replays it.
#[derive(Debug)]
pub enum Replayed {
    /// An [`Event::ReservationCreated`], in its room's form.
    Created(Creation),
    /// Any other event, as it is.
    Other(Event),
}

/// A reservation's creation as its room will keep it.
#[derive(Debug)]
pub struct Creation {
    /// The reservation's id.
    id: ReservationId,
    /// The room's hotel.
    hotel_id: HotelId,
    /// The room's number, inline: replay finds the room by it, and a shared text for
    /// each of thousands of rooms would cost a lookup per event.
    room: RoomText,
    /// The type it was booked as (a room of another type keeps it, see
    /// [`Kept::from_parts`]; the record is built for a room of this one).
    room_type: RoomTypeCode,
    /// The record; taken by the room ([`State::apply_replayed`]), `None` afterwards.
    kept: Option<Kept>,
    /// The first night it holds in the room.
    first_night: Date,
    /// The day it leaves.
    departure: Date,
    /// The key it was created under, if any.
    idempotency: Option<IdempotencyRecord>,
}

impl Creation {
    /// The new reservation's id.
    pub fn id(&self) -> ReservationId {
        self.id
    }

    /// The room that keeps it.
    pub fn room(&self) -> RoomKey {
        RoomKey {
            hotel_id: self.hotel_id.clone(),
            number: self.room.number(),
        }
    }
}

impl Replayed {
    /// The event as the journal holds it (what the event feed's window shows); `None` for
    /// a creation whose room already took its record.
    pub fn into_event(self) -> Option<Event> {
        match self {
            Replayed::Other(event) => Some(event),
            Replayed::Created(c) => {
                let key = RoomKey {
                    hotel_id: c.hotel_id,
                    number: c.room.number(),
                };
                let reservation = c.kept?.to_reservation(&key, &c.room_type);
                Some(Event::ReservationCreated {
                    reservation: std::sync::Arc::new(reservation),
                    idempotency: c.idempotency,
                })
            }
        }
    }
}

impl State {
    /// Ends a replay: every room gives back the spare capacity its records grew by (see
    /// `ledger::Growth::Double`).
    pub fn finish_replay(&mut self) {
        for room in self.rooms.values_mut() {
            room.ledger.fit();
        }
    }

    /// [`State::apply_to_rooms`] of a replayed event. A creation's record moves into its
    /// room (leaving `replayed` with the codes only, for the decoding thread to free).
    pub fn apply_replayed(&mut self, replayed: &mut Replayed) {
        let c = match replayed {
            Replayed::Other(event) => return self.apply_to_rooms(event),
            Replayed::Created(c) => c,
        };
        let Some(mut kept) = c.kept.take() else {
            return;
        };
        if let Some(record) = &c.idempotency {
            self.idempotency.insert(
                (c.hotel_id.clone(), record.key.clone()),
                crate::state::IdempotencyEntry {
                    fingerprint: record.fingerprint,
                    reservation_id: kept.id(),
                    created_at: kept.created_at(),
                },
            );
        }
        let key = (&c.hotel_id, c.room.as_str());
        if let Some(room) = self.rooms.get_mut(&key as &dyn crate::ids::RoomKeyParts) {
            if room.room_type != c.room_type {
                // Kept in a room of another type: the record says the type it was booked as
                // (rare; built again the one way that covers it).
                let r = kept.to_reservation(&room.key, &c.room_type);
                kept = Kept::new(&r, &room.room_type);
            }
            room.keep_replayed(kept, c.first_night, c.departure);
        }
    }
}

/// A room number as [`Creation`] keeps it: inline when short (nearly always), else shared.
#[derive(Debug)]
enum RoomText {
    /// Its length and bytes.
    Short(u8, [u8; SHORT_ROOM_BYTES]),
    /// A longer one.
    Long(RoomNumber),
}

/// The longest room number [`RoomText`] keeps inline.
const SHORT_ROOM_BYTES: usize = 22;

impl RoomText {
    fn new(text: &str) -> Self {
        let mut bytes = [0; SHORT_ROOM_BYTES];
        match (u8::try_from(text.len()), bytes.get_mut(..text.len())) {
            (Ok(len), Some(inline)) => {
                inline.copy_from_slice(text.as_bytes());
                RoomText::Short(len, bytes)
            }
            _ => RoomText::Long(RoomNumber::decoded(text)),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Copied from a `str`, so always text.
            RoomText::Short(len, bytes) => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            RoomText::Long(number) => number.as_str(),
        }
    }

    fn number(&self) -> RoomNumber {
        match self {
            RoomText::Short(..) => RoomNumber::decoded(self.as_str()),
            RoomText::Long(number) => number.clone(),
        }
    }
}

/// A journaled [`Event::ReservationCreated`]'s fields (after its variant index), read
/// without building the reservation.
#[derive(Deserialize, Debug)]
pub struct CreatedRecord<'a> {
    /// The reservation, as [`crate::reservation::created_codec`] writes it.
    #[serde(borrow)]
    reservation: CreatedIn<'a>,
    /// The key it was created under.
    idempotency: Option<IdempotencyRecord>,
}

impl From<CreatedRecord<'_>> for Creation {
    fn from(record: CreatedRecord<'_>) -> Self {
        let r = record.reservation;
        let first_night = r
            .moves
            .last()
            .map_or(r.stay.arrival(), |m| m.first_night.max(r.stay.arrival()));
        let kept = Kept::from_parts(
            &KeptParts {
                id: r.id,
                room_type: &r.room_type,
                stay: r.stay,
                guests: r.guests,
                guest: &r.guest,
                total: r.total,
                status: r.status,
                version: r.version,
                created_at: r.created_at,
                hold_expires_at: r.hold_expires_at,
                payment_status: r.payment.status,
                trade_no: r.payment.trade_no,
                refund_owed: r.payment.refund_owed,
                payment_history: r.payment.history.as_slice(),
                fee_minor: r.payment.fee_minor,
                refund_minor: r.payment.refund_minor,
                booking: {
                    // As `Reservation::booking` derives it.
                    let paid_under = r.payment.out_trade_no.reservation_id();
                    (paid_under != r.id).then_some(crate::ids::BookingId(paid_under.0))
                },
                history: r.history.as_slice(),
                created_by: r.created_by,
                moves: &r.moves,
                modifications: &[],
                terms: &r.terms,
                pinned: r.pinned,
                adjustment: None,
            },
            &r.room_type,
        );
        Creation {
            id: r.id,
            hotel_id: r.hotel_id,
            room: RoomText::new(r.room),
            room_type: r.room_type,
            kept: Some(kept),
            first_night,
            departure: r.stay.departure(),
            idempotency: record.idempotency,
        }
    }
}

/// [`crate::reservation::created_codec`]'s fields, in its order, borrowing the texts that
/// the record keeps only when they are present.
#[derive(Deserialize, Debug)]
#[serde(rename = "Reservation")]
struct CreatedIn<'a> {
    id: ReservationId,
    hotel_id: HotelId,
    room_type: RoomTypeCode,
    /// Borrowed: kept inline ([`RoomText`]).
    room: &'a str,
    stay: Stay,
    guests: u16,
    guest: Guest,
    total: Money,
    status: Status,
    version: u64,
    #[serde(with = "crate::codec::timestamp")]
    created_at: Timestamp,
    #[serde(with = "crate::codec::timestamp")]
    hold_expires_at: Timestamp,
    #[serde(borrow)]
    payment: PaymentIn<'a>,
    history: Entries<HistoryEntry>,
    #[serde(borrow)]
    created_by: Option<&'a str>,
    moves: Vec<RoomMove>,
    terms: Terms,
    #[serde(with = "crate::codec::pinned")]
    pinned: bool,
}

/// [`crate::reservation::Payment`]'s fields, in its order.
#[derive(Deserialize, Debug)]
#[serde(rename = "Payment")]
struct PaymentIn<'a> {
    out_trade_no: OutTradeNo,
    /// Implied by the total (or a booking's share of its charge): not kept.
    #[allow(dead_code)]
    amount: Money,
    status: PaymentStatus,
    #[serde(borrow)]
    trade_no: Option<&'a str>,
    refund_owed: bool,
    history: Entries<PaymentHistoryEntry>,
    fee_minor: i64,
    refund_minor: i64,
}

/// A history as a sequence: one entry (a new reservation's, nearly always) without an
/// allocation, or any number of them.
#[derive(Debug)]
enum Entries<T> {
    One([T; 1]),
    Many(Vec<T>),
}

impl<T> Entries<T> {
    fn as_slice(&self) -> &[T] {
        match self {
            Entries::One(one) => one,
            Entries::Many(many) => many,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Entries<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = Entries<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a history")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let Some(first) = seq.next_element()? else {
                    return Ok(Entries::Many(Vec::new()));
                };
                let Some(second) = seq.next_element()? else {
                    return Ok(Entries::One([first]));
                };
                // A history is bounded (`MAX_HISTORY`); a length beyond it is not trusted
                // for the allocation.
                let hint = seq.size_hint().unwrap_or(0).min(MAX_HISTORY);
                let mut all = Vec::with_capacity(hint + 2);
                all.extend([first, second]);
                while let Some(next) = seq.next_element()? {
                    all.push(next);
                }
                Ok(Entries::Many(all))
            }
        }
        d.deserialize_seq(Visit(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ids::{BookingId, IdempotencyKey, RatePlanCode};
    use crate::money::Currency;
    use crate::reservation::{BookRequest, PaymentEventKind, Reservation};
    use crate::room::RoomState;

    /// What a journaled creation may say beyond the plain one.
    #[derive(Debug, Clone)]
    struct Variant {
        created_by: bool,
        pinned: bool,
        moved_in: bool,
        of_booking: bool,
        other_plan: bool,
        paid: bool,
        changed: bool,
        idempotency: bool,
        room_of_another_type: bool,
        long_room_number: bool,
        nights: i8,
    }

    impl Variant {
        /// A creation of `nights` nights with nothing beyond the plain one.
        fn plain(nights: i8) -> Self {
            Self {
                created_by: false,
                pinned: false,
                moved_in: false,
                of_booking: false,
                other_plan: false,
                paid: false,
                changed: false,
                idempotency: false,
                room_of_another_type: false,
                long_room_number: false,
                nights,
            }
        }
    }

    fn variants() -> impl Strategy<Value = Variant> {
        (
            (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
            (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
            (any::<bool>(), any::<bool>()),
            1i8..5,
        )
            .prop_map(|((a, b, c, d), (e, f, g, h), (i, j), nights)| Variant {
                created_by: a,
                pinned: b,
                moved_in: c,
                of_booking: d,
                other_plan: e,
                paid: f,
                changed: g,
                idempotency: h,
                room_of_another_type: i,
                long_room_number: j,
                nights,
            })
    }

    /// The room `v` names: one whose number is kept inline, or one too long for that.
    fn room_number(v: &Variant) -> RoomNumber {
        let number = if v.long_room_number {
            "WING-EAST-FLOOR-12-ROOM-1208"
        } else {
            "101"
        };
        RoomNumber::parse(number).unwrap()
    }

    /// The creation event `v` describes, and the type of the room that keeps it.
    fn creation(v: &Variant) -> (Event, RoomTypeCode) {
        let day = |d: i8| jiff::civil::date(2030, 1, d);
        let booked = RoomTypeCode::parse("KING").unwrap();
        let req = BookRequest {
            hotel_id: HotelId::parse("H1").unwrap(),
            room_type: booked.clone(),
            stay: Stay::between(day(3), day(3 + v.nights)).unwrap(),
            guests: 2,
            guest: Guest::parse("Li Lei", "+86 138-0000-0000", "li@example.com").unwrap(),
            room: None,
            rate_plan: RatePlanCode::bar(),
        };
        let total = Money {
            amount_minor: 12_345,
            currency: Currency::parse("CNY").unwrap(),
        };
        let at = Timestamp::new(1_900_000_000, 123).unwrap();
        let id = ReservationId(uuid::Uuid::from_u128(7));
        let mut r: Reservation = crate::state::new_reservation(
            &req,
            room_number(v),
            total,
            id,
            at,
            jiff::SignedDuration::from_mins(15),
        );
        r.created_by = v.created_by.then(|| "key-9".to_owned());
        r.pinned = v.pinned;
        if v.moved_in {
            r.moves.push(RoomMove {
                at,
                from_room: RoomNumber::parse("102").unwrap(),
                to_room: r.room.clone(),
                first_night: day(4),
            });
        }
        if v.of_booking {
            r.payment.out_trade_no = BookingId(uuid::Uuid::from_u128(99)).out_trade_no();
        }
        if v.other_plan {
            r.terms.rate_plan = RatePlanCode::parse("NONREF").unwrap();
            r.terms.late_cancel_fee_minor = 100;
        }
        if v.paid {
            r.payment.status = PaymentStatus::Succeeded;
            r.payment.trade_no = Some("T-1".into());
            r.payment.history.push(PaymentHistoryEntry {
                at,
                kind: PaymentEventKind::Succeeded,
                status: PaymentStatus::Succeeded,
                trade_no: Some("T-1".into()),
            });
        }
        if v.changed {
            r.status = Status::Confirmed;
            r.version = 2;
            r.history.push(HistoryEntry {
                at,
                from: Some(Status::PendingPayment),
                to: Status::Confirmed,
                version: 2,
            });
        }
        let room_type = if v.room_of_another_type {
            RoomTypeCode::parse("TWIN").unwrap()
        } else {
            booked
        };
        let event = Event::ReservationCreated {
            reservation: std::sync::Arc::new(r),
            idempotency: v.idempotency.then(|| IdempotencyRecord {
                key: IdempotencyKey::parse("k-1").unwrap(),
                fingerprint: 42,
            }),
        };
        (event, room_type)
    }

    /// The event as the journal encodes it, read as recovery reads a creation.
    fn replayed(event: &Event) -> Replayed {
        let cfg = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(event, cfg).unwrap();
        assert_eq!(bytes[0], RESERVATION_CREATED_INDEX);
        let (record, used): (CreatedRecord<'_>, usize) =
            bincode::serde::borrow_decode_from_slice(&bytes[1..], cfg).unwrap();
        assert_eq!(used, bytes.len() - 1, "the whole record is read");
        Replayed::Created(record.into())
    }

    fn state_with_room(room_type: &RoomTypeCode, number: RoomNumber) -> State {
        let key = RoomKey {
            hotel_id: HotelId::parse("H1").unwrap(),
            number,
        };
        let mut state = State::default();
        state
            .rooms
            .insert(key.clone(), RoomState::new(key, room_type.clone()));
        state
    }

    /// A replay grows each room's records by doubling; its end gives the spare back.
    #[test]
    fn the_end_of_a_replay_gives_back_the_spare_capacity() {
        let plain = Variant::plain(1);
        let (event, room_type) = creation(&plain);
        let mut state = state_with_room(&room_type, room_number(&plain));
        state.apply_replayed(&mut replayed(&event));
        let room = state.rooms.values().next().unwrap();
        assert!(
            room.ledger.spare() > 0,
            "a first record grows room for four"
        );
        state.finish_replay();
        let room = state.rooms.values().next().unwrap();
        assert_eq!(room.ledger.spare(), 0);
        assert_eq!(room.ledger.iter().count(), 1);
    }

    proptest! {
        /// A creation replayed from its bytes leaves the room and the keys as applying
        /// the event does, and gives the event back unchanged.
        #[test]
        fn a_replayed_creation_is_its_event(v in variants()) {
            let (event, room_type) = creation(&v);
            prop_assert_eq!(replayed(&event).into_event(), Some(event.clone()));
            if let (Replayed::Created(c), Event::ReservationCreated { reservation, .. }) =
                (replayed(&event), &event)
            {
                prop_assert_eq!(c.id(), reservation.id);
                let room = c.room();
                prop_assert_eq!(room.number, room_number(&v));
                prop_assert_eq!(room.hotel_id.as_str(), "H1");
            }

            let mut applied = state_with_room(&room_type, room_number(&v));
            applied.apply(&event);
            let mut replay = state_with_room(&room_type, room_number(&v));
            let mut r = replayed(&event);
            replay.apply_replayed(&mut r);
            prop_assert_eq!(&replay.rooms, &applied.rooms);
            prop_assert_eq!(&replay.idempotency, &applied.idempotency);
            // The record moved into the room; only the codes are left to free.
            prop_assert_eq!(r.into_event(), None);
        }
    }

    /// A history is a sequence: none, one entry (kept without an allocation) or more, and
    /// anything else is refused as not a history.
    #[test]
    fn histories_read_as_sequences() {
        let entry = |version| HistoryEntry {
            at: Timestamp::new(1_900_000_000, 0).unwrap(),
            from: None,
            to: Status::PendingPayment,
            version,
        };
        let json = |n: u64| serde_json::to_string(&(1..=n).map(entry).collect::<Vec<_>>()).unwrap();
        for n in 0..4 {
            let read: Entries<HistoryEntry> = serde_json::from_str(&json(n)).unwrap();
            assert_eq!(read.as_slice(), (1..=n).map(entry).collect::<Vec<_>>());
            assert_eq!(matches!(read, Entries::One(_)), n == 1);
        }
        let refused = serde_json::from_str::<Entries<HistoryEntry>>("7")
            .err()
            .unwrap();
        assert!(refused.to_string().contains("a history"), "{refused}");
    }

    /// Any other event replays as itself.
    #[test]
    fn other_events_replay_as_they_are() {
        let v = Variant::plain(2);
        let (created, room_type) = creation(&v);
        let mut state = state_with_room(&room_type, room_number(&v));
        state.apply(&created);
        let key = state.rooms.keys().next().unwrap().clone();
        let event = Event::HousekeepingSet {
            room: key,
            status: crate::room::Housekeeping::Dirty,
            at: Timestamp::new(1_900_000_100, 0).unwrap(),
        };
        let mut expected = state.clone();
        expected.apply(&event);
        state.apply_replayed(&mut Replayed::Other(event.clone()));
        assert_eq!(state.rooms, expected.rooms);
    }
}
