//! Multi-room bookings (issue #16): several rooms taken, paid, expired or cancelled
//! together, as one journal event.
//!
//! **Booking** ([`book`]) takes a room for each line the way a single booking's
//! rearrangement takes one ([`crate::rearranging`]): rooms are chosen (those the index
//! shows free for the stay; when a type has too few, every room of the type is read and
//! [`plan_many`] frees rooms by moving other reservations of the type), the rooms touched
//! are locked one at a time in room-key order and the plan is checked against them, then
//! one [`Event::BookingCreated`] holds the moves and the new reservations, and once it is
//! durable every locked room applies its part. A type that cannot be helped (too few rooms
//! on some night, or no plan) makes the whole booking `sold_out`, naming it.
//!
//! **Changes** ([`change`]: the booking's payment, its hold's lapse, its cancellation):
//! each room holding a reservation of the booking is sent one [`Prepare`] with its parts,
//! in room-key order. It decides them against its state as it is and, when one changes
//! something, takes no other message until the decision (every coordinator locks in the
//! same order, so none waits on another's room). The parts become one
//! [`Event::BookingChanged`]; once it is durable each locked room applies its parts
//! ([`Decided`]); dropping the decisions instead unlocks them with nothing changed.
//!
//! Both run under a shared hold on [`Directory::gate`], so a snapshot sees all of a change
//! or none of it.

use std::collections::BTreeMap;
use std::sync::Arc;

use innkeep_engine::group::{self, GroupInput};
use innkeep_engine::jiff::Timestamp;
use innkeep_engine::rearrange::{fits_many, plan_many, Held, ManyPlan};
use innkeep_engine::{
    Action, BookRequest, BookingId, DomainError, Event, HotelId, IdempotencyKey, IdempotencyRecord,
    PaymentOutcome, PaymentReport, Relocation, Reservation, ReservationId, RoomKey, RoomNumber,
    RoomTypeCode, Stay,
};
use innkeep_persistence::Journal;
use tokio::sync::oneshot;

use crate::booking::{admit, finish, replay, Admitted};
use crate::config::BookingPolicy;
use crate::directory::{read, Directory};
use crate::protocol::{BookResult, Decided, Draft, EngineError, PartAnswer, PartAsk, Prepare};
use crate::rearranging::{
    commit, durable, durable_with_key, lock, read_rooms, Window, MAX_ROOMS_READ,
};
use crate::room::Rooms;

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
    finish(&directory, slot, creator.as_deref(), holds, &result);
    result
}

/// Takes a room for each draft, all in one event, or none: rooms free for the stay when
/// the index shows enough of them, else rooms freed by moving other reservations of the
/// type ([`plan_many`]), as a single booking's rearrangement does ([`crate::rearranging`]).
async fn take_rooms(
    directory: &Arc<Directory>,
    rooms: &Rooms,
    journal: &Journal<Event>,
    booking: BookingId,
    drafts: &[Draft],
    idempotency: Option<IdempotencyRecord>,
) -> BookResult {
    let first = &drafts
        .first()
        .ok_or(DomainError::NotFound("room type"))?
        .request;
    let (hotel_id, stay) = (&first.hotel_id, first.stay);
    // The types asked for, in the order first named, each with its lines.
    let mut types: Vec<(RoomTypeCode, Vec<usize>)> = Vec::new();
    for (i, d) in drafts.iter().enumerate() {
        match types.iter_mut().find(|(t, _)| *t == d.request.room_type) {
            Some((_, lines)) => lines.push(i),
            None => types.push((d.request.room_type.clone(), vec![i])),
        }
    }
    // Most refusals end here: on some night a type has fewer rooms free than it asks, and
    // no moves can change that.
    let short: Vec<RoomTypeCode> = types
        .iter()
        .filter(|(t, lines)| directory.sellable_count(hotel_id, t, &stay) < lines.len())
        .map(|(t, _)| t.clone())
        .collect();
    if !short.is_empty() {
        return Err(DomainError::SoldOutTypes(short).into());
    }
    let _gate = directory.gate.clone().read_owned().await;
    let today = read(&directory.catalog)
        .hotel(hotel_id)?
        .time_zone
        .today(drafts[0].now);
    let window = Window::around(stay.arrival(), stay.departure(), today);
    let key = |number: RoomNumber| RoomKey {
        hotel_id: hotel_id.clone(),
        number,
    };
    for attempt in 0..ATTEMPTS {
        // 1. Rooms, and a plan for each type's lines over them. First try (the common
        // case): rooms the index shows free for the stay, without moves, read under lock
        // only. Else every type's rooms with the most free nights, read first.
        let fast = attempt == 0;
        let mut keys: Vec<RoomKey> = Vec::new();
        let mut spans = Vec::with_capacity(types.len());
        let mut plans = Vec::with_capacity(types.len());
        let mut held: Vec<Vec<Held>> = Vec::new();
        if fast {
            for (t, lines) in &types {
                let free = free_rooms(directory, hotel_id, t, &stay, lines.len());
                if free.len() < lines.len() {
                    break;
                }
                let start = keys.len();
                keys.extend(free.into_iter().map(key));
                spans.push(start..keys.len());
                plans.push(ManyPlan {
                    rooms: (0..lines.len()).collect(),
                    moves: Vec::new(),
                });
            }
            held = vec![Vec::new(); keys.len()];
        }
        if plans.len() < types.len() {
            (keys, spans, plans) = (Vec::new(), Vec::new(), Vec::new());
            for (t, _) in &types {
                let start = keys.len();
                let numbers =
                    directory.rooms_with_most_free_nights(hotel_id, t, &stay, MAX_ROOMS_READ);
                keys.extend(numbers.into_iter().map(key));
                spans.push(start..keys.len());
            }
            held = read_rooms(rooms, &keys, window).await?;
            let mut short = Vec::new();
            for ((t, lines), span) in types.iter().zip(&spans) {
                match plan_many(
                    &held[span.clone()],
                    stay.arrival(),
                    stay.departure(),
                    lines.len(),
                ) {
                    Some(p) => plans.push(p),
                    None => short.push(t.clone()),
                }
            }
            if !short.is_empty() {
                return Err(DomainError::SoldOutTypes(short).into());
            }
        }
        // Places in `keys`: each line's room, and each move's rooms.
        let mut line_room = vec![0; drafts.len()];
        let mut moves: Vec<(ReservationId, usize, usize)> = Vec::new();
        for (((_, lines), span), p) in types.iter().zip(&spans).zip(&plans) {
            for (line, room) in lines.iter().zip(&p.rooms) {
                line_room[*line] = span.start + room;
            }
            moves.extend(
                p.moves
                    .iter()
                    .map(|m| (m.id, span.start + m.from_room, span.start + m.to_room)),
            );
        }
        // 2. Lock the rooms touched, in key order; check the plans against them as they
        // are now.
        let touched = moves
            .iter()
            .flat_map(|(_, from, to)| [*from, *to])
            .chain(line_room.iter().copied())
            .collect();
        let leaving: Vec<(ReservationId, usize)> =
            moves.iter().map(|(id, from, _)| (*id, *from)).collect();
        let locked = lock(rooms, &keys, touched, &leaving, window).await?;
        for room in &locked {
            held[room.index()].clone_from(&room.answer.holdings);
        }
        let still = spans
            .iter()
            .zip(&plans)
            .all(|(span, p)| fits_many(&held[span.clone()], p, stay.arrival(), stay.departure()));
        if !still {
            // Taken meanwhile: unlocked by dropping `locked`; plan again from a new reading.
            metrics::counter!(METRIC_GROUP_BOOKINGS, "outcome" => "replanned").increment(1);
            continue;
        }
        // 3. One event: the moves (each reservation whole, as its room holds it) and the
        // new reservations.
        let relocations = moves
            .iter()
            .map(|(id, from, to)| {
                let stay = locked
                    .iter()
                    .flat_map(|room| &room.answer.leaving)
                    .find(|r| r.id == *id)
                    .map(|r| r.stay)
                    .ok_or(DomainError::NotFound("reservation"))?;
                Ok(Relocation {
                    id: *id,
                    from: keys[*from].number.clone(),
                    to: keys[*to].number.clone(),
                    stay,
                })
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        let created: Vec<Arc<Reservation>> = drafts
            .iter()
            .zip(&line_room)
            .map(|(d, room)| {
                let mut r = d.reservation_in(keys[*room].number.clone());
                r.payment.out_trade_no = booking.out_trade_no();
                Arc::new(r)
            })
            .collect();
        let lead = created[0].clone();
        let event = Arc::new(Event::BookingCreated {
            hotel_id: hotel_id.clone(),
            booking,
            moves: relocations,
            reservations: created.clone(),
            idempotency: idempotency.clone(),
        });
        durable_with_key(
            directory,
            journal,
            &event,
            hotel_id,
            idempotency.as_ref(),
            &lead,
        )
        .await?;
        // 4. Durable: findable first (the moved ones where they went, the new ones by id
        // and by booking), then every locked room applies its part; answered once all did.
        {
            let hosted = rooms.read();
            let number = |room: usize| hosted.get(&keys[room]).map(|h| h.number);
            for (id, _, to) in &moves {
                if let Some(n) = number(*to) {
                    directory.set_location(*id, n);
                }
            }
            for (r, room) in created.iter().zip(&line_room) {
                if let Some(n) = number(*room) {
                    directory.set_location(r.id, n);
                }
            }
        }
        let ids: Vec<ReservationId> = created.iter().map(|r| r.id).collect();
        directory.add_booking(booking, &ids);
        let moved_to: Vec<(ReservationId, usize)> =
            moves.iter().map(|(id, _, to)| (*id, *to)).collect();
        commit(locked, &keys, &moved_to, &event).await?;
        if !moves.is_empty() {
            metrics::counter!(METRIC_GROUP_BOOKINGS, "outcome" => "rearranged").increment(1);
        }
        tracing::debug!(booking = %booking, rooms = created.len(), moves = moves.len(),
            "multi-room booking made");
        return Ok(lead);
    }
    // Rooms kept being taken under the booking: as sold out as a refused plan.
    Err(DomainError::SoldOutTypes(types.into_iter().map(|(t, _)| t).collect()).into())
}

/// Up to `limit` rooms of type `room_type` free for the whole `stay`: the calling shard's
/// first.
fn free_rooms(
    directory: &Directory,
    hotel_id: &HotelId,
    room_type: &RoomTypeCode,
    stay: &Stay,
    limit: usize,
) -> Vec<RoomNumber> {
    let shards = directory.shards();
    let here = crate::shards::current().unwrap_or(0) % shards;
    let mut out = Vec::new();
    for shard in (here..shards).chain(0..here) {
        let found = read(directory.index(shard)).candidates_from(
            hotel_id,
            room_type,
            stay,
            0,
            limit - out.len(),
            |_| false,
        );
        out.extend(found);
        if out.len() == limit {
            break;
        }
    }
    out
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
                locked.push(decision);
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
    let (decision, decided) = oneshot::channel();
    let (answer, answered) = oneshot::channel();
    let prepare = Prepare {
        asks,
        answer,
        decision: decided,
    };
    rooms
        .try_send(key, prepare)
        .ok_or(DomainError::NotFound("room"))?
        .map_err(|e| match e {
            actix::dev::SendError::Full(_) => EngineError::Overloaded,
            actix::dev::SendError::Closed(_) => EngineError::ShuttingDown,
        })?;
    let answers = answered.await.map_err(|_| EngineError::ShuttingDown)?;
    Ok((answers, decision))
}

/// Hands the durable `event` to every locked room and waits until each applied its parts.
async fn apply(
    event: &Arc<Event>,
    decisions: impl Iterator<Item = oneshot::Sender<Decided>>,
) -> Result<(), EngineError> {
    let mut applied = Vec::new();
    for decision in decisions {
        let (done, done_rx) = oneshot::channel();
        let _ = decision.send(Decided {
            event: event.clone(),
            applied: done,
        });
        applied.push(done_rx);
    }
    for done in applied {
        done.await.map_err(|_| EngineError::ShuttingDown)?;
    }
    Ok(())
}
