//! Ownership leases: a node serves a partition only while it holds the partition's lease,
//! a key in the JetStream key-value bucket [`BUCKET`] (README, "Cluster").
//!
//! - The key is the partition's id, the value the holder's node id. The bucket keeps one
//!   revision per key and forgets a key `lease_ttl_ms` (the cluster file's) after its last
//!   write: a holder that stops renewing loses the lease then.
//! - Taking it: `create` (refused while anyone holds it), or, for a key that already names
//!   this node (the same node restarted before its lease ran out), an `update` at the
//!   key's revision. A lease another node holds is tried again every quarter of the TTL.
//! - Renewing: an `update` at the revision this node wrote last, every quarter of the TTL.
//!   Any other writer in between makes it fail: the lease is lost.
//! - Serving: until three quarters of the TTL after the moment the last successful take
//!   or renewal was *sent*. The bucket forgets the key no earlier than a full TTL after it
//!   stored the write, which came after that moment; the quarter between absorbs clock
//!   rates and a late request. A node paused longer than that (SIGSTOP, a VM stall) or cut
//!   off from NATS stops serving the moment its validity ends, before it has spoken to
//!   anyone, and serves again once a renewal at its revision gets through: then nobody
//!   wrote the key meanwhile, so nobody else served. (A renewal that timed out may land
//!   later; a refused renewal first looks whether the key names this node at a later
//!   revision.)
//! - Lost, when a renewal is refused because someone else wrote the key or it lapsed, is
//!   for good: a node that lost a partition's lease may have missed what the next owner
//!   did, so it serves the partition no more; with synchronous replication it also
//!   acknowledges nothing more (the journal's ack gate fails), and its publisher stops.
//!   Its stream is fenced besides: a new owner appends before it serves, so a write the
//!   old one still had in flight fails JetStream's expected-last-message check
//!   (`stream` module).
//! - Shutting down releases the lease (a delete at its revision), so the partition can
//!   move at once rather than after a TTL.
//! - The keepers run on a thread of their own (`innkeep-lease`), never on the shards.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use innkeep_http::cluster::{Cluster, Leases};
use tokio_util::sync::CancellationToken;

/// The JetStream key-value bucket holding every partition's lease.
pub const BUCKET: &str = "innkeep_leases";

/// Counter of leases lost, by `partition`.
pub const METRIC_LOST: &str = "innkeep_lease_lost_total";

/// First wait after a failed request to NATS; doubles up to a quarter of the TTL.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// What a keeper does when it loses its partition's lease (besides no longer serving it):
/// the server fails its ack gate, so nothing more is acknowledged.
pub type OnLost = Arc<dyn Fn(&str) + Send + Sync>;

/// The running lease keepers; [`LeaseKeepers::shutdown`] stops them and releases the
/// leases they hold.
pub struct LeaseKeepers {
    /// Cancelled to stop every keeper.
    stop: CancellationToken,
    /// The `innkeep-lease` thread.
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LeaseKeepers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseKeepers").finish_non_exhaustive()
    }
}

/// How long after sending a successful write of a lease of `ttl` its holder may serve.
pub fn validity(ttl: Duration) -> Duration {
    ttl * 3 / 4
}

/// One partition's keeper: which lease, and what it shares.
struct Keeper {
    /// The partition's index in the cluster file (its entry in `leases`).
    index: usize,
    /// The partition's id: the lease's key.
    partition: String,
    /// This node's id: the lease's value.
    node: String,
    /// Where this node's leases are told to the request path.
    leases: Arc<Leases>,
    /// How long a lease lasts unless renewed.
    ttl: Duration,
    /// What losing the lease does besides.
    on_lost: OnLost,
    /// Stops the keeper.
    stop: CancellationToken,
    /// The revision of a lease this node holds already (a standby's takeover): renewed
    /// from there rather than taken.
    adopted: Option<u64>,
    /// Whether readiness waits for this keeper's first attempt (the partitions this node
    /// is primary of).
    settles: bool,
}

impl LeaseKeepers {
    /// Starts a keeper for each partition `cluster` (made with [`Cluster::leased`]) names
    /// this node the primary of and for those in `also` (a lease this node held before it
    /// restarted), and one renewing each lease this node `adopted` (a standby's takeovers:
    /// partition index and revision), against the JetStream at
    /// `nats_url`. Returns at once: connecting happens in the background, and until a
    /// keeper has the lease its partition is answered 503 `not_owner` (and the node is not
    /// ready until each primary's keeper made its first attempt).
    pub fn start(
        cluster: &Cluster,
        nats_url: String,
        on_lost: OnLost,
        adopted: &[(usize, u64)],
        also: &[usize],
    ) -> std::io::Result<LeaseKeepers> {
        let stop = CancellationToken::new();
        let partitions = cluster.file().partitions();
        let is_adopted = |index: usize| adopted.iter().any(|&(i, _)| i == index);
        let wanted = cluster
            .primary_of()
            .map(|(index, _)| index)
            .chain(also.iter().copied())
            .filter(|&index| !is_adopted(index))
            .map(|index| (index, None))
            .chain(
                adopted
                    .iter()
                    .map(|&(index, revision)| (index, Some(revision))),
            );
        let primary_of: Vec<usize> = cluster.primary_of().map(|(index, _)| index).collect();
        let keepers: Vec<Keeper> = match cluster.leases() {
            Some(leases) => wanted
                .filter_map(|(index, adopted)| {
                    Some(Keeper {
                        index,
                        partition: partitions.get(index)?.id.clone(),
                        node: cluster.this_node().id.clone(),
                        leases: leases.clone(),
                        ttl: cluster.file().lease_ttl(),
                        on_lost: on_lost.clone(),
                        stop: stop.clone(),
                        adopted,
                        settles: primary_of.contains(&index),
                    })
                })
                .collect(),
            None => Vec::new(),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let node = cluster.this_node().id.clone();
        let ttl = cluster.file().lease_ttl();
        let thread = std::thread::Builder::new()
            .name("innkeep-lease".to_owned())
            .spawn(move || runtime.block_on(run(keepers, node, nats_url, ttl)))?;
        Ok(LeaseKeepers {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the keepers, releasing the leases they hold, and waits for their thread.
    pub fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn run(keepers: Vec<Keeper>, node: String, nats_url: String, ttl: Duration) {
    let Some(stop) = keepers.first().map(|k| k.stop.clone()) else {
        return;
    };
    let options = async_nats::ConnectOptions::new()
        .name(format!("innkeep {node} leases"))
        .retry_on_initial_connect();
    let client = tokio::select! {
        () = stop.cancelled() => return,
        client = options.connect(nats_url.as_str()) => client,
    };
    let client = match client {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(url = %nats_url, error = %e, "cannot reach NATS: this node takes no partition's lease");
            return;
        }
    };
    let jetstream = async_nats::jetstream::new(client);
    let store = loop {
        match open_bucket(&jetstream, ttl).await {
            Ok(store) => break store,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the lease bucket; retrying");
                if pause(&stop, FIRST_BACKOFF * 4).await {
                    return;
                }
            }
        }
    };
    let tasks: Vec<_> = keepers
        .into_iter()
        .map(|k| tokio::spawn(keep(k, store.clone())))
        .collect();
    for task in tasks {
        let _ = task.await;
    }
}

/// The lease bucket, made when missing with `ttl` (the cluster file's) as its age limit.
/// Refused when it exists with another age limit: every node must use one cluster file.
pub async fn open_bucket(
    jetstream: &async_nats::jetstream::Context,
    ttl: Duration,
) -> Result<kv::Store, async_nats::Error> {
    if let Ok(store) = jetstream.get_key_value(BUCKET).await {
        let age = store.status().await?.max_age();
        if age != ttl {
            // The bucket forgets keys after its own age: a shorter one than the file's
            // would let a lease lapse while this node still serves.
            return Err(format!(
                "the lease bucket {BUCKET} forgets keys after {age:?}, the cluster file's \
                 lease_ttl_ms says {ttl:?}: every node must use the same cluster file \
                 (delete the bucket to change the TTL)"
            )
            .into());
        }
        return Ok(store);
    }
    // The stream a key-value bucket is, as `create_key_value` configures it. Made here
    // because `create_key_value` first asks for the account's limits, whose answer
    // async-nats 0.52 cannot read from Debian's nats-server 2.9.
    jetstream
        .get_or_create_stream(async_nats::jetstream::stream::Config {
            name: format!("KV_{BUCKET}"),
            description: Some(
                "Innkeep partition leases: key = partition, value = holder node".to_owned(),
            ),
            subjects: vec![format!("$KV.{BUCKET}.>")],
            max_messages_per_subject: 1,
            max_age: ttl,
            storage: async_nats::jetstream::stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: async_nats::jetstream::stream::DiscardPolicy::New,
            num_replicas: 1,
            ..Default::default()
        })
        .await?;
    Ok(jetstream.get_key_value(BUCKET).await?)
}

/// Waits `wait`, or less if stopped; whether it was stopped.
async fn pause(stop: &CancellationToken, wait: Duration) -> bool {
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(wait) => false,
    }
}

/// What a keeper found when it tried to take its lease.
enum Taken {
    /// It holds it, at this revision.
    Held(u64),
    /// Another node holds it.
    Elsewhere(String),
    /// NATS did not answer well: try again.
    Failed,
}

impl Keeper {
    /// How long after sending a successful write this node may serve.
    fn validity(&self) -> Duration {
        validity(self.ttl)
    }

    /// How often it renews, and retries a lease another node holds.
    fn period(&self) -> Duration {
        self.ttl / 4
    }

    /// Tries to take the lease once.
    async fn take(&self, store: &kv::Store) -> Taken {
        let value = bytes::Bytes::from(self.node.clone().into_bytes());
        let sent = Instant::now();
        let found = match store.create(&self.partition, value.clone()).await {
            Ok(revision) => {
                self.leases.hold_until(self.index, sent + self.validity());
                return Taken::Held(revision);
            }
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
                match store.entry(&self.partition).await {
                    Ok(found) => found,
                    Err(e) => {
                        tracing::warn!(partition = %self.partition, error = %e, "cannot read the lease; retrying");
                        return Taken::Failed;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(partition = %self.partition, error = %e, "cannot take the lease; retrying");
                return Taken::Failed;
            }
        };
        let Some(entry) = found.filter(|e| e.operation == Operation::Put) else {
            // Gone (or released) between the two requests: try again at once.
            return Taken::Failed;
        };
        if entry.value != value {
            return Taken::Elsewhere(String::from_utf8_lossy(&entry.value).into_owned());
        }
        // This node's own, from before a restart: take it over at its revision.
        let sent = Instant::now();
        match store.update(&self.partition, value, entry.revision).await {
            Ok(revision) => {
                self.leases.hold_until(self.index, sent + self.validity());
                Taken::Held(revision)
            }
            Err(e) => {
                tracing::warn!(partition = %self.partition, error = %e, "cannot take over this node's earlier lease; retrying");
                Taken::Failed
            }
        }
    }

    /// This node lost the lease: it serves the partition no more.
    fn lost(&self, why: &str) {
        tracing::error!(
            partition = %self.partition, why,
            "lost this partition's lease: this node serves it no more until restarted"
        );
        metrics::counter!(METRIC_LOST, "partition" => self.partition.clone()).increment(1);
        self.leases.lose(self.index);
        (self.on_lost)(&self.partition);
    }
}

/// Takes the partition's lease, then renews it until the server stops (releasing it) or
/// the lease is lost.
async fn keep(keeper: Keeper, store: kv::Store) {
    let revision = match keeper.adopted {
        Some(revision) => {
            if keeper.settles {
                keeper.leases.settle();
            }
            revision
        }
        None => match take(&keeper, &store).await {
            Some(revision) => revision,
            None => return,
        },
    };
    renew(&keeper, &store, revision).await;
}

/// Takes the partition's lease (waiting while another node holds it); `None` if the server
/// stopped first.
async fn take(keeper: &Keeper, store: &kv::Store) -> Option<u64> {
    let mut settled = false;
    let mut backoff = FIRST_BACKOFF;
    let mut told_elsewhere = None;
    let revision = loop {
        let taken = keeper.take(store).await;
        let wait = match taken {
            Taken::Held(revision) => break revision,
            Taken::Elsewhere(holder) => {
                if told_elsewhere.as_ref() != Some(&holder) {
                    tracing::warn!(partition = %keeper.partition, %holder,
                        "another node holds this partition's lease: waiting for it to end");
                    told_elsewhere = Some(holder);
                }
                if !settled {
                    keeper.leases.settle();
                    settled = true;
                }
                keeper.period()
            }
            Taken::Failed => {
                backoff = (backoff * 2).min(keeper.period());
                backoff
            }
        };
        if pause(&keeper.stop, wait).await {
            return None;
        }
    };
    tracing::info!(partition = %keeper.partition, revision, "holding this partition's lease");
    if !settled {
        keeper.leases.settle();
    }
    Some(revision)
}

/// Renews the lease from `revision` on, until the server stops (releasing it) or the
/// lease is lost.
async fn renew(keeper: &Keeper, store: &kv::Store, mut revision: u64) {
    let value = bytes::Bytes::from(keeper.node.clone().into_bytes());
    let mut told_expired = false;
    loop {
        if pause(&keeper.stop, keeper.period()).await {
            // Released so the partition can move at once; if this fails, it lapses.
            let _ = store
                .delete_expect_revision(&keeper.partition, Some(revision))
                .await;
            return;
        }
        // Fenced meanwhile (its stream has another writer): the partition is not this
        // node's to serve, so let the lease go for one that can.
        if keeper.leases.is_lost(keeper.index) {
            tracing::warn!(partition = %keeper.partition, "this partition is fenced here: letting its lease go");
            let _ = store
                .delete_expect_revision(&keeper.partition, Some(revision))
                .await;
            return;
        }
        // Paused, starved or cut off from NATS past the lease's validity: requests are
        // refused until a renewal at this node's revision gets through (nobody took the
        // lease meanwhile) or fails (somebody may have).
        let expired = !keeper.leases.holds(keeper.index);
        if expired && !told_expired {
            tracing::warn!(partition = %keeper.partition,
                "this partition's lease was not renewed in time: not serving it until a renewal gets through");
            told_expired = true;
        }
        let sent = Instant::now();
        let renewed = tokio::time::timeout(
            keeper.period(),
            store.update(&keeper.partition, value.clone(), revision),
        )
        .await;
        match renewed {
            Ok(Ok(next)) => {
                revision = next;
                keeper
                    .leases
                    .hold_until(keeper.index, sent + keeper.validity());
                if told_expired {
                    tracing::info!(partition = %keeper.partition, "this partition's lease is renewed: serving it again");
                    told_expired = false;
                }
            }
            Ok(Err(e)) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                // A renewal that timed out here may still have landed: then the key names
                // this node at a later revision, and only this node wrote since (another's
                // write would have made that renewal fail). Anything else: lost.
                match store.entry(&keeper.partition).await {
                    Ok(Some(e))
                        if e.operation == Operation::Put
                            && e.value == value
                            && e.revision > revision =>
                    {
                        revision = e.revision;
                    }
                    _ => {
                        keeper.lost("another writer changed it, or it lapsed");
                        return;
                    }
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(partition = %keeper.partition, error = %e, "cannot renew the lease; retrying");
            }
            Err(_) => {
                tracing::warn!(partition = %keeper.partition, "renewing the lease timed out; retrying");
            }
        }
    }
}
