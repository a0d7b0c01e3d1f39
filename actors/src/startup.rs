//! Engine start-up: recovery, then the journal, the directory, the rooms placed on the
//! shards, the supervisors, the hold keepers and the snapshot trigger and writer, wired
//! together. [`crate::Engine::start_on`] calls it and keeps what it returns.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use actix::prelude::*;
use innkeep_engine::jiff::SignedDuration;
use innkeep_engine::{Event, PaymentStatus, ReservationId, Status};
use innkeep_persistence::{Journal, JournalOptions, Storage};

use crate::config::{BookingPolicy, EngineConfig};
use crate::directory::Directory;
use crate::feed::EventFeed;
use crate::holds::HoldKeeper;
use crate::open_holds::OpenHolds;
use crate::payments::{OpenPayment, PaymentSupervisor};
use crate::protocol::{Adopt, PaymentCreated, PaymentDue, PendingHold, StartError};
pub(crate) use crate::recovery::DataDirLock;
use crate::recovery::{recover_rooms, Recovered};
use crate::room::{RoomPeers, Rooms};
use crate::shards::Shards;
use crate::snapshot::{self, SnapshotPolicy, SnapshotStatus, Trigger};
use crate::supervisor::{OrderSupervisor, Placement};

/// Everything a running engine holds on to (see `facade::Inner` for what each is for).
pub(crate) struct Started {
    pub feed: Arc<EventFeed>,
    pub directory: Arc<Directory>,
    pub rooms: Arc<Rooms>,
    pub supervisor: Addr<OrderSupervisor>,
    pub payments: Addr<PaymentSupervisor>,
    pub trigger: Addr<Trigger>,
    pub journal: Journal<Event>,
    pub policy: BookingPolicy,
    pub snapshot_status: SnapshotStatus,
    pub snapshot_thread: JoinHandle<()>,
    pub admit_per_shard: usize,
    pub data_dir_lock: DataDirLock,
}

/// Recovers `config.data_dir` (or takes the `followed` state and its last seq, see
/// `Engine::start_followed`) and starts everything on `shards`.
pub(crate) fn start(
    shards: &Shards,
    config: &EngineConfig,
    storage: Box<dyn Storage>,
    followed: Option<(innkeep_engine::State, u64)>,
) -> Result<Started, StartError> {
    let started = Instant::now();
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|source| StartError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    // Before anything is read: recovery may cut a torn tail, which must never happen under
    // another engine's writer.
    let data_dir_lock = DataDirLock::acquire(&data_dir)?;
    // The event feed's window is refilled from the journal in the same pass, so that
    // `Last-Event-ID` resumes across restarts; the journal keeps that many records.
    let window_events = config
        .resume_window_events
        .clamp(1, crate::feed::MAX_FEED_WINDOW_EVENTS);
    let Recovered {
        state,
        last_seq,
        store,
        history,
    } = match followed {
        None => recover_rooms(&data_dir, window_events)?,
        Some((state, last_seq)) => {
            let store = innkeep_persistence::SnapshotStore::open(&data_dir.join("snapshots"))?;
            Recovered {
                state,
                last_seq,
                store,
                history: Vec::new(),
            }
        }
    };
    let feed = Arc::new(EventFeed::new(window_events, last_seq + 1, history));
    let journal_dir = data_dir.join("journal");
    tracing::info!(
        last_seq,
        hotels = state.catalog.hotels.len(),
        rooms = state.rooms.len(),
        reservations = state.rooms.values().map(|r| r.ledger.len()).sum::<usize>(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "recovered"
    );

    let publish = feed.clone();
    let journal = Journal::start_with_storage(
        JournalOptions {
            dir: journal_dir,
            sync: config.sync,
            retain_records: window_events as u64,
            segment_max_bytes: config.journal_segment_max_bytes,
            commit_delay: config.journal_commit_delay,
            gate: config.ack_gate.clone(),
            ..JournalOptions::default()
        },
        last_seq + 1,
        // The feed shows only durable events, in journal order: the writer's committed
        // records, as they are (not a second `apply`, nor a second encoding).
        Box::new(move |batch| {
            publish.publish(
                batch
                    .into_iter()
                    .map(|c| (c.seq, Arc::new(c.event), c.payload)),
            );
        }),
        storage,
    )?;
    journal.retain_from(config.journal_retain_from);

    // What the actors share besides the rooms. The index fills as rooms are placed.
    // Moved, not copied: the recovered state is split among the actors.
    // The recovered state has no locator: the directory derives its own from the rooms,
    // with room numbers instead of keys.
    let innkeep_engine::State {
        catalog,
        rooms,
        idempotency,
        ..
    } = state;
    let rooms: Vec<_> = rooms.into_values().collect();
    let directory = Arc::new(Directory::new(
        shards.len(),
        catalog,
        &rooms,
        idempotency,
        config.clock.clone(),
        config.faults.clone(),
    ));
    let room_registry = Arc::new(Rooms::default());
    let payment_policy = config.payment.clone();
    // Charges are asked for only when a provider would make them.
    let charges = config.payment.gateway.is_some();
    // Open payments (for reconciliation, which only a provider needs) and owed refunds
    // (the durable retry queue), rebuilt from the recovered state.
    let mut open_payments = HashMap::new();
    let mut owed_refunds = HashSet::new();
    for r in rooms.iter().flat_map(|room| room.ledger.iter()) {
        if r.refund_owed() || r.difference_unsettled() {
            owed_refunds.insert(r.id());
        }
        let open = matches!(
            r.payment_status(),
            PaymentStatus::Pending | PaymentStatus::Failed
        );
        if charges && open {
            // One entry per charge: a multi-room booking's reservations share theirs.
            let out_trade_no = r
                .booking()
                .map_or_else(|| r.id().out_trade_no(), |b| b.out_trade_no());
            open_payments.insert(
                out_trade_no.reservation_id(),
                OpenPayment {
                    out_trade_no,
                    created_at: r.created_at(),
                },
            );
        }
    }
    let hold = SignedDuration::from_secs(i64::try_from(config.hold_seconds).unwrap_or(i64::MAX));

    // Snapshots: collected from the rooms by a trigger on the system thread, written by
    // a thread of their own.
    let snapshot_status: SnapshotStatus = Arc::new(tokio::sync::watch::Sender::new(None));
    let (snapshots_tx, snapshots_rx) = crossbeam_channel::unbounded();
    let writing = Arc::new(AtomicBool::new(false));
    let snapshot_thread = snapshot::spawn_writer(
        snapshots_rx,
        snapshot::Writer::new(
            store,
            journal.clone(),
            config.faults.fail_snapshots,
            snapshot_status.clone(),
            writing.clone(),
        ),
    )
    .map_err(|e| StartError::Actors(e.to_string()))?;
    let snapshot_policy = SnapshotPolicy {
        every_events: config.snapshot_every_events,
        every: config.snapshot_every,
    };
    let trigger_status = snapshot_status.clone();

    let (up_tx, up_rx) = std::sync::mpsc::channel();
    let (actor_journal, pay_journal) = (journal.clone(), journal.clone());
    let (actor_directory, actor_rooms) = (directory.clone(), room_registry.clone());
    let (actor_directory_snap, actor_rooms_snap, actor_journal_snap) =
        (directory.clone(), room_registry.clone(), journal.clone());
    let acks: Vec<_> = (0..shards.len()).map(|i| shards.acks(i).clone()).collect();
    let (expiry_tick, limits) = (config.expiry_tick, config.limits);
    let room_idle = config.room_idle.max(crate::config::MIN_ROOM_IDLE);
    let policy = BookingPolicy {
        hold,
        expiry_tick,
        limits,
        max_holds_per_creator: config.max_holds_per_creator,
        night_audit_time: config.night_audit_time,
    };
    let handles = shards.arbiters().to_vec();
    // The supervisors run on the system thread, which is not a shard; the rooms are
    // placed on the shards from there.
    let spawned = shards.on_system(move || {
        // The payment supervisor's address exists before it runs, so the rooms and the
        // shards' open holds can be given it (owed refunds, new charges).
        let pay_ctx: Context<PaymentSupervisor> = Context::new();
        let payment_due = pay_ctx.address().recipient::<PaymentDue>();
        let charge_to = charges.then(|| pay_ctx.address().recipient::<PaymentCreated>());
        // Per shard, the open holds its rooms queue, and a hold keeper on that shard that
        // expires the due ones.
        let open_holds: Vec<Arc<OpenHolds>> = handles
            .iter()
            .map(|_| Arc::new(OpenHolds::new(actor_directory.clone(), charge_to.clone())))
            .collect();
        let keepers: Vec<Addr<HoldKeeper>> = (0..)
            .zip(handles.iter().zip(&open_holds))
            .map(|(shard, (arbiter, holds))| {
                let (directory, rooms) = (actor_directory.clone(), actor_rooms.clone());
                let (journal, holds) = (actor_journal.clone(), holds.clone());
                HoldKeeper::start_in_arbiter(arbiter, move |_| {
                    HoldKeeper::new(
                        directory,
                        rooms,
                        journal,
                        holds,
                        (expiry_tick, room_idle),
                        shard,
                    )
                })
            })
            .collect();
        let peers = (0..)
            .zip(open_holds.into_iter().zip(acks))
            .map(|(shard, (holds, acks))| {
                Arc::new(RoomPeers {
                    shard,
                    journal: actor_journal.clone(),
                    directory: actor_directory.clone(),
                    holds,
                    payment_due: payment_due.clone(),
                    acks,
                    rooms: Arc::downgrade(&actor_rooms),
                })
            });
        // The supervisor goes on placing new rooms where start-up left off.
        let mut placement = Placement::new(
            handles.into_iter().zip(peers).collect(),
            actor_directory.clone(),
            actor_rooms.clone(),
        );
        let mut adopted: Vec<Vec<(ReservationId, PendingHold)>> =
            keepers.iter().map(|_| Vec::new()).collect();
        // In the order [`Directory::new`] numbered them.
        for (number, room) in (0u32..).zip(rooms) {
            let holds: Vec<_> = room
                .ledger
                .iter()
                .filter(|r| r.status() == Status::PendingPayment)
                .map(|r| {
                    let hold = PendingHold {
                        expires_at: r.hold_expires_at(),
                        created_by: r.created_by().map(|c| c.to_string()),
                    };
                    (r.id(), hold)
                })
                .collect();
            let shard = placement.place_room(room, number);
            adopted[shard].extend(holds);
        }
        // The per-creator hold slots come from the same holds, so the hold cap survives
        // restarts.
        for creator in adopted
            .iter()
            .flatten()
            .filter_map(|(_, hold)| hold.created_by.as_ref())
        {
            actor_directory.adopt_slot(creator);
        }
        let supervisor = OrderSupervisor::new(
            actor_directory.clone(),
            actor_rooms.clone(),
            actor_journal,
            placement,
            policy,
        );
        // Holds that lapsed while the server was down expire as soon as each keeper runs.
        for (keeper, holds) in keepers.iter().zip(adopted) {
            keeper.do_send(Adopt(holds));
        }
        let payments = pay_ctx.run(PaymentSupervisor::new(
            actor_directory,
            actor_rooms,
            payment_policy,
            open_payments,
            owed_refunds,
            Arc::default(),
            pay_journal,
        ));
        let sup = supervisor.start();
        let trigger = Trigger::new(
            actor_directory_snap,
            actor_rooms_snap,
            actor_journal_snap,
            snapshot_policy,
            snapshots_tx,
            trigger_status,
            writing,
        )
        .start();
        let _ = up_tx.send((sup, payments, trigger));
    });
    if !spawned {
        return Err(StartError::Actors("the shards have stopped".into()));
    }
    let (supervisor, payments, trigger) = up_rx
        .recv()
        .map_err(|_| StartError::Actors("actor system failed to start".into()))?;

    // Every shard's counter together stays below a room mailbox's capacity.
    let admit_per_shard = config
        .max_in_flight
        .min(crate::room::ROOM_MAILBOX / (shards.len() + 1));
    Ok(Started {
        feed,
        directory,
        rooms: room_registry,
        supervisor,
        payments,
        trigger,
        journal,
        policy,
        snapshot_status,
        snapshot_thread,
        admit_per_shard,
        data_dir_lock,
    })
}
