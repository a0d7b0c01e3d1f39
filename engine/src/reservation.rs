//! Reservations and their state machine.

use std::fmt;
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{DomainError, ValidationError};
use crate::ids::{
    BookingId, HotelId, OutTradeNo, RatePlanCode, ReservationId, RoomNumber, RoomTypeCode,
};
use crate::money::Money;
use crate::selling::Terms;
use crate::time::Stay;

/// Most history entries one reservation keeps. The state machine has at most five
/// transitions, so this only bounds what a future feature could add.
pub const MAX_HISTORY: usize = 32;

/// Where a reservation is in its life.
///
/// ```text
/// pending_payment ──paid──▶ confirmed ──check_in──▶ checked_in ──check_out──▶ checked_out
///       │ ╲                     │ ╲
///   cancel  expire          cancel  no_show
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Debug)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Holding nights until `hold_expires_at`, waiting for payment.
    PendingPayment,
    /// Paid; nights held until the stay.
    Confirmed,
    /// The guest is in the room.
    CheckedIn,
    /// The guest left. Terminal.
    CheckedOut,
    /// Cancelled by the guest or the hotel. Terminal; nights released.
    Cancelled,
    /// The hold ran out unpaid. Terminal; nights released.
    Expired,
    /// The guest never came. Terminal; nights released.
    NoShow,
}

impl Status {
    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::PendingPayment => "pending_payment",
            Status::Confirmed => "confirmed",
            Status::CheckedIn => "checked_in",
            Status::CheckedOut => "checked_out",
            Status::Cancelled => "cancelled",
            Status::Expired => "expired",
            Status::NoShow => "no_show",
        }
    }

    /// Whether the reservation still holds (or uses) room-nights.
    pub fn holds_nights(&self) -> bool {
        matches!(
            self,
            Status::PendingPayment | Status::Confirmed | Status::CheckedIn
        )
    }
}

/// Whether a reservation in `status` keeps the money paid for it: its stay is ahead, under
/// way or done. A refund owed then is of a difference, never of the whole.
pub fn status_keeps_money(status: Status) -> bool {
    matches!(
        status,
        Status::Confirmed | Status::CheckedIn | Status::CheckedOut
    )
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What someone asks to do to a reservation.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub enum Action {
    /// A payment succeeded; carries the provider's trade number.
    Pay {
        /// Provider's reference.
        trade_no: String,
    },
    /// Guest or hotel cancels.
    Cancel,
    /// The unpaid hold ran out.
    Expire,
    /// The guest arrives.
    CheckIn,
    /// The guest leaves.
    CheckOut,
    /// The guest never came.
    NoShow,
}

impl Action {
    /// The verb used in errors and history.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Pay { .. } => "pay",
            Action::Cancel => "cancel",
            Action::Expire => "expire",
            Action::CheckIn => "check_in",
            Action::CheckOut => "check_out",
            Action::NoShow => "no_show",
        }
    }

    /// The state machine: the status this action leads to from `from`, if legal.
    pub fn next_status(&self, from: Status) -> Option<Status> {
        use Status::*;
        match (self, from) {
            (Action::Pay { .. }, PendingPayment) => Some(Confirmed),
            (Action::Cancel, PendingPayment | Confirmed) => Some(Cancelled),
            (Action::Expire, PendingPayment) => Some(Expired),
            (Action::CheckIn, Confirmed) => Some(CheckedIn),
            (Action::CheckOut, CheckedIn) => Some(CheckedOut),
            (Action::NoShow, Confirmed) => Some(NoShow),
            _ => None,
        }
    }
}

/// Guest contact, stored on the reservation (not joined from elsewhere).
///
/// The three fields live in one shared string: a reservation is held by its room actor
/// and the events in flight, and each of those copies shares
/// this one allocation instead of three strings of its own. It encodes exactly like a
/// struct of three strings (`name`, `phone`, `email`), which is what the journal and
/// snapshots have always held.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Guest {
    /// `name`, `phone` and `email`, one after another.
    text: Arc<str>,
    /// Where `phone` starts in `text` (≤ 800: a name is at most 200 characters).
    phone_at: u16,
    /// Where `email` starts in `text` (≤ 832: a phone is at most 32 bytes).
    email_at: u16,
}

impl Guest {
    /// Validates each contact field.
    pub fn parse(name: &str, phone: &str, email: &str) -> Result<Self, ValidationError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "guest.name",
                "must be 1 to 200 printable characters",
            ));
        }
        let digits = phone.bytes().filter(u8::is_ascii_digit).count();
        if !(5..=20).contains(&digits)
            || phone.len() > 32
            || !phone
                .bytes()
                .all(|b| b.is_ascii_digit() || b"+-() ".contains(&b))
        {
            return Err(ValidationError::new(
                "guest.phone",
                "must have 5 to 20 digits and only '+', '-', '(', ')' or spaces besides",
            ));
        }
        let valid_email = email.len() <= 254
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            })
            && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if !valid_email {
            return Err(ValidationError::new(
                "guest.email",
                "must be an e-mail address",
            ));
        }
        Ok(Self::join(name, phone, email))
    }

    /// Full name as given.
    pub fn name(&self) -> &str {
        &self.text[..usize::from(self.phone_at)]
    }

    /// Phone number as given (digits and `+ - ( ) space`).
    pub fn phone(&self) -> &str {
        &self.text[usize::from(self.phone_at)..usize::from(self.email_at)]
    }

    /// E-mail address.
    pub fn email(&self) -> &str {
        &self.text[usize::from(self.email_at)..]
    }

    /// Packs three fields without validating them. Each is bounded by [`Guest::parse`];
    /// a decoded one is checked against the same bounds, so the offsets fit in `u16`.
    fn join(name: &str, phone: &str, email: &str) -> Self {
        let mut text = String::with_capacity(name.len() + phone.len() + email.len());
        text.push_str(name);
        text.push_str(phone);
        text.push_str(email);
        Self {
            text: text.into(),
            phone_at: u16::try_from(name.len()).unwrap_or(u16::MAX),
            email_at: u16::try_from(name.len() + phone.len()).unwrap_or(u16::MAX),
        }
    }
}

impl fmt::Debug for Guest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guest")
            .field("name", &self.name())
            .field("phone", &self.phone())
            .field("email", &self.email())
            .finish()
    }
}

impl Serialize for Guest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Guest", 3)?;
        s.serialize_field("name", self.name())?;
        s.serialize_field("phone", self.phone())?;
        s.serialize_field("email", self.email())?;
        s.end()
    }
}

/// The encoded form of a [`Guest`]: a struct of three strings, borrowed from the input
/// when it allows (replay then allocates only the joined text).
#[derive(Deserialize)]
#[serde(rename = "Guest")]
struct GuestFields<'a> {
    #[serde(borrow)]
    name: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    phone: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    email: std::borrow::Cow<'a, str>,
}

impl<'de> Deserialize<'de> for Guest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let g = GuestFields::deserialize(deserializer)?;
        // Longer than `parse` allows means the bytes were not written by us.
        if g.name.len() > 800 || g.phone.len() > 32 || g.email.len() > 254 {
            return Err(serde::de::Error::custom(
                "guest contact longer than allowed",
            ));
        }
        Ok(Self::join(&g.name, &g.phone, &g.email))
    }
}

/// Where the payment for a reservation stands.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Debug)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Waiting for the provider.
    Pending,
    /// Money captured.
    Succeeded,
    /// The provider reported a failure; the hold stays until it expires.
    Failed,
    /// Money captured and given back.
    Refunded,
}

impl PaymentStatus {
    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Refunded => "refunded",
        }
    }
}

/// The payment record created with each reservation.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct Payment {
    /// Our unique reference, derived from the reservation id.
    pub out_trade_no: OutTradeNo,
    /// What the guest owes: the reservation's total.
    pub amount: Money,
    /// Where it stands.
    pub status: PaymentStatus,
    /// The provider's reference once it reported success.
    pub trade_no: Option<String>,
    /// Money was captured that we must give back (a success that arrived after expiry or
    /// cancellation, or a paid reservation cancelled). `status` stays `succeeded` until the
    /// provider confirms the refund; this flag is the durable refund queue the payment
    /// supervisor rebuilds at start-up.
    pub refund_owed: bool,
    /// Every payment-side change, oldest first (at most [`MAX_HISTORY`]), so an operator
    /// can see how the money moved independently of the reservation's transitions.
    pub history: Vec<PaymentHistoryEntry>,
    /// What the hotel keeps of captured money as a fee (cancellation or no-show, by the
    /// reservation's status), minor units; 0 when none.
    pub fee_minor: i64,
    /// What is given back, minor units: owed while `refund_owed`, done once `status` is
    /// `refunded`; 0 when nothing is.
    pub refund_minor: i64,
}

/// What happened to a payment, in its history.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Debug)]
#[serde(rename_all = "snake_case")]
pub enum PaymentEventKind {
    /// The record was created with its reservation (status pending).
    Created,
    /// The provider captured the money and the reservation took it (confirmed).
    Succeeded,
    /// The provider reported a failed attempt.
    Failed,
    /// The provider captured money the reservation cannot keep; a refund is owed.
    RefundOwed,
    /// A paid reservation was cancelled; a refund is owed.
    CancelledAfterPayment,
    /// The provider confirmed the refund.
    Refunded,
    /// A paid reservation was cancelled late or was a no-show, and its fee keeps all of
    /// the money: nothing is owed back.
    FeeKept,
    /// A paid reservation was a no-show; what its no-show fee leaves is owed back.
    NoShowAfterPayment,
    /// A re-pricing left more to pay than was paid: a charge for the difference was
    /// asked for ([`Adjustment::balance_due_minor`]).
    BalanceDue,
    /// The charge for a difference was paid.
    BalancePaid,
    /// A re-pricing left less to pay than was paid: the difference is owed back.
    DifferenceRefundOwed,
    /// The provider confirmed the refund of a difference; the reservation stays paid.
    DifferenceRefunded,
}

impl PaymentEventKind {
    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            PaymentEventKind::Created => "created",
            PaymentEventKind::Succeeded => "succeeded",
            PaymentEventKind::Failed => "failed",
            PaymentEventKind::RefundOwed => "refund_owed",
            PaymentEventKind::CancelledAfterPayment => "cancelled_after_payment",
            PaymentEventKind::Refunded => "refunded",
            PaymentEventKind::FeeKept => "fee_kept",
            PaymentEventKind::NoShowAfterPayment => "no_show_after_payment",
            PaymentEventKind::BalanceDue => "balance_due",
            PaymentEventKind::BalancePaid => "balance_paid",
            PaymentEventKind::DifferenceRefundOwed => "difference_refund_owed",
            PaymentEventKind::DifferenceRefunded => "difference_refunded",
        }
    }
}

/// One entry of a payment's history.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct PaymentHistoryEntry {
    /// When (UTC).
    #[serde(with = "crate::codec::timestamp")]
    pub at: Timestamp,
    /// What happened.
    pub kind: PaymentEventKind,
    /// The payment status after it.
    pub status: PaymentStatus,
    /// The provider's reference the entry concerns, when it has one.
    pub trade_no: Option<String>,
}

/// What the provider reports about a payment (a callback, or the answer to a query).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub enum PaymentReport {
    /// Money captured under the provider's `trade_no`.
    Succeeded {
        /// Provider's reference.
        trade_no: String,
    },
    /// The attempt failed.
    Failed {
        /// Provider's reference of the failed attempt.
        trade_no: String,
    },
    /// The charge for a difference ([`Adjustment::seq`] `seq`) was paid.
    BalanceSucceeded {
        /// Which difference charge: its reference is [`Reservation::charge_reference`].
        seq: u32,
        /// Provider's reference.
        trade_no: String,
    },
}

/// A decided change to a payment that does not move the reservation's state machine.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub enum PaymentChange {
    /// The provider reported a failed attempt; the hold runs on.
    Failed {
        /// Provider's reference.
        trade_no: String,
    },
    /// Money was captured for a reservation that cannot take it: record it, owe a refund.
    RefundOwed {
        /// Provider's reference of the captured payment.
        trade_no: String,
    },
    /// The provider confirmed the refund of the captured money.
    Refunded {
        /// What it gave back, minor units.
        amount_minor: i64,
    },
    /// The charge for a difference was paid: what it asked is paid from now on.
    BalancePaid {
        /// Which difference charge ([`Adjustment::seq`]).
        seq: u32,
        /// Provider's reference.
        trade_no: String,
    },
}

/// What applying a [`PaymentReport`] came to (the callback's outcome).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PaymentOutcome {
    /// The reservation is confirmed by this payment.
    Confirmed,
    /// Already applied (or superseded); nothing changed.
    Duplicate,
    /// Money captured for a reservation that cannot keep it; a refund is now owed.
    RefundOwed,
    /// A failure was recorded; the hold runs on.
    FailedRecorded,
    /// The charge for a difference was paid; nothing is due any more.
    BalancePaid,
}

impl PaymentOutcome {
    /// A stable label for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            PaymentOutcome::Confirmed => "confirmed",
            PaymentOutcome::Duplicate => "duplicate",
            PaymentOutcome::RefundOwed => "refund_owed",
            PaymentOutcome::FailedRecorded => "failed_recorded",
            PaymentOutcome::BalancePaid => "balance_paid",
        }
    }
}

/// One transition in a reservation's life.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct HistoryEntry {
    /// When it happened (UTC).
    #[serde(with = "crate::codec::timestamp")]
    pub at: Timestamp,
    /// Status before; `None` for creation.
    pub from: Option<Status>,
    /// Status after.
    pub to: Status,
    /// The version the reservation reached with this entry.
    pub version: u64,
}

/// A booking of one room for one stay.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct Reservation {
    /// Server-generated, sortable id.
    pub id: ReservationId,
    /// The hotel.
    pub hotel_id: HotelId,
    /// The booked room type.
    pub room_type: RoomTypeCode,
    /// The assigned room.
    pub room: RoomNumber,
    /// The nights.
    pub stay: Stay,
    /// Number of guests, 1..=capacity of the type.
    pub guests: u16,
    /// Who is coming.
    pub guest: Guest,
    /// Sum of the nightly rates at booking time.
    pub total: Money,
    /// Where it is in the state machine.
    pub status: Status,
    /// +1 on every change; the ETag.
    pub version: u64,
    /// When it was created (UTC).
    #[serde(with = "crate::codec::timestamp")]
    pub created_at: Timestamp,
    /// When an unpaid hold lapses (UTC).
    #[serde(with = "crate::codec::timestamp")]
    pub hold_expires_at: Timestamp,
    /// Its payment record.
    pub payment: Payment,
    /// Every transition, oldest first.
    pub history: Vec<HistoryEntry>,
    /// Who booked it: the identifier of the API key that created it (see
    /// [`BookRequest::fingerprint_by`]), or `None` when the server ran without keys or the
    /// engine was called directly. Kept durably so a channel's access to "the reservations
    /// it created" and its count of open holds survive restarts.
    pub created_by: Option<String>,
    /// Its latest room moves, oldest first (the last [`MAX_MOVES`]). The last one says from
    /// which night the current room holds the stay: a guest moved mid-stay slept the
    /// earlier nights elsewhere.
    pub moves: Vec<RoomMove>,
    /// The rate plan it was sold under, with its policies and their prices for this stay.
    pub terms: Terms,
    /// Its latest modifications, oldest first (the last [`MAX_MODIFICATIONS`]): what each
    /// changed. Empty at creation, so a creation's journal record leaves it out
    /// ([`created_codec`]) and encodes exactly as before modifications existed.
    pub modifications: Vec<Modified>,
    /// Whether it stays in its room when the engine rearranges reservations to make room
    /// for a stay ([`crate::rearrange`]): set when it was booked with an explicit room or
    /// moved by the staff (`POST …/move`), the two ways a person chose its room.
    #[serde(with = "crate::codec::pinned")]
    pub pinned: bool,
    /// The money side of re-pricing it once its first charge existed; `None` until then
    /// (then the first charge asks the total, and what is paid is the total once the
    /// payment succeeded). Not part of a creation's journal record (always `None` then).
    pub adjustment: Option<Adjustment>,
}

/// What re-pricing a reservation after its first charge was made left to settle.
///
/// A charge's amount is fixed once it is made (the provider holds it): a re-priced hold
/// is still paid by its first charge, and whatever the total then differs from what was
/// paid is charged or refunded as a difference, each under a reference of its own
/// ([`Reservation::charge_reference`], [`Reservation::refund_reference`]).
#[derive(Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct Adjustment {
    /// What the first charge (`payment.out_trade_no`) asks, minor units: the total when
    /// it was made (at booking).
    pub first_charge_minor: i64,
    /// Captured and kept, minor units: the first charge and the difference charges paid,
    /// less the differences refunded (owed or done). 0 while the first charge is unpaid.
    pub held_minor: i64,
    /// The unpaid difference charge's amount, minor units; 0 when none is due.
    pub balance_due_minor: i64,
    /// How many difference charges and refunds were decided: the latest one's reference
    /// ends in `-<seq>`.
    pub seq: u32,
}

impl Adjustment {
    /// Settles what paying `held_minor` for a total of `total_minor` leaves: a higher
    /// total is charged (a new difference charge), a lower one refunded (the amount owed
    /// back is returned). Equal leaves nothing to do.
    pub(crate) fn settle(&mut self, total_minor: i64) -> Settle {
        self.balance_due_minor = 0;
        if total_minor > self.held_minor {
            self.seq += 1;
            self.balance_due_minor = total_minor - self.held_minor;
            Settle::Charge
        } else if total_minor < self.held_minor {
            self.seq += 1;
            let refund_minor = self.held_minor - total_minor;
            self.held_minor = total_minor;
            Settle::Refund { refund_minor }
        } else {
            Settle::Nothing
        }
    }
}

/// What [`Adjustment::settle`] came to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Settle {
    /// Nothing to charge or refund.
    Nothing,
    /// A difference charge is due ([`Adjustment::balance_due_minor`]).
    Charge,
    /// This much is owed back.
    Refund {
        /// Minor units.
        refund_minor: i64,
    },
}

/// Modifications one reservation remembers; older ones are dropped (the journal still has
/// them).
pub const MAX_MODIFICATIONS: usize = 16;

/// One modification of a reservation: when, the version it produced, and what changed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct Modified {
    /// When (UTC).
    #[serde(with = "crate::codec::timestamp")]
    pub at: Timestamp,
    /// The version the reservation reached with it.
    pub version: u64,
    /// What changed, in a fixed order (dates, type, room, guests, guest, plan, total).
    pub changes: Vec<FieldChange>,
}

/// One field a modification changed, with the values before and after.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub enum FieldChange {
    /// The first night moved.
    Arrival {
        /// Before.
        #[serde(with = "crate::codec::date")]
        from: jiff::civil::Date,
        /// After.
        #[serde(with = "crate::codec::date")]
        to: jiff::civil::Date,
    },
    /// The leaving day moved.
    Departure {
        /// Before.
        #[serde(with = "crate::codec::date")]
        from: jiff::civil::Date,
        /// After.
        #[serde(with = "crate::codec::date")]
        to: jiff::civil::Date,
    },
    /// Another room type.
    RoomType {
        /// Before.
        from: RoomTypeCode,
        /// After.
        to: RoomTypeCode,
    },
    /// Another room (the stay no longer fitted the old one, or the type changed).
    Room {
        /// Before.
        from: RoomNumber,
        /// After.
        to: RoomNumber,
    },
    /// Another number of guests.
    Guests {
        /// Before.
        from: u16,
        /// After.
        to: u16,
    },
    /// New guest contact details (not repeated here: the reservation shows the current
    /// ones, and the old ones are personal data best not kept twice).
    Guest,
    /// Sold under another rate plan.
    RatePlan {
        /// Before.
        from: RatePlanCode,
        /// After.
        to: RatePlanCode,
    },
    /// Re-priced.
    Total {
        /// Before, minor units.
        from_minor: i64,
        /// After, minor units.
        to_minor: i64,
    },
}

impl FieldChange {
    /// The field's name in the API (`arrival`, `room_type`, ...).
    pub fn field(&self) -> &'static str {
        match self {
            FieldChange::Arrival { .. } => "arrival",
            FieldChange::Departure { .. } => "departure",
            FieldChange::RoomType { .. } => "room_type",
            FieldChange::Room { .. } => "room",
            FieldChange::Guests { .. } => "guests",
            FieldChange::Guest => "guest",
            FieldChange::RatePlan { .. } => "rate_plan",
            FieldChange::Total { .. } => "total",
        }
    }
}

/// What a client asks to change in a reservation; `None` keeps the current value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModifyInput {
    /// A new first night.
    pub arrival: Option<jiff::civil::Date>,
    /// A new leaving day.
    pub departure: Option<jiff::civil::Date>,
    /// Another room type of the hotel.
    pub room_type: Option<RoomTypeCode>,
    /// Another number of guests.
    pub guests: Option<u16>,
    /// New contact details.
    pub guest: Option<Guest>,
    /// Another rate plan.
    pub rate_plan: Option<RatePlanCode>,
}

/// The journal encoding of a reservation at its creation: every field but
/// [`Reservation::modifications`] (always empty then), so creation records read and
/// write exactly as they did before modifications existed.
pub mod created_codec {
    use super::*;
    use serde::{Deserializer, Serializer};

    #[derive(Serialize)]
    #[serde(rename = "Reservation")]
    struct Out<'a> {
        id: &'a ReservationId,
        hotel_id: &'a HotelId,
        room_type: &'a RoomTypeCode,
        room: &'a RoomNumber,
        stay: &'a Stay,
        guests: u16,
        guest: &'a Guest,
        total: &'a Money,
        status: Status,
        version: u64,
        #[serde(with = "crate::codec::timestamp")]
        created_at: Timestamp,
        #[serde(with = "crate::codec::timestamp")]
        hold_expires_at: Timestamp,
        payment: &'a Payment,
        history: &'a [HistoryEntry],
        created_by: &'a Option<String>,
        moves: &'a [RoomMove],
        terms: &'a Terms,
        pinned: bool,
    }

    #[derive(Deserialize)]
    #[serde(rename = "Reservation")]
    struct In {
        id: ReservationId,
        hotel_id: HotelId,
        room_type: RoomTypeCode,
        room: RoomNumber,
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
        payment: Payment,
        history: Vec<HistoryEntry>,
        created_by: Option<String>,
        moves: Vec<RoomMove>,
        terms: Terms,
        #[serde(with = "crate::codec::pinned")]
        pinned: bool,
    }

    /// Serializes `r` without its modifications.
    pub fn serialize<S: Serializer>(r: &Arc<Reservation>, s: S) -> Result<S::Ok, S::Error> {
        Out {
            id: &r.id,
            hotel_id: &r.hotel_id,
            room_type: &r.room_type,
            room: &r.room,
            stay: &r.stay,
            guests: r.guests,
            guest: &r.guest,
            total: &r.total,
            status: r.status,
            version: r.version,
            created_at: r.created_at,
            hold_expires_at: r.hold_expires_at,
            payment: &r.payment,
            history: &r.history,
            created_by: &r.created_by,
            moves: &r.moves,
            terms: &r.terms,
            pinned: r.pinned,
        }
        .serialize(s)
    }

    /// Deserializes a reservation with no modifications.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<Reservation>, D::Error> {
        let r = In::deserialize(d)?;
        Ok(Arc::new(Reservation {
            id: r.id,
            hotel_id: r.hotel_id,
            room_type: r.room_type,
            room: r.room,
            stay: r.stay,
            guests: r.guests,
            guest: r.guest,
            total: r.total,
            status: r.status,
            version: r.version,
            created_at: r.created_at,
            hold_expires_at: r.hold_expires_at,
            payment: r.payment,
            history: r.history,
            created_by: r.created_by,
            moves: r.moves,
            terms: r.terms,
            modifications: Vec::new(),
            pinned: r.pinned,
            adjustment: None,
        }))
    }
}

/// A list of new reservations, each encoded as [`created_codec`] encodes one.
pub mod created_list {
    use super::*;
    use serde::{Deserializer, Serializer};

    /// One reservation of the list, encoded by [`created_codec`].
    #[derive(Deserialize)]
    struct One(#[serde(with = "super::created_codec")] Arc<Reservation>);

    /// A borrowed one, for encoding.
    struct OneRef<'a>(&'a Arc<Reservation>);

    impl Serialize for OneRef<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            super::created_codec::serialize(self.0, s)
        }
    }

    /// Serializes the list.
    pub fn serialize<S: Serializer>(rs: &[Arc<Reservation>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(rs.iter().map(OneRef))
    }

    /// Deserializes the list.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Arc<Reservation>>, D::Error> {
        Ok(Vec::<One>::deserialize(d)?
            .into_iter()
            .map(|o| o.0)
            .collect())
    }
}

/// Room moves one reservation remembers; older ones are dropped (the journal still has
/// them). Bounds the reservation's size; a real stay moves once or twice.
pub const MAX_MOVES: usize = 8;

/// One room move of a reservation.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct RoomMove {
    /// When (UTC).
    #[serde(with = "crate::codec::timestamp")]
    pub at: Timestamp,
    /// The room it left.
    pub from_room: RoomNumber,
    /// The room it went to.
    pub to_room: RoomNumber,
    /// The first night the new room holds (the arrival, or "tonight" for a guest
    /// already checked in).
    #[serde(with = "crate::codec::date")]
    pub first_night: jiff::civil::Date,
}

impl Reservation {
    /// The first night its current room holds: the arrival, unless the guest was moved
    /// mid-stay.
    pub fn first_night_here(&self) -> jiff::civil::Date {
        self.moves.last().map_or(self.stay.arrival(), |m| {
            m.first_night.max(self.stay.arrival())
        })
    }

    /// The nights its current room holds while the reservation is live.
    pub fn nights_here(&self) -> impl Iterator<Item = jiff::civil::Date> + '_ {
        let first = self.first_night_here();
        self.stay.each_night().filter(move |d| *d >= first)
    }
}

/// A booking request with raw dates; the engine validates them against the hotel's today.
#[derive(Clone, Debug)]
pub struct BookInput {
    /// The hotel.
    pub hotel_id: HotelId,
    /// The room type.
    pub room_type: RoomTypeCode,
    /// First night.
    pub arrival: jiff::civil::Date,
    /// Leaving day.
    pub departure: jiff::civil::Date,
    /// Guests.
    pub guests: u16,
    /// Contact.
    pub guest: Guest,
    /// A specific room, if asked for.
    pub room: Option<RoomNumber>,
    /// The rate plan; `None` is the built-in `BAR`.
    pub rate_plan: Option<RatePlanCode>,
    /// Who books: an identifier of the API key (the HTTP layer sets it from the
    /// authenticated caller), recorded on the reservation as
    /// [`Reservation::created_by`]. It scopes idempotency keys and the hold
    /// cap to the creator; `None` (no keys configured, or an embedder) is not capped.
    pub created_by: Option<String>,
}

/// What a booking asks for, validated. The engine prices it and picks the room.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BookRequest {
    /// The hotel.
    pub hotel_id: HotelId,
    /// The room type.
    pub room_type: RoomTypeCode,
    /// The nights.
    pub stay: Stay,
    /// Number of guests.
    pub guests: u16,
    /// Contact.
    pub guest: Guest,
    /// A specific room, when the client asks for one.
    pub room: Option<RoomNumber>,
    /// The rate plan.
    pub rate_plan: RatePlanCode,
}

impl BookRequest {
    /// A stable 64-bit fingerprint of the request (FNV-1a over a canonical encoding), used to
    /// tell an idempotent retry from a reuse of its key with another body. Stable across
    /// processes and versions, unlike `std`'s randomly seeded hasher.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint_by(None)
    }

    /// [`BookRequest::fingerprint`] of the request as made by `created_by` (the booking
    /// principal), so the same `Idempotency-Key` and body sent by another API key is a
    /// reuse of the key (422), never a replay that would hand it someone else's
    /// reservation. `None` gives exactly [`BookRequest::fingerprint`], so fingerprints
    /// stored before creators existed still match.
    ///
    /// The creator travels beside the request rather than in it: `BookRequest` is built
    /// field by field in places (model tests, benchmarks) that have no principal.
    pub fn fingerprint_by(&self, created_by: Option<&str>) -> u64 {
        let mut h = Fnv64::new();
        h.field(self.hotel_id.as_str());
        h.field(self.room_type.as_str());
        // Dates and the guest count hashed as their text, written straight into the hash
        // (a `String` each was three allocations per keyed booking).
        h.display(self.stay.arrival());
        h.display(self.stay.departure());
        h.display(self.guests);
        h.field(self.guest.name());
        h.field(self.guest.phone());
        h.field(self.guest.email());
        h.field(self.room.as_ref().map_or("", |r| r.as_str()));
        // Only another plan than the built-in one adds to the fingerprint, so the keys of
        // bookings made before plans existed still match their retries.
        if !self.rate_plan.is_bar() {
            h.field("rate_plan");
            h.field(self.rate_plan.as_str());
        }
        if let Some(by) = created_by {
            h.field("created_by");
            h.field(by);
        }
        h.finish()
    }
}

struct Fnv64(u64);

impl Fnv64 {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    /// A field: its bytes, then a byte no UTF-8 text has, so fields cannot run together.
    fn field(&mut self, s: &str) {
        self.bytes(s.as_bytes());
        self.bytes(&[0xff]);
    }
    /// A field hashed as `value.to_string()` would be, without building the string.
    fn display(&mut self, value: impl std::fmt::Display) {
        use std::fmt::Write;
        // Writing into the hash cannot fail.
        let _ = write!(self, "{value}");
        self.bytes(&[0xff]);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl std::fmt::Write for Fnv64 {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.bytes(s.as_bytes());
        Ok(())
    }
}

impl Reservation {
    /// Applies a decided modification ([`crate::Event::ReservationModified`]): its fields
    /// become the modification's, `room` holds it from now on (a change of room is
    /// recorded as a move from the new arrival), the version moves and both histories
    /// record it.
    pub fn apply_modification(
        &mut self,
        m: &crate::event::Modification,
        room: &RoomNumber,
        at: Timestamp,
    ) {
        if *room != self.room {
            if self.moves.len() >= MAX_MOVES {
                self.moves.remove(0);
            }
            self.moves.push(RoomMove {
                at,
                from_room: self.room.clone(),
                to_room: room.clone(),
                first_night: m.stay.arrival(),
            });
            self.room = room.clone();
        } else if self.status != Status::CheckedIn {
            // A guest not yet in holds every night of the stay here, from the new arrival.
            if let Some(last) = self.moves.last_mut() {
                last.first_night = m.stay.arrival();
            }
        }
        self.stay = m.stay;
        self.room_type = m.room_type.clone();
        self.guests = m.guests;
        self.guest = m.guest.clone();
        self.reprice(m.total_minor, m.settling, at);
        self.terms = m.terms.clone();
        self.version += 1;
        if self.history.len() < MAX_HISTORY {
            self.history.push(HistoryEntry {
                at,
                from: Some(self.status),
                to: self.status,
                version: self.version,
            });
        }
        if self.modifications.len() >= MAX_MODIFICATIONS {
            self.modifications.remove(0);
        }
        self.modifications.push(Modified {
            at,
            version: self.version,
            changes: m.changes.clone(),
        });
    }

    /// Takes the new total `total_minor`, settling money as `settling` says. Today's rule:
    /// the first charge keeps the amount it was made with (the hold's, at booking), so an
    /// unpaid hold re-priced is still paid by it and its difference is settled once it is
    /// paid ([`crate::RoomState::apply`]); a paid reservation owes a difference charge for
    /// a higher total, or is owed the difference back for a lower one, at once.
    fn reprice(&mut self, total_minor: i64, settling: crate::event::Settling, at: Timestamp) {
        let old_minor = self.total.amount_minor;
        self.total.amount_minor = total_minor;
        if total_minor == old_minor {
            return;
        }
        if settling == crate::event::Settling::ChargeFollowsTotal {
            // As decided then: only an unpaid hold's total could change, and its charge
            // followed it.
            if self.adjustment.is_none() {
                self.payment.amount = self.total;
            }
            return;
        }
        let first = Adjustment {
            first_charge_minor: self.payment.amount.amount_minor,
            ..Adjustment::default()
        };
        match self.status {
            Status::PendingPayment => {
                self.adjustment.get_or_insert(first);
            }
            Status::Confirmed | Status::CheckedIn
                if self.payment.status == PaymentStatus::Succeeded && !self.payment.refund_owed =>
            {
                let mut a = self.adjustment.unwrap_or(Adjustment {
                    held_minor: old_minor,
                    ..first
                });
                let kind = match a.settle(total_minor) {
                    Settle::Nothing => None,
                    Settle::Charge => Some(PaymentEventKind::BalanceDue),
                    Settle::Refund { refund_minor } => {
                        self.payment.refund_owed = true;
                        self.payment.fee_minor = 0;
                        self.payment.refund_minor = refund_minor;
                        Some(PaymentEventKind::DifferenceRefundOwed)
                    }
                };
                self.adjustment = Some(a);
                if let Some(kind) = kind {
                    if self.payment.history.len() < MAX_HISTORY {
                        self.payment.history.push(PaymentHistoryEntry {
                            at,
                            kind,
                            status: self.payment.status,
                            trade_no: self.payment.trade_no.clone(),
                        });
                    }
                }
            }
            _ => {}
        }
        if self.adjustment.is_none() {
            self.payment.amount = self.total;
        }
    }

    /// The unpaid difference charge, minor units; 0 when none is due.
    pub fn balance_due_minor(&self) -> i64 {
        self.adjustment.map_or(0, |a| a.balance_due_minor)
    }

    /// The multi-room booking that made it, if one did: then its first charge is the
    /// booking's one payment, so `payment.out_trade_no` is the booking's reference (not
    /// this reservation's, ids never collide) and `payment.amount` this reservation's share
    /// of it; it is paid, expired and cancelled with the booking's other reservations in
    /// one change. Derived from the reference: nothing else says it.
    pub fn booking(&self) -> Option<BookingId> {
        let paid_under = self.payment.out_trade_no.reservation_id();
        (paid_under != self.id).then_some(BookingId(paid_under.0))
    }

    /// The provider reference of difference charge or refund number `seq`: the
    /// reservation's own reference, `-`, and the number (`ik…-2`). Its own even when its
    /// first charge is a multi-room booking's: a difference is this reservation's alone.
    pub fn charge_reference(&self, seq: u32) -> String {
        format!("{}-{seq}", self.id.out_trade_no())
    }

    /// The unpaid difference charge, if one is due: its reference and amount.
    pub fn balance_charge(&self) -> Option<(String, Money)> {
        let a = self.adjustment.filter(|a| a.balance_due_minor > 0)?;
        let amount = Money {
            amount_minor: a.balance_due_minor,
            currency: self.total.currency,
        };
        Some((self.charge_reference(a.seq), amount))
    }

    /// The reference the refund owed now is asked under, so the provider tells a retry of
    /// it from another refund of the same payment: the reservation's own reference until
    /// it was re-priced (the payment's, unless a multi-room booking's payment is shared
    /// with other reservations, each refunded under its own), then that of the latest
    /// difference decided ([`Reservation::charge_reference`]).
    pub fn refund_reference(&self) -> String {
        match self.adjustment {
            Some(a) if a.seq > 0 => self.charge_reference(a.seq),
            _ => self.id.out_trade_no().to_string(),
        }
    }

    /// Whether the refund owed is a difference given back to a stay that goes on (rather
    /// than the money of a reservation that ended without its stay).
    pub fn owes_difference(&self) -> bool {
        self.payment.refund_owed && status_keeps_money(self.status)
    }

    /// Checks `If-Match`.
    pub fn check_version(&self, expected: Option<u64>) -> Result<(), DomainError> {
        match expected {
            Some(v) if v != self.version => Err(DomainError::VersionMismatch {
                expected: v,
                current: self.version,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A booking's fingerprint is stored with its idempotency key (journal, snapshots), so
    /// it must not change between releases: pinned for a request without options and one
    /// with every option, by itself and by a creator.
    #[test]
    fn the_booking_fingerprint_is_stable() {
        let plain = BookRequest {
            hotel_id: HotelId::parse("H").unwrap(),
            room_type: RoomTypeCode::parse("KING").unwrap(),
            stay: crate::time::Stay::between(
                jiff::civil::date(2030, 1, 9),
                jiff::civil::date(2030, 1, 12),
            )
            .unwrap(),
            guests: 2,
            guest: Guest::parse("Ada", "+1 555 0100", "ada@example.com").unwrap(),
            room: None,
            rate_plan: RatePlanCode::bar(),
        };
        let full = BookRequest {
            room: Some(RoomNumber::parse("101").unwrap()),
            rate_plan: RatePlanCode::parse("NRF").unwrap(),
            ..plain.clone()
        };
        let got = [
            plain.fingerprint(),
            full.fingerprint(),
            full.fingerprint_by(Some("channel")),
        ];
        assert_eq!(
            got,
            [
                10_657_519_950_420_717_034,
                5_582_647_962_068_093_146,
                2_900_074_283_225_228_943
            ]
        );
    }

    /// A guest encodes exactly as the struct of three strings it used to be (journals and
    /// snapshots written before hold those bytes), decodes back, and clones share the text.
    #[test]
    fn guest_encodes_like_three_strings_and_clones_share_the_text() {
        #[derive(Serialize)]
        struct ThreeStrings {
            name: String,
            phone: String,
            email: String,
        }
        let cfg = bincode::config::standard();
        let guest = Guest::parse("  Zoë Wang ", "+86 138 0000 0000", "z@example.com").unwrap();
        assert_eq!(
            (guest.name(), guest.phone(), guest.email()),
            ("Zoë Wang", "+86 138 0000 0000", "z@example.com")
        );
        let old = ThreeStrings {
            name: "Zoë Wang".into(),
            phone: "+86 138 0000 0000".into(),
            email: "z@example.com".into(),
        };
        let old_bytes = bincode::serde::encode_to_vec(&old, cfg).unwrap();
        assert_eq!(
            bincode::serde::encode_to_vec(&guest, cfg).unwrap(),
            old_bytes
        );
        let (back, _): (Guest, usize) = bincode::serde::decode_from_slice(&old_bytes, cfg).unwrap();
        assert_eq!(back, guest);
        assert_eq!(
            serde_json::to_value(&guest).unwrap(),
            serde_json::json!({"name": "Zoë Wang", "phone": "+86 138 0000 0000", "email": "z@example.com"})
        );
        let copy = guest.clone();
        assert!(std::ptr::eq(copy.name(), guest.name()));
        let too_long = ThreeStrings {
            name: "x".repeat(801),
            ..old
        };
        let bytes = bincode::serde::encode_to_vec(&too_long, cfg).unwrap();
        assert!(bincode::serde::decode_from_slice::<Guest, _>(&bytes, cfg).is_err());
    }

    #[test]
    fn state_machine_matches_the_design() {
        use Status::*;
        let all = [
            PendingPayment,
            Confirmed,
            CheckedIn,
            CheckedOut,
            Cancelled,
            Expired,
            NoShow,
        ];
        let pay = Action::Pay {
            trade_no: "t".into(),
        };
        let mut legal = Vec::new();
        for a in [
            pay,
            Action::Cancel,
            Action::Expire,
            Action::CheckIn,
            Action::CheckOut,
            Action::NoShow,
        ] {
            for s in all {
                if let Some(to) = a.next_status(s) {
                    legal.push((a.name(), s, to));
                }
            }
        }
        assert_eq!(
            legal,
            vec![
                ("pay", PendingPayment, Confirmed),
                ("cancel", PendingPayment, Cancelled),
                ("cancel", Confirmed, Cancelled),
                ("expire", PendingPayment, Expired),
                ("check_in", Confirmed, CheckedIn),
                ("check_out", CheckedIn, CheckedOut),
                ("no_show", Confirmed, NoShow),
            ]
        );
    }

    #[test]
    fn fingerprint_includes_the_creator() {
        let req = BookRequest {
            hotel_id: HotelId::parse("H1").unwrap(),
            room_type: RoomTypeCode::parse("KING").unwrap(),
            stay: Stay::between(jiff::civil::date(2030, 1, 1), jiff::civil::date(2030, 1, 3))
                .unwrap(),
            guests: 2,
            guest: Guest::parse("Li Lei", "+86 138-0000-0000", "li@example.com").unwrap(),
            room: None,
            rate_plan: crate::ids::RatePlanCode::bar(),
        };
        assert_eq!(req.fingerprint(), req.fingerprint_by(None));
        let a = req.fingerprint_by(Some("aaaa"));
        assert_ne!(a, req.fingerprint());
        assert_ne!(a, req.fingerprint_by(Some("bbbb")));
        assert_eq!(a, req.fingerprint_by(Some("aaaa")));
    }

    #[test]
    fn guest_validation() {
        assert!(Guest::parse("Li Lei", "+86 138-0000-0000", "li@example.com").is_ok());
        assert!(Guest::parse("", "+86 138", "li@example.com").is_err());
        assert!(Guest::parse("Li", "abc", "li@example.com").is_err());
        assert!(Guest::parse("Li", "13800000000", "li.example.com").is_err());
        assert!(Guest::parse("Li", "13800000000", "li@localhost").is_err());
    }
}
