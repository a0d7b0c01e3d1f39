//! RoomActor: one per room. Every booking, state change and housekeeping change for the
//! room goes through its mailbox, so they are serialized without locks, and the room
//! journals its own events, so the journal order is the room's decision order. Also the
//! registry of rooms (`Rooms`): which actor and shard each room is.

use std::collections::HashSet;

use innkeep_engine::ids::{CodeMap, RoomKeyParts};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock, RwLockReadGuard};

use actix::dev::{Request, SendError};
use actix::prelude::*;
use actix::ArbiterHandle;
use innkeep_engine::jiff::civil::Date;
use innkeep_engine::rearrange::Held;
use innkeep_engine::{
    DomainError, Event, HotelId, HotelTz, IdempotencyEntry, IdempotencyKey, ModifyPlan,
    NightsDelta, PaymentOutcome, Reservation, ReservationId, RoomKey, RoomState, Status,
};
use innkeep_persistence::{AckReceiver, AckSink, Journal, JournalError};
use tokio::sync::oneshot;

use crate::directory::{read, write, Directory};
use crate::open_holds::OpenHolds;
use crate::protocol::{
    ApplyPayment, BeginModify, BeginMove, BookResult, ChangeReservation, Charge, ClearOutOfOrder,
    Commit, DayReservation, Decided, Draft, EngineError, FinishMove, GetDay, GetHoldings,
    GetReservation, GetTape, GetView, LockForRearrangement, Locked, ModifyIn, ModifyStep, MoveIn,
    MoveOutcome, NightAudit, NoShowsDue, OutOfOrderView, PartAnswer, PartAsk, PaymentDue, Prepare,
    RecordRefund, Reserve, ReserveReply, Retype, RoomBooking, RoomDay, RoomPart, RoomView,
    SetHousekeeping, SetOutOfOrder, SnapshotRoom, TapeReservation, TapeRoom,
};

/// Mailbox capacity of a room. Callers are bounded by the engine's in-flight limit, so this
/// only needs to be large enough that a `send` never parks at that limit.
pub const ROOM_MAILBOX: usize = 16_384;

/// What the rooms of one shard share: who they tell about their reservations (all but the
/// payment supervisor on the shard), the journal, the directory. One per shard, so a room
/// pays one pointer for them (a room is resident for the node's life, so its size counts).
#[derive(Clone, Debug)]
pub(crate) struct RoomPeers {
    /// The shard's index ([`crate::shards::current`] there): its rooms' rows are in that
    /// shard's availability index.
    pub shard: usize,
    /// Where the rooms' events go.
    pub journal: Journal<Event>,
    /// The catalog the rooms read, the index rows and locator entries they keep current,
    /// and the idempotency keys their bookings record.
    pub directory: Arc<Directory>,
    /// Its shard's unpaid holds by expiry: a room queues a hold when it is durable and
    /// takes it out when it ends; the shard's hold keeper expires the due ones.
    pub holds: Arc<OpenHolds>,
    /// The payment supervisor, told when a reservation newly owes a refund.
    pub payment_due: Recipient<PaymentDue>,
    /// Where the journal writer hands the acks of this shard's appends (one wake of the
    /// shard per batch).
    pub acks: Arc<dyn AckSink>,
    /// The registry, where an idle room leaves its state when it parks. Weak: the
    /// registry holds the peers.
    pub rooms: std::sync::Weak<Rooms>,
}

/// A room and where it runs.
#[derive(Debug)]
pub(crate) struct Hosted {
    /// Its actor, or its state while it is parked.
    presence: Mutex<Presence>,
    /// The index of the shard hosting it ([`crate::shards::current`] there), so a booking
    /// can ask the rooms of its own shard first.
    pub shard: usize,
    /// Its number in the directory's locator.
    pub number: u32,
}

/// Whether a room's actor runs. A room with nothing to do costs its actor's task and
/// mailbox (about 800 bytes), five times its state, so an idle room is parked: its actor
/// stops and its state waits here until the next message starts it again.
#[derive(Debug)]
enum Presence {
    /// The actor runs; `active` says whether anyone reached it since the last sweep.
    Awake { addr: Addr<RoomActor>, active: bool },
    /// A sweep found it idle and sent it [`Park`]; reaching it meanwhile makes it
    /// [`Presence::Awake`] again, which its `Park` then finds and ignores.
    Parking { addr: Addr<RoomActor> },
    /// Its actor has stopped; this is its whole state. Every event of the room is in it
    /// and durable (it parks only with nothing in flight and nothing awaited).
    Parked(Box<RoomState>),
}

impl Hosted {
    /// A room whose actor starts with its first message (every room starts so).
    pub(crate) fn parked(state: RoomState, shard: usize, number: u32) -> Self {
        Self {
            presence: Mutex::new(Presence::Parked(Box::new(state))),
            shard,
            number,
        }
    }

    fn presence(&self) -> MutexGuard<'_, Presence> {
        self.presence.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Every room: its actor or its parked state, and its shard. Written when a room is
/// created (setup, start-up); read by every booking.
#[derive(Debug, Default)]
pub(crate) struct Rooms {
    /// The rooms by key, with the codes' cheap hasher (administrators choose room codes):
    /// every booking looks its candidates up here.
    rooms: RwLock<CodeMap<RoomKey, Hosted>>,
    /// Per shard, where a parked room's actor is started again and what it is given; set
    /// once, when the actors start.
    hosts: OnceLock<Vec<(ArbiterHandle, Arc<RoomPeers>)>>,
    /// Rooms whose actor runs (the gauge [`METRIC_ROOMS_AWAKE`]).
    awake: AtomicUsize,
}

/// Name of the gauge of rooms whose actor runs (the rest are parked).
pub const METRIC_ROOMS_AWAKE: &str = "innkeep_rooms_awake";

impl Rooms {
    /// The registry, read-locked (a booking sends from under it rather than clone an
    /// `Addr`, which is two contended atomic operations per room).
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, CodeMap<RoomKey, Hosted>> {
        read(&self.rooms)
    }

    /// Where parked rooms are started again; called once, before any room is reached.
    pub(crate) fn set_hosts(&self, hosts: Vec<(ArbiterHandle, Arc<RoomPeers>)>) {
        let _ = self.hosts.set(hosts);
    }

    /// Sends `msg` to room `key` (started first if it was parked); `None` if there is no
    /// such room. The message is queued before this returns. No room's address leaves the
    /// registry: every message is queued under its room's lock, which is what lets a room
    /// park knowing nothing is queued behind its [`Park`].
    pub(crate) fn send<M>(&self, key: &RoomKey, msg: M) -> Option<Request<RoomActor, M>>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        RoomActor: Handler<M>,
    {
        self.on_room(key, |addr| addr.send(msg))
    }

    /// [`Rooms::send`] without waiting for an answer, failing at once when the room's
    /// mailbox is full.
    pub(crate) fn try_send<M>(&self, key: &RoomKey, msg: M) -> Option<Result<(), SendError<M>>>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        RoomActor: Handler<M>,
    {
        self.on_room(key, |addr| addr.try_send(msg))
    }

    /// [`Rooms::with_actor`] on room `key`, if there is such a room.
    fn on_room<T>(&self, key: &RoomKey, f: impl FnOnce(&Addr<RoomActor>) -> T) -> Option<T> {
        self.read()
            .get(key)
            .map(|hosted| self.with_actor(hosted, f))
    }

    /// [`Rooms::try_send`] to room `key`, looked up by its borrowed codes (no `RoomKey`
    /// built of clones) and sent from under the registry's read lock (no `Addr` cloned:
    /// an address clone and drop are two contended atomic operations). A message not
    /// sent comes back with why.
    pub(crate) fn try_send_to<M>(&self, key: &dyn RoomKeyParts, msg: M) -> Result<(), Unsent<M>>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        RoomActor: Handler<M>,
    {
        let rooms = self.read();
        let Some(hosted) = rooms.get(key) else {
            return Err(Unsent::NoRoom(msg));
        };
        self.with_actor(hosted, |addr| addr.try_send(msg))
            .map_err(|e| match e {
                SendError::Full(msg) => Unsent::Full(msg),
                SendError::Closed(msg) => Unsent::Closed(msg),
            })
    }

    /// [`Rooms::send`], with `not_found` ("room") when there is no such room.
    pub(crate) fn ask<M>(&self, key: &RoomKey, msg: M) -> Result<Request<RoomActor, M>, DomainError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        RoomActor: Handler<M>,
    {
        self.send(key, msg).ok_or(DomainError::NotFound("room"))
    }

    /// The locator number of room `key`, if there is such a room.
    pub(crate) fn number(&self, key: &RoomKey) -> Option<u32> {
        self.read().get(key).map(|h| h.number)
    }

    /// Asks room `key` a [`Query`]: a parked room answers here, from its state, and stays
    /// parked; an awake one is sent it (which does not keep it awake). `Closed` if there
    /// is no such room or its shard has stopped.
    pub(crate) fn query<M>(
        &self,
        key: &RoomKey,
        msg: M,
    ) -> impl std::future::Future<Output = Result<M::Result, MailboxError>> + use<M>
    where
        M: Query,
        M::Result: Send,
        RoomActor: Handler<M>,
    {
        enum Asked<M: Query>
        where
            M::Result: Send,
            RoomActor: Handler<M>,
        {
            Answered(M::Result),
            Sent(Request<RoomActor, M>),
        }
        let asked = self.read().get(key).map(|hosted| {
            Self::as_it_is(
                hosted,
                msg,
                |msg, state| Asked::Answered(msg.answer(state, None)),
                |msg, addr| Asked::Sent(addr.send(msg)),
            )
        });
        async move {
            match asked {
                None => Err(MailboxError::Closed),
                Some(Asked::Answered(answer)) => Ok(answer),
                Some(Asked::Sent(sent)) => sent.await,
            }
        }
    }

    /// Under `hosted`'s lock, and without waking it or counting as reaching it: `parked` on
    /// `msg` and its state if it is parked, else `awake` on `msg` and its actor, which may
    /// send it. A room asked
    /// to park is made awake again first (untouched, so the next sweep parks it), or a
    /// message sent now would be queued behind its `Park` and dropped with its actor.
    fn as_it_is<M, T>(
        hosted: &Hosted,
        msg: M,
        parked: impl FnOnce(M, &RoomState) -> T,
        awake: impl FnOnce(M, &Addr<RoomActor>) -> T,
    ) -> T {
        let mut presence = hosted.presence();
        if let Presence::Parking { addr } = &*presence {
            let addr = addr.clone();
            *presence = Presence::Awake {
                addr,
                active: false,
            };
        }
        match &*presence {
            Presence::Parked(state) => parked(msg, state),
            Presence::Awake { addr, .. } | Presence::Parking { addr } => awake(msg, addr),
        }
    }

    /// `f` on the actor of `hosted`, started first if the room was parked, under the
    /// room's lock: a message sent from `f` is queued before the room can park. Private,
    /// and `f` only sends: no address leaves the registry.
    fn with_actor<T>(&self, hosted: &Hosted, f: impl FnOnce(&Addr<RoomActor>) -> T) -> T {
        let mut presence = hosted.presence();
        let addr = match &mut *presence {
            Presence::Awake { addr, active } => {
                *active = true;
                return f(addr);
            }
            Presence::Parking { addr } => addr.clone(),
            Presence::Parked(state) => {
                let empty = RoomState::new(state.key.clone(), state.room_type.clone());
                self.start(std::mem::replace(state, empty), hosted)
            }
        };
        let out = f(&addr);
        *presence = Presence::Awake { addr, active: true };
        out
    }

    /// Starts a parked room's actor on its shard.
    fn start(&self, state: RoomState, hosted: &Hosted) -> Addr<RoomActor> {
        let (arbiter, peers) = &self
            .hosts
            .get()
            .expect("rooms are reached only once their shards are known")[hosted.shard];
        let (peers, number) = (peers.clone(), hosted.number);
        self.awake.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!(METRIC_ROOMS_AWAKE).increment(1.0);
        // The mailbox has its full capacity from the start: messages queue before the actor
        // runs on its shard (`Actor::start_in_arbiter` would give it actix's default of 16
        // until then, and a burst of bookings would find it full).
        let (tx, rx) = actix::dev::channel::channel(ROOM_MAILBOX);
        arbiter.spawn_fn(move || {
            let ctx = Context::with_receiver(rx);
            actix::spawn(ctx.into_future(RoomActor::new(state, number, peers)));
        });
        Addr::new(tx)
    }

    /// Registers a new room, parked.
    pub(crate) fn insert(&self, key: RoomKey, hosted: Hosted) {
        write(&self.rooms).insert(key, hosted);
    }

    /// Rooms whose actor runs.
    pub(crate) fn awake(&self) -> usize {
        self.awake.load(Ordering::Relaxed)
    }

    /// One sweep of shard `shard`'s rooms: a room nobody reached since the last sweep is
    /// asked to park ([`Park`]); the others are marked untouched for the next. Returns
    /// how many were asked.
    pub(crate) fn sweep(&self, shard: usize) -> usize {
        let mut asked = 0;
        for hosted in self.read().values().filter(|h| h.shard == shard) {
            let mut presence = hosted.presence();
            if let Presence::Awake { addr, active } = &mut *presence {
                if std::mem::take(active) {
                    continue;
                }
                // A full mailbox is a busy room: it is left awake.
                if addr.try_send(Park).is_ok() {
                    let addr = addr.clone();
                    *presence = Presence::Parking { addr };
                    asked += 1;
                }
            }
        }
        asked
    }

    /// Parks room `key` with `state` if it is still [`Presence::Parking`] (nobody reached
    /// it since the sweep): then its actor must stop at once, having handed its state over.
    fn park(&self, key: &RoomKey, state: impl FnOnce() -> RoomState) -> bool {
        let rooms = self.read();
        let Some(hosted) = rooms.get(key) else {
            return false;
        };
        let mut presence = hosted.presence();
        if !matches!(*presence, Presence::Parking { .. }) {
            return false;
        }
        *presence = Presence::Parked(Box::new(state()));
        self.awake.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!(METRIC_ROOMS_AWAKE).decrement(1.0);
        true
    }

    /// A room asked to park that could not (busy): awake again, for the next sweep.
    fn stay_awake(&self, key: &RoomKey) {
        if let Some(hosted) = self.read().get(key) {
            let mut presence = hosted.presence();
            if let Presence::Parking { addr } = &*presence {
                let addr = addr.clone();
                *presence = Presence::Awake { addr, active: true };
            }
        }
    }

    /// Room `key`'s snapshot part ([`SnapshotRoom`]): taken here from a parked room's
    /// state (which has everything of the room, all of it durable), asked of its actor
    /// otherwise; the room is not woken for it.
    pub(crate) fn part_of(
        &self,
        key: &RoomKey,
        journal: &Journal<Event>,
    ) -> impl std::future::Future<Output = Result<RoomPart, String>> + use<> {
        enum Asked {
            Taken(Result<RoomPart, EngineError>),
            Sent(Request<RoomActor, SnapshotRoom>),
        }
        let asked = self.read().get(key).map(|hosted| {
            Self::as_it_is(
                hosted,
                SnapshotRoom,
                |_, state| Asked::Taken(part(state, &[], journal, 0)),
                |msg, addr| Asked::Sent(addr.send(msg)),
            )
        });
        async move {
            let part = match asked {
                None => return Err("a room left the registry".to_owned()),
                Some(Asked::Taken(part)) => part,
                Some(Asked::Sent(asked)) => asked
                    .await
                    .map_err(|e| format!("a room did not answer: {e}"))?,
            };
            part.map_err(|e| format!("a room could not give its part: {e}"))
        }
    }
}

/// A room reached through the registry at every message, by key: what a multi-step change keeps
/// across its steps instead of an address (see [`Rooms::send`]).
#[derive(Debug, Clone)]
pub(crate) struct RoomRef<'a> {
    /// The registry.
    pub rooms: &'a Rooms,
    /// The room.
    pub key: RoomKey,
}

impl RoomRef<'_> {
    /// Queues `msg` for the room now; the answer, or `Closed` if there is no such room or
    /// its shard has stopped.
    pub(crate) fn send<M>(
        &self,
        msg: M,
    ) -> impl std::future::Future<Output = Result<M::Result, MailboxError>> + use<M>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        RoomActor: Handler<M>,
    {
        let asked = self.rooms.send(&self.key, msg);
        async move {
            match asked {
                Some(asked) => asked.await,
                None => Err(MailboxError::Closed),
            }
        }
    }
}

/// The room holding reservation `id`, by the locator.
pub(crate) fn room_of<'a>(
    directory: &Directory,
    rooms: &'a Rooms,
    id: &ReservationId,
) -> Result<RoomRef<'a>, DomainError> {
    let key = directory
        .locate(id)
        .ok_or(DomainError::NotFound("reservation"))?;
    rooms.number(&key).ok_or(DomainError::NotFound("room"))?;
    Ok(RoomRef { rooms, key })
}

/// The actor owning one room.
#[derive(Debug)]
pub struct RoomActor {
    /// The room's state; the authority for its nights.
    state: RoomState,
    /// Its number in the directory's locator.
    number: u32,
    /// What it shares with the other rooms of its shard: the journal, the directory, who
    /// it reports holds and owed refunds to, and where its acks arrive.
    peers: Arc<RoomPeers>,
    /// Reservations being moved away or booked but not yet durable; `None` while there
    /// are none, which is most of a room's life (a room is resident for the node's life,
    /// so its empty tables would cost every room their size).
    in_flight: Option<Box<InFlight>>,
    /// Bytes per reservation of its last snapshot part (rounded up; 0 before the first),
    /// to make the next part's vector about its size at once. Beside `number`, it costs
    /// the actor no space.
    part_bytes_per_kept: u32,
}

/// What a room has in flight. Bounded by the engine's in-flight limit.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    /// Reservations being moved to another room: the move's first half passed here and
    /// its outcome has not arrived. No other change to them is decided meanwhile. In
    /// memory only: a move is one journal event, so after a restart each reservation is
    /// wholly in one room.
    moving: IdSet,
    /// New reservations applied here whose creation is queued for the journal and not yet
    /// acknowledged, each with the journal's durable seq when it was queued (its own seq
    /// is above that). A snapshot part lists them: recovery drops any the journal does not
    /// hold (a batch that failed after this room was encoded). A list, not a map: it holds
    /// the bookings of the room's few messages the journal has not answered, in the order
    /// queued, and acks come in that order, so the ones acknowledged are at its front
    /// (measured: hashing each id in and out of a map was 3 % of a shard's time
    /// in-process).
    unacked: Vec<(ReservationId, u64)>,
}

impl InFlight {
    /// Whether `id` is queued for the journal and not yet acknowledged.
    fn is_unacked(&self, id: &ReservationId) -> bool {
        self.unacked.iter().any(|(u, _)| u == id)
    }

    /// The creations `ids` left the journal (acknowledged or failed): they are no longer
    /// unacked.
    fn acked(&mut self, ids: impl Iterator<Item = ReservationId> + Clone) {
        let n = ids.clone().count();
        let front = self
            .unacked
            .iter()
            .zip(ids.clone())
            .take_while(|((u, _), id)| u == id)
            .count();
        if front == n {
            self.unacked.drain(..front);
        } else {
            // Out of the usual order: by id.
            self.unacked
                .retain(|(u, _)| !ids.clone().any(|id| id == *u));
        }
    }
}

/// A set of reservation ids with the cheap id hasher (and no per-set random state).
type IdSet = HashSet<ReservationId, std::hash::BuildHasherDefault<innkeep_engine::ids::IdHasher>>;

impl RoomActor {
    pub(crate) fn new(state: RoomState, number: u32, peers: Arc<RoomPeers>) -> Self {
        Self {
            state,
            number,
            peers,
            in_flight: None,
            part_bytes_per_kept: 0,
        }
    }

    fn is_moving(&self, id: &ReservationId) -> bool {
        self.in_flight
            .as_ref()
            .is_some_and(|f| f.moving.contains(id))
    }

    fn in_flight(&mut self) -> &mut InFlight {
        self.in_flight.get_or_insert_with(Box::default)
    }

    /// Frees the in-flight tables once both are empty.
    fn settle(&mut self) {
        if self
            .in_flight
            .as_ref()
            .is_some_and(|f| f.moving.is_empty() && f.unacked.is_empty())
        {
            self.in_flight = None;
        }
    }

    /// Refuses a change to a reservation that is being moved.
    fn not_moving(&self, id: &ReservationId) -> Result<(), EngineError> {
        if self.is_moving(id) {
            return Err(DomainError::MoveInProgress.into());
        }
        Ok(())
    }

    /// Writes a change of sold nights to this shard's index.
    fn publish(&self, delta: &NightsDelta) {
        if delta.booked.is_empty() && delta.released.is_empty() {
            return;
        }
        write(self.peers.directory.index(self.peers.shard)).apply_delta(
            &self.state.key,
            &delta.booked,
            &delta.released,
        );
    }

    /// Drops the key a failed booking `id` recorded (and only that booking's).
    fn forget_key(&self, slot: Option<&(HotelId, IdempotencyKey)>, id: &ReservationId) {
        if let Some(slot) = slot {
            let mut keys = self.peers.directory.keys(slot);
            if keys.finished.get(slot).map(|e| e.reservation_id) == Some(*id) {
                keys.finished.remove(slot);
            }
        }
    }

    /// Queues `event` for the journal; its ack arrives with the rest of this shard's.
    fn append(&self, event: Event) -> Result<AckReceiver, JournalError> {
        self.peers.journal.append_via(event, &self.peers.acks)
    }

    fn view(&self) -> RoomView {
        view_of(&self.state)
    }

    /// Journals `event` and blocks this room until it is durable, then applies it and
    /// answers with `reply(self)`. Used for changes to existing reservations and the room:
    /// they are rare per room, and blocking keeps "decide, persist, apply" atomic, so a
    /// second change is always decided against the state the first one left.
    ///
    /// `span` is the caller's span; it records the journal sequence number the event got.
    fn persist_then_apply<T: Send + 'static>(
        &mut self,
        event: Event,
        ctx: &mut Context<Self>,
        span: tracing::Span,
        reply: impl FnOnce(&mut Self) -> T + 'static,
    ) -> ResponseFuture<Result<T, EngineError>> {
        self.persist_then(event, ctx, span, move |act, event| {
            let delta = act.state.apply(&event);
            act.publish(&delta);
            reply(act)
        })
    }

    /// [`RoomActor::persist_then_apply`] with the applying left to `then`, for events this
    /// room cannot apply alone (a move's arriving half needs the reservation).
    fn persist_then<T: Send + 'static>(
        &mut self,
        event: Event,
        ctx: &mut Context<Self>,
        span: tracing::Span,
        then: impl FnOnce(&mut Self, Event) -> T + 'static,
    ) -> ResponseFuture<Result<T, EngineError>> {
        let ack = match self.append(event.clone()) {
            Ok(ack) => ack,
            Err(e) => return Box::pin(async move { Err(journal_error(e)) }),
        };
        let (tx, rx) = oneshot::channel();
        ctx.wait(ack.into_actor(self).map(move |acked, act, _ctx| {
            let result = match acked {
                Ok(Ok(seq)) => {
                    span.record("seq", seq);
                    span.in_scope(|| tracing::debug!("change durable"));
                    Ok(then(act, event))
                }
                Ok(Err(e)) => Err(journal_error(e)),
                Err(_) => Err(EngineError::ShuttingDown),
            };
            let _ = tx.send(result);
        }));
        Box::pin(async move { rx.await.unwrap_or(Err(EngineError::ShuttingDown)) })
    }
}

/// What a room answers [`GetView`] with.
fn view_of(state: &RoomState) -> RoomView {
    RoomView {
        number: state.key.number.clone(),
        room_type: state.room_type.clone(),
        occupancy: state.occupancy(),
        housekeeping: state.housekeeping,
        reservation: state.occupant,
        out_of_order: state
            .out_of_order
            .iter()
            .map(|(from, range)| OutOfOrderView {
                from: *from,
                to: range.to,
                reason: range.reason.clone(),
            })
            .collect(),
    }
}

/// What a room holds on `[from, to)` ([`RoomState::holdings`]); a reservation being moved
/// or not yet durable cannot be moved.
fn holdings_of(
    state: &RoomState,
    in_flight: Option<&InFlight>,
    from: Date,
    to: Date,
    today: Date,
) -> Vec<Held> {
    let busy =
        |id: &ReservationId| in_flight.is_some_and(|f| f.moving.contains(id) || f.is_unacked(id));
    state.holdings(from, to, today, busy)
}

/// A question a room answers from its state alone: a parked room is answered from the
/// registry without starting its actor ([`Rooms::query`]).
pub(crate) trait Query: Message + Send + 'static
where
    Self::Result: Send,
{
    /// The answer, from the room's state and what it has in flight.
    fn answer(self, state: &RoomState, in_flight: Option<&InFlight>) -> Self::Result;
}

/// Maps a journal failure to what the caller sees.
pub(crate) fn journal_error(e: JournalError) -> EngineError {
    match e {
        JournalError::Overloaded => EngineError::Overloaded,
        JournalError::Closed => EngineError::ShuttingDown,
        JournalError::Fenced { reason } => EngineError::NotOwner(reason),
        other => EngineError::Unavailable(other.to_string()),
    }
}

impl Actor for RoomActor {
    type Context = Context<Self>;
}

impl Handler<Reserve> for RoomActor {
    type Result = ();

    /// Decides the message's bookings in order, each as if it came alone (a later one sees
    /// the nights an earlier one took), then journals the ones taken together: one journal
    /// message and one ack for the lot, all durable or none. The answers go back together,
    /// once the last is known: one reply per message, not one per booking.
    fn handle(&mut self, msg: Reserve, ctx: &mut Self::Context) {
        let Reserve { first, more, reply } = msg;
        let mut answers: Vec<BookResult> = Vec::with_capacity(1 + more.len());
        let mut refused = Vec::new();
        let mut taken = Vec::with_capacity(1 + more.len());
        let mut events = Vec::with_capacity(1 + more.len());
        let mut nights = NightsDelta::default();
        for booking in std::iter::once(first).chain(more) {
            match self.take_nights(booking, answers.len(), &mut nights) {
                Ok((t, event)) => {
                    taken.push(t);
                    events.push(event);
                    // Replaced once the journal has answered.
                    answers.push(Err(EngineError::ShuttingDown));
                }
                Err((why, draft)) => {
                    refused.push((answers.len(), draft));
                    answers.push(Err(why));
                }
            }
        }
        let reply_with = move |answers: Vec<BookResult>| {
            // Nobody may be waiting any more: then nobody needs the answers.
            let _ = reply.send(ReserveReply { answers, refused });
        };
        // The index learns the message's nights at once: one lock and one lookup of this
        // room for the lot. Until then it shows them free, which only costs a booking
        // elsewhere a refusal from this room (the room decides; the index is a guide).
        self.publish(&nights);
        if taken.is_empty() {
            reply_with(answers);
            return;
        }
        let durable_before = self.peers.journal.durable_seq();
        let ack = match self.peers.journal.append_many_via(events, &self.peers.acks) {
            Ok(ack) => ack,
            Err(e) => {
                self.give_back(taken, journal_error(e), &mut answers);
                reply_with(answers);
                return;
            }
        };
        self.in_flight()
            .unacked
            .extend(taken.iter().map(|t| (t.created.id, durable_before)));
        // Spawned, not waited on: the room keeps deciding other bookings meanwhile.
        ctx.spawn(ack.into_actor(self).map(move |acked, act, _ctx| {
            if let Some(f) = act.in_flight.as_mut() {
                f.acked(taken.iter().map(|t| t.created.id));
            }
            act.settle();
            match acked {
                Ok(Ok(last_seq)) => act.made_durable(taken, last_seq, &mut answers),
                Ok(Err(e)) => act.give_back(taken, journal_error(e), &mut answers),
                Err(_) => act.give_back(taken, EngineError::ShuttingDown, &mut answers),
            }
            reply_with(answers);
        }));
    }
}

impl RoomActor {
    /// After the journal acknowledged the records of `taken` up to `last_seq`: makes each
    /// reservation findable and its hold due, and puts it in its place in `answers`.
    fn made_durable(&mut self, taken: Vec<Taken>, last_seq: u64, answers: &mut [BookResult]) {
        // Consecutive records, the last one's seq acknowledged.
        let first_seq = last_seq + 1 - taken.len() as u64;
        for (seq, t) in (first_seq..).zip(taken) {
            t.span.record("seq", seq);
            t.span.in_scope(|| tracing::debug!("reservation durable"));
            let id = t.created.id;
            // The reservation as created (nobody knew its id to change it since): the
            // answer shares it, it is not copied.
            if !self.state.ledger.contains(&id) {
                answers[t.answer] = Err(DomainError::NotFound("reservation").into());
                continue;
            }
            let r = t.created;
            // Findable (by id and by its key) and its hold queued for expiry before
            // anyone learns the id.
            self.peers.directory.set_location(id, self.number);
            self.peers.holds.started(
                id,
                r.hold_expires_at,
                Some(Charge {
                    out_trade_no: r.payment.out_trade_no,
                    amount: r.payment.amount,
                }),
                r.created_at,
            );
            answers[t.answer] = Ok(r);
        }
    }
}

/// A booking whose nights a room took, waiting for its event to be durable.
struct Taken {
    /// The reservation as created (journal, live stream and answer share it).
    created: Arc<Reservation>,
    /// Its idempotency key as recorded in the directory, to forget if it is undone.
    key: Option<(HotelId, IdempotencyKey)>,
    /// Where its outcome goes among its message's answers.
    answer: usize,
    /// Its span in the room, which records the seq its event got.
    span: tracing::Span,
}

impl RoomActor {
    /// Takes `booking`'s nights if they are free: applies its creation now (so no other
    /// booking takes these nights while the journal writes it), adds the nights to
    /// `nights` for the index, and hands back the event to journal. `answer`: where its
    /// outcome goes among its message's answers. A refused booking comes back with why,
    /// and its draft untouched.
    fn take_nights(
        &mut self,
        booking: RoomBooking,
        answer: usize,
        nights: &mut NightsDelta,
    ) -> Result<(Taken, Event), (EngineError, Box<Draft>)> {
        let span = tracing::debug_span!(
            parent: &booking.span,
            "room_reserve",
            room = %self.state.key.number,
            seq = tracing::field::Empty
        );
        let entered = span.enter();
        let RoomBooking {
            draft, idempotency, ..
        } = booking;
        let decided =
            self.state
                .decide_stay(&draft.id, &draft.request.room_type, &draft.request.stay);
        if let Err(e) = decided {
            tracing::debug!(error = %e, "room refused");
            return Err((e.into(), draft));
        }
        // Built once and shared from here on (journal, live stream, answer); the room keeps
        // its own compact copy.
        let reservation = draft.into_reservation(self.state.key.number.clone());
        let id = reservation.id;
        // The key is recorded before the event is queued, so a snapshot that sees this
        // booking in the room sees its key too (`crate::snapshot`). Retries cannot see it
        // early: the key stays in flight, which admission looks at first, until the
        // booking has its answer.
        let key = idempotency.as_ref().map(|i| {
            let slot = (reservation.hotel_id.clone(), i.key.clone());
            let entry = IdempotencyEntry {
                fingerprint: i.fingerprint,
                reservation_id: id,
                created_at: reservation.created_at,
            };
            self.peers
                .directory
                .keys(&slot)
                .finished
                .insert(slot.clone(), entry);
            slot
        });
        let created = Arc::new(reservation);
        let event = Event::ReservationCreated {
            reservation: created.clone(),
            idempotency,
        };
        // Apply before the write is durable so no other booking takes these nights
        // meanwhile (group commit keeps the room serving), and undo it if the journal
        // refuses. Nobody learns the id before the ack, so nothing can depend on it yet.
        nights.merge(self.state.apply(&event));
        // Fault injection (tests): a room changed half-way, which crash-only supervision
        // turns into an abort of the process (see `crate::crash`).
        if self.peers.directory.faults.panic_in_room.as_ref() == Some(&self.state.key) {
            panic!(
                "injected fault: room {} panics while booking",
                self.state.key.number
            );
        }
        drop(entered);
        let taken = Taken {
            created,
            key,
            answer,
            span,
        };
        Ok((taken, event))
    }

    /// Undoes bookings whose events the journal did not make durable, latest first, and
    /// answers each with `failure` in `answers`.
    fn give_back(&mut self, taken: Vec<Taken>, failure: EngineError, answers: &mut [BookResult]) {
        for t in taken.into_iter().rev() {
            let id = t.created.id;
            let delta = self.state.revert_created(&id);
            self.publish(&delta);
            self.forget_key(t.key.as_ref(), &id);
            answers[t.answer] = Err(failure.clone());
        }
    }
}

impl Handler<ChangeReservation> for RoomActor {
    type Result = ResponseFuture<Result<Reservation, EngineError>>;

    fn handle(&mut self, msg: ChangeReservation, ctx: &mut Self::Context) -> Self::Result {
        let span = tracing::debug_span!(
            parent: &msg.span,
            "room_change",
            room = %self.state.key.number,
            action = msg.action.name(),
            seq = tracing::field::Empty
        );
        let _entered = span.enter();
        if let Err(e) = self.not_moving(&msg.id) {
            return Box::pin(async move { Err(e) });
        }
        let was_pending = self
            .state
            .kept(&msg.id)
            .is_ok_and(|r| r.status() == Status::PendingPayment);
        let event =
            match self
                .state
                .decide_change(&msg.id, msg.action, msg.if_match, msg.now, msg.today)
            {
                Ok(event) => event,
                Err(e) => {
                    tracing::debug!(error = %e, "change refused");
                    return Box::pin(async move { Err(e.into()) });
                }
            };
        let id = msg.id;
        let was_owed = self.refund_owed(&id);
        self.persist_then_apply(event, ctx, span.clone(), move |act| {
            act.after_change(id, was_pending, was_owed)
        })
        .map_result()
    }
}

impl RoomActor {
    fn refund_owed(&self, id: &ReservationId) -> bool {
        self.state.kept(id).is_ok_and(|r| r.refund_owed())
    }

    /// After a change to reservation `id` is applied: takes its hold out of the shard's
    /// open holds when it ended, tells the payment supervisor when it newly owes a refund, then answers the
    /// reservation.
    fn after_change(
        &mut self,
        id: ReservationId,
        was_pending: bool,
        was_owed: bool,
    ) -> Result<Reservation, EngineError> {
        let reservation = self.state.reservation(&id);
        if let Ok(r) = &reservation {
            if was_pending && r.status != Status::PendingPayment {
                self.peers
                    .holds
                    .ended(id, r.hold_expires_at, r.created_by.as_deref());
            }
            if (!was_owed && r.payment.refund_owed) || r.balance_charge().is_some() {
                self.peers.payment_due.do_send(PaymentDue { id });
            }
        }
        reservation.map_err(EngineError::from)
    }

    /// After a modification of reservation `id` is applied here: tells the payment
    /// supervisor when a difference is now to be refunded or charged (it settles each
    /// once, so telling it again is harmless).
    fn tell_payments(&self, id: ReservationId) {
        let due = self
            .state
            .kept(&id)
            .is_ok_and(|r| r.refund_owed() || r.difference_unsettled());
        if due {
            self.peers.payment_due.do_send(PaymentDue { id });
        }
    }
}

impl Handler<ApplyPayment> for RoomActor {
    type Result = ResponseFuture<Result<(Reservation, PaymentOutcome), EngineError>>;

    fn handle(&mut self, msg: ApplyPayment, ctx: &mut Self::Context) -> Self::Result {
        let span = tracing::debug_span!(
            parent: &msg.span,
            "room_payment",
            room = %self.state.key.number,
            seq = tracing::field::Empty
        );
        let _entered = span.enter();
        let id = msg.id;
        let (event, outcome) = match self.state.decide_payment(&id, &msg.report, msg.now) {
            Ok(decided) => decided,
            Err(e) => return Box::pin(async move { Err(e.into()) }),
        };
        let Some(event) = event else {
            let current = self.state.reservation(&id);
            return Box::pin(async move { Ok((current?, outcome)) });
        };
        if let Err(e) = self.not_moving(&id) {
            return Box::pin(async move { Err(e) });
        }
        let was_pending = self
            .state
            .kept(&id)
            .is_ok_and(|r| r.status() == Status::PendingPayment);
        let was_owed = self.refund_owed(&id);
        self.persist_then_apply(event, ctx, span.clone(), move |act| {
            act.after_change(id, was_pending, was_owed)
                .map(|r| (r, outcome))
        })
        .map_result()
    }
}

impl Handler<RecordRefund> for RoomActor {
    type Result = ResponseFuture<Result<Reservation, EngineError>>;

    fn handle(&mut self, msg: RecordRefund, ctx: &mut Self::Context) -> Self::Result {
        let id = msg.id;
        match self.state.decide_refunded(&id, msg.now) {
            Err(e) => Box::pin(async move { Err(e.into()) }),
            Ok(None) => {
                let current = self.state.reservation(&id);
                Box::pin(async move { Ok(current?) })
            }
            Ok(Some(_)) if self.is_moving(&id) => {
                Box::pin(async { Err(DomainError::MoveInProgress.into()) })
            }
            Ok(Some(event)) => self
                .persist_then_apply(event, ctx, tracing::Span::none(), move |act| {
                    act.state.reservation(&id).map_err(EngineError::from)
                })
                .map_result(),
        }
    }
}

trait FlattenResult<T> {
    fn map_result(self) -> ResponseFuture<Result<T, EngineError>>;
}

impl<T: 'static> FlattenResult<T> for ResponseFuture<Result<Result<T, EngineError>, EngineError>> {
    fn map_result(self) -> ResponseFuture<Result<T, EngineError>> {
        Box::pin(async move { self.await.and_then(|inner| inner) })
    }
}

impl Handler<SetHousekeeping> for RoomActor {
    type Result = ResponseFuture<Result<RoomView, EngineError>>;

    fn handle(&mut self, msg: SetHousekeeping, ctx: &mut Self::Context) -> Self::Result {
        let span = tracing::debug_span!(
            parent: &msg.span,
            "room_housekeeping",
            room = %self.state.key.number,
            seq = tracing::field::Empty
        );
        let _entered = span.enter();
        let decided = self.state.decide_housekeeping(msg.status, msg.now);
        self.change_room(decided, ctx, span.clone())
    }
}

impl RoomActor {
    /// Carries out a decided change to the room itself (housekeeping, out-of-order
    /// ranges) and answers with the room's view: a refusal as an error, no change at once,
    /// an event once it is durable and applied.
    fn change_room(
        &mut self,
        decided: Result<Option<Event>, DomainError>,
        ctx: &mut Context<Self>,
        span: tracing::Span,
    ) -> ResponseFuture<Result<RoomView, EngineError>> {
        match decided {
            Err(e) => Box::pin(async move { Err(e.into()) }),
            Ok(None) => {
                let view = self.view();
                Box::pin(async move { Ok(view) })
            }
            Ok(Some(event)) => self.persist_then_apply(event, ctx, span, |act| act.view()),
        }
    }
}

impl Handler<Retype> for RoomActor {
    type Result = ResponseFuture<Result<(), EngineError>>;

    fn handle(&mut self, msg: Retype, ctx: &mut Self::Context) -> Self::Result {
        if let Err(e) = self.state.decide_retype(&msg.room_type) {
            return Box::pin(async move { Err(e.into()) });
        }
        let key = self.state.key.clone();
        let room_type = msg.room_type;
        self.persist_then_apply(msg.event, ctx, tracing::Span::none(), move |act| {
            // Its sold nights stay; only their type changes.
            write(act.peers.directory.index(act.peers.shard)).put_room(&key, &room_type);
        })
    }
}

impl Handler<GetReservation> for RoomActor {
    type Result = Result<Arc<Reservation>, DomainError>;

    /// Rebuilds the reservation from the room's compact copy.
    fn handle(&mut self, msg: GetReservation, _ctx: &mut Self::Context) -> Self::Result {
        msg.answer(&self.state, self.in_flight.as_deref())
    }
}

impl Query for GetReservation {
    fn answer(
        self,
        state: &RoomState,
        _in_flight: Option<&InFlight>,
    ) -> Result<Arc<Reservation>, DomainError> {
        state.reservation(&self.0).map(Arc::new)
    }
}

impl Handler<GetDay> for RoomActor {
    type Result = MessageResult<GetDay>;

    fn handle(&mut self, msg: GetDay, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(msg.answer(&self.state, self.in_flight.as_deref()))
    }
}

impl Query for GetDay {
    fn answer(self, state: &RoomState, _in_flight: Option<&InFlight>) -> RoomDay {
        day_of(state, self.date, &self.tz)
    }
}

/// Sorts a room's reservations into the front desk's lists for `date`. Scans every
/// reservation the room has had: a few comparisons each, and the desk asks rarely.
fn day_of(state: &RoomState, date: Date, tz: &HotelTz) -> RoomDay {
    let mut day = RoomDay::default();
    // A reservation moved away is listed by its new room (this one no longer keeps it).
    for r in state.ledger.iter() {
        let (status, stay) = (r.status(), r.stay());
        let arriving = stay.arrival() == date
            && matches!(
                status,
                Status::PendingPayment | Status::Confirmed | Status::CheckedIn
            );
        let leaving = match status {
            Status::Confirmed | Status::CheckedIn => stay.departure() == date,
            // The day they really left: an early departure is listed on that day.
            Status::CheckedOut => {
                let left = r
                    .last_reached(Status::CheckedOut)
                    .map_or(stay.departure(), |at| tz.today(at));
                left == date
            }
            _ => false,
        };
        let in_house = status == Status::CheckedIn;
        if !(arriving || leaving || in_house) {
            continue;
        }
        let entry = DayReservation {
            id: r.id(),
            room: state.key.number.clone(),
            room_type: r.room_type_in(&state.room_type).clone(),
            guest_name: r.guest().name().to_owned(),
            stay,
            status,
            rate_plan: r
                .terms()
                .map_or_else(innkeep_engine::RatePlanCode::bar, |t| t.rate_plan.clone()),
        };
        for (yes, list) in [
            (arriving, &mut day.arrivals),
            (leaving, &mut day.departures),
            (in_house, &mut day.in_house),
        ] {
            if yes {
                list.push(entry.clone());
            }
        }
    }
    for list in [&mut day.arrivals, &mut day.departures, &mut day.in_house] {
        list.sort_by_key(|e| e.id);
    }
    day
}

impl Handler<GetTape> for RoomActor {
    type Result = MessageResult<GetTape>;

    fn handle(&mut self, msg: GetTape, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(msg.answer(&self.state, self.in_flight.as_deref()))
    }
}

impl Query for GetTape {
    fn answer(self, state: &RoomState, _in_flight: Option<&InFlight>) -> TapeRoom {
        tape_of(state, self.from, self.to)
    }
}

/// The room's row of the tape chart for the nights `[from, to)`: its calendar's spans
/// there (what holds the nights: live reservations, and checked-out ones with the nights
/// they slept) and its out-of-order ranges. Reads the calendar, not every reservation.
fn tape_of(state: &RoomState, from: Date, to: Date) -> TapeRoom {
    let reservations = state
        .ledger
        .overlapping(from, to)
        .iter()
        .filter_map(|span| {
            let kept = state.ledger.get(&span.id)?;
            Some(TapeReservation {
                id: span.id,
                status: kept.status(),
                stay: kept.stay(),
                held_from: span.from,
                held_to: span.to,
                guest_name: kept.guest().name().to_owned(),
                pinned: kept.pinned(),
            })
        })
        .collect();
    let out_of_order = state
        .out_of_order
        .iter()
        .filter(|(start, range)| **start < to && from < range.to)
        .map(|(start, range)| OutOfOrderView {
            from: *start,
            to: range.to,
            reason: range.reason.clone(),
        })
        .collect();
    TapeRoom {
        number: state.key.number.clone(),
        room_type: state.room_type.clone(),
        out_of_order,
        reservations,
    }
}

impl Handler<GetView> for RoomActor {
    type Result = MessageResult<GetView>;

    fn handle(&mut self, msg: GetView, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(msg.answer(&self.state, self.in_flight.as_deref()))
    }
}

impl Query for GetView {
    fn answer(self, state: &RoomState, _in_flight: Option<&InFlight>) -> RoomView {
        view_of(state)
    }
}

impl Handler<SetOutOfOrder> for RoomActor {
    type Result = ResponseFuture<Result<RoomView, EngineError>>;

    fn handle(&mut self, msg: SetOutOfOrder, ctx: &mut Self::Context) -> Self::Result {
        let span = tracing::debug_span!(parent: &msg.span, "room_out_of_order", room = %self.state.key.number, seq = tracing::field::Empty);
        let _entered = span.enter();
        let decided =
            self.state
                .decide_out_of_order(msg.from, msg.to, &msg.reason, msg.today, msg.now);
        self.change_room(decided, ctx, span.clone())
    }
}

impl Handler<ClearOutOfOrder> for RoomActor {
    type Result = ResponseFuture<Result<RoomView, EngineError>>;

    fn handle(&mut self, msg: ClearOutOfOrder, ctx: &mut Self::Context) -> Self::Result {
        let span = tracing::debug_span!(parent: &msg.span, "room_back_in_order", room = %self.state.key.number, seq = tracing::field::Empty);
        let _entered = span.enter();
        let decided = self.state.decide_back_in_order(msg.from, msg.now).map(Some);
        self.change_room(decided, ctx, span.clone())
    }
}

impl Handler<BeginMove> for RoomActor {
    type Result = Result<(Reservation, Date), EngineError>;

    fn handle(&mut self, msg: BeginMove, _ctx: &mut Self::Context) -> Self::Result {
        self.not_moving(&msg.id)?;
        let first_night = self
            .state
            .decide_move_out(&msg.id, &msg.to, msg.if_match, msg.today)?;
        let reservation = self.state.reservation(&msg.id)?;
        self.in_flight().moving.insert(msg.id);
        Ok((reservation, first_night))
    }
}

impl Handler<MoveIn> for RoomActor {
    type Result = ResponseFuture<Result<(Reservation, Event), EngineError>>;

    fn handle(&mut self, msg: MoveIn, ctx: &mut Self::Context) -> Self::Result {
        let span = tracing::debug_span!(parent: &msg.span, "room_move_in", room = %self.state.key.number, seq = tracing::field::Empty);
        let _entered = span.enter();
        // The move's capacity rule lives in the engine, once.
        let checked = innkeep_engine::state::check_capacity(
            &read(&self.peers.directory.catalog),
            &self.state.key.hotel_id,
            &self.state.room_type,
            msg.reservation.guests,
        )
        .and_then(|()| self.state.decide_move_in(&msg.reservation, msg.first_night))
        .map_err(EngineError::from);
        if let Err(e) = checked {
            return Box::pin(async move { Err(e) });
        }
        let id = msg.reservation.id;
        let event = Event::ReservationMoved {
            id,
            from: msg.from,
            to: self.state.key.clone(),
            room_type: self.state.room_type.clone(),
            first_night: msg.first_night,
            at: msg.now,
            // The staff chose this room.
            pins: true,
        };
        let reservation = msg.reservation;
        self.persist_then(event, ctx, span.clone(), move |act, event| {
            let delta = act.state.move_in(reservation, &event);
            act.publish(&delta);
            let moved = act.state.reservation(&id);
            moved.map(|r| (r, event)).map_err(EngineError::from)
        })
        .map_result()
    }
}

impl Handler<BeginModify> for RoomActor {
    type Result = ResponseFuture<Result<ModifyStep, EngineError>>;

    fn handle(&mut self, msg: BeginModify, ctx: &mut Self::Context) -> Self::Result {
        let span = tracing::debug_span!(parent: &msg.span, "room_modify", room = %self.state.key.number, seq = tracing::field::Empty);
        let _entered = span.enter();
        let id = msg.id;
        let decided = self.not_moving(&id).and_then(|()| {
            self.state
                .decide_modify(
                    &id,
                    &msg.modification,
                    msg.priced_version,
                    msg.if_match,
                    msg.now,
                )
                .map_err(EngineError::from)
        });
        match decided {
            Err(e) => Box::pin(async move { Err(e) }),
            Ok(ModifyPlan::Unchanged) => {
                let r = self.state.reservation(&id).map_err(EngineError::from);
                Box::pin(async move { r.map(ModifyStep::Done) })
            }
            Ok(ModifyPlan::Elsewhere) => {
                let r = self.state.reservation(&id).map_err(EngineError::from);
                if r.is_ok() {
                    self.in_flight().moving.insert(id);
                }
                Box::pin(async move { r.map(ModifyStep::Elsewhere) })
            }
            Ok(ModifyPlan::Here(event)) => self
                .persist_then_apply(event, ctx, span.clone(), move |act| {
                    act.tell_payments(id);
                    act.state
                        .reservation(&id)
                        .map(ModifyStep::Done)
                        .map_err(EngineError::from)
                })
                .map_result(),
        }
    }
}

impl Handler<ModifyIn> for RoomActor {
    type Result = ResponseFuture<Result<(Reservation, Event), EngineError>>;

    fn handle(&mut self, msg: ModifyIn, ctx: &mut Self::Context) -> Self::Result {
        let span = tracing::debug_span!(parent: &msg.span, "room_modify_in", room = %self.state.key.number, seq = tracing::field::Empty);
        let _entered = span.enter();
        let decided =
            self.state
                .decide_modify_in(&msg.reservation, &msg.from, &msg.modification, msg.now);
        let event = match decided {
            Ok(event) => event,
            Err(e) => return Box::pin(async move { Err(e.into()) }),
        };
        let (id, reservation) = (msg.reservation.id, msg.reservation);
        self.persist_then(event, ctx, span.clone(), move |act, event| {
            let delta = act.state.modify_in(reservation, &event);
            act.publish(&delta);
            act.tell_payments(id);
            let modified = act.state.reservation(&id);
            modified.map(|r| (r, event)).map_err(EngineError::from)
        })
        .map_result()
    }
}

impl Handler<FinishMove> for RoomActor {
    type Result = ();

    fn handle(&mut self, msg: FinishMove, _ctx: &mut Self::Context) {
        if let MoveOutcome::Committed(event) = &msg.outcome {
            let delta = self.state.apply(event);
            self.publish(&delta);
        }
        if let Some(f) = self.in_flight.as_mut() {
            f.moving.remove(&msg.id);
        }
        self.settle();
    }
}

impl RoomActor {
    /// What this room holds on `[from, to)` for a rearrangement: a reservation being moved
    /// or modified elsewhere, or whose creation is not durable yet, stays put.
    fn holdings(&self, from: Date, to: Date, today: Date) -> Vec<Held> {
        holdings_of(&self.state, self.in_flight.as_deref(), from, to, today)
    }

    /// Applies a durable rearrangement: the reservations leaving go, those arriving come
    /// (the index hears of each half separately: a night given and taken back must end
    /// sold), and the new reservation's hold is queued for expiry when it is this room's.
    fn commit_rearrangement(&mut self, commit: Commit) {
        self.apply_rearrangement(&commit.event, commit.arriving);
        let _ = commit.applied.send(());
    }

    fn apply_rearrangement(&mut self, event: &Event, mut arriving: Vec<Reservation>) {
        let (_, out) = self.state.rearranged_out(event);
        self.publish(&out);
        if let Event::ModifyRearranged { modified, .. } = event {
            self.apply_modified(modified, &mut arriving);
        }
        let arrived = self.state.rearranged_in(arriving, event);
        self.publish(&arrived);
        // The new reservations here: each one's hold queued for expiry, with the charge to
        // create: its own, or a multi-room booking's one charge (for the sum of its
        // reservations' shares) with its first reservation.
        // (The coordinator already pointed the locator here, see `crate::rearranging`.)
        let (created, charge) = match event {
            Event::Rearranged { reservation, .. } => (
                std::slice::from_ref(reservation),
                Some(Charge {
                    out_trade_no: reservation.payment.out_trade_no,
                    amount: reservation.payment.amount,
                }),
            ),
            Event::BookingCreated {
                booking,
                reservations,
                ..
            } => {
                let amount = reservations.first().map(|lead| innkeep_engine::Money {
                    amount_minor: reservations
                        .iter()
                        .map(|r| r.payment.amount.amount_minor)
                        .sum(),
                    currency: lead.payment.amount.currency,
                });
                let charge = amount.map(|amount| Charge {
                    out_trade_no: booking.out_trade_no(),
                    amount,
                });
                (reservations.as_slice(), charge)
            }
            _ => return,
        };
        for (i, r) in created.iter().enumerate() {
            if r.room == self.state.key.number {
                self.peers.holds.started(
                    r.id,
                    r.hold_expires_at,
                    charge.filter(|_| i == 0),
                    r.created_at,
                );
            }
        }
    }
}

impl RoomActor {
    /// This room's part of the modification in an [`Event::ModifyRearranged`], once the
    /// moves left: the whole of it when the reservation stays here; its leaving when it
    /// goes; its arrival (taken out of `arriving`) when it comes here. The room holding it
    /// after tells the payment supervisor of a difference to settle.
    fn apply_modified(&mut self, modified: &Event, arriving: &mut Vec<Reservation>) {
        let Event::ReservationModified { room, id, to, .. } = modified else {
            return;
        };
        if *room == self.state.key {
            let delta = match to {
                None => self.state.apply(modified),
                Some(_) => self.state.move_out(id).1,
            };
            self.publish(&delta);
            if to.is_none() {
                self.tell_payments(*id);
            }
        }
        if to.as_ref() == Some(&self.state.key.number) {
            if let Some(i) = arriving.iter().position(|r| r.id == *id) {
                let r = arriving.swap_remove(i);
                let delta = self.state.modify_in(r, modified);
                self.publish(&delta);
                self.tell_payments(*id);
            }
        }
    }
}

impl Handler<GetHoldings> for RoomActor {
    type Result = MessageResult<GetHoldings>;

    fn handle(&mut self, msg: GetHoldings, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(msg.answer(&self.state, self.in_flight.as_deref()))
    }
}

impl Query for GetHoldings {
    fn answer(self, state: &RoomState, in_flight: Option<&InFlight>) -> Vec<Held> {
        holdings_of(state, in_flight, self.from, self.to, self.today)
    }
}

impl Handler<LockForRearrangement> for RoomActor {
    type Result = ();

    /// Answers the room as it is, then waits for the decision, taking no other message
    /// meanwhile (the rearrangement's rooms are locked in one order by every coordinator,
    /// and the coordinator waits on nothing a locked room does, so this cannot deadlock).
    fn handle(&mut self, msg: LockForRearrangement, ctx: &mut Self::Context) {
        let holdings = self.holdings(msg.from, msg.to, msg.today);
        let leaving = msg
            .leaving
            .iter()
            .filter_map(|id| self.state.reservation(id).ok())
            .collect();
        if msg.locked.send(Locked { holdings, leaving }).is_err() {
            // The coordinator is gone: nothing will be decided.
            return;
        }
        ctx.wait(msg.decision.into_actor(self).map(|decision, act, _ctx| {
            // A dropped sender: the rearrangement was given up, and nothing changed.
            if let Ok(commit) = decision {
                act.commit_rearrangement(commit);
            }
        }));
    }
}

impl RoomActor {
    /// Decides one part of a multi-room booking's change, changing nothing.
    fn prepare_part(&self, ask: &PartAsk) -> PartAnswer {
        let version = |id: &ReservationId| self.state.kept(id).map_or(0, |r| r.version());
        match ask {
            PartAsk::Change {
                id,
                action,
                now,
                today,
            } => {
                let decided = self.not_moving(id).and_then(|()| {
                    match self
                        .state
                        .decide_change(id, action.clone(), None, *now, *today)
                    {
                        Ok(event) => Ok(Some(event)),
                        // Not one the action applies to (already cancelled, checked in,
                        // or its hold not lapsed): it stays as it is.
                        Err(DomainError::InvalidTransition { .. }) => Ok(None),
                        Err(e) => Err(e.into()),
                    }
                });
                PartAnswer {
                    version: version(id),
                    decided,
                    outcome: None,
                }
            }
            PartAsk::Payment { id, report, now } => {
                let (decided, outcome) = match self.state.decide_payment(id, report, *now) {
                    Ok((None, outcome)) => (Ok(None), Some(outcome)),
                    Ok((Some(event), outcome)) => {
                        (self.not_moving(id).map(|()| Some(event)), Some(outcome))
                    }
                    Err(e) => (Err(e.into()), None),
                };
                PartAnswer {
                    version: version(id),
                    decided,
                    outcome,
                }
            }
        }
    }

    /// Applies this room's parts of a durable multi-room change, then updates the shard's
    /// open holds and tells the payment supervisor what it needs to know, as after a change of one
    /// reservation. `before` is, per reservation changed, whether it was pending payment
    /// and whether it owed a refund when the parts were decided (the room took no message
    /// since).
    fn apply_decided(&mut self, decided: Decided, before: &[(ReservationId, bool, bool)]) {
        let delta = self.state.apply(&decided.event);
        self.publish(&delta);
        for (id, was_pending, was_owed) in before {
            let _ = self.after_change(*id, *was_pending, *was_owed);
        }
        let _ = decided.applied.send(());
    }
}

impl Handler<Prepare> for RoomActor {
    type Result = ();

    /// Answers every part, then, when one of them decided a change, waits for the
    /// decision, taking no other message meanwhile (see [`Prepare`]).
    fn handle(&mut self, msg: Prepare, ctx: &mut Self::Context) {
        let answers: Vec<PartAnswer> = msg.asks.iter().map(|a| self.prepare_part(a)).collect();
        let locked = answers.iter().any(|a| matches!(a.decided, Ok(Some(_))));
        let before: Vec<(ReservationId, bool, bool)> = msg
            .asks
            .iter()
            .zip(&answers)
            .filter(|(_, a)| matches!(a.decided, Ok(Some(_))))
            .map(|(ask, _)| {
                let (PartAsk::Change { id, .. } | PartAsk::Payment { id, .. }) = ask;
                let pending = self
                    .state
                    .kept(id)
                    .is_ok_and(|r| r.status() == Status::PendingPayment);
                (*id, pending, self.refund_owed(id))
            })
            .collect();
        if msg.answer.send(answers).is_err() || !locked {
            // The coordinator is gone, or nothing here changes: nothing to wait for.
            return;
        }
        ctx.wait(
            msg.decision
                .into_actor(self)
                .map(move |decision, act, _ctx| {
                    // A dropped sender: the change was given up, and nothing changed.
                    if let Ok(decided) = decision {
                        act.apply_decided(decided, &before);
                    }
                }),
        );
    }
}

impl Handler<NoShowsDue> for RoomActor {
    type Result = bool;

    fn handle(&mut self, msg: NoShowsDue, _ctx: &mut Self::Context) -> bool {
        msg.answer(&self.state, self.in_flight.as_deref())
    }
}

impl Query for NoShowsDue {
    /// What [`NightAudit`] would mark: due, and not being moved.
    fn answer(self, state: &RoomState, in_flight: Option<&InFlight>) -> bool {
        state
            .due_no_shows(self.audit_date)
            .iter()
            .any(|id| !in_flight.is_some_and(|f| f.moving.contains(id)))
    }
}

impl Handler<NightAudit> for RoomActor {
    type Result = ResponseFuture<Result<usize, EngineError>>;

    fn handle(&mut self, msg: NightAudit, ctx: &mut Self::Context) -> Self::Result {
        let due: Vec<(ReservationId, Event)> = self
            .state
            .due_no_shows(msg.audit_date)
            .into_iter()
            .filter(|id| !self.is_moving(id))
            .filter_map(|id| {
                let event = self
                    .state
                    .decide_no_show(&id, msg.audit_date, msg.now)
                    .ok()?;
                Some((id, event))
            })
            .collect();
        // Each is a different reservation, so all are decided up front and journaled
        // together (one group commit); each is applied when durable, in order. A paid
        // no-show is owed what its fee leaves: the payment supervisor is told, as after
        // any other change.
        let pending: Vec<_> = due
            .into_iter()
            .map(|(id, event)| {
                let was_owed = self.refund_owed(&id);
                self.persist_then_apply(event, ctx, tracing::Span::none(), move |act| {
                    if !was_owed && act.refund_owed(&id) {
                        act.peers.payment_due.do_send(PaymentDue { id });
                    }
                })
            })
            .collect();
        Box::pin(async move {
            let mut marked = 0;
            for p in pending {
                p.await?;
                marked += 1;
            }
            Ok(marked)
        })
    }
}

impl Handler<SnapshotRoom> for RoomActor {
    type Result = Result<RoomPart, EngineError>;

    /// Encodes this room between two of its messages, then marks the journal: the room
    /// appends its own events after applying them, and a change it persists first keeps
    /// it from handling anything (this message included) until applied, so the mark's seq
    /// is exactly the last of its events the bytes reflect. Moves and retypes, which
    /// involve more than this room, are held off by the gate the snapshot holds.
    fn handle(&mut self, _msg: SnapshotRoom, _ctx: &mut Self::Context) -> Self::Result {
        let empty = InFlight::default();
        let in_flight = self.in_flight.as_deref().unwrap_or(&empty);
        if !in_flight.moving.is_empty() {
            // Unreachable while the snapshot holds the gate; refused rather than trusted.
            return Err(EngineError::Unavailable(format!(
                "room {} is in the middle of a move",
                self.state.key.number
            )));
        }
        // Room for the reservations it has now at the last part's rate, and two more.
        let capacity_bytes =
            (self.state.ledger.len() + 2).saturating_mul(self.part_bytes_per_kept as usize);
        let part = part(
            &self.state,
            &in_flight.unacked,
            &self.peers.journal,
            capacity_bytes,
        )?;
        self.part_bytes_per_kept =
            u32::try_from(part.bytes.len().div_ceil(self.state.ledger.len().max(1)))
                .unwrap_or(u32::MAX);
        Ok(part)
    }
}

/// A room's snapshot part: `state` encoded, with the creations in it the journal has not
/// acknowledged (`unacked`, each with the durable seq when it was queued), and the
/// journal marked right after (see [`SnapshotRoom`]'s handler). A parked room's part is
/// taken the same way, with nothing unacknowledged. `capacity_bytes`: about the size the
/// encoding will have (0 when not known).
pub(crate) fn part(
    state: &RoomState,
    unacked: &[(ReservationId, u64)],
    journal: &Journal<Event>,
    capacity_bytes: usize,
) -> Result<RoomPart, EngineError> {
    let bytes = innkeep_persistence::encode_part_sized(state, capacity_bytes)
        .map_err(|e| EngineError::Unavailable(e.to_string()))?;
    let cut = journal.mark().map_err(journal_error)?;
    Ok(RoomPart {
        bytes,
        pending: unacked.iter().map(|(id, _)| *id).collect(),
        pending_floor: unacked
            .iter()
            .map(|(_, seq)| *seq)
            .min()
            .unwrap_or(u64::MAX),
        cut,
    })
}

/// Why [`Rooms::try_send_to`] did not send a message, with the message.
#[derive(Debug)]
pub(crate) enum Unsent<M> {
    /// There is no such room (any more).
    NoRoom(M),
    /// Its mailbox is full.
    Full(M),
    /// Its actor stopped (the engine is stopping).
    Closed(M),
}

impl<M> Unsent<M> {
    /// The message.
    pub(crate) fn into_message(self) -> M {
        match self {
            Unsent::NoRoom(m) | Unsent::Full(m) | Unsent::Closed(m) => m,
        }
    }
}

/// Asks an idle room to park (see [`Rooms::sweep`]).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct Park;

impl Handler<Park> for RoomActor {
    type Result = ();

    /// Parks unless something reached the room since the sweep or it has anything in
    /// flight (a booking not yet durable, a move): its state goes to the registry and the
    /// actor stops. Nothing is queued behind this message then: every message is sent
    /// under the room's lock ([`Rooms::send`]), and one sent after the sweep would have
    /// made the room awake again. A room waiting for its journal or a lock's decision is
    /// not handling messages, this one included, so it cannot park then.
    fn handle(&mut self, _msg: Park, ctx: &mut Self::Context) {
        let Some(rooms) = self.peers.rooms.upgrade() else {
            return;
        };
        let busy = self.in_flight.is_some();
        let key = self.state.key.clone();
        let parked = !busy
            && rooms.park(&key, || {
                let empty = RoomState::new(key.clone(), self.state.room_type.clone());
                std::mem::replace(&mut self.state, empty)
            });
        if parked {
            ctx.stop();
        } else {
            rooms.stay_awake(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use innkeep_engine::{RoomNumber, RoomTypeCode};

    /// Acks take a room's unacked creations off in any order: the usual one (the oldest
    /// message first) and another, each leaving exactly the others.
    #[test]
    fn acked_creations_leave_the_unacked_list_in_any_order() {
        let id = |n: u128| ReservationId(uuid::Uuid::from_u128(n));
        let mut f = InFlight::default();
        f.unacked.extend((1..=5).map(|n| (id(n), 10 * n as u64)));
        f.acked([id(1), id(2)].into_iter());
        assert_eq!(f.unacked, vec![(id(3), 30), (id(4), 40), (id(5), 50)]);
        assert!(f.is_unacked(&id(4)) && !f.is_unacked(&id(1)));
        f.acked([id(4), id(3)].into_iter());
        assert_eq!(f.unacked, vec![(id(5), 50)]);
        f.unacked.extend([(id(6), 60), (id(7), 70)]);
        f.acked([id(6)].into_iter());
        assert_eq!(f.unacked, vec![(id(5), 50), (id(7), 70)]);
        f.acked([id(5), id(7)].into_iter());
        assert!(f.unacked.is_empty());
    }

    /// A parked room answers questions from the registry and stays parked: a registry
    /// that knows no shard (so could start no actor) answers them, and only them.
    #[test]
    fn a_parked_room_answers_questions_without_waking() {
        let rooms = Rooms::default();
        let key = RoomKey {
            hotel_id: HotelId::parse("H").unwrap(),
            number: RoomNumber::parse("101").unwrap(),
        };
        let state = RoomState::new(key.clone(), RoomTypeCode::parse("STD").unwrap());
        let expected = view_of(&state);
        rooms.insert(key.clone(), Hosted::parked(state, 0, 0));
        let view = futures_util::FutureExt::now_or_never(rooms.query(&key, GetView))
            .expect("answered at once")
            .expect("answered");
        assert_eq!(view, expected);
        let id = ReservationId(uuid::Uuid::from_u128(7));
        let missing = futures_util::FutureExt::now_or_never(rooms.query(&key, GetReservation(id)))
            .expect("answered at once")
            .expect("answered");
        assert_eq!(missing.unwrap_err(), DomainError::NotFound("reservation"));
        assert_eq!(rooms.awake(), 0);
        let other = RoomKey {
            number: RoomNumber::parse("102").unwrap(),
            ..key
        };
        let unknown = futures_util::FutureExt::now_or_never(rooms.query(&other, GetView));
        assert!(matches!(unknown, Some(Err(MailboxError::Closed))));
    }

    /// A question (or a snapshot's request) for a room a sweep asked to park makes it
    /// awake again before it is queued, so its `Park` does nothing and the question is
    /// not dropped with the actor; untouched, so the next sweep asks again.
    #[test]
    fn a_question_for_a_parking_room_keeps_it_awake_until_the_next_sweep() {
        let rooms = Rooms::default();
        let key = RoomKey {
            hotel_id: HotelId::parse("H").unwrap(),
            number: RoomNumber::parse("101").unwrap(),
        };
        // A mailbox no actor reads: what is sent stays queued.
        let (tx, _rx) = actix::dev::channel::channel::<RoomActor>(16);
        let hosted = Hosted::parked(
            RoomState::new(key.clone(), RoomTypeCode::parse("STD").unwrap()),
            0,
            0,
        );
        *hosted.presence() = Presence::Parking {
            addr: Addr::new(tx),
        };
        rooms.insert(key.clone(), hosted);
        let _asked = rooms.query(&key, GetView);
        let registry = rooms.read();
        let presence = registry.get(&key).unwrap().presence();
        assert!(
            matches!(&*presence, Presence::Awake { active: false, .. }),
            "{presence:?}"
        );
    }
}
