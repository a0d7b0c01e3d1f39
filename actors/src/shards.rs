//! Shards: one thread per core, each an actix [`Arbiter`] running a current-thread tokio
//! runtime. The room actors live on the shards, and so does the HTTP server (the `innkeep`
//! binary serves axum on every shard's runtime), so a request is parsed, decided and
//! answered on one thread whenever its room is local. The actix system thread, which hosts
//! the order and payment supervisors, is not a shard: nothing on the booking path runs there.
//!
//! A shard knows its own index ([`current`]), which is how a booking asks the rooms of its
//! own shard first and how admission is bounded per shard.

use std::cell::Cell;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use actix::{Arbiter, ArbiterHandle, System};
use innkeep_persistence::{Ack, AckSink};
use tokio::sync::mpsc;

/// Most shards; more than the cores of any machine this runs on, and a bound on the
/// per-shard arrays.
pub const MAX_SHARDS: usize = 256;

thread_local! {
    /// The index of the shard this thread is, if it is one.
    static SHARD: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The shard the calling thread is, or `None` on any other thread.
pub fn current() -> Option<usize> {
    SHARD.with(Cell::get)
}

/// The shard threads and the actix system they belong to. Cheap to clone; every clone
/// names the same threads. Stopped by [`Shards::stop`] (the engine's shutdown calls it).
#[derive(Clone)]
pub struct Shards {
    inner: Arc<Inner>,
}

struct Inner {
    /// The actix system: stopping it ends every shard and the system thread.
    system: System,
    /// The system thread's arbiter, where the supervisors run.
    system_arbiter: ArbiterHandle,
    /// One per shard, in index order.
    arbiters: Vec<ArbiterHandle>,
    /// Per shard, where the journal writer hands that shard's acks of a batch.
    acks: Vec<Arc<dyn AckSink>>,
    /// The system thread, joined on stop (it returns once every arbiter has ended).
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Shards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shards")
            .field("count", &self.inner.arbiters.len())
            .finish_non_exhaustive()
    }
}

impl Shards {
    /// Starts `count` shards (0: one per core, at most [`MAX_SHARDS`]) and the actix system
    /// thread they belong to. Call it from a plain thread, not from inside a runtime.
    ///
    /// Installs the engine's crash-only panic hook first (`crate::crash`): a panic on a
    /// shard or on the system thread aborts the process.
    pub fn start(count: usize) -> std::io::Result<Shards> {
        crate::crash::install();
        let count = match count {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
        .min(MAX_SHARDS);
        let (up_tx, up_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(crate::crash::ACTORS_THREAD.into())
            .spawn(move || {
                let system = System::new();
                let arbiters = system.block_on(async move {
                    (0..count)
                        .map(|i| {
                            Arbiter::try_with_tokio_rt(move || {
                                // Runs on the new thread, before anything is spawned there.
                                SHARD.with(|s| s.set(Some(i)));
                                crate::crash::mark_engine_thread();
                                tokio::runtime::Builder::new_current_thread()
                                    .enable_all()
                                    .build()
                            })
                            .map(|a| a.handle())
                        })
                        .collect::<std::io::Result<Vec<_>>>()
                });
                let arbiters = match arbiters {
                    Ok(a) => a,
                    Err(e) => {
                        let _ = up_tx.send(Err(e));
                        return;
                    }
                };
                let current = System::current();
                let system_arbiter = current.arbiter().clone();
                let _ = up_tx.send(Ok((current, system_arbiter, arbiters)));
                if let Err(e) = system.run() {
                    tracing::error!(error = %e, "actor system stopped with an error");
                }
            })?;
        let (system, system_arbiter, arbiters) = up_rx.recv().map_err(|_| {
            std::io::Error::other("the actor system thread ended before it started")
        })??;
        let acks = arbiters
            .iter()
            .map(|arbiter| {
                let (tx, mut rx) = mpsc::unbounded_channel::<Vec<Ack>>();
                // Completes on the shard what the writer delivered: each completion wakes
                // a task of this thread, which costs no syscall.
                arbiter.spawn(async move {
                    while let Some(acks) = rx.recv().await {
                        for ack in acks {
                            ack.complete();
                        }
                    }
                });
                Arc::new(ShardAcks(tx)) as Arc<dyn AckSink>
            })
            .collect();
        Ok(Shards {
            inner: Arc::new(Inner {
                system,
                system_arbiter,
                arbiters,
                acks,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// How many shards there are (at least one).
    pub fn len(&self) -> usize {
        self.inner.arbiters.len()
    }

    /// Always false: there is at least one shard.
    pub fn is_empty(&self) -> bool {
        self.inner.arbiters.is_empty()
    }

    /// Runs `future` on shard `shard` (modulo their number). False if the shards stopped.
    pub fn spawn<F>(&self, shard: usize, future: F) -> bool
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.inner.arbiters[shard % self.len()].spawn(future)
    }

    /// Runs `f` on the system thread (where the supervisors live). False if it stopped.
    pub(crate) fn on_system<F: FnOnce() + Send + 'static>(&self, f: F) -> bool {
        self.inner.system_arbiter.spawn_fn(f)
    }

    /// The shards' arbiters, in index order.
    pub(crate) fn arbiters(&self) -> &[ArbiterHandle] {
        &self.inner.arbiters
    }

    /// Where the journal writer should deliver the acks of appends made on `shard`: one
    /// wake of the shard per batch, however many of its appends the batch holds.
    pub(crate) fn acks(&self, shard: usize) -> &Arc<dyn AckSink> {
        &self.inner.acks[shard % self.len()]
    }

    /// Stops every shard and the system thread, and waits for them to end. Whatever still
    /// runs there (actors, HTTP connections) is dropped. Idempotent.
    pub fn stop(&self) {
        self.inner.system.stop();
        let thread = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

/// A shard's [`AckSink`]: the writer's deliveries go to a task on the shard (one channel
/// send, so one wake, per batch). Plain tokio, so the writer thread calls no actix API.
#[derive(Debug)]
struct ShardAcks(mpsc::UnboundedSender<Vec<Ack>>);

impl AckSink for ShardAcks {
    fn deliver(&self, acks: Vec<Ack>) {
        // A stopped shard drops them: its waiters see the engine stopping.
        let _ = self.0.send(acks);
    }
}
