//! The partition streams: the committed events of each partition this node serves,
//! published in journal order to a NATS JetStream stream of their own, for standbys and
//! for downstream services (README, "Cluster").
//!
//! - One stream per partition, `INNKEEP_<partition>`, on the subject
//!   `innkeep.<partition>.events`; created (file storage) when missing.
//! - Each message is one event: the JSON body [`body`], and the headers `Nats-Msg-Id`
//!   (`<node>.<journal seq>`, so JetStream drops a re-publish), `Innkeep-Seq`,
//!   `Innkeep-Node`, `Innkeep-Event-Type`, `Innkeep-Hotel-Id` and `Innkeep-Format`.
//! - Every publish expects the stream's last message to be the one this publisher sent
//!   before it (`Nats-Expected-Last-Msg-Id`). So a message is stored only right after its
//!   predecessor: no gap and no reordering, even with publishes pipelined, and after a
//!   crash the publisher resumes right after the stream's last message. A publish refused
//!   because another writer appended in between stops this partition's publisher, and so
//!   does a stream found ending with another writer's message (another node owned the
//!   partition since): it never writes over, or after, someone else's history. A fenced
//!   partition is served no more (its lease is lost, then let go).
//! - `replication = "sync"`: a change is acknowledged to its client once the local
//!   journal has it (`fdatasync`) and every partition stream has every event up to it
//!   (the journal's acks wait in an [`AckGate`] this releases); a stream that found
//!   another writer fails the gate: nothing more is acknowledged, later changes are
//!   refused (503 `not_owner`) and the node turns not ready. A change waiting longer than
//!   `replication_stall_ms` also turns it not ready, until replication moves again. `"async"`: once
//!   the local journal has it; the publish follows.
//! - The journal keeps every record not yet published
//!   ([`innkeep_actors::Engine::retain_journal_from`]), so a NATS outage delays the stream
//!   (and, in sync mode, every acknowledgement) and grows the journal, and loses nothing.
//! - The publishers run on a thread of their own (`innkeep-stream`), never on the shards.
//!   Each reads every event of the node and keeps its partition's, so one partition's
//!   trouble never holds up another's stream; that reading grows with the partitions a
//!   node serves, which suits a few per node (many would want one reader dispatching).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config as StreamConfig, LastRawMessageErrorKind};
use innkeep_actors::feed::FeedEvent;
use innkeep_actors::Engine;
use innkeep_http::cluster::{Cluster, Leases};
use innkeep_http::routes::events::describe;
use innkeep_http::webhooks::deliver::{fetch, Fetched};
use innkeep_persistence::AckGate;
use tokio_util::sync::CancellationToken;

/// The stream publishers' name among the journal's readers.
pub const JOURNAL_READER: &str = "stream";

/// The version of the message format ([`body`] and headers); a consumer checks it.
pub const FORMAT_VERSION: u32 = 1;

/// The encoding of a message's `record`: the journal's segment format.
pub const RECORD_FORMAT: u32 = innkeep_persistence::journal::SEGMENT_FORMAT_VERSION;

/// How long JetStream remembers message ids to drop a re-publish.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(600);

/// First wait after a failed publish or lookup; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between attempts while NATS is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Counter of events published, by `partition`.
pub const METRIC_PUBLISHED: &str = "innkeep_stream_published_total";
/// Gauge: the journal sequence up to which a partition's events are in its stream.
pub const METRIC_CURSOR: &str = "innkeep_stream_cursor";

/// The JetStream stream of `partition`.
pub fn stream_name(partition: &str) -> String {
    format!("INNKEEP_{partition}")
}

/// `partition`'s stream, as whoever finds it missing creates it.
pub fn stream_config(partition: &str) -> StreamConfig {
    StreamConfig {
        name: stream_name(partition),
        subjects: vec![subject(partition)],
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    }
}

/// The subject `partition`'s events are published on.
pub fn subject(partition: &str) -> String {
    format!("innkeep.{partition}.events")
}

/// A message's body: `{"format": 1, "id": <journal seq>, "node": "<node id>", "type":
/// "<event type>", "hotel_id": "<hotel>", "data": <the payload the event stream sends>,
/// "record_format": <journal segment format>, "record": "<the journal's record, base64>"}`.
/// The record is the event exactly as the journal holds it: what a standby applies.
pub fn body(node: &str, e: &FeedEvent) -> (&'static str, String, Vec<u8>) {
    use base64::Engine as _;
    let (event_type, data) = describe(&e.event);
    let hotel = e.event.hotel_id().as_str().to_owned();
    // An event always encodes (the journal just did).
    let record = innkeep_persistence::encode_part(&*e.event).unwrap_or_default();
    let body = serde_json::json!({
        "format": FORMAT_VERSION,
        "id": e.seq,
        "node": node,
        "type": event_type,
        "hotel_id": hotel,
        "data": data,
        "record_format": RECORD_FORMAT,
        "record": base64::engine::general_purpose::STANDARD.encode(record),
    });
    // A `Value` always serializes.
    (
        event_type,
        hotel,
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}

/// The running publishers; [`Publishers::shutdown`] stops them.
#[derive(Debug)]
pub struct Publishers {
    /// Cancelled to stop every publisher.
    stop: CancellationToken,
    /// The `innkeep-stream` thread.
    thread: Option<JoinHandle<()>>,
}

/// One partition's publisher: what it publishes and where.
struct Partition {
    /// Its index in the cluster file (its entry in the leases).
    index: usize,
    /// Its id.
    id: String,
    /// Its hotels: only their events go to its stream.
    hotels: HashSet<String>,
}

/// What every publisher shares.
struct Shared {
    /// The engine whose events are published.
    engine: Engine,
    /// This node's id (in message ids and bodies).
    node: String,
    /// Each partition's cursor: its events up to this journal seq are in its stream.
    cursors: Mutex<BTreeMap<String, u64>>,
    /// Stops everything.
    stop: CancellationToken,
    /// `replication = "sync"`: the journal's acks, released as the streams have their
    /// records.
    gate: Option<Arc<AckGate>>,
    /// The partitions' leases: a publisher publishes only while its node holds its
    /// partition's lease (`None`: all along).
    leases: Option<Arc<Leases>>,
}

impl Shared {
    /// Records `partition`'s cursor and tells the journal what the publisher furthest
    /// behind still needs.
    fn advance(&self, partition: &str, cursor: u64) {
        metrics::gauge!(METRIC_CURSOR, "partition" => partition.to_owned()).set(cursor as f64);
        let mut cursors = self.cursors.lock().unwrap_or_else(PoisonError::into_inner);
        cursors.insert(partition.to_owned(), cursor);
        let through = cursors.values().min().copied().unwrap_or(0);
        drop(cursors);
        self.engine.retain_journal_from(JOURNAL_READER, through + 1);
        // Every partition's stream has its events up to `through`.
        if let Some(gate) = &self.gate {
            gate.release_through(through);
        }
    }

    /// This node may not write `partition`'s stream any more (another writer, or a stream
    /// ahead of this node's journal): with synchronous replication nothing further is
    /// acknowledged (every change waits for every stream), and with leases the partition
    /// is served no more either (its lease is lost, then let go).
    fn fenced(&self, partition: &Partition, why: Fence) {
        if let Some(leases) = &self.leases {
            leases.lose(partition.index);
        }
        let partition = &partition.id;
        let why = match why {
            Fence::AnotherWriter => "has another writer",
            Fence::AheadOfJournal => "holds later events of this node than its journal",
            Fence::LeaseLost => "is another node's to write: this node lost its lease",
        };
        if let Some(gate) = &self.gate {
            gate.fail(format!(
                "partition {partition}'s stream {why}: this node acknowledges no more changes"
            ));
        }
    }

    /// Waits `wait`, or less if stopped; whether it was stopped.
    async fn pause(&self, wait: Duration) -> bool {
        tokio::select! {
            () = self.stop.cancelled() => true,
            () = tokio::time::sleep(wait) => false,
        }
    }
}

/// Why the publishers could not start.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The thread or its runtime could not be created.
    #[error("starting the stream publishers: {0}")]
    Start(#[from] std::io::Error),
}

impl Publishers {
    /// Starts publishing the events of every partition `cluster` names this node the
    /// primary of, and of those it `taken_over` as a standby (indexes in the file), to the
    /// JetStream at `nats_url`. Returns at once: connecting (and reconnecting) happens
    /// in the background, so an unreachable NATS delays the streams, not the node. Call
    /// right after the engine started, before any other journal reader sets its floor:
    /// until each publisher knows its stream's end, the journal keeps every record.
    pub fn start(
        engine: Engine,
        cluster: &Cluster,
        nats_url: String,
        gate: Option<Arc<AckGate>>,
        taken_over: &[usize],
    ) -> Result<Publishers, StreamError> {
        engine.retain_journal_from(JOURNAL_READER, 1);
        let node = cluster.this_node().id.clone();
        let all = cluster.file().partitions();
        let partitions: Vec<Partition> = cluster
            .primary_of()
            .map(|(index, _)| index)
            .chain(taken_over.iter().copied())
            .filter_map(|index| {
                let p = all.get(index)?;
                Some(Partition {
                    index,
                    id: p.id.clone(),
                    hotels: p.hotels.iter().map(|h| h.as_str().to_owned()).collect(),
                })
            })
            .collect();
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            engine,
            node,
            cursors: Mutex::new(partitions.iter().map(|p| (p.id.clone(), 0)).collect()),
            stop: stop.clone(),
            gate,
            leases: cluster.leases().cloned(),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("innkeep-stream".to_owned())
            .spawn(move || runtime.block_on(run(shared, partitions, nats_url)))?;
        Ok(Publishers {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the publishers and waits for their thread. What they had not published yet
    /// is published after the next start (the journal keeps it).
    pub fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn run(shared: Arc<Shared>, partitions: Vec<Partition>, nats_url: String) {
    let options = async_nats::ConnectOptions::new()
        .name(format!("innkeep {}", shared.node))
        .retry_on_initial_connect();
    let client = tokio::select! {
        () = shared.stop.cancelled() => return,
        client = options.connect(nats_url.as_str()) => client,
    };
    let client = match client {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(url = %nats_url, error = %e, "cannot reach NATS: the partition streams stay behind");
            return;
        }
    };
    let jetstream = async_nats::jetstream::new(client);
    let tasks: Vec<_> = partitions
        .into_iter()
        .map(|p| tokio::spawn(publish(shared.clone(), jetstream.clone(), p)))
        .collect();
    for task in tasks {
        let _ = task.await;
    }
}

/// Where a partition's stream ends: the journal seq of this node's last event in it (0:
/// none), and the id of its last message; `None` when that last message is not this
/// node's.
async fn stream_end(
    jetstream: &async_nats::jetstream::Context,
    node: &str,
    partition: &str,
) -> Result<Option<(u64, Option<String>)>, async_nats::Error> {
    let subject = subject(partition);
    let stream = jetstream
        .get_or_create_stream(stream_config(partition))
        .await?;
    let last = match stream.get_last_raw_message_by_subject(&subject).await {
        Ok(last) => last,
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {
            return Ok(Some((0, None)))
        }
        Err(e) => return Err(e.into()),
    };
    let header = |name: &str| last.headers.get(name).map(|v| v.as_str().to_owned());
    if header("Innkeep-Node").as_deref() != Some(node) {
        return Ok(None);
    }
    let id = header(async_nats::header::NATS_MESSAGE_ID.as_ref());
    let seq = header("Innkeep-Seq")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(Some((seq, id)))
}

/// How a round of publishing ended.
enum Round {
    /// The server stops.
    Stopped,
    /// A publish or lookup failed: look up the stream's end again, after a pause.
    Failed,
    /// This publisher must not go on.
    Fenced(Fence),
}

/// Why a publisher may not write its stream.
#[derive(Clone, Copy, Debug)]
enum Fence {
    /// Another writer appended to the stream.
    AnotherWriter,
    /// The stream holds later events of this node than its journal (a replaced data dir).
    AheadOfJournal,
    /// This node lost the partition's lease.
    LeaseLost,
}

/// Waits until this node holds `partition`'s lease (at once without leases): a publisher
/// writes its stream only then. `Err` once the lease is lost or the server stops.
async fn under_lease(shared: &Shared, partition: &Partition) -> Result<(), Round> {
    let Some(leases) = &shared.leases else {
        return Ok(());
    };
    let mut changed = leases.subscribe();
    loop {
        // Seen before looking: a change after this wakes the wait below.
        changed.borrow_and_update();
        if leases.is_lost(partition.index) {
            return Err(Round::Fenced(Fence::LeaseLost));
        }
        if leases.holds(partition.index) {
            return Ok(());
        }
        tokio::select! {
            () = shared.stop.cancelled() => return Err(Round::Stopped),
            changed = changed.changed() => if changed.is_err() { return Err(Round::Stopped) },
        }
    }
}

/// Publishes `partition`'s events until the server stops or another writer is found.
async fn publish(
    shared: Arc<Shared>,
    jetstream: async_nats::jetstream::Context,
    partition: Partition,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        match round(&shared, &jetstream, &partition, &mut backoff).await {
            Round::Stopped => return,
            Round::Fenced(why) => {
                shared.fenced(&partition, why);
                return;
            }
            Round::Failed => {
                if shared.pause(backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// One round: find the stream's end, then publish from there until something fails.
async fn round(
    shared: &Shared,
    jetstream: &async_nats::jetstream::Context,
    partition: &Partition,
    backoff: &mut Duration,
) -> Round {
    let subject = subject(&partition.id);
    if let Err(round) = under_lease(shared, partition).await {
        return round;
    }
    let (mut cursor, mut last_id) = match stream_end(jetstream, &shared.node, &partition.id).await {
        Ok(Some(end)) => end,
        Ok(None) => {
            // Another node wrote the partition's history since this one last did: this
            // node's journal is not that history, and appending to it would fork it.
            tracing::error!(
                partition = %partition.id,
                "this partition's stream ends with another writer's message: its publisher stops"
            );
            return Round::Fenced(Fence::AnotherWriter);
        }
        Err(e) => {
            tracing::warn!(partition = %partition.id, error = %e, "cannot read the partition's stream; retrying");
            return Round::Failed;
        }
    };
    let mut next_seq = shared.engine.watch_next_event_seq();
    // A stream ahead of this node's own journal: the data dir was replaced or lost its
    // tail. Publishing now would reuse message ids with other events.
    let next = *next_seq.borrow();
    if cursor >= next {
        tracing::error!(
            partition = %partition.id, stream_at = cursor, journal_next = next,
            "this partition's stream holds later events of this node than its journal: \
             the data dir is not the one that published them; its publisher stops"
        );
        return Round::Fenced(Fence::AheadOfJournal);
    }
    shared.advance(&partition.id, cursor);
    loop {
        // Seen before reading: a publication after this wakes the wait below.
        next_seq.borrow_and_update();
        let events = match fetch(&shared.engine, cursor).await {
            Ok(Fetched::Events(events)) => events,
            Ok(Fetched::UpToDate) => {
                tokio::select! {
                    () = shared.stop.cancelled() => return Round::Stopped,
                    changed = next_seq.changed() => if changed.is_err() { return Round::Stopped },
                }
                continue;
            }
            Ok(Fetched::Gap { first }) => {
                tracing::warn!(
                    partition = %partition.id, from = cursor + 1, to = first - 1,
                    "the journal no longer holds these events: they never reach the stream"
                );
                cursor = first - 1;
                continue;
            }
            Err(e) => {
                tracing::warn!(partition = %partition.id, error = %e, "cannot read the journal; retrying");
                return Round::Failed;
            }
        };
        // Checked again before each batch: a lease lost since is no lease to write under.
        if let Err(round) = under_lease(shared, partition).await {
            return round;
        }
        // Sent one after another (each expecting the one before), acknowledged after.
        let mut acks = Vec::new();
        for e in events
            .iter()
            .filter(|e| partition.hotels.contains(e.event.hotel_id().as_str()))
        {
            let (event_type, hotel, body) = body(&shared.node, e);
            let id = format!("{}.{}", shared.node, e.seq);
            let mut message = PublishMessage::build()
                .payload(body.into())
                .header("Innkeep-Seq", e.seq.to_string().as_str())
                .header("Innkeep-Node", shared.node.as_str())
                .header("Innkeep-Event-Type", event_type)
                .header("Innkeep-Hotel-Id", hotel.as_str())
                .header("Innkeep-Format", FORMAT_VERSION.to_string().as_str())
                .message_id(&id);
            if let Some(last) = &last_id {
                message = message.expected_last_message_id(last);
            }
            match jetstream.send_publish(subject.clone(), message).await {
                Ok(ack) => acks.push(ack),
                Err(e) => {
                    tracing::warn!(partition = %partition.id, error = %e, "publish failed; retrying");
                    return Round::Failed;
                }
            }
            last_id = Some(id);
        }
        let published = acks.len();
        for ack in acks {
            match ack.await {
                Ok(_) => {}
                Err(e) if e.kind() == PublishErrorKind::WrongLastMessageId => {
                    tracing::error!(
                        partition = %partition.id,
                        "another writer appended to this partition's stream: its publisher stops"
                    );
                    return Round::Fenced(Fence::AnotherWriter);
                }
                Err(e) => {
                    tracing::warn!(partition = %partition.id, error = %e, "publish not acknowledged; retrying");
                    return Round::Failed;
                }
            }
        }
        metrics::counter!(METRIC_PUBLISHED, "partition" => partition.id.clone())
            .increment(published as u64);
        *backoff = FIRST_BACKOFF;
        cursor = events.last().map_or(cursor, |e| e.seq);
        shared.advance(&partition.id, cursor);
        if shared.stop.is_cancelled() {
            return Round::Stopped;
        }
    }
}
