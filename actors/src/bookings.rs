//! Multi-room bookings (issue #16): several rooms taken, paid, expired or cancelled
//! together, as one journal event.
//!
//! A coordinator (a task on a shard, like the booking saga) does for a booking's rooms what
//! [`crate::rearranging`] does for a rearrangement's:
//!
//! 1. **Decide.** Each room involved is sent one [`Prepare`] with its parts, in room-key
//!    order. It decides them against its state as it is (a new reservation's nights, a
//!    cancellation, a payment's share) and, when one changes something, takes no other
//!    message until the decision: every coordinator locks in the same order, so none waits
//!    on another's room.
//! 2. **Journal.** The parts become one [`Event::BookingCreated`] or
//!    [`Event::BookingChanged`].
//! 3. **Apply.** Once it is durable every locked room applies its parts ([`Decided`]);
//!    dropping the decisions instead unlocks them with nothing changed.
//!
//! It runs under a shared hold on [`Directory::gate`], so a snapshot sees all of it or none.
//! A booking takes only rooms free for the whole stay (it does not rearrange others); when
//! a type has too few, nothing is held and the answer names the types that are short.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use innkeep_engine::group::{self, GroupInput};
use innkeep_engine::jiff::Timestamp;
use innkeep_engine::{
    Action, BookRequest, BookingId, DomainError, Event, IdempotencyEntry, IdempotencyKey,
    IdempotencyRecord, Money, PaymentOutcome, PaymentReport, Reservation, ReservationId, RoomKey,
    RoomNumber, RoomTypeCode,
};
use innkeep_persistence::Journal;
use tokio::sync::oneshot;

use crate::booking::{admit, finish, replay, Admitted};
use crate::config::BookingPolicy;
use crate::directory::{read, Directory};
use crate::protocol::{
    BookResult, Charge, Decided, Draft, EngineError, PartAnswer, PartAsk, Prepare,
};
use crate::room::{journal_error, Rooms};

/// Times a booking picks rooms again after one it picked was taken meanwhile, and a change
/// is decided again after one of its reservations was moved meanwhile.
const ATTEMPTS: usize = 3;

/// Counts multi-room bookings and changes by outcome.
pub const METRIC_GROUP_BOOKINGS: &str = "innkeep_group_bookings_total";

/// One multi-room booking to run.
#[derive(Debug)]
pub(crate) struct GroupJob {
    /// What the caller asked for.
    pub input: GroupInput,
    /// Its `Idempotency-Key`, if any.
    pub idempotency_key: Option<IdempotencyKey>,
    /// The id the booking gets.
    pub booking: BookingId,
    /// The instant of the request.
    pub now: Timestamp,
}

/// What a multi-room change does to each reservation of the booking.
#[derive(Clone, Debug)]
pub(crate) enum GroupAction {
    /// A state-machine action (cancel, expire); reservations it does not apply to (already
    /// ended, checked in, a hold not lapsed) stay as they are.
    Change(Action),
    /// The provider's report about the booking's payment, applied to each reservation's
    /// share.
    Payment(PaymentReport),
}

/// Runs one multi-room booking to its end; answers with its first reservation (which
/// leads to the booking, see [`Reservation::booking`]).
pub(crate) async fn book(
    directory: Arc<Directory>,
    rooms: Arc<Rooms>,
    journal: Journal<Event>,
    policy: BookingPolicy,
    job: GroupJob,
) -> BookResult {
    let GroupJob {
        input,
        idempotency_key,
        booking,
        now,
    } = job;
    let creator = input.created_by.clone();
    // 1. Validate and price each room as a booking of its own.
    let lines = input.lines()?;
    let priced = {
        let catalog = read(&directory.catalog);
        lines
            .into_iter()
            .map(|line| catalog.price_booking(line, now, policy.limits))
            .collect::<Result<Vec<_>, _>>()?
    };
    let requests: Vec<BookRequest> = priced.iter().map(|(req, _, _)| req.clone()).collect();
    let fingerprint = group::fingerprint(&requests, creator.as_deref());
    // 2. Idempotency and the creator's hold cap (a hold per room), as for one booking.
    let slot = idempotency_key.map(|k| (input.hotel_id.clone(), k));
    let holds = requests.len();
    let admitted = admit(
        &directory,
        slot.as_ref(),
        fingerprint,
        creator.as_deref(),
        holds,
        policy,
        now,
    );
    match admitted {
        Admitted::Replay(existing) => return replay(&directory, &rooms, existing).await,
        Admitted::Refused(e) => return Err(e),
        Admitted::Wait(rx) => return rx.await.unwrap_or(Err(EngineError::ShuttingDown)),
        Admitted::Go => {}
    }
    let idempotency = slot.as_ref().map(|(_, key)| IdempotencyRecord {
        key: key.clone(),
        fingerprint,
    });
    // Ids made one after another sort in that order (`Uuid::now_v7` is monotonic within
    // the process), so the booking lists its rooms as asked, after a restart too.
    let drafts: Vec<Draft> = priced
        .into_iter()
        .map(|(request, total, terms)| Draft {
            request,
            total,
            id: ReservationId(uuid::Uuid::now_v7()),
            now,
            hold: policy.hold,
            created_by: creator.clone(),
            terms,
        })
        .collect();
    let result = take_rooms(&directory, &rooms, &journal, booking, &drafts, idempotency).await;
    let outcome = match &result {
        Ok(_) => "booked",
        Err(EngineError::Domain(DomainError::SoldOutTypes(_))) => "sold_out",
        Err(_) => "refused",
    };
    metrics::counter!(METRIC_GROUP_BOOKINGS, "outcome" => outcome).increment(1);
    finish(&directory, slot, creator, holds, &result);
    result
}

/// Takes a free room for each draft, all in one event, or none.
async fn take_rooms(
    directory: &Arc<Directory>,
    rooms: &Rooms,
    journal: &Journal<Event>,
    booking: BookingId,
    drafts: &[Draft],
    idempotency: Option<IdempotencyRecord>,
) -> BookResult {
    let hotel_id = &drafts
        .first()
        .ok_or(DomainError::NotFound("room type"))?
        .request
        .hotel_id;
    let _gate = directory.gate.clone().read_owned().await;
    // Rooms that refused a line (taken since the index was read): not asked again.
    let mut refused: HashSet<RoomNumber> = HashSet::new();
    let mut lost_type: Option<RoomTypeCode> = None;
    for _ in 0..ATTEMPTS {
        // 1. A room per line, none twice, from the index.
        let mut chosen: Vec<RoomNumber> = Vec::with_capacity(drafts.len());
        for d in drafts {
            let pick = free_rooms(directory, &d.request, 1, |n| {
                chosen.contains(n) || refused.contains(n)
            });
            match pick.into_iter().next() {
                Some(n) => chosen.push(n),
                None => return Err(sold_out(directory, drafts, lost_type)),
            }
        }
        let created: Vec<Arc<Reservation>> = drafts
            .iter()
            .zip(&chosen)
            .map(|(d, number)| {
                let mut r = d.reservation_in(number.clone());
                r.booking = Some(booking);
                r.payment.out_trade_no = booking.out_trade_no();
                Arc::new(r)
            })
            .collect();
        // 2. Each room decides its line, locked in room-key order.
        let mut order: Vec<usize> = (0..created.len()).collect();
        order.sort_by(|a, b| chosen[*a].cmp(&chosen[*b]));
        let mut locked: Vec<(usize, oneshot::Sender<Decided>)> = Vec::with_capacity(order.len());
        let mut lost = None;
        for i in order {
            let key = RoomKey {
                hotel_id: hotel_id.clone(),
                number: chosen[i].clone(),
            };
            let (answers, decision) =
                prepare(rooms, &key, vec![PartAsk::Reserve(created[i].clone())]).await?;
            match answers.into_iter().next().map(|a| a.decided) {
                Some(Ok(Some(_))) => locked.push((i, decision)),
                // Taken meanwhile (or retyped): pick again without it.
                Some(Ok(None) | Err(EngineError::Domain(DomainError::SoldOut))) | None => {
                    lost = Some(i);
                    break;
                }
                Some(Err(e)) => return Err(e),
            }
        }
        if let Some(i) = lost {
            // Dropping `locked` unlocks the rooms with nothing changed.
            refused.insert(chosen[i].clone());
            lost_type = Some(drafts[i].request.room_type.clone());
            continue;
        }
        // 3. One event. The key is recorded before it is queued, as a booking's room does
        // (`crate::room`), and dropped again if the journal refuses it.
        let lead = created[0].clone();
        let slot = idempotency
            .as_ref()
            .map(|i| (hotel_id.clone(), i.key.clone()));
        if let (Some(slot), Some(i)) = (&slot, &idempotency) {
            let entry = IdempotencyEntry {
                fingerprint: i.fingerprint,
                reservation_id: lead.id,
                created_at: lead.created_at,
            };
            directory.keys(slot).finished.insert(slot.clone(), entry);
        }
        let event = Arc::new(Event::BookingCreated {
            hotel_id: hotel_id.clone(),
            booking,
            reservations: created.clone(),
            idempotency,
        });
        if let Err(e) = durable(journal, &event).await {
            if let Some(slot) = &slot {
                let mut keys = directory.keys(slot);
                if keys.finished.get(slot).map(|e| e.reservation_id) == Some(lead.id) {
                    keys.finished.remove(slot);
                }
            }
            return Err(e);
        }
        // 4. Durable: findable first (by id, by booking), then every room applies its
        // reservation; answered once all did.
        {
            let hosted = rooms.read();
            for r in &created {
                let key = RoomKey {
                    hotel_id: hotel_id.clone(),
                    number: r.room.clone(),
                };
                if let Some(h) = hosted.get(&key) {
                    directory.set_location(r.id, h.number);
                }
            }
        }
        let ids: Vec<ReservationId> = created.iter().map(|r| r.id).collect();
        directory.add_booking(booking, &ids);
        // The first reservation's room creates the booking's one charge.
        let charge = Charge {
            out_trade_no: booking.out_trade_no(),
            amount: Money {
                amount_minor: created.iter().map(|r| r.payment.amount.amount_minor).sum(),
                currency: lead.payment.amount.currency,
            },
        };
        let decisions = locked
            .into_iter()
            .map(|(i, decision)| (decision, (i == 0).then_some(charge)));
        apply(&event, decisions).await?;
        tracing::debug!(booking = %booking, rooms = created.len(), "multi-room booking made");
        return Ok(lead);
    }
    Err(sold_out(directory, drafts, lost_type))
}

/// Up to `limit` rooms free for `req`'s whole stay, not excluded, of its type: the
/// calling shard's first.
fn free_rooms(
    directory: &Directory,
    req: &BookRequest,
    limit: usize,
    exclude: impl Fn(&RoomNumber) -> bool,
) -> Vec<RoomNumber> {
    let shards = directory.shards();
    let here = crate::shards::current().unwrap_or(0) % shards;
    let mut out = Vec::new();
    for shard in (here..shards).chain(0..here) {
        let found = read(directory.index(shard)).candidates_from(
            &req.hotel_id,
            &req.room_type,
            &req.stay,
            0,
            limit - out.len(),
            &exclude,
        );
        out.extend(found);
        if out.len() == limit {
            break;
        }
    }
    out
}

/// The refusal of a booking some of whose types have too few free rooms: those types, as
/// the index shows them now; or, when the index shows enough but rooms kept being taken
/// under the booking, the type of the room lost last.
fn sold_out(directory: &Directory, drafts: &[Draft], lost: Option<RoomTypeCode>) -> EngineError {
    let requests: Vec<BookRequest> = drafts.iter().map(|d| d.request.clone()).collect();
    let short = group::short_types(&requests, |room_type| {
        let req = requests.iter().find(|r| r.room_type == *room_type);
        req.map_or(0, |req| {
            free_rooms(directory, req, group::MAX_ROOMS + 1, |_| false).len()
        })
    });
    let mut types: Vec<RoomTypeCode> = short.into_iter().map(|s| s.room_type).collect();
    if types.is_empty() {
        types.extend(lost);
    }
    DomainError::SoldOutTypes(types).into()
}

/// Applies `what` to every reservation of `booking` together, as one event (or changes
/// nothing when it applies to none). With `if_match`, the booking's version (the sum of its
/// reservations') must be that. Answers how many reservations changed and, for a payment
/// report, what it did (the strongest of its reservations' outcomes).
pub(crate) async fn change(
    directory: &Arc<Directory>,
    rooms: &Rooms,
    journal: &Journal<Event>,
    booking: BookingId,
    what: GroupAction,
    if_match: Option<u64>,
    now: Timestamp,
) -> Result<(usize, Option<PaymentOutcome>), EngineError> {
    let members = directory
        .booking_members(&booking)
        .ok_or(DomainError::NotFound("booking"))?;
    let _gate = directory.gate.clone().read_owned().await;
    for _ in 0..ATTEMPTS {
        let mut by_room: BTreeMap<RoomKey, Vec<ReservationId>> = BTreeMap::new();
        for id in members.iter() {
            let key = directory
                .locate(id)
                .ok_or(DomainError::NotFound("reservation"))?;
            by_room.entry(key).or_default().push(*id);
        }
        let Some(hotel_id) = by_room.keys().next().map(|k| k.hotel_id.clone()) else {
            return Err(DomainError::NotFound("booking").into());
        };
        let today = read(&directory.catalog)
            .hotel(&hotel_id)?
            .time_zone
            .today(now);
        let mut locked = Vec::with_capacity(by_room.len());
        let mut parts = Vec::new();
        let mut version = 0;
        let mut outcomes = Vec::new();
        let mut moved = false;
        for (key, ids) in &by_room {
            let asks = ids
                .iter()
                .map(|id| match &what {
                    GroupAction::Change(action) => PartAsk::Change {
                        id: *id,
                        action: action.clone(),
                        now,
                        today,
                    },
                    GroupAction::Payment(report) => PartAsk::Payment {
                        id: *id,
                        report: report.clone(),
                        now,
                    },
                })
                .collect();
            let (answers, decision) = prepare(rooms, key, asks).await?;
            let mut decided_here = false;
            for (id, answer) in ids.iter().zip(answers) {
                let PartAnswer {
                    version: v,
                    decided,
                    outcome,
                } = answer;
                match decided {
                    Ok(Some(part)) => {
                        parts.push(part);
                        decided_here = true;
                    }
                    Ok(None) => {}
                    // Moved away meanwhile (a rearrangement, the staff): decide again
                    // where it is now.
                    Err(EngineError::Domain(DomainError::NotFound("reservation")))
                        if directory.locate(id).as_ref() != Some(key) =>
                    {
                        moved = true;
                    }
                    Err(e) => return Err(e),
                }
                version += v;
                outcomes.extend(outcome);
            }
            if decided_here {
                locked.push((decision, None));
            }
            if moved {
                break;
            }
        }
        if moved {
            // Dropping `locked` unlocks the rooms with nothing changed.
            continue;
        }
        if let Some(expected) = if_match {
            if expected != version {
                return Err(DomainError::VersionMismatch {
                    expected,
                    current: version,
                }
                .into());
            }
        }
        let outcome = strongest(&outcomes);
        if parts.is_empty() {
            return Ok((0, outcome));
        }
        let changed = parts.len();
        let event = Arc::new(Event::BookingChanged {
            hotel_id,
            booking,
            parts,
        });
        durable(journal, &event).await?;
        apply(&event, locked.into_iter()).await?;
        return Ok((changed, outcome));
    }
    Err(DomainError::MoveInProgress.into())
}

/// What a payment report did to a booking: confirmed it if it confirmed any of its
/// reservations, else owed a refund if it did that, else recorded a failure, else nothing.
fn strongest(outcomes: &[PaymentOutcome]) -> Option<PaymentOutcome> {
    [
        PaymentOutcome::Confirmed,
        PaymentOutcome::RefundOwed,
        PaymentOutcome::FailedRecorded,
        PaymentOutcome::BalancePaid,
        PaymentOutcome::Duplicate,
    ]
    .into_iter()
    .find(|o| outcomes.contains(o))
}

/// Sends `asks` to room `key`; its answers, and the sender of its decision (dropping it
/// unlocks the room, when an answer locked it).
async fn prepare(
    rooms: &Rooms,
    key: &RoomKey,
    asks: Vec<PartAsk>,
) -> Result<(Vec<PartAnswer>, oneshot::Sender<Decided>), EngineError> {
    let addr = rooms.addr(key).ok_or(DomainError::NotFound("room"))?;
    let (decision, decided) = oneshot::channel();
    let (answer, answered) = oneshot::channel();
    addr.try_send(Prepare {
        asks,
        answer,
        decision: decided,
    })
    .map_err(|e| match e {
        actix::dev::SendError::Full(_) => EngineError::Overloaded,
        actix::dev::SendError::Closed(_) => EngineError::ShuttingDown,
    })?;
    let answers = answered.await.map_err(|_| EngineError::ShuttingDown)?;
    Ok((answers, decision))
}

/// Journals `event` and waits until it is durable.
async fn durable(journal: &Journal<Event>, event: &Arc<Event>) -> Result<(), EngineError> {
    let acked = match journal.append(Event::clone(event)) {
        Ok(ack) => ack
            .await
            .unwrap_or(Err(innkeep_persistence::JournalError::Closed)),
        Err(e) => Err(e),
    };
    acked.map(drop).map_err(journal_error)
}

/// Hands the durable `event` to every locked room (with the charge its room creates, if
/// any) and waits until each applied its parts.
async fn apply(
    event: &Arc<Event>,
    decisions: impl Iterator<Item = (oneshot::Sender<Decided>, Option<Charge>)>,
) -> Result<(), EngineError> {
    let mut applied = Vec::new();
    for (decision, charge) in decisions {
        let (done, done_rx) = oneshot::channel();
        let _ = decision.send(Decided {
            event: event.clone(),
            charge,
            applied: done,
        });
        applied.push(done_rx);
    }
    for done in applied {
        done.await.map_err(|_| EngineError::ShuttingDown)?;
    }
    Ok(())
}
