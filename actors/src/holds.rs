//! HoldKeeper: one per shard, expiring the due holds of that shard's rooms. The rooms
//! queue their holds' starts and ends themselves (`OpenHolds`); the keeper wakes every
//! `expiry_tick` and asks the room of each due hold to expire it.
//!
//! Per shard, not in the order supervisor: a booking's hold is queued on the thread that
//! booked it, with no wake of another thread, so the booking path touches only the shards
//! and the journal writer. A hold never leaves its room while it is unpaid (moves are for
//! confirmed and checked-in reservations), so its room's keeper is its keeper for life.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use innkeep_engine::jiff::Timestamp;
use innkeep_engine::{Action, DomainError, ReservationId, RoomKey};

use innkeep_engine::Event;
use innkeep_persistence::Journal;

use crate::bookings::GroupAction;
use crate::directory::{read, Directory};
use crate::open_holds::OpenHolds;
use crate::protocol::{Adopt, ChangeReservation, EngineError};
use crate::room::{Rooms, ROOM_MAILBOX};

/// Name of the counter of holds the keepers expired.
pub const METRIC_HOLDS_EXPIRED: &str = "innkeep_holds_expired_total";

/// Expirations a keeper has asked for and not yet heard back from; the rest of the due
/// holds wait in its queue until an answer (or the next tick) makes room. A restart after
/// a long outage can find hundreds of thousands of lapsed holds. Asked for all at once
/// (measured with 1M lapsed at start), every request waited behind them (`/healthz` took
/// 0.2–0.5 s), the expiries themselves crawled (16 000 in the first 5 s) and the process
/// doubled its memory (1.9 GB). With 256 at a time: 1–6 ms, 440 000, 0.9 GB.
const MAX_EXPIRING: usize = 256;

/// The holds of one shard's rooms.
#[derive(Debug)]
pub(crate) struct HoldKeeper {
    /// The locator and the catalog (to expire a hold), and the hold slots (given back
    /// when a hold ends).
    directory: Arc<Directory>,
    /// The rooms, asked to expire their due holds.
    rooms: Arc<Rooms>,
    /// Where a multi-room booking's expiry is journaled (its rooms decide together, see
    /// `crate::bookings`).
    journal: Journal<Event>,
    /// This shard's unpaid holds by expiry, queued by its rooms.
    holds: Arc<OpenHolds>,
    /// How often due holds are looked for.
    expiry_tick: Duration,
    /// This keeper's shard, whose idle rooms it parks.
    shard: usize,
    /// How often this shard's rooms are swept for idle ones ([`Rooms::sweep`]).
    room_idle: Duration,
    /// Expirations asked for and not yet answered (at most [`MAX_EXPIRING`]).
    expiring: usize,
}

impl HoldKeeper {
    pub(crate) fn new(
        directory: Arc<Directory>,
        rooms: Arc<Rooms>,
        journal: Journal<Event>,
        holds: Arc<OpenHolds>,
        (expiry_tick, room_idle): (Duration, Duration),
        shard: usize,
    ) -> Self {
        Self {
            directory,
            rooms,
            journal,
            holds,
            expiry_tick,
            shard,
            room_idle,
            expiring: 0,
        }
    }

    /// Asks the room of every hold that is due to expire it, at most [`MAX_EXPIRING`] at a
    /// time: each answer asks for the next. A room that could not decide (journal full or
    /// failing, engine stopping) leaves the hold queued for a later tick.
    fn expire_due(&mut self, ctx: &mut Context<Self>) {
        let now = self.directory.clock.now();
        let now_millis = now.as_millisecond();
        while self.expiring < MAX_EXPIRING {
            let Some((at, id)) = self.holds.pop_due(now_millis) else {
                break;
            };
            // A multi-room booking's holds lapse together, as one change (the first of its
            // keepers to get there expires them all; the others find nothing left to do).
            if let Some(booking) = self.directory.booking_of(&id) {
                let (directory, rooms, journal) = (
                    self.directory.clone(),
                    self.rooms.clone(),
                    self.journal.clone(),
                );
                let expire = async move {
                    let action = GroupAction::Change(Action::Expire);
                    crate::bookings::change(
                        &directory, &rooms, &journal, booking, action, None, now,
                    )
                    .await
                };
                self.expiring += 1;
                ctx.spawn(expire.into_actor(self).map(move |res, act, ctx| {
                    match res {
                        Ok((expired, _)) => {
                            metrics::counter!(METRIC_HOLDS_EXPIRED).increment(expired as u64);
                        }
                        // Refused for good (a reservation being moved is retried).
                        Err(EngineError::Domain(e))
                            if !matches!(e, DomainError::MoveInProgress) => {}
                        Err(_) => return act.requeue(at, id),
                    }
                    act.answered(ctx);
                }));
                continue;
            }
            let Some((asked, today)) = self.room_of(&id, now) else {
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
            let Some(sent) = self.rooms.send(&asked, msg) else {
                continue;
            };
            self.expiring += 1;
            ctx.spawn(sent.into_actor(self).map(move |res, act, ctx| {
                let retry = match res {
                    Ok(Ok(_)) => {
                        metrics::counter!(METRIC_HOLDS_EXPIRED).increment(1);
                        false
                    }
                    // A rearrangement moved it between the locator's answer and the old
                    // room's: due still, asked again where it is now on the next tick.
                    Ok(Err(EngineError::Domain(DomainError::NotFound("reservation")))) => act
                        .directory
                        .locate(&id)
                        .is_some_and(|now_at| now_at != asked),
                    Ok(Err(EngineError::Domain(_))) => false,
                    Ok(Err(_)) | Err(_) => true,
                };
                if retry {
                    act.requeue(at, id);
                } else {
                    act.answered(ctx);
                }
            }));
        }
    }

    /// One expiration asked for was decided: its place goes to the next due hold.
    fn answered(&mut self, ctx: &mut Context<Self>) {
        self.expiring -= 1;
        self.expire_due(ctx);
    }

    /// One expiration asked for could not be decided: the hold goes back in the queue, and
    /// its place is refilled by the next tick, not now (the hold is due, so it would be
    /// asked again at once, and a journal that refuses would be asked over and over).
    fn requeue(&mut self, at: i64, id: ReservationId) {
        self.expiring -= 1;
        self.holds.requeue(at, id);
    }

    fn room_of(
        &self,
        id: &ReservationId,
        now: Timestamp,
    ) -> Option<(RoomKey, innkeep_engine::jiff::civil::Date)> {
        let key = self.directory.locate(id)?;
        let today = read(&self.directory.catalog)
            .hotel(&key.hotel_id)
            .ok()?
            .time_zone
            .today(now);
        Some((key, today))
    }
}

impl Actor for HoldKeeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(ROOM_MAILBOX);
        ctx.run_interval(self.expiry_tick, |act, ctx| act.expire_due(ctx));
        ctx.run_interval(self.room_idle, |act, _ctx| {
            act.rooms.sweep(act.shard);
        });
    }
}

impl Handler<Adopt> for HoldKeeper {
    type Result = ();

    fn handle(&mut self, msg: Adopt, ctx: &mut Self::Context) {
        self.holds.adopt(&msg.0);
        self.expire_due(ctx);
    }
}
