//! PaymentSupervisor: charges, refunds and reconciliation with the payment provider.
//!
//! The payment record lives on the reservation, in its room, so every payment change is
//! decided and journaled by the room actor, serialized with the reservation's own
//! transitions. This actor does the talking to the provider: it creates a charge for each
//! new reservation (best effort), issues owed refunds and records them, and every
//! `reconcile_every` asks the provider about payments still pending after
//! `pending_threshold`, applying the answer exactly as a callback would — so a lost
//! callback still confirms or refunds.
//!
//! Nothing here is its own source of truth: at start-up the queue of owed refunds and the
//! set of open payments are rebuilt from the recovered state (the `refund_owed` flag and
//! pending payments), so a refund owed survives a restart without another store.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use innkeep_engine::jiff::{SignedDuration, Timestamp};
use innkeep_engine::{
    BookingId, Event, PaymentOutcome, PaymentReport, PaymentStatus, ReservationId,
};
use innkeep_persistence::Journal;

use crate::config::PaymentPolicy;
use crate::directory::Directory;
use crate::gateway::{ChargeIntent, GatewayStatus, RefundRequest};
use crate::protocol::{
    ApplyPayment, GetReservation, GetStats, PaymentCreated, PaymentDue, PaymentStatsView,
    RecordRefund,
};
use crate::room::{room_of, RoomRef, Rooms};

/// Counter of payment supervisor actions by `action` (`create`, `refund`, `reconcile`)
/// and `outcome`.
pub const METRIC_PAYMENT_ACTIONS: &str = "innkeep_payment_actions_total";

/// What the payment supervisor has done, for operators and tests.
#[derive(Debug, Default)]
pub struct PaymentStats {
    /// Charges created with the provider.
    pub charges_created: AtomicU64,
    /// Refunds the provider confirmed and we recorded.
    pub refunds_recorded: AtomicU64,
    /// Reconciliation answers that changed a payment (a lost callback made good).
    pub reconciliation_fixes: AtomicU64,
    /// Provider calls that failed after every attempt.
    pub gateway_failures: AtomicU64,
}

impl PaymentStats {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A payment still open (pending or failed) that reconciliation may ask about.
#[derive(Debug, Clone)]
pub(crate) struct OpenPayment {
    /// Our reference (derived from the reservation id: no text kept per payment).
    pub out_trade_no: innkeep_engine::OutTradeNo,
    /// When its reservation was created.
    pub created_at: Timestamp,
}

#[derive(Message, Debug)]
#[rtype(result = "()")]
struct Tick;

/// The supervisor.
#[derive(Debug)]
pub struct PaymentSupervisor {
    /// Where reservations are, and "now".
    directory: Arc<Directory>,
    /// The rooms, which decide and journal every payment change.
    rooms: Arc<Rooms>,
    policy: PaymentPolicy,
    /// Open payments by charge (the reservation's id, or a multi-room booking's), for
    /// reconciliation.
    open: HashMap<ReservationId, OpenPayment>,
    /// Reservations owing a refund or with a difference charge due: the retry (and, for
    /// difference charges, reconciliation) queue.
    owed: HashSet<ReservationId>,
    /// Reservations with a provider operation running, so none runs twice at once.
    busy: HashSet<ReservationId>,
    /// Where a multi-room booking's payment is journaled (its rooms decide together).
    journal: Journal<Event>,
    stats: Arc<PaymentStats>,
}

impl PaymentSupervisor {
    pub(crate) fn new(
        directory: Arc<Directory>,
        rooms: Arc<Rooms>,
        policy: PaymentPolicy,
        open: HashMap<ReservationId, OpenPayment>,
        owed: HashSet<ReservationId>,
        stats: Arc<PaymentStats>,
        journal: Journal<Event>,
    ) -> Self {
        Self {
            directory,
            rooms,
            policy,
            open,
            owed,
            busy: HashSet::new(),
            journal,
            stats,
        }
    }

    /// The room holding `id` and the reservation as it is now (the supervisor's work
    /// re-reads it before every provider call: another call may have settled it).
    async fn load<'a>(
        directory: &Directory,
        rooms: &'a Rooms,
        id: ReservationId,
    ) -> Result<(RoomRef<'a>, Arc<innkeep_engine::Reservation>), String> {
        let room = room_of(directory, rooms, &id).map_err(|e| e.to_string())?;
        let r = rooms
            .query(&room.key, GetReservation(id))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        Ok((room, r))
    }

    /// Issues the refund owed by `id` and records it, or settles the difference charge due
    /// for it ([`PaymentSupervisor::charge_balance`]); on failure, or while the charge is
    /// unpaid, it stays queued and is retried on the next tick.
    fn start_refund(&mut self, id: ReservationId, ctx: &mut Context<Self>) {
        let Some(gateway) = self.policy.gateway.clone() else {
            tracing::warn!(reservation = %id, "a refund or difference charge is due but no payment provider is configured");
            return;
        };
        if !self.busy.insert(id) {
            return;
        }
        let (directory, rooms) = (self.directory.clone(), self.rooms.clone());
        let retry = self.policy.retry;
        let stats = self.stats.clone();
        let work = async move {
            let (room, r) = Self::load(&directory, &rooms, id).await?;
            if !r.payment.refund_owed {
                return Self::charge_balance(&gateway, retry, &stats, &directory, &room, &r).await;
            }
            // What the fee (if any) leaves: the whole amount, or less for a partial refund;
            // a difference given back has a reference of its own.
            let request = RefundRequest {
                out_trade_no: r.payment.out_trade_no.to_string(),
                out_refund_no: r.refund_reference(),
                trade_no: r.payment.trade_no.clone(),
                amount: innkeep_engine::Money {
                    amount_minor: r.payment.refund_minor,
                    currency: r.payment.amount.currency,
                },
                difference_charges: r.booking().map(|_| r.id.out_trade_no().to_string()),
            };
            retry
                .run(|| gateway.refund(request.clone()))
                .await
                .map_err(|e| {
                    PaymentStats::bump(&stats.gateway_failures);
                    e.to_string()
                })?;
            room.send(RecordRefund {
                id,
                now: directory.clock.now(),
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            PaymentStats::bump(&stats.refunds_recorded);
            Ok::<Settled, String>(Settled::Yes)
        };
        ctx.spawn(work.into_actor(self).map(move |result, act, _ctx| {
            act.busy.remove(&id);
            let outcome = match result {
                Ok(Settled::Yes) => {
                    act.owed.remove(&id);
                    "ok"
                }
                Ok(Settled::No) => "open",
                Err(e) => {
                    tracing::warn!(reservation = %id, error = %e, "refund not done yet; retrying on the next tick");
                    "retry"
                }
            };
            metrics::counter!(METRIC_PAYMENT_ACTIONS, "action" => "refund", "outcome" => outcome)
                .increment(1);
        }));
    }

    /// Settles the difference charge due for reservation `r` (in `room`), if one is: asks
    /// the provider about it, creates it when the provider does not know it, and applies a
    /// capture whose callback was lost (checked against what is due, as a callback is).
    /// [`Settled::Yes`] once nothing is due; [`Settled::No`] while the guest has not paid
    /// (it stays queued and is asked about again on the next tick).
    async fn charge_balance(
        gateway: &Arc<dyn crate::gateway::PaymentGateway>,
        retry: crate::gateway::RetryPolicy,
        stats: &PaymentStats,
        directory: &Directory,
        room: &RoomRef<'_>,
        r: &innkeep_engine::Reservation,
    ) -> Result<Settled, String> {
        let Some((reference, amount)) = r.balance_charge() else {
            return Ok(Settled::Yes);
        };
        let id = r.id;
        let failed = |e: crate::gateway::GatewayError| {
            PaymentStats::bump(&stats.gateway_failures);
            e.to_string()
        };
        let answer = retry
            .run(|| gateway.query(reference.clone()))
            .await
            .map_err(failed)?;
        let trade_no = match answer {
            GatewayStatus::Unknown => {
                let intent = ChargeIntent {
                    out_trade_no: reference.clone(),
                    amount,
                };
                retry
                    .run(|| gateway.create(intent.clone()))
                    .await
                    .map_err(failed)?;
                PaymentStats::bump(&stats.charges_created);
                return Ok(Settled::No);
            }
            GatewayStatus::Pending | GatewayStatus::Failed { .. } => return Ok(Settled::No),
            GatewayStatus::Succeeded {
                trade_no,
                amount: captured,
            }
            | GatewayStatus::Refunded {
                trade_no,
                amount: captured,
            } => {
                if captured != amount {
                    tracing::error!(reservation = %id, ?captured, owed = ?amount,
                        "provider reports another amount than the difference due; not applied");
                    return Ok(Settled::No);
                }
                trade_no
            }
        };
        let seq = innkeep_engine::ReservationId::from_charge_reference(&reference)
            .and_then(|(_, seq)| seq)
            .ok_or_else(|| format!("{reference} is not a difference charge's reference"))?;
        let (_, outcome) = room
            .send(ApplyPayment {
                id,
                report: PaymentReport::BalanceSucceeded { seq, trade_no },
                now: directory.clock.now(),
                span: tracing::Span::none(),
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        if outcome != PaymentOutcome::Duplicate {
            PaymentStats::bump(&stats.reconciliation_fixes);
            tracing::info!(reservation = %id, "reconciliation applied a lost difference callback");
        }
        Ok(Settled::Yes)
    }

    /// Asks the provider about one open payment and applies its answer.
    fn start_reconcile(&mut self, id: ReservationId, ctx: &mut Context<Self>) {
        let Some(gateway) = self.policy.gateway.clone() else {
            return;
        };
        let Some(open) = self.open.get(&id).cloned() else {
            return;
        };
        if !self.busy.insert(id) {
            return;
        }
        let (directory, rooms) = (self.directory.clone(), self.rooms.clone());
        let retry = self.policy.retry;
        let stats = self.stats.clone();
        let journal = self.journal.clone();
        let work = async move {
            if directory.booking_members(&BookingId(id.0)).is_some() {
                let booking = BookingId(id.0);
                return Self::reconcile_booking(
                    &gateway, retry, &stats, &directory, &rooms, &journal, booking, &open,
                )
                .await;
            }
            let (room, r) = Self::load(&directory, &rooms, id).await?;
            if !matches!(
                r.payment.status,
                PaymentStatus::Pending | PaymentStatus::Failed
            ) {
                return Ok(Settled::Yes);
            }
            let Some((report, amount)) =
                Self::ask(&gateway, retry, &stats, &open, r.payment.amount).await?
            else {
                return Ok(Settled::No);
            };
            if amount != r.payment.amount {
                tracing::error!(reservation = %id, ?amount, owed = ?r.payment.amount,
                    "provider reports another amount than owed; not applied");
                return Ok(Settled::No);
            }
            let (_, outcome) = room
                .send(ApplyPayment {
                    id,
                    report: report.clone(),
                    now: directory.clock.now(),
                    span: tracing::Span::none(),
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            if outcome != PaymentOutcome::Duplicate {
                PaymentStats::bump(&stats.reconciliation_fixes);
                tracing::info!(reservation = %id, outcome = outcome.as_str(), "reconciliation applied a lost callback");
            }
            Ok::<Settled, String>(match report {
                PaymentReport::Succeeded { .. } | PaymentReport::BalanceSucceeded { .. } => {
                    Settled::Yes
                }
                PaymentReport::Failed { .. } => Settled::No,
            })
        };
        ctx.spawn(work.into_actor(self).map(move |result, act, _ctx| {
            act.busy.remove(&id);
            let outcome = match result {
                Ok(Settled::Yes) => {
                    act.open.remove(&id);
                    "settled"
                }
                Ok(Settled::No) => "open",
                Err(e) => {
                    tracing::debug!(reservation = %id, error = %e, "reconciliation failed; retrying on the next tick");
                    "retry"
                }
            };
            metrics::counter!(METRIC_PAYMENT_ACTIONS, "action" => "reconcile", "outcome" => outcome)
                .increment(1);
        }));
    }
}

impl PaymentSupervisor {
    /// Asks the provider about open payment `open` (that asks `owed`): `None` while the
    /// guest has not paid; else the report to apply and the amount the provider names.
    /// A payment captured and already given back at the provider holds no money, so it
    /// confirms nothing: as far as the hold is concerned it failed.
    async fn ask(
        gateway: &Arc<dyn crate::gateway::PaymentGateway>,
        retry: crate::gateway::RetryPolicy,
        stats: &PaymentStats,
        open: &OpenPayment,
        owed: innkeep_engine::Money,
    ) -> Result<Option<(PaymentReport, innkeep_engine::Money)>, String> {
        let answer = retry
            .run(|| gateway.query(open.out_trade_no.to_string()))
            .await
            .map_err(|e| {
                PaymentStats::bump(&stats.gateway_failures);
                e.to_string()
            })?;
        Ok(match answer {
            GatewayStatus::Unknown | GatewayStatus::Pending => None,
            GatewayStatus::Failed { trade_no } | GatewayStatus::Refunded { trade_no, .. } => {
                Some((PaymentReport::Failed { trade_no }, owed))
            }
            GatewayStatus::Succeeded { trade_no, amount } => {
                Some((PaymentReport::Succeeded { trade_no }, amount))
            }
        })
    }

    /// Asks the provider about a multi-room booking's payment and applies its answer to
    /// every reservation of the booking together, as its callback would be
    /// (`crate::bookings`).
    #[allow(clippy::too_many_arguments)]
    async fn reconcile_booking(
        gateway: &Arc<dyn crate::gateway::PaymentGateway>,
        retry: crate::gateway::RetryPolicy,
        stats: &PaymentStats,
        directory: &Arc<Directory>,
        rooms: &Rooms,
        journal: &Journal<Event>,
        booking: BookingId,
        open: &OpenPayment,
    ) -> Result<Settled, String> {
        let members = directory
            .booking_members(&booking)
            .ok_or_else(|| format!("no booking {booking}"))?;
        let mut owed_minor = 0;
        let mut open_still = false;
        let mut currency = None;
        for id in members.iter() {
            let (_, r) = Self::load(directory, rooms, *id).await?;
            owed_minor += r.payment.amount.amount_minor;
            currency = Some(r.payment.amount.currency);
            open_still |= matches!(
                r.payment.status,
                PaymentStatus::Pending | PaymentStatus::Failed
            );
        }
        let Some(currency) = currency.filter(|_| open_still) else {
            return Ok(Settled::Yes);
        };
        let owed = innkeep_engine::Money {
            amount_minor: owed_minor,
            currency,
        };
        let Some((report, amount)) = Self::ask(gateway, retry, stats, open, owed).await? else {
            return Ok(Settled::No);
        };
        if amount != owed {
            tracing::error!(booking = %booking, ?amount, ?owed,
                "provider reports another amount than the booking owes; not applied");
            return Ok(Settled::No);
        }
        let succeeded = matches!(report, PaymentReport::Succeeded { .. });
        let (changed, outcome) = crate::bookings::change(
            directory,
            rooms,
            journal,
            booking,
            crate::bookings::GroupAction::Payment(report),
            None,
            directory.clock.now(),
        )
        .await
        .map_err(|e| e.to_string())?;
        if changed > 0 {
            PaymentStats::bump(&stats.reconciliation_fixes);
            tracing::info!(booking = %booking, outcome = outcome.map_or("none", |o| o.as_str()),
                "reconciliation applied a lost callback");
        }
        Ok(if succeeded { Settled::Yes } else { Settled::No })
    }
}

/// Whether a provider operation left anything to do for its reservation.
enum Settled {
    /// Done: nothing more to ask the provider.
    Yes,
    /// Still open: asked about again on the next tick.
    No,
}

impl Actor for PaymentSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(crate::room::ROOM_MAILBOX);
        if self.policy.gateway.is_none() {
            if !self.owed.is_empty() {
                tracing::warn!(
                    owed = self.owed.len(),
                    "refunds are owed but no payment provider is configured"
                );
            }
            return;
        }
        // Refunds owed before a restart go out at once.
        let owed: Vec<ReservationId> = self.owed.iter().copied().collect();
        for id in owed {
            self.start_refund(id, ctx);
        }
        ctx.run_interval(self.policy.reconcile_every, |_act, ctx| {
            ctx.notify(Tick);
        });
    }
}

impl Handler<Tick> for PaymentSupervisor {
    type Result = ();

    fn handle(&mut self, _msg: Tick, ctx: &mut Self::Context) {
        let now = self.directory.clock.now();
        let threshold =
            SignedDuration::try_from(self.policy.pending_threshold).unwrap_or(SignedDuration::MAX);
        let window =
            SignedDuration::try_from(self.policy.reconcile_window).unwrap_or(SignedDuration::MAX);
        self.open
            .retain(|_, p| now.duration_since(p.created_at) < window);
        let due: Vec<ReservationId> = self
            .open
            .iter()
            .filter(|(_, p)| now.duration_since(p.created_at) >= threshold)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.start_reconcile(id, ctx);
        }
        let owed: Vec<ReservationId> = self.owed.iter().copied().collect();
        for id in owed {
            self.start_refund(id, ctx);
        }
    }
}

impl Handler<PaymentCreated> for PaymentSupervisor {
    type Result = ();

    fn handle(&mut self, msg: PaymentCreated, ctx: &mut Self::Context) {
        let Some(gateway) = self.policy.gateway.clone() else {
            return;
        };
        // Keyed by the charge: a multi-room booking's is asked about once for all.
        self.open.insert(
            msg.out_trade_no.reservation_id(),
            OpenPayment {
                out_trade_no: msg.out_trade_no,
                created_at: msg.created_at,
            },
        );
        let retry = self.policy.retry;
        let stats = self.stats.clone();
        let intent = ChargeIntent {
            out_trade_no: msg.out_trade_no.to_string(),
            amount: msg.amount,
        };
        ctx.spawn(
            async move {
                let outcome = match retry.run(|| gateway.create(intent.clone())).await {
                    Ok(()) => {
                        PaymentStats::bump(&stats.charges_created);
                        "ok"
                    }
                    Err(e) => {
                        PaymentStats::bump(&stats.gateway_failures);
                        tracing::warn!(out_trade_no = %intent.out_trade_no, error = %e,
                            "could not create the charge; the hold will expire unpaid");
                        "failed"
                    }
                };
                metrics::counter!(METRIC_PAYMENT_ACTIONS, "action" => "create", "outcome" => outcome)
                    .increment(1);
            }
            .into_actor(self),
        );
    }
}

impl Handler<PaymentDue> for PaymentSupervisor {
    type Result = ();

    fn handle(&mut self, msg: PaymentDue, ctx: &mut Self::Context) {
        self.owed.insert(msg.id);
        self.start_refund(msg.id, ctx);
    }
}

impl Handler<GetStats> for PaymentSupervisor {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _msg: GetStats, _ctx: &mut Self::Context) -> Self::Result {
        let s = &self.stats;
        MessageResult(PaymentStatsView {
            charges_created: s.charges_created.load(Ordering::Relaxed),
            refunds_recorded: s.refunds_recorded.load(Ordering::Relaxed),
            reconciliation_fixes: s.reconciliation_fixes.load(Ordering::Relaxed),
            gateway_failures: s.gateway_failures.load(Ordering::Relaxed),
            refunds_owed: self.owed.len() as u64,
            open_payments: self.open.len() as u64,
        })
    }
}
