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

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use innkeep_engine::jiff::Timestamp;
use innkeep_engine::{Action, ReservationId};

use crate::directory::{read, Directory};
use crate::protocol::{
    Adopt, ChangeReservation, EngineError, HoldEnded, HoldStarted, PaymentCreated, PendingHold,
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
    /// Unpaid holds by expiry instant, so the tick finds the due ones without a scan.
    holds: BTreeSet<(Timestamp, ReservationId)>,
    /// Every unpaid hold: its expiry (to find it in `holds`) and its creator. An entry
    /// leaves when its room reports [`HoldEnded`].
    pending: HashMap<ReservationId, PendingHold>,
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
            pending: HashMap::new(),
            payments,
            expiry_tick,
        }
    }

    fn track(&mut self, id: ReservationId, hold: PendingHold) {
        self.holds.insert((hold.expires_at, id));
        if self.pending.insert(id, hold).is_none() {
            metrics::gauge!(METRIC_HOLDS_OPEN).increment(1.0);
        }
    }

    /// Asks the room of every hold that is due to expire it. A room that could not decide
    /// (journal full or failing, engine stopping) leaves the hold queued for a later tick.
    fn expire_due(&mut self, ctx: &mut Context<Self>) {
        let now = self.directory.clock.now();
        while let Some(&(at, id)) = self.holds.first() {
            if at > now {
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
                if retry && act.pending.contains_key(&id) {
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
            self.track(id, hold);
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
            created_by,
            amount,
            created_at,
        } = msg;
        self.track(
            id,
            PendingHold {
                expires_at,
                created_by,
            },
        );
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
        let Some(hold) = self.pending.remove(&msg.id) else {
            return;
        };
        metrics::gauge!(METRIC_HOLDS_OPEN).decrement(1.0);
        self.holds.remove(&(hold.expires_at, msg.id));
        if let Some(c) = &hold.created_by {
            self.directory.release_slot(c);
        }
    }
}
