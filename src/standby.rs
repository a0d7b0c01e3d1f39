//! Standing by: a node of a cluster with NATS that is primary of no partition follows the
//! streams of the partitions it stands by for, and takes one over when its lease lapses
//! (README, "Cluster").
//!
//! - Following: every message of each such partition's stream carries a record (a
//!   committed event, `stream::body`), appended decoded to this node's own journal in
//!   stream order and applied to the state it keeps in memory, or is a takeover. Anything
//!   else (a message without its record, an event of another partition's hotel) stops
//!   the node with an error naming it: a hole would serve a state that is not the
//!   partition's. The engine is not running meanwhile: the server answers 503
//!   `not_ready`, so the proxy's check (`/readyz?partition=`) keeps traffic away.
//! - Taking over: every quarter of the lease's TTL the node tries to `create` each
//!   partition's lease, which succeeds only once the primary's has lapsed (the primary
//!   stopped serving a quarter of the TTL before). Then it reads the stream to its end,
//!   makes what it read durable, and appends a takeover message expecting the last
//!   message it read (`Nats-Expected-Last-Sequence`); if the old primary appended in
//!   between, it reads on and tries again. From then on every write of the old primary
//!   fails JetStream's expected-last-message check. The takeover message names this node
//!   and its journal's last seq, so this node's publisher resumes right after it.
//! - Then the engine starts from the state it followed (the same events recovery would
//!   apply, already applied) and serves the partitions taken over. It stands by for no other
//!   partition any more: a running engine takes no events from elsewhere.
//! - Its data dir holds only what it followed (`STANDBY` marks it so): a standby that
//!   restarts starts again from the streams' beginning, and one whose data dir holds a
//!   journal it did not follow (a former primary's) refuses to start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::{CreateErrorKind, Operation};
use async_nats::jetstream::message::PublishMessage;
use futures_util::StreamExt;
use innkeep_engine::{Event, State};
use innkeep_http::cluster::Cluster;
use innkeep_persistence::{Journal, JournalError, JournalOptions};
use tokio_util::sync::CancellationToken;

use crate::stream::{stream_config, subject, RECORD_FORMAT};

/// The file marking a data dir whose journal is a standby's copy of its partitions'
/// streams (so it may be rebuilt from them).
pub const MARKER: &str = "STANDBY";

/// The `type` of the message a standby appends when it takes a partition over.
pub const TAKEN_OVER: &str = "partition.taken_over";

/// Records followed before their acknowledgements are awaited.
const ACKS_PER_WAIT: usize = 1024;

/// Pause before asking NATS again during a takeover.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// A partition this node took over: its lease, and when that was written.
#[derive(Debug)]
pub struct TakenOver {
    /// The partition's index in the cluster file.
    pub index: usize,
    /// The lease's revision this node wrote.
    pub revision: u64,
    /// When the write that took it was sent.
    pub sent: Instant,
}

/// What a standby hands its engine when it took over: the state it followed, in memory.
#[derive(Debug)]
pub struct TookOver {
    /// The partitions it took over (at least one).
    pub partitions: Vec<TakenOver>,
    /// Every followed event applied, as recovery applies them.
    pub state: State,
    /// The journal's last seq: `state` is the journal up to here.
    pub last_seq: u64,
}

/// Why standing by stopped.
#[derive(Debug, thiserror::Error)]
pub enum StandbyError {
    /// The data dir could not be read or written.
    #[error("data dir {path}: {source}")]
    DataDir {
        /// What was read or written.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The journal refused a record.
    #[error("standby journal: {0}")]
    Journal(#[from] JournalError),
    /// NATS cannot be followed.
    #[error("following the partition streams: {0}")]
    Nats(String),
    /// A stream message that cannot be followed.
    #[error("partition {partition}'s stream, message {seq}: {reason}")]
    BadMessage {
        /// The partition.
        partition: String,
        /// The message's stream sequence.
        seq: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// Whether this node stands by: leased cluster ownership, primary of no partition, and
/// standby for at least one.
pub fn stands_by(cluster: &Cluster) -> bool {
    cluster.leases().is_some()
        && cluster.primary_of().next().is_none()
        && cluster.standby_of().next().is_some()
}

/// Who holds the leases of this node's partitions as it starts.
#[derive(Debug, Default)]
pub struct AtStart {
    /// Partitions (indexes in the file) whose lease names this node: it was serving them
    /// a moment ago (a restart within the lease), so it serves them again from its journal.
    pub mine: Vec<usize>,
    /// Another node holds the lease of a partition this node is primary of: a standby
    /// took over while it was down or stalled, so its journal may lack what the new owner
    /// wrote, and it must not serve from it.
    pub deposed: bool,
}

impl AtStart {
    /// Whether this node stands by rather than serve from its journal: deposed, or a
    /// standby-only node that does not hold a lease.
    pub fn stands_by(&self, cluster: &Cluster) -> bool {
        self.mine.is_empty() && (self.deposed || stands_by(cluster))
    }
}

/// Reads who holds the leases of the partitions this node is primary or standby of.
/// `None` if `stop` was cancelled before NATS answered.
pub async fn at_start(
    cluster: &Cluster,
    nats_url: &str,
    stop: &CancellationToken,
) -> Option<AtStart> {
    let node = cluster.this_node().id.clone();
    let ttl = cluster.file().lease_ttl();
    let options = async_nats::ConnectOptions::new()
        .name(format!("innkeep {node} start-up"))
        .retry_on_initial_connect();
    let client = tokio::select! {
        () = stop.cancelled() => return None,
        client = options.connect(nats_url) => client.ok()?,
    };
    let jetstream = async_nats::jetstream::new(client);
    let primary_of: Vec<usize> = cluster.primary_of().map(|(i, _)| i).collect();
    loop {
        let answer = async {
            let store = crate::lease::open_bucket(&jetstream, ttl).await?;
            let mut found = AtStart::default();
            for (index, p) in cluster.primary_of().chain(cluster.standby_of()) {
                let Some(entry) = store.entry(&p.id).await? else {
                    continue;
                };
                if entry.operation != Operation::Put {
                    continue;
                }
                if entry.value == node.as_bytes() {
                    found.mine.push(index);
                } else if primary_of.contains(&index) {
                    tracing::warn!(partition = %p.id,
                        holder = %String::from_utf8_lossy(&entry.value),
                        "another node holds this partition's lease: this node was deposed");
                    found.deposed = true;
                }
            }
            Ok::<AtStart, async_nats::Error>(found)
        };
        match answer.await {
            Ok(found) => return Some(found),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the partitions' leases; retrying");
                tokio::select! {
                    () = stop.cancelled() => return None,
                    () = tokio::time::sleep(ttl / 4) => {}
                }
            }
        }
    }
}

/// Follows the streams of the partitions this node stands by for (and, `deposed`, of
/// those it is primary of) into the journal in `data_dir` until it takes over at least
/// one (returned) or `stop` is cancelled (none). A journal and snapshots that are not a
/// standby's copy (a deposed primary's, or a former owner's) are moved aside first
/// (`retired-<unix seconds>/`), for an operator: the stream has what was acknowledged.
pub async fn stand_by(
    cluster: &Cluster,
    nats_url: &str,
    data_dir: &Path,
    stop: &CancellationToken,
    deposed: bool,
) -> Result<Option<TookOver>, StandbyError> {
    let journal_dir = data_dir.join("journal");
    retire(data_dir)?;
    prepare(data_dir, &journal_dir)?;
    let journal = Journal::<Event>::start(
        JournalOptions {
            dir: journal_dir,
            ..JournalOptions::default()
        },
        1,
        Box::new(|_| {}),
    )?;
    let mut state = State::default();
    let result = follow(cluster, nats_url, &journal, &mut state, stop, deposed).await;
    let last_seq = journal.durable_seq();
    journal.shutdown();
    let partitions = result?;
    if partitions.is_empty() {
        return Ok(None);
    }
    // The journal is this node's own from now on.
    let marker = data_dir.join(MARKER);
    std::fs::remove_file(&marker).map_err(|source| StandbyError::DataDir {
        path: marker,
        source,
    })?;
    state.finish_replay();
    Ok(Some(TookOver {
        partitions,
        state,
        last_seq,
    }))
}

/// Moves a journal and snapshots that are not a standby's copy aside.
fn retire(data_dir: &Path) -> Result<(), StandbyError> {
    if data_dir.join(MARKER).exists() {
        return Ok(());
    }
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let retired = data_dir.join(format!("retired-{secs}"));
    for part in ["journal", "snapshots"] {
        let from = data_dir.join(part);
        if !from.exists() {
            continue;
        }
        std::fs::create_dir_all(&retired).map_err(|source| StandbyError::DataDir {
            path: retired.clone(),
            source,
        })?;
        std::fs::rename(&from, retired.join(part)).map_err(|source| StandbyError::DataDir {
            path: from.clone(),
            source,
        })?;
        tracing::warn!(from = %from.display(), to = %retired.display(),
            "this node's own data moved aside: it follows the stream instead");
    }
    Ok(())
}

/// Makes `data_dir` an empty standby copy: marked, its journal (a standby's own, from an
/// earlier run; anything else was retired) removed.
fn prepare(data_dir: &Path, journal_dir: &Path) -> Result<(), StandbyError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StandbyError::DataDir { path, source }
    };
    let marker = data_dir.join(MARKER);
    let has_journal = match std::fs::read_dir(journal_dir) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(io(journal_dir)(e)),
    };
    if has_journal {
        std::fs::remove_dir_all(journal_dir).map_err(io(journal_dir))?;
    }
    // A standby's copy has no snapshot: its engine starts from the state it followed.
    let snapshots = data_dir.join("snapshots");
    if marker.exists() && snapshots.exists() {
        std::fs::remove_dir_all(&snapshots).map_err(io(&snapshots))?;
    }
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    std::fs::write(&marker, b"a standby's copy of its partitions' streams\n")
        .map_err(io(&marker))?;
    Ok(())
}

/// One stream message on its way to the journal.
struct Followed {
    /// The partition (index in the cluster file).
    index: usize,
    /// Its stream sequence.
    seq: u64,
    /// Its body.
    payload: bytes::Bytes,
}

/// A partition stood by for.
struct Watched {
    /// Its id.
    id: String,
    /// Its hotels: an event of any other is not this partition's.
    hotels: std::collections::HashSet<String>,
    /// The last stream sequence appended to the journal (or skipped).
    followed: u64,
}

async fn follow(
    cluster: &Cluster,
    nats_url: &str,
    journal: &Journal<Event>,
    state: &mut State,
    stop: &CancellationToken,
    deposed: bool,
) -> Result<Vec<TakenOver>, StandbyError> {
    let node = cluster.this_node().id.clone();
    let ttl = cluster.file().lease_ttl();
    let options = async_nats::ConnectOptions::new()
        .name(format!("innkeep {node} standby"))
        .retry_on_initial_connect();
    let client = tokio::select! {
        () = stop.cancelled() => return Ok(Vec::new()),
        client = options.connect(nats_url) => client,
    };
    let client = match client {
        Ok(client) => client,
        Err(e) => return Err(StandbyError::Nats(format!("cannot reach {nats_url}: {e}"))),
    };
    let jetstream = async_nats::jetstream::new(client);
    let store = loop {
        match crate::lease::open_bucket(&jetstream, ttl).await {
            Ok(store) => break store,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the lease bucket; retrying");
                tokio::select! {
                    () = stop.cancelled() => return Ok(Vec::new()),
                    () = tokio::time::sleep(ttl / 4) => {}
                }
            }
        }
    };
    let primary_of = cluster.primary_of().filter(|_| deposed);
    let mut watched: HashMap<usize, Watched> = cluster
        .standby_of()
        .chain(primary_of)
        .map(|(index, p)| {
            (
                index,
                Watched {
                    id: p.id.clone(),
                    hotels: p.hotels.iter().map(|h| h.as_str().to_owned()).collect(),
                    followed: 0,
                },
            )
        })
        .collect();
    // One reader per stream, all into one channel; bounded, so a slow disk slows them.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Followed>(ACKS_PER_WAIT);
    // Cancelled when any stream's reader stops.
    let ended = CancellationToken::new();
    let readers = tokio_util::task::AbortOnDropHandle::new(tokio::spawn({
        let jetstream = jetstream.clone();
        let ended = ended.clone();
        let partitions: Vec<(usize, String)> =
            watched.iter().map(|(i, w)| (*i, w.id.clone())).collect();
        async move {
            let tasks: Vec<_> = partitions
                .into_iter()
                .map(|(index, id)| {
                    let (jetstream, tx, ended) = (jetstream.clone(), tx.clone(), ended.clone());
                    tokio::spawn(async move {
                        read(jetstream, index, id, tx).await;
                        // A partition nobody follows any more must not be taken over
                        // from a state that stopped short.
                        ended.cancel();
                    })
                })
                .collect();
            for task in tasks {
                let _ = task.await;
            }
        }
    }));
    tracing::info!(node = %node, partitions = ?watched.values().map(|w| w.id.as_str()).collect::<Vec<_>>(),
        "standing by: following these partitions' streams");
    let mut acks = Vec::new();
    // Not before a whole lease has passed: a primary starting with this node takes its
    // lease within that (before its own recovery), so a lease still missing then lapsed.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + ttl, ttl / 4);
    let taken = loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(Vec::new()),
            () = ended.cancelled() => {
                // A standby that stopped following a partition would never take it over
                // safely: say so, and let the process's supervisor start it again.
                return Err(StandbyError::Nats(
                    "a partition stream's reader stopped (see the log)".to_owned(),
                ));
            }
            followed = rx.recv() => {
                let Some(followed) = followed else {
                    return Err(StandbyError::Nats(
                        "every partition stream's reader stopped (see the log)".to_owned(),
                    ));
                };
                append(journal, state, &mut watched, followed, &mut acks)?;
                if acks.len() >= ACKS_PER_WAIT || rx.is_empty() {
                    settle(&mut acks).await?;
                }
            }
            _ = tick.tick() => {
                let mut taken = Vec::new();
                for (&index, w) in &watched {
                    let sent = Instant::now();
                    match store.create(&w.id, node.clone().into()).await {
                        Ok(revision) => taken.push(TakenOver { index, revision, sent }),
                        Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {}
                        Err(e) => tracing::warn!(partition = %w.id, error = %e, "cannot try for the lease; retrying"),
                    }
                }
                if !taken.is_empty() {
                    break taken;
                }
            }
        }
    };
    for t in &taken {
        take_over(
            &jetstream,
            journal,
            state,
            &mut watched,
            &mut rx,
            &mut acks,
            &node,
            t,
        )
        .await?;
    }
    drop(readers);
    Ok(taken)
}

/// Reads `partition`'s stream from its beginning into `tx`.
async fn read(
    jetstream: async_nats::jetstream::Context,
    index: usize,
    partition: String,
    tx: tokio::sync::mpsc::Sender<Followed>,
) {
    let stream = match jetstream
        .get_or_create_stream(stream_config(&partition))
        .await
    {
        Ok(stream) => stream,
        Err(e) => {
            tracing::error!(%partition, error = %e, "cannot open the partition's stream: not following it");
            return;
        }
    };
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: subject(&partition),
            ..Default::default()
        })
        .await;
    let messages = match consumer {
        Ok(consumer) => consumer.messages().await,
        Err(e) => {
            tracing::error!(%partition, error = %e, "cannot read the partition's stream: not following it");
            return;
        }
    };
    let mut messages = match messages {
        Ok(messages) => messages,
        Err(e) => {
            tracing::error!(%partition, error = %e, "cannot read the partition's stream: not following it");
            return;
        }
    };
    while let Some(message) = messages.next().await {
        let message = match message {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(%partition, error = %e, "reading the partition's stream; going on");
                continue;
            }
        };
        let seq = match message.info() {
            Ok(info) => info.stream_sequence,
            Err(e) => {
                tracing::warn!(%partition, error = %e, "a stream message without its sequence; skipped");
                continue;
            }
        };
        let followed = Followed {
            index,
            seq,
            payload: message.payload.clone(),
        };
        if tx.send(followed).await.is_err() {
            return;
        }
    }
}

/// Appends `followed`'s record (if it carries one) to the journal, and applies it to
/// `state` as recovery would.
fn append(
    journal: &Journal<Event>,
    state: &mut State,
    watched: &mut HashMap<usize, Watched>,
    followed: Followed,
    acks: &mut Vec<innkeep_persistence::AckReceiver>,
) -> Result<(), StandbyError> {
    let Some(w) = watched.get_mut(&followed.index) else {
        return Ok(());
    };
    if followed.seq <= w.followed {
        // Redelivered (an ordered consumer that was recreated).
        return Ok(());
    }
    let bad = |reason: String| StandbyError::BadMessage {
        partition: w.id.clone(),
        seq: followed.seq,
        reason,
    };
    let body: serde_json::Value =
        serde_json::from_slice(&followed.payload).map_err(|e| bad(e.to_string()))?;
    if let Some(record) = body.get("record").and_then(|r| r.as_str()) {
        let format = body
            .get("record_format")
            .and_then(serde_json::Value::as_u64);
        if format != Some(u64::from(RECORD_FORMAT)) {
            return Err(bad(format!(
                "record format {format:?}; this build follows {RECORD_FORMAT}"
            )));
        }
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(record)
            .map_err(|e| bad(e.to_string()))?;
        let event: Event = innkeep_persistence::decode_part(&bytes).map_err(bad)?;
        if !w.hotels.contains(event.hotel_id().as_str()) {
            return Err(bad(format!(
                "an event of hotel {}, which is not this partition's",
                event.hotel_id()
            )));
        }
        state.apply_to_rooms(&event);
        acks.push(journal.append(event)?);
    } else if body.get("type").and_then(serde_json::Value::as_str) != Some(TAKEN_OVER) {
        // Following a stream with a hole would serve a state that is not the partition's.
        return Err(bad(
            "neither an event with its record nor a takeover: this stream cannot be followed"
                .to_owned(),
        ));
    }
    w.followed = followed.seq;
    Ok(())
}

/// Waits until every appended record is durable.
async fn settle(acks: &mut Vec<innkeep_persistence::AckReceiver>) -> Result<(), StandbyError> {
    for ack in acks.drain(..) {
        match ack.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(JournalError::Closed.into()),
        }
    }
    Ok(())
}

/// Reads `taken`'s stream to its end into the journal, then appends the takeover message
/// right after what it read (again, if the old primary appended meanwhile).
#[allow(clippy::too_many_arguments)]
async fn take_over(
    jetstream: &async_nats::jetstream::Context,
    journal: &Journal<Event>,
    state: &mut State,
    watched: &mut HashMap<usize, Watched>,
    rx: &mut tokio::sync::mpsc::Receiver<Followed>,
    acks: &mut Vec<innkeep_persistence::AckReceiver>,
    node: &str,
    taken: &TakenOver,
) -> Result<(), StandbyError> {
    let id = watched
        .get(&taken.index)
        .map(|w| w.id.clone())
        .unwrap_or_default();
    loop {
        let last = match jetstream.get_stream(crate::stream::stream_name(&id)).await {
            Ok(mut stream) => match stream.info().await {
                Ok(info) => info.state.last_sequence,
                Err(e) => {
                    tracing::warn!(partition = %id, error = %e, "cannot read the stream's end; retrying");
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                }
            },
            Err(e) => {
                tracing::warn!(partition = %id, error = %e, "cannot read the stream's end; retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        while watched.get(&taken.index).is_some_and(|w| w.followed < last) {
            let Some(followed) = rx.recv().await else {
                return Err(StandbyError::BadMessage {
                    partition: id,
                    seq: last,
                    reason: "the stream ended before its last message was read".to_owned(),
                });
            };
            append(journal, state, watched, followed, acks)?;
        }
        settle(acks).await?;
        let journal_seq = journal.durable_seq();
        let body = serde_json::json!({
            "format": crate::stream::FORMAT_VERSION,
            "id": journal_seq,
            "node": node,
            "type": TAKEN_OVER,
            "hotel_id": serde_json::Value::Null,
            "data": {"partition": id, "after_stream_seq": last},
        });
        let message = PublishMessage::build()
            .payload(serde_json::to_vec(&body).unwrap_or_default().into())
            .header("Innkeep-Seq", journal_seq.to_string().as_str())
            .header("Innkeep-Node", node)
            .header("Innkeep-Event-Type", TAKEN_OVER)
            .header(
                "Innkeep-Format",
                crate::stream::FORMAT_VERSION.to_string().as_str(),
            )
            // The lease's revision is new at every takeover: never a duplicate id.
            .message_id(format!("{node}.takeover.{}", taken.revision))
            .expected_last_sequence(last);
        let stored = match jetstream.send_publish(subject(&id), message).await {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match stored {
            Ok(()) => {
                tracing::info!(partition = %id, after_stream_seq = last, journal_seq,
                    lease_revision = taken.revision, "took this partition over");
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(partition = %id, error = %e, "the takeover message was refused (the old primary appended?): reading on");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream message carrying `event` as a primary publishes it.
    fn published(seq: u64, event: Event) -> Followed {
        let e = innkeep_actors::feed::FeedEvent {
            seq,
            event: std::sync::Arc::new(event),
        };
        Followed {
            index: 0,
            seq,
            payload: crate::stream::body("a", &e).2.into(),
        }
    }

    fn hotel_put(id: &str) -> Event {
        let catalog = innkeep_engine::Catalog::default();
        let hotel = innkeep_engine::HotelId::parse(id).unwrap();
        catalog
            .put_hotel(hotel, "Hotel", "Asia/Shanghai", "CNY")
            .unwrap()
            .0
    }

    #[tokio::test]
    async fn a_standby_follows_events_and_takeovers_and_refuses_anything_else() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::<Event>::start(
            JournalOptions {
                dir: dir.path().join("journal"),
                ..JournalOptions::default()
            },
            1,
            Box::new(|_| {}),
        )
        .unwrap();
        let mut state = State::default();
        let mut watched = HashMap::from([(
            0,
            Watched {
                id: "p1".to_owned(),
                hotels: ["H1".to_owned()].into(),
                followed: 0,
            },
        )]);
        let mut acks = Vec::new();
        // An event with its record: journaled and applied, as recovery would.
        append(
            &journal,
            &mut state,
            &mut watched,
            published(1, hotel_put("H1")),
            &mut acks,
        )
        .unwrap();
        settle(&mut acks).await.unwrap();
        assert_eq!(journal.durable_seq(), 1);
        assert!(state
            .catalog
            .hotels
            .contains_key(&innkeep_engine::HotelId::parse("H1").unwrap()));
        // A takeover: followed, nothing applied.
        let takeover = Followed {
            index: 0,
            seq: 2,
            payload: serde_json::to_vec(&serde_json::json!({"type": TAKEN_OVER}))
                .unwrap()
                .into(),
        };
        append(&journal, &mut state, &mut watched, takeover, &mut acks).unwrap();
        assert!(acks.is_empty());
        // Redelivered: nothing again.
        append(
            &journal,
            &mut state,
            &mut watched,
            published(1, hotel_put("H1")),
            &mut acks,
        )
        .unwrap();
        assert!(acks.is_empty());
        // An event without its record, or of another partition's hotel: refused.
        let bare = Followed {
            index: 0,
            seq: 3,
            payload: serde_json::to_vec(&serde_json::json!({"type": "reservation.created"}))
                .unwrap()
                .into(),
        };
        let e = append(&journal, &mut state, &mut watched, bare, &mut acks).unwrap_err();
        assert!(e.to_string().contains("cannot be followed"), "{e}");
        let e = append(
            &journal,
            &mut state,
            &mut watched,
            published(3, hotel_put("H2")),
            &mut acks,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not this partition's"), "{e}");
        assert!(acks.is_empty());
        journal.shutdown();
    }

    #[test]
    fn a_journal_it_did_not_follow_is_moved_aside_and_its_own_copy_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("journal");
        // A deposed primary's data is moved aside, not removed.
        std::fs::create_dir_all(&journal).unwrap();
        std::fs::write(journal.join("00000000000000000001.seg"), b"mine").unwrap();
        retire(dir.path()).unwrap();
        assert!(!journal.exists());
        let retired: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("retired-"))
            .collect();
        assert_eq!(retired.len(), 1);
        let kept = dir
            .path()
            .join(&retired[0])
            .join("journal/00000000000000000001.seg");
        assert_eq!(std::fs::read(kept).unwrap(), b"mine");
        // Empty: marked, and ready.
        prepare(dir.path(), &journal).unwrap();
        assert!(dir.path().join(MARKER).exists());
        // A standby's own copy from an earlier run: emptied.
        std::fs::create_dir_all(&journal).unwrap();
        std::fs::write(journal.join("00000000000000000001.seg"), b"x").unwrap();
        prepare(dir.path(), &journal).unwrap();
        assert!(!journal.exists());
        // With the marker, retiring leaves a standby's copy where it is.
        std::fs::create_dir_all(&journal).unwrap();
        retire(dir.path()).unwrap();
        assert!(journal.exists());
    }
}
