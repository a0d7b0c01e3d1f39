//! Supervision is crash-only: a panic on a thread the engine runs aborts the process.
//!
//! Why not catch it and go on: a handler that panics may have changed its actor's state
//! half-way (a room applies a booking before the journal has it, a supervisor updates
//! several maps per message), and the read model the actor keeps (availability index,
//! locator, idempotency keys) may be half-updated with it. Nothing in memory can be trusted to be what
//! the journal says any more. Left alone it is worse: in actix a panic ends the arbiter's
//! thread and every room on it, while the rest of the process keeps answering — a
//! half-dead server that times out or 503s for some rooms and not others. The journal is
//! the truth, and recovery (newest snapshot + replay) already rebuilds everything from it
//! at start-up, so the restart *is* the recovery: nothing acknowledged is lost (it is on
//! disk), nothing unacknowledged was promised. A supervisor (systemd, Kubernetes, the
//! embedder's) restarts the process.
//!
//! [`install`] puts a process-wide panic hook in front of the one already installed. A
//! panic on an engine thread is logged (`tracing::error!`: message, location, thread),
//! handed to the previous hook too (stderr, backtrace, an embedder's reporting), then the
//! process aborts (SIGABRT) — before unwinding, so nothing sees the half-changed state.
//! Panics on every other thread (test harness threads, an embedder's own threads and
//! runtimes) go to the previous hook unchanged and unwind as before.
//!
//! Engine threads are the shards (each marks itself with [`mark_engine_thread`]), the actix
//! system thread [`ACTORS_THREAD`] that hosts the supervisors, and the engine's named
//! threads: the journal writer, the snapshot writer and the replay thread. A batch of bookings
//! runs as a task on a shard, so it is covered too, and so is everything else a shard
//! runs: in the server that includes the HTTP handlers, so a panicking handler aborts the
//! process as well (it shares its thread, and possibly its state, with rooms).

use std::cell::Cell;
use std::panic::PanicHookInfo;
use std::sync::Once;

thread_local! {
    /// Set on the threads the engine runs that have no fixed name (the shards).
    static ENGINE_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as one of the engine's: a panic on it aborts the process.
pub(crate) fn mark_engine_thread() {
    ENGINE_THREAD.with(|t| t.set(true));
}

/// The actix system thread of an engine (the supervisors run on its arbiter).
pub(crate) const ACTORS_THREAD: &str = "innkeep-actors";
/// The snapshot writer thread (sled and fsync; it never touches an actor).
pub(crate) const SNAPSHOT_THREAD: &str = "innkeep-snapshot";
/// The thread applying replayed events at start-up.
pub(crate) const REPLAY_THREAD: &str = "innkeep-replay";

/// The engine's own threads, by name.
const NAMED_THREADS: [&str; 4] = [
    ACTORS_THREAD,
    SNAPSHOT_THREAD,
    REPLAY_THREAD,
    innkeep_persistence::journal::WRITER_THREAD_NAME,
];

static INSTALL: Once = Once::new();

/// Installs the crash-only panic hook, once per process; later calls do nothing. Chained:
/// the hook that was installed before stays in charge of every other thread. An embedder
/// that sets its own hook after starting an engine replaces this one unless it chains to
/// it ([`std::panic::take_hook`]).
pub(crate) fn install() {
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("<unnamed>");
            if !is_engine_thread(name) {
                return previous(info);
            }
            log(info, name);
            previous(info);
            std::process::abort();
        }));
    });
}

/// Whether a thread with this name is one the engine runs: a shard, or one of its named
/// threads.
fn is_engine_thread(name: &str) -> bool {
    ENGINE_THREAD.with(Cell::get) || NAMED_THREADS.contains(&name)
}

fn log(info: &PanicHookInfo<'_>, thread: &str) {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<non-string panic payload>");
    let location = info
        .location()
        .map_or_else(|| "<unknown>".to_owned(), ToString::to_string);
    tracing::error!(
        thread,
        %location,
        panic = message,
        "panic on an engine thread: aborting (crash-only; the restart recovers from the journal)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_threads_are_the_shards_and_the_named_threads() {
        for name in NAMED_THREADS {
            assert!(is_engine_thread(name), "{name}");
        }
        // Test threads, an embedder's, other actix systems' arbiters are not the engine's.
        for name in [
            "actix-rt|system:0|arbiter:3",
            "innkeep-http",
            "innkeep-metrics",
            "crash::tests::x",
            "<unnamed>",
        ] {
            assert!(!is_engine_thread(name), "{name}");
        }
        // A shard is one whatever actix names it.
        let shards = crate::shards::Shards::start(1).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        assert!(shards.spawn(0, async move {
            let _ = tx.send(is_engine_thread("actix-rt|system:0|arbiter:3"));
        }));
        assert_eq!(rx.recv().ok(), Some(true));
        shards.stop();
    }

    /// With the hook installed, a panic on a thread that is not the engine's unwinds as
    /// before: the thread ends, `join` reports it, the process lives on.
    #[test]
    fn a_panic_on_another_thread_does_not_abort() {
        install();
        install();
        assert!(std::thread::spawn(|| panic!("not an engine thread"))
            .join()
            .is_err());
        let named = std::thread::Builder::new()
            .name("innkeep-http".into())
            .spawn(|| panic!("an embedder's worker, not the engine"))
            .unwrap();
        assert!(named.join().is_err());
    }
}
