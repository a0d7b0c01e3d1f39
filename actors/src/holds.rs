//! HoldKeeper: one per shard, keeping the unpaid holds of that shard's rooms. A room tells
//! its own shard's keeper when a hold starts (durable, before the booking is answered) and
//! when it ends (paid, cancelled, expired); the keeper expires due holds and asks the
//! payment supervisor for each new hold's charge when a payment provider is configured.
//!
//! Per shard, not in the order supervisor: a booking's hold is then reported on the thread
//! that booked it, with no wake of another thread, so the booking path touches only the
//! shards and the journal writer. A hold never leaves its room while it is unpaid (moves
//! are for confirmed and checked-in reservations), so its room's keeper is its keeper for
//! life.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use innkeep_engine::jiff::Timestamp;
use innkeep_engine::{Action, ReservationId};

use crate::directory::{read, Directory};
use crate::protocol::{
    Adopt, ChangeReservation, EngineError, HoldEnded, HoldStarted, PaymentCreated,
};
use crate::room::{RoomActor, Rooms, ROOM_MAILBOX};

/// Name of the counter of holds the keepers expired.
pub const METRIC_HOLDS_EXPIRED: &str = "innkeep_holds_expired_total";

/// Name of the gauge of unpaid holds currently open.
pub const METRIC_HOLDS_OPEN: &str = "innkeep_holds_open";

/// The holds of one shard's rooms.
#[derive(Debug)]
pub(crate) struct HoldKeeper {
    /// The locator and the catalog (to expire a hold), and the hold slots (given back
    /// when a hold ends).
    directory: Arc<Directory>,
    /// The rooms, asked to expire their due holds.
    rooms: Arc<Rooms>,
    /// Every unpaid hold by its expiry (whole milliseconds, rounded up), so the tick finds the
    /// due ones without a scan. The only per-hold state here (24 bytes): a hold's room
    /// reports its end ([`HoldEnded`]) with the expiry and creator, exactly once, so
    /// nothing else needs remembering. An entry may outlive its hold (an expiry retried
    /// after the hold was paid); the room then refuses to expire it, and it is dropped.
    holds: BTreeSet<(i64, ReservationId)>,
    /// The payment supervisor, asked for each new hold's charge; `None` without a payment
    /// provider (nothing would be charged, so nothing is sent).
    payments: Option<Recipient<PaymentCreated>>,
    /// How often due holds are looked for.
    expiry_tick: Duration,
}

impl HoldKeeper {
    pub(crate) fn new(
        directory: Arc<Directory>,
        rooms: Arc<Rooms>,
        payments: Option<Recipient<PaymentCreated>>,
        expiry_tick: Duration,
    ) -> Self {
        Self {
            directory,
            rooms,
            holds: BTreeSet::new(),
            payments,
            expiry_tick,
        }
    }

    /// Queues a new hold's expiry. Called once per hold (its start, or its adoption at
    /// start-up), as its end is reported once: the gauge counts both.
    fn track(&mut self, id: ReservationId, expires_at: Timestamp) {
        self.holds.insert((due_millis(expires_at), id));
        metrics::gauge!(METRIC_HOLDS_OPEN).increment(1.0);
    }

    /// Asks the room of every hold that is due to expire it. A room that could not decide
    /// (journal full or failing, engine stopping) leaves the hold queued for a later tick.
    fn expire_due(&mut self, ctx: &mut Context<Self>) {
        let now = self.directory.clock.now();
        let now_millis = now.as_millisecond();
        while let Some(&(at, id)) = self.holds.first() {
            if at > now_millis {
                break;
            }
            self.holds.pop_first();
            let Some((addr, today)) = self.room_of(&id, now) else {
                continue;
            };
            let msg = ChangeReservation {
                id,
                action: Action::Expire,
                if_match: None,
                now,
                today,
                span: tracing::debug_span!("expire_hold", reservation = %id),
            };
            ctx.spawn(addr.send(msg).into_actor(self).map(move |res, act, _| {
                let retry = match res {
                    Ok(Ok(_)) => {
                        metrics::counter!(METRIC_HOLDS_EXPIRED).increment(1);
                        false
                    }
                    Ok(Err(EngineError::Domain(_))) => false,
                    Ok(Err(_)) | Err(_) => true,
                };
                if retry {
                    act.holds.insert((at, id));
                }
            }));
        }
    }

    fn room_of(
        &self,
        id: &ReservationId,
        now: Timestamp,
    ) -> Option<(Addr<RoomActor>, innkeep_engine::jiff::civil::Date)> {
        let key = self.directory.locate(id)?;
        let today = read(&self.directory.catalog)
            .hotel(&key.hotel_id)
            .ok()?
            .time_zone
            .today(now);
        let addr = self.rooms.addr(&key)?;
        Some((addr, today))
    }
}

impl Actor for HoldKeeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(ROOM_MAILBOX);
        ctx.run_interval(self.expiry_tick, |act, ctx| act.expire_due(ctx));
    }
}

impl Handler<Adopt> for HoldKeeper {
    type Result = ();

    fn handle(&mut self, msg: Adopt, ctx: &mut Self::Context) {
        for (id, hold) in msg.0 {
            self.track(id, hold.expires_at);
        }
        self.expire_due(ctx);
    }
}

impl Handler<HoldStarted> for HoldKeeper {
    type Result = ();

    /// A new hold is durable: its expiry is queued, its creator's slot (taken when the
    /// booking started) now belongs to it, and its charge is created.
    fn handle(&mut self, msg: HoldStarted, _ctx: &mut Self::Context) {
        let HoldStarted {
            id,
            expires_at,
            amount,
            created_at,
        } = msg;
        // The creator's slot was taken when the booking started; it is given back with
        // the hold's end, which names the creator again.
        self.track(id, expires_at);
        // Best effort: the hold timer governs whether it is ever paid.
        if let Some(payments) = &self.payments {
            payments.do_send(PaymentCreated {
                id,
                out_trade_no: id.out_trade_no().to_string(),
                amount,
                created_at,
            });
        }
    }
}

impl Handler<HoldEnded> for HoldKeeper {
    type Result = ();

    fn handle(&mut self, msg: HoldEnded, _ctx: &mut Self::Context) {
        // Gone already when its expiry is being asked for right now.
        self.holds.remove(&(due_millis(msg.expires_at), msg.id));
        metrics::gauge!(METRIC_HOLDS_OPEN).decrement(1.0);
        if let Some(c) = &msg.created_by {
            self.directory.release_slot(c);
        }
    }
}

/// The whole millisecond at or after `at`: a hold is asked to expire no earlier than it
/// lapses (the room decides by the exact instant).
fn due_millis(at: Timestamp) -> i64 {
    let ms = at.as_millisecond();
    if Timestamp::from_millisecond(ms).is_ok_and(|t| t < at) {
        ms.saturating_add(1)
    } else {
        ms
    }
}
