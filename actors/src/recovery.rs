//! Start-up recovery: the newest snapshot, then the journal after it.
//!
//! A snapshot's parts each have their own cut ([`crate::snapshot`]), so the replay gives
//! each part only the events past its cut: a room the events about it after its own cut,
//! the catalog and moves the events after `setup_seq`. Rooms decode in parallel, one
//! thread per core; the journal is decoded on this thread and applied on another.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use innkeep_engine::replay::{CreatedRecord, Replayed, RESERVATION_CREATED_INDEX};
use innkeep_engine::{Event, ReservationId, RoomKey, RoomState, State};
use innkeep_persistence::{recover_keeping_last, SnapshotError, SnapshotStore};

use crate::feed::FeedEvent;
use crate::protocol::StartError;
use crate::snapshot::{Parts, PartsRef, StoredRoom};

/// Events handed to the replay thread at a time.
const REPLAY_BATCH_EVENTS: usize = 4096;
/// Batches queued for the replay thread at most.
const REPLAY_QUEUE_BATCHES: usize = 8;

/// What [`recover_state`] found on disk.
#[derive(Debug)]
pub struct Recovered {
    /// The state: newest snapshot plus the journal replayed after it. Its locator is
    /// empty when engine start-up recovered it (the directory keeps its own).
    pub state: State,
    /// The sequence number of the last event in it.
    pub last_seq: u64,
    /// The snapshot store, open.
    pub store: SnapshotStore,
    /// The journal's newest events, oldest first, up to `last_seq`, for the event feed's
    /// window (see [`recover_state_with_history`]); empty from [`recover_state`].
    pub history: Vec<FeedEvent>,
}

/// Loads the newest valid snapshot in `data_dir` and replays the journal after it. A torn
/// journal tail is cut off (with a warning); anything else wrong is an error naming the
/// file. Tools and tests that inspect a data dir of a stopped server use this.
pub fn recover_state(data_dir: &Path) -> Result<Recovered, StartError> {
    // Recovery may cut a torn tail: never under a running engine.
    let _lock = DataDirLock::acquire(data_dir)?;
    recover_state_with_history(data_dir, 0)
}

/// The exclusive lock on a data directory's `LOCK` file, held by the engine that uses it
/// (and by [`recover_state`] while it reads), released when dropped. Advisory (`flock`),
/// so it also goes away with a process that dies.
#[derive(Debug)]
pub(crate) struct DataDirLock {
    /// The locked file; closing it unlocks.
    _file: std::fs::File,
}

impl DataDirLock {
    /// Locks `data_dir`, or refuses with [`StartError::DataDirInUse`] at once.
    pub(crate) fn acquire(data_dir: &Path) -> Result<Self, StartError> {
        let path = data_dir.join("LOCK");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| StartError::DataDir {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StartError::DataDirInUse {
                path: data_dir.to_path_buf(),
            }),
            Err(std::fs::TryLockError::Error(source)) => Err(StartError::DataDir { path, source }),
        }
    }
}

/// Writes `state` as the snapshot covering the journal up to `seq` (every part cut at
/// `seq`): for tools that build a data dir offline, such as the recovery benchmark.
pub fn write_snapshot(store: &SnapshotStore, seq: u64, state: &State) -> Result<(), SnapshotError> {
    let snapshot = state.to_snapshot();
    let rooms = snapshot
        .rooms
        .iter()
        .map(|room| {
            Ok(StoredRoom {
                cut_seq: seq,
                pending: Vec::new(),
                state: innkeep_persistence::Blob(innkeep_persistence::encode_part(room)?),
            })
        })
        .collect::<Result<Vec<_>, SnapshotError>>()?;
    let parts = Parts {
        catalog: snapshot.catalog,
        setup_seq: seq,
        rooms,
        idempotency: snapshot.idempotency,
    };
    store.save(seq, &parts)
}

/// Which replayed events each part already reflects.
#[derive(Debug, Default)]
struct Cuts {
    /// Setup events and moves up to here are in the snapshot.
    setup_seq: u64,
    /// Per room whose cut is past the snapshot's seq: its cut.
    rooms: HashMap<RoomKey, u64>,
    /// The highest cut: events after it are replayed whole.
    max_seq: u64,
}

impl Cuts {
    /// Whether the snapshot already reflects event `seq`. On the way, a skipped creation
    /// confirms that the reservation it made is in the journal.
    fn covers(
        &self,
        seq: u64,
        replayed: &Replayed,
        confirmed: &mut HashSet<ReservationId>,
    ) -> bool {
        if seq > self.max_seq {
            return false;
        }
        let event = match replayed {
            Replayed::Other(event) => event,
            Replayed::Created(creation) => {
                // Its creation is in the journal: a pending reservation that stays.
                confirmed.insert(creation.id());
                return self
                    .rooms
                    .get(&creation.room())
                    .is_some_and(|cut| seq <= *cut);
            }
        };
        let room = match event {
            Event::HotelPut { .. }
            | Event::RoomTypePut { .. }
            | Event::RoomPut { .. }
            | Event::RatePut { .. }
            | Event::RatePlanPut { .. }
            | Event::RestrictionsSet { .. }
            | Event::ReservationMoved { .. }
            | Event::ReservationModified { to: Some(_), .. } => return seq <= self.setup_seq,
            // Several rooms, under the gate like a move; its creation is never a snapshot's
            // pending one (it is applied only once durable).
            Event::Rearranged { .. } => return seq <= self.setup_seq,
            // Several rooms too: a multi-room booking's creation and its changes are
            // applied only once durable, under the gate.
            Event::BookingCreated { .. }
            | Event::BookingChanged { .. }
            | Event::ModifyRearranged { .. } => return seq <= self.setup_seq,
            Event::ReservationModified { room, .. } => room.clone(),
            Event::ReservationCreated { reservation, .. } => {
                // Its creation is in the journal: a pending reservation that stays.
                confirmed.insert(reservation.id);
                RoomKey {
                    hotel_id: reservation.hotel_id.clone(),
                    number: reservation.room.clone(),
                }
            }
            Event::ReservationChanged { room, .. }
            | Event::PaymentChanged { room, .. }
            | Event::OutOfOrderSet { room, .. }
            | Event::OutOfOrderCleared { room, .. }
            | Event::HousekeepingSet { room, .. } => room.clone(),
        };
        self.rooms.get(&room).is_some_and(|cut| seq <= *cut)
    }
}

/// A decoded snapshot: the state as the parts show it, their cuts, and the reservations
/// that stay only if the journal confirms them.
struct Loaded {
    state: State,
    cuts: Cuts,
    pending: Vec<(RoomKey, ReservationId)>,
}

/// One room's part in the layout of snapshot format `version`: 9 (this build's), 8
/// (today's without reservations' bookings), or 7, 6 or 5 (earlier releases', converted;
/// none of them has pins).
fn decode_room(version: u32, bytes: &[u8]) -> Result<RoomState, String> {
    use innkeep_engine::codec::{decoding_before, Added};
    use innkeep_engine::legacy::{RoomStateV5, RoomStateV6, RoomStateV7};
    match version {
        innkeep_persistence::SNAPSHOT_FORMAT_VERSION => {
            innkeep_persistence::decode_part::<RoomState>(bytes)
        }
        8 => decoding_before(Added::Bookings, || {
            innkeep_persistence::decode_part::<RoomState>(bytes)
        }),
        7 => {
            innkeep_persistence::decode_part::<RoomStateV7>(bytes).map(RoomStateV7::into_room_state)
        }
        6 => {
            innkeep_persistence::decode_part::<RoomStateV6>(bytes).map(RoomStateV6::into_room_state)
        }
        _ => {
            innkeep_persistence::decode_part::<RoomStateV5>(bytes).map(RoomStateV5::into_room_state)
        }
    }
}

/// The parts of a snapshot of format `version`, the catalog in today's form (format 6's
/// catalog is today's).
fn decode_parts(version: u32, bytes: &[u8]) -> Result<PartsRef<'_>, String> {
    if version >= 6 {
        return innkeep_persistence::decode_part_borrowed(bytes);
    }
    let old: PartsRef<'_, innkeep_engine::legacy::CatalogV5> =
        innkeep_persistence::decode_part_borrowed(bytes)?;
    Ok(PartsRef {
        catalog: old.catalog.into_catalog(),
        setup_seq: old.setup_seq,
        rooms: old.rooms,
        idempotency: old.idempotency,
    })
}

/// An event as recovery reads it from the journal ([`innkeep_engine::replay`]): a new
/// reservation straight in its room's form, any other event as it is.
#[derive(Debug)]
pub(crate) struct Replaying(pub(crate) Replayed);

/// Serde's reading is the event's (the journal's own is [`Replaying`]'s `Record::decode`).
impl<'de> serde::Deserialize<'de> for Replaying {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Event::deserialize(d).map(|event| Replaying(Replayed::Other(event)))
    }
}

impl innkeep_persistence::Record for Replaying {
    fn decode(payload: &[u8]) -> Result<Self, String> {
        if let Some((&RESERVATION_CREATED_INDEX, fields)) = payload.split_first() {
            return innkeep_persistence::decode_part_borrowed::<CreatedRecord<'_>>(fields)
                .map(|record| Replaying(Replayed::Created(record.into())));
        }
        innkeep_persistence::decode_part::<Event>(payload)
            .map(|event| Replaying(Replayed::Other(event)))
    }

    fn decode_older(version: u32, payload: &[u8]) -> Result<Self, String> {
        Journaled::decode_older(version, payload)
            .map(|Journaled(event)| Replaying(Replayed::Other(event)))
    }
}

/// An event as the journal holds it: today's encoding, or an older segment format's
/// (converted, see [`innkeep_engine::legacy`]).
#[derive(serde::Deserialize, Debug)]
#[serde(transparent)]
pub(crate) struct Journaled(pub(crate) Event);

impl innkeep_persistence::Record for Journaled {
    fn decode_older(version: u32, payload: &[u8]) -> Result<Self, String> {
        use innkeep_engine::codec::pinned::decoding_unpinned;
        use innkeep_engine::legacy::{ReservationModifiedV5, RESERVATION_MODIFIED_INDEX};
        // Formats 3 to 6 are older and still readable (the persistence crate checks).
        // Format 6 is today's encoding without the multi-room booking and modification
        // rearrangement events, so it decodes as today's. Format 5 is format 6 without
        // reservations' pins (and without the rearrangement event), and with a
        // modification that did not yet say how it settles money; format 4 is format 5
        // without the modification event.
        if version == 6 {
            return innkeep_persistence::decode_part::<Event>(payload).map(Journaled);
        }
        if version == 5 {
            if let Some((&RESERVATION_MODIFIED_INDEX, fields)) = payload.split_first() {
                return innkeep_persistence::decode_part::<ReservationModifiedV5>(fields)
                    .map(|old| Journaled(old.into_event()));
            }
        }
        if version >= 4 {
            return decoding_unpinned(|| {
                innkeep_persistence::decode_part::<Event>(payload).map(Journaled)
            });
        }
        innkeep_persistence::decode_part::<innkeep_engine::legacy::EventV3>(payload)
            .map(|old| Journaled(old.into_event()))
    }
}

/// Decodes every room (in parallel, straight from the stored bytes) and builds the state.
fn decode(seq: u64, version: u32, bytes: &[u8]) -> Result<Loaded, String> {
    let parts = decode_parts(version, bytes)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = parts.rooms.len().div_ceil(threads).max(1);
    let decoded: Vec<Result<Vec<RoomState>, String>> = std::thread::scope(|s| {
        let workers: Vec<_> = parts
            .rooms
            .chunks(chunk)
            .map(|rooms| {
                s.spawn(move || {
                    rooms
                        .iter()
                        .enumerate()
                        .map(|(i, stored)| {
                            decode_room(version, stored.state)
                                .map_err(|e| format!("room part {i} does not decode: {e}"))
                        })
                        .collect()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Err("decoding panicked".into())))
            .collect()
    });
    if parts.setup_seq < seq {
        return Err(format!(
            "the catalog is cut at seq {}, before the snapshot's {seq}",
            parts.setup_seq
        ));
    }
    let mut cuts = Cuts {
        setup_seq: parts.setup_seq,
        max_seq: parts.setup_seq,
        ..Cuts::default()
    };
    let mut pending = Vec::new();
    let mut rooms = Vec::with_capacity(parts.rooms.len());
    let mut stored = parts.rooms.iter();
    for chunk in decoded {
        for room in chunk? {
            let meta = stored.next().ok_or("more rooms decoded than stored")?;
            if meta.cut_seq < seq {
                return Err(format!(
                    "room {} is cut at seq {}, before the snapshot's {seq}",
                    room.key.number, meta.cut_seq
                ));
            }
            if meta.cut_seq > seq {
                cuts.max_seq = cuts.max_seq.max(meta.cut_seq);
                cuts.rooms.insert(room.key.clone(), meta.cut_seq);
            }
            pending.extend(meta.pending.iter().map(|id| (room.key.clone(), *id)));
            rooms.push(room);
        }
    }
    // Without the locator: recovery derives it once the journal is replayed, if at all.
    let state = State {
        catalog: parts.catalog,
        rooms: rooms.into_iter().map(|r| (r.key.clone(), r)).collect(),
        locator: Default::default(),
        idempotency: parts.idempotency.into_iter().collect(),
    };
    Ok(Loaded {
        state,
        cuts,
        pending,
    })
}

/// [`recover_state`], also handing back the journal's newest `history_events` events
/// (at most [`crate::feed::MAX_FEED_WINDOW_EVENTS`]) in [`Recovered::history`], for the
/// event feed, whether or not the snapshot covers them: read in the same pass over the
/// journal, decoded but not applied, never including a torn tail recovery cut.
pub fn recover_state_with_history(
    data_dir: &Path,
    history_events: usize,
) -> Result<Recovered, StartError> {
    let mut recovered = recover_rooms(data_dir, history_events)?;
    recovered.state.rebuild_locator();
    Ok(recovered)
}

/// [`recover_state_with_history`] as engine start-up needs it: the state's locator is
/// left empty, since the engine's directory keeps its own (by room number), built from
/// the rooms. Replay never reads the locator, so it is not kept up to date event by event.
pub(crate) fn recover_rooms(
    data_dir: &Path,
    history_events: usize,
) -> Result<Recovered, StartError> {
    let history_events = history_events.min(crate::feed::MAX_FEED_WINDOW_EVENTS);
    let store = SnapshotStore::open(&data_dir.join("snapshots"))?;
    let (snapshot_seq, loaded) = match store.load_versioned(decode)? {
        Some(loaded) => loaded,
        None => (
            0,
            Loaded {
                state: State::default(),
                cuts: Cuts::default(),
                pending: Vec::new(),
            },
        ),
    };
    let Loaded {
        state,
        cuts,
        pending,
    } = loaded;
    // Decoding (this thread) and applying (a replay thread) overlap, which on two cores
    // hides most of the decoding. The channel is bounded, so memory stays bounded too.
    // Applied batches come back to be freed here: rooms keep a compact copy of each new
    // reservation, so the decoded ones are dropped, and freeing memory on the thread that
    // allocated it keeps the two threads off each other's allocator locks (measured: a
    // third of the replay time when the replay thread freed them).
    let (batches, replay_rx) = crossbeam_channel::bounded::<Vec<Replayed>>(REPLAY_QUEUE_BATCHES);
    let (spent_tx, spent_rx) =
        crossbeam_channel::bounded::<Vec<Replayed>>(REPLAY_QUEUE_BATCHES + 1);
    let replay = std::thread::Builder::new()
        .name(crate::crash::REPLAY_THREAD.into())
        .spawn(move || {
            let mut state = state;
            for mut batch in replay_rx {
                for replayed in &mut batch {
                    state.apply_replayed(replayed);
                }
                // The decoding side stops taking them back only when it is done.
                let _ = spent_tx.try_send(batch);
            }
            state.finish_replay();
            state
        })
        .map_err(|e| StartError::Actors(format!("replay thread: {e}")))?;
    let mut batch = Vec::with_capacity(REPLAY_BATCH_EVENTS);
    let mut confirmed = HashSet::new();
    // Codes decoded once per distinct text: most of the decoding's allocations otherwise.
    let recovered = innkeep_engine::ids::interning(|| {
        recover_keeping_last(
            &data_dir.join("journal"),
            snapshot_seq,
            history_events as u64,
            |seq, Replaying(replayed)| {
                if cuts.covers(seq, &replayed, &mut confirmed) {
                    return;
                }
                batch.push(replayed);
                if batch.len() == REPLAY_BATCH_EVENTS {
                    let next = match spent_rx.try_recv() {
                        Ok(mut spent) => {
                            spent.clear();
                            spent
                        }
                        Err(_) => Vec::with_capacity(REPLAY_BATCH_EVENTS),
                    };
                    let full = std::mem::replace(&mut batch, next);
                    // The replay thread only stops when this sender is dropped.
                    let _ = batches.send(full);
                }
            },
        )
    });
    if !batch.is_empty() {
        let _ = batches.send(batch);
    }
    drop(batches);
    // Under an engine the crash hook aborts on a replay panic first; `recover_state`
    // called on its own reports it.
    let mut state = replay
        .join()
        .map_err(|_| StartError::Actors("replay thread panicked".into()))?;
    let (report, newest) = recovered?;
    // A reservation a room held before the journal acknowledged it stays only if the
    // journal has it; a key stays only if its reservation does.
    let mut dropped = HashSet::new();
    for (key, id) in pending {
        if confirmed.contains(&id) {
            continue;
        }
        if let Some(room) = state.rooms.get_mut(&key) {
            room.revert_created(&id);
        }
        dropped.insert(id);
    }
    if !dropped.is_empty() {
        state
            .idempotency
            .retain(|_, e| !dropped.contains(&e.reservation_id));
    }
    // Decoded, never applied: each gives its event back.
    let history: Vec<FeedEvent> = newest
        .into_iter()
        .filter_map(|(seq, Replaying(replayed))| {
            Some(FeedEvent {
                seq,
                event: Arc::new(replayed.into_event()?),
            })
        })
        .collect();
    tracing::info!(
        snapshot_seq,
        replayed = report.records_replayed,
        segments = report.segments,
        torn_tail_bytes = report.torn_tail_truncated_bytes,
        unconfirmed_dropped = dropped.len(),
        history = history.len(),
        history_first_seq = history.first().map(|e| e.seq),
        "journal replayed"
    );
    Ok(Recovered {
        state,
        last_seq: report.last_seq.max(snapshot_seq),
        store,
        history,
    })
}

#[cfg(test)]
mod tests {
    use innkeep_persistence::Record;

    use super::*;

    /// Journal segment format 5 as the release before settled modifications wrote it
    /// (`engine/testdata/journal5-snapshot7.txt`): its modifications read as decided then,
    /// every other event as today's.
    #[test]
    fn format_5_records_read_with_their_modifications_settled_as_then() {
        let golden = include_str!("../../engine/testdata/journal5-snapshot7.txt");
        let records: Vec<Vec<u8>> = golden
            .lines()
            .filter_map(|l| l.strip_prefix("EVENT "))
            .map(|hex| hex::decode(hex.trim()).expect("hex"))
            .collect();
        let mut modified = 0;
        for bytes in &records {
            let Journaled(event) = Journaled::decode_older(5, bytes).expect("a format-5 record");
            if let Event::ReservationModified { modification, .. } = &event {
                assert_eq!(
                    modification.settling,
                    innkeep_engine::Settling::ChargeFollowsTotal
                );
                modified += 1;
            }
        }
        assert_eq!((records.len(), modified), (12, 2));
    }
}
