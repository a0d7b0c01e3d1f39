//! Older encodings still read, so a data dir written by the previous release starts.
//!
//! - Journal segment format 3 encoded a reservation without its selling terms and its
//!   payment without fee and refund amounts ([`EventV3`], [`ReservationV3`]); format 4
//!   has them. Reservations from before rate plans were sold under the built-in plan's
//!   terms, and their refunds (owed or done) were always the whole total.
//! - Snapshot format 5 stored hotels without rate plans and restrictions ([`CatalogV5`])
//!   and reservations without selling terms ([`RoomStateV5`]); format 6 has them.
//!
//! - Journal segment format 4 is today's encoding without
//!   [`Event::ReservationModified`] (format 5 added it; a creation record is unchanged), so
//!   it decodes as today's. Snapshot format 6 stored moved reservations without their
//!   modifications ([`RoomStateV6`]); format 7 has them.
//!
//! - Snapshot format 7 stored reservations without [`Reservation::adjustment`]
//!   ([`RoomStateV7`]): none was re-priced after its first charge then; format 8 has it.
//!   The journal is unchanged (a creation record never holds one; the payment changes
//!   that settle a difference are new variants at the end of their enums).
//!
//! - Journal segment format 5 encoded a modification without [`Modification::settling`]
//!   ([`ReservationModifiedV5`]): then an unpaid hold's charge followed its new total and
//!   a paid total never changed ([`Settling::ChargeFollowsTotal`]). Every other event of
//!   format 5 is today's encoding.
//!
//! Older formats (snapshot 4) are refused with a clear start-up error: start the
//! previous release on such a data dir once, and it rewrites them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use jiff::civil::Date;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, Hotel, RoomType};
use crate::event::{Change, Event, IdempotencyRecord, Modification, Settling};
use crate::ids::{HotelId, ReservationId, RoomKey, RoomNumber, RoomTypeCode};
use crate::ledger::v5::LedgerV5;
use crate::ledger::v6::LedgerV6;
use crate::ledger::v7::LedgerV7;
use crate::money::{Currency, Money};
use crate::reservation::{
    Guest, HistoryEntry, Payment, PaymentChange, PaymentHistoryEntry, PaymentStatus, Reservation,
    RoomMove, Status,
};
use crate::room::{Housekeeping, OutOfOrder, RoomState};
use crate::selling::Terms;
use crate::time::{HotelTz, Stay};

/// A room as snapshot format 5 stored it.
#[derive(Deserialize, Debug)]
#[serde(rename = "RoomState")]
pub struct RoomStateV5 {
    key: RoomKey,
    room_type: RoomTypeCode,
    housekeeping: Housekeeping,
    occupant: Option<ReservationId>,
    ledger: LedgerV5,
    #[serde(with = "crate::codec::date_map")]
    out_of_order: BTreeMap<Date, OutOfOrder>,
}

impl RoomStateV5 {
    /// The room in today's layout: its reservations sold under the built-in plan.
    pub fn into_room_state(self) -> RoomState {
        let mut room = RoomState::new(self.key, self.room_type);
        room.housekeeping = self.housekeeping;
        room.occupant = self.occupant;
        room.ledger = self.ledger.0;
        room.out_of_order = self.out_of_order;
        room
    }
}

/// A room as snapshot format 6 stored it: its moved reservations without modifications.
#[derive(Deserialize, Debug)]
#[serde(rename = "RoomState")]
pub struct RoomStateV6 {
    key: RoomKey,
    room_type: RoomTypeCode,
    housekeeping: Housekeeping,
    occupant: Option<ReservationId>,
    ledger: LedgerV6,
    #[serde(with = "crate::codec::date_map")]
    out_of_order: BTreeMap<Date, OutOfOrder>,
}

impl RoomStateV6 {
    /// The room in today's layout: no reservation was modified.
    pub fn into_room_state(self) -> RoomState {
        let mut room = RoomState::new(self.key, self.room_type);
        room.housekeeping = self.housekeeping;
        room.occupant = self.occupant;
        room.ledger = self.ledger.0;
        room.out_of_order = self.out_of_order;
        room
    }
}

/// A room as snapshot format 7 stored it: no reservation re-priced after its charge.
#[derive(Deserialize, Debug)]
#[serde(rename = "RoomState")]
pub struct RoomStateV7 {
    key: RoomKey,
    room_type: RoomTypeCode,
    housekeeping: Housekeeping,
    occupant: Option<ReservationId>,
    ledger: LedgerV7,
    #[serde(with = "crate::codec::date_map")]
    out_of_order: BTreeMap<Date, OutOfOrder>,
}

impl RoomStateV7 {
    /// The room in today's layout.
    pub fn into_room_state(self) -> RoomState {
        let mut room = RoomState::new(self.key, self.room_type);
        room.housekeeping = self.housekeeping;
        room.occupant = self.occupant;
        room.ledger = self.ledger.0;
        room.out_of_order = self.out_of_order;
        room
    }
}

/// The variant index of [`Event::ReservationModified`] in the journal's encoding (bincode
/// writes an enum's variant index first, as a varint: one byte below 251).
pub const RESERVATION_MODIFIED_INDEX: u8 = 13;

/// The fields of an [`Event::ReservationModified`] as journal segment format 5 encoded
/// them (after the variant index): its modification without [`Modification::settling`].
#[derive(Deserialize, Debug)]
pub struct ReservationModifiedV5 {
    room: RoomKey,
    id: ReservationId,
    to: Option<RoomNumber>,
    modification: Box<ModificationV5>,
    #[serde(with = "crate::codec::timestamp")]
    at: Timestamp,
}

/// [`Modification`] as journal segment format 5 encoded it.
#[derive(Deserialize, Debug)]
struct ModificationV5 {
    stay: Stay,
    room_type: RoomTypeCode,
    guests: u16,
    guest: Guest,
    total_minor: i64,
    terms: Terms,
    changes: Vec<crate::reservation::FieldChange>,
}

impl ReservationModifiedV5 {
    /// Today's event, settled as it was decided then.
    pub fn into_event(self) -> Event {
        let m = *self.modification;
        Event::ReservationModified {
            room: self.room,
            id: self.id,
            to: self.to,
            modification: Box::new(Modification {
                stay: m.stay,
                room_type: m.room_type,
                guests: m.guests,
                guest: m.guest,
                total_minor: m.total_minor,
                terms: m.terms,
                changes: m.changes,
                settling: Settling::ChargeFollowsTotal,
            }),
            at: self.at,
        }
    }
}

/// A hotel as snapshot format 5 stored it.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename = "Hotel")]
pub struct HotelV5 {
    /// [`Hotel::id`].
    pub id: HotelId,
    /// [`Hotel::name`].
    pub name: String,
    /// [`Hotel::time_zone`].
    pub time_zone: HotelTz,
    /// [`Hotel::currency`].
    pub currency: Currency,
    /// [`Hotel::room_types`].
    pub room_types: BTreeMap<RoomTypeCode, RoomType>,
    /// [`Hotel::rooms`].
    pub rooms: BTreeMap<RoomNumber, RoomTypeCode>,
}

/// The catalog as snapshot format 5 stored it.
#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(rename = "Catalog")]
pub struct CatalogV5 {
    /// Hotels by id.
    pub hotels: HashMap<HotelId, HotelV5>,
}

impl CatalogV5 {
    /// Today's catalog: no hotel has rate plans (besides the built-in one) or restrictions.
    pub fn into_catalog(self) -> Catalog {
        Catalog {
            hotels: self
                .hotels
                .into_iter()
                .map(|(id, h)| {
                    let hotel = Hotel {
                        id: h.id,
                        name: h.name,
                        time_zone: h.time_zone,
                        currency: h.currency,
                        room_types: h.room_types,
                        rooms: h.rooms,
                        rate_plans: BTreeMap::new(),
                        restrictions: Arc::default(),
                    };
                    (id, hotel)
                })
                .collect(),
        }
    }
}

/// A payment as journal segment format 3 encoded it.
#[derive(Clone, Serialize, Deserialize, Debug)]
#[serde(rename = "Payment")]
pub struct PaymentV3 {
    /// [`Payment::out_trade_no`].
    pub out_trade_no: crate::ids::OutTradeNo,
    /// [`Payment::amount`].
    pub amount: Money,
    /// [`Payment::status`].
    pub status: PaymentStatus,
    /// [`Payment::trade_no`].
    pub trade_no: Option<String>,
    /// [`Payment::refund_owed`].
    pub refund_owed: bool,
    /// [`Payment::history`].
    pub history: Vec<PaymentHistoryEntry>,
}

/// A reservation as journal segment format 3 encoded it.
#[derive(Clone, Serialize, Deserialize, Debug)]
#[serde(rename = "Reservation")]
pub struct ReservationV3 {
    /// [`Reservation::id`].
    pub id: ReservationId,
    /// [`Reservation::hotel_id`].
    pub hotel_id: HotelId,
    /// [`Reservation::room_type`].
    pub room_type: RoomTypeCode,
    /// [`Reservation::room`].
    pub room: RoomNumber,
    /// [`Reservation::stay`].
    pub stay: Stay,
    /// [`Reservation::guests`].
    pub guests: u16,
    /// [`Reservation::guest`].
    pub guest: Guest,
    /// [`Reservation::total`].
    pub total: Money,
    /// [`Reservation::status`].
    pub status: Status,
    /// [`Reservation::version`].
    pub version: u64,
    /// [`Reservation::created_at`].
    #[serde(with = "crate::codec::timestamp")]
    pub created_at: Timestamp,
    /// [`Reservation::hold_expires_at`].
    #[serde(with = "crate::codec::timestamp")]
    pub hold_expires_at: Timestamp,
    /// [`Reservation::payment`].
    pub payment: PaymentV3,
    /// [`Reservation::history`].
    pub history: Vec<HistoryEntry>,
    /// [`Reservation::created_by`].
    pub created_by: Option<String>,
    /// [`Reservation::moves`].
    pub moves: Vec<RoomMove>,
}

impl ReservationV3 {
    /// The reservation in today's form: sold under the built-in plan, no fee, and a refund
    /// (owed or done) of the whole total.
    pub fn into_reservation(self) -> Reservation {
        let p = self.payment;
        let refund_minor = if p.refund_owed || p.status == PaymentStatus::Refunded {
            p.amount.amount_minor
        } else {
            0
        };
        Reservation {
            id: self.id,
            hotel_id: self.hotel_id,
            room_type: self.room_type,
            room: self.room,
            stay: self.stay,
            guests: self.guests,
            guest: self.guest,
            total: self.total,
            status: self.status,
            version: self.version,
            created_at: self.created_at,
            hold_expires_at: self.hold_expires_at,
            payment: Payment {
                out_trade_no: p.out_trade_no,
                amount: p.amount,
                status: p.status,
                trade_no: p.trade_no,
                refund_owed: p.refund_owed,
                history: p.history,
                fee_minor: 0,
                refund_minor,
            },
            history: self.history,
            created_by: self.created_by,
            moves: self.moves,
            terms: Terms::bar(),
            modifications: Vec::new(),
            // Format 3 predates pins: nothing was pinned.
            pinned: false,
            adjustment: None,
        }
    }
}

/// A decided change as journal segment format 3 encoded it: no settlement.
#[derive(Clone, Serialize, Deserialize, Debug)]
#[serde(rename = "Change")]
pub struct ChangeV3 {
    /// [`Change::action`].
    pub action: crate::reservation::Action,
    /// [`Change::at`].
    #[serde(with = "crate::codec::timestamp")]
    pub at: Timestamp,
    /// [`Change::release_from`].
    #[serde(with = "crate::codec::opt_date")]
    pub release_from: Option<Date>,
}

/// A payment change as journal segment format 3 encoded it: a refund without its amount.
#[derive(Clone, Serialize, Deserialize, Debug)]
#[serde(rename = "PaymentChange")]
pub enum PaymentChangeV3 {
    Failed { trade_no: String },
    RefundOwed { trade_no: String },
    Refunded,
}

/// An event as journal segment format 3 encoded it: today's first eleven, a creation
/// holding a [`ReservationV3`].
#[derive(Clone, Serialize, Deserialize, Debug)]
#[serde(rename = "Event")]
pub enum EventV3 {
    /// A hotel was created or updated.
    HotelPut {
        /// Which hotel.
        hotel_id: HotelId,
        /// Display name.
        name: String,
        /// Its time zone.
        time_zone: HotelTz,
        /// Its currency.
        currency: Currency,
    },
    /// A room type was created or updated.
    RoomTypePut {
        /// Which hotel.
        hotel_id: HotelId,
        /// Which type.
        code: RoomTypeCode,
        /// Display name.
        name: String,
        /// Most guests.
        capacity: u16,
        /// Nightly base rate, minor units.
        base_rate_minor: i64,
    },
    /// A room was created or given another type.
    RoomPut {
        /// Which hotel.
        hotel_id: HotelId,
        /// Which room.
        number: RoomNumber,
        /// Its type.
        room_type: RoomTypeCode,
    },
    /// A nightly rate override for `[from, to)`.
    RatePut {
        /// Which hotel.
        hotel_id: HotelId,
        /// Which type.
        room_type: RoomTypeCode,
        /// First night.
        #[serde(with = "crate::codec::date")]
        from: Date,
        /// First night not covered.
        #[serde(with = "crate::codec::date")]
        to: Date,
        /// Nightly rate, minor units.
        amount_minor: i64,
    },
    /// A reservation took its room's nights.
    ReservationCreated {
        /// The whole reservation as created (status `pending_payment`, version 1). Shared,
        /// not copied, by the journal, the live event stream and the booking's answer (the
        /// room keeps a compact copy; `serde`'s `rc`: encoded exactly as the reservation).
        reservation: std::sync::Arc<ReservationV3>,
        /// The key it was created under, if any.
        idempotency: Option<IdempotencyRecord>,
    },
    /// A reservation moved in its state machine.
    ReservationChanged {
        /// The room holding it.
        room: RoomKey,
        /// Which reservation.
        id: ReservationId,
        /// The decided change.
        change: ChangeV3,
    },
    /// A reservation's payment changed without moving its state machine (a failed
    /// attempt, a refund owed, a refund done). Journaled by the reservation's room, so
    /// payment changes are serialized with the reservation's own transitions.
    PaymentChanged {
        /// The room holding the reservation.
        room: RoomKey,
        /// Which reservation.
        id: ReservationId,
        /// What changed.
        change: PaymentChangeV3,
        /// When (UTC).
        #[serde(with = "crate::codec::timestamp")]
        at: Timestamp,
    },
    /// A room was taken out of order for `[from, to)`: those nights cannot be sold.
    OutOfOrderSet {
        /// Which room.
        room: RoomKey,
        /// First night out of order.
        #[serde(with = "crate::codec::date")]
        from: Date,
        /// First night back in order.
        #[serde(with = "crate::codec::date")]
        to: Date,
        /// Why, for the staff.
        reason: String,
        /// The hotel-local date it was decided on: ranges that ended before it are dropped.
        #[serde(with = "crate::codec::date")]
        today: Date,
        /// When (UTC).
        #[serde(with = "crate::codec::timestamp")]
        at: Timestamp,
    },
    /// A room's out-of-order range starting at `from` was lifted.
    OutOfOrderCleared {
        /// Which room.
        room: RoomKey,
        /// First night of the range.
        #[serde(with = "crate::codec::date")]
        from: Date,
        /// When (UTC).
        #[serde(with = "crate::codec::timestamp")]
        at: Timestamp,
    },
    /// A reservation moved to another room of the hotel: `to` holds its nights from
    /// `first_night` on, `from` no longer holds any. One event, so a replay applies both
    /// halves or neither.
    ReservationMoved {
        /// Which reservation.
        id: ReservationId,
        /// The room it left.
        from: RoomKey,
        /// The room it went to.
        to: RoomKey,
        /// The new room's type (the reservation's type from now on; the price stays).
        room_type: RoomTypeCode,
        /// The first night the new room holds.
        #[serde(with = "crate::codec::date")]
        first_night: Date,
        /// When (UTC).
        #[serde(with = "crate::codec::timestamp")]
        at: Timestamp,
    },
    /// A room's housekeeping status changed.
    HousekeepingSet {
        /// Which room.
        room: RoomKey,
        /// The new status.
        status: Housekeeping,
        /// When (UTC).
        #[serde(with = "crate::codec::timestamp")]
        at: Timestamp,
    },
}

impl EventV3 {
    /// The event in today's form.
    pub fn into_event(self) -> Event {
        match self {
            EventV3::HotelPut {
                hotel_id,
                name,
                time_zone,
                currency,
            } => Event::HotelPut {
                hotel_id,
                name,
                time_zone,
                currency,
            },
            EventV3::RoomTypePut {
                hotel_id,
                code,
                name,
                capacity,
                base_rate_minor,
            } => Event::RoomTypePut {
                hotel_id,
                code,
                name,
                capacity,
                base_rate_minor,
            },
            EventV3::RoomPut {
                hotel_id,
                number,
                room_type,
            } => Event::RoomPut {
                hotel_id,
                number,
                room_type,
            },
            EventV3::RatePut {
                hotel_id,
                room_type,
                from,
                to,
                amount_minor,
            } => Event::RatePut {
                hotel_id,
                room_type,
                from,
                to,
                amount_minor,
            },
            EventV3::ReservationCreated {
                reservation,
                idempotency,
            } => Event::ReservationCreated {
                reservation: Arc::new(Arc::unwrap_or_clone(reservation).into_reservation()),
                idempotency,
            },
            EventV3::ReservationChanged { room, id, change } => Event::ReservationChanged {
                room,
                id,
                change: Change {
                    action: change.action,
                    at: change.at,
                    release_from: change.release_from,
                    settlement: None,
                },
            },
            EventV3::PaymentChanged {
                room,
                id,
                change,
                at,
            } => Event::PaymentChanged {
                room,
                id,
                change: match change {
                    PaymentChangeV3::Failed { trade_no } => PaymentChange::Failed { trade_no },
                    PaymentChangeV3::RefundOwed { trade_no } => {
                        PaymentChange::RefundOwed { trade_no }
                    }
                    // Refunds were always of the whole amount, which replay recorded as
                    // owed; the amount here is what applying takes from the reservation.
                    PaymentChangeV3::Refunded => PaymentChange::Refunded { amount_minor: 0 },
                },
                at,
            },
            EventV3::OutOfOrderSet {
                room,
                from,
                to,
                reason,
                today,
                at,
            } => Event::OutOfOrderSet {
                room,
                from,
                to,
                reason,
                today,
                at,
            },
            EventV3::OutOfOrderCleared { room, from, at } => {
                Event::OutOfOrderCleared { room, from, at }
            }
            EventV3::ReservationMoved {
                id,
                from,
                to,
                room_type,
                first_night,
                at,
            } => Event::ReservationMoved {
                id,
                from,
                to,
                room_type,
                first_night,
                at,
                pins: false,
            },
            EventV3::HousekeepingSet { room, status, at } => {
                Event::HousekeepingSet { room, status, at }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reservation::PaymentEventKind;

    /// Bytes written by the previous release (`testdata/journal3-snapshot5.gen.rs`, run as
    /// an integration test of the engine at commit b2fc3b4): a hotel's setup, three paid reservations of room 101 (the first cancelled and
    /// refunded, the third a no-show), each event as journal segment format 3 encoded it,
    /// then the room and the catalog as snapshot format 5 encoded them.
    const GOLDEN: &str = include_str!("../testdata/journal3-snapshot5.txt");

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> T {
        let (value, used) =
            bincode::serde::decode_from_slice(bytes, bincode::config::standard()).unwrap();
        assert_eq!(used, bytes.len(), "every byte decodes");
        value
    }

    fn golden(tag: &str) -> Vec<Vec<u8>> {
        GOLDEN
            .lines()
            .filter_map(|l| l.strip_prefix(tag))
            .map(|hex| unhex(hex.trim()))
            .collect()
    }

    /// The previous release's journal replays, through today's `apply`, into exactly the
    /// room and catalog its own snapshot holds (read through the format-5 readers), and
    /// means what it meant then: sold under the built-in plan, a paid cancellation refunded
    /// whole, a no-show keeping the money.
    #[test]
    fn the_previous_release_s_journal_and_snapshot_read_and_agree() {
        let events: Vec<Event> = golden("EVENT ")
            .iter()
            .map(|b| decode::<EventV3>(b).into_event())
            .collect();
        assert_eq!(events.len(), 13);
        let mut catalog = Catalog::default();
        let mut room: Option<RoomState> = None;
        for e in &events {
            catalog.apply(e);
            if let Event::RoomPut {
                hotel_id,
                number,
                room_type,
            } = e
            {
                let key = RoomKey {
                    hotel_id: hotel_id.clone(),
                    number: number.clone(),
                };
                room = Some(RoomState::new(key, room_type.clone()));
            }
            if let Some(room) = room.as_mut() {
                room.apply(e);
            }
        }
        let room = room.expect("a room");
        let stored_room = decode::<RoomStateV5>(&golden("ROOM ")[0]).into_room_state();
        assert_eq!(stored_room, room);
        let stored_catalog = decode::<CatalogV5>(&golden("CATALOG ")[0]).into_catalog();
        assert_eq!(stored_catalog, catalog);

        let id = |n: u128| ReservationId(uuid::Uuid::from_u128(n));
        let cancelled = room.reservation(&id(1)).unwrap();
        assert_eq!(cancelled.status, Status::Cancelled);
        assert_eq!(cancelled.payment.status, PaymentStatus::Refunded);
        assert_eq!(
            (cancelled.payment.fee_minor, cancelled.payment.refund_minor),
            (0, 100_000)
        );
        assert_eq!(cancelled.terms, Terms::bar());
        assert_eq!(cancelled.created_by.as_deref(), Some("key-1"));
        let kinds: Vec<PaymentEventKind> =
            cancelled.payment.history.iter().map(|h| h.kind).collect();
        assert_eq!(
            kinds,
            [
                PaymentEventKind::Created,
                PaymentEventKind::Succeeded,
                PaymentEventKind::CancelledAfterPayment,
                PaymentEventKind::Refunded
            ]
        );
        let confirmed = room.reservation(&id(2)).unwrap();
        assert_eq!(confirmed.status, Status::Confirmed);
        assert_eq!(confirmed.payment.trade_no.as_deref(), Some("T2"));
        let no_show = room.reservation(&id(3)).unwrap();
        assert_eq!(no_show.status, Status::NoShow);
        assert_eq!(no_show.payment.status, PaymentStatus::Succeeded);
        assert!(!no_show.payment.refund_owed);
        assert_eq!(
            (no_show.payment.fee_minor, no_show.payment.refund_minor),
            (0, 0)
        );
        let hotel = catalog.hotels.values().next().unwrap();
        assert!(hotel.rate_plans.is_empty() && hotel.restrictions.is_empty());
        assert_eq!(hotel.room_types.values().next().unwrap().overrides.len(), 1);
    }

    /// Bytes written by the release before modifications (`6210194`, by
    /// `testdata/journal4-snapshot6.gen.rs` run as an integration test of the engine):
    /// two rooms, three reservations (the first paid and moved to 102, the second paid and
    /// cancelled, the third pending), each event as journal segment format 4 encoded it,
    /// then both rooms and the catalog as snapshot format 6 encoded them.
    const GOLDEN_4_6: &str = include_str!("../testdata/journal4-snapshot6.txt");

    /// Bytes written by the release before multi-room bookings (`f84b23e`, by
    /// `testdata/journal6-snapshot8.gen.rs`): two rooms, four reservations (the first
    /// booked with an explicit room, the second paid then cancelled, the third moved by a
    /// rearrangement that made room for the fourth, booked with a key), journal format 6
    /// and snapshot format 8.
    const GOLDEN_6_8: &str = include_str!("../testdata/journal6-snapshot8.txt");

    /// Read as recovery reads them (the events as today's encoding, the rooms as today's
    /// without bookings), the events replay into exactly the rooms the snapshot holds: no reservation
    /// belongs to a booking, pins and the rearrangement are kept, and each payment is the
    /// reservation's own. Read as today's format instead, a room's bytes do not decode.
    #[test]
    fn the_release_before_multi_room_bookings_reads_and_agrees() {
        use crate::codec::{decoding_before, Added};
        let lines = |tag: &str| lines(GOLDEN_6_8, tag);
        let mut state = crate::State::default();
        let events = lines("EVENT ");
        assert_eq!(events.len(), 10);
        for bytes in events {
            let event: Event = decode(&bytes);
            state.apply(&event);
        }
        let stored: Vec<RoomState> = lines("ROOM ")
            .iter()
            .map(|b| decoding_before(Added::Bookings, || decode::<RoomState>(b)))
            .collect();
        let snapshot = state.to_snapshot();
        assert_eq!(stored, snapshot.rooms);
        assert_eq!(decode::<Catalog>(&lines("CATALOG ")[0]), snapshot.catalog);

        let id = |n: u128| ReservationId(uuid::Uuid::from_u128(n));
        let all: Vec<_> = (1..=4)
            .map(|n| state.reservation(&id(n)).unwrap())
            .collect();
        for r in &all {
            assert_eq!(r.booking(), None, "{r:?}");
            assert_eq!(r.payment.out_trade_no, r.id.out_trade_no());
        }
        assert!(all[0].pinned);
        assert_eq!(all[1].status, Status::Cancelled);
        assert!(all[1].payment.refund_owed);
        assert_eq!(
            all[1].refund_reference(),
            all[1].payment.out_trade_no.to_string()
        );
        assert_eq!((all[2].room.as_str(), all[3].room.as_str()), ("101", "102"));
        assert_eq!(state.idempotency.len(), 1);
        let room = lines("ROOM ")
            .into_iter()
            .find(|b| {
                decoding_before(Added::Bookings, || decode::<RoomState>(b))
                    .key
                    .number
                    .as_str()
                    == "101"
            })
            .unwrap();
        let today: Result<(RoomState, usize), _> =
            bincode::serde::decode_from_slice(&room, bincode::config::standard());
        assert!(today.map_or(true, |(_, used)| used != room.len()));
    }

    fn lines(golden: &str, tag: &str) -> Vec<Vec<u8>> {
        golden
            .lines()
            .filter_map(|l| l.strip_prefix(tag))
            .map(|hex| unhex(hex.trim()))
            .collect()
    }

    /// Format 4's events are today's encoding without pins (those without a reservation
    /// re-encode to the very same bytes), and replay into exactly the rooms format 6's
    /// snapshot holds, read through its reader: the moved reservation keeps its move, has
    /// no modifications and is not pinned.
    #[test]
    fn the_release_before_modifications_reads_and_agrees() {
        let lines = |tag: &str| lines(GOLDEN_4_6, tag);
        let cfg = bincode::config::standard();
        let mut state = crate::State::default();
        for bytes in lines("EVENT ") {
            let event: Event = crate::codec::pinned::decoding_unpinned(|| decode(&bytes));
            if !matches!(
                event,
                Event::ReservationCreated { .. } | Event::ReservationMoved { .. }
            ) {
                assert_eq!(
                    bincode::serde::encode_to_vec(&event, cfg).unwrap(),
                    bytes,
                    "{event:?}"
                );
            }
            state.apply(&event);
        }
        assert_eq!(lines("EVENT ").len(), 12);
        let stored: Vec<RoomState> = lines("ROOM ")
            .iter()
            .map(|b| decode::<RoomStateV6>(b).into_room_state())
            .collect();
        let snapshot = state.to_snapshot();
        assert_eq!(stored, snapshot.rooms);
        assert_eq!(decode::<Catalog>(&lines("CATALOG ")[0]), snapshot.catalog);

        let id = |n: u128| ReservationId(uuid::Uuid::from_u128(n));
        let moved = state.reservation(&id(1)).unwrap();
        assert_eq!(moved.room.as_str(), "102");
        assert_eq!(moved.moves.len(), 1);
        assert!(moved.modifications.is_empty());
        assert!(!moved.pinned);
        assert_eq!(moved.status, Status::Confirmed);
        let cancelled = state.reservation(&id(2)).unwrap();
        assert_eq!(cancelled.status, Status::Cancelled);
        assert!(cancelled.payment.refund_owed);
        assert_eq!(cancelled.payment.refund_minor, 100_000);
        let pending = state.reservation(&id(3)).unwrap();
        assert_eq!(
            (pending.status, pending.version),
            (Status::PendingPayment, 1)
        );
    }

    /// One journal record of segment format 5, read as recovery reads it: a modification
    /// through [`ReservationModifiedV5`] (it did not say how it settles money yet), any
    /// other event as today's encoding without pins.
    fn event_v5(bytes: &[u8]) -> Event {
        if bytes[0] == RESERVATION_MODIFIED_INDEX {
            return decode::<ReservationModifiedV5>(&bytes[1..]).into_event();
        }
        crate::codec::pinned::decoding_unpinned(|| decode(bytes))
    }

    /// Bytes written by the release before modifications settled money (`013c15d`, by
    /// `testdata/journal5-snapshot7.gen.rs` run as an integration test of the engine): two
    /// rooms, three reservations (the first paid, then given new contact details; the
    /// second paid and cancelled; the third pending and extended by a night, re-priced),
    /// each event as journal segment format 5 encoded it, then both rooms and the catalog as
    /// snapshot format 7 encoded them.
    const GOLDEN_5_7: &str = include_str!("../testdata/journal5-snapshot7.txt");

    /// Format 5's events are today's encoding but for modifications (read through their
    /// reader: settled as then) and pins, and replay into exactly the rooms format 7's
    /// snapshot holds, read through its reader: no reservation carries an adjustment, and
    /// the hold re-priced then asks its new total of its charge. Events that hold no
    /// reservation (so no pin) re-encode to the very same bytes.
    #[test]
    fn the_release_before_money_modifications_reads_and_agrees() {
        let lines = |tag: &str| lines(GOLDEN_5_7, tag);
        let cfg = bincode::config::standard();
        let mut state = crate::State::default();
        let mut modified = 0;
        for bytes in lines("EVENT ") {
            let event = event_v5(&bytes);
            match &event {
                Event::ReservationModified { .. } => modified += 1,
                Event::ReservationCreated { .. } | Event::ReservationMoved { .. } => {}
                _ => assert_eq!(
                    bincode::serde::encode_to_vec(&event, cfg).unwrap(),
                    bytes,
                    "{event:?}"
                ),
            }
            state.apply(&event);
        }
        assert_eq!((lines("EVENT ").len(), modified), (12, 2));
        let stored: Vec<RoomState> = lines("ROOM ")
            .iter()
            .map(|b| decode::<RoomStateV7>(b).into_room_state())
            .collect();
        let snapshot = state.to_snapshot();
        assert_eq!(stored, snapshot.rooms);
        assert_eq!(decode::<Catalog>(&lines("CATALOG ")[0]), snapshot.catalog);

        let id = |n: u128| ReservationId(uuid::Uuid::from_u128(n));
        let changed = state.reservation(&id(1)).unwrap();
        assert_eq!(changed.guest.name(), "Han Meimei");
        assert_eq!(
            (changed.status, changed.adjustment),
            (Status::Confirmed, None)
        );
        let cancelled = state.reservation(&id(2)).unwrap();
        assert!(cancelled.payment.refund_owed);
        assert_eq!(
            cancelled.refund_reference(),
            cancelled.payment.out_trade_no.to_string()
        );
        let hold = state.reservation(&id(3)).unwrap();
        assert_eq!((hold.adjustment, hold.total.amount_minor), (None, 150_000));
        assert_eq!(hold.payment.amount, hold.total);
    }

    /// Bytes written by the same release (`013c15d`, by
    /// `testdata/journal5-snapshot7-pins.gen.rs`): two rooms, three reservations (the first
    /// booked with an explicit room, the second paid and moved to 102 by the staff, the
    /// third modified in place), journal format 5 and snapshot format 7.
    const GOLDEN_5_7_PINS: &str = include_str!("../testdata/journal5-snapshot7-pins.txt");

    /// Read as recovery reads them, the events replay into exactly the rooms the snapshot
    /// holds, and nothing is pinned — neither the reservation booked with a room nor the
    /// one the staff moved: pins did not exist, and a replay must give what the release's
    /// own snapshot holds. Read as today's format instead, a room's bytes do not decode:
    /// the version decides, not luck.
    #[test]
    fn the_release_before_pins_reads_and_agrees() {
        let lines = |tag: &str| lines(GOLDEN_5_7_PINS, tag);
        let mut state = crate::State::default();
        let events = lines("EVENT ");
        assert_eq!(events.len(), 10);
        for bytes in events {
            state.apply(&event_v5(&bytes));
        }
        let stored: Vec<RoomState> = lines("ROOM ")
            .iter()
            .map(|b| decode::<RoomStateV7>(b).into_room_state())
            .collect();
        let snapshot = state.to_snapshot();
        assert_eq!(stored, snapshot.rooms);
        assert_eq!(decode::<Catalog>(&lines("CATALOG ")[0]), snapshot.catalog);

        let id = |n: u128| ReservationId(uuid::Uuid::from_u128(n));
        let chosen = state.reservation(&id(1)).unwrap();
        assert_eq!(chosen.room.as_str(), "101");
        let moved = state.reservation(&id(2)).unwrap();
        assert_eq!((moved.room.as_str(), moved.moves.len()), ("102", 1));
        let modified = state.reservation(&id(3)).unwrap();
        assert_eq!(modified.modifications.len(), 1);
        assert_eq!(modified.stay.departure(), jiff::civil::date(2030, 6, 13));
        for r in [&chosen, &moved, &modified] {
            assert!(!r.pinned, "{r:?}");
        }
        let room = &lines("ROOM ")[0];
        let today: Result<(RoomState, usize), _> =
            bincode::serde::decode_from_slice(room, bincode::config::standard());
        assert!(today.map_or(true, |(_, used)| used != room.len()));
    }
}
